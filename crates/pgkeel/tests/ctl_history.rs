//! `pgkeelctl history` against Patroni's own `patronictl` 4.1 on the same `history` key, in
//! every format: entries of five fields, an old four-field entry (no new leader) padded with an
//! empty cell, and no key at all.
// Reference: patroni/ctl.py `history`, `print_output`.

mod ctl_compat;

use ctl_compat::{Fixture, batman};

fn with_history(port: u16, history: Option<&str>) -> Vec<(String, String)> {
    let mut keys = batman(port, r#"{"ttl":30}"#);
    if let Some(h) = history {
        keys.push(("history".into(), h.into()));
    }
    keys
}

#[test]
fn history_prints_patronictls_table_in_every_format() {
    let f = Fixture::start();
    let history = r#"[[1,25623960,"no recovery target specified","2019-09-23T16:57:57+02:00"],[2,25624344,"no recovery target specified","2026-12-03T08:00:00.123456+00:00","node1"],[3,50331856,"no recovery target specified","2026-12-03T09:00:00+00:00","node0"]]"#;
    let keys = with_history(f.stub.port, Some(history));
    let o = f.compare(&keys, (200, ""), &["history"], "");
    assert_eq!(o.code, Some(0));
    assert!(o.stdout.contains("| 50331856 |"), "{}", o.stdout);
    assert!(o.stdout.contains("| node1      |"), "{}", o.stdout);
    for fmt in ["json", "yaml", "tsv", "pretty"] {
        let o = f.compare(&keys, (200, ""), &["history", "-f", fmt], "");
        assert_eq!(o.code, Some(0), "{fmt}");
    }
    let o = f.compare(
        &with_history(f.stub.port, None),
        (200, ""),
        &["history", "batman", "--format", "json"],
        "",
    );
    assert_eq!(o.stdout, "[]\n");
    let o = f.compare(
        &with_history(f.stub.port, None),
        (200, ""),
        &["history"],
        "",
    );
    assert_eq!(o.code, Some(0));
}
