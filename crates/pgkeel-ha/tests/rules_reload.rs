//! A changed `postgresql` part of `/config` reaches the running server within one cycle: the
//! configuration is rewritten and reloaded (`on_reload` follows); a restart the new settings
//! need is left pending for the operator, and `restart --pending` restarts for it.
mod support;

use pgkeel_ha::ha::{
    Action, Answer, CallbackEvent, Outcome, RequestKind, RestartConditions, Role, TaskKind,
};
use pgkeel_ha::pg::PendingRestart;
use serde_json::{Value, json};
use support::*;

fn config(parameters: Value) -> Value {
    json!({"ttl": 30, "loop_wait": 10, "retry_timeout": 10,
           "postgresql": {"use_pg_rewind": true, "parameters": parameters}})
}

fn leader_obs(cfg: Value) -> ObsBuilder {
    obs()
        .cluster(
            ClusterBuilder::initialized()
                .three_nodes_led_by("n1")
                .config(cfg),
        )
        .fresh_lease("n1")
        .local(local_primary())
}

fn replica_obs(cfg: Value) -> ObsBuilder {
    obs()
        .cluster(
            ClusterBuilder::initialized()
                .three_nodes_led_by("n1")
                .config(cfg),
        )
        .local(local_replica_of("n1"))
}

fn reloads(d: &pgkeel_ha::Decision) -> Vec<&Action> {
    d.actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::ReloadConfig { .. }
                    | Action::Callback {
                        event: CallbackEvent::OnReload,
                        ..
                    }
            )
        })
        .collect()
}

#[test]
fn a_changed_parameter_is_reloaded_on_the_leader_once_then_on_reload_runs() {
    let mut n1 = ha("n1");
    let d = n1.step(&leader_obs(config(json!({"work_mem": "4MB"}))).build());
    assert!(reloads(&d).is_empty(), "first sight is no change: {d:?}");
    let changed = leader_obs(config(json!({"work_mem": "8MB"}))).build();
    let d = n1.step(&changed);
    assert_eq!(
        reloads(&d),
        [
            &Action::ReloadConfig {
                follow: None,
                always: false
            },
            &Action::Callback {
                event: CallbackEvent::OnReload,
                role: Role::Primary
            }
        ],
        "{d:?}"
    );
    // The leader's own work is still done in the same cycle.
    assert!(d.actions.contains(&Action::WriteStatus), "{d:?}");
    let d = n1.step(&changed);
    assert!(reloads(&d).is_empty(), "reloaded twice: {d:?}");
}

/// Reference: Patroni's `reload_config(sighup=True)` (postgresql/config.py): on SIGHUP the
/// configuration files are rewritten and PostgreSQL reloaded whether or not `/config` changed.
#[test]
fn a_local_reload_rewrites_and_reloads_the_running_server_once() {
    let cfg = config(json!({"work_mem": "4MB"}));
    let mut n1 = ha("n1");
    n1.step(&leader_obs(cfg.clone()).build());
    n1.reload_postgres_config();
    let d = n1.step(&leader_obs(cfg.clone()).build());
    assert_eq!(
        reloads(&d),
        [
            &Action::ReloadConfig {
                follow: None,
                always: true
            },
            &Action::Callback {
                event: CallbackEvent::OnReload,
                role: Role::Primary
            }
        ],
        "{d:?}"
    );
    assert!(reloads(&n1.step(&leader_obs(cfg.clone()).build())).is_empty());
    // A replica keeps its upstream.
    let mut n2 = ha("n2");
    n2.step(&replica_obs(cfg.clone()).build());
    n2.reload_postgres_config();
    let d = n2.step(&replica_obs(cfg).build());
    assert!(
        d.actions.contains(&Action::ReloadConfig {
            follow: Some("n1".into()),
            always: true
        }),
        "{d:?}"
    );
}

