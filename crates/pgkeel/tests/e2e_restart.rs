//! End-to-end: `POST /restart` (what `patronictl restart` sends) restarts PostgreSQL through
//! the HA loop on a real cluster (3 etcd + 3 PostgreSQL 15 + 3 agents on 127.0.0.1): the leader
//! keeps its key and role, a replica comes back streaming, and a restart whose conditions do not
//! hold is refused with Patroni's words.

use std::time::Duration;

use pgkeel_testkit::{ClusterOptions, PgkeelCluster, require_tools};

fn options(scope: &str) -> ClusterOptions {
    pgkeel_testkit::fast_options!(scope)
}

#[test]
fn e2e_restart_request_restarts_postgres_in_place_through_the_loop() {
    require_tools();
    let c = PgkeelCluster::start(options("e2e-restart")).expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let replica = (0..c.len()).find(|&i| i != leader).expect("a replica");

    for node in [leader, replica] {
        let before = c.postmaster_pid(node).expect("postmaster");
        // The replica's request carries a `timeout` the loop enforces; this restart ends
        // well within it (one that does not is answered 503 `restart failed`, see
        // rules_requests `a_restart_that_outlasts_its_timeout_is_answered_restart_failed`).
        let request = if node == replica {
            r#"{"timeout": 30}"#
        } else {
            ""
        };
        let (code, body) = c
            .api_request(node, "POST", "/restart", request)
            .expect("POST /restart");
        assert_eq!(
            (code, body.as_str()),
            (200, "restarted successfully"),
            "{}",
            c.log_tails(20)
        );
        let after = c
            .postmaster_pid(node)
            .expect("postmaster after the restart");
        assert_ne!(before, after, "PostgreSQL was not restarted");
        let now_leader = c
            .wait_healthy(Duration::from_secs(30))
            .expect("healthy after the restart");
        assert_eq!(now_leader, leader, "a restart moved the leader");
        assert!(
            c.logs(node).contains("postgres restarted on request"),
            "{}",
            c.log_tails(20)
        );
    }
    c.psql(leader, "CREATE TABLE after_restart (x int)")
        .expect("the leader takes writes");

    // Conditions that do not hold: refused, nothing restarted.
    let before = c.postmaster_pid(leader).expect("postmaster");
    let (code, body) = c
        .api_request(leader, "POST", "/restart", r#"{"role":"replica"}"#)
        .expect("POST /restart");
    assert_eq!(
        (code, body.as_str()),
        (503, "restart conditions are not satisfied")
    );
    assert_eq!(c.postmaster_pid(leader), Some(before));
}

/// `POST /reinitialize` (what `patronictl reinit` sends) wipes a replica's data directory and
/// clones it again; the leader refuses with Patroni's words. Driven once through the REST API
/// and once through Patroni's own patronictl.
#[test]
fn e2e_reinitialize_reclones_a_replica_and_the_leader_refuses() {
    require_tools();
    pgkeel_testkit::patroni::require_patronictl();
    let c = PgkeelCluster::start(options("e2e-reinit")).expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let replicas: Vec<usize> = (0..c.len()).filter(|&i| i != leader).collect();

    let (code, body) = c
        .api_request(leader, "POST", "/reinitialize", "")
        .expect("POST /reinitialize");
    assert_eq!(
        (code, body.as_str()),
        (503, "I am the leader, can not reinitialize")
    );

    c.psql(leader, "CREATE TABLE before_reinit AS SELECT 42 AS x")
        .expect("write on the leader");
    for (round, &r) in replicas.iter().enumerate() {
        // A file only the old data directory has: gone once the directory was re-cloned.
        let marker = c.node(r).data_dir.join("pgkeel-test-marker");
        std::fs::write(&marker, b"old").expect("marker");
        if round == 0 {
            let (code, body) = c
                .api_request(r, "POST", "/reinitialize", r#"{"from_leader": true}"#)
                .expect("POST /reinitialize");
            assert_eq!(
                (code, body.as_str()),
                (200, "reinitialize started"),
                "{}",
                c.log_tails(20)
            );
        } else {
            let name = c.node(r).name.clone();
            let out = c
                .patronictl(&["reinit", "e2e-reinit", &name, "--force"])
                .expect("patronictl reinit");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success()
                    && stdout.contains(&format!("Success: reinitialize for member {name}")),
                "patronictl reinit: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // The answer comes as the loop decides; the old directory goes right after.
        pgkeel_testkit::eventually(Duration::from_secs(30), Duration::from_millis(50), || {
            if marker.exists() {
                Err(format!("the data directory of node {r} was not re-cloned"))
            } else {
                Ok(())
            }
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));
        let back = c
            .wait_healthy(Duration::from_secs(60))
            .expect("healthy after the re-clone");
        assert_eq!(back, leader, "a reinitialize moved the leader");
        // The member key may still show the old server for a moment: poll the new one.
        pgkeel_testkit::eventually(
            Duration::from_secs(60),
            Duration::from_millis(100),
            || match c.psql(r, "SELECT x FROM before_reinit") {
                Ok(x) if x == "42" => Ok(()),
                other => Err(format!("node {r}: {other:?}")),
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));
        assert!(
            c.logs(r)
                .contains("reinitializing: trying to bootstrap from leader"),
            "{}",
            c.log_tails(20)
        );
    }
}

/// A time `secs` from now as patronictl's `--scheduled` takes it (ISO 8601 with a zone).
fn in_seconds(secs: i64) -> String {
    let at = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .expect("a time in range");
    format!("{}+00:00", at.strftime("%Y-%m-%dT%H:%M:%S"))
}

fn stdout(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `patronictl restart --scheduled` (POST /restart with `schedule`): published in the member
/// key and `/patroni`, refused a second time, carried out at its time; one scheduled for later
/// is removed by `patronictl flush ... restart`; in pause nothing can be scheduled.
#[test]
fn e2e_scheduled_restart_runs_at_its_time_and_a_flushed_one_does_not() {
    require_tools();
    pgkeel_testkit::patroni::require_patronictl();
    let scope = "e2e-sched-restart";
    let c = PgkeelCluster::start(options(scope)).expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let replica = (0..c.len()).find(|&i| i != leader).expect("a replica");
    let name = c.node(replica).name.clone();
    let before = c.postmaster_pid(replica).expect("postmaster");

    // Far enough out for the checks below (patronictl takes seconds per call on a busy machine).
    let at = in_seconds(25);
    let out = c
        .patronictl(&["restart", scope, &name, "--scheduled", &at, "--force"])
        .expect("patronictl restart --scheduled");
    assert!(
        out.status.success()
            && stdout(&out).contains(&format!("Success: restart scheduled on member {name}")),
        "{}",
        stdout(&out)
    );
    // Published: `/patroni` (without the start time) and the member key (`list -e`).
    let (_, status) = c.api_get(replica, "/patroni").expect("GET /patroni");
    let status: serde_json::Value = serde_json::from_str(&status).expect("JSON");
    let shown = &status["scheduled_restart"];
    assert!(
        shown["schedule"].as_str().is_some() && shown.get("postmaster_start_time").is_none(),
        "{status}"
    );
    pgkeel_testkit::eventually(Duration::from_secs(10), Duration::from_millis(100), || {
        let out = c
            .patronictl(&["list", scope, "-e", "-f", "json"])
            .map_err(|e| e.to_string())?;
        let rows: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        let row = rows
            .as_array()
            .and_then(|r| r.iter().find(|m| m["Member"] == name.as_str()))
            .cloned()
            .unwrap_or_default();
        match row["Scheduled restart"].as_str() {
            Some(s) if !s.is_empty() => Ok(()),
            _ => Err(format!("not in list -e: {row}")),
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));
    let (code, body) = c
        .api_request(
            replica,
            "POST",
            "/restart",
            &format!(r#"{{"schedule":"{}"}}"#, in_seconds(60)),
        )
        .expect("POST /restart");
    assert_eq!(
        (code, body.as_str()),
        (409, "Another restart is already scheduled")
    );
    assert_eq!(
        c.postmaster_pid(replica),
        Some(before),
        "restarted before its time"
    );

    pgkeel_testkit::eventually(
        Duration::from_secs(40),
        Duration::from_millis(100),
        || match c.postmaster_pid(replica) {
            Some(pid) if pid != before => Ok(()),
            other => Err(format!("not restarted yet: {other:?}")),
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));
    assert!(
        c.logs(replica).contains("Manual scheduled restart at"),
        "{}",
        c.log_tails(20)
    );
    pgkeel_testkit::eventually(Duration::from_secs(20), Duration::from_millis(100), || {
        let (_, s) = c.api_get(replica, "/patroni").map_err(|e| e.to_string())?;
        if s.contains("scheduled_restart") {
            Err(format!("still scheduled: {s}"))
        } else {
            Ok(())
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));
    c.wait_healthy(Duration::from_secs(30))
        .expect("healthy after the restart");

    // Scheduled for later on the leader, then flushed: nothing restarts.
    let leader_name = c.node(leader).name.clone();
    let leader_pid = c.postmaster_pid(leader).expect("postmaster");
    let (code, body) = c
        .api_request(
            leader,
            "POST",
            "/restart",
            &format!(r#"{{"schedule":"{}","role":"primary"}}"#, in_seconds(3600)),
        )
        .expect("POST /restart");
    assert_eq!((code, body.as_str()), (202, "Restart scheduled"));
    pgkeel_testkit::eventually(Duration::from_secs(10), Duration::from_millis(100), || {
        let out = c
            .patronictl(&["flush", scope, "restart", "--force"])
            .map_err(|e| e.to_string())?;
        let text = stdout(&out);
        if text.contains(&format!(
            "Success: flush scheduled restart for member {leader_name}"
        )) {
            Ok(())
        } else {
            Err(text)
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));
    let (code, body) = c
        .api_request(leader, "DELETE", "/restart", "")
        .expect("DELETE /restart");
    assert_eq!((code, body.as_str()), (404, "no restarts are scheduled"));
    assert_eq!(c.postmaster_pid(leader), Some(leader_pid));

    // In pause, nothing can be scheduled.
    let out = c
        .patronictl(&["pause", scope, "--wait"])
        .expect("patronictl pause");
    assert!(out.status.success(), "{}", stdout(&out));
    let (code, body) = c
        .api_request(
            replica,
            "POST",
            "/restart",
            &format!(r#"{{"schedule":"{}"}}"#, in_seconds(60)),
        )
        .expect("POST /restart");
    assert_eq!(
        (code, body.as_str()),
        (500, "Can't schedule restart in the paused state")
    );
}
