//! Patroni's own `patronictl` (PyPI `patroni` 4.1), the reference client: end-to-end tests drive
//! a pgkeel cluster with it the way a Patroni user would. `scripts/install-deps.sh` installs it
//! into a venv at the same path this module reads.

use crate::cluster::PgkeelCluster;
use anyhow::Context;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The venv holding Patroni (`PGKEEL_PATRONI_VENV`, default `/opt/pgkeel/patroni-venv`).
pub fn patroni_venv() -> PathBuf {
    std::env::var_os("PGKEEL_PATRONI_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/pgkeel/patroni-venv"))
}

/// Patroni's `patronictl` in [`patroni_venv`].
pub fn patronictl_bin() -> PathBuf {
    patroni_venv().join("bin").join("patronictl")
}

/// Panics with the install command when Patroni's `patronictl` is missing.
pub fn require_patronictl() {
    let bin = patronictl_bin();
    assert!(
        bin.exists(),
        "{} is missing: run scripts/install-deps.sh (it installs Patroni's patronictl 4.1)",
        bin.display()
    );
}

impl PgkeelCluster {
    /// Runs Patroni's `patronictl -c <node0 config> ARGS` with no terminal (stdin closed), as a
    /// script would. Prompts need `--force` or arguments; `stdin` input goes through
    /// [`PgkeelCluster::patronictl_with_input`].
    pub fn patronictl(&self, args: &[&str]) -> anyhow::Result<Output> {
        self.patronictl_with_input(args, "")
    }

    /// Runs Patroni's `patronictl -c <node0 config> ARGS`, writing `input` to its stdin (answers
    /// to its prompts, one per line).
    pub fn patronictl_with_input(&self, args: &[&str], input: &str) -> anyhow::Result<Output> {
        use std::io::Write;
        let bin = patronictl_bin();
        let mut child = Command::new(&bin)
            .arg("-c")
            .arg(&self.node(0).config_path)
            .args(args)
            .env_remove("PATRONICTL_CONFIG_FILE")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", bin.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A command that prompts for nothing may exit before reading: a broken pipe is fine.
            let _ = stdin.write_all(input.as_bytes());
        }
        child
            .wait_with_output()
            .with_context(|| format!("waiting for {}", bin.display()))
    }
}
