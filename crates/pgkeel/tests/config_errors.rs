//! Malformed configurations: every error is one line naming the file, the line (when the key is
//! present), the key path and the offending value; passwords never appear.

use std::path::Path;

use pgkeel::config::{ConfigError, load_config, load_config_from_str};

/// A valid configuration; tests below edit or extend it. Line numbers are noted for reference.
const BASE: &str = "\
scope: demo
name: node1
restapi:
  listen: 127.0.0.1:8008
etcd3:
  hosts: 127.0.0.1:2379
bootstrap:
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
postgresql:
  listen: 127.0.0.1:5432
  connect_address: 127.0.0.1:5432
  data_dir: /nonexistent/pgkeel/data
  authentication:
    superuser:
      username: postgres
      password: hunter2
    replication:
      username: replicator
      password: hunter3
";

fn load(text: &str) -> Result<(), ConfigError> {
    load_env(text, &[])
}

fn load_env(text: &str, env: &[(&str, &str)]) -> Result<(), ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    load_config_from_str(text, Path::new("bad.yml"), &env).map(|_| ())
}

/// Loads, expects an error, and checks it is one line without secrets containing every needle.
fn error_of(text: &str, needles: &[&str]) -> ConfigError {
    let e = load(text).expect_err("config should be rejected");
    check(&e, needles);
    e
}

fn check(e: &ConfigError, needles: &[&str]) {
    let s = e.to_string();
    assert!(!s.contains('\n'), "not one line: {s}");
    assert!(!s.contains("hunter"), "password leaked: {s}");
    for n in needles {
        assert!(s.contains(n), "{s:?} does not contain {n:?}");
    }
}

