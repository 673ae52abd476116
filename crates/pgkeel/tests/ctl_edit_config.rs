//! `pgkeelctl edit-config` against Patroni's own `patronictl` 4.1 on the same `config` key:
//! the same diff byte for byte, the same messages and exit codes, the same `config` key
//! afterwards, for `-s`/`-p`, `--apply`, `--replace`, the prompt, the editor, and a writer
//! that loses the compare-and-swap race. Also: both tools send the same basic auth.
// Reference: patroni/ctl.py `edit_config`, `apply_config_changes`, `apply_yaml_file`,
// `invoke_editor`, `show_diff`; patroni/request.py `PatroniRequest.reload_config`.

mod ctl_compat;

use ctl_compat::{Fixture, batman};
use pgkeel_testkit::etcd::etcdctl_bin;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const CONFIG: &str = r#"{"ttl":30,"loop_wait":10,"retry_timeout":10,"maximum_lag_on_failover":1048576,"postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":100,"wal_level":"replica","auto_explain.log_min_duration":"1s"},"pg_hba":["host all all 0.0.0.0/0 md5"]},"slots":{"s1":{"type":"physical"}}}"#;

#[allow(clippy::unwrap_used)] // test helper outside #[test]
fn config() -> Value {
    serde_json::from_str(CONFIG).unwrap()
}

