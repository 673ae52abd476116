//! End-to-end: `postgresql.callbacks` on a real cluster (3 etcd + 3 PostgreSQL 15 + 3 agents on
//! 127.0.0.1). One script, configured for every callback, records each call's arguments per
//! node; the test checks that every node got Patroni's `<action> <role> <scope>` for what
//! happened to it, in the order it happened: the start of each node after bootstrap, a requested
//! restart, and the leader's agent stopping (its `on_stop`) with a replica promoted
//! (`on_role_change primary`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use pgkeel_testkit::{ClusterOptions, PgkeelCluster, eventually, require_tools};

const SCOPE: &str = "e2e-callbacks";

/// The calls recorded for `node`, one `<action> <role> <scope>` per line.
fn calls(dir: &Path, node: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(node))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn wait_for_call(c: &PgkeelCluster, dir: &Path, node: &str, call: &str) -> Vec<String> {
    eventually(Duration::from_secs(30), Duration::from_millis(50), || {
        let seen = calls(dir, node);
        if seen.iter().any(|l| l == call) {
            Ok(seen)
        } else {
            Err(format!("{node} has not seen {call:?}; calls: {seen:?}"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(30)))
}

/// A script that appends its last three arguments to `<dir>/<node>`.
fn recorder() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    // The agents may run as another user: the record files must be writable by anyone.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let script = dir.path().join("record.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nnode=$1\nshift\necho \"$*\" >> {}/$node\n",
            dir.path().display()
        ),
    )
    .expect("write the script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (dir, script)
}

#[test]
fn e2e_callbacks_get_patronis_arguments_in_the_order_of_events() {
    require_tools();
    let (dir, script) = recorder();
    let mut c = PgkeelCluster::start(ClusterOptions {
        callback: Some(format!("{} {{node}}", script.display())),
        ..pgkeel_testkit::fast_options!(SCOPE)
    })
    .expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let names: Vec<String> = (0..c.len()).map(|i| c.node(i).name.clone()).collect();
    let name = |i: usize| names[i].clone();
    let replicas: Vec<usize> = (0..c.len()).filter(|&i| i != leader).collect();

    // Every node's first callback says it started, in its role.
    let first = wait_for_call(
        &c,
        dir.path(),
        &name(leader),
        &format!("on_start primary {SCOPE}"),
    );
    assert_eq!(first[0], format!("on_start primary {SCOPE}"), "{first:?}");
    for &r in &replicas {
        let seen = wait_for_call(
            &c,
            dir.path(),
            &name(r),
            &format!("on_start replica {SCOPE}"),
        );
        assert_eq!(seen[0], format!("on_start replica {SCOPE}"), "{seen:?}");
    }

    // A requested restart of a replica: on_restart, in its role, after its on_start.
    let restarted = replicas[0];
    let (code, body) = c
        .api_request(restarted, "POST", "/restart", "")
        .expect("POST /restart");
    assert_eq!((code, body.as_str()), (200, "restarted successfully"));
    let seen = wait_for_call(
        &c,
        dir.path(),
        &name(restarted),
        &format!("on_restart replica {SCOPE}"),
    );
    assert_eq!(
        seen,
        vec![
            format!("on_start replica {SCOPE}"),
            format!("on_restart replica {SCOPE}")
        ]
    );

    // The leader's agent stops: its last call is on_stop as a primary; a replica is promoted and
    // says so with on_role_change.
    c.terminate_agent(leader, Duration::from_secs(30))
        .expect("stop the leader's agent");
    let stopped = calls(dir.path(), &name(leader));
    assert_eq!(
        stopped.last().map(String::as_str),
        Some(format!("on_stop primary {SCOPE}").as_str()),
        "the agent exited before its on_stop ran: {stopped:?}"
    );
    let new_leader = c
        .wait_for_leader(Duration::from_secs(30))
        .expect("a new leader");
    assert_ne!(new_leader, leader);
    let seen = wait_for_call(
        &c,
        dir.path(),
        &name(new_leader),
        &format!("on_role_change primary {SCOPE}"),
    );
    let promoted_at = seen
        .iter()
        .position(|l| *l == format!("on_role_change primary {SCOPE}"))
        .expect("recorded");
    assert!(
        seen[..promoted_at]
            .iter()
            .all(|l| l.ends_with(&format!("replica {SCOPE}"))),
        "calls before the promotion were not all as a replica: {seen:?}"
    );
}