fn replace(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

#[test]
fn base_is_valid() {
    load(BASE).unwrap();
}

#[test]
fn malformed_yaml_reports_line_and_column() {
    let text = replace(
        "  listen: 127.0.0.1:8008\n",
        "  listen: 127.0.0.1:8008\n bad: indent\n",
    );
    let e = error_of(&text, &["bad.yml:5:", "invalid YAML"]);
    assert_eq!(e.line(), Some(5));
    error_of("scope: [demo\n", &["bad.yml:1:", "invalid YAML"]);
}

#[test]
fn top_level_not_a_mapping() {
    error_of(
        "- scope\n- name\n",
        &[
            "bad.yml:1:",
            "(top level)",
            "not a mapping",
            "expected a mapping",
        ],
    );
}

#[test]
fn ttl_not_an_integer() {
    let e = error_of(
        &replace("ttl: 30", "ttl: abc"),
        &["bad.yml:9:", "bootstrap.dcs.ttl", "\"abc\"", "integer"],
    );
    assert_eq!(e.key(), Some("bootstrap.dcs.ttl"));
}

#[test]
fn section_of_wrong_type() {
    let text = BASE.split("postgresql:\n").next().unwrap().to_string() + "postgresql: 5\n";
    error_of(
        &text,
        &[
            "bad.yml:12:",
            "postgresql:",
            "wrong type",
            "got 5",
            "expected a mapping",
        ],
    );
}

#[test]
fn bool_tag_not_a_boolean() {
    let text = format!("{BASE}tags:\n  nofailover: maybe\n");
    error_of(
        &text,
        &["bad.yml:24:", "tags.nofailover", "\"maybe\"", "boolean"],
    );
}

#[test]
fn missing_scope_and_name() {
    let e = error_of(&replace("scope: demo\n", ""), &[]);
    assert_eq!(
        e.to_string(),
        "bad.yml: scope: missing required key (expected the cluster name)"
    );
    error_of(
        &replace("name: node1\n", ""),
        &["bad.yml: name: missing required key"],
    );
}

#[test]
fn empty_name() {
    error_of(
        &replace("name: node1", "name: ''"),
        &["bad.yml:2:", "name", "must not be empty", "\"\""],
    );
    error_of(
        &replace("name: node1", "name:"),
        &["bad.yml:2:", "name", "empty"],
    );
}

#[test]
fn missing_postgresql_keys() {
    error_of(
        &replace("  data_dir: /nonexistent/pgkeel/data\n", ""),
        &["bad.yml: postgresql.data_dir: missing required key"],
    );
    error_of(
        &replace("  listen: 127.0.0.1:5432\n", ""),
        &["bad.yml: postgresql.listen: missing required key"],
    );
    error_of(
        &replace(
            "    replication:\n      username: replicator\n      password: hunter3\n",
            "",
        ),
        &["bad.yml: postgresql.authentication.replication: missing required key"],
    );
}

#[test]
fn missing_restapi_listen() {
    error_of(
        &replace(
            "restapi:\n  listen: 127.0.0.1:8008\n",
            "restapi:\n  connect_address: 127.0.0.1:8008\n",
        ),
        &["bad.yml: restapi.listen: missing required key"],
    );
    error_of(
        &replace("restapi:\n  listen: 127.0.0.1:8008\n", ""),
        &["bad.yml: restapi.listen: missing"],
    );
}

#[test]
fn missing_etcd_section() {
    error_of(
        &replace("etcd3:\n  hosts: 127.0.0.1:2379\n", ""),
        &["bad.yml: etcd3: missing required key"],
    );
}

// Reference: Patroni `Config._validate_and_adjust_timeouts`: `loop_wait + 2*retry_timeout <= ttl`
// is restored with a warning; the agent must start (issue 6, point 5).
#[test]
fn ttl_arithmetic_is_a_warning_not_an_error() {
    let text = replace("ttl: 30", "ttl: 20");
    let l = load_config_from_str(&text, Path::new("bad.yml"), &[]).expect("loads, with a warning");
    let w: Vec<String> = l
        .warnings
        .iter()
        .filter(|w| w.key.as_deref() == Some("bootstrap.dcs.ttl"))
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        w,
        [
            "bad.yml: Violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl=20. Adjusting loop_wait from 10 to 1 and retry_timeout from 10 to 9 (line 9)"
        ]
    );
    // Values that are invalid stay errors.
    error_of(
        &replace("loop_wait: 10", "loop_wait: -3"),
        &[
            "bad.yml:10:",
            "bootstrap.dcs.loop_wait",
            "got -3",
            "an integer from 1 to 86400",
        ],
    );
}

#[test]
fn dcs_minimums() {
    error_of(
        &replace("ttl: 30", "ttl: 4"),
        &[
            "bad.yml:9:",
            "bootstrap.dcs.ttl",
            "got 4",
            "an integer from 5 to 86400",
        ],
    );
    error_of(
        &replace("loop_wait: 10", "loop_wait: 0"),
        &[
            "bad.yml:10:",
            "bootstrap.dcs.loop_wait",
            "got 0",
            "an integer from 1 to 86400",
        ],
    );
    error_of(
        &replace("retry_timeout: 10", "retry_timeout: 0"),
        &[
            "bad.yml:11:",
            "bootstrap.dcs.retry_timeout",
            "got 0",
            "an integer from 1 to 86400",
        ],
    );
    // Issue 10: this overflowed the timing rule's arithmetic (a panic in debug, "valid" in
    // release); the range is the core's, as for `PATCH /config`.
    error_of(
        &replace("retry_timeout: 10", "retry_timeout: 9223372036854775807"),
        &[
            "bad.yml:11:",
            "bootstrap.dcs.retry_timeout",
            "above the maximum",
            "an integer from 1 to 86400",
        ],
    );
    error_of(
        &replace("ttl: 30", "ttl: 18446744073709551615"),
        &["bad.yml:9:", "bootstrap.dcs.ttl", "above the maximum"],
    );
    // pgkeel's floor is 5, below Patroni's 20.
    load(&replace(
        "ttl: 30\n    loop_wait: 10\n    retry_timeout: 10",
        "ttl: 5\n    loop_wait: 1\n    retry_timeout: 2",
    ))
    .unwrap();
}