/// Writes an executable shell script.
#[allow(clippy::unwrap_used)] // test helper outside #[test]
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn set_and_pg_print_patronictls_diff() {
    let f = Fixture::start();
    let keys = batman(f.stub.port, CONFIG);

    // -s nested + -p (GUC with a dot, leading space stripped), YAML 1.1 values.
    let args = [
        "edit-config",
        "--force",
        "-s",
        "ttl=60",
        "-s",
        "postgresql.use_slots=on",
        "-s",
        "synchronous_mode=yes",
        "-p",
        " max_connections=200",
        "-p",
        "auto_explain.log_min_duration=500ms",
        "--set",
        "tags.new.deep=[1, 'a']",
    ];
    let o = f.compare(&keys, (200, ""), &args, "");
    assert_eq!((o.code, &o.error), (Some(0), &None), "{o:?}");
    assert!(o.stdout.starts_with("--- \n+++ \n@@ "), "{}", o.stdout);
    assert!(o.stdout.contains("\n-ttl: 30\n"), "{}", o.stdout);
    assert!(
        o.stdout.contains("\n+ttl: 60\nConfiguration changed\n"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.ends_with("Configuration changed\n"),
        "{}",
        o.stdout
    );
    let mut want = config();
    want["ttl"] = json!(60);
    want["postgresql"]["use_slots"] = json!(true);
    want["synchronous_mode"] = json!(true);
    want["postgresql"]["parameters"]["max_connections"] = json!(200);
    want["postgresql"]["parameters"]["auto_explain.log_min_duration"] = json!("500ms");
    want["tags"] = json!({"new": {"deep": [1, "a"]}});
    assert_eq!(o.config_key, Some(want));

    // PyYAML's YAML 1.1 resolution: y/n, 1e3, 0o10 and None stay strings; 1:30 is 90, 010 is 8.
    let o = f.compare(
        &keys,
        (200, ""),
        &[
            "edit-config",
            "--force",
            "-s",
            "a=y",
            "-s",
            "b=1e3",
            "-s",
            "c=0o10",
            "-s",
            "d=None",
            "-s",
            "e=1:30",
            "-s",
            "f=010",
            "-s",
            "g=1.5",
            "-s",
            "h='on'",
            "-s",
            "i={x: off}",
        ],
        "",
    );
    let c = o.config_key.unwrap();
    let got: Vec<&Value> = ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
        .iter()
        .map(|k| &c[*k])
        .collect();
    assert_eq!(
        got,
        [
            &json!("y"),
            &json!("1e3"),
            &json!("0o10"),
            &json!("None"),
            &json!(90),
            &json!(8),
            &json!(1.5),
            &json!("on"),
            &json!({"x": false})
        ]
    );

    // -q: nothing printed but the result.
    let o = f.compare(
        &keys,
        (200, ""),
        &["edit-config", "-q", "--force", "-s", "ttl=45"],
        "",
    );
    assert_eq!(o.stdout, "Configuration changed\n");
    assert_eq!(o.config_key.as_ref().unwrap()["ttl"], json!(45));

    // null (and an empty value) deletes; maps emptied by the deletion go too.
    let o = f.compare(
        &keys,
        (200, ""),
        &[
            "edit-config",
            "--force",
            "-s",
            "slots.s1=null",
            "-s",
            "retry_timeout=",
            "-s",
            "loop_wait=~",
        ],
        "",
    );
    let c = o.config_key.unwrap();
    assert_eq!(o.code, Some(0));
    for k in ["slots", "retry_timeout", "loop_wait"] {
        assert!(c.get(k).is_none(), "{k} left in {c}");
    }
    assert!(
        o.stdout.contains("-slots:\n-  s1:\n-    type: physical\n"),
        "{}",
        o.stdout
    );

    // The same values: Not changed (and nothing with -q); deleting an absent key neither.
    for args in [
        &["edit-config", "-s", "ttl=30", "-p", "max_connections=100"][..],
        &["edit-config", "-s", "nothing.here=null"][..],
        &["edit-config", "-s", "ttl=30.0"][..],
    ] {
        let o = f.compare(&keys, (200, ""), args, "");
        assert_eq!(
            (o.stdout.as_str(), o.code),
            ("Not changed\n", Some(0)),
            "{args:?}"
        );
        assert_eq!(o.config_key, Some(config()));
    }
    let o = f.compare(&keys, (200, ""), &["edit-config", "-q", "-s", "ttl=30"], "");
    assert_eq!((o.stdout.as_str(), o.code), ("", Some(0)));

    // A pair without '='.
    let o = f.compare(&keys, (200, ""), &["edit-config", "-s", "ttl"], "");
    assert_eq!(
        o.error.as_deref(),
        Some("Error: Invalid parameter setting ttl")
    );
    assert_eq!((o.code, o.config_key), (Some(1), Some(config())));
    let o = f.compare(&keys, (200, ""), &["edit-config", "-p", "work_mem"], "");
    assert_eq!(
        o.error.as_deref(),
        Some("Error: Invalid parameter setting postgresql.parameters.work_mem")
    );

    // --group N: a Citus group's keys, under batman/N/.
    let mut grouped = keys.clone();
    grouped.push(("1/config".into(), r#"{"ttl":5}"#.into()));
    let o = f.compare(
        &grouped,
        (200, ""),
        &["edit-config", "--group", "1", "--force", "-s", "ttl=6"],
        "",
    );
    assert_eq!(o.code, Some(0), "{o:?}");
    assert_eq!(
        o.config_key,
        Some(config()),
        "the group's key is edited, not the cluster's"
    );
    let o = f.compare(
        &keys,
        (200, ""),
        &["edit-config", "--group", "2", "-s", "ttl=6"],
        "",
    );
    assert_eq!(
        o.error.as_deref(),
        Some("Error: The config key does not exist in the cluster batman")
    );

    // No config key at all.
    let no_config: Vec<_> = keys
        .iter()
        .filter(|(k, _)| k != "config")
        .cloned()
        .collect();
    let o = f.compare(
        &no_config,
        (200, ""),
        &["edit-config", "batman", "-s", "ttl=1"],
        "",
    );
    assert_eq!(
        o.error.as_deref(),
        Some("Error: The config key does not exist in the cluster batman")
    );
    assert_eq!((o.code, o.config_key), (Some(1), None));
}

#[test]
fn prompt_answers() {
    let f = Fixture::start();
    let keys = batman(f.stub.port, CONFIG);
    let args = ["edit-config", "-s", "ttl=60"];
    for (input, changed) in [
        ("n\n", false),
        ("\n", false),
        ("y\n", true),
        ("maybe\nyes\n", true),
    ] {
        let o = f.compare(&keys, (200, ""), &args, input);
        assert_eq!(o.code, Some(0), "{input:?}");
        assert!(
            o.stdout.contains("Apply these changes? [y/N]: "),
            "{}",
            o.stdout
        );
        assert_eq!(
            o.stdout.ends_with("Configuration changed\n"),
            changed,
            "{}",
            o.stdout
        );
        let ttl = o.config_key.unwrap()["ttl"].clone();
        assert_eq!(ttl, json!(if changed { 60 } else { 30 }));
    }
    // End of input at the prompt.
    let o = f.compare(&keys, (200, ""), &args, "");
    assert_eq!((o.error.as_deref(), o.code), (Some("Aborted!"), Some(1)));
    assert_eq!(o.config_key, Some(config()));
}

#[test]
fn apply_and_replace_files() {
    let f = Fixture::start();
    let keys = batman(f.stub.port, CONFIG);
    let patch = f.dir().join("patch.yaml");
    std::fs::write(
        &patch,
        "ttl: 60\nloop_wait: '10'\nslots:\n  s1: null\n  s2:\n    type: logical\n    database: db\npostgresql:\n  parameters:\n    work_mem: 4MB\n    wal_level: null\nnew_key: off\n",
    )
    .unwrap();
    let p = patch.to_str().unwrap();

    let o = f.compare(
        &keys,
        (200, ""),
        &["edit-config", "--force", "--apply", p],
        "",
    );
    assert_eq!(o.code, Some(0), "{o:?}");
    let mut want = config();
    want["ttl"] = json!(60);
    want["slots"] = json!({"s2": {"type": "logical", "database": "db"}});
    want["postgresql"]["parameters"]["work_mem"] = json!("4MB");
    want["postgresql"]["parameters"]
        .as_object_mut()
        .unwrap()
        .shift_remove("wal_level");
    want["new_key"] = json!(false);
    assert_eq!(o.config_key, Some(want));

    // --apply then -s on top.
    let o = f.compare(
        &keys,
        (200, ""),
        &["edit-config", "--force", "--apply", p, "-s", "ttl=61"],
        "",
    );
    assert_eq!(o.config_key.unwrap()["ttl"], json!(61));

    // --replace: the file alone is the new configuration.
    let replace = f.dir().join("replace.yaml");
    std::fs::write(
        &replace,
        "ttl: 20\nloop_wait: 5\npostgresql:\n  parameters:\n    max_connections: 50\n",
    )
    .unwrap();
    let r = replace.to_str().unwrap();
    let o = f.compare(
        &keys,
        (200, ""),
        &["edit-config", "--force", "--replace", r],
        "",
    );
    assert_eq!(
        o.config_key,
        Some(
            json!({"ttl": 20, "loop_wait": 5, "postgresql": {"parameters": {"max_connections": 50}}})
        )
    );

    // From stdin: refused without --force (after the diff), applied with it.
    let yaml = "ttl: 77\n";
    for args in [
        &["edit-config", "--apply", "-"][..],
        &["edit-config", "--replace", "-"][..],
    ] {
        let o = f.compare(&keys, (200, ""), args, yaml);
        assert_eq!(o.code, Some(0), "{args:?}");
        assert!(
            o.stdout.ends_with("Use --force option to apply changes\n"),
            "{}",
            o.stdout
        );
        assert_eq!(o.config_key, Some(config()));
    }
    let o = f.compare(
        &keys,
        (200, ""),
        &["edit-config", "--apply", "-", "--force"],
        yaml,
    );
    assert_eq!(o.config_key.unwrap()["ttl"], json!(77));
    let o = f.compare(
        &keys,
        (200, ""),
        &["edit-config", "-q", "--replace", "-", "--force"],
        yaml,
    );
    assert_eq!(o.stdout, "Configuration changed\n");
    assert_eq!(o.config_key, Some(json!({"ttl": 77})));

    // A file that changes nothing.
    let same = f.dir().join("same.yaml");
    std::fs::write(&same, "ttl: 30\nloop_wait: '10'\n").unwrap();
    let o = f.compare(
        &keys,
        (200, ""),
        &["edit-config", "--apply", same.to_str().unwrap()],
        "",
    );
    assert_eq!(o.stdout, "Not changed\n");
}

#[test]
fn editor_edits_the_yaml() {
    let f = Fixture::start();
    let keys = batman(f.stub.port, CONFIG);
    let editor = script(
        f.dir(),
        "editor.sh",
        r#"case "$1" in */batman-config-*.yaml) ;; *) echo "bad file name $1" >&2; exit 3;; esac
sed -i -e 's/^ttl: 30$/ttl: 42/' -e 's/^  use_pg_rewind: true$/  use_pg_rewind: false/' "$1"
echo 'synchronous_mode: on' >> "$1""#,
    );
    let env = [("EDITOR", editor.to_str().unwrap())];
    let o = f.compare_with(&keys, (200, ""), &["edit-config"], "y\n", &env);
    assert_eq!(o.code, Some(0), "{o:?}");
    assert!(o.stdout.contains("+synchronous_mode: on\n"), "{}", o.stdout);
    let mut want = config();
    want["ttl"] = json!(42);
    want["postgresql"]["use_pg_rewind"] = json!(false);
    want["synchronous_mode"] = json!(true);
    assert_eq!(o.config_key, Some(want));

    // An editor that leaves the file alone; one that fails.
    let noop = script(f.dir(), "noop.sh", "true");
    let o = f.compare_with(
        &keys,
        (200, ""),
        &["edit-config"],
        "",
        &[("EDITOR", noop.to_str().unwrap())],
    );
    assert_eq!(o.stdout, "Not changed\n");
    let fail = script(f.dir(), "fail.sh", "exit 3");
    let o = f.compare_with(
        &keys,
        (200, ""),
        &["edit-config"],
        "",
        &[("EDITOR", fail.to_str().unwrap())],
    );
    assert_eq!(
        o.error.as_deref(),
        Some("Error: Editor exited with return code 3")
    );
    assert_eq!((o.code, o.config_key), (Some(1), Some(config())));

    // An emptied file is YAML null, written as such (patronictl does the same).
    let empty = script(f.dir(), "empty.sh", ": > \"$1\"");
    let env = [("EDITOR", empty.to_str().unwrap())];
    let o = f.compare_with(&keys, (200, ""), &["edit-config", "--force"], "", &env);
    assert_eq!(
        (o.code, &o.config_key),
        (Some(0), &Some(Value::Null)),
        "{o:?}"
    );

    // No $EDITOR and neither `editor` nor `vi` on the PATH.
    let env = [("PATH", "/nonexistent")];
    let o = f.compare_with(&keys, (200, ""), &["edit-config"], "", &env);
    assert_eq!(
        o.error.as_deref(),
        Some("Error: EDITOR environment variable is not set. editor or vi are not available")
    );
}

#[test]
fn losing_writer_aborts_and_keeps_the_winners_change() {
    let f = Fixture::start();
    let keys = batman(f.stub.port, CONFIG);
    // While the first writer's editor runs, a second edit-config (pgkeelctl for both tools,
    // so the outcomes compare) changes the key; the first one's compare-and-swap must fail.
    let racer = script(
        f.dir(),
        "racer.sh",
        &format!(
            "{} -c {} edit-config --force -q -s loop_wait=7 >/dev/null\nsed -i 's/^ttl: 30$/ttl: 42/' \"$1\"",
            env!("CARGO_BIN_EXE_pgkeelctl"),
            f.config_path().display()
        ),
    );
    let env = [("EDITOR", racer.to_str().unwrap())];
    let o = f.compare_with(&keys, (200, ""), &["edit-config", "--force"], "", &env);
    assert_eq!(
        o.error.as_deref(),
        Some("Error: Config modification aborted due to concurrent changes")
    );
    assert_eq!(o.code, Some(1));
    assert!(o.stdout.contains("+ttl: 42\n"), "{}", o.stdout);
    let mut want = config();
    want["loop_wait"] = json!(7);
    assert_eq!(o.config_key, Some(want), "the winner's change was lost");

    // The same race with the key rewritten by etcdctl directly, answering the prompt.
    let rewrite = script(
        f.dir(),
        "rewrite.sh",
        &format!(
            "ETCDCTL_API=3 {} --endpoints={} put /service/batman/config '{{\"ttl\":99}}' >/dev/null\nsed -i 's/^ttl: 30$/ttl: 42/' \"$1\"",
            etcdctl_bin(),
            f.etcd.client_urls().join(",")
        ),
    );
    let env = [("EDITOR", rewrite.to_str().unwrap())];
    let o = f.compare_with(&keys, (200, ""), &["edit-config"], "y\n", &env);
    assert_eq!(
        o.error.as_deref(),
        Some("Error: Config modification aborted due to concurrent changes")
    );
    assert_eq!(o.config_key, Some(json!({"ttl": 99})));
}

#[test]
fn rest_requests_carry_basic_auth() {
    let password = "s3cr3t-pw";
    let f = Fixture::start_with(&format!(
        "restapi:\n  listen: 127.0.0.1:8008\n  connect_address: 127.0.0.1:8008\n  authentication:\n    username: admin\n    password: {password}\n"
    ));
    let keys = batman(f.stub.port, CONFIG);
    let o = f.compare(&keys, (200, ""), &["pause"], "");
    assert_eq!(o.code, Some(0), "{o:?}");
    // base64("admin:s3cr3t-pw")
    assert_eq!(
        o.authorizations,
        [Some("Basic YWRtaW46czNjcjN0LXB3".to_string())]
    );
    let o = f.compare(
        &keys,
        (200, "Successfully switched over"),
        &[
            "switchover",
            "--leader",
            "node0",
            "--candidate",
            "node1",
            "--force",
        ],
        "",
    );
    assert_eq!(
        o.authorizations,
        [Some("Basic YWRtaW46czNjcjN0LXB3".to_string())]
    );
    assert!(!o.stdout.contains(password) && !o.stderr.0.contains(password));
}

#[test]
fn ctl_authentication_wins_over_restapi() {
    let f = Fixture::start_with(
        "restapi:\n  authentication:\n    username: admin\n    password: one\nctl:\n  authentication:\n    username: ctl\n    password: two\n",
    );
    let keys = batman(f.stub.port, CONFIG);
    let o = f.compare(&keys, (200, ""), &["pause"], "");
    // base64("ctl:two")
    assert_eq!(o.authorizations, [Some("Basic Y3RsOnR3bw==".to_string())]);

    // The PATRONI_CTL_* variables override the file.
    let env = [
        ("PATRONI_CTL_USERNAME", "env"),
        ("PATRONI_CTL_PASSWORD", "three"),
    ];
    let o = f.compare_with(&keys, (200, ""), &["pause"], "", &env);
    // base64("env:three")
    assert_eq!(o.authorizations, [Some("Basic ZW52OnRocmVl".to_string())]);
}

#[test]
fn long_configs_diff_like_difflib() {
    // Over 200 lines with many repeated ones: difflib's autojunk heuristic and several hunks.
    let f = Fixture::start();
    let mut params = serde_json::Map::new();
    let mut slots = serde_json::Map::new();
    for i in 0..150 {
        params.insert(format!("p{i:03}"), json!(i % 7));
        slots.insert(format!("s{i:03}"), json!({"type": "physical"}));
    }
    let config = json!({"ttl": 30, "postgresql": {"parameters": params}, "slots": slots});
    let keys = batman(f.stub.port, &config.to_string());
    let args = [
        "edit-config",
        "--force",
        "-s",
        "ttl=31",
        "-p",
        "p010=x",
        "-p",
        "p011=null",
        "-p",
        "p100=3",
        "-s",
        "slots.s050=null",
        "-s",
        "slots.s120.type=logical",
        "-s",
        "slots.zzz.type=physical",
    ];
    let o = f.compare(&keys, (200, ""), &args, "");
    assert_eq!(o.code, Some(0), "{o:?}");
    assert!(o.stdout.matches("\n@@ ").count() >= 4, "{}", o.stdout);
}
