//! End-to-end: `synchronous_mode: on` on a real cluster (3 etcd + 3 PostgreSQL 15 + 3 agents
//! on 127.0.0.1). Turned on at run time through `/config`, the leader names one replica in
//! `synchronous_standby_names` and then in the `sync` key; Patroni's own `patronictl list`
//! shows it as `Sync Standby`; `/sync` and `/async` answer by it; a SIGTERMed synchronous
//! standby is released (the other replica named) before it stops; a switchover to the other
//! replica is refused with Patroni's 412, one to the synchronous standby works; when the leader's
//! host dies, its synchronous standby is promoted; turned off, the key goes and the parameter is
//! cleared. In strict mode a commit waits while no standby is left and is acknowledged once one
//! returns. Switched at run time with `edit-config` (`pgkeelctl` and Patroni's `patronictl`) from
//! off to on, to quorum and off, a `nosync` member is never named in either mode. A replica
//! lagging beyond `maximum_lag_on_syncnode` is not named when the synchronous standby leaves,
//! and is once it has caught up.

use std::time::Duration;

use pgkeel_testkit::patroni::require_patronictl;
use pgkeel_testkit::{PgkeelCluster, require_tools, wait};
use serde_json::{Value, json};

fn patch_config(c: &PgkeelCluster, node: usize, patch: Value) {
    let (code, body) = c
        .api_request(node, "PATCH", "/config", &patch.to_string())
        .expect("PATCH /config");
    assert_eq!(code, 200, "{body}");
}

