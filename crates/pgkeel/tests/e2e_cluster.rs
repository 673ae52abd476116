//! End-to-end: a real 3 x etcd + 3 x pgkeel + 3 x PostgreSQL 15 cluster on 127.0.0.1.
//!
//! One cluster start-up covers the bootstrap acceptance checks in sequence (each start costs seconds):
//! bootstrap to healthy (timed), replication of a row, REST health endpoints, the etcd keys and their
//! JSON (names and types, per patroni-reference.md §1), `pgkeelctl list` against a normalised snapshot
//! (§4), replication slots, a replica whose postmaster is SIGKILLed coming back to streaming, and the
//! `patroni.dynamic.json` cache following `/config`.
//!
//! Needs root, `/usr/lib/postgresql/15/bin` and `etcd`/`etcdctl` (`scripts/install-deps.sh`).
//! Every wait is a bounded poll; a failure names what it waited for, and the cluster's `Drop` prints
//! the agents' last log lines and kills every process it started.

use std::time::{Duration, Instant};

use pgkeel_testkit::shape::{ShapeRules, shape_differences};
use pgkeel_testkit::snapshot::{self, ExpectedRow};
use pgkeel_testkit::{ClusterOptions, PgkeelCluster, nodeconf, require_tools, wait};
use serde_json::Value;

fn options(scope: &str) -> ClusterOptions {
    // The default lease (ttl 20, retry_timeout 5): this file checks the steady state.
    let defaults = ClusterOptions::default();
    ClusterOptions {
        ttl: defaults.ttl,
        retry_timeout: defaults.retry_timeout,
        ..pgkeel_testkit::fast_options!(scope)
    }
}

fn is_dotted_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

use pgkeel_ha::keys::codec::slot_name_from_member_name as slot_name;

fn json_of(c: &PgkeelCluster, key: &str) -> Result<Value, String> {
    let raw = c
        .etcd_get(key)
        .map_err(|e| format!("{e:#}"))?
        .ok_or_else(|| format!("key {} missing", c.etcd_key(key)))?;
    serde_json::from_str(&raw).map_err(|e| format!("{key}: not JSON ({e}): {raw:?}"))
}

fn lease_of(c: &PgkeelCluster, key: &str) -> Result<i64, String> {
    let j = c.etcd_get_json(key).map_err(|e| format!("{e:#}"))?;
    let kv = j["kvs"]
        .get(0)
        .ok_or_else(|| format!("{key}: no kv in {j}"))?;
    Ok(kv["lease"].as_i64().unwrap_or(0))
}

/// Checks `members/<name>` of node `i` against patroni-reference.md §1 (names and types).
fn check_member_key(c: &PgkeelCluster, i: usize, leader: usize) -> Result<(), String> {
    let n = c.node(i);
    let m = json_of(c, &format!("members/{}", n.name))?;
    let want_conn = format!("postgres://127.0.0.1:{}/postgres", n.pg_port);
    let want_api = format!("http://127.0.0.1:{}/patroni", n.api_port);
    let err = |what: &str| Err(format!("members/{}: {what}: {m}", n.name));
    if m["conn_url"] != want_conn.as_str() {
        return err(&format!("conn_url should be {want_conn}"));
    }
    if m["api_url"] != want_api.as_str() {
        return err(&format!("api_url should be {want_api}"));
    }
    if m["state"] != "running" {
        return err("state should be running");
    }
    if !m["version"].as_str().is_some_and(is_dotted_version) {
        return err("version should be dotted ints (e.g. 4.1.4)");
    }
    if !m["xlog_location"].is_u64() {
        return err("xlog_location should be an integer");
    }
    if !m["timeline"].is_u64() {
        return err("timeline should be an integer");
    }
    if i == leader {
        if m["role"] != "primary" {
            return err("role should be primary");
        }
        for absent in ["receive_lsn", "replay_lsn", "replication_state"] {
            if m.get(absent).is_some() {
                return err(&format!("a primary must not publish {absent}"));
            }
        }
    } else {
        if m["role"] != "replica" {
            return err("role should be replica");
        }
        if !m["receive_lsn"].is_u64() || !m["replay_lsn"].is_u64() {
            return err("receive_lsn/replay_lsn should be integers");
        }
        if m["replication_state"] != "streaming" {
            return err("replication_state should be streaming");
        }
    }
    match lease_of(c, &format!("members/{}", n.name))? {
        0 => err("the member key should be attached to a lease"),
        _ => Ok(()),
    }
}

