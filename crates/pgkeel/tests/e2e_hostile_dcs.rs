//! End-to-end: hostile values against a real cluster (3 etcd + 3 PostgreSQL 15 + 3 agents on
//! 127.0.0.1, fast profile ttl 6 / loop_wait 1 / retry_timeout 2), as issue 10 found them:
//! `/config` bodies that overflowed or silently reset every agent, and keys written into etcd
//! by "another node" (a broken tool or an attacker with etcd access): `config`, `status`,
//! fake `members/*`, a `leader` key with no lease (naming a ghost, or empty), an `initialize`
//! key holding another system id. Each scenario asserts what the agents did and that the
//! cluster is healthy again (or, for a foreign system id, stopped cleanly) afterwards.
//!
//! Every wait here is a bounded poll; nothing talks beyond 127.0.0.1.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pgkeel_testkit::{ClusterOptions, PgkeelCluster, eventually, require_tools};
use serde_json::Value;

const TTL_S: u32 = 6;

fn options(scope: &str) -> ClusterOptions {
    ClusterOptions {
        ttl: TTL_S,
        ..pgkeel_testkit::fast_options!(scope)
    }
}

/// Runs `scenario` while another thread samples which PostgreSQL servers accept writes;
/// fails if two ever did at once. Returns what `scenario` returned.
fn with_one_primary_at_most<T>(c: &PgkeelCluster, scenario: impl FnOnce() -> T) -> T {
    let done = AtomicBool::new(false);
    let (result, samples) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                samples.push(c.writable());
                std::thread::sleep(Duration::from_millis(50));
            }
            samples
        });
        let result = scenario();
        done.store(true, Ordering::Relaxed);
        (result, sampler.join().expect("sampler"))
    });
    assert!(!samples.is_empty());
    for (i, w) in samples.iter().enumerate() {
        assert!(
            w.iter().filter(|w| **w).count() <= 1,
            "sample {i}: two writable primaries {w:?}\n{}",
            c.log_tails(30)
        );
    }
    result
}

/// No agent has exited on its own.
fn all_agents_alive(c: &PgkeelCluster) {
    if let Some(dead) = c.exited_agent() {
        panic!(
            "agent {} died on hostile input\n{}",
            c.node(dead).name,
            c.log_tails(40)
        );
    }
}

fn wait_until(c: &PgkeelCluster, what: &str, mut check: impl FnMut() -> Result<(), String>) {
    if let Err(e) = eventually(Duration::from_secs(30), Duration::from_millis(100), || {
        check()
    }) {
        panic!("{what}: {e}\n{}", c.log_tails(30));
    }
}

fn config_key(c: &PgkeelCluster) -> Value {
    serde_json::from_str(
        &c.etcd_get("config")
            .expect("etcdctl get")
            .unwrap_or_default(),
    )
    .unwrap_or(Value::Null)
}

