//! The `restapi:` section, and the basic-auth mapping it shares with `ctl:`.

use serde_json::{Map, Value};

use crate::config::error::ConfigError;
use crate::config::keys::{BASIC_AUTH_KNOWN, RESTAPI_KNOWN, RESTAPI_UNSUPPORTED, check_keys};
use crate::config::origin::{Ctx, join};
use crate::config::read::{opt_bool, opt_nonempty_str, opt_str, req_str, section, str_list};
use crate::config::tls;
use crate::config::{BasicAuth, RestApiConfig};

type R<T> = Result<T, ConfigError>;

/// Builds `restapi` (required: at least `listen`); `connect_address` defaults to `listen`, with
/// a warning.
pub(crate) fn build_restapi(ctx: &mut Ctx<'_>, top: &Map<String, Value>) -> R<RestApiConfig> {
    let Some(m) = section(ctx, top, "", "restapi")? else {
        return Err(ctx.missing("restapi.listen", "host:port for the REST API"));
    };
    tls::refuse_restapi(ctx, m)?;
    check_keys(ctx, m, "restapi", RESTAPI_KNOWN, RESTAPI_UNSUPPORTED);
    let listen = req_str(ctx, m, "restapi", "listen", "host:port for the REST API")?;
    let connect_address = match opt_nonempty_str(ctx, m, "restapi", "connect_address")? {
        Some(c) => c,
        None => {
            ctx.warn(
                "restapi.listen",
                format!(
                    "key `restapi.connect_address` is not set; using `restapi.listen` ({listen}) as the address other members and clients use"
                ),
            );
            listen.clone()
        }
    };
    let authentication = basic_auth(ctx, m, "restapi")?;
    let allowlist = str_list(ctx, m, "restapi", "allowlist")?;
    let allowlist_include_members =
        opt_bool(ctx, m, "restapi", "allowlist_include_members")?.unwrap_or(false);
    Ok(RestApiConfig {
        listen,
        connect_address,
        authentication,
        allowlist,
        allowlist_include_members,
    })
}

/// The optional `authentication` mapping under `pp` (`restapi` or `ctl`): both `username` and
/// `password` are required when it is present.
pub(crate) fn basic_auth(
    ctx: &mut Ctx<'_>,
    parent: &Map<String, Value>,
    pp: &str,
) -> R<Option<BasicAuth>> {
    let Some(m) = section(ctx, parent, pp, "authentication")? else {
        return Ok(None);
    };
    let path = join(pp, "authentication");
    check_keys(ctx, m, &path, BASIC_AUTH_KNOWN, &[]);
    let username = req_str(ctx, m, &path, "username", "the basic-auth user name")?;
    let password = match opt_str(ctx, m, &path, "password")? {
        Some(p) => p,
        None => return Err(ctx.missing(&join(&path, "password"), "the basic-auth password")),
    };
    Ok(Some(BasicAuth { username, password }))
}
