//! The `bootstrap:` section: the initial dynamic configuration, initdb options, legacy
//! `pg_hba` and `users`, and the post-bootstrap command.

use serde_json::{Map, Value};

use crate::config::error::ConfigError;
use crate::config::keys::{BOOTSTRAP_KNOWN, BOOTSTRAP_USER_KNOWN, check_keys};
use crate::config::origin::{Ctx, join};
use crate::config::read::{opt_command, opt_nonempty_str, opt_str, section, str_list};
use crate::config::validate;
use crate::config::{BootstrapConfig, BootstrapUser};

type R<T> = Result<T, ConfigError>;

/// Builds `bootstrap` (optional). A custom `method` and its sub-section are ignored with a
/// warning, since pgkeel only bootstraps with initdb.
pub(crate) fn build_bootstrap(ctx: &mut Ctx<'_>, top: &Map<String, Value>) -> R<BootstrapConfig> {
    let Some(m) = section(ctx, top, "", "bootstrap")? else {
        return Ok(BootstrapConfig::default());
    };
    let path = "bootstrap";
    // A custom bootstrap method names a sub-section; pgkeel only does initdb.
    let method = opt_nonempty_str(ctx, m, path, "method")?;
    let mut known: Vec<&str> = BOOTSTRAP_KNOWN.to_vec();
    if let Some(meth) = method.as_deref().filter(|m| *m != "initdb") {
        ctx.warn(
            "bootstrap.method",
            format!(
                "key `bootstrap.method` ({meth}) is not supported by pgkeel yet; ignored (pgkeel bootstraps with initdb)"
            ),
        );
        if m.contains_key(meth) {
            ctx.warn(
                &join(path, meth),
                format!("key `bootstrap.{meth}` is not supported by pgkeel yet; ignored"),
            );
            known.push(meth);
        }
    }
    check_keys(ctx, m, path, &known, &[]);

    let dcs = match section(ctx, m, path, "dcs")? {
        Some(d) => d.clone(),
        None => Map::new(),
    };
    let initdb = match m.get("initdb").filter(|v| !v.is_null()) {
        Some(v) => validate::render_tool_options(ctx, "bootstrap.initdb", v, "initdb")?,
        None => Vec::new(),
    };
    let pg_hba = str_list(ctx, m, path, "pg_hba")?;
    let post_bootstrap = match opt_command(ctx, m, path, "post_bootstrap")? {
        Some(c) => Some(c),
        None => opt_command(ctx, m, path, "post_init")?,
    };
    let mut users = Vec::new();
    if let Some(u) = section(ctx, m, path, "users")? {
        ctx.warn(
            "bootstrap.users",
            "key `bootstrap.users` is deprecated (Patroni 4 removed it); pgkeel still creates these roles once after initdb. Create roles in post_bootstrap instead",
        );
        for (uname, spec) in u {
            let up = join("bootstrap.users", uname);
            let (password, options) = match spec {
                Value::Null => (None, Vec::new()),
                Value::Object(sm) => {
                    check_keys(ctx, sm, &up, BOOTSTRAP_USER_KNOWN, &[]);
                    (
                        opt_str(ctx, sm, &up, "password")?,
                        str_list(ctx, sm, &up, "options")?,
                    )
                }
                other => {
                    return Err(ctx.invalid(
                        &up,
                        "wrong type",
                        Some(other),
                        "a mapping with password and options",
                    ));
                }
            };
            users.push(BootstrapUser {
                name: uname.clone(),
                password,
                options,
            });
        }
    }
    Ok(BootstrapConfig {
        dcs,
        initdb,
        pg_hba,
        post_bootstrap,
        users,
    })
}
