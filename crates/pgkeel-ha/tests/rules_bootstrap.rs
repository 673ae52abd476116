//! Empty data directory: the initialize race, initdb, post-bootstrap, clone; system ID checks.
mod support;

use pgkeel_ha::ha::{Action, CallbackEvent, FailureCause, Outcome, StopMode, TaskKind};
use pgkeel_ha::pg::{DataDir, LocalPostgres};
use serde_json::json;
use support::*;

fn empty_cluster_obs() -> ObsBuilder {
    obs()
        .cluster(ClusterBuilder::new())
        .fresh_lease("n1")
        .local(LocalPostgres::empty())
}

#[test]
fn bootstrap_race_starts_by_racing_for_initialize() {
    // Reference: patroni-reference.md §2 bootstrap(): dcs.initialize(create_new=True)
    let d = ha("n1").step(&empty_cluster_obs().build());
    assert_decision(
        &d,
        &[Action::RaceInitialize],
        "racing for the initialize key",
    );
    assert!(d.restep);
}

#[test]
fn bootstrap_race_won_runs_initdb() {
    // Reference: patroni-reference.md §2 bootstrap(): 'trying to bootstrap a new cluster'
    let mut n1 = ha("n1");
    let o = empty_cluster_obs()
        .outcome(Outcome::InitializeRace { won: true })
        .build();
    assert_decision(
        &n1.step(&o),
        &[Action::StartTask(TaskKind::Bootstrap)],
        "trying to bootstrap a new cluster",
    );
    assert!(n1.memory().bootstrapping);
}

#[test]
fn bootstrap_race_lost_waits() {
    // Reference: patroni-reference.md §2 bootstrap(): 'failed to acquire initialize lock'
    let o = empty_cluster_obs()
        .outcome(Outcome::InitializeRace { won: false })
        .build();
    assert_decision(&ha("n1").step(&o), &[], "failed to acquire initialize lock");
}

#[test]
fn bootstrap_race_is_not_entered_while_initialize_exists() {
    // Reference: patroni-reference.md §2 bootstrap(): only when there is no initialize key
    let o = obs()
        .cluster(ClusterBuilder::new().initialize(""))
        .fresh_lease("n2")
        .build();
    assert_decision(&ha("n2").step(&o), &[], "waiting for leader to bootstrap");
}

#[test]
fn bootstrap_nofailover_node_never_bootstraps() {
    // Reference: patroni-reference.md §2 bootstrap(): `not nofailover`
    let mut n3 = ha_with("n3", |c| c.nofailover = true);
    let o = obs()
        .cluster(ClusterBuilder::new())
        .fresh_lease("n3")
        .build();
    assert_decision(
        &n3.step(&o),
        &[],
        "waiting for leader to bootstrap (this node is tagged nofailover)",
    );
}

#[test]
fn bootstrap_won_without_a_lease_waits_for_one() {
    // Reference: patroni-reference.md §2 bootstrap(); pgkeel needs a lease before it can take the key
    let o = obs()
        .cluster(ClusterBuilder::new())
        .outcome(Outcome::InitializeRace { won: true })
        .build();
    assert_decision(
        &ha("n1").step(&o),
        &[],
        "waiting for a DCS lease before bootstrapping",
    );
}

fn bootstrapped_node() -> pgkeel_ha::Ha {
    let mut n1 = ha("n1");
    n1.step(
        &empty_cluster_obs()
            .outcome(Outcome::InitializeRace { won: true })
            .build(),
    );
    n1
}

#[test]
fn bootstrap_in_progress_only_reports() {
    // Reference: patroni-reference.md §2 handle_long_action_in_progress(): '<action> in progress'
    let mut n1 = bootstrapped_node();
    let o = obs()
        .cluster(ClusterBuilder::new().initialize(""))
        .fresh_lease("n1")
        .task(TaskKind::Bootstrap)
        .build();
    let d = n1.step(&o);
    assert_decision(&d, &[], "bootstrap in progress");
    assert_eq!(d.node.state.as_str(), "initializing new cluster");
}