#[test]
fn listen_without_port() {
    error_of(
        &replace("listen: 127.0.0.1:8008", "listen: localhost"),
        &[
            "bad.yml:4:",
            "restapi.listen",
            "missing port",
            "\"localhost\"",
            "host:port",
        ],
    );
}

#[test]
fn port_not_a_number_or_out_of_range() {
    error_of(
        &replace("listen: 127.0.0.1:5432", "listen: 127.0.0.1:abc"),
        &[
            "bad.yml:13:",
            "postgresql.listen",
            "not a number",
            "127.0.0.1:abc",
        ],
    );
    error_of(
        &replace(
            "connect_address: 127.0.0.1:5432",
            "connect_address: 127.0.0.1:70000",
        ),
        &[
            "bad.yml:14:",
            "postgresql.connect_address",
            "out of range",
            "127.0.0.1:70000",
        ],
    );
    error_of(
        &replace("hosts: 127.0.0.1:2379", "hosts: [127.0.0.1:2379, 'b:x']"),
        &["bad.yml:6:", "etcd3.hosts[1]", "invalid port", "b:x"],
    );
}

#[test]
fn forbidden_initdb_options() {
    let text = replace(
        "postgresql:\n",
        "  initdb:\n  - encoding: UTF8\n  - pgdata: /tmp/x\npostgresql:\n",
    );
    error_of(
        &text,
        &[
            "bad.yml:14:",
            "bootstrap.initdb[1].pgdata",
            "not allowed for initdb",
            "\"pgdata\"",
        ],
    );
    let text = replace(
        "postgresql:\n",
        "  initdb:\n    nosync: true\npostgresql:\n",
    );
    error_of(
        &text,
        &["bad.yml:13:", "bootstrap.initdb.nosync", "not allowed"],
    );
    let text = replace("postgresql:\n", "  initdb:\n  - sync-only\npostgresql:\n");
    error_of(&text, &["bad.yml:13:", "bootstrap.initdb[0]", "sync-only"]);
}

#[test]
fn forbidden_basebackup_options() {
    let text = format!("{BASE}  basebackup:\n  - max-rate: 100M\n  - host: 10.0.0.1\n");
    error_of(
        &text,
        &[
            "bad.yml:25:",
            "postgresql.basebackup[1].host",
            "not allowed for pg_basebackup",
        ],
    );
    let text = format!("{BASE}  basebackup:\n    compress: gzip\n");
    error_of(
        &text,
        &[
            "bad.yml:24:",
            "postgresql.basebackup.compress",
            "server-side",
            "gzip",
        ],
    );
}

#[test]
fn wrong_types_name_the_path() {
    error_of(
        &format!("{BASE}  pg_ctl_timeout: soon\n"),
        &[
            "bad.yml:23:",
            "postgresql.pg_ctl_timeout",
            "\"soon\"",
            "integer",
        ],
    );
    error_of(
        &format!("{BASE}  pg_hba:\n  - host all all 0.0.0.0/0 md5\n  - {{a: 1}}\n"),
        &["bad.yml:25:", "postgresql.pg_hba[1]", "wrong type"],
    );
    error_of(
        &format!("{BASE}log:\n  level: LOUD\n"),
        &["bad.yml:24:", "log.level", "\"LOUD\""],
    );
}

#[test]
fn password_values_are_redacted() {
    let e = error_of(
        &replace("password: hunter2", "password: {nested: hunter2}"),
        &[
            "bad.yml:19:",
            "postgresql.authentication.superuser.password",
            "<redacted>",
        ],
    );
    assert!(!format!("{e:?}").contains("hunter2"));
}

