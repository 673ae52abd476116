//! The `log:` section: only `level` is read.

use serde_json::{Map, Value};

use crate::config::defaults::DEFAULT_LOG_LEVEL;
use crate::config::error::ConfigError;
use crate::config::keys::{LOG_KNOWN, LOG_UNSUPPORTED, check_keys};
use crate::config::origin::Ctx;
use crate::config::read::{opt_nonempty_str, section};

type R<T> = Result<T, ConfigError>;

/// Builds `log.level` as one of Patroni's level names (`WARN` and `FATAL` read as `WARNING` and
/// `CRITICAL`), [`DEFAULT_LOG_LEVEL`] when absent.
pub(crate) fn build_log(ctx: &mut Ctx<'_>, top: &Map<String, Value>) -> R<String> {
    let Some(m) = section(ctx, top, "", "log")? else {
        return Ok(DEFAULT_LOG_LEVEL.to_string());
    };
    check_keys(ctx, m, "log", LOG_KNOWN, LOG_UNSUPPORTED);
    let Some(level) = opt_nonempty_str(ctx, m, "log", "level")? else {
        return Ok(DEFAULT_LOG_LEVEL.to_string());
    };
    let upper = level.to_ascii_uppercase();
    Ok(match upper.as_str() {
        "DEBUG" | "INFO" | "WARNING" | "ERROR" | "CRITICAL" => upper,
        "WARN" => "WARNING".to_string(),
        "FATAL" => "CRITICAL".to_string(),
        _ => {
            return Err(ctx.invalid_text(
                "log.level",
                "unknown log level",
                &level,
                "DEBUG, INFO, WARNING, ERROR or CRITICAL",
            ));
        }
    })
}
