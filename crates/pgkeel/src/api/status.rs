//! `GET /patroni`: the node's status document, built from the published `NodeStatus` and the
//! WAL positions read at request time.

use super::model::{PatroniInfo, PatroniStatus, Xlog};
use super::{ApiState, json_response};
use crate::agent::published::NodeStatus;
use crate::postgres::WalNow;
use axum::http::StatusCode;
use axum::response::Response;
use pgkeel_ha::ha::PgState;
use pgkeel_ha::pg::ServerRole;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// `GET /patroni` always answers 200. The WAL positions are read live when the server answers
/// (peers compare them before a leader race; see [`crate::postgres::LiveWal`]).
pub(super) async fn get(state: &ApiState) -> Response {
    let mut status = state.status.borrow().clone();
    if let Some(live) = &state.live_wal
        && status.postgres.accepting_connections
        && let Some(now) = live.read().await
    {
        status = Arc::new(with_live_wal(&status, now));
    }
    json_response(StatusCode::OK, &patroni_status(&status))
}

/// `s` with the WAL positions read just now. Only when the server is still in the role the agent
/// published: right after a promotion or a demotion the document stays as published until the
/// next HA cycle, so role and positions never disagree.
pub fn with_live_wal(s: &NodeStatus, now: WalNow) -> NodeStatus {
    let mut out = s.clone();
    let pg = &mut out.postgres;
    match (pg.role, now.in_recovery) {
        (Some(ServerRole::Primary), false) => {
            pg.wal_position = now.current.or(pg.wal_position);
        }
        (Some(ServerRole::Replica), true) => {
            pg.receive_lsn = now.received.or(pg.receive_lsn);
            pg.replay_lsn = now.replayed.or(pg.replay_lsn);
            pg.wal_position = pg.receive_lsn.max(pg.replay_lsn);
            pg.wal_receiver = now.wal_receiver;
        }
        _ => {}
    }
    out
}

/// Builds the `/patroni` document as Patroni 4.1 does: the full form when PostgreSQL answered,
/// else only `state`, `role` and the flags.
pub fn patroni_status(s: &NodeStatus) -> PatroniStatus {
    let pg = &s.postgres;
    let cluster = s.cluster.as_ref();
    let paused = match cluster {
        Some(c) if c.config.is_some() => super::model::is_paused(c),
        _ => s.global.pause,
    };
    let standby_cluster = cluster.is_some_and(super::model::is_standby_cluster);
    let mut out = PatroniStatus {
        state: s.state.to_string(),
        postmaster_start_time: None,
        role: s.role.to_string(),
        server_version: None,
        xlog: None,
        timeline: None,
        replication_state: None,
        sync_standby: None,
        quorum_standby: None,
        detached: None,
        replication: None,
        pause: paused.then_some(true),
        cluster_unlocked: cluster.is_none_or(|c| c.leader.is_none()).then_some(true),
        dcs_last_seen: s
            .dcs_last_seen
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0),
        tags: s.tags.clone(),
        database_system_identifier: pg.sysid().map(str::to_string),
        pending_restart: (!pg.pending_restart.is_empty()).then_some(true),
        pending_restart_reason: pgkeel_ha::pg::PendingRestart::reasons(&pg.pending_restart),
        patroni: PatroniInfo {
            version: s.version.clone(),
            scope: s.scope.clone(),
            name: s.name.clone(),
        },
        scheduled_restart: s.scheduled_restart.as_ref().map(|r| {
            let mut shown = r.to_member_json();
            shown.remove("postmaster_start_time");
            shown
        }),
    };
    let answered = pg.running && pg.accepting_connections;
    let Some(role) = pg.role.filter(|_| answered) else {
        if s.state == PgState::Running {
            // Patroni: the status query failed although the server should be up.
            out.state = "unknown".into();
        }
        return out;
    };
    out.postmaster_start_time = s.postmaster_start_time.clone();
    out.server_version = pg.server_version;
    out.timeline = pg.timeline;
    match role {
        ServerRole::Primary => {
            out.role = "primary".into();
            out.xlog = Some(Xlog::Primary {
                location: pg.wal_position.map(|l| l.0).unwrap_or(0),
            });
            if !s.replication.is_empty() {
                out.replication = Some(s.replication.clone());
            }
        }
        ServerRole::Replica => {
            out.role = if standby_cluster {
                s.role.to_string()
            } else {
                "replica".into()
            };
            let replayed = pg.replay_lsn.map(|l| l.0).unwrap_or(0);
            out.xlog = Some(Xlog::Replica {
                received_location: pg.receive_lsn.map(|l| l.0).unwrap_or(replayed),
                replayed_location: replayed,
                replayed_timestamp: s.replayed_timestamp.clone(),
                paused: s.replay_paused,
            });
            if pg.streaming {
                out.replication_state = Some("streaming".into());
            }
            // Detached only once its WAL receiver is gone: until then WAL can still arrive
            // (found by the fault campaign: a voter whose settings no longer named the frozen
            // primary confirmed its commits after voting, and they were lost).
            if pg.following.is_none() && !pg.wal_receiver && !standby_cluster {
                out.detached = Some(true);
            }
            if let Some(r) = cluster.and_then(|c| super::model::sync_role(c, &s.name)) {
                if r == "quorum_standby" {
                    out.quorum_standby = Some(true);
                } else {
                    out.sync_standby = Some(true);
                }
            }
        }
    }
    out
}
