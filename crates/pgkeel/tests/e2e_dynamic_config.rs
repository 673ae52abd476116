//! End-to-end: a change to the `postgresql.parameters` of `/config` reaches every member of a
//! real cluster (3 etcd + 3 PostgreSQL 15 + 3 agents on 127.0.0.1) within a cycle or two: a
//! reloadable parameter is in effect everywhere without a restart; a restart-only one is
//! reported as `pending_restart` with Patroni's `pending_restart_reason` in `/patroni` and
//! `/cluster` until `POST /restart {"restart_pending": true}` restarts each member for it.

use std::time::Duration;

use pgkeel_testkit::{PgkeelCluster, eventually, require_tools};
use serde_json::{Value, json};

fn show(c: &PgkeelCluster, i: usize, guc: &str) -> String {
    c.psql(i, &format!("SHOW {guc}")).unwrap_or_default()
}

#[test]
fn e2e_dynamic_parameters_are_reloaded_or_left_pending_until_restart_pending() {
    require_tools();
    let c = PgkeelCluster::start(pgkeel_testkit::fast_options!("e2e-dynconf"))
        .expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let before_max = show(&c, leader, "max_connections");
    let wanted_max = (before_max.parse::<u32>().expect("max_connections") + 17).to_string();
    let pids: Vec<Option<u32>> = (0..c.len()).map(|i| c.postmaster_pid(i)).collect();

    let patch = json!({"postgresql": {"parameters": {
        "work_mem": "7MB",
        "max_connections": wanted_max.parse::<u32>().expect("number"),
    }}});
    let (code, body) = c
        .api_request(leader, "PATCH", "/config", &patch.to_string())
        .expect("PATCH /config");
    assert_eq!(code, 200, "{body}");

    // Reloadable: in effect on every member, nobody restarted.
    for i in 0..c.len() {
        eventually(
            Duration::from_secs(20),
            Duration::from_millis(100),
            || match show(&c, i, "work_mem") {
                v if v == "7MB" => Ok(()),
                v => Err(format!("node {i}: work_mem = {v:?}")),
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));
    }
    let after: Vec<Option<u32>> = (0..c.len()).map(|i| c.postmaster_pid(i)).collect();
    assert_eq!(pids, after, "a reload restarted a server");

    // Restart-only: pending everywhere, with the old and new values.
    let reason = json!({"max_connections": {"old_value": before_max, "new_value": wanted_max}});
    for i in 0..c.len() {
        eventually(Duration::from_secs(20), Duration::from_millis(100), || {
            let (_, status) = c.api_json(i, "/patroni").map_err(|e| e.to_string())?;
            if status["pending_restart"] == Value::Bool(true)
                && status["pending_restart_reason"] == reason
            {
                Ok(())
            } else {
                Err(format!("node {i}: {status}"))
            }
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));
    }
    eventually(Duration::from_secs(20), Duration::from_millis(100), || {
        let view = c.cluster_view()?;
        let members = view["members"].as_array().cloned().unwrap_or_default();
        if members.len() == 3
            && members.iter().all(|m| {
                m["pending_restart"] == Value::Bool(true) && m["pending_restart_reason"] == reason
            })
        {
            Ok(())
        } else {
            Err(view.to_string())
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));

    // restart --pending: replicas first (a standby needs max_connections >= the primary's),
    // then the leader; each comes back with the new value and nothing pending.
    let mut order: Vec<usize> = (0..c.len()).filter(|&i| i != leader).collect();
    order.push(leader);
    for i in order {
        let (code, body) = c
            .api_request(i, "POST", "/restart", r#"{"restart_pending": true}"#)
            .expect("POST /restart");
        assert_eq!(
            (code, body.as_str()),
            (200, "restarted successfully"),
            "node {i}"
        );
        c.wait_healthy(Duration::from_secs(30))
            .expect("healthy after the restart");
        assert_eq!(show(&c, i, "max_connections"), wanted_max, "node {i}");
        eventually(Duration::from_secs(20), Duration::from_millis(100), || {
            let (_, status) = c.api_json(i, "/patroni").map_err(|e| e.to_string())?;
            if status.get("pending_restart").is_none()
                && status.get("pending_restart_reason").is_none()
            {
                Ok(())
            } else {
                Err(format!("node {i}: {status}"))
            }
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));
        // Nothing pending any more: a second restart --pending is refused.
        let (code, body) = c
            .api_request(i, "POST", "/restart", r#"{"restart_pending": true}"#)
            .expect("POST /restart");
        assert_eq!(
            (code, body.as_str()),
            (503, "restart conditions are not satisfied"),
            "node {i}"
        );
    }
    assert_eq!(
        c.wait_healthy(Duration::from_secs(30)).expect("healthy"),
        leader
    );
}

fn output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The operator's path: `pgkeelctl edit-config --pg max_connections=...` raises
/// `pending_restart` on every member (shown by `patronictl list`), and Patroni's own
/// `patronictl restart CLUSTER --pending --force` restarts the whole cluster for it, member by
/// member; afterwards nothing is pending and the leader is unchanged.
#[test]
fn e2e_edit_config_pg_raises_pending_restart_and_restart_pending_clears_it() {
    require_tools();
    pgkeel_testkit::patroni::require_patronictl();
    let scope = "e2e-pending";
    let c = PgkeelCluster::start(pgkeel_testkit::fast_options!(scope)).expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let before: u32 = show(&c, leader, "max_connections")
        .parse()
        .expect("max_connections");
    // Lower, so replicas restarted after the leader never run below the primary's value.
    assert!(
        before >= 30,
        "max_connections {before} too low for this test"
    );
    let wanted = (before - 7).to_string();

    let out = c
        .ctl(&[
            "edit-config",
            scope,
            "--pg",
            &format!("max_connections={wanted}"),
            "--force",
        ])
        .expect("pgkeelctl edit-config");
    assert!(
        out.status.success() && output(&out).contains("Configuration changed"),
        "{}",
        output(&out)
    );
    eventually(Duration::from_secs(30), Duration::from_millis(200), || {
        let out = c
            .patronictl(&["list", scope, "-f", "json"])
            .map_err(|e| e.to_string())?;
        let rows: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        let rows = rows.as_array().cloned().unwrap_or_default();
        if rows.len() == 3 && rows.iter().all(|r| r["Pending restart"] == "*") {
            Ok(())
        } else {
            Err(format!("{rows:?}"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));

    let out = c
        .patronictl(&["restart", scope, "--pending", "--force"])
        .expect("patronictl restart --pending");
    let text = output(&out);
    for i in 0..c.len() {
        assert!(
            text.contains(&format!("Success: restart on member {}", c.node(i).name)),
            "{text}\n{}",
            c.log_tails(20)
        );
    }
    assert_eq!(
        c.wait_healthy(Duration::from_secs(30)).expect("healthy"),
        leader,
        "the restart moved the leader"
    );
    // A replica restarted before it replayed the primary's new setting cannot run below the
    // primary's old one: it starts with that (Patroni's words in the log) and stays pending;
    // one more `restart --pending` once it has replayed the change brings it to the new value.
    for round in 0..3 {
        eventually(
            Duration::from_secs(20),
            Duration::from_millis(200),
            || match (0..c.len()).all(|i| c.psql(i, "SELECT 1").is_ok()) {
                true => Ok(()),
                false => Err("a member does not answer".to_string()),
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));
        if (0..c.len()).all(|i| show(&c, i, "max_connections") == wanted) {
            break;
        }
        assert!(
            round < 2,
            "still not {wanted} everywhere\n{}",
            c.log_tails(20)
        );
        let out = c
            .patronictl(&["restart", scope, "--pending", "--force"])
            .expect("patronictl restart --pending");
        assert!(!output(&out).contains("Failed"), "{}", output(&out));
    }
    for i in 0..c.len() {
        assert_eq!(show(&c, i, "max_connections"), wanted, "node {i}");
        eventually(Duration::from_secs(20), Duration::from_millis(100), || {
            let (_, status) = c.api_json(i, "/patroni").map_err(|e| e.to_string())?;
            if status.get("pending_restart").is_none() {
                Ok(())
            } else {
                Err(format!("node {i}: {status}"))
            }
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));
    }
}
