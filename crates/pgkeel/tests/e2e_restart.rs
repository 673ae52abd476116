//! End-to-end: `POST /restart` (what `patronictl restart` sends) restarts PostgreSQL through
//! the HA loop on a real cluster (3 etcd + 3 PostgreSQL 15 + 3 agents on 127.0.0.1): the leader
//! keeps its key and role, a replica comes back streaming, and a restart whose conditions do not
//! hold is refused with Patroni's words.

use std::time::Duration;

use pgkeel_testkit::{ClusterOptions, PgkeelCluster, require_tools};

fn options(scope: &str) -> ClusterOptions {
    pgkeel_testkit::fast_options!(scope)
}

#[test]
fn e2e_restart_request_restarts_postgres_in_place_through_the_loop() {
    require_tools();
    let c = PgkeelCluster::start(options("e2e-restart")).expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let replica = (0..c.len()).find(|&i| i != leader).expect("a replica");

    for node in [leader, replica] {
        let before = c.postmaster_pid(node).expect("postmaster");
        let (code, body) = c
            .api_request(node, "POST", "/restart", "")
            .expect("POST /restart");
        assert_eq!(
            (code, body.as_str()),
            (200, "restarted successfully"),
            "{}",
            c.log_tails(20)
        );
        let after = c
            .postmaster_pid(node)
            .expect("postmaster after the restart");
        assert_ne!(before, after, "PostgreSQL was not restarted");
        let now_leader = c
            .wait_healthy(Duration::from_secs(30))
            .expect("healthy after the restart");
        assert_eq!(now_leader, leader, "a restart moved the leader");
        assert!(
            c.logs(node).contains("postgres restarted on request"),
            "{}",
            c.log_tails(20)
        );
    }
    c.psql(leader, "CREATE TABLE after_restart (x int)")
        .expect("the leader takes writes");

    // Conditions that do not hold: refused, nothing restarted.
    let before = c.postmaster_pid(leader).expect("postmaster");
    let (code, body) = c
        .api_request(leader, "POST", "/restart", r#"{"role":"replica"}"#)
        .expect("POST /restart");
    assert_eq!(
        (code, body.as_str()),
        (503, "restart conditions are not satisfied")
    );
    assert_eq!(c.postmaster_pid(leader), Some(before));
}

/// `POST /reinitialize` (what `patronictl reinit` sends) wipes a replica's data directory and
/// clones it again; the leader refuses with Patroni's words. Driven once through the REST API
/// and once through Patroni's own patronictl.
#[test]
fn e2e_reinitialize_reclones_a_replica_and_the_leader_refuses() {
    require_tools();
    pgkeel_testkit::patroni::require_patronictl();
    let c = PgkeelCluster::start(options("e2e-reinit")).expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let replicas: Vec<usize> = (0..c.len()).filter(|&i| i != leader).collect();

    let (code, body) = c
        .api_request(leader, "POST", "/reinitialize", "")
        .expect("POST /reinitialize");
    assert_eq!(
        (code, body.as_str()),
        (503, "I am the leader, can not reinitialize")
    );

    c.psql(leader, "CREATE TABLE before_reinit AS SELECT 42 AS x")
        .expect("write on the leader");
    for (round, &r) in replicas.iter().enumerate() {
        // A file only the old data directory has: gone once the directory was re-cloned.
        let marker = c.node(r).data_dir.join("pgkeel-test-marker");
        std::fs::write(&marker, b"old").expect("marker");
        if round == 0 {
            let (code, body) = c
                .api_request(r, "POST", "/reinitialize", r#"{"from_leader": true}"#)
                .expect("POST /reinitialize");
            assert_eq!(
                (code, body.as_str()),
                (200, "reinitialize started"),
                "{}",
                c.log_tails(20)
            );
        } else {
            let name = c.node(r).name.clone();
            let out = c
                .patronictl(&["reinit", "e2e-reinit", &name, "--force"])
                .expect("patronictl reinit");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success()
                    && stdout.contains(&format!("Success: reinitialize for member {name}")),
                "patronictl reinit: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // The answer comes as the loop decides; the old directory goes right after.
        pgkeel_testkit::eventually(Duration::from_secs(30), Duration::from_millis(50), || {
            if marker.exists() {
                Err(format!("the data directory of node {r} was not re-cloned"))
            } else {
                Ok(())
            }
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));
        let back = c
            .wait_healthy(Duration::from_secs(60))
            .expect("healthy after the re-clone");
        assert_eq!(back, leader, "a reinitialize moved the leader");
        // The member key may still show the old server for a moment: poll the new one.
        pgkeel_testkit::eventually(
            Duration::from_secs(60),
            Duration::from_millis(100),
            || match c.psql(r, "SELECT x FROM before_reinit") {
                Ok(x) if x == "42" => Ok(()),
                other => Err(format!("node {r}: {other:?}")),
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));
        assert!(
            c.logs(r)
                .contains("reinitializing: trying to bootstrap from leader"),
            "{}",
            c.log_tails(20)
        );
    }
}
