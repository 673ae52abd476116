//! `pgkeelctl version` against Patroni's own `patronictl` 4.1 on the same keys and REST stubs:
//! after each tool's own version line, the same member lines (`node0: Patroni 4.1.4
//! PostgreSQL 15.4`), for all members or the ones named, and the same `GET /patroni` requests.
// Reference: patroni/ctl.py `version`.

mod ctl_compat;

use ctl_compat::{Fixture, batman};
use pgkeel_testkit::patroni::patronictl_bin;
use std::path::Path;

#[test]
fn version_lists_the_members_versions_like_patronictl() {
    let f = Fixture::start();
    let keys = batman(f.stub.port, "{}");
    let status = r#"{"state":"running","role":"primary","server_version":150004,"patroni":{"version":"4.1.4","scope":"batman","name":"x"}}"#;
    for args in [
        &["version", "batman"][..],
        &["version", "batman", "node1", "node2"],
        &["version"],
    ] {
        let theirs = f.run(&patronictl_bin(), &keys, (200, status), args, "");
        let ours = f.run(
            Path::new(env!("CARGO_BIN_EXE_pgkeelctl")),
            &keys,
            (200, status),
            args,
            "",
        );
        assert_eq!(ours.code, theirs.code, "{args:?}");
        assert!(
            ours.stdout.starts_with("pgkeelctl version "),
            "{}",
            ours.stdout
        );
        assert!(
            theirs.stdout.starts_with("patronictl version "),
            "{}",
            theirs.stdout
        );
        let rest = |s: &str| {
            s.split_once('\n')
                .map(|(_, r)| r.to_string())
                .unwrap_or_default()
        };
        assert_eq!(rest(&ours.stdout), rest(&theirs.stdout), "{args:?}");
        assert_eq!(ours.requests, theirs.requests, "{args:?}");
        if args.len() > 1 {
            assert!(
                ours.stdout
                    .contains("node1: Patroni 4.1.4 PostgreSQL 15.4\n"),
                "{}",
                ours.stdout
            );
        }
    }
}
