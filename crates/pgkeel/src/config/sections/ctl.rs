//! The `ctl:` section: the credentials pgkeelctl sends to the REST API.

use serde_json::{Map, Value};

use super::restapi::basic_auth;
use crate::config::error::ConfigError;
use crate::config::keys::{CTL_KNOWN, CTL_UNSUPPORTED, check_keys};
use crate::config::origin::Ctx;
use crate::config::read::section;
use crate::config::tls;
use crate::config::{BasicAuth, CtlConfig};

type R<T> = Result<T, ConfigError>;

/// Builds `ctl` (optional; absent means "use `restapi.authentication`").
pub(crate) fn build_ctl(ctx: &mut Ctx<'_>, top: &Map<String, Value>) -> R<CtlConfig> {
    let Some(m) = section(ctx, top, "", "ctl")? else {
        return Ok(CtlConfig::default());
    };
    tls::refuse_ctl(ctx, m)?;
    check_keys(ctx, m, "ctl", CTL_KNOWN, CTL_UNSUPPORTED);
    Ok(CtlConfig {
        authentication: basic_auth(ctx, m, "ctl")?,
    })
}

/// The credentials pgkeelctl sends with every REST request, like patronictl's
/// `PatroniRequest.reload_config`: `ctl.authentication`, else `restapi.authentication`.
pub(crate) fn ctl_rest_auth(ctx: &mut Ctx<'_>, top: &Map<String, Value>) -> R<Option<BasicAuth>> {
    for name in ["ctl", "restapi"] {
        if let Some(m) = section(ctx, top, "", name)?
            && let Some(auth) = basic_auth(ctx, m, name)?
        {
            return Ok(Some(auth));
        }
    }
    Ok(None)
}
