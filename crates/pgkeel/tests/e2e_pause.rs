//! End-to-end: maintenance mode driven by Patroni's own `patronictl` 4.1 on a real cluster
//! (3 etcd + 3 PostgreSQL 15 + 3 agents on 127.0.0.1). `patronictl pause --wait` PATCHes
//! `/config` and waits for every member's `pause`; while paused a killed primary stays down and
//! nothing is promoted, a requested restart still runs; `patronictl resume --wait` heals the
//! cluster.

use std::time::{Duration, Instant};

use pgkeel_testkit::patroni::require_patronictl;
use pgkeel_testkit::{ClusterOptions, PgkeelCluster, require_tools, wait};

const TTL: u32 = 6;

fn options(scope: &str) -> ClusterOptions {
    ClusterOptions {
        ttl: TTL,
        ..pgkeel_testkit::fast_options!(scope)
    }
}

/// Runs Patroni's patronictl and returns its stdout; panics with its output when it fails.
fn patronictl(c: &PgkeelCluster, args: &[&str]) -> String {
    let out = c.patronictl(args).expect("run patronictl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "patronictl {args:?} failed: {}{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.log_tails(20)
    );
    stdout
}

#[test]
fn e2e_pause_keeps_a_killed_primary_down_until_the_resume() {
    require_tools();
    require_patronictl();
    let c = PgkeelCluster::start(options("e2e-pause")).expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let replica = (0..c.len()).find(|&i| i != leader).expect("a replica");

    let out = patronictl(&c, &["pause", "--wait"]);
    assert!(
        out.contains("Success: cluster management is paused"),
        "{out}"
    );
    for i in 0..c.len() {
        let (code, doc) = c.api_json(i, "/patroni").expect("GET /patroni");
        assert_eq!(
            (code, &doc["pause"]),
            (200, &serde_json::json!(true)),
            "{doc}"
        );
        assert_eq!(c.api_get(i, "/liveness").expect("liveness").0, 200);
    }
    let (_, cluster) = c.api_json(leader, "/cluster").expect("GET /cluster");
    assert_eq!(cluster["pause"], serde_json::json!(true), "{cluster}");
    let list = patronictl(&c, &["list"]);
    assert!(list.ends_with(" Maintenance mode: on\n"), "{list}");

    // A requested restart still runs in pause.
    let before = c.postmaster_pid(replica).expect("replica postmaster");
    let (code, body) = c
        .api_request(replica, "POST", "/restart", "")
        .expect("POST /restart");
    assert_eq!(
        (code, body.as_str()),
        (200, "restarted successfully"),
        "{}",
        c.log_tails(20)
    );
    assert_ne!(c.postmaster_pid(replica), Some(before), "not restarted");

    // The primary dies: its agent removes the key, nobody starts it, nobody is promoted.
    c.kill_postmaster(leader).expect("kill the primary");
    let leader_key = "leader";
    wait(
        &c,
        "the leader key removed",
        Duration::from_secs(u64::from(TTL)),
        || match c.etcd_get(leader_key) {
            Ok(None) => Ok(()),
            other => Err(format!("leader key: {other:?}")),
        },
    );
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3 * u64::from(TTL)) {
        assert_eq!(
            c.postmaster_pid(leader),
            None,
            "the killed primary was started in pause\n{}",
            c.log_tails(20)
        );
        let writable = c.writable();
        assert!(
            !writable.contains(&true),
            "a primary in pause after the kill: {writable:?}\n{}",
            c.log_tails(20)
        );
        assert!(
            c.etcd_get(leader_key).is_ok_and(|k| k.is_none()),
            "a new leader key"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, doc) = c.api_json(leader, "/patroni").expect("GET /patroni");
    assert_eq!(doc["state"], "stopped", "{doc}");
    assert!(
        c.logs(leader)
            .contains("PAUSE: removed leader lock because postgres is not running"),
        "{}",
        c.log_tails(20)
    );

    let out = patronictl(&c, &["resume", "--wait"]);
    assert!(
        out.contains("Success: cluster management is resumed"),
        "{out}"
    );
    let new_leader = c
        .wait_healthy(Duration::from_secs(90))
        .expect("healthy after the resume");
    c.psql(new_leader, "CREATE TABLE after_resume (x int)")
        .expect("the new leader takes writes");
    let list = patronictl(&c, &["list"]);
    assert!(!list.contains("Maintenance mode"), "{list}");
}
