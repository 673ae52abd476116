//! Agent-level tests: the real agent loop (observe -> step -> execute -> publish, the lease
//! keeper, the REST API) in-process, on a `MemoryDcs` and fake PostgreSQL servers
//! (`support/`). They check what the loop does with its seams, which the pure core's rule tests
//! cannot (member publishing, the shutdown sequence, reacting to a postmaster exit at once), and
//! run in milliseconds where the same on real servers (`e2e_*`) takes seconds.

mod support;

use std::time::Duration;

use pgkeel::agent::AgentError;
use pgkeel::dcs::Dcs;
use pgkeel_ha::pg::ServerRole;
use support::{TestCluster, until};

/// Long enough for any of these steps on a loaded 2-core machine; they take milliseconds.
const SOON: Duration = Duration::from_secs(5);

fn role_of(c: &pgkeel_ha::cluster::Cluster, name: &str) -> Option<(String, String)> {
    c.member(name).map(|m| (m.role.clone(), m.state.clone()))
}

fn running(role: &str) -> Option<(String, String)> {
    Some((role.to_owned(), "running".to_owned()))
}

/// Node `a`, once it leads.
async fn leader_a(c: &TestCluster) -> support::TestNode {
    let a = c.start("a");
    c.until("a leads", SOON, |cl| role_of(cl, "a") == running("primary"))
        .await;
    a
}

