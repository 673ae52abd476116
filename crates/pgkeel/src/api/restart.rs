//! `POST /restart` and `DELETE /restart` (Patroni's `do_POST_restart`, `do_DELETE_restart`):
//! restart PostgreSQL on this node through the HA loop, now or at a scheduled time. The body
//! is optional; its fields are Patroni's (`schedule`, `role`, `postgres_version`,
//! `restart_pending`, `timeout`), checked here in the body's order with Patroni's messages;
//! the loop's core decides whether and when the restart runs. Now: 200 "restarted
//! successfully", 503 with the reason; with a `timeout`, 503 "restart failed" when the restart
//! has not ended within that many seconds (the core answers so; PostgreSQL is left starting). Scheduled: 202 "Restart scheduled", 409 when one is
//! already scheduled, 500 in pause. `DELETE`: 200 "scheduled restart deleted", 404 "no
//! restarts are scheduled".

use super::schedule::{iso_utc, parse_schedule};
use super::{ApiState, read_cluster, text_response};
use axum::http::StatusCode;
use axum::response::Response;
use pgkeel_ha::ha::{Answer, RequestKind, RestartConditions, Role, ScheduledRestart};
use serde_json::{Map, Value};
use std::time::Duration;

/// How long the loop may take to accept or refuse the request (it is woken at once; a cycle
/// in progress finishes first).
const ACCEPT_WITHIN: Duration = Duration::from_secs(15);

/// A parsed body: the filters, the timeout, and the schedule if any.
#[derive(Debug)]
struct Parsed {
    conditions: RestartConditions,
    timeout: Option<Duration>,
    /// The time (ms since the epoch) and the fields to publish with it.
    schedule: Option<(i64, Map<String, Value>)>,
}

/// `POST /restart` (auth checked by the caller).
pub(super) async fn post(state: &ApiState, body: &[u8]) -> Response {
    let request: Map<String, Value> = match super::optional_json_object(body) {
        Ok(r) => r,
        Err(response) => return response,
    };
    if request.contains_key("schedule") && paused(state).await {
        return text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Can't schedule restart in the paused state",
        );
    }
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let parsed = match parse(&request, now_ms) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let Some(requests) = &state.requests else {
        return text_response(StatusCode::SERVICE_UNAVAILABLE, "restart failed");
    };
    let Some((at_ms, filters)) = parsed.schedule else {
        // With a `timeout` the loop itself answers `restart failed` when it runs out (the
        // margin covers a cycle in progress then); without one, the agent's own bound.
        let done_within = match parsed.timeout {
            Some(t) => t.saturating_add(ACCEPT_WITHIN),
            None => state.restart_wait,
        };
        return super::loop_answer(
            requests
                .ask(
                    RequestKind::Restart(parsed.conditions),
                    ACCEPT_WITHIN,
                    done_within,
                )
                .await,
        );
    };
    let Some(schedule) = iso_utc(at_ms) else {
        return text_response(StatusCode::UNPROCESSABLE_ENTITY, UNPARSABLE);
    };
    let scheduled = ScheduledRestart {
        at_ms,
        schedule,
        conditions: parsed.conditions,
        filters,
        postmaster_start_time: None,
    };
    let answer = requests
        .ask(
            RequestKind::ScheduleRestart(scheduled),
            ACCEPT_WITHIN,
            ACCEPT_WITHIN,
        )
        .await;
    match answer {
        Ok(Answer::Done { ok: true, message }) => text_response(StatusCode::ACCEPTED, message),
        Ok(Answer::Refused(message)) => text_response(StatusCode::CONFLICT, message),
        other => super::loop_answer(other),
    }
}

/// `DELETE /restart` (auth checked by the caller).
pub(super) async fn delete(state: &ApiState) -> Response {
    let Some(requests) = &state.requests else {
        return text_response(StatusCode::NOT_FOUND, "no restarts are scheduled");
    };
    let answer = requests
        .ask(
            RequestKind::CancelScheduledRestart,
            ACCEPT_WITHIN,
            ACCEPT_WITHIN,
        )
        .await;
    match answer {
        Ok(Answer::Done { ok: true, message }) => text_response(StatusCode::OK, message),
        Ok(Answer::Refused(message)) => text_response(StatusCode::NOT_FOUND, message),
        other => super::loop_answer(other),
    }
}

/// The cluster is paused, as the DCS says now (the agent's last view when it does not answer).
async fn paused(state: &ApiState) -> bool {
    match read_cluster(state.dcs.as_ref(), &state.layout).await {
        Ok(cluster) => super::model::is_paused(&cluster),
        Err(_) => state.status.borrow().global.pause,
    }
}

/// Patroni's message for a time it cannot read.
const UNPARSABLE: &str =
    "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601";

