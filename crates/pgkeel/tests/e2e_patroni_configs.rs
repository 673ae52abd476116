//! End-to-end: a 3-node cluster started from Patroni settings that pgkeel used to refuse or
//! mishandle (issue 6), on real etcd + PostgreSQL 15:
//!
//! * `wal_keep_segments: 10` (removed in PostgreSQL 13) runs as `wal_keep_size = 160MB` (point 3);
//! * `post_bootstrap` with a quoted SQL command runs with that command as one argument, over the
//!   unix socket, and leaves its table behind (point 4);
//! * `ttl: 20, loop_wait: 10, retry_timeout: 10` breaks `loop_wait + 2*retry_timeout <= ttl`:
//!   the agents start anyway, with Patroni's warning and the adjusted values (point 5);
//! * `pgkeelctl list` without a configuration file finds etcd through `PATRONI_ETCD3_HOSTS`
//!   (point 7);
//! * a second agent with a running member's name exits at CRITICAL, as Patroni does (point 9).
//!
//! Needs root, `/usr/lib/postgresql/15/bin` and `etcd`/`etcdctl` (`scripts/install-deps.sh`).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pgkeel_testkit::{ClusterOptions, PgkeelCluster, eventually, nodeconf, require_tools, wait};
use serde_json::{Value, json};

/// What `post_bootstrap` writes; its quotes must survive the split into words.
const TRACE_NOTE: &str = "made by post_bootstrap";

/// Patroni's warning for the timing settings of this test.
const ADJUSTED: &str = "Violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl=20. \
                        Adjusting loop_wait from 10 to 1 and retry_timeout from 10 to 9";

fn options() -> ClusterOptions {
    let mut params = nodeconf::default_dcs_parameters();
    params.remove("wal_keep_size");
    params.insert("wal_keep_segments".into(), json!(10));
    let psql = format!("{}/psql", nodeconf::PG_BIN_DIR);
    ClusterOptions {
        scope: "patroni-configs".to_owned(),
        ttl: 20,
        loop_wait: 10,
        retry_timeout: 10,
        dcs_parameters: params,
        post_bootstrap: Some(format!(
            r#"{psql} -X -w -v ON_ERROR_STOP=1 -c "CREATE TABLE post_bootstrap_trace AS SELECT '{TRACE_NOTE}' AS note""#
        )),
        pgkeel_bin: Some(env!("CARGO_BIN_EXE_pgkeel").into()),
        pgkeelctl_bin: Some(env!("CARGO_BIN_EXE_pgkeelctl").into()),
        ..ClusterOptions::default()
    }
}

/// A process this test started, killed by PID if the test ends before it exits.
struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn e2e_patroni_settings_that_used_to_break_bootstrap() {
    require_tools();
    let c = PgkeelCluster::start(options()).expect("start the cluster");
    let leader = c
        .wait_healthy(Duration::from_secs(90))
        .expect("a healthy cluster despite wal_keep_segments, post_bootstrap and the timing rule");

    // Point 3: every node runs with the converted setting (16 MB per segment, as Patroni).
    for i in 0..c.len() {
        let v = c.psql(i, "SHOW wal_keep_size").expect("SHOW wal_keep_size");
        assert_eq!(v, "160MB", "node{i}");
    }

    // Point 4: post_bootstrap ran with its SQL as one argument; its table reached the replicas.
    assert_eq!(
        c.psql(leader, "SELECT note FROM post_bootstrap_trace")
            .expect("post_bootstrap_trace on the leader"),
        TRACE_NOTE
    );
    for i in (0..c.len()).filter(|&i| i != leader) {
        let note = wait(
            &c,
            "post_bootstrap_trace on a replica",
            Duration::from_secs(20),
            || {
                c.psql(i, "SELECT note FROM post_bootstrap_trace")
                    .map_err(|e| format!("{e:#}"))
            },
        );
        assert_eq!(note, TRACE_NOTE, "node{i}");
    }

    // Point 5: each agent warned, as Patroni does, and `/config` holds the values that run.
    for i in 0..c.len() {
        let logs = c.logs(i);
        assert!(
            logs.lines()
                .any(|l| l.contains(" WARNING: ") && l.contains(ADJUSTED)),
            "node{i} did not log the adjustment:\n{logs}"
        );
    }
    let config: Value = serde_json::from_str(
        &c.etcd_get("config")
            .expect("etcdctl")
            .expect("the config key"),
    )
    .expect("config is JSON");
    assert_eq!(
        (
            &config["ttl"],
            &config["loop_wait"],
            &config["retry_timeout"]
        ),
        (&json!(20), &json!(1), &json!(9)),
        "{config}"
    );

    // Point 7: pgkeelctl without a configuration file, the DCS from PATRONI_* variables only.
    let home = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_pgkeelctl"))
        .arg("list")
        .env_remove("PATRONICTL_CONFIG_FILE")
        .env("HOME", home.path())
        .env("PATRONI_ETCD3_HOSTS", c.etcd_hosts().join(","))
        .env("PATRONI_SCOPE", "patroni-configs")
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .expect("run pgkeelctl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pgkeelctl list failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..c.len() {
        assert!(stdout.contains(&c.node(i).name), "{stdout}");
    }
    assert!(stdout.contains("Leader"), "{stdout}");

    // Point 9: a second agent named like a running member gives up at Patroni's level.
    let second = Command::new(env!("CARGO_BIN_EXE_pgkeel"))
        .arg(&c.node(0).config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a second agent");
    let mut second = Spawned(second);
    let status = eventually(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || match second.0.try_wait() {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err("still running".to_owned()),
            Err(e) => Err(e.to_string()),
        },
    )
    .expect("the second agent exits");
    let mut stderr = String::new();
    if let Some(mut e) = second.0.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.lines().any(|l| l
            .ends_with(" CRITICAL: Can't start; there is already a node named 'node0' running")),
        "{stderr}"
    );
    // The first node0 is unaffected.
    c.wait_healthy(Duration::from_secs(30))
        .expect("still healthy after the duplicate was refused");
}
