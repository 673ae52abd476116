//! Health checks: every GET/HEAD/OPTIONS path without its own handler that names a check,
//! matched by substring like Patroni's `do_GET` ([`HealthCheck::from_path`]), plus
//! `/liveness` and `/readiness`.
//!
//! Answers come only from the published `NodeStatus` (never PostgreSQL or the DCS), so a
//! load balancer polling every second costs nothing and never blocks.

use super::model::{PatroniStatus, is_standby_cluster, sync_role};
use super::status::patroni_status;
use super::{ApiState, json_response, status_only};
use crate::agent::published::NodeStatus;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The query string, as `(key, value)` pairs in order.
pub(super) type Query = [(String, String)];

/// Which health check a path asks for. Patroni matches the path by substring, in this order
/// (`/xprimaryx` is a primary check); a path that matches none is not a health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheck {
    /// `/standby-leader`, `/standby_leader`.
    StandbyLeader,
    /// `/leader`.
    Leader,
    /// `/`, `/primary`, `/master`, `/read-write`.
    Primary,
    /// `/replica`.
    Replica,
    /// `/read-only` (not its `-sync` / `-quorum` forms).
    ReadOnly,
    /// `/health`.
    Health,
    /// `/sync`, `/synchronous`.
    Sync,
    /// `/quorum`.
    Quorum,
    /// `/async`, `/asynchronous`.
    Async,
    /// `/read-only-quorum`.
    ReadOnlyQuorum,
    /// `/read-only-sync`, `/read-only-synchronous`.
    ReadOnlySync,
}

impl HealthCheck {
    /// The check `path` asks for, matched as Patroni's `do_GET` does; `None` for any other path.
    pub fn from_path(path: &str) -> Option<Self> {
        let path = if path == "/" { "/primary" } else { path };
        let has = |word: &str| path.contains(word);
        Some(if has("standby_leader") || has("standby-leader") {
            Self::StandbyLeader
        } else if has("leader") {
            Self::Leader
        } else if has("master") || has("primary") || has("read-write") {
            Self::Primary
        } else if has("replica") {
            Self::Replica
        } else if has("read-only") && !has("sync") && !has("quorum") {
            Self::ReadOnly
        } else if has("health") {
            Self::Health
        } else {
            match path {
                "/sync" | "/synchronous" => Self::Sync,
                "/quorum" => Self::Quorum,
                "/async" | "/asynchronous" => Self::Async,
                "/read-only-quorum" => Self::ReadOnlyQuorum,
                "/read-only-sync" | "/read-only-synchronous" => Self::ReadOnlySync,
                _ => return None,
            }
        })
    }

    /// Leader and primary checks ignore `?tag_*` filters, as in Patroni.
    fn ignores_tags(self) -> bool {
        matches!(self, Self::StandbyLeader | Self::Leader | Self::Primary)
    }
}

/// The health-check handler for `check`. With `status_only` the answer is the status line
/// alone (HEAD/OPTIONS, for HAProxy).
pub(super) fn check(
    state: &ApiState,
    check: HealthCheck,
    query: &Query,
    status_only_: bool,
) -> Response {
    let status = state.status.borrow().clone();
    let doc = patroni_status(&status);
    let code = health_code(&status, &doc, check, query, Instant::now());
    if status_only_ {
        status_only(code)
    } else {
        json_response(code, &doc)
    }
}

/// First value of `key` in the query.
fn first<'a>(query: &'a Query, key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Parses a byte amount like Patroni's `parse_int(value, 'B')`: an integer or decimal number
/// with an optional unit `B`, `kB`, `MB`, `GB`, `TB` (1024-based). `None` when unreadable.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => return None,
    };
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult);
    }
    let f: f64 = num.parse().ok()?;
    let v = (f * mult as f64).round();
    (v.is_finite() && v >= 0.0 && v < u64::MAX as f64).then_some(v as u64)
}

/// Patroni's view of a tag value in `?tag_<k>=<v>`: strings as-is, anything else
/// `str(v).lower()`.
fn tag_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string().to_lowercase(),
    }
}