#[test]
fn env_values_are_located_by_variable() {
    let e = load_env(BASE, &[("PATRONI_RESTAPI_LISTEN", "localhost")]).unwrap_err();
    check(
        &e,
        &[
            "<env PATRONI_RESTAPI_LISTEN>: restapi.listen",
            "missing port",
            "localhost",
        ],
    );
    let e = load_env(BASE, &[("PATRONI_POSTGRESQL_CONNECT_ADDRESS", "db:0")]).unwrap_err();
    check(
        &e,
        &[
            "<env PATRONI_POSTGRESQL_CONNECT_ADDRESS>: postgresql.connect_address",
            "out of range",
        ],
    );
}

#[test]
fn filesystem_checks_in_load_config() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("data-file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let cfg = dir.path().join("node.yml");
    std::fs::write(
        &cfg,
        replace("/nonexistent/pgkeel/data", not_a_dir.to_str().unwrap()),
    )
    .unwrap();
    let e = load_config(&cfg).unwrap_err();
    check(
        &e,
        &[
            "node.yml:15:",
            "postgresql.data_dir",
            "not a directory",
            "data-file",
        ],
    );

    let bin = dir.path().join("bin");
    std::fs::write(&cfg, format!("{BASE}  bin_dir: {}\n", bin.display())).unwrap();
    let e = load_config(&cfg).unwrap_err();
    check(
        &e,
        &["node.yml:23:", "postgresql.bin_dir", "does not exist"],
    );

    std::fs::create_dir(&bin).unwrap();
    let e = load_config(&cfg).unwrap_err();
    check(
        &e,
        &[
            "node.yml:23:",
            "postgresql.bin_dir",
            "does not contain pg_ctl",
        ],
    );

    let missing = dir.path().join("absent.yml");
    let e = load_config(&missing).unwrap_err();
    check(&e, &["absent.yml: cannot read configuration"]);
}

// Issue 6, point 4: command strings are split like Patroni's `shlex.split`, at load time, so an
// unbalanced quote is an error naming the file, line and key.
#[test]
fn unbalanced_quotes_in_commands_are_errors() {
    let e = error_of(
        &replace(
            "bootstrap:\n",
            "bootstrap:\n  post_bootstrap: psql -w -c \"SELECT 1\n",
        ),
        &[
            "bad.yml:8:",
            "bootstrap.post_bootstrap",
            "no closing quotation",
            "balanced quotes",
        ],
    );
    assert_eq!(e.key(), Some("bootstrap.post_bootstrap"));
    error_of(
        &format!("{BASE}  callbacks:\n    on_role_change: /bin/cb 'it\n"),
        &[
            "bad.yml:24:",
            "postgresql.callbacks.on_role_change",
            "no closing quotation",
        ],
    );
    error_of(
        &format!("{BASE}  callbacks:\n    on_start: /bin/cb x\\\n"),
        &["postgresql.callbacks.on_start", "no escaped character"],
    );
    error_of(
        &format!("{BASE}  callbacks:\n    primary_role_name: leader\n"),
        &[
            "bad.yml:24:",
            "postgresql.callbacks.primary_role_name",
            "leader",
            "primary or master",
        ],
    );
}

