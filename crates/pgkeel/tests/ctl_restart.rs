//! `pgkeelctl restart` against Patroni's own `patronictl` 4.1 on the same keys and REST stubs:
//! same prompts, stdout, errors, exit codes and requests (method, path, body).
// Reference: patroni/ctl.py `restart`, `get_members`, `confirm_members_action`.

mod ctl_compat;

use ctl_compat::{Fixture, Recorded, batman, extend_member};

fn post(port: u16, body: &str) -> Recorded {
    Recorded {
        port,
        method: "POST".into(),
        path: "/restart".into(),
        body: body.into(),
    }
}

#[test]
fn forced_restart_posts_to_every_member_with_the_role() {
    let f = Fixture::start();
    let p = f.stub.port;
    let keys = batman(p, "{}");
    let o = f.compare(
        &keys,
        (200, "restarted"),
        &["restart", "batman", "--force"],
        "",
    );
    assert_eq!(o.code, Some(0));
    assert_eq!(o.requests, [post(p, "{}"), post(p, "{}"), post(p, "{}")]);
    assert!(
        o.stdout.starts_with("+ Cluster: batman") && o.stdout.ends_with(
            "Success: restart on member node0\nSuccess: restart on member node1\nSuccess: restart on member node2\n"
        ),
        "{}",
        o.stdout
    );
    for (role, n) in [
        ("leader", 1),
        ("primary", 1),
        ("replica", 2),
        ("standby", 2),
        ("any", 3),
    ] {
        let o = f.compare(
            &keys,
            (200, ""),
            &["restart", "batman", "-r", role, "--force"],
            "",
        );
        assert_eq!(o.requests.len(), n, "{role}");
    }
    // No standby leader: no member has the role.
    let o = f.compare(
        &keys,
        (200, ""),
        &["restart", "batman", "--role", "standby-leader", "--force"],
        "",
    );
    assert_eq!(o.code, Some(1));
    assert!(o.requests.is_empty());
    // Named members; an unknown one or one without the role is refused.
    let o = f.compare(
        &keys,
        (200, ""),
        &["restart", "batman", "node2", "node1", "--force"],
        "",
    );
    assert_eq!(o.requests.len(), 2);
    for args in [
        &["restart", "batman", "node9", "--force"][..],
        &["restart", "batman", "node1", "-r", "leader", "--force"],
    ] {
        let o = f.compare(&keys, (200, ""), args, "");
        assert_eq!(o.code, Some(1), "{args:?}");
        assert!(o.error.is_some(), "{args:?}");
        assert!(o.requests.is_empty());
    }
}

#[test]
fn each_answer_status_is_reported_like_patronictl() {
    let f = Fixture::start();
    let keys = batman(f.stub.port, "{}");
    for answer in [
        (200, "restarted"),
        (202, "scheduled"),
        (
            409,
            "Cannot schedule a restart: another restart is already scheduled",
        ),
        (503, "restart failed"),
    ] {
        let o = f.compare(
            &keys,
            answer,
            &["restart", "batman", "node1", "--force"],
            "",
        );
        assert_eq!(o.code, Some(0), "{answer:?}");
        assert_eq!(o.requests.len(), 1);
    }
}

#[test]
fn prompted_restart_asks_when_confirms_and_asks_the_version() {
    let f = Fixture::start();
    let p = f.stub.port;
    let keys = batman(p, "{}");
    // now, yes, no version.
    let o = f.compare(&keys, (200, ""), &["restart", "batman", "node1"], "\ny\n\n");
    assert_eq!(o.code, Some(0));
    assert_eq!(o.requests, [post(p, "{}")]);
    assert!(
        o.stdout.contains(
            "When should the restart take place (e.g. <NEXT_HOUR>)  [now]: Are you sure you want to restart members node1? [y/N]: Restart if the PostgreSQL version is less than provided (e.g. 9.5.2)  []: Success: restart on member node1\n"
        ),
        "{}",
        o.stdout
    );
    // A time, yes, a version, and a timeout option.
    let o = f.compare(
        &keys,
        (202, ""),
        &["restart", "batman", "--timeout", "30"],
        "2030-01-02T03:04:05+00:00\ny\n15.2\n",
    );
    assert_eq!(o.code, Some(0));
    assert_eq!(
        o.requests[0].body,
        r#"{"postgres_version": "15.2", "schedule": "2030-01-02T03:04:05+00:00", "timeout": "30"}"#
    );
    assert_eq!(o.requests.len(), 3);
    // A time without offset is local (TZ=UTC).
    let o = f.compare(
        &keys,
        (202, ""),
        &[
            "restart",
            "batman",
            "node0",
            "--scheduled",
            "2030-01-02 03:04",
        ],
        "y\n\n",
    );
    assert_eq!(
        o.requests[0].body,
        r#"{"schedule": "2030-01-02T03:04:00+00:00"}"#
    );
    // No: aborted. Bad version, bad time: errors.
    for (args, input) in [
        (&["restart", "batman"][..], "now\nn\n"),
        (&["restart", "batman"], "now\ny\nfoo\n"),
        (&["restart", "batman"], "now\ny\n9.6\n"),
        (&["restart", "batman"], "tomorrow\n"),
        (&["restart", "batman"], ""),
    ] {
        let o = f.compare(&keys, (200, ""), args, input);
        assert_eq!(o.code, Some(1), "{input:?}");
        assert!(o.requests.is_empty(), "{input:?}");
        assert!(o.error.is_some(), "{input:?}");
    }
}

