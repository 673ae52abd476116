//! The `postgresql:` section: addresses, data and binary directories, roles, parameters,
//! `pg_hba`, callbacks, rewind/re-clone switches, `pg_ctl` timeout and basebackup options.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::config::defaults::{DEFAULT_PG_CTL_TIMEOUT, DEFAULT_SUPERUSER, default_pgpass};
use crate::config::error::ConfigError;
use crate::config::keys::{
    CALLBACKS_KNOWN, PG_AUTH_KNOWN, PG_KNOWN, PG_UNSUPPORTED, PG_USER_KNOWN, PG_USER_UNSUPPORTED,
    check_keys,
};
use crate::config::origin::{Ctx, join};
use crate::config::read::{
    opt_bool, opt_command, opt_i64, opt_nonempty_str, opt_str, req_str, scalar_string, section,
    str_list,
};
use crate::config::{Callbacks, PgAuthentication, PgUser, PostgresqlConfig, PrimaryRoleName};
use crate::config::{tls, validate};

type R<T> = Result<T, ConfigError>;

/// Builds `postgresql` (required). `env` supplies `HOME` for the default `pgpass`, `name` the
/// fallback when there is none. Custom replica methods and their sub-sections are ignored with a
/// warning, since pgkeel only clones with pg_basebackup.
pub(crate) fn build_postgresql(
    ctx: &mut Ctx<'_>,
    top: &Map<String, Value>,
    env: &[(String, String)],
    name: &str,
) -> R<PostgresqlConfig> {
    let path = "postgresql";
    let Some(m) = section(ctx, top, "", path)? else {
        return Err(ctx.missing(
            "postgresql",
            "the postgresql section (listen, connect_address, data_dir, authentication)",
        ));
    };
    let mut known: Vec<String> = PG_KNOWN.iter().map(|s| s.to_string()).collect();
    // A replica method other than basebackup names a sub-section that pgkeel cannot run.
    if let Some(methods) = m.get("create_replica_methods").filter(|v| !v.is_null()) {
        let list = match methods {
            Value::Array(a) => a.iter().filter_map(scalar_string).collect::<Vec<_>>(),
            other => scalar_string(other).map(|s| vec![s]).unwrap_or_default(),
        };
        if list.iter().any(|x| x != "basebackup") {
            ctx.warn(
                "postgresql.create_replica_methods",
                "key `postgresql.create_replica_methods` is not supported by pgkeel yet; ignored (pgkeel clones replicas with pg_basebackup)",
            );
            for meth in list.iter().filter(|x| *x != "basebackup") {
                if m.contains_key(meth.as_str()) {
                    ctx.warn(
                        &join(path, meth),
                        format!("key `postgresql.{meth}` is not supported by pgkeel yet; ignored"),
                    );
                    known.push(meth.clone());
                }
            }
        }
    }
    let known_refs: Vec<&str> = known.iter().map(String::as_str).collect();
    check_keys(ctx, m, path, &known_refs, PG_UNSUPPORTED);

    let listen = req_str(ctx, m, path, "listen", "host:port PostgreSQL listens on")?;
    let connect_address = req_str(
        ctx,
        m,
        path,
        "connect_address",
        "host:port other members use to reach this server",
    )?;
    let data_dir = PathBuf::from(req_str(
        ctx,
        m,
        path,
        "data_dir",
        "the PostgreSQL data directory (PGDATA)",
    )?);
    let bin_dir = opt_nonempty_str(ctx, m, path, "bin_dir")?.map(PathBuf::from);
    let pgpass = match opt_nonempty_str(ctx, m, path, "pgpass")? {
        Some(p) => PathBuf::from(p),
        None => default_pgpass(env, name),
    };
    let authentication = build_pg_auth(ctx, m)?;
    let parameters: BTreeMap<String, Value> = match section(ctx, m, path, "parameters")? {
        Some(p) => p.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        None => BTreeMap::new(),
    };
    let pg_hba = str_list(ctx, m, path, "pg_hba")?;
    let callbacks = match section(ctx, m, path, "callbacks")? {
        Some(c) => {
            let cp = "postgresql.callbacks";
            check_keys(ctx, c, cp, CALLBACKS_KNOWN, &[]);
            Callbacks {
                on_start: opt_command(ctx, c, cp, "on_start")?,
                on_stop: opt_command(ctx, c, cp, "on_stop")?,
                on_restart: opt_command(ctx, c, cp, "on_restart")?,
                on_reload: opt_command(ctx, c, cp, "on_reload")?,
                on_role_change: opt_command(ctx, c, cp, "on_role_change")?,
                primary_role_name: primary_role_name(ctx, c, cp)?,
            }
        }
        None => Callbacks::default(),
    };
    let pg_ctl_timeout = match opt_i64(ctx, m, path, "pg_ctl_timeout")? {
        None => DEFAULT_PG_CTL_TIMEOUT,
        Some(t) if t > 0 => t as u64,
        Some(t) => {
            return Err(ctx.invalid(
                "postgresql.pg_ctl_timeout",
                "must be positive",
                Some(&Value::from(t)),
                "a number of seconds >= 1",
            ));
        }
    };
    let basebackup = match m.get("basebackup").filter(|v| !v.is_null()) {
        Some(v) => validate::render_tool_options(ctx, "postgresql.basebackup", v, "pg_basebackup")?,
        None => Vec::new(),
    };
    Ok(PostgresqlConfig {
        listen,
        connect_address,
        data_dir,
        bin_dir,
        pgpass,
        authentication,
        parameters,
        pg_hba,
        use_pg_rewind: opt_bool(ctx, m, path, "use_pg_rewind")?.unwrap_or(false),
        use_unix_socket: opt_bool(ctx, m, path, "use_unix_socket")?.unwrap_or(false),
        callbacks,
        remove_data_directory_on_rewind_failure: opt_bool(
            ctx,
            m,
            path,
            "remove_data_directory_on_rewind_failure",
        )?
        .unwrap_or(false),
        remove_data_directory_on_diverged_timelines: opt_bool(
            ctx,
            m,
            path,
            "remove_data_directory_on_diverged_timelines",
        )?
        .unwrap_or(false),
        pg_ctl_timeout,
        basebackup,
    })
}