#[test]
fn a_replica_reloads_keeping_its_upstream() {
    let mut n2 = ha("n2");
    n2.step(&replica_obs(config(json!({"work_mem": "4MB"}))).build());
    let d = n2.step(&replica_obs(config(json!({"work_mem": "8MB"}))).build());
    assert_eq!(
        reloads(&d),
        [
            &Action::ReloadConfig {
                follow: Some("n1".into()),
                always: false
            },
            &Action::Callback {
                event: CallbackEvent::OnReload,
                role: Role::Replica
            }
        ],
        "{d:?}"
    );
}

#[test]
fn a_change_outside_postgresql_reloads_nothing() {
    let mut n1 = ha("n1");
    n1.step(&leader_obs(config(json!({"work_mem": "4MB"}))).build());
    let mut cfg = config(json!({"work_mem": "4MB"}));
    cfg["loop_wait"] = json!(5);
    let d = n1.step(&leader_obs(cfg).build());
    assert!(reloads(&d).is_empty(), "{d:?}");
}

#[test]
fn a_change_seen_during_a_task_is_applied_after_it_and_a_failed_reload_is_retried() {
    let mut n2 = ha("n2");
    n2.step(&replica_obs(config(json!({"work_mem": "4MB"}))).build());
    let new = config(json!({"work_mem": "8MB"}));
    let busy = replica_obs(new.clone())
        .task(TaskKind::Restart {
            as_primary: false,
            follow: Some("n1".into()),
        })
        .build();
    let d = n2.step(&busy);
    assert!(reloads(&d).is_empty(), "reloaded during a task: {d:?}");
    // The first cycle after the task applies it.
    let d = n2.step(&replica_obs(new.clone()).build());
    assert_eq!(reloads(&d).len(), 2, "{d:?}");
    let failed = replica_obs(new.clone())
        .outcome(Outcome::ActionFailed {
            action: Box::new(Action::ReloadConfig {
                follow: Some("n1".into()),
                always: false,
            }),
            error: "cannot reload: postgres is not running".into(),
        })
        .build();
    let d = n2.step(&failed);
    assert_eq!(
        reloads(&d).len(),
        2,
        "a failed reload was not retried: {d:?}"
    );
    let d = n2.step(&replica_obs(new).build());
    assert!(reloads(&d).is_empty(), "{d:?}");
}

/// The agent's own reload reloads the server even with unchanged files; retried as such.
#[test]
fn a_failed_local_reload_is_retried_as_a_local_reload() {
    let cfg = config(json!({"work_mem": "4MB"}));
    let mut n1 = ha("n1");
    n1.step(&leader_obs(cfg.clone()).build());
    n1.reload_postgres_config();
    n1.step(&leader_obs(cfg.clone()).build());
    let asked = Action::ReloadConfig {
        follow: None,
        always: true,
    };
    let failed = leader_obs(cfg)
        .outcome(Outcome::ActionFailed {
            action: Box::new(asked.clone()),
            error: "cannot reload: postgres is not running".into(),
        })
        .build();
    let d = n1.step(&failed);
    assert_eq!(reloads(&d).first(), Some(&&asked), "{d:?}");
}

#[test]
fn restart_pending_restarts_only_when_a_parameter_waits_for_it() {
    let pending = RequestKind::Restart(RestartConditions {
        only_if_pending: true,
        ..RestartConditions::default()
    });
    let mut n2 = ha("n2");
    let d = n2.step(
        &replica_obs(config(json!({})))
            .request(1, pending.clone())
            .build(),
    );
    assert_eq!(
        d.answers,
        [(
            1,
            Answer::Refused("restart conditions are not satisfied".into())
        )]
    );
    let mut local = local_replica_of("n1");
    local.pending_restart = vec![PendingRestart {
        name: "max_connections".into(),
        old_value: "100".into(),
        new_value: "150".into(),
    }];
    let d = n2.step(
        &replica_obs(config(json!({})))
            .local(local)
            .request(2, pending)
            .build(),
    );
    assert_eq!(
        d.answers,
        [(2, Answer::Accepted("restart initiated".into()))]
    );
    assert_eq!(
        d.actions,
        [Action::StartTask(TaskKind::Restart {
            as_primary: false,
            follow: Some("n1".into())
        })]
    );
}