/// The etcd keys of a healthy cluster (patroni-reference.md §1).
fn check_keys(c: &PgkeelCluster, leader: usize) -> Result<(), String> {
    let leader_name = &c.node(leader).name;
    // initialize: the system identifier, digits only.
    let init = c
        .etcd_get("initialize")
        .map_err(|e| format!("{e:#}"))?
        .ok_or("initialize missing")?;
    if init.len() < 10 || !init.chars().all(|ch| ch.is_ascii_digit()) {
        return Err(format!("initialize should be a sysid (digits): {init:?}"));
    }
    let sysid = c
        .psql(leader, "SELECT system_identifier FROM pg_control_system()")
        .map_err(|e| format!("{e:#}"))?;
    if sysid != init {
        return Err(format!(
            "initialize {init} != the leader's system_identifier {sysid}"
        ));
    }
    // config: JSON with the bootstrap.dcs timing.
    let config = json_of(c, "config")?;
    let opts = c.options();
    if config["ttl"].as_u64() != Some(u64::from(opts.ttl))
        || config["loop_wait"].as_u64() != Some(u64::from(opts.loop_wait))
        || config["retry_timeout"].as_u64() != Some(u64::from(opts.retry_timeout))
    {
        return Err(format!(
            "config should carry ttl/loop_wait/retry_timeout: {config}"
        ));
    }
    // leader: the plain member name, attached to a lease.
    let leader_val = c
        .etcd_get("leader")
        .map_err(|e| format!("{e:#}"))?
        .ok_or("leader missing")?;
    if &leader_val != leader_name {
        return Err(format!(
            "leader key is {leader_val:?}, expected {leader_name:?} (plain name)"
        ));
    }
    if lease_of(c, "leader")? == 0 {
        return Err("the leader key should be attached to a lease".into());
    }
    // members/<name>
    for i in 0..c.len() {
        check_member_key(c, i, leader)?;
    }
    // status: {"optime": int, "slots": {replica slot: int, ...}}
    let status = json_of(c, "status")?;
    if !status["optime"].is_u64() {
        return Err(format!("status.optime should be an integer: {status}"));
    }
    let slots = status["slots"]
        .as_object()
        .ok_or(format!("status.slots missing: {status}"))?;
    for i in (0..c.len()).filter(|&i| i != leader) {
        let slot = slot_name(&c.node(i).name);
        if !slots.get(&slot).is_some_and(Value::is_u64) {
            return Err(format!(
                "status.slots should map {slot} to an integer LSN: {status}"
            ));
        }
    }
    // history: optional on timeline 1, but a JSON list when present.
    if let Some(h) = c.etcd_get("history").map_err(|e| format!("{e:#}"))? {
        let v: Value = serde_json::from_str(&h).map_err(|e| format!("history not JSON: {e}"))?;
        if !v.is_array() {
            return Err(format!("history should be a JSON list: {h}"));
        }
    }
    Ok(())
}

/// REST health endpoints and `/patroni` fields (patroni-reference.md §3).
fn check_rest(c: &PgkeelCluster, leader: usize) -> Result<(), String> {
    for i in 0..c.len() {
        let get = |path: &str| c.api_get(i, path).map_err(|e| format!("{e:#}"));
        let (primary, _) = get("/primary")?;
        let (replica, _) = get("/replica")?;
        let (health, _) = get("/health")?;
        let (want_p, want_r) = if i == leader { (200, 503) } else { (503, 200) };
        if primary != want_p || replica != want_r || health != 200 {
            return Err(format!(
                "node{i}: /primary {primary} (want {want_p}), /replica {replica} (want {want_r}), /health {health} (want 200)"
            ));
        }
        let (status, p) = c.api_json(i, "/patroni").map_err(|e| format!("{e:#}"))?;
        if status != 200 || p["state"] != "running" || !p["timeline"].is_u64() {
            return Err(format!("node{i} /patroni: {status} {p}"));
        }
        if i == leader {
            if p["role"] != "primary" || !p["xlog"]["location"].is_u64() {
                return Err(format!("leader /patroni: {p}"));
            }
        } else if p["role"] != "replica"
            || p["replication_state"] != "streaming"
            || !p["xlog"]["received_location"].is_u64()
            || !p["xlog"]["replayed_location"].is_u64()
        {
            return Err(format!("replica node{i} /patroni: {p}"));
        }
    }
    Ok(())
}