/// The body's fields in the body's order, or the 400/422 answer Patroni gives for the first
/// bad one.
#[allow(clippy::result_large_err)]
fn parse(request: &Map<String, Value>, now_ms: i64) -> Result<Parsed, Response> {
    let bad = |message: String| text_response(StatusCode::BAD_REQUEST, message);
    let mut conditions = RestartConditions::default();
    let mut timeout = None;
    let mut at_ms = None;
    let mut filters = Map::new();
    for (key, value) in request {
        match key.as_str() {
            "schedule" => {
                let Some(text) = value.as_str() else {
                    return Err(text_response(StatusCode::UNPROCESSABLE_ENTITY, UNPARSABLE));
                };
                at_ms = Some(
                    parse_schedule(text, "restart", now_ms)
                        .map_err(|(code, message)| text_response(code, message))?,
                );
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
                filters.insert(key.clone(), value.clone());
            }
            "postgres_version" => {
                let text = value
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or(value.to_string());
                conditions.below_version = Some(postgres_version_to_int(&text).map_err(bad)?);
                filters.insert(key.clone(), value.clone());
            }
            "timeout" => {
                let seconds = match value {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().trim_end_matches('s').trim().parse().ok(),
                    _ => None,
                }
                .filter(|s| *s > 0 && *s <= 86_400);
                match seconds {
                    Some(s) => {
                        timeout = Some(Duration::from_secs(s));
                        conditions.timeout_s = Some(s);
                        filters.insert(key.clone(), Value::from(s));
                    }
                    None => {
                        return Err(bad("Timeout should be a positive number of seconds".into()));
                    }
                }
            }
            // Patroni: the key's presence asks for it, whatever its value.
            "restart_pending" => {
                conditions.only_if_pending = true;
                filters.insert(key.clone(), value.clone());
            }
            other => {
                return Err(bad(format!(
                    "Unknown filter for the scheduled restart: {}",
                    super::bounded(other)
                )));
            }
        }
    }
    Ok(Parsed {
        conditions,
        timeout,
        schedule: at_ms.map(|at| (at, filters)),
    })
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

    const NOW: i64 = 1_796_223_600_000; // 2026-12-02T15:00:00Z

    #[allow(clippy::result_large_err)]
    fn parsed(body: &str) -> Result<Parsed, Response> {
        let request = match serde_json::from_str::<Value>(body) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        parse(&request, NOW)
    }

    #[test]
    fn filters_are_checked_with_patronis_messages() {
        let p = parsed(r#"{"role":"master","postgres_version":"16.1","timeout":"30s"}"#)
            .unwrap_or_else(|_| panic!("valid"));
        assert_eq!(p.conditions.role, Some(Role::Primary));
        assert_eq!(p.conditions.below_version, Some(160001));
        assert_eq!(p.timeout, Some(Duration::from_secs(30)));
        assert_eq!(p.conditions.timeout_s, Some(30), "the loop enforces it");
        assert!(p.schedule.is_none());
        assert!(parsed("{}").is_ok());
        for body in [
            r#"{"role":"boss"}"#,
            r#"{"timeout":-1}"#,
            r#"{"postgres_version":"x"}"#,
            r#"{"nope":1}"#,
        ] {
            let r = parsed(body);
            assert!(
                matches!(&r, Err(resp) if resp.status() == StatusCode::BAD_REQUEST),
                "{body}"
            );
        }
        // Patroni reads `restart_pending` by its presence.
        let p = parsed(r#"{"restart_pending":false}"#).unwrap_or_else(|_| panic!("valid"));
        assert!(p.conditions.only_if_pending);
    }

    #[test]
    fn schedules_need_a_zone_and_a_future_time_and_keep_their_filters() {
        let code = |body: &str| parsed(body).err().map(|r| r.status());
        assert_eq!(
            code(r#"{"schedule":"2026-12-02T16:00:00"}"#),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            code(r#"{"schedule":"2026-12-02T14:00:00+00:00"}"#),
            Some(StatusCode::UNPROCESSABLE_ENTITY)
        );
        assert_eq!(
            code(r#"{"schedule":"soon"}"#),
            Some(StatusCode::UNPROCESSABLE_ENTITY)
        );
        assert_eq!(
            code(r#"{"schedule":7}"#),
            Some(StatusCode::UNPROCESSABLE_ENTITY)
        );
        let p = parsed(
            r#"{"schedule":"2026-12-02T17:00:00+01:00","postgres_version":"18.1","timeout":"60"}"#,
        )
        .unwrap_or_else(|_| panic!("valid"));
        let (at, filters) = p.schedule.unwrap_or_else(|| panic!("scheduled"));
        assert_eq!(at, NOW + 3_600_000);
        assert_eq!(
            Value::Object(filters),
            serde_json::json!({"postgres_version": "18.1", "timeout": 60})
        );
    }
}
