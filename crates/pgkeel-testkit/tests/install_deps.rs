//! `scripts/install-deps.sh --check` detects a missing or unusable prerequisite by running it, names
//! it, and fails, without installing anything (so this runs unprivileged, in the normal suite).
//!
//! The prerequisites are pointed elsewhere with the overrides the testkit itself honours
//! (`PGKEEL_ETCD_BIN`, `PGKEEL_ETCDCTL_BIN`), so the script and the tests agree on what they use.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The script under test.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install-deps.sh")
}

/// Runs `install-deps.sh --check` with `env` added; returns its output.
fn check(env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(script()).arg("--check");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("bash runs")
}

/// stdout and stderr, for assertions and failure messages.
fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_etcd_is_named_and_fails_the_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = dir.path().join("no-such-etcd");
    let out = check(&[("PGKEEL_ETCD_BIN", &etcd)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains(&format!(
            "install-deps: FAIL etcd: {} not found (Debian package etcd-server)",
            etcd.display()
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains("install-deps: missing: ") && stderr.contains("etcd"),
        "{stderr}"
    );
    // Every check reports, passing or not, and --check never installs.
    assert!(stdout.contains("etcdctl"), "{stdout}");
    assert!(!stdout.contains("installing"), "{stdout}");
}

#[test]
fn an_etcdctl_older_than_3_4_fails_the_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let etcdctl = dir.path().join("etcdctl");
    std::fs::write(
        &etcdctl,
        "#!/bin/sh\necho 'etcdctl version: 3.3.27'\necho 'API version: 3.3'\n",
    )
    .expect("write fake etcdctl");
    std::fs::set_permissions(&etcdctl, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = check(&[("PGKEEL_ETCDCTL_BIN", &etcdctl)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("install-deps: FAIL etcdctl: ")
            && stdout.contains("says \"etcdctl version: 3.3.27\", expected 3.4 or newer"),
        "{stdout}"
    );
    assert!(stderr.contains("etcdctl"), "{stderr}");
}
