//! `pgkeelctl switchover` / `failover` against Patroni's own `patronictl` 4.1: both run on the
//! same setup (a real etcd holding Patroni-format keys of a fake cluster whose members'
//! `api_url` point at an in-process HTTP stub), and must print the same stdout (timestamps
//! normalised), exit alike, print the same error, send the same requests and write the same
//! `failover` key.
// Reference: patroni/ctl.py `_do_failover_or_switchover`, `manual_failover`; docs/patronictl.rst.

mod ctl_compat;

use ctl_compat::{Fixture, Recorded, batman};

const OK: (u16, &str) = (200, r#"Successfully switched over to "node1""#);

#[test]
fn forced_switchover_posts_like_patronictl_and_prints_both_topologies() {
    let f = Fixture::start();
    let keys = batman(f.stub.port, r#"{"ttl":30}"#);
    let o = f.compare(
        &keys,
        OK,
        &[
            "switchover",
            "--leader",
            "node0",
            "--candidate",
            "node1",
            "--force",
        ],
        "",
    );
    assert_eq!(o.code, Some(0));
    assert_eq!(
        o.requests,
        [Recorded {
            port: f.stub.port,
            method: "POST".into(),
            path: "/switchover".into(),
            body: r#"{"candidate": "node1", "leader": "node0"}"#.into()
        }]
    );
    assert!(
        o.stdout
            .starts_with("Current cluster topology\n+ Cluster: batman"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("<TS> Successfully switched over to \"node1\"\n"),
        "{}",
        o.stdout
    );
    assert_eq!(
        o.stdout.matches("+ Cluster: batman").count(),
        2,
        "{}",
        o.stdout
    );

    // --primary is --leader; without --candidate, --force sends a null candidate.
    let o = f.compare(
        &keys,
        OK,
        &["switchover", "batman", "--primary", "node0", "--force"],
        "",
    );
    assert_eq!(
        o.requests[0].body,
        r#"{"candidate": null, "leader": "node0"}"#
    );
    // The server's refusal is printed and exits 0, without the second table.
    let o = f.compare(
        &keys,
        (412, "candidate name does not match with sync_standby"),
        &["switchover", "--candidate", "node1", "--force"],
        "",
    );
    assert_eq!(o.code, Some(0));
    assert!(
        o.stdout.ends_with(
            "Switchover failed, details: 412, candidate name does not match with sync_standby\n"
        ),
        "{}",
        o.stdout
    );
    // An old server without /switchover is asked /failover.
    let o = f.compare(
        &keys,
        (501, "Server does not support this operation"),
        &["switchover", "--candidate", "node1", "--force"],
        "",
    );
    assert_eq!(
        o.requests
            .iter()
            .map(|r| r.path.as_str())
            .collect::<Vec<_>>(),
        ["/switchover", "/failover"]
    );
}

#[test]
fn interactive_switchover_prompts_and_confirms_like_patronictl() {
    let f = Fixture::start();
    let keys = batman(f.stub.port, r#"{"ttl":30}"#);
    // Primary (default), candidate, when (default now), confirm.
    let o = f.compare(&keys, OK, &["switchover"], "\nnode1\n\ny\n");
    assert!(
        o.stdout.contains("Primary [node0]: Candidate ['node1'] []: When should the switchover take place (e.g. <NEXT_HOUR> )  [now]: Are you sure you want to switchover cluster batman, demoting current leader node0? [y/N]: "),
        "{}",
        o.stdout
    );
    assert_eq!(o.requests.len(), 1);
    // An empty candidate is allowed for a switchover (the server picks one).
    let o = f.compare(&keys, OK, &["switchover"], "\n\nnow\nyes\n");
    assert_eq!(
        o.requests[0].body,
        r#"{"candidate": "", "leader": "node0"}"#
    );
    // "no", an unknown answer then no, and end of input: nothing is sent.
    for input in ["\nnode1\n\nn\n", "\nnode1\n\nmaybe\n\n", "\nnode1\n"] {
        let o = f.compare(&keys, OK, &["switchover"], input);
        assert_eq!(o.code, Some(1), "{input:?}");
        assert!(o.requests.is_empty(), "{input:?}");
        assert!(o.error.is_some(), "{input:?}");
    }
    // A scheduled switchover asks to confirm the time and sends it.
    let o = f.compare(
        &keys,
        OK,
        &[
            "switchover",
            "--candidate",
            "node1",
            "--scheduled",
            "2030-01-02T03:04+02:00",
        ],
        "\ny\n",
    );
    assert_eq!(
        o.requests[0].body,
        r#"{"candidate": "node1", "leader": "node0", "scheduled_at": "2030-01-02T03:04:00+02:00"}"#
    );
    assert!(o.stdout.contains("Are you sure you want to schedule switchover of cluster batman at 2030-01-02T03:04:00+02:00, demoting current leader node0? [y/N]: "), "{}", o.stdout);
    // Without an offset the local time zone (TZ=UTC here) is used.
    let o = f.compare(
        &keys,
        OK,
        &[
            "switchover",
            "--candidate",
            "node1",
            "--scheduled",
            "2030-01-02 03:04:05",
            "--force",
        ],
        "",
    );
    assert_eq!(
        o.requests[0].body,
        r#"{"candidate": "node1", "leader": "node0", "scheduled_at": "2030-01-02T03:04:05+00:00"}"#
    );
}

#[test]
fn refused_switchovers_fail_with_patronictls_errors() {
    let f = Fixture::start();
    let keys = batman(f.stub.port, r#"{"ttl":30}"#);
    let cases: [(&[&str], &str); 6] = [
        (
            &["switchover", "--leader", "node1", "--force"],
            "Error: Member node1 is not the leader of cluster batman",
        ),
        (
            &["switchover", "--candidate", "node0", "--force"],
            "Error: Member node0 is already the leader of cluster batman",
        ),
        (
            &["switchover", "--candidate", "node2", "--force"],
            "Error: Member node2 does not exist in cluster batman or is tagged as nofailover",
        ),
        (
            &["switchover", "--candidate", "nodeX", "--force"],
            "Error: Member nodeX does not exist in cluster batman or is tagged as nofailover",
        ),
        (
            &["switchover", "--scheduled", "next tuesday", "--force"],
            "Error: Unable to parse scheduled timestamp (next tuesday). It should be in an unambiguous format (e.g. ISO 8601)",
        ),
        (
            &["failover", "--force"],
            "Error: Failover could be performed only to a specific candidate",
        ),
    ];
    for (args, error) in cases {
        let o = f.compare(&keys, OK, args, "");
        assert_eq!(
            (o.code, o.error.as_deref()),
            (Some(1), Some(error)),
            "{args:?}"
        );
        assert!(o.requests.is_empty(), "{args:?}");
    }
    // No leader key: a switchover is refused.
    let no_leader: Vec<_> = keys
        .iter()
        .filter(|(k, _)| k != "leader" && k != "members/node0")
        .cloned()
        .collect();
    let o = f.compare(&no_leader, OK, &["switchover", "--force"], "");
    assert_eq!(
        o.error.as_deref(),
        Some("Error: This cluster has no leader")
    );
    // Only nofailover replicas: no candidates.
    let lone: Vec<_> = keys
        .iter()
        .filter(|(k, _)| k != "members/node1")
        .cloned()
        .collect();
    let o = f.compare(
        &lone,
        OK,
        &["failover", "--candidate", "node2", "--force"],
        "",
    );
    assert_eq!(
        o.error.as_deref(),
        Some("Error: No candidates found to failover to")
    );
    // Maintenance mode: no scheduled switchover.
    let paused = batman(f.stub.port, r#"{"ttl":30,"pause":true}"#);
    let o = f.compare(
        &paused,
        OK,
        &["switchover", "--scheduled", "2030-01-02T03:04Z", "--force"],
        "",
    );
    assert_eq!(
        o.error.as_deref(),
        Some("Error: Can't schedule switchover in the paused state")
    );
}

#[test]
fn failover_posts_to_the_leader_or_the_candidate_and_warns_about_async_nodes() {
    let f = Fixture::start();
    let keys = batman(f.stub.port, r#"{"ttl":30}"#);
    let o = f.compare(
        &keys,
        (200, r#"Successfully failed over to "node1""#),
        &["failover", "--candidate", "node1"],
        "y\n",
    );
    assert_eq!(o.requests[0].path, "/failover");
    assert_eq!(o.requests[0].body, r#"{"candidate": "node1"}"#);
    assert!(o.stdout.contains("Are you sure you want to failover cluster batman, demoting current leader node0? [y/N]: "), "{}", o.stdout);

    // Without a leader the candidate's API is asked and nobody is demoted.
    let no_leader: Vec<_> = keys
        .iter()
        .filter(|(k, _)| k != "leader" && k != "members/node0")
        .cloned()
        .collect();
    let o = f.compare(
        &no_leader,
        (200, "ok"),
        &["failover", "batman"],
        "node1\ny\n",
    );
    assert!(
        o.stdout
            .contains("Are you sure you want to failover cluster batman? [y/N]: "),
        "{}",
        o.stdout
    );
    assert_eq!(o.requests.len(), 1);

    // Synchronous mode, candidate not in /sync: one more confirmation; "n" aborts.
    let mut sync = batman(f.stub.port, r#"{"ttl":30,"synchronous_mode":true}"#);
    sync.push((
        "sync".into(),
        r#"{"leader":"node0","sync_standby":"node2"}"#.into(),
    ));
    let o = f.compare(&sync, OK, &["failover", "--candidate", "node1"], "n\n");
    assert_eq!(o.error.as_deref(), Some("Error: Aborting failover"));
    assert!(
        o.stdout
            .contains("Are you sure you want to failover to the asynchronous node node1? [y/N]: "),
        "{}",
        o.stdout
    );
    let o = f.compare(&sync, OK, &["failover", "--candidate", "node1"], "y\ny\n");
    assert_eq!(o.requests.len(), 1);
}

#[test]
fn unreachable_api_falls_back_to_the_failover_key() {
    let f = Fixture::start();
    let keys = batman(f.dead_port, r#"{"ttl":30}"#);
    let o = f.compare(
        &keys,
        OK,
        &["switchover", "--candidate", "node1", "--force"],
        "",
    );
    assert_eq!(o.code, Some(0));
    assert!(
        o.stdout
            .contains("<TS> Could not switchover using Patroni api, falling back to DCS\n"),
        "{}",
        o.stdout
    );
    assert_eq!(
        o.failover_key.as_deref(),
        Some(r#"{"leader":"node0","member":"node1"}"#)
    );
    let o = f.compare(
        &keys,
        OK,
        &[
            "switchover",
            "--scheduled",
            "2030-01-02T03:04:05.25-03:30",
            "--force",
        ],
        "",
    );
    assert_eq!(
        o.failover_key.as_deref(),
        Some(r#"{"leader":"node0","scheduled_at":"2030-01-02T03:04:05.250000-03:30"}"#)
    );
    let o = f.compare(
        &keys,
        OK,
        &["failover", "--candidate", "node1", "--force"],
        "",
    );
    assert_eq!(o.failover_key.as_deref(), Some(r#"{"member":"node1"}"#));
}
