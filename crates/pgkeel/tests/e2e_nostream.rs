//! End-to-end: the `nostream` tag on a real cluster (3 etcd + 3 PostgreSQL + 3 agents on
//! 127.0.0.1). node2 is tagged `nostream` (and `nofailover`): it runs as a replica without a
//! WAL receiver and without a slot on the leader, and gets the leader's writes only through
//! `restore_command` from the WAL archive the leader fills, as Patroni's `nostream` does.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use pgkeel_testkit::{ClusterOptions, PgkeelCluster, eventually, require_tools};
use serde_json::json;

const NOSTREAM: usize = 2;

#[test]
fn e2e_a_nostream_replica_replays_from_the_archive_without_streaming_or_a_slot() {
    require_tools();
    let archive = tempfile::tempdir().expect("archive dir");
    // The servers run as the postgres user.
    std::fs::set_permissions(archive.path(), std::fs::Permissions::from_mode(0o777))
        .expect("chmod");
    let dir = archive.path().display().to_string();
    let mut params = pgkeel_testkit::nodeconf::default_dcs_parameters();
    params.insert("archive_mode".into(), json!("on"));
    params.insert(
        "archive_command".into(),
        json!(format!("test ! -f {dir}/%f && cp %p {dir}/%f")),
    );
    params.insert("restore_command".into(), json!(format!("cp {dir}/%f %p")));
    let mut tags = vec![BTreeMap::new(); 3];
    tags[NOSTREAM] = BTreeMap::from([
        ("nostream".to_string(), json!(true)),
        ("nofailover".to_string(), json!(true)),
    ]);
    tags[1] = BTreeMap::from([("nofailover".to_string(), json!(true))]);
    let c = PgkeelCluster::start(ClusterOptions {
        tags,
        dcs_parameters: params,
        ..pgkeel_testkit::fast_options!("e2e-nostream")
    })
    .expect("start the cluster");
    // (wait_healthy wants every replica streaming: node2 never does.)
    let leader = c
        .wait_for_leader(Duration::from_secs(60))
        .expect("a leader");
    assert_eq!(leader, 0, "only node0 may lead");
    // Patroni's words for a replica without a WAL receiver, in /cluster.
    eventually(Duration::from_secs(30), Duration::from_millis(200), || {
        let view = c.cluster_view()?;
        let state = view["members"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["name"] == "node2"))
            .map(|m| m["state"].clone());
        match state {
            Some(s) if s == "in archive recovery" => Ok(()),
            other => Err(format!("node2 state: {other:?}")),
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));

    // Running as a replica, but no WAL receiver and no primary_conninfo.
    eventually(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || match c.psql(NOSTREAM, "SELECT pg_is_in_recovery()") {
            Ok(r) if r == "t" => Ok(()),
            other => Err(format!("node2: {other:?}")),
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));
    assert_eq!(
        c.psql(NOSTREAM, "SELECT count(*) FROM pg_stat_wal_receiver")
            .expect("query"),
        "0"
    );
    assert_eq!(
        c.psql(NOSTREAM, "SHOW primary_conninfo").expect("query"),
        ""
    );
    // The leader keeps a slot for node1 only.
    eventually(Duration::from_secs(20), Duration::from_millis(200), || {
        match c.psql(
            leader,
            "SELECT coalesce(string_agg(slot_name, ',' ORDER BY slot_name), '') FROM pg_replication_slots",
        ) {
            Ok(s) if s == "node1" => Ok(()),
            other => Err(format!("leader slots: {other:?}")),
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));

    // A write reaches node2 through the archive once its segment is archived.
    c.psql(leader, "CREATE TABLE via_archive AS SELECT 7 AS x")
        .expect("write");
    c.psql(leader, "SELECT pg_switch_wal()").expect("switch");
    eventually(
        Duration::from_secs(60),
        Duration::from_millis(250),
        || match c.psql(NOSTREAM, "SELECT x FROM via_archive") {
            Ok(x) if x == "7" => Ok(()),
            other => Err(format!("node2: {other:?}")),
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));
    assert_eq!(
        c.psql(NOSTREAM, "SELECT count(*) FROM pg_stat_wal_receiver")
            .expect("query"),
        "0",
        "node2 streams"
    );
}