/// `/config` bodies that once killed or silently reset every agent are refused; garbage that
/// reaches etcd another way is ignored key by key; a forged `status` is corrected; fake
/// members get no replication slots. The cluster keeps its leader throughout.
#[test]
fn e2e_hostile_config_status_and_fake_members_leave_the_cluster_healthy() {
    require_tools();
    let c = PgkeelCluster::start(options("hostile-dcs")).expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let leader_name = c.node(leader).name.clone();
    let config_before = config_key(&c);

    // 1. Bodies that overflowed every agent's arithmetic, or that they read as "use the
    //    default": 400 naming the key; nothing stored.
    for (body, key) in [
        (r#"{"loop_wait":18446744073709551615}"#, "loop_wait"),
        (r#"{"ttl":1e19}"#, "ttl"),
        (r#"{"ttl":"abc"}"#, "ttl"),
        (r#"{"ttl":-1}"#, "ttl"),
        (r#"{"retry_timeout":0}"#, "retry_timeout"),
        (
            r#"{"maximum_lag_on_failover":"lots"}"#,
            "maximum_lag_on_failover",
        ),
    ] {
        for method in ["PATCH", "PUT"] {
            let (code, answer) = c
                .api_request(leader, method, "/config", body)
                .expect("the API answers");
            assert_eq!(code, 400, "{method} /config {body}: {answer}");
            assert!(answer.contains(key), "{method} {body}: {answer}");
        }
    }
    let huge = format!(r#"{{"x":"{}"}}"#, "y".repeat(1024 * 1024));
    let (code, _) = c
        .api_request(leader, "PATCH", "/config", &huge)
        .expect("the API answers");
    assert_eq!(code, 413, "a 1 MiB body");
    assert_eq!(
        config_key(&c),
        config_before,
        "a refused write changed /config"
    );

    // 2. The same values written straight into etcd: each agent keeps its last good value
    //    with a WARNING naming the key, and nobody dies.
    let mut forged = config_before.clone();
    forged["loop_wait"] = serde_json::json!(18446744073709551615u64);
    forged["ttl"] = serde_json::json!(1e19);
    forged["retry_timeout"] = serde_json::json!("abc");
    c.etcd_put("config", &forged.to_string())
        .expect("etcdctl put");
    wait_until(&c, "every agent warns about the forged loop_wait", || {
        all_agents_alive(&c);
        match (0..c.len()).find(|&i| !c.logs(i).contains("loop_wait: 18446744073709551615")) {
            Some(i) => Err(format!("{} has not warned", c.node(i).name)),
            None => Ok(()),
        }
    });
    for i in 0..c.len() {
        let (_, status) = c.api_json(i, "/patroni").expect("/patroni");
        assert_eq!(status["state"], "running", "{status}");
    }
    assert_eq!(
        c.check_healthy(),
        Ok(leader),
        "healthy with the forged config"
    );
    // An operator repairs it through the API (the merge keeps the other keys).
    let (code, answer) = c
        .api_request(
            leader,
            "PATCH",
            "/config",
            r#"{"loop_wait":1,"ttl":6,"retry_timeout":2}"#,
        )
        .expect("the API answers");
    assert_eq!(code, 200, "{answer}");
    assert_eq!(config_key(&c), config_before);

    // 3. A forged status optime beyond every position: the leader rewrites it with its own.
    c.etcd_put("status", r#"{"optime":18446744073709551615}"#)
        .expect("etcdctl put");
    wait_until(&c, "the leader corrects the forged status", || {
        let status: Value =
            serde_json::from_str(&c.etcd_get("status").unwrap().unwrap_or_default())
                .map_err(|e| e.to_string())?;
        let optime = status["optime"].as_u64().ok_or("no optime")?;
        let lsn: u64 = c
            .psql(leader, "SELECT pg_current_wal_lsn() - '0/0'")
            .map_err(|e| e.to_string())?
            .parse()
            .map_err(|e| format!("{e}"))?;
        if optime <= lsn {
            Ok(())
        } else {
            Err(format!("status optime {optime} > leader LSN {lsn}"))
        }
    });
    for i in (0..c.len()).filter(|&i| i != leader) {
        wait_until(&c, "replicas count as not lagging", || {
            match c.api_get(i, "/replica?lag=16MB") {
                Ok((200, _)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
    }

    // 4. Eight unreadable member keys: no replication slot for any of them.
    for n in 0..8 {
        c.etcd_put(&format!("members/fake{n}"), "{not json")
            .expect("etcdctl put");
    }
    let slots = || {
        c.psql(
            leader,
            "SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots",
        )
        .unwrap_or_default()
    };
    // Several HA cycles (loop_wait 1) with the fakes present.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let s = slots();
        assert!(!s.contains("fake"), "a fake member got a slot: {s}");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(slots().split(',').count(), 2, "one slot per real replica");
    for n in 0..8 {
        c.etcd_del(&format!("members/fake{n}"))
            .expect("etcdctl del");
    }

    all_agents_alive(&c);
    let now_leader = c.wait_healthy(Duration::from_secs(30)).expect("healthy");
    assert_eq!(c.node(now_leader).name, leader_name, "the leader moved");
}

/// A `leader` key with no lease (naming a ghost, or empty) is removed and the cluster elects a
/// leader by itself; an `initialize` key with another system id stops every agent cleanly and
/// leaves PostgreSQL as it was.
#[test]
fn e2e_hostile_leader_and_initialize_keys_are_survived() {
    require_tools();
    let mut c = PgkeelCluster::start(options("hostile-keys")).expect("start the cluster");
    c.wait_healthy(Duration::from_secs(60)).expect("healthy");

    for forged in ["ghost", ""] {
        let started = Instant::now();
        let recovered = with_one_primary_at_most(&c, || {
            c.etcd_put("leader", forged).expect("etcdctl put");
            // Bounded: a stale key is removed after at most ttl, then the cluster races.
            c.wait_healthy(Duration::from_secs(60))
        });
        let leader = recovered.unwrap_or_else(|e| panic!("leader = {forged:?}: {e:#}"));
        let key = c
            .etcd_get("leader")
            .expect("etcdctl get")
            .unwrap_or_default();
        assert_eq!(key, c.node(leader).name, "the leader key names the leader");
        println!(
            "leader = {forged:?}: healthy again after {:.1} s, leader {}",
            started.elapsed().as_secs_f64(),
            c.node(leader).name
        );
        let log: String = (0..c.len()).map(|i| c.logs(i)).collect();
        assert!(
            !log.contains("reinit"),
            "advice to run a command that does not exist"
        );
    }

    // `initialize` holding another system id: every agent stops with Patroni's message, and
    // PostgreSQL is left running in the role it had.
    let leader = c.wait_healthy(Duration::from_secs(30)).expect("healthy");
    let sysid = c.etcd_get("initialize").expect("get").expect("initialize");
    c.etcd_put("initialize", "7000000000000000001")
        .expect("etcdctl put");
    wait_until(&c, "every agent stops", || {
        match (0..c.len()).find(|&i| c.agent_pid(i).is_some_and(pgkeel_testkit::procs::alive)) {
            Some(i) => Err(format!("{} still runs", c.node(i).name)),
            None => Ok(()),
        }
    });
    for i in 0..c.len() {
        let log = c.logs(i);
        assert!(
            log.contains("system ID mismatch") && log.contains("7000000000000000001 != "),
            "{}: no clear message\n{}",
            c.node(i).name,
            c.log_tails(10)
        );
        assert!(
            c.postmaster_pid(i).is_some(),
            "{}: PostgreSQL was stopped",
            c.node(i).name
        );
    }
    assert_eq!(
        c.writable(),
        (0..c.len()).map(|i| i == leader).collect::<Vec<_>>(),
        "the roles changed"
    );
    // Repaired, the agents take the cluster back.
    c.etcd_put("initialize", &sysid).expect("etcdctl put");
    for i in 0..c.len() {
        c.restart_agent(i).expect("restart the agent");
    }
    c.wait_healthy(Duration::from_secs(60))
        .expect("healthy after the repair");
}