/// A Patroni 4.1 example document (`tests/snapshots/patroni-4.1/`, see its README).
fn patroni_example(name: &str) -> Value {
    let path = format!(
        "{}/tests/snapshots/patroni-4.1/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("read the example");
    serde_json::from_str(&text).expect("the example is JSON")
}

/// Fields Patroni leaves out of `/patroni` or adds to it in states its examples do not show.
const STATUS_RULES: ShapeRules<'static> = ShapeRules {
    may_be_absent: &["tags", "replication", "cluster_unlocked"],
    may_be_added: &[
        "replication_state",
        "pause",
        "pending_restart",
        "pending_restart_reason",
        "scheduled_restart",
        "sync_standby",
        "quorum_standby",
        "cluster_unlocked",
    ],
};

/// `/patroni` of the leader and a replica and `/cluster` have the fields and JSON types of
/// Patroni 4.1's documented examples.
fn rest_documents_have_patronis_shape(c: &PgkeelCluster, leader: usize) -> Result<(), String> {
    let replica = (0..c.len()).find(|&i| i != leader).ok_or("no replica")?;
    let mut problems = Vec::new();
    for (i, example) in [
        (leader, "patroni_primary.json"),
        (replica, "patroni_replica.json"),
    ] {
        let (_, doc) = c.api_json(i, "/patroni").map_err(|e| format!("{e:#}"))?;
        for d in shape_differences(&patroni_example(example), &doc, &STATUS_RULES) {
            problems.push(format!("node{i} /patroni vs {example}: {d}"));
        }
    }
    let (_, doc) = c
        .api_json(leader, "/cluster")
        .map_err(|e| format!("{e:#}"))?;
    let rules = ShapeRules {
        may_be_absent: &["scheduled_switchover", "members[].tags", "pause"],
        may_be_added: &[
            "members[].pending_restart",
            "members[].pending_restart_reason",
            "members[].scheduled_restart",
            "pause",
        ],
    };
    for d in shape_differences(&patroni_example("cluster.json"), &doc, &rules) {
        problems.push(format!("/cluster vs cluster.json: {d}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn ctl_list_matches(
    c: &PgkeelCluster,
    args: &[&str],
    with_config: bool,
    leader: usize,
) -> Result<(), String> {
    let out = if with_config {
        c.ctl(args)
    } else {
        c.ctl_without_config(args)
    };
    let out = out.map_err(|e| format!("{e:#}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "pgkeelctl {args:?}: {}: {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    snapshot::check_table_shape(&stdout)?;
    let rows: Vec<ExpectedRow> = (0..c.len())
        .map(|i| ExpectedRow {
            name: c.node(i).name.clone(),
            leader: i == leader,
            timeline: 1,
        })
        .collect();
    let want = snapshot::expected_list(&c.options().scope, &rows);
    snapshot::diff_lines(&want, &snapshot::normalize_list(&stdout))
}

fn ctl_json_matches(c: &PgkeelCluster, leader: usize) -> Result<(), String> {
    let out = c
        .ctl(&["list", "-f", "json"])
        .map_err(|e| format!("{e:#}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Value =
        serde_json::from_str(&text).map_err(|e| format!("list -f json: {e}: {text}"))?;
    let rows = rows
        .as_array()
        .ok_or(format!("list -f json should be a list: {text}"))?;
    if rows.len() != c.len() {
        return Err(format!("{} rows: {text}", rows.len()));
    }
    for r in rows {
        let name = r["Member"].as_str().unwrap_or_default();
        let i = c
            .index_of(name)
            .ok_or(format!("unknown Member {name:?}: {text}"))?;
        let host = format!("127.0.0.1:{}", c.node(i).pg_port);
        if r["Host"] != host.as_str() || r["TL"] != 1 {
            return Err(format!("row {name}: Host should be {host}, TL 1: {r}"));
        }
        let ok = if i == leader {
            r["Role"] == "Leader" && r["State"] == "running"
        } else {
            r["Role"] == "Replica"
                && r["State"] == "streaming"
                && r["Receive Lag"] == 0
                && r["Replay Lag"] == 0
                && r["Receive LSN"].is_string()
                && r["Replay LSN"].is_string()
        };
        if !ok {
            return Err(format!("row {name}: {r}"));
        }
    }
    Ok(())
}

fn replicas_lag_zero(c: &PgkeelCluster) -> Result<(), String> {
    let view = c.cluster_view()?;
    let members = view["members"]
        .as_array()
        .ok_or(format!("no members: {view}"))?;
    for m in members.iter().filter(|m| m["role"] == "replica") {
        if m["lag"] != 0 {
            return Err(format!("replica lag not 0 yet: {m}"));
        }
    }
    Ok(())
}

fn row_on(c: &PgkeelCluster, i: usize, id: i32) -> Result<String, String> {
    c.psql(i, &format!("SELECT note FROM e2e_rows WHERE id = {id}"))
        .map_err(|e| format!("{e:#}"))
        .and_then(|v| {
            if v.is_empty() {
                Err(format!("row {id} not on node{i} yet"))
            } else {
                Ok(v)
            }
        })
}

#[test]
fn e2e_bootstrap_replicate_inspect_and_recover_a_replica() {
    require_tools();
    let c = PgkeelCluster::start(options("e2e")).expect("start the cluster");

    // 1. Bootstrap to 1 leader + 2 streaming replicas.
    let leader = c
        .wait_healthy(Duration::from_secs(60))
        .expect("bootstrap to a healthy cluster");
    let bootstrap = c.launched_at().elapsed();
    println!("bootstrap: healthy {bootstrap:.2?} after launching the agents (leader node{leader})");
    wait(
        &c,
        "replica lag 0 in /cluster",
        Duration::from_secs(20),
        || replicas_lag_zero(&c),
    );
    let replicas: Vec<usize> = (0..c.len()).filter(|&i| i != leader).collect();

    // 2. A row written on the primary is read back from both replicas.
    c.psql(
        leader,
        "CREATE TABLE e2e_rows (id int PRIMARY KEY, note text); INSERT INTO e2e_rows VALUES (1, 'bootstrap')",
    )
    .expect("write on the primary");
    for &r in &replicas {
        let note = wait(&c, "row 1 on a replica", Duration::from_secs(20), || {
            row_on(&c, r, 1)
        });
        assert_eq!(note, "bootstrap");
        assert_eq!(c.psql(r, "SELECT pg_is_in_recovery()").expect("psql"), "t");
    }

    // 3. REST API health endpoints and /patroni.
    wait(&c, "REST health endpoints", Duration::from_secs(10), || {
        check_rest(&c, leader)
    });

    // 3b. /patroni and /cluster have the shape of Patroni 4.1's documented examples.
    wait(
        &c,
        "REST documents shaped as Patroni's",
        Duration::from_secs(10),
        || rest_documents_have_patronis_shape(&c, leader),
    );

    // 4. Replication slots on the leader for both replicas.
    wait(
        &c,
        "a slot per replica on the leader",
        Duration::from_secs(20),
        || {
            let slots = c
                .psql(
                    leader,
                    "SELECT slot_name FROM pg_replication_slots ORDER BY 1",
                )
                .map_err(|e| format!("{e:#}"))?;
            let have: Vec<&str> = slots.lines().collect();
            for &r in &replicas {
                let want = slot_name(&c.node(r).name);
                if !have.contains(&want.as_str()) {
                    return Err(format!("slot {want} missing; have {have:?}"));
                }
            }
            Ok(())
        },
    );

    // 5. etcd keys and their JSON.
    wait(
        &c,
        "etcd keys as Patroni writes them",
        Duration::from_secs(15),
        || check_keys(&c, leader),
    );
    let keys = c.etcd_keys().expect("list keys");
    println!("etcd keys: {keys:?}");

    // 6. pgkeelctl list (pretty, via -c and via --dcs-url) and -f json.
    wait(
        &c,
        "pgkeelctl list to match the snapshot",
        Duration::from_secs(15),
        || ctl_list_matches(&c, &["list"], true, leader),
    );
    let dcs_url = format!("etcd3://{}", c.etcd_hosts()[0]);
    wait(
        &c,
        "pgkeelctl --dcs-url list to match",
        Duration::from_secs(15),
        || ctl_list_matches(&c, &["--dcs-url", &dcs_url, "list", "e2e"], false, leader),
    );
    wait(
        &c,
        "pgkeelctl list -f json",
        Duration::from_secs(15),
        || ctl_json_matches(&c, leader),
    );
    let shown = c.ctl(&["list"]).expect("pgkeelctl list");
    println!("{}", String::from_utf8_lossy(&shown.stdout));

    // 7. A replica's postmaster is SIGKILLed: its agent restarts it and it streams again.
    let victim = replicas[0];
    let old = c
        .kill_postmaster(victim)
        .expect("kill the replica's postmaster");
    let killed_at = Instant::now();
    let new_pid = wait(
        &c,
        "a new postmaster on the replica",
        Duration::from_secs(30),
        || match c.postmaster_pid(victim) {
            Some(pid) if pid != old => Ok(pid),
            other => Err(format!("postmaster pid {other:?} (old {old})")),
        },
    );
    wait(
        &c,
        "the replica streaming again",
        Duration::from_secs(30),
        || {
            let (_, p) = c
                .api_json(victim, "/patroni")
                .map_err(|e| format!("{e:#}"))?;
            if p["state"] == "running" && p["replication_state"] == "streaming" {
                Ok(())
            } else {
                Err(format!("/patroni: {p}"))
            }
        },
    );
    println!(
        "replica crash: postmaster {old} -> {new_pid}, streaming {:.2?} after the kill",
        killed_at.elapsed()
    );
    c.psql(
        leader,
        "INSERT INTO e2e_rows VALUES (2, 'after replica crash')",
    )
    .expect("write after the crash");
    let note = wait(
        &c,
        "row 2 on the restarted replica",
        Duration::from_secs(20),
        || row_on(&c, victim, 2),
    );
    assert_eq!(note, "after replica crash");

    // 8. Every node caches /config in its data directory as patroni.dynamic.json, and a change
    //    of /config reaches every cache.
    let cached = |i: usize| -> Result<Value, String> {
        let path = c.node(i).data_dir.join("patroni.dynamic.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    };
    wait(
        &c,
        "patroni.dynamic.json equal to /config on every node",
        Duration::from_secs(15),
        || {
            let config = json_of(&c, "config")?;
            for i in 0..c.len() {
                let have = cached(i)?;
                if have != config {
                    return Err(format!("node{i} caches {have}, /config is {config}"));
                }
            }
            Ok(())
        },
    );
    let (code, body) = c
        .api_request(
            leader,
            "PATCH",
            "/config",
            r#"{"maximum_lag_on_failover": 2097152}"#,
        )
        .expect("PATCH /config");
    assert_eq!(code, 200, "PATCH /config: {body}");
    wait(
        &c,
        "the patched /config in every cache",
        Duration::from_secs(15),
        || {
            for i in 0..c.len() {
                let have = cached(i)?;
                if have["maximum_lag_on_failover"] != 2097152 {
                    return Err(format!("node{i} caches {have}"));
                }
            }
            Ok(())
        },
    );

    // The leader never changed.
    let after = c
        .wait_healthy(Duration::from_secs(30))
        .expect("healthy after the replica crash");
    assert_eq!(after, leader, "a replica crash must not move the leader");
}

#[test]
fn e2e_generated_configs_pass_validate_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = nodeconf::NodeConfig {
        scope: "e2e".into(),
        namespace: "service".into(),
        name: "node0".into(),
        api_port: 18008,
        pg_port: 15999,
        etcd_hosts: vec!["127.0.0.1:12379".into()],
        node_dir: dir.path().to_path_buf(),
        data_dir: dir.path().join("data"),
        ttl: 20,
        loop_wait: 1,
        retry_timeout: 5,
        tags: Default::default(),
        dcs_parameters: nodeconf::default_dcs_parameters(),
        post_bootstrap: None,
        callback: None,
    };
    let path = dir.path().join("pgkeel.yml");
    std::fs::write(&path, conf.render()).expect("write config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgkeel"))
        .arg("--validate-config")
        .arg(&path)
        .output()
        .expect("run pgkeel --validate-config");
    assert!(
        out.status.success(),
        "the testkit's config must validate:\n{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        conf.render()
    );
}
