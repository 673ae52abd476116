//! `POST /switchover`, `POST /failover` and `DELETE /switchover` (Patroni's `do_POST_failover`,
//! `do_POST_switchover`, `do_DELETE_switchover`): the request is checked in Patroni's order with
//! Patroni's texts and codes, then written to the `failover` key exactly as Patroni writes it
//! (`{"leader":..,"member":..,"scheduled_at":..}`); the HA loops carry it out
//! (`pgkeel_ha` `rules/switchover.rs`). An immediate request is followed until the leader key
//! changes, for at most `max(10, loop_wait) * 2` seconds.

use super::schedule::{iso_utc, parse_schedule};
use super::{ApiState, bounded, read_cluster, text_response};
use axum::http::StatusCode;
use axum::response::Response;
use pgkeel_ha::cluster::{Cluster, GlobalConfig};
use pgkeel_ha::ha::PeerStatus;
use pgkeel_ha::keys::codec::encode_failover;
use serde_json::Value;
use std::time::Duration;

/// Which endpoint was called: the names Patroni uses in its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `POST /switchover`: from a named leader, to a candidate or any healthy member.
    Switchover,
    /// `POST /failover`: to a named candidate, with or without a leader.
    Failover,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Switchover => "switchover",
            Kind::Failover => "failover",
        }
    }
    fn title(self) -> &'static str {
        match self {
            Kind::Switchover => "Switchover",
            Kind::Failover => "Failover",
        }
    }
    /// `action[:-4]`: `switch`, `fail` (as in "switched over", "failed over").
    fn stem(self) -> &'static str {
        match self {
            Kind::Switchover => "switch",
            Kind::Failover => "fail",
        }
    }
}

/// The body's fields (`candidate` or `member`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Body {
    leader: Option<String>,
    candidate: Option<String>,
    scheduled_at: Option<String>,
}

/// A refusal: status and Patroni's text.
type Refusal = (StatusCode, String);

/// Reads the body as Patroni's `_read_json_content` (a non-empty JSON object), each field a
/// string (or null / empty: absent). Anything else is 400 with the reason.
fn parse_body(body: &[u8]) -> Result<Body, Refusal> {
    let bad = |why: String| (StatusCode::BAD_REQUEST, why);
    let v: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("body is not valid JSON: {e}")))?;
    let Value::Object(o) = v else {
        return Err(bad("body is not a JSON object".into()));
    };
    if o.is_empty() {
        return Err(bad("body is an empty JSON object".into()));
    }
    let field = |k: &str| -> Result<Option<String>, Refusal> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(format!("{k} must be a string"))),
        }
    };
    Ok(Body {
        leader: field("leader")?,
        candidate: field("candidate")?.or(field("member")?),
        scheduled_at: field("scheduled_at")?,
    })
}

/// `POST /switchover` or `POST /failover` (auth checked by the caller).
pub(super) async fn post(state: &ApiState, body: &[u8], kind: Kind) -> Response {
    match handle(state, body, kind).await {
        Ok((code, text)) | Err((code, text)) => text_response(code, text),
    }
}

