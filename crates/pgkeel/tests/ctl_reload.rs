//! `pgkeelctl reload` against Patroni's own `patronictl` 4.1 on the same keys and REST stubs.
// Reference: patroni/ctl.py `reload`, `get_members`.

mod ctl_compat;

use ctl_compat::{Fixture, Recorded, batman};

#[test]
fn reload_posts_to_the_members_and_reports_each_answer() {
    let f = Fixture::start();
    let p = f.stub.port;
    let keys = batman(p, r#"{"loop_wait":5}"#);
    let o = f.compare(&keys, (202, ""), &["reload", "batman", "--force"], "");
    assert_eq!(o.code, Some(0));
    assert_eq!(o.requests.len(), 3);
    assert_eq!(
        o.requests[0],
        Recorded {
            port: p,
            method: "POST".into(),
            path: "/reload".into(),
            body: String::new(),
        }
    );
    assert!(
        o.stdout.ends_with(
            "Reload request received for member node2 and will be processed within 5 seconds\n"
        ),
        "{}",
        o.stdout
    );
    // Without loop_wait: the default.
    let o = f.compare(
        &batman(p, "{}"),
        (202, ""),
        &["reload", "batman", "node1", "--force"],
        "",
    );
    assert!(o.stdout.ends_with("within 10 seconds\n"), "{}", o.stdout);
    for answer in [(200, ""), (503, "reload failed")] {
        let o = f.compare(
            &keys,
            answer,
            &["reload", "batman", "-r", "replica", "--force"],
            "",
        );
        assert_eq!(o.requests.len(), 2);
    }
    let o = f.compare(
        &keys,
        (202, ""),
        &["reload", "batman", "-r", "leader"],
        "y\n",
    );
    assert_eq!(o.requests.len(), 1);
    for (args, input) in [
        (&["reload", "batman"][..], "n\n"),
        (&["reload", "batman", "node9"], ""),
    ] {
        let o = f.compare(&keys, (202, ""), args, input);
        assert_eq!(o.code, Some(1), "{args:?}");
        assert!(o.requests.is_empty());
    }
}

#[test]
fn requests_carry_the_ctl_basic_auth() {
    let f =
        Fixture::start_with("ctl:\n  authentication:\n    username: admin\n    password: s3cret\n");
    let keys = batman(f.stub.port, "{}");
    for args in [
        &["reload", "batman", "node0", "--force"][..],
        &["restart", "batman", "node0", "--force"],
        &["reinit", "batman", "node1", "--force"],
    ] {
        let o = f.compare(&keys, (200, ""), args, "");
        assert_eq!(
            o.authorizations,
            [Some("Basic YWRtaW46czNjcmV0".to_string())],
            "{args:?}"
        );
    }
}
