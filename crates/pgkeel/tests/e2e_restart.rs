//! End-to-end: `POST /restart` (what `patronictl restart` sends) restarts PostgreSQL through
//! the HA loop on a real cluster (3 etcd + 3 PostgreSQL 15 + 3 agents on 127.0.0.1): the leader
//! keeps its key and role, a replica comes back streaming, and a restart whose conditions do not
//! hold is refused with Patroni's words.

use std::time::Duration;

use pgkeel_testkit::{ClusterOptions, PgkeelCluster, require_tools};

fn options(scope: &str) -> ClusterOptions {
    ClusterOptions {
        scope: scope.to_owned(),
        ttl: 6,
        loop_wait: 1,
        retry_timeout: 2,
        pgkeel_bin: Some(env!("CARGO_BIN_EXE_pgkeel").into()),
        pgkeelctl_bin: Some(env!("CARGO_BIN_EXE_pgkeelctl").into()),
        ..ClusterOptions::default()
    }
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
