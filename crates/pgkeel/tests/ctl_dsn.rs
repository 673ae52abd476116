//! `pgkeelctl dsn` against Patroni's own `patronictl` 4.1 on the same keys: the leader by
//! default, the first member of a role, a named member, and patronictl's errors.
// Reference: patroni/ctl.py `dsn`, `get_any_member`.

mod ctl_compat;

use ctl_compat::{Fixture, batman};

#[test]
fn dsn_prints_the_members_address_like_patronictl() {
    let f = Fixture::start();
    let keys = batman(f.stub.port, "{}");
    for (args, expected) in [
        (&["dsn"][..], Some("host=127.0.0.1 port=5432\n")),
        (
            &["dsn", "batman", "-r", "replica"],
            Some("host=127.0.0.1 port=5433\n"),
        ),
        (
            &["dsn", "batman", "--role", "primary"],
            Some("host=127.0.0.1 port=5432\n"),
        ),
        (
            &["dsn", "batman", "-m", "node2"],
            Some("host=127.0.0.1 port=5434\n"),
        ),
        (&["dsn", "batman", "-r", "standby-leader"], None),
        (&["dsn", "batman", "-m", "nobody"], None),
        (&["dsn", "batman", "-m", "node1", "-r", "replica"], None),
    ] {
        let o = f.compare(&keys, (200, ""), args, "");
        match expected {
            Some(line) => assert_eq!((o.code, o.stdout.as_str()), (Some(0), line), "{args:?}"),
            None => assert_eq!(o.code, Some(1), "{args:?}: {o:?}"),
        }
    }
    let leaderless: Vec<_> = keys
        .iter()
        .filter(|(k, _)| k != "leader")
        .cloned()
        .collect();
    let o = f.compare(&leaderless, (200, ""), &["dsn"], "");
    assert_eq!(o.code, Some(1));
}