#[test]
fn post_bootstrap_takes_the_key_and_writes_initialize_and_config() {
    // Reference: patroni-reference.md §2 post_bootstrap() pass 2
    let mut n1 = bootstrapped_node();
    let o = obs()
        .cluster(ClusterBuilder::new().initialize(""))
        .fresh_lease("n1")
        .local(local_primary())
        .outcome(Outcome::TaskFinished {
            kind: TaskKind::Bootstrap,
            ok: true,
            message: String::new(),
            cause: FailureCause::Local,
        })
        .build();
    let d = n1.step(&o);
    assert_decision(
        &d,
        &[
            Action::TakeLeader,
            Action::WriteInitialize {
                sysid: SYSID.into(),
                create_only: false,
            },
            Action::WriteConfig,
            Action::UpdateHistory,
            Action::Callback {
                event: CallbackEvent::OnStart,
                role: pgkeel_ha::ha::Role::Primary,
            },
        ],
        "initialized a new cluster",
    );
    assert!(d.restep);
    assert!(!n1.memory().bootstrapping && !n1.memory().post_bootstrap_pending);
}

#[test]
fn post_bootstrap_waits_while_the_new_primary_does_not_accept_writes() {
    // Reference: patroni-reference.md §2 post_bootstrap() pass 1: wait for the end of recovery
    let mut n1 = bootstrapped_node();
    let mut starting = local_primary();
    starting.running = false;
    starting.role = None;
    let o = obs()
        .cluster(ClusterBuilder::new().initialize(""))
        .fresh_lease("n1")
        .local(starting)
        .outcome(Outcome::TaskFinished {
            kind: TaskKind::Bootstrap,
            ok: true,
            message: String::new(),
            cause: FailureCause::Local,
        })
        .build();
    assert_decision(
        &n1.step(&o),
        &[],
        "waiting for the new cluster to accept connections",
    );
    assert!(n1.memory().post_bootstrap_pending);
}

#[test]
fn bootstrap_failure_cleans_up_and_is_fatal() {
    // Reference: patroni-reference.md §2 post_bootstrap(): failed -> delete initialize, stop,
    // move the data dir aside, FATAL 'Failed to bootstrap cluster'
    let mut n1 = bootstrapped_node();
    let o = obs()
        .cluster(ClusterBuilder::new().initialize(""))
        .fresh_lease("n1")
        .local(local_stopped("in production", 1, 10))
        .outcome(Outcome::TaskFinished {
            kind: TaskKind::Bootstrap,
            ok: false,
            message: "initdb: out of disk".into(),
            cause: FailureCause::Local,
        })
        .build();
    let msg = "Failed to bootstrap cluster: initdb: out of disk";
    assert_decision(
        &n1.step(&o),
        &[
            Action::Stop(StopMode::Immediate),
            Action::DeleteInitialize,
            Action::MoveDataDirAside,
            Action::Fatal {
                message: msg.into(),
                critical: false,
            },
        ],
        msg,
    );
}

#[test]
fn bootstrap_clone_from_the_leader() {
    // Reference: patroni-reference.md §2 bootstrap(): clone = leader when no clonefrom member
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n3")
        .build();
    assert_decision(
        &ha("n3").step(&o),
        &[Action::StartTask(TaskKind::Clone { from: "n1".into() })],
        "trying to bootstrap from leader 'n1'",
    );
}

#[test]
fn bootstrap_clone_from_a_clonefrom_member() {
    // Reference: patroni-reference.md §2 bootstrap(): a running member tagged clonefrom (not leader, not me)
    let o = obs()
        .cluster(
            ClusterBuilder::initialized()
                .three_nodes_led_by("n1")
                .member("n2", |m| m.tag("clonefrom", json!(true))),
        )
        .fresh_lease("n3")
        .build();
    assert_decision(
        &ha("n3").step(&o),
        &[Action::StartTask(TaskKind::Clone { from: "n2".into() })],
        "trying to bootstrap from replica 'n2'",
    );
}

