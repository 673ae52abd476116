//! End-to-end: `synchronous_mode: quorum` on a real cluster (3 etcd + 3 PostgreSQL 15 + 3
//! agents on 127.0.0.1). Switched on at run time with Patroni's own `patronictl edit-config`,
//! the leader sets `synchronous_standby_names` to `ANY 1 (both replicas)` and the `sync` key to
//! quorum 1 of both; Patroni's `patronictl list` shows them as `Quorum Standby` and `/quorum`
//! answers by it. When the leader's host dies, a replica is elected by the other one's vote
//! (which it gives only once it streams from nobody) and has the commit the old leader
//! acknowledged. Switched off with `pgkeelctl edit-config`, the key goes and the parameter is
//! cleared.

use std::time::Duration;

use pgkeel_testkit::patroni::require_patronictl;
use pgkeel_testkit::{PgkeelCluster, require_tools, wait};
use serde_json::{Value, json};

/// The voters the key lists, sorted.
fn voters(key: &Value) -> Vec<String> {
    let mut v: Vec<String> = key["sync_standby"]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

#[test]
fn e2e_quorum_mode_elects_a_replica_by_vote_and_keeps_the_acknowledged_commit() {
    require_tools();
    require_patronictl();
    let mut c = PgkeelCluster::start(pgkeel_testkit::fast_options!("e2e-quorum"))
        .expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let leader_name = c.node(leader).name.clone();
    let replicas: Vec<usize> = (0..c.len()).filter(|&i| i != leader).collect();
    let replica_names = sorted(replicas.iter().map(|&i| c.node(i).name.clone()).collect());

    // Patroni's own patronictl switches the mode at run time.
    let out = c
        .patronictl(&["edit-config", "--set", "synchronous_mode=quorum", "--force"])
        .expect("patronictl edit-config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Both replicas vote, any one of them acknowledges: quorum 1 of 2.
    wait(
        &c,
        "quorum 1 of both replicas",
        Duration::from_secs(30),
        || {
            let key = c.sync_key();
            if key["leader"] == json!(leader_name)
                && key["quorum"] == json!(1)
                && voters(&key) == replica_names
            {
                Ok(())
            } else {
                Err(key.to_string())
            }
        },
    );
    let ssn = c.show(leader, "synchronous_standby_names");
    assert!(ssn.starts_with("ANY 1 ("), "{ssn}");
    for name in &replica_names {
        assert!(ssn.contains(name.as_str()), "{ssn} lacks {name}");
    }

    // Patroni's patronictl and the health checks see the quorum role.
    let out = c
        .patronictl(&["list", "-f", "json"])
        .expect("patronictl list");
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    for name in &replica_names {
        let role = rows
            .iter()
            .find(|r| r["Member"] == json!(name))
            .and_then(|r| r["Role"].as_str());
        assert_eq!(
            role,
            Some("Quorum Standby"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    for (node, want) in [(replicas[0], 200), (leader, 503)] {
        wait(
            &c,
            &format!("GET /quorum on node {node}"),
            Duration::from_secs(20),
            || match c.api_get(node, "/quorum").map_err(|e| e.to_string())? {
                (code, _) if code == want => Ok(()),
                (code, body) => Err(format!("{code} {body}")),
            },
        );
    }

    // A commit the leader acknowledged (one voter had it).
    c.psql(
        leader,
        "CREATE TABLE acked (id int); INSERT INTO acked VALUES (1)",
    )
    .expect("write on the leader");

    // The leader's host dies: a replica is elected by the other's vote.
    c.kill_agent(leader).expect("kill the agent");
    c.kill_postmaster(leader).expect("kill the postmaster");
    let new_leader = wait(&c, "a new leader", Duration::from_secs(60), || {
        match c.leader_index() {
            Some(l) if l != leader => Ok(l),
            other => Err(format!("leader {other:?}")),
        }
    });
    assert!(replicas.contains(&new_leader));
    let new_leader_name = c.node(new_leader).name.clone();
    wait(
        &c,
        "the new primary takes writes",
        Duration::from_secs(30),
        || {
            c.psql(new_leader, "INSERT INTO acked VALUES (2)")
                .map_err(|e| e.to_string())
        },
    );
    assert_eq!(
        c.psql(new_leader, "SELECT count(*) FROM acked")
            .expect("count"),
        "2"
    );
    let log = c.logs(new_leader);
    assert!(
        log.contains("promoted self to leader"),
        "{}",
        c.log_tails(30)
    );
    // Its key names it.
    wait(
        &c,
        "the new leader in the sync key",
        Duration::from_secs(30),
        || {
            let key = c.sync_key();
            if key["leader"] == json!(new_leader_name) {
                Ok(())
            } else {
                Err(key.to_string())
            }
        },
    );

    // The old leader comes back as a replica; then quorum mode is turned off with pgkeelctl.
    c.restart_agent(leader)
        .expect("restart the old leader's agent");
    c.wait_healthy(Duration::from_secs(90))
        .expect("healthy again");
    let out = c
        .ctl(&["edit-config", "--set", "synchronous_mode=off", "--force"])
        .expect("pgkeelctl edit-config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.wait_asynchronous(new_leader, Duration::from_secs(30))
        .expect("asynchronous again");
}