// Issue 6, point 6: TLS is not implemented, so any key asking for it is refused with the key
// (and the variable, for the environment) named, instead of silently running without TLS.
#[test]
fn keys_asking_for_tls_are_refused() {
    error_of(
        &replace(
            "  listen: 127.0.0.1:8008\n",
            "  listen: 127.0.0.1:8008\n  certfile: /etc/rest.pem\n",
        ),
        &[
            "bad.yml:5: restapi.certfile: TLS is not supported by pgkeel yet",
            "plain HTTP",
            "got \"/etc/rest.pem\"",
            "the key removed",
        ],
    );
    for (var, value, key) in [
        ("PATRONI_RESTAPI_CERTFILE", "/c.pem", "restapi.certfile"),
        (
            "PATRONI_RESTAPI_KEYFILE_PASSWORD",
            "hunter9",
            "restapi.keyfile_password",
        ),
        (
            "PATRONI_RESTAPI_VERIFY_CLIENT",
            "required",
            "restapi.verify_client",
        ),
        ("PATRONI_CTL_CERTFILE", "/c.pem", "ctl.certfile"),
        ("PATRONI_ETCD3_PROTOCOL", "https", "etcd3.protocol"),
        ("PATRONI_ETCD3_CACERT", "/ca.pem", "etcd3.cacert"),
        ("PATRONI_ETCD3_URL", "https://e:2379", "etcd3.url"),
        (
            "PATRONI_SUPERUSER_SSLMODE",
            "verify-full",
            "postgresql.authentication.superuser.sslmode",
        ),
        (
            "PATRONI_REPLICATION_SSLROOTCERT",
            "/root.crt",
            "postgresql.authentication.replication.sslrootcert",
        ),
    ] {
        let e = load_env(BASE, &[(var, value)]).expect_err(var);
        check(
            &e,
            &[
                &format!("<env {var}>: {key}: TLS is not supported by pgkeel yet"),
                "the key removed",
            ],
        );
    }
    error_of(
        &replace(
            "  hosts: 127.0.0.1:2379\n",
            "  hosts:\n  - https://127.0.0.1:2379\n",
        ),
        &[
            "bad.yml:7: etcd3.hosts[0]: TLS is not supported",
            "etcd without TLS",
        ],
    );
    error_of(
        &replace(
            "      username: replicator\n",
            "      username: replicator\n      sslmode: require\n",
        ),
        &[
            "bad.yml:",
            "postgresql.authentication.replication.sslmode",
            "got \"require\"",
        ],
    );
    // Settings that do not ask for TLS are still accepted (and warned about as unsupported).
    load(&replace(
        "      username: replicator\n",
        "      username: replicator\n      sslmode: prefer\n",
    ))
    .unwrap();
    load_env(
        BASE,
        &[
            ("PATRONI_RESTAPI_VERIFY_CLIENT", "none"),
            ("PATRONI_CTL_INSECURE", "on"),
        ],
    )
    .unwrap();
}

// Issue 10, lesser defects: the loader reads at most 1 MiB, only from a regular file, and
// says so; it never blocks on a FIFO or grows without bound on /dev/zero.
#[test]
fn only_bounded_regular_files_are_read() {
    let e = load_config(Path::new("/dev/zero")).unwrap_err();
    check(&e, &["/dev/zero", "not a regular file"]);

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("node.yml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // No writer ever opens the FIFO: a blocking read would hang the test.
    let e = load_config(&fifo).unwrap_err();
    check(&e, &["node.yml", "not a regular file"]);

    let big = dir.path().join("big.yml");
    let mut text = BASE.to_string();
    while text.len() <= 1024 * 1024 {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&big, &text).unwrap();
    let e = load_config(&big).unwrap_err();
    check(&e, &["big.yml", "larger than 1048576 bytes"]);
}

#[test]
fn duplicate_keys_are_warnings_naming_both_lines() {
    let text = format!("{BASE}scope: other\n");
    let l = load_config_from_str(&text, Path::new("dup.yml"), &[]).expect("loads");
    assert_eq!(l.config.scope, "other", "the last value wins, as in PyYAML");
    let w: Vec<String> = l
        .warnings
        .iter()
        .filter(|w| w.key.as_deref() == Some("scope"))
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        w,
        ["dup.yml: duplicate key scope (first on line 1); the last one is used (line 23)"]
    );
    let nested = BASE.replace("    ttl: 30\n", "    ttl: 30\n    ttl: 40\n");
    let l = load_config_from_str(&nested, Path::new("dup.yml"), &[]).expect("loads");
    assert!(
        l.warnings
            .iter()
            .any(|w| w.key.as_deref() == Some("bootstrap.dcs.ttl") && w.line == Some(10)),
        "{:?}",
        l.warnings
    );
}
