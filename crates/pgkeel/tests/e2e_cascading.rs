//! End-to-end: cascading replication by the `replicatefrom` tag on a real cluster (3 etcd + 3
//! PostgreSQL + 3 agents on 127.0.0.1). node1 and node2 are tagged `nofailover`, so node0
//! bootstraps and leads; node2 is tagged `replicatefrom: node1`. node2 streams from node1 through
//! a slot node1 keeps for it (the leader keeps none for node2); `topology` of Patroni's
//! patronictl and of pgkeelctl shows node2 under node1. When node1's agent stops, node2 falls
//! back to the leader (whose slot for it is then created), and it returns to node1 once node1 runs
//! again.

use std::collections::BTreeMap;
use std::time::Duration;

use pgkeel_testkit::patroni::require_patronictl;
use pgkeel_testkit::{ClusterOptions, PgkeelCluster, require_tools, wait};
use serde_json::{Value, json};

const LEADER: usize = 0;
const UPSTREAM: usize = 1;
const CASCADE: usize = 2;

fn options(scope: &str) -> ClusterOptions {
    let tags = |extra: &[(&str, Value)]| -> BTreeMap<String, Value> {
        extra
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect()
    };
    ClusterOptions {
        tags: vec![
            tags(&[]),
            tags(&[("nofailover", json!(true))]),
            tags(&[
                ("nofailover", json!(true)),
                ("replicatefrom", json!("node1")),
            ]),
        ],
        ..pgkeel_testkit::fast_options!(scope)
    }
}

/// The port node `i`'s WAL receiver streams from, once it streams.
fn streams_from_port(c: &PgkeelCluster, i: usize) -> Result<u16, String> {
    let out = c
        .psql(
            i,
            "SELECT sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming'",
        )
        .map_err(|e| format!("{e:#}"))?;
    out.trim()
        .parse()
        .map_err(|_| format!("node{i} is not streaming ({out:?})"))
}

/// The physical slots on node `i` as `name:active`, sorted.
fn slots(c: &PgkeelCluster, i: usize) -> Result<String, String> {
    c.psql(
        i,
        "SELECT coalesce(string_agg(slot_name || ':' || active, ',' ORDER BY slot_name), '') \
         FROM pg_replication_slots WHERE slot_type = 'physical'",
    )
    .map_err(|e| format!("{e:#}"))
}

fn wait_streaming_from(c: &PgkeelCluster, i: usize, upstream: usize, what: &str) {
    let want = c.node(upstream).pg_port;
    wait(
        c,
        what,
        Duration::from_secs(60),
        || match streams_from_port(c, i)? {
            p if p == want => Ok(()),
            p => Err(format!("node{i} streams from port {p}, not {want}")),
        },
    );
}

fn wait_replicated(c: &PgkeelCluster, id: i64) {
    c.psql(LEADER, &format!("INSERT INTO cascade_probe VALUES ({id})"))
        .expect("insert on the leader");
    wait(
        c,
        "the row on the cascading replica",
        Duration::from_secs(30),
        || {
            let n = c
                .psql(
                    CASCADE,
                    &format!("SELECT count(*) FROM cascade_probe WHERE id = {id}"),
                )
                .map_err(|e| format!("{e:#}"))?;
            (n == "1").then_some(()).ok_or(format!("count {n}"))
        },
    );
}

fn topology(out: std::process::Output, tool: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{tool} topology: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn e2e_a_cascading_replica_follows_its_replicatefrom_member_and_falls_back_to_the_leader() {
    require_tools();
    require_patronictl();
    let mut c = PgkeelCluster::start(options("e2e-cascade")).expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(90)).expect("healthy");
    assert_eq!(
        leader, LEADER,
        "only node0 may bootstrap (the others are nofailover)"
    );
    c.psql(LEADER, "CREATE TABLE cascade_probe (id bigint PRIMARY KEY)")
        .expect("create the probe table");

    wait_streaming_from(&c, CASCADE, UPSTREAM, "node2 streaming from node1");
    wait_streaming_from(&c, UPSTREAM, LEADER, "node1 streaming from node0");
    wait(&c, "the member slots", Duration::from_secs(30), || {
        let (on_leader, on_upstream) = (slots(&c, LEADER)?, slots(&c, UPSTREAM)?);
        if on_leader == "node1:true" && on_upstream == "node2:true" {
            Ok(())
        } else {
            Err(format!("node0: {on_leader:?}, node1: {on_upstream:?}"))
        }
    });
    wait_replicated(&c, 1);

    // Both tools draw node2 under node1.
    for (tool, out) in [
        (
            "patronictl",
            c.patronictl(&["topology"]).expect("patronictl"),
        ),
        ("pgkeelctl", c.ctl(&["topology"]).expect("pgkeelctl")),
    ] {
        let table = topology(out, tool);
        let names: Vec<&str> = table
            .lines()
            .filter_map(|l| l.split('|').nth(1))
            .map(str::trim_end)
            .filter(|n| n.contains("node"))
            .collect();
        assert_eq!(
            names,
            [" node0", " + node1", "   + node2"],
            "{tool}:\n{table}"
        );
    }

    // node1's agent stops (and with it its PostgreSQL): node2 falls back to the leader.
    c.terminate_agent(UPSTREAM, Duration::from_secs(30))
        .expect("stop node1's agent");
    wait_streaming_from(&c, CASCADE, LEADER, "node2 falling back to node0");
    wait(
        &c,
        "the leader's slot for node2",
        Duration::from_secs(30),
        || {
            let s = slots(&c, LEADER)?;
            s.split(',')
                .any(|x| x == "node2:true")
                .then_some(())
                .ok_or(s)
        },
    );
    wait_replicated(&c, 2);

    // node1 runs again: node2 cascades from it again.
    c.restart_agent(UPSTREAM).expect("start node1's agent");
    wait_streaming_from(&c, CASCADE, UPSTREAM, "node2 back on node1");
    wait_replicated(&c, 3);
}