#[test]
fn bootstrap_clone_skips_a_stopped_clonefrom_member() {
    // Reference: patroni-reference.md §2 bootstrap(): only *running* clonefrom members
    let o = obs()
        .cluster(
            ClusterBuilder::initialized()
                .three_nodes_led_by("n1")
                .member("n2", |m| m.tag("clonefrom", json!(true)).state("stopped")),
        )
        .fresh_lease("n3")
        .build();
    assert_decision(
        &ha("n3").step(&o),
        &[Action::StartTask(TaskKind::Clone { from: "n1".into() })],
        "trying to bootstrap from leader 'n1'",
    );
}

#[test]
fn bootstrap_clone_waits_for_leader_member_data() {
    // Reference: patroni-reference.md §2 bootstrap(): locked but no usable clone source -> wait
    let o = obs()
        .cluster(
            ClusterBuilder::initialized()
                .leader("n1")
                .member("n1", |m| m.primary().no_conn_url()),
        )
        .fresh_lease("n3")
        .build();
    assert_decision(
        &ha("n3").step(&o),
        &[],
        "waiting for leader 'n1' to publish its member data",
    );
}

#[test]
fn bootstrap_clone_failure_wipes_for_a_retry() {
    // Reference: patroni-reference.md §2 bootstrap() -> create replica failed
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n3")
        .outcome(Outcome::TaskFinished {
            kind: TaskKind::Clone { from: "n1".into() },
            ok: false,
            message: "pg_basebackup: connection refused".into(),
            cause: FailureCause::Local,
        })
        .build();
    assert_decision(
        &ha("n3").step(&o),
        &[Action::RemoveDataDir],
        "failed to bootstrap from leader 'n1': pg_basebackup: connection refused",
    );
}

#[test]
fn empty_data_dir_while_holding_the_key_releases_it() {
    // Reference: patroni-reference.md §2 _run_cycle(): data dir empty and I own leader ->
    // release_leader_key_voluntarily()
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n1")
        .local(LocalPostgres::empty())
        .build();
    let d = ha("n1").step(&o);
    assert_decision(
        &d,
        &[Action::ReleaseLeader],
        "released leader key voluntarily as data dir empty and currently leader",
    );
    assert!(d.restep);
}

#[test]
fn inaccessible_data_dir_releases_the_key() {
    // Reference: patroni-reference.md §2 _run_cycle(): 'data directory is not accessible: <err>'
    let mut local = LocalPostgres::empty();
    local.data_dir = DataDir::Inaccessible("permission denied".into());
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n1")
        .local(local)
        .build();
    assert_decision(
        &ha("n1").step(&o),
        &[Action::ReleaseLeader],
        "data directory is not accessible: permission denied",
    );
}

#[test]
fn inaccessible_data_dir_stops_a_running_primary_before_releasing_the_key() {
    // Found by the hostile-input probe: out of file descriptors, the leader released its key
    // while PostgreSQL kept taking writes, and a replica promoted next to it. Now the server
    // is stopped first; the key goes only once nothing runs.
    let mut n1 = ha("n1");
    let cluster = ClusterBuilder::initialized().three_nodes_led_by("n1");
    n1.step(
        &obs()
            .cluster(cluster.clone())
            .fresh_lease("n1")
            .local(local_primary())
            .build(),
    );
    // EMFILE: the data directory cannot be read, and neither can the server (no socket).
    let mut blind = local_primary();
    blind.data_dir = DataDir::Inaccessible("Too many open files (os error 24)".into());
    blind.accepting_connections = false;
    blind.role = None;
    let d = n1.step(
        &obs()
            .cluster(cluster.clone())
            .fresh_lease("n1")
            .local(blind.clone())
            .build(),
    );
    assert_decision(
        &d,
        &[Action::Stop(StopMode::Immediate)],
        "data directory is not accessible: Too many open files (os error 24); stopping PostgreSQL before releasing the leader lock",
    );
    blind.running = false;
    assert_decision(
        &n1.step(
            &obs()
                .cluster(cluster)
                .fresh_lease("n1")
                .local(blind)
                .build(),
        ),
        &[Action::ReleaseLeader],
        "data directory is not accessible: Too many open files (os error 24)",
    );
}