fn code(ok: bool) -> StatusCode {
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// The status code of a health check at `path`, as Patroni 4.1 computes it.
pub fn health_code(
    s: &NodeStatus,
    doc: &PatroniStatus,
    check: HealthCheck,
    query: &Query,
    now: Instant,
) -> StatusCode {
    let cluster = s.cluster.as_ref();
    let role = doc.role.as_str();
    let running = doc.state == "running";

    let optime = cluster.and_then(|c| c.status.optime).unwrap_or(0);
    let leader_optime = optime.max(s.latest_end_lsn.unwrap_or(0));
    let replayed = doc
        .xlog
        .as_ref()
        .map(|x| x.replayed_location())
        .unwrap_or(0);
    let max_lag = first(query, "lag")
        .and_then(parse_bytes)
        .unwrap_or(u64::MAX);
    let lagging = leader_optime > 0 && leader_optime > replayed.saturating_add(max_lag);
    let state_matches = first(query, "replication_state")
        .is_none_or(|want| doc.replication_state.as_deref() == Some(want));
    let replica_ok = !pgkeel_ha::cluster::tag_is_true(s.tags.get("noloadbalance"))
        && !lagging
        && role == "replica"
        && running
        && state_matches;

    let (leader_ok, primary_ok, standby_leader_ok) = if cluster.is_none() && doc.pause.is_some() {
        (
            matches!(role, "primary" | "standby_leader"),
            role == "primary",
            role == "standby_leader",
        )
    } else if s.is_leader(now) {
        if cluster.is_some_and(is_standby_cluster) {
            (true, false, matches!(role, "replica" | "standby_leader"))
        } else {
            (true, true, false)
        }
    } else {
        (false, false, false)
    };
    // In a standby cluster the leader is never a healthy "replica".
    let replica_ok = replica_ok && (primary_ok || !leader_ok);

    let ignore_tags = check.ignores_tags();
    let ok = match check {
        HealthCheck::StandbyLeader => standby_leader_ok,
        HealthCheck::Leader => leader_ok,
        HealthCheck::Primary => primary_ok,
        HealthCheck::Replica => replica_ok,
        HealthCheck::ReadOnly => primary_ok || standby_leader_ok || replica_ok,
        HealthCheck::Health => running,
        // The synchronous-role checks need the DCS view (the `sync` key).
        _ if cluster.is_none() => false,
        sync_check => {
            let sync = cluster.and_then(|c| sync_role(c, &s.name));
            let is_sync = sync == Some("sync_standby");
            let is_quorum = sync == Some("quorum_standby");
            match sync_check {
                HealthCheck::Sync => is_sync && replica_ok,
                HealthCheck::Quorum => is_quorum && replica_ok,
                HealthCheck::Async => !is_sync && !is_quorum && replica_ok,
                HealthCheck::ReadOnlyQuorum => {
                    primary_ok || standby_leader_ok || (is_quorum && replica_ok)
                }
                _ => primary_ok || standby_leader_ok || (is_sync && replica_ok),
            }
        }
    };

    if ok && !ignore_tags {
        for (k, want) in query {
            let Some(tag) = k.strip_prefix("tag_") else {
                continue;
            };
            match s.tags.get(tag) {
                Some(v) if tag_text(v) == *want => {}
                _ => return StatusCode::SERVICE_UNAVAILABLE,
            }
        }
    }
    code(ok)
}

/// `GET /liveness`: 200 while the HA loop keeps cycling (or in maintenance mode).
pub(super) fn liveness(state: &ApiState) -> Response {
    let s = state.status.borrow().clone();
    status_only(code(is_alive(&s, Instant::now())))
}

/// Patroni: alive if paused or `next_run + ttl * (1 if running primary else 2) > now`.
pub fn is_alive(s: &NodeStatus, now: Instant) -> bool {
    let factor = if s.postgres.is_running_primary() {
        1
    } else {
        2
    };
    let threshold = Duration::from_secs(s.global.ttl.saturating_mul(factor));
    s.global.pause
        || s.next_cycle_due
            .checked_add(threshold)
            .is_none_or(|t| t > now)
}

/// `GET /readiness[?lag=&mode=apply|write]`.
pub(super) fn readiness(state: &ApiState, query: &Query) -> Response {
    let s = state.status.borrow().clone();
    status_only(code(readiness_failure(&s, query, Instant::now()).is_none()))
}

/// Why the node is not ready, or `None` when it is (Patroni's `_readiness`).
pub fn readiness_failure(s: &NodeStatus, query: &Query, now: Instant) -> Option<String> {
    if s.is_leader(now) {
        return None;
    }
    if s.state != pgkeel_ha::ha::PgState::Running {
        return Some("PostgreSQL is not running".into());
    }
    let doc = patroni_status(s);
    if doc.replication_state.as_deref() != Some("streaming") {
        return Some("PostgreSQL replication state is not streaming".into());
    }
    let latest_end_lsn = s.latest_end_lsn.unwrap_or(0);
    if s.cluster.is_none() && latest_end_lsn == 0 {
        return Some("DCS is not accessible".into());
    }
    let optime = s
        .cluster
        .as_ref()
        .and_then(|c| c.status.optime)
        .unwrap_or(0);
    let leader_optime = optime.max(latest_end_lsn);
    let write = first(query, "mode") == Some("write");
    let location = doc
        .xlog
        .as_ref()
        .map(|x| {
            if write {
                x.received_location()
            } else {
                x.replayed_location()
            }
        })
        .unwrap_or(0);
    let lag = leader_optime.saturating_sub(location);
    let max = first(query, "lag")
        .and_then(parse_bytes)
        .unwrap_or(s.global.maximum_lag_on_failover);
    (lag > max).then(|| {
        let mode = if write { "write" } else { "apply" };
        format!("Replication {mode} lag {lag} exceeds maximum allowable {max}")
    })
}