#[test]
fn e2e_synchronous_mode_names_a_standby_and_fails_over_only_to_it() {
    require_tools();
    require_patronictl();
    let mut c =
        PgkeelCluster::start(pgkeel_testkit::fast_options!("e2e-sync")).expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let leader_name = c.node(leader).name.clone();
    assert_eq!(c.sync_key(), Value::Null, "asynchronous at first");

    patch_config(&c, leader, json!({"synchronous_mode": true}));

    // The key names one replica, and the leader's parameter names the same one.
    let standby_name = wait(&c, "a synchronous standby", Duration::from_secs(30), || {
        let key = c.sync_key();
        match (key["leader"].as_str(), key["sync_standby"].as_str()) {
            (Some(l), Some(s)) if l == leader_name && !s.contains(',') => Ok(s.to_string()),
            _ => Err(key.to_string()),
        }
    });
    assert_eq!(key_order(&c), ["leader", "quorum", "sync_standby"]);
    assert_eq!(c.sync_key()["quorum"], json!(0));
    assert_eq!(c.show(leader, "synchronous_standby_names"), standby_name);
    let standby = c.index_of(&standby_name).expect("the standby is a member");
    let other = (0..c.len())
        .find(|&i| i != leader && i != standby)
        .expect("a third node");
    assert_eq!(
        c.psql(
            leader,
            &format!(
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = '{standby_name}'"
            )
        )
        .expect("pg_stat_replication"),
        "sync"
    );

    // Health checks and Patroni's own patronictl see the synchronous role.
    // (Each agent answers from its own last view of the DCS: poll until it has cycled.)
    for (node, path, want) in [
        (standby, "/sync", 200),
        (other, "/sync", 503),
        (other, "/async", 200),
        (standby, "/async", 503),
    ] {
        wait(
            &c,
            &format!("GET {path} on node {node}"),
            Duration::from_secs(20),
            || match c.api_get(node, path).map_err(|e| e.to_string())? {
                (code, _) if code == want => Ok(()),
                (code, body) => Err(format!("{code} {body}")),
            },
        );
    }
    let out = c
        .patronictl(&["list", "-f", "json"])
        .expect("patronictl list");
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let role_of = |name: &str| {
        rows.iter()
            .find(|r| r["Member"] == name)
            .and_then(|r| r["Role"].as_str())
            .map(str::to_string)
    };
    assert_eq!(
        role_of(&standby_name).as_deref(),
        Some("Sync Standby"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(role_of(&c.node(other).name).as_deref(), Some("Replica"));

    // SIGTERM of the synchronous standby's agent: it first asks to be released, and the
    // primary takes it out of the key before it stops, then names the other replica.
    c.terminate_agent(standby, Duration::from_secs(60))
        .expect("SIGTERM the standby's agent");
    assert!(
        c.logs(standby)
            .contains("Waiting for primary to release us from synchronous standby"),
        "{}",
        c.log_tails(30)
    );
    let key = c.sync_key();
    assert!(
        !key["sync_standby"]
            .as_str()
            .unwrap_or_default()
            .split(',')
            .any(|s| s == standby_name),
        "the stopped standby is still in the key: {key}"
    );
    let other_name = c.node(other).name.clone();
    wait(
        &c,
        "the other replica named",
        Duration::from_secs(30),
        || {
            let key = c.sync_key();
            if key["sync_standby"] == json!(other_name) {
                Ok(())
            } else {
                Err(key.to_string())
            }
        },
    );
    c.restart_agent(standby).expect("restart the agent");
    c.wait_healthy(Duration::from_secs(60))
        .expect("healthy again");
    let (standby, other, standby_name) = (other, standby, other_name);

    // A switchover goes only to the synchronous standby (Patroni's 412 and words).
    let (code, body) = c
        .api_request(
            leader,
            "POST",
            "/switchover",
            &json!({"leader": leader_name, "candidate": c.node(other).name}).to_string(),
        )
        .expect("POST /switchover");
    assert_eq!(
        (code, body.as_str()),
        (412, "candidate name does not match with sync_standby")
    );
    let (code, body) = c
        .api_request(
            leader,
            "POST",
            "/switchover",
            &json!({"leader": leader_name, "candidate": standby_name}).to_string(),
        )
        .expect("POST /switchover");
    assert_eq!(code, 200, "{body}\n{}", c.log_tails(30));
    let leader = c
        .wait_for_leader(Duration::from_secs(30))
        .expect("a leader");
    assert_eq!(leader, standby, "{}", c.log_tails(30));
    let leader_name = standby_name;

    // The new primary names a synchronous standby of its own.
    let standby_name = wait(
        &c,
        "a new synchronous standby",
        Duration::from_secs(30),
        || {
            let key = c.sync_key();
            match (key["leader"].as_str(), key["sync_standby"].as_str()) {
                (Some(l), Some(s)) if l == leader_name => Ok(s.to_string()),
                _ => Err(key.to_string()),
            }
        },
    );
    let standby = c.index_of(&standby_name).expect("the standby is a member");

    // A commit the leader acknowledged is on the synchronous standby.
    c.psql(
        leader,
        "CREATE TABLE acked (id int); INSERT INTO acked VALUES (1)",
    )
    .expect("write on the leader");

    // The leader's host dies: only the synchronous standby may take over.
    c.kill_agent(leader).expect("kill the agent");
    c.kill_postmaster(leader).expect("kill the postmaster");
    let new_leader = wait(&c, "a new leader", Duration::from_secs(60), || {
        match c.leader_index() {
            Some(l) if l != leader => Ok(l),
            other => Err(format!("leader {other:?}")),
        }
    });
    assert_eq!(new_leader, standby, "{}", c.log_tails(30));
    wait(
        &c,
        "the new primary takes writes",
        Duration::from_secs(30),
        || {
            c.psql(standby, "INSERT INTO acked VALUES (2)")
                .map_err(|e| e.to_string())
        },
    );
    assert_eq!(
        c.psql(standby, "SELECT count(*) FROM acked")
            .expect("count"),
        "2"
    );
    wait(
        &c,
        "the new primary in the sync key",
        Duration::from_secs(30),
        || {
            let key = c.sync_key();
            if key["leader"] == json!(standby_name) {
                Ok(())
            } else {
                Err(key.to_string())
            }
        },
    );

    // Off again: the key is deleted and the parameter cleared.
    patch_config(&c, standby, json!({"synchronous_mode": false}));
    c.wait_asynchronous(standby, Duration::from_secs(30))
        .expect("asynchronous again");
}

/// The `sync` key's field names in the order they are stored (Patroni writes leader, quorum,
/// sync_standby).
fn key_order(c: &PgkeelCluster) -> Vec<String> {
    let raw = c.etcd_get("sync").ok().flatten().unwrap_or_default();
    let mut fields: Vec<(usize, String)> = ["leader", "quorum", "sync_standby"]
        .iter()
        .filter_map(|f| raw.find(&format!("\"{f}\"")).map(|p| (p, f.to_string())))
        .collect();
    fields.sort();
    fields.into_iter().map(|(_, f)| f).collect()
}

/// Kills the child on drop, so a failing test leaves no psql behind.
struct Reap(Option<std::process::Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn e2e_strict_mode_blocks_commits_without_a_standby_and_resumes_when_one_returns() {
    require_tools();
    let mut c = PgkeelCluster::start(pgkeel_testkit::fast_options!("e2e-sync-strict"))
        .expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let leader_name = c.node(leader).name.clone();
    patch_config(
        &c,
        leader,
        json!({"synchronous_mode": true, "synchronous_mode_strict": true}),
    );
    wait(&c, "a synchronous standby", Duration::from_secs(30), || {
        let key = c.sync_key();
        match (key["leader"].as_str(), key["sync_standby"].as_str()) {
            (Some(l), Some(_)) if l == leader_name => Ok(()),
            _ => Err(key.to_string()),
        }
    });
    c.psql(leader, "CREATE TABLE strict_acked (id int)")
        .expect("create a table");

    // Both replicas die (agent and server): nobody can confirm a commit.
    let replicas: Vec<usize> = (0..c.len()).filter(|&i| i != leader).collect();
    for &r in &replicas {
        c.kill_agent(r).expect("kill the agent");
        c.kill_postmaster(r).expect("kill the postmaster");
    }
    wait(&c, "no walsender left", Duration::from_secs(30), || match c
        .psql(leader, "SELECT count(*) FROM pg_stat_replication")
    {
        Ok(n) if n == "0" => Ok(()),
        other => Err(format!("{other:?}")),
    });

    // A commit now waits for a synchronous standby instead of being acknowledged unprotected.
    let mut insert = Reap(Some(
        c.psql_spawn(leader, "INSERT INTO strict_acked VALUES (1)")
            .expect("start psql"),
    ));
    wait(
        &c,
        "the commit waiting for a standby",
        Duration::from_secs(20),
        || match c.psql(
            leader,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
        ) {
            Ok(n) if n == "1" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    let child = insert.0.as_mut().expect("the psql child");
    assert!(
        child.try_wait().expect("psql state").is_none(),
        "the commit returned without a synchronous standby"
    );
    wait(
        &c,
        "the strict-mode warning",
        Duration::from_secs(20),
        || {
            if c.logs(leader).contains(
            "No active replication connections from Patroni members and synchronous_mode_strict is requested.",
        ) {
            Ok(())
        } else {
            Err("not logged yet".to_string())
        }
        },
    );

    // One replica comes back: the commit is acknowledged, and it is on that replica.
    let back = replicas[0];
    c.restart_agent(back).expect("restart the agent");
    let done = wait(
        &c,
        "the commit acknowledged",
        Duration::from_secs(60),
        || {
            let child = insert.0.as_mut().ok_or("no child")?;
            match child.try_wait().map_err(|e| e.to_string())? {
                Some(status) => Ok(status),
                None => Err("still waiting".to_string()),
            }
        },
    );
    assert!(done.success(), "psql failed after the standby returned");
    insert.0 = None;
    wait(
        &c,
        "the row on the returned standby",
        Duration::from_secs(20),
        || match c.psql(back, "SELECT count(*) FROM strict_acked") {
            Ok(n) if n == "1" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    assert_eq!(c.leader_index(), Some(leader), "the primary changed");
}

/// node0 leads (the others are `nofailover`); node2 is also `nosync`.
fn nosync_options(scope: &str) -> pgkeel_testkit::ClusterOptions {
    let tags = |extra: &[(&str, Value)]| -> std::collections::BTreeMap<String, Value> {
        extra
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect()
    };
    pgkeel_testkit::ClusterOptions {
        tags: vec![
            tags(&[]),
            tags(&[("nofailover", json!(true))]),
            tags(&[("nofailover", json!(true)), ("nosync", json!(true))]),
        ],
        ..pgkeel_testkit::fast_options!(scope)
    }
}

#[test]
fn e2e_modes_switch_at_run_time_with_edit_config_and_a_nosync_member_is_never_synchronous() {
    require_tools();
    require_patronictl();
    let c = PgkeelCluster::start(nosync_options("e2e-sync-modes")).expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    assert_eq!(leader, 0, "node0 is the only member allowed to lead");
    let edit = |mode: &str, patroni: bool| {
        let set = format!("synchronous_mode={mode}");
        let args = ["edit-config", "--set", set.as_str(), "--force"];
        let out = if patroni {
            c.patronictl(&args)
        } else {
            c.ctl(&args)
        }
        .expect("edit-config");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // Names of the standbys the key lists, and the leader's parameter, once they agree.
    let listed = |key: &Value| -> Vec<String> {
        key["sync_standby"]
            .as_str()
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };

    // `on` with pgkeelctl: only node1 may be synchronous.
    edit("on", false);
    wait(&c, "node1 synchronous", Duration::from_secs(30), || {
        let key = c.sync_key();
        if key["leader"] == json!("node0") && listed(&key) == ["node1"] {
            Ok(())
        } else {
            Err(key.to_string())
        }
    });
    assert_eq!(c.show(0, "synchronous_standby_names"), "node1");

    // `quorum` with Patroni's patronictl: node1 is the only voter, named ANY 1.
    edit("quorum", true);
    wait(&c, "quorum of node1", Duration::from_secs(30), || {
        let key = c.sync_key();
        let ssn = c.show(0, "synchronous_standby_names");
        if listed(&key) == ["node1"] && ssn.starts_with("ANY 1 (") {
            Ok(())
        } else {
            Err(format!("{key} / {ssn}"))
        }
    });
    let ssn = c.show(0, "synchronous_standby_names");
    assert!(ssn.contains("node1") && !ssn.contains("node2"), "{ssn}");
    // Several cycles later node2 still is neither in the key nor in the parameter.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        let key = c.sync_key();
        assert!(!listed(&key).contains(&"node2".to_string()), "{key}");
        assert!(
            !c.show(0, "synchronous_standby_names").contains("node2"),
            "nosync member named"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Off again with pgkeelctl.
    edit("off", false);
    c.wait_asynchronous(0, Duration::from_secs(30))
        .expect("asynchronous again");
}

/// Resumes a SIGSTOPped process when dropped, so that a failing test leaves nothing frozen
/// (a stopped WAL receiver would hold up the server's shutdown).
struct Frozen(nix::unistd::Pid);

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGCONT);
    }
}

#[test]
fn e2e_a_standby_lagging_beyond_maximum_lag_on_syncnode_is_not_made_synchronous() {
    require_tools();
    let mut c = PgkeelCluster::start(pgkeel_testkit::fast_options!("e2e-sync-lag"))
        .expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let leader_name = c.node(leader).name.clone();
    patch_config(
        &c,
        leader,
        json!({"synchronous_mode": true, "maximum_lag_on_syncnode": 1_048_576}),
    );
    let named = |key: &Value| -> Vec<String> {
        key["sync_standby"]
            .as_str()
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let standby_name = wait(&c, "a synchronous standby", Duration::from_secs(30), || {
        let key = c.sync_key();
        match named(&key).as_slice() {
            [s] if key["leader"] == json!(leader_name) => Ok(s.clone()),
            _ => Err(key.to_string()),
        }
    });
    let standby = c.index_of(&standby_name).expect("a member");
    let lagging = (0..c.len())
        .find(|&i| i != leader && i != standby)
        .expect("a third node");
    let lagging_name = c.node(lagging).name.clone();

    // The other replica's WAL receiver stops, and 4 MB of WAL later it lags by more than
    // maximum_lag_on_syncnode (the synchronous standby confirms every commit meanwhile).
    let receiver: i32 = wait(
        &c,
        "the WAL receiver's pid",
        Duration::from_secs(20),
        || {
            c.psql(lagging, "SELECT pid FROM pg_stat_wal_receiver")
                .map_err(|e| e.to_string())?
                .trim()
                .parse()
                .map_err(|e| format!("{e}"))
        },
    );
    let receiver = nix::unistd::Pid::from_raw(receiver);
    nix::sys::signal::kill(receiver, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
    let frozen = Frozen(receiver);
    c.psql(
        leader,
        "CREATE TABLE lag_filler AS SELECT repeat('x', 1000) AS t FROM generate_series(1, 4000)",
    )
    .expect("write 4 MB");

    // The synchronous standby leaves (SIGTERM: released first, then stopped). The lagging
    // replica is the only one left, and it is named neither in the key nor in the parameter.
    c.terminate_agent(standby, Duration::from_secs(60))
        .expect("SIGTERM the standby's agent");
    wait(
        &c,
        "the standby out of the key",
        Duration::from_secs(30),
        || {
            let key = c.sync_key();
            if named(&key).is_empty() && c.show(leader, "synchronous_standby_names").is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{key} / {}",
                    c.show(leader, "synchronous_standby_names")
                ))
            }
        },
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    while std::time::Instant::now() < deadline {
        let key = c.sync_key();
        assert!(named(&key).is_empty(), "lagging member named: {key}");
        let ssn = c.show(leader, "synchronous_standby_names");
        assert!(!ssn.contains(&lagging_name), "lagging member named: {ssn}");
        std::thread::sleep(Duration::from_millis(200));
    }
    c.psql(
        leader,
        "INSERT INTO lag_filler VALUES ('unprotected but acknowledged')",
    )
    .expect("writes go on, asynchronously");

    // Once it has caught up it becomes the synchronous standby.
    drop(frozen);
    wait(
        &c,
        "the caught-up replica named",
        Duration::from_secs(30),
        || {
            let key = c.sync_key();
            if named(&key) == [lagging_name.clone()]
                && c.show(leader, "synchronous_standby_names") == lagging_name
            {
                Ok(())
            } else {
                Err(key.to_string())
            }
        },
    );
}