async fn handle(state: &ApiState, body: &[u8], kind: Kind) -> Result<Refusal, Refusal> {
    let req = parse_body(body)?;
    let cluster = read_cluster(state.dcs.as_ref(), &state.layout)
        .await
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let gc = cluster
        .config
        .as_ref()
        .map(|c| GlobalConfig::from_map(&c.data))
        .unwrap_or_default();
    tracing::info!(
        "received {} request with leader={} candidate={} scheduled_at={}",
        kind.name(),
        bounded(req.leader.as_deref().unwrap_or("None")),
        bounded(req.candidate.as_deref().unwrap_or("None")),
        bounded(req.scheduled_at.as_deref().unwrap_or("None")),
    );
    let bad = |text: &str| Err((StatusCode::BAD_REQUEST, text.to_string()));
    if kind == Kind::Failover && req.candidate.is_none() {
        return bad("Failover could be performed only to a specific candidate");
    }
    if kind == Kind::Switchover && req.leader.is_none() {
        return bad("Switchover could be performed only from a specific leader");
    }
    let mut scheduled = None;
    if let Some(at) = &req.scheduled_at {
        if kind == Kind::Failover {
            return bad("Failover can't be scheduled");
        }
        if gc.pause {
            return bad("Can't schedule switchover in the paused state");
        }
        let now = jiff::Timestamp::now().as_millisecond();
        scheduled = Some(parse_schedule(at, kind.name(), now)?);
    }
    if gc.pause && req.candidate.is_none() {
        return bad("Switchover is possible only to a specific candidate in a paused state");
    }
    let kind = if kind == Kind::Failover && req.leader.is_some() {
        tracing::warn!(
            "received failover request with leader specified - performing switchover instead"
        );
        Kind::Switchover
    } else {
        kind
    };
    if req.leader == req.candidate {
        return bad("Switchover target and source are the same");
    }
    if scheduled.is_none()
        && let Some(why) = failover_impossible(&cluster, &req, kind).await
    {
        return Err((StatusCode::PRECONDITION_FAILED, why));
    }
    let scheduled_at = match scheduled {
        Some(ms) => Some(iso_utc(ms).ok_or_else(|| {
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"
                    .to_string(),
            )
        })?),
        None => None,
    };
    let value = encode_failover(
        req.leader.as_deref(),
        req.candidate.as_deref(),
        scheduled_at.as_deref(),
    );
    if let Err(e) = state
        .dcs
        .put(&state.layout.failover(), value.as_bytes(), None)
        .await
    {
        tracing::warn!("failed to write failover key into DCS: {e}");
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "failed to write failover key into DCS".into(),
        ));
    }
    state.wake_agent.notify_one();
    if scheduled.is_some() {
        return Ok((StatusCode::ACCEPTED, format!("{} scheduled", kind.title())));
    }
    Ok(poll_result(
        state,
        &cluster,
        req.candidate.as_deref(),
        kind,
        gc.loop_wait,
    )
    .await)
}

/// Patroni's `poll_failover_result`: until the leader key names someone else (200), the key
/// is gone without that (503 failed), or `max(10, loop_wait) * 2` seconds passed (503).
async fn poll_result(
    state: &ApiState,
    before: &Cluster,
    candidate: Option<&str>,
    kind: Kind,
    loop_wait: u64,
) -> Refusal {
    let old_leader = before.leader_name().map(str::to_string);
    let timeout = Duration::from_secs(loop_wait.max(10).saturating_mul(2));
    let start = tokio::time::Instant::now();
    while start.elapsed() < timeout {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(c) = read_cluster(state.dcs.as_ref(), &state.layout).await else {
            continue;
        };
        if let Some(new) = c.leader_name()
            && Some(new) != old_leader.as_deref()
        {
            let text = match candidate {
                None => format!("Successfully {}ed over to \"{new}\"", kind.stem()),
                Some(c) if c == new => format!("Successfully {}ed over to \"{new}\"", kind.stem()),
                Some(c) => format!(
                    "{}ed over to \"{new}\" instead of \"{c}\"",
                    kind.title().trim_end_matches("over")
                ),
            };
            return (StatusCode::OK, text);
        }
        if c.failover.is_none() {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{} failed", kind.title()),
            );
        }
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("{} status unknown", kind.title()),
    )
}