#[test]
fn inaccessible_data_dir_leaves_a_running_replica_alone() {
    let mut local = local_replica_of("n1");
    local.data_dir = DataDir::Inaccessible("Too many open files (os error 24)".into());
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n2")
        .local(local)
        .build();
    assert_decision(
        &ha("n2").step(&o),
        &[],
        "data directory is not accessible: Too many open files (os error 24)",
    );
}

#[test]
fn system_id_mismatch_is_fatal() {
    // Reference: patroni-reference.md §2 _run_cycle(): FATAL 'system ID mismatch, node %s belongs to a different cluster: %s != %s'
    let mut local = local_replica_of("n1");
    local.data_dir = DataDir::Initialized {
        sysid: "1111111111111111111".into(),
    };
    let o = obs()
        .cluster(ClusterBuilder::initialized().three_nodes_led_by("n1"))
        .fresh_lease("n2")
        .local(local)
        .build();
    let msg = "system ID mismatch, node n2 belongs to a different cluster: 7277694203142172922 != 1111111111111111111";
    // Patroni logs it with logger.fatal, i.e. CRITICAL.
    assert_decision(
        &ha("n2").step(&o),
        &[Action::Fatal {
            message: msg.into(),
            critical: true,
        }],
        msg,
    );
}

#[test]
fn existing_data_dir_without_initialize_adopts_it() {
    // Reference: patroni-reference.md §2 _run_cycle(): unlocked, no initialize -> dcs.initialize(sysid)
    let o = obs()
        .cluster(ClusterBuilder::new())
        .fresh_lease("n1")
        .local(local_stopped("shut down", 1, 100))
        .build();
    assert_decision(
        &ha("n1").step(&o),
        &[Action::WriteInitialize {
            sysid: SYSID.into(),
            create_only: true,
        }],
        "initializing the cluster from the existing data directory",
    );
}

#[test]
fn running_replica_without_initialize_is_fatal() {
    // Reference: patroni-reference.md §2 _run_cycle(): 'No initialize key in DCS and PostgreSQL is running as replica, aborting start'
    let msg = "No initialize key in DCS and PostgreSQL is running as replica, aborting start";
    let o = obs()
        .cluster(ClusterBuilder::new())
        .fresh_lease("n2")
        .local(local_replica_of("n1"))
        .build();
    assert_decision(
        &ha("n2").step(&o),
        &[Action::Fatal {
            message: msg.into(),
            critical: false,
        }],
        msg,
    );
}

#[test]
fn bootstrap_race_won_runs_initdb_although_the_restep_sees_its_own_initialize_key() {
    // Reference: patroni-reference.md §2 bootstrap(): the winner of dcs.initialize(create_new=True)
    // bootstraps. On the restep the agent passes a fresh snapshot, which already shows the
    // `initialize` = "" this node just created. Found by the simulator (every seed).
    let mut n1 = ha("n1");
    let o = obs()
        .cluster(ClusterBuilder::new().initialize(""))
        .fresh_lease("n1")
        .outcome(Outcome::InitializeRace { won: true })
        .build();
    assert_decision(
        &n1.step(&o),
        &[Action::StartTask(TaskKind::Bootstrap)],
        "trying to bootstrap a new cluster",
    );
}

#[test]
fn bootstrap_race_is_not_entered_without_a_lease() {
    // Reference: patroni-reference.md §2 bootstrap(). Winning `initialize` without a lease used
    // to strand the cluster: the winner waited for a lease, and on the next cycle the won
    // outcome was gone and its own `initialize` key made everyone wait forever.
    // Found by the simulator (seed 3 at the time).
    let o = obs().cluster(ClusterBuilder::new()).build();
    assert_decision(
        &ha("n1").step(&o),
        &[],
        "waiting for a DCS lease before bootstrapping",
    );
}
