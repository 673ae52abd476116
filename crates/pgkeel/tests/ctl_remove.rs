//! `pgkeelctl remove` against Patroni's own `patronictl` 4.1 on the same keys: the member list,
//! the three confirmations with patronictl's texts and errors, and every key of the cluster
//! deleted when all three are answered (and nothing deleted otherwise).
// Reference: patroni/ctl.py `remove`.

mod ctl_compat;

use ctl_compat::{Fixture, batman, etcdctl};
use std::path::Path;

fn keys_left(f: &Fixture) -> usize {
    etcdctl(
        &f.etcd,
        &["get", "--prefix", "--keys-only", "/service/batman/"],
    )
    .lines()
    .filter(|l| !l.is_empty())
    .count()
}

#[test]
fn remove_asks_like_patronictl_and_deletes_the_cluster() {
    let f = Fixture::start();
    let keys = batman(f.stub.port, "{}");
    for (input, code) in [
        ("wrong\n", Some(1)),
        ("batman\nyes\n", Some(1)),
        ("batman\nYes I am aware\nnode1\n", Some(1)),
        ("batman\n", Some(1)),
        ("batman\nYes I am aware\nnode0\n", Some(0)),
    ] {
        let o = f.compare(&keys, (200, ""), &["remove", "batman"], input);
        assert_eq!(o.code, code, "{input:?}: {o:?}");
    }
    // Both removed everything on the last answer; check it on pgkeelctl's run explicitly.
    let o = f.run(
        Path::new(env!("CARGO_BIN_EXE_pgkeelctl")),
        &keys,
        (200, ""),
        &["remove", "batman", "-f", "json"],
        "batman\nYes I am aware\nnode0\n",
    );
    assert_eq!(o.code, Some(0), "{o:?}");
    assert_eq!(keys_left(&f), 0);
    // Refused: nothing deleted.
    let o = f.run(
        Path::new(env!("CARGO_BIN_EXE_pgkeelctl")),
        &keys,
        (200, ""),
        &["remove", "batman"],
        "batman\nYes I am aware\nnobody\n",
    );
    assert_eq!(o.code, Some(1));
    assert_eq!(keys_left(&f), keys.len());
    // Without a leader key, two confirmations are enough.
    let leaderless: Vec<_> = keys
        .iter()
        .filter(|(k, _)| k != "leader")
        .cloned()
        .collect();
    let o = f.compare(
        &leaderless,
        (200, ""),
        &["remove", "batman"],
        "batman\nYes I am aware\n",
    );
    assert_eq!(o.code, Some(0));
}
