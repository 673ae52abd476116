//! `POST /restart` (Patroni's `do_POST_restart`): restart PostgreSQL on this node through the
//! HA loop. The body is optional; its filters are Patroni's (`role`, `postgres_version`,
//! `restart_pending`, `timeout`), checked here with Patroni's messages; the loop's core decides
//! whether the restart runs. 200 with "restarted successfully", 503 with the reason otherwise.
//! Scheduled restarts (`schedule`) are not supported yet: 501.

use super::{ApiState, text_response};
use axum::http::StatusCode;
use axum::response::Response;
use pgkeel_ha::ha::{RequestKind, RestartConditions, Role};
use serde_json::{Map, Value};
use std::time::Duration;

/// How long the loop may take to accept or refuse the request (it is woken at once; a cycle
/// in progress finishes first).
const ACCEPT_WITHIN: Duration = Duration::from_secs(15);

/// `POST /restart` (auth checked by the caller).
pub(super) async fn post(state: &ApiState, body: &[u8]) -> Response {
    let (conditions, timeout) = match parse(body) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let Some(requests) = &state.requests else {
        return text_response(StatusCode::SERVICE_UNAVAILABLE, "restart failed");
    };
    let done_within = timeout.unwrap_or(state.restart_wait);
    super::loop_answer(
        requests
            .ask(RequestKind::Restart(conditions), ACCEPT_WITHIN, done_within)
            .await,
    )
}

/// The body's filters, or the 400/501 answer Patroni gives for a bad one.
#[allow(clippy::result_large_err)]
fn parse(body: &[u8]) -> Result<(RestartConditions, Option<Duration>), Response> {
    let bad = |message: String| text_response(StatusCode::BAD_REQUEST, message);
    let request: Map<String, Value> = super::optional_json_object(body)?;
    let mut conditions = RestartConditions::default();
    let mut timeout = None;
    for (key, value) in &request {
        match key.as_str() {
            "schedule" => {
                return Err(text_response(
                    StatusCode::NOT_IMPLEMENTED,
                    "scheduled restarts are not supported by pgkeel yet",
                ));
            }
            "role" => {
                conditions.role = Some(match value.as_str() {
                    Some("primary" | "master") => Role::Primary,
                    Some("replica") => Role::Replica,
                    _ => {
                        return Err(bad(
                            "PostgreSQL role should be either primary, standby_leader, or replica"
                                .into(),
                        ));
                    }
                });
            }
            "postgres_version" => {
                let text = value
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or(value.to_string());
                conditions.below_version = Some(postgres_version_to_int(&text).map_err(bad)?);
            }
            "timeout" => {
                let seconds = match value {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().trim_end_matches('s').trim().parse().ok(),
                    _ => None,
                }
                .filter(|s| *s > 0 && *s <= 86_400);
                match seconds {
                    Some(s) => timeout = Some(Duration::from_secs(s)),
                    None => {
                        return Err(bad("Timeout should be a positive number of seconds".into()));
                    }
                }
            }
            "restart_pending" => conditions.only_if_pending = value.as_bool().unwrap_or(false),
            other => {
                return Err(bad(format!(
                    "Unknown filter for the scheduled restart: {}",
                    super::bounded(other)
                )));
            }
        }
    }
    Ok((conditions, timeout))
}

/// Patroni's `postgres_version_to_int`: `"15.2"` -> 150002, `"9.6.3"` -> 90603.
fn postgres_version_to_int(version: &str) -> Result<u32, String> {
    let invalid = || {
        format!(
            "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: {}",
            super::bounded(version)
        )
    };
    let parts: Vec<u32> = version
        .split('.')
        .map(|p| p.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| invalid())?;
    match parts.as_slice() {
        [major, minor] if *major >= 10 && *minor < 10_000 => Ok(major
            .checked_mul(10_000)
            .and_then(|m| m.checked_add(*minor))
            .ok_or_else(invalid)?),
        [major, minor, patch] if *major < 10 && *minor < 100 && *patch < 100 => {
            Ok(major * 10_000 + minor * 100 + patch)
        }
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_as_patroni_reads_them() {
        assert_eq!(postgres_version_to_int("15.2"), Ok(150002));
        assert_eq!(postgres_version_to_int("9.6.3"), Ok(90603));
        assert!(postgres_version_to_int("15").is_err());
        assert!(postgres_version_to_int("abc").is_err());
        assert!(postgres_version_to_int("99999999.1").is_err());
    }

    #[test]
    fn filters_are_checked_with_patronis_messages() {
        let (c, t) = parse(br#"{"role":"master","postgres_version":"16.1","timeout":"30s"}"#)
            .unwrap_or_else(|_| panic!("valid"));
        assert_eq!(c.role, Some(Role::Primary));
        assert_eq!(c.below_version, Some(160001));
        assert_eq!(t, Some(Duration::from_secs(30)));
        assert!(parse(b"").is_ok());
        for body in [
            r#"{"role":"boss"}"#,
            r#"{"timeout":-1}"#,
            r#"{"postgres_version":"x"}"#,
            r#"{"nope":1}"#,
            "[1]",
        ] {
            let r = parse(body.as_bytes());
            assert!(
                matches!(&r, Err(resp) if resp.status() == StatusCode::BAD_REQUEST),
                "{body}"
            );
        }
        assert!(matches!(
            parse(br#"{"schedule":"2030-01-01T00:00:00Z"}"#),
            Err(resp) if resp.status() == StatusCode::NOT_IMPLEMENTED
        ));
    }
}
