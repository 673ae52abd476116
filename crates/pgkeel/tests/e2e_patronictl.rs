//! End-to-end: Patroni's own `patronictl` 4.1 (installed by scripts/install-deps.sh) reads a
//! pgkeel cluster (3 etcd + 3 PostgreSQL 15 + 3 agents on 127.0.0.1) from its DCS keys and REST
//! API as it reads a Patroni cluster. The operations issue adds its write commands here.

use std::time::Duration;

use pgkeel_testkit::patroni::require_patronictl;
use pgkeel_testkit::{ClusterOptions, PgkeelCluster, require_tools};
use serde_json::Value;

fn options(scope: &str) -> ClusterOptions {
    pgkeel_testkit::fast_options!(scope)
}

#[test]
fn e2e_patronictl_lists_the_leader_and_streaming_replicas() {
    require_tools();
    require_patronictl();
    let c = PgkeelCluster::start(options("e2e-patronictl")).expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(60)).expect("healthy");

    let out = c
        .patronictl(&["list", "-f", "json"])
        .expect("patronictl list");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "patronictl list failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_str(&stdout).expect("patronictl list -f json");
    assert_eq!(rows.len(), c.len(), "{stdout}");
    for (i, row) in (0..c.len()).zip(&rows) {
        // patronictl sorts rows by member name: node0, node1, node2.
        assert_eq!(row["Member"], c.node(i).name, "{stdout}");
        assert_eq!(row["Cluster"], "e2e-patronictl", "{stdout}");
        let (role, state) = if i == leader {
            ("Leader", "running")
        } else {
            ("Replica", "streaming")
        };
        assert_eq!(
            (row["Role"].as_str(), row["State"].as_str()),
            (Some(role), Some(state)),
            "{stdout}"
        );
        assert!(row["TL"].as_u64().is_some_and(|tl| tl >= 1), "{stdout}");
    }
}