#[test]
fn pending_scheduled_and_paused_restarts() {
    let f = Fixture::start();
    let p = f.stub.port;
    let mut keys = batman(p, "{}");
    extend_member(&mut keys, "node1", r#","pending_restart":true"#);
    extend_member(
        &mut keys,
        "node2",
        r#","scheduled_restart":{"schedule":"2030-01-02T03:04:05+00:00"}"#,
    );
    // --pending now: only the members needing it.
    let o = f.compare(
        &keys,
        (200, ""),
        &["restart", "batman", "--pending", "--force"],
        "",
    );
    assert_eq!(o.requests, [post(p, r#"{"restart_pending": true}"#)]);
    // --pending scheduled: every member, the other confirmation.
    let o = f.compare(
        &keys,
        (202, ""),
        &[
            "restart",
            "batman",
            "--pending",
            "--scheduled",
            "2030-01-02T03:04:05Z",
        ],
        "y\n\n",
    );
    assert_eq!(o.requests.len(), 3);
    assert!(o.stdout.contains("Is this fine? [y/N]: "), "{}", o.stdout);
    // --force with a schedule flushes an existing scheduled restart first.
    let o = f.compare(
        &keys,
        (202, ""),
        &[
            "restart",
            "batman",
            "node2",
            "--scheduled",
            "2030-01-02T05:00+01:00",
            "--force",
        ],
        "",
    );
    assert_eq!(
        o.requests,
        [
            Recorded {
                port: p,
                method: "DELETE".into(),
                path: "/restart".into(),
                body: String::new(),
            },
            post(p, r#"{"schedule": "2030-01-02T05:00:00+01:00"}"#),
        ]
    );
    // Paused: a scheduled restart is refused, an immediate one is sent.
    let paused = batman(p, r#"{"pause":true}"#);
    let o = f.compare(
        &paused,
        (202, ""),
        &[
            "restart",
            "batman",
            "--scheduled",
            "2030-01-02T03:04:05Z",
            "--force",
        ],
        "",
    );
    assert_eq!(
        o.error.as_deref(),
        Some("Error: Can't schedule restart in the paused state")
    );
    assert!(o.requests.is_empty());
    let o = f.compare(
        &paused,
        (200, ""),
        &["restart", "batman", "node0", "--force"],
        "",
    );
    assert_eq!(o.requests.len(), 1);
}

#[test]
fn any_restarts_a_single_member() {
    let f = Fixture::start();
    let keys = batman(f.stub.port, "{}");
    // The member is random: only the count is compared.
    for bin in [
        pgkeel_testkit::patroni::patronictl_bin(),
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_pgkeelctl")),
    ] {
        let o = f.run(
            &bin,
            &keys,
            (200, ""),
            &["restart", "batman", "--any", "--force"],
            "",
        );
        assert_eq!(o.code, Some(0));
        assert_eq!(o.requests.len(), 1, "{bin:?}");
    }
}

#[test]
fn group_reads_the_citus_group_keys() {
    let f = Fixture::start();
    let keys: Vec<_> = batman(f.stub.port, "{}")
        .into_iter()
        .map(|(k, v)| (format!("1/{k}"), v))
        .collect();
    let o = f.compare(
        &keys,
        (200, ""),
        &["restart", "batman", "--group", "1", "node1", "--force"],
        "",
    );
    assert_eq!(o.requests.len(), 1);
}

#[test]
fn edge_cases_match_patronictl() {
    let f = Fixture::start();
    let p = f.stub.port;
    let keys = batman(p, "{}");
    // --pending with nobody pending: the confirmation names nobody, nothing is sent.
    let o = f.compare(
        &keys,
        (200, ""),
        &["restart", "batman", "--pending"],
        "now\ny\n\n",
    );
    assert_eq!(o.code, Some(0));
    assert!(o.requests.is_empty());
    // --scheduled now is immediate.
    let o = f.compare(
        &keys,
        (200, ""),
        &[
            "restart",
            "batman",
            "node1",
            "--scheduled",
            "now",
            "--force",
        ],
        "",
    );
    assert_eq!(o.requests, [post(p, "{}")]);
    // No leader key: no leader, the others are replicas.
    let leaderless: Vec<_> = keys
        .iter()
        .filter(|(k, _)| k != "leader")
        .cloned()
        .collect();
    for (role, n) in [("leader", 0), ("replica", 3)] {
        let o = f.compare(
            &leaderless,
            (200, ""),
            &["restart", "batman", "-r", role, "--force"],
            "",
        );
        assert_eq!(o.requests.len(), n, "{role}");
    }
    // A standby leader is a leader and a standby-leader, not a primary.
    let standby: Vec<_> = keys
        .iter()
        .map(|(k, v)| {
            let v = if k == "members/node0" {
                v.replace(r#""role":"primary""#, r#""role":"standby_leader""#)
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect();
    for (role, n) in [("standby-leader", 1), ("primary", 0), ("leader", 1)] {
        let o = f.compare(
            &standby,
            (200, ""),
            &["restart", "batman", "-r", role, "--force"],
            "",
        );
        assert_eq!(o.requests.len(), n, "{role}");
    }
}
