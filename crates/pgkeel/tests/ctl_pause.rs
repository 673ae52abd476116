//! `pgkeelctl pause` / `resume` against Patroni's own `patronictl` 4.1 on the same etcd keys and
//! member API stubs: same output, errors, exit codes, and the same `PATCH /config` requests, sent
//! to the leader first, then to the next member that answers.
// Reference: patroni/ctl.py `toggle_pause`, `wait_until_pause_is_applied`,
// `get_all_members_leader_first`.

mod ctl_compat;

use ctl_compat::{Fixture, Recorded, member};

/// `node0` leads; member `i`'s API is at `ports[i]`; `pause_field` goes into every member key.
fn cluster(ports: [u16; 3], config: &str, pause_field: bool) -> Vec<(String, String)> {
    let extra = |m: String| {
        if pause_field {
            m.replacen('{', r#"{"pause":true,"#, 1)
        } else {
            m
        }
    };
    vec![
        ("initialize".into(), "7277694203142172922".into()),
        ("config".into(), config.into()),
        ("leader".into(), "node0".into()),
        (
            "members/node0".into(),
            extra(member(ports[0], 5432, "primary", "running", "")),
        ),
        (
            "members/node1".into(),
            extra(member(ports[1], 5433, "replica", "streaming", "")),
        ),
        (
            "members/node2".into(),
            extra(member(ports[2], 5434, "replica", "streaming", "")),
        ),
    ]
}

fn patch(port: u16, body: &str) -> Recorded {
    Recorded {
        port,
        method: "PATCH".into(),
        path: "/config".into(),
        body: body.into(),
    }
}

#[test]
fn pause_and_resume_patch_the_leader_like_patronictl() {
    let f = Fixture::start();
    let p = [f.stub.ports[0], f.stub.ports[1], f.stub.ports[2]];
    let running = cluster(p, r#"{"ttl":30}"#, false);
    let o = f.compare(&running, (200, "{}"), &["pause"], "");
    assert_eq!(o.code, Some(0));
    assert_eq!(o.stdout, "Success: cluster management is paused\n");
    assert_eq!(o.requests, [patch(p[0], r#"{"pause": true}"#)]);

    let paused = cluster(p, r#"{"ttl":30,"pause":true}"#, false);
    let o = f.compare(&paused, (200, "{}"), &["resume", "batman"], "");
    assert_eq!(o.stdout, "Success: cluster management is resumed\n");
    assert_eq!(o.requests, [patch(p[0], r#"{"pause": null}"#)]);

    // Already in the asked state: refused before any request.
    let o = f.compare(&paused, (200, "{}"), &["pause"], "");
    assert_eq!(o.error.as_deref(), Some("Error: Cluster is already paused"));
    assert!(o.requests.is_empty());
    let o = f.compare(&running, (200, "{}"), &["resume"], "");
    assert_eq!(o.error.as_deref(), Some("Error: Cluster is not paused"));

    // The server's refusal is printed, exit 0.
    let o = f.compare(&running, (409, "Cluster is in failsafe"), &["pause"], "");
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (
            Some(0),
            "Failed: pause cluster management status code=409, (Cluster is in failsafe)\n"
        )
    );
}

#[test]
fn an_unreachable_leader_is_skipped_and_wait_polls_the_member_keys() {
    let f = Fixture::start();
    let p = f.stub.ports.clone();
    // The leader's API is down: node1 is asked next (node2 is not asked).
    let keys = cluster([f.dead_port, p[1], p[2]], r#"{"ttl":30}"#, false);
    let o = f.compare(&keys, (200, "{}"), &["pause"], "");
    assert_eq!(o.requests, [patch(p[1], r#"{"pause": true}"#)]);
    assert_eq!(o.stdout, "Success: cluster management is paused\n");
    // No API answers at all.
    let dead = cluster([f.dead_port; 3], r#"{"ttl":30}"#, false);
    let o = f.compare(&dead, (200, "{}"), &["pause"], "");
    assert_eq!(
        (o.code, o.error.as_deref()),
        (
            Some(1),
            Some("Error: Can not find accessible cluster member")
        )
    );

    // --wait: the member keys already say "pause": the first poll succeeds.
    let applied = cluster([p[0], p[1], p[2]], r#"{"ttl":30,"loop_wait":1}"#, true);
    let o = f.compare(&applied, (200, "{}"), &["pause", "--wait"], "");
    assert_eq!(
        o.stdout,
        "'pause' request sent, waiting until it is recognized by all nodes\nSuccess: cluster management is paused\n"
    );
    // --wait, nobody applies it and no member key changes within loop_wait + 1 seconds:
    // patronictl still reports success (it only names members that wrote their key since).
    let unapplied = cluster([p[0], p[1], p[2]], r#"{"ttl":30,"loop_wait":1}"#, false);
    let o = f.compare(&unapplied, (200, "{}"), &["pause", "--wait"], "");
    assert!(
        o.stdout
            .ends_with("Success: cluster management is paused\n"),
        "{}",
        o.stdout
    );
}
