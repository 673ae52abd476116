//! `pgkeelctl show-config` against Patroni's own `patronictl` 4.1 on the same `config` key:
//! byte-identical YAML (sorted keys, nested maps and lists, quoted strings that would read back
//! as another type, unicode), nothing at all without the key.
// Reference: patroni/ctl.py `show_config`, `format_config_for_editing`.

mod ctl_compat;

use ctl_compat::{Fixture, batman};

#[test]
fn show_config_prints_patronictls_yaml() {
    let f = Fixture::start();
    let config = r#"{"ttl":30,"loop_wait":10,"retry_timeout":10,"maximum_lag_on_failover":1048576,"pause":false,"check_timeline":true,"synchronous_mode":"quorum","postgresql":{"use_pg_rewind":true,"use_slots":true,"parameters":{"max_connections":100,"wal_level":"replica","archive_command":"cp %p /archive/%f","log_line_prefix":"%m [%p] ","search_path":"\"$user\", public","timezone":"on","port":"5432","ratio":0.5,"shared_preload_libraries":""},"pg_hba":["host replication replicator 127.0.0.1/32 md5","host all all 0.0.0.0/0 md5"]},"slots":{"s1":{"type":"physical"}},"tags":{},"name":"caf\u00e9","failsafe_mode":null}"#;
    let o = f.compare(
        &batman(f.stub.port, config),
        (200, ""),
        &["show-config"],
        "",
    );
    assert_eq!(o.code, Some(0));
    assert!(
        o.stdout.starts_with("check_timeline: true\n"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.ends_with("\n\n"), "{}", o.stdout);
    assert!(
        o.stdout.contains("  - host all all 0.0.0.0/0 md5\n"),
        "{}",
        o.stdout
    );

    let no_config: Vec<_> = batman(f.stub.port, "{}")
        .into_iter()
        .filter(|(k, _)| k != "config")
        .collect();
    let o = f.compare(&no_config, (200, ""), &["show-config", "batman"], "");
    assert_eq!((o.code, o.stdout.as_str()), (Some(0), ""));
}
