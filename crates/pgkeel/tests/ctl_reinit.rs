//! `pgkeelctl reinit` against Patroni's own `patronictl` 4.1 on the same keys and REST stubs.
// Reference: patroni/ctl.py `reinit`, `get_members`, `check_response`.

mod ctl_compat;

use ctl_compat::{Fixture, Recorded, batman};

fn reinit(port: u16, body: &str) -> Recorded {
    Recorded {
        port,
        method: "POST".into(),
        path: "/reinitialize".into(),
        body: body.into(),
    }
}

#[test]
fn reinit_posts_to_replicas_only() {
    let f = Fixture::start();
    let p = f.stub.port;
    let keys = batman(p, "{}");
    let o = f.compare(
        &keys,
        (200, "reinitialize started"),
        &["reinit", "batman", "node1", "--force"],
        "",
    );
    assert_eq!(o.code, Some(0));
    assert_eq!(
        o.requests,
        [reinit(p, r#"{"force": true, "from_leader": false}"#)]
    );
    assert!(
        o.stdout
            .ends_with("Success: reinitialize for member node1\n"),
        "{}",
        o.stdout
    );
    let o = f.compare(
        &keys,
        (503, "failed"),
        &["reinit", "batman", "node1", "node2", "--from-leader"],
        "y\n",
    );
    assert_eq!(
        o.requests,
        [
            reinit(p, r#"{"force": false, "from_leader": true}"#),
            reinit(p, r#"{"force": false, "from_leader": true}"#)
        ]
    );
    // The leader is refused by the ctl; unknown names too; no is aborted.
    for (args, input) in [
        (&["reinit", "batman", "node0", "--force"][..], ""),
        (&["reinit", "batman", "node9"], ""),
        (&["reinit", "batman", "node1"], "n\n"),
    ] {
        let o = f.compare(&keys, (200, ""), args, input);
        assert_eq!(o.code, Some(1), "{args:?}");
        assert!(o.error.is_some(), "{args:?}");
        assert!(o.requests.is_empty());
    }
    // Without names and --force: nothing to do.
    let o = f.compare(&keys, (200, ""), &["reinit", "batman", "--force"], "");
    assert_eq!(o.code, Some(0));
    assert!(o.requests.is_empty());
}

#[test]
fn reinit_asks_for_the_member_and_offers_to_force() {
    let f = Fixture::start();
    let p = f.stub.port;
    // One replica, so the prompt's list has one order.
    let keys: Vec<_> = batman(p, "{}")
        .into_iter()
        .filter(|(k, _)| k != "members/node2")
        .collect();
    let o = f.compare(&keys, (200, ""), &["reinit", "batman"], "node1\ny\n");
    assert_eq!(o.code, Some(0));
    assert!(
        o.stdout.contains(
            "Which member do you want to reinitialize [node1]? []: Are you sure you want to reinitialize members node1? [y/N]: Success"
        ),
        "{}",
        o.stdout
    );
    let o = f.compare(&keys, (200, ""), &["reinit", "batman"], "\n");
    assert_eq!(o.code, Some(1));
    // Busy: asked to force; yes retries with force (and asks again on the same answer).
    let busy = (503, "reinitialize already in progress");
    let o = f.compare(&keys, busy, &["reinit", "batman", "node1"], "y\ny\nn\n");
    assert_eq!(
        o.requests,
        [
            reinit(p, r#"{"force": false, "from_leader": false}"#),
            reinit(p, r#"{"force": true, "from_leader": false}"#)
        ]
    );
    let o = f.compare(&keys, busy, &["reinit", "batman", "node1", "--force"], "");
    assert_eq!(o.requests.len(), 1);
}

#[test]
fn reinit_wait_polls_until_the_replica_is_created() {
    let f = Fixture::start();
    let p = f.stub.port;
    let keys = batman(p, "{}");
    let o = f.compare(
        &keys,
        (200, r#"{"state": "running"}"#),
        &["reinit", "batman", "node1", "node2", "--force", "--wait"],
        "",
    );
    assert_eq!(o.code, Some(0));
    // Two POSTs, then one GET per round (the member after a finished one waits a round).
    assert_eq!(o.requests.len(), 4, "{:?}", o.requests);
    assert!(
        o.stdout.ends_with(
            "Waiting for reinitialize to complete on: node1, node2\nReinitialize is completed on: node1\nWaiting for reinitialize to complete on: node2\nReinitialize is completed on: node2\n"
        ),
        "{}",
        o.stdout
    );
}