/// Node `a` leading and `b` replicating from it.
async fn leader_a_and_replica_b(c: &TestCluster) -> (support::TestNode, support::TestNode) {
    let a = leader_a(c).await;
    let b = c.start("b");
    c.until("b replicates", SOON, |cl| {
        role_of(cl, "b") == running("replica")
    })
    .await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_agent_bootstraps_takes_the_key_and_publishes_itself() {
    // Patroni's default timing: a loop that waited one loop_wait anywhere in the bootstrap
    // (for its first lease, before this was fixed: one run in a few) would take 10 s.
    let mut c = TestCluster::new("boot1");
    (c.ttl, c.loop_wait) = (30, 10);
    let n = c.start("a");
    c.until("a leads", Duration::from_secs(3), |cl| {
        cl.leader.as_ref().is_some_and(|l| l.name == "a") && role_of(cl, "a") == running("primary")
    })
    .await;
    let cl = c.read().await;
    let sysid = match n.pg.probe_sysid() {
        Some(s) => s,
        None => panic!("no data directory after bootstrap"),
    };
    assert_eq!(
        cl.initialize.as_deref(),
        Some(sysid.as_str()),
        "initialize = the system id"
    );
    assert!(cl.config.is_some(), "bootstrap.dcs written to /config");
    assert_eq!(n.pg.count("initdb"), 1);
    assert_eq!(n.pg.count("create_roles"), 1);
    assert_eq!(n.pg.state().running, Some(ServerRole::Primary));
    let me = cl.member("a").cloned();
    let Some(me) = me else {
        panic!("no member key")
    };
    assert_eq!(
        me.api_url.as_deref(),
        Some(format!("http://127.0.0.1:{}/patroni", n.api_port).as_str())
    );
    assert_eq!(
        me.conn_url.as_deref(),
        Some(format!("postgres://127.0.0.1:{}/postgres", n.pg_port).as_str())
    );
    assert_eq!(me.timeline, Some(1));
    assert!(
        me.xlog_location.is_some(),
        "a running primary publishes its WAL position"
    );
    assert_eq!(
        me.lease,
        cl.leader.map(|l| l.lease).unwrap_or(-1),
        "member and leader key share the lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_racing_on_an_empty_cluster_run_initdb_once_and_the_others_clone() {
    let c = TestCluster::new("race3");
    let nodes = [c.start("a"), c.start("b"), c.start("c")];
    c.until("one leader, two streaming replicas", SOON, |cl| {
        let Some(leader) = cl.leader.as_ref().map(|l| l.name.clone()) else {
            return false;
        };
        ["a", "b", "c"]
            .iter()
            .all(|n| role_of(cl, n) == running(if *n == leader { "primary" } else { "replica" }))
    })
    .await;
    let initdbs: usize = nodes.iter().map(|n| n.pg.count("initdb")).sum();
    assert_eq!(initdbs, 1, "initdb ran {initdbs} times");
    let leader = c.leader().await.unwrap_or_default();
    let sysids: Vec<Option<String>> = nodes.iter().map(|n| n.pg.probe_sysid()).collect();
    assert!(
        sysids.windows(2).all(|w| w[0] == w[1]),
        "one system id: {sysids:?}"
    );
    for n in nodes.iter().filter(|n| n.name != leader) {
        assert_eq!(n.pg.count("basebackup"), 1, "{} cloned once", n.name);
        assert_eq!(
            n.pg.following().as_deref(),
            Some(leader.as_str()),
            "{} follows the leader",
            n.name
        );
        assert_eq!(n.pg.state().running, Some(ServerRole::Replica));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_creates_a_slot_for_each_replica() {
    let c = TestCluster::new("slots");
    let (a, _b) = leader_a_and_replica_b(&c).await;
    until("a slot for b on a", SOON, || {
        a.pg.state().slots.contains_key("b")
    })
    .await;
    assert!(
        !a.pg.state().slots.contains_key("a"),
        "no slot for the leader itself"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_primary_is_started_again_at_once_and_keeps_the_key() {
    let c = TestCluster::new("crash-primary");
    let a = leader_a(&c).await;
    let lease = c.read().await.leader.map(|l| l.lease);
    let starts = a.pg.count("start");
    a.pg.crash();
    // The postmaster's exit wakes the loop: no waiting for loop_wait.
    let took = until("a started again", SOON, || a.pg.count("start") > starts).await;
    assert!(took < Duration::from_secs(1), "restart took {took:?}");
    until("running as primary", SOON, || {
        a.pg.state().running == Some(ServerRole::Primary)
    })
    .await;
    let cl = c.read().await;
    assert_eq!(cl.leader.as_ref().map(|l| l.name.as_str()), Some("a"));
    assert_eq!(
        cl.leader.map(|l| l.lease),
        lease,
        "the key stayed on its lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_replica_is_started_again_as_a_replica() {
    let c = TestCluster::new("crash-replica");
    let (_a, b) = leader_a_and_replica_b(&c).await;
    let starts = b.pg.count("start");
    b.pg.crash();
    until("b started again", SOON, || b.pg.count("start") > starts).await;
    until("b running as a replica of a", SOON, || {
        b.pg.state().running == Some(ServerRole::Replica)
            && b.pg.following().as_deref() == Some("a")
    })
    .await;
    assert_eq!(b.pg.count("promote"), 0);
    assert_eq!(c.leader().await.as_deref(), Some("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_postgres_releases_the_key_and_revokes_the_lease() {
    let c = TestCluster::new("shutdown");
    let a = leader_a(&c).await;
    let pg = a.pg.clone();
    let ended = a.shutdown().await;
    assert!(ended.is_ok(), "shutdown ended with {ended:?}");
    assert_eq!(pg.state().running, None, "PostgreSQL stopped");
    assert!(
        pg.calls().iter().any(|c| c == "stop Fast"),
        "a fast stop: {:?}",
        pg.calls()
    );
    let cl = c.read().await;
    assert!(cl.leader.is_none(), "leader key released");
    assert!(
        cl.member("a").is_none(),
        "the member key went with the lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_takes_over_at_once_when_the_leader_shuts_down() {
    let c = TestCluster::new("handover");
    let (a, b) = leader_a_and_replica_b(&c).await;
    let t0 = std::time::Instant::now();
    assert!(a.shutdown().await.is_ok());
    c.until("b leads", SOON, |cl| {
        cl.leader.as_ref().is_some_and(|l| l.name == "b") && role_of(cl, "b") == running("primary")
    })
    .await;
    // The released key wakes b's loop through its watch: well within ttl.
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "takeover took {:?}",
        t0.elapsed()
    );
    assert_eq!(b.pg.count("promote"), 1);
    assert_eq!(b.pg.state().running, Some(ServerRole::Primary));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_seeing_another_node_hold_the_key_stops_writing() {
    let c = TestCluster::new("demote");
    let a = leader_a(&c).await;
    // Another live node holds the key on its own lease (an operator's or a split's doing).
    let lease = match c.dcs.grant_lease(30).await {
        Ok(l) => l,
        Err(e) => panic!("grant: {e}"),
    };
    let old = c.read().await.leader.map(|l| l.lease).unwrap_or(0);
    let _ = c.dcs.revoke_lease(old).await;
    if let Err(e) = c.dcs.put(&c.layout.leader(), b"z", Some(lease)).await {
        panic!("put: {e}");
    }
    until("a is no longer a primary", SOON, || {
        a.pg.state().running != Some(ServerRole::Primary)
    })
    .await;
    assert_eq!(
        c.leader().await.as_deref(),
        Some("z"),
        "a did not take the key back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_data_belongs_to_another_cluster_stops_and_leaves_it_alone() {
    let c = TestCluster::new("sysid");
    if let Err(e) = c
        .dcs
        .put(&c.layout.initialize(), b"7000000000000000042", None)
        .await
    {
        panic!("put: {e}");
    }
    let pg = c.world.server(pgkeel_testkit::ports::free_port());
    pg.with_data("7000000000000000099");
    let a = c.start_on("a", pg.clone());
    let ended = a.ended(SOON).await;
    match ended {
        Err(e @ AgentError::Fatal { .. }) => {
            assert!(e.is_critical(), "CRITICAL, as Patroni: {e}");
            assert!(
                e.to_string().contains("system ID mismatch")
                    || e.to_string().contains("7000000000000000042"),
                "{e}"
            );
        }
        other => panic!("expected a fatal stop, got {other:?}"),
    }
    assert_eq!(
        pg.count("start"),
        0,
        "PostgreSQL left stopped: {:?}",
        pg.calls()
    );
    assert_eq!(pg.count("remove_data_dir"), 0);
    assert_eq!(
        pg.probe_sysid().as_deref(),
        Some("7000000000000000099"),
        "its data untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_with_the_same_name_refuses_to_start() {
    let c = TestCluster::new("dup");
    let _a = leader_a(&c).await;
    let twin = c.start("a");
    match twin.ended(SOON).await {
        Err(AgentError::DuplicateName(name)) => assert_eq!(name, "a"),
        other => panic!("expected a duplicate-name refusal, got {other:?}"),
    }
    assert_eq!(c.leader().await.as_deref(), Some("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_the_config_key_does_not_stop_a_bootstrap() {
    let c = TestCluster::new("garbage");
    if let Err(e) = c.dcs.put(&c.layout.config(), b"{not json", None).await {
        panic!("put: {e}");
    }
    let a = leader_a(&c).await;
    assert_eq!(a.pg.count("initdb"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_restart_goes_through_the_loop_and_keeps_the_role() {
    let c = TestCluster::new("restart");
    let a = leader_a(&c).await;
    let stops = a.pg.count("stop");
    let (status, body) = a
        .http(
            reqwest::Method::POST,
            "/restart",
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        serde_json::Value::String("restarted successfully".into())
    );
    assert_eq!(a.pg.count("stop"), stops + 1, "{:?}", a.pg.calls());
    assert_eq!(a.pg.state().running, Some(ServerRole::Primary));
    assert_eq!(c.leader().await.as_deref(), Some("a"));
}

/// A reload whose file does not load (here: the harness's file does not exist and the
/// environment holds no configuration) keeps the running configuration and, as in Patroni,
/// still reloads PostgreSQL with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_a_file_that_does_not_load_still_reloads_postgres() {
    let c = TestCluster::new("bad-reload");
    let a = leader_a(&c).await;
    let reloads = a.pg.count("reload");
    let (status, body) = a.http(reqwest::Method::POST, "/reload", None).await;
    assert_eq!(status, 202, "{body}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while a.pg.count("reload") == reloads {
        assert!(
            std::time::Instant::now() < deadline,
            "PostgreSQL not reloaded: {:?}",
            a.pg.calls()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(c.leader().await.as_deref(), Some("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_api_reports_what_the_loop_published() {
    let c = TestCluster::new("api");
    let a = leader_a(&c).await;
    let (code, _) = a.get("/primary").await;
    assert_eq!(code, 200);
    let (code, doc) = a.get("/patroni").await;
    assert_eq!(code, 200);
    assert_eq!(doc["role"], "primary");
    assert_eq!(doc["state"], "running");
    assert_eq!(doc["patroni"]["scope"], "api");
    let (code, _) = a.get("/replica").await;
    assert_eq!(code, 503, "a primary is not a replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_cut_off_from_the_dcs_stops_writing_before_its_lease_ends() {
    let c = TestCluster::new("fence");
    let a = leader_a(&c).await;
    let lease_ends = std::time::Instant::now() + Duration::from_secs(u64::from(c.ttl));
    c.dcs.set_unavailable(true);
    until("a stops accepting writes", Duration::from_secs(10), || {
        a.pg.state().running != Some(ServerRole::Primary)
    })
    .await;
    assert!(
        std::time::Instant::now() < lease_ends,
        "the primary still wrote after its lease could have ended"
    );
    c.dcs.set_unavailable(false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_pause_mode_shutdown_leaves_postgres_running_and_the_key_in_place() {
    let c = TestCluster::new("pause-shutdown");
    let a = leader_a(&c).await;
    // The key as `PATCH /config {"pause": true}` leaves it, written in the DCS directly.
    let mut config = c
        .read()
        .await
        .config
        .map(|cfg| cfg.data)
        .unwrap_or_default();
    config.insert("pause".into(), serde_json::json!(true));
    let text = serde_json::Value::Object(config).to_string();
    if let Err(e) = c.dcs.put(&c.layout.config(), text.as_bytes(), None).await {
        panic!("put: {e}");
    }
    // The loop has seen it once /patroni says so.
    let t0 = std::time::Instant::now();
    while a.get("/patroni").await.1["pause"] != serde_json::json!(true) {
        assert!(t0.elapsed() < SOON, "the agent never saw the pause");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pg = a.pg.clone();
    assert!(a.shutdown().await.is_ok());
    assert_eq!(
        pg.state().running,
        Some(ServerRole::Primary),
        "left running"
    );
    assert_eq!(pg.count("stop"), 0, "{:?}", pg.calls());
    assert_eq!(
        c.leader().await.as_deref(),
        Some("a"),
        "the key stays until its lease ends"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_recovery_settings_that_need_a_restart_get_a_restart_task() {
    let c = TestCluster::new("follow-restart");
    let (_a, b) = leader_a_and_replica_b(&c).await;
    let stops = b.pg.count("stop");
    b.pg.follow_elsewhere_needing_restart("nobody");
    // The next cycle points b at a again; the write needs a restart, which the core runs as
    // a restart task (a fast stop, a start as a replica) instead of a hidden stop and start.
    until("b restarted", SOON, || b.pg.count("stop") > stops).await;
    until("b follows a again, running", SOON, || {
        b.pg.state().running == Some(ServerRole::Replica)
            && b.pg.following().as_deref() == Some("a")
    })
    .await;
    assert_eq!(b.pg.count("promote"), 0);
    assert!(
        b.pg.calls().iter().any(|c| c == "stop Fast"),
        "{:?}",
        b.pg.calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_member_key_is_the_cores_decision_and_follows_the_wal_position() {
    let c = TestCluster::new("member");
    let a = leader_a(&c).await;
    let first = c.read().await.member("a").and_then(|m| m.xlog_location);
    assert_eq!(first, Some(a.pg.state().wal), "the current WAL position");
    a.pg.write();
    let moved = a.pg.state().wal;
    assert_ne!(Some(moved), first);
    // Positions alone are republished at most once per loop_wait (1 s here): within a few.
    c.until("the new position is published", SOON, |cl| {
        cl.member("a").and_then(|m| m.xlog_location) == Some(moved)
    })
    .await;
    let cl = c.read().await;
    let Some(me) = cl.member("a") else {
        panic!("no member key")
    };
    assert_eq!(
        (me.role.as_str(), me.state.as_str()),
        ("primary", "running")
    );
    assert_eq!(
        Some(me.lease),
        cl.leader.as_ref().map(|l| l.lease),
        "on the agent's lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_name_ends_the_twin_with_patronis_message_before_it_touches_anything() {
    let c = TestCluster::new("dup-message");
    let _a = leader_a(&c).await;
    let before = c.read().await.member("a").cloned();
    let twin_pg = c.world.server(pgkeel_testkit::ports::free_port());
    let twin = c.start_on("a", twin_pg.clone());
    match twin.ended(SOON).await {
        Err(e) => {
            assert_eq!(
                e.to_string(),
                "Can't start; there is already a node named 'a' running"
            );
            assert!(e.is_critical(), "CRITICAL, as Patroni");
        }
        Ok(()) => panic!("the twin went on"),
    }
    assert!(
        twin_pg.calls().is_empty(),
        "the twin ran {:?} on its server",
        twin_pg.calls()
    );
    assert_eq!(
        c.read().await.member("a").map(|m| m.api_url.clone()),
        before.map(|m| m.api_url),
        "the running agent's member key stays its own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_bootstrap_moves_the_data_directory_aside_through_the_seam() {
    let c = TestCluster::new("boot-fail");
    let pg = c.world.server(pgkeel_testkit::ports::free_port());
    pg.fail_starts();
    let a = c.start_on("a", pg.clone());
    match a.ended(SOON).await {
        Err(e @ AgentError::Fatal { .. }) => assert!(
            e.to_string().starts_with("Failed to bootstrap cluster: "),
            "{e}"
        ),
        other => panic!("expected a fatal stop, got {other:?}"),
    }
    assert_eq!(pg.count("initdb"), 1);
    assert_eq!(
        pg.count("move_data_dir_aside"),
        1,
        "moved aside through PostgresControl: {:?}",
        pg.calls()
    );
    assert_eq!(pg.probe_sysid(), None, "the next start begins empty");
    assert!(
        c.read().await.initialize.is_none(),
        "the initialize key was removed for the next attempt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_drops_unknown_inactive_slots_and_creates_member_slots_through_the_fake() {
    let c = TestCluster::new("slot-policy");
    let a = leader_a(&c).await;
    a.pg.add_slot("ghost", false);
    a.pg.add_slot("busy", true);
    let _b = c.start("b");
    until("b's slot created, the unknown one dropped", SOON, || {
        let slots = a.pg.state().slots;
        slots.contains_key("b") && !slots.contains_key("ghost")
    })
    .await;
    let calls = a.pg.calls();
    assert!(calls.iter().any(|c| c == "create_slot b"), "{calls:?}");
    assert!(calls.iter().any(|c| c == "drop_slot ghost"), "{calls:?}");
    assert!(
        !calls.iter().any(|c| c == "drop_slot busy"),
        "an active slot is never dropped: {calls:?}"
    );
    assert!(a.pg.state().slots.contains_key("busy"));
    // The status key carries the kept slot's position.
    c.until("status lists b's slot", SOON, |cl| {
        cl.status.slots.contains_key("b")
    })
    .await;
}