/// Builds `postgresql.authentication` (required, for the replication role); the superuser
/// defaults to [`DEFAULT_SUPERUSER`] without a password.
fn build_pg_auth(ctx: &mut Ctx<'_>, pg: &Map<String, Value>) -> R<PgAuthentication> {
    let path = "postgresql.authentication";
    let Some(m) = section(ctx, pg, "postgresql", "authentication")? else {
        return Err(ctx.missing(
            "postgresql.authentication.replication",
            "the replication role (username, password)",
        ));
    };
    check_keys(ctx, m, path, PG_AUTH_KNOWN, &[]);
    let superuser = match pg_user(ctx, m, path, "superuser")? {
        Some(u) => u,
        None => PgUser {
            username: DEFAULT_SUPERUSER.to_string(),
            password: None,
        },
    };
    let Some(replication) = pg_user(ctx, m, path, "replication")? else {
        return Err(ctx.missing(
            "postgresql.authentication.replication",
            "the replication role (username, password)",
        ));
    };
    let rewind = pg_user(ctx, m, path, "rewind")?;
    Ok(PgAuthentication {
        superuser,
        replication,
        rewind,
    })
}

/// One role under `postgresql.authentication` (`key` is `superuser`, `replication` or
/// `rewind`), or `None` when absent. Only the superuser's `username` may be left out.
fn pg_user(
    ctx: &mut Ctx<'_>,
    parent: &Map<String, Value>,
    pp: &str,
    key: &str,
) -> R<Option<PgUser>> {
    let Some(m) = section(ctx, parent, pp, key)? else {
        return Ok(None);
    };
    let path = join(pp, key);
    tls::refuse_pg_user(ctx, m, &path)?;
    check_keys(ctx, m, &path, PG_USER_KNOWN, PG_USER_UNSUPPORTED);
    let username = match opt_nonempty_str(ctx, m, &path, "username")? {
        Some(u) => u,
        None if key == "superuser" => DEFAULT_SUPERUSER.to_string(),
        None => return Err(ctx.missing(&join(&path, "username"), format!("the {key} role name"))),
    };
    Ok(Some(PgUser {
        username,
        password: opt_str(ctx, m, &path, "password")?,
    }))
}

/// `postgresql.callbacks.primary_role_name`: `primary` (the default) or `master`.
fn primary_role_name(ctx: &Ctx<'_>, c: &Map<String, Value>, cp: &str) -> R<PrimaryRoleName> {
    match opt_str(ctx, c, cp, "primary_role_name")?.as_deref() {
        None | Some("primary") => Ok(PrimaryRoleName::Primary),
        Some("master") => Ok(PrimaryRoleName::Master),
        Some(other) => Err(ctx.invalid(
            &format!("{cp}.primary_role_name"),
            "is not a role name callbacks can be given",
            Some(&Value::from(other)),
            "primary or master",
        )),
    }
}
