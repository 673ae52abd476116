//! `pgkeelctl flush` against Patroni's own `patronictl` 4.1 on the same keys and REST stubs.
// Reference: patroni/ctl.py `flush`, `get_members`, `check_response`.

mod ctl_compat;

use ctl_compat::{Fixture, Recorded, batman, extend_member};

#[test]
fn flush_restart_deletes_scheduled_restarts() {
    let f = Fixture::start();
    let p = f.stub.port;
    let mut keys = batman(p, "{}");
    extend_member(
        &mut keys,
        "node1",
        r#","scheduled_restart":{"schedule":"2030-01-02T03:04:05+00:00"}"#,
    );
    let delete = Recorded {
        port: p,
        method: "DELETE".into(),
        path: "/restart".into(),
        body: String::new(),
    };
    let o = f.compare(
        &keys,
        (200, ""),
        &["flush", "batman", "restart", "--force"],
        "",
    );
    assert_eq!(o.code, Some(0));
    assert_eq!(o.requests, std::slice::from_ref(&delete));
    assert!(
        o.stdout.ends_with(
            "No scheduled restart for member node0\nSuccess: flush scheduled restart for member node1\nNo scheduled restart for member node2\n"
        ),
        "{}",
        o.stdout
    );
    // Named members, roles, a failed answer, prompts.
    let o = f.compare(
        &keys,
        (404, "no restart"),
        &["flush", "batman", "node1", "node2", "restart", "--force"],
        "",
    );
    assert_eq!(o.requests, std::slice::from_ref(&delete));
    let o = f.compare(
        &keys,
        (200, ""),
        &["flush", "batman", "restart", "-r", "leader", "--force"],
        "",
    );
    assert!(o.requests.is_empty());
    let o = f.compare(&keys, (200, ""), &["flush", "batman", "restart"], "y\n");
    assert_eq!(o.requests, [delete]);
    for (args, input) in [
        (&["flush", "batman", "restart"][..], "n\n"),
        (&["flush", "batman", "node9", "restart"], ""),
    ] {
        let o = f.compare(&keys, (200, ""), args, input);
        assert_eq!(o.code, Some(1), "{args:?}");
        assert!(o.requests.is_empty());
    }
}

#[test]
fn flush_switchover_deletes_it_on_the_leader_or_in_the_dcs() {
    let f = Fixture::start();
    let p = f.stub.port;
    let mut keys = batman(p, "{}");
    // No scheduled switchover.
    let o = f.compare(&keys, (200, ""), &["flush", "batman", "switchover"], "");
    assert_eq!(o.stdout, "No pending scheduled switchover\n");
    assert!(o.requests.is_empty());
    keys.push((
        "failover".into(),
        r#"{"leader":"node0","member":"node1","scheduled_at":"2030-01-02T03:04:05+00:00"}"#.into(),
    ));
    for answer in [
        (200, "scheduled switchover deleted"),
        (404, "no switchover"),
    ] {
        let o = f.compare(&keys, answer, &["flush", "batman", "switchover"], "");
        assert_eq!(o.code, Some(0));
        assert_eq!(
            o.requests,
            [Recorded {
                port: p,
                method: "DELETE".into(),
                path: "/switchover".into(),
                body: String::new(),
            }]
        );
    }
    // Every member fails: each is tried, then the key is emptied.
    let o = f.compare(&keys, (503, "busy"), &["flush", "batman", "switchover"], "");
    assert_eq!(o.requests.len(), 3);
    assert_eq!(o.failover_key.as_deref(), Some("{}"));
    assert!(
        o.stdout
            .ends_with("<TS> Could not find any accessible member of cluster batman\n"),
        "{}",
        o.stdout
    );
    // Unreachable APIs.
    let dead = batman(f.dead_port, "{}")
        .into_iter()
        .chain(keys.iter().filter(|(k, _)| k == "failover").cloned())
        .collect::<Vec<_>>();
    let o = f.compare(&dead, (200, ""), &["flush", "batman", "switchover"], "");
    assert_eq!(o.failover_key.as_deref(), Some("{}"));
}