/// The API's `is_failover_possible`: why the request cannot be carried out, if it cannot.
async fn failover_impossible(cluster: &Cluster, req: &Body, kind: Kind) -> Option<String> {
    let action = kind.name();
    if let Some(l) = &req.leader
        && cluster.leader_name() != Some(l.as_str())
    {
        return Some("leader name does not match".into());
    }
    // Quorum mode runs as priority mode in this version (see rules/sync_replication.rs).
    let synchronous = cluster.config.as_ref().is_some_and(|c| {
        GlobalConfig::from_map(&c.data)
            .synchronous_mode
            .is_synchronous()
    });
    let listed = |name: &str| cluster.sync.as_ref().is_some_and(|s| s.lists(name));
    let members: Vec<_> = match &req.candidate {
        Some(c) => {
            if kind == Kind::Switchover && synchronous && !listed(c) {
                return Some("candidate name does not match with sync_standby".into());
            }
            let m: Vec<_> = cluster.members.iter().filter(|m| &m.name == c).collect();
            if m.is_empty() {
                return Some("candidate does not exists".into());
            }
            m
        }
        None if synchronous => {
            let m: Vec<_> = cluster.members.iter().filter(|m| listed(&m.name)).collect();
            if m.is_empty() {
                return Some(format!(
                    "{action} is not possible: can not find sync_standby"
                ));
            }
            m
        }
        None => {
            let m: Vec<_> = cluster
                .members
                .iter()
                .filter(|m| {
                    cluster.leader.is_none()
                        || (Some(m.name.as_str()) != cluster.leader_name() && m.api_url.is_some())
                })
                .collect();
            if m.is_empty() {
                return Some(format!(
                    "{action} is not possible: cluster does not have members except leader"
                ));
            }
            m
        }
    };
    // A rare request: its own client (Patroni's peer requests: 2 s, no retries).
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    let probes = members.iter().map(|m| {
        let (name, url) = (m.name.clone(), m.api_url.clone());
        let http = http.clone();
        async move {
            let doc = match url {
                Some(url) => {
                    async {
                        let r = http
                            .get(&url)
                            .timeout(Duration::from_secs(2))
                            .send()
                            .await
                            .ok()?;
                        r.json::<Value>().await.ok()
                    }
                    .await
                }
                None => None,
            };
            PeerStatus::from_patroni_document(&name, doc.as_ref())
        }
    });
    let statuses = futures_util::future::join_all(probes).await;
    if statuses.iter().any(|s| s.reachable && !s.nofailover) {
        return None;
    }
    Some(format!(
        "{action} is not possible: no good candidates have been found"
    ))
}

/// `DELETE /switchover` (auth checked by the caller): 200 when a scheduled switchover was
/// removed, 404 when none is scheduled, 409 when the key changed meanwhile.
pub(super) async fn delete(state: &ApiState) -> Response {
    let cluster = match read_cluster(state.dcs.as_ref(), &state.layout).await {
        Ok(c) => c,
        Err(e) => return text_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let Some(f) = cluster.failover.filter(|f| f.scheduled_at.is_some()) else {
        return text_response(StatusCode::NOT_FOUND, "no switchover is scheduled");
    };
    match state
        .dcs
        .put_if_mod_revision(&state.layout.failover(), f.mod_revision, b"{}")
        .await
    {
        Ok(true) => text_response(StatusCode::OK, "scheduled switchover deleted"),
        Ok(false) => text_response(StatusCode::CONFLICT, "Conflict"),
        Err(e) => text_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_read_as_patroni_reads_them_and_bad_ones_say_why() {
        assert_eq!(
            parse_body(br#"{"leader":"a","member":"b","scheduled_at":null}"#),
            Ok(Body {
                leader: Some("a".into()),
                candidate: Some("b".into()),
                scheduled_at: None
            })
        );
        let b = parse_body(br#"{"leader":"a","candidate":"c","member":"b"}"#).unwrap();
        assert_eq!(b.candidate.as_deref(), Some("c"));
        for (body, why) in [
            ("", "body is not valid JSON"),
            ("[1]", "body is not a JSON object"),
            ("{}", "body is an empty JSON object"),
            (r#"{"leader":1}"#, "leader must be a string"),
            (r#"{"candidate":["x"]}"#, "candidate must be a string"),
        ] {
            let (code, text) = parse_body(body.as_bytes()).unwrap_err();
            assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
            assert!(text.starts_with(why), "{body}: {text}");
        }
    }

    #[test]
    fn schedules_need_a_zone_and_a_future_time() {
        let now = 1_796_223_600_000; // 2026-12-02T15:00:00Z
        assert_eq!(
            parse_schedule("2026-12-02T16:00:00+01:00", "switchover", now - 1),
            Ok(now)
        );
        assert_eq!(
            parse_schedule("2026-12-02T15:00:00", "switchover", now),
            Err((
                StatusCode::BAD_REQUEST,
                "Timezone information is mandatory for the scheduled switchover".into()
            ))
        );
        assert_eq!(
            parse_schedule("2026-12-02T14:59:59Z", "switchover", now).map_err(|e| e.0),
            Err(StatusCode::UNPROCESSABLE_ENTITY)
        );
        assert_eq!(
            parse_schedule("soon", "switchover", now).map_err(|e| e.1),
            Err("Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601".into())
        );
        assert_eq!(
            iso_utc(now + 250).as_deref(),
            Some("2026-12-02T15:00:00.250000+00:00")
        );
        assert_eq!(iso_utc(now).as_deref(), Some("2026-12-02T15:00:00+00:00"));
    }
}
