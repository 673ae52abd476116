//! `pgkeelctl list -e` against Patroni's own `patronictl` 4.1 on the same keys: the `Pending
//! restart reason` column (`param: old->new` per line, long ones hidden in the table) and the
//! `Scheduled restart` column (`schedule`, `if version < X`), in every format.
// Reference: patroni/ctl.py `output_members`.

mod ctl_compat;

use ctl_compat::{Fixture, batman};

#[test]
fn extended_list_shows_restart_reasons_and_schedules_like_patronictl() {
    let f = Fixture::start();
    let mut keys = batman(f.stub.port, "{}");
    let long = "x".repeat(60);
    for (name, value) in keys.iter_mut() {
        let extra = match name.as_str() {
            "members/node1" => format!(
                r#","pending_restart":true,"pending_restart_reason":{{"max_connections":{{"old_value":"100","new_value":"200"}},"shared_preload_libraries":{{"old_value":"","new_value":"{long}"}}}},"scheduled_restart":{{"schedule":"2030-01-02T03:04:05+00:00","postgres_version":"18.1","postmaster_start_time":"2026-12-03 10:00:00.000000+00:00"}}"#
            ),
            "members/node2" => {
                r#","scheduled_restart":{"schedule":"2030-01-02T03:04:05+01:00","role":"replica"}"#
                    .to_string()
            }
            _ => continue,
        };
        value.truncate(value.len() - 1);
        value.push_str(&extra);
        value.push('}');
    }
    for args in [
        &["list", "-e"][..],
        &["list", "-e", "-f", "tsv"],
        &["list", "-e", "-f", "json"],
        &["list", "-e", "-f", "yaml"],
        &["list"],
    ] {
        let o = f.compare(&keys, (200, ""), args, "");
        assert_eq!(o.code, Some(0), "{args:?}");
        if args.len() > 1 {
            assert!(
                o.stdout.contains("2030-01-02T03:04:05+00:00"),
                "{args:?}: {}",
                o.stdout
            );
        }
    }
}
