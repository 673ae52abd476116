//! Scheduled restarts (`POST /restart` with `schedule`, `DELETE /restart`): remembered by the
//! node, published in its member key, run when due with the filters checked then, dropped when
//! stale or when the server restarted meanwhile, left waiting in pause.
mod support;

use pgkeel_ha::ha::{
    Action, Answer, MemberIdentity, RequestKind, RestartConditions, Role, ScheduledRestart,
    TaskKind, WARNING_NOTE,
};
use pgkeel_ha::time::MonoTime;
use serde_json::{Value, json};
use support::*;

const STARTED: &str = "2026-12-03 10:00:00.000000+00:00";

fn replica() -> pgkeel_ha::pg::LocalPostgres {
    let mut l = local_replica_of("n1");
    l.postmaster_start_time = Some(STARTED.into());
    l
}

fn primary() -> pgkeel_ha::pg::LocalPostgres {
    let mut l = local_primary();
    l.postmaster_start_time = Some(STARTED.into());
    l
}

fn cluster(pause: bool) -> ClusterBuilder {
    ClusterBuilder::initialized()
        .three_nodes_led_by("n1")
        .config(json!({"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "pause": pause}))
}

fn replica_obs() -> ObsBuilder {
    obs()
        .cluster(cluster(false))
        .fresh_lease("n2")
        .local(replica())
}

/// A restart scheduled `in_ms` after the tests' wall-clock now.
fn at(in_ms: i64, conditions: RestartConditions) -> ScheduledRestart {
    let mut filters = serde_json::Map::new();
    if let Some(role) = conditions.role {
        filters.insert("role".into(), Value::from(role.to_string()));
    }
    ScheduledRestart {
        at_ms: WALL_NOW_MS + in_ms,
        schedule: format!("in {in_ms} ms"),
        conditions,
        filters,
        postmaster_start_time: None,
    }
}

/// A node that publishes its member key.
fn publishing(name: &str) -> pgkeel_ha::Ha {
    ha_with(name, |c| {
        c.member = Some(MemberIdentity {
            conn_url: "postgres://10.0.0.2:5432/postgres".into(),
            api_url: "http://10.0.0.2:8008/patroni".into(),
            tags: Default::default(),
            version: "4.1.4".into(),
        })
    })
}

fn restarts(d: &pgkeel_ha::Decision) -> usize {
    d.actions
        .iter()
        .filter(|a| matches!(a, Action::StartTask(TaskKind::Restart { .. })))
        .count()
}

#[test]
fn a_scheduled_restart_waits_for_its_time_and_then_restarts_the_replica() {
    let mut n2 = publishing("n2");
    let d = n2.step(
        &replica_obs()
            .request(
                1,
                RequestKind::ScheduleRestart(at(60_000, Default::default())),
            )
            .build(),
    );
    assert_eq!(
        d.answers,
        [(
            1,
            Answer::Done {
                ok: true,
                message: "Restart scheduled".into()
            }
        )]
    );
    assert_eq!(restarts(&d), 0, "{d:?}");
    // Published with the server's start time, as Patroni's member key has it.
    let member = d.member.as_ref().expect("member key written");
    let published = member
        .member
        .scheduled_restart
        .as_ref()
        .expect("scheduled_restart published");
    assert_eq!(published["schedule"], json!("in 60000 ms"));
    assert_eq!(published["postmaster_start_time"], json!(STARTED));
    // Far away: Patroni's "Awaiting restart" line, the agent is woken at the time.
    assert!(
        d.notes
            .iter()
            .any(|n| n == "Awaiting restart at in 60000 ms (in 60 seconds)"),
        "{:?}",
        d.notes
    );
    assert_eq!(d.wake_at, Some(MonoTime(NOW + 60_000)));
    // A second schedule is refused while one waits.
    let d = n2.step(
        &replica_obs()
            .request(
                2,
                RequestKind::ScheduleRestart(at(90_000, Default::default())),
            )
            .build(),
    );
    assert_eq!(
        d.answers,
        [(
            2,
            Answer::Refused("Another restart is already scheduled".into())
        )]
    );
    // Due: the restart runs (following the leader), once.
    let due = replica_obs().now(NOW + 60_000).wall_offset(60_000).build();
    let d = n2.step(&due);
    assert_eq!(restarts(&d), 1, "{d:?}");
    assert!(d.actions.contains(&Action::StartTask(TaskKind::Restart {
        as_primary: false,
        follow: Some("n1".into())
    })));
    assert_eq!(d.status, "restart initiated");
    assert!(
        d.notes
            .iter()
            .any(|n| n == "Manual scheduled restart at in 60000 ms")
    );
    assert!(n2.memory().scheduled_restart.is_none());
    let d = n2.step(&due);
    assert_eq!(restarts(&d), 0, "ran twice: {d:?}");
}

#[test]
fn a_scheduled_restart_can_be_cancelled_once() {
    let mut n2 = publishing("n2");
    n2.step(
        &replica_obs()
            .request(
                1,
                RequestKind::ScheduleRestart(at(60_000, Default::default())),
            )
            .build(),
    );
    let d = n2.step(
        &replica_obs()
            .request(2, RequestKind::CancelScheduledRestart)
            .build(),
    );
    assert_eq!(
        d.answers,
        [(
            2,
            Answer::Done {
                ok: true,
                message: "scheduled restart deleted".into()
            }
        )]
    );
    let published = d.member.expect("member key rewritten");
    assert_eq!(published.member.scheduled_restart, None);
    let d = n2.step(
        &replica_obs()
            .request(3, RequestKind::CancelScheduledRestart)
            .build(),
    );
    assert_eq!(
        d.answers,
        [(3, Answer::Refused("no restarts are scheduled".into()))]
    );
    let d = n2.step(&replica_obs().now(NOW + 60_000).wall_offset(60_000).build());
    assert_eq!(restarts(&d), 0, "a cancelled restart ran: {d:?}");
}

#[test]
fn the_filters_are_checked_when_the_time_comes() {
    let mut n2 = ha("n2");
    let primaries_only = RestartConditions {
        role: Some(Role::Primary),
        ..Default::default()
    };
    n2.step(
        &replica_obs()
            .request(1, RequestKind::ScheduleRestart(at(5_000, primaries_only)))
            .build(),
    );
    let d = n2.step(&replica_obs().now(NOW + 5_000).wall_offset(5_000).build());
    assert_eq!(restarts(&d), 0, "{d:?}");
    let warning = format!("{WARNING_NOTE}Scheduled restart: restart conditions are not satisfied");
    assert!(d.notes.contains(&warning), "{:?}", d.notes);
    assert!(n2.memory().scheduled_restart.is_none());
}

#[test]
fn the_leader_restarts_as_a_primary_at_its_time() {
    let mut n1 = ha("n1");
    let leader = || {
        obs()
            .cluster(cluster(false))
            .fresh_lease("n1")
            .local(primary())
    };
    n1.step(
        &leader()
            .request(
                1,
                RequestKind::ScheduleRestart(at(1_000, Default::default())),
            )
            .build(),
    );
    let d = n1.step(&leader().now(NOW + 1_000).wall_offset(1_000).build());
    assert!(
        d.actions.contains(&Action::StartTask(TaskKind::Restart {
            as_primary: true,
            follow: None
        })),
        "{d:?}"
    );
}

#[test]
fn a_stale_schedule_is_dropped_and_a_restart_meanwhile_cancels_it() {
    let mut n2 = ha("n2");
    n2.step(
        &replica_obs()
            .request(
                1,
                RequestKind::ScheduleRestart(at(1_000, Default::default())),
            )
            .build(),
    );
    // 16 s late with loop_wait 10: more than 1.5 loop_wait, so stale.
    let d = n2.step(&replica_obs().now(NOW + 17_000).wall_offset(17_000).build());
    assert_eq!(restarts(&d), 0, "{d:?}");
    assert!(
        d.notes.contains(&format!(
            "{WARNING_NOTE}Found a stale restart value, cleaning up: in 1000 ms"
        )),
        "{:?}",
        d.notes
    );
    assert!(n2.memory().scheduled_restart.is_none());

    let mut n2 = ha("n2");
    n2.step(
        &replica_obs()
            .request(
                1,
                RequestKind::ScheduleRestart(at(60_000, Default::default())),
            )
            .build(),
    );
    let mut restarted = replica();
    restarted.postmaster_start_time = Some("2026-12-03 10:05:00.000000+00:00".into());
    let d = n2.step(&replica_obs().local(restarted).build());
    assert!(
        d.notes.iter().any(|n| n
            == "Cancelling scheduled restart: postgres restart has already happened at 2026-12-03 10:05:00.000000+00:00"),
        "{:?}",
        d.notes
    );
    assert!(n2.memory().scheduled_restart.is_none());
}

#[test]
fn in_pause_a_due_restart_waits_without_being_dropped() {
    let mut n2 = ha("n2");
    n2.step(
        &replica_obs()
            .request(
                1,
                RequestKind::ScheduleRestart(at(1_000, Default::default())),
            )
            .build(),
    );
    let paused = obs()
        .cluster(cluster(true))
        .fresh_lease("n2")
        .local(replica())
        .now(NOW + 2_000)
        .wall_offset(2_000)
        .build();
    let d = n2.step(&paused);
    assert_eq!(restarts(&d), 0, "{d:?}");
    assert!(n2.memory().scheduled_restart.is_some());
    // After the resume (still within 1.5 loop_wait of its time) it runs.
    let d = n2.step(&replica_obs().now(NOW + 3_000).wall_offset(3_000).build());
    assert_eq!(restarts(&d), 1, "{d:?}");
}
