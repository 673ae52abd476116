//! OS plumbing for the PostgreSQL layer: the OS user PostgreSQL runs as, running its tools with
//! a time bound, pid liveness, and atomic 0600 files.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Gid, Pid, Uid, User};

use super::PgError;

/// The OS identity PostgreSQL and its tools run as. `None` in [`resolve_os_user`] means
/// "pgkeel is not root: run as ourselves".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OsUser {
    /// Numeric user id.
    pub uid: Uid,
    /// Primary group id.
    pub gid: Gid,
    /// Home directory (becomes `HOME` of the children).
    pub home: PathBuf,
}

/// When pgkeel runs as root, PostgreSQL must run as the data directory's owner, or as the
/// `postgres` user while the directory does not exist yet (or is owned by root).
pub(crate) fn resolve_os_user(data_dir: &Path) -> Result<Option<OsUser>, PgError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    if let Ok(md) = std::fs::metadata(data_dir)
        && md.uid() != 0
    {
        let uid = Uid::from_raw(md.uid());
        let home = User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.dir)
            .unwrap_or_else(|| PathBuf::from("/"));
        return Ok(Some(OsUser {
            uid,
            gid: Gid::from_raw(md.gid()),
            home,
        }));
    }
    let user = User::from_name("postgres")
        .map_err(|e| PgError::OsUser(format!("looking up user `postgres`: {e}")))?
        .ok_or_else(|| {
            PgError::OsUser(
                "running as root and there is no `postgres` user to run PostgreSQL as".into(),
            )
        })?;
    Ok(Some(OsUser {
        uid: user.uid,
        gid: user.gid,
        home: user.dir,
    }))
}

/// Finds the PostgreSQL binaries: the configured `bin_dir`, else the directory of `postgres`
/// on `$PATH`, else the newest `/usr/lib/postgresql/<major>/bin` (Debian layout).
pub(crate) fn find_bin_dir(configured: Option<&Path>) -> PathBuf {
    if let Some(dir) = configured {
        return dir.to_path_buf();
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("postgres").is_file() && dir.join("pg_controldata").is_file() {
                return dir;
            }
        }
    }
    let mut best: Option<(u32, PathBuf)> = None;
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        for e in entries.flatten() {
            let Some(major) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let bin = e.path().join("bin");
            if bin.join("postgres").is_file() && best.as_ref().is_none_or(|(m, _)| major > *m) {
                best = Some((major, bin));
            }
        }
    }
    best.map(|(_, p)| p).unwrap_or_default()
}

/// A tool invocation: program path, args (never secrets), extra env, stdin file.
pub(crate) struct Tool<'a> {
    /// Absolute path of the program.
    pub program: PathBuf,
    /// Arguments. Never contain passwords (they go through pgpass or a pwfile).
    pub args: Vec<OsString>,
    /// Extra environment (`PGPASSFILE`, `LC_ALL`).
    pub env: Vec<(&'a str, OsString)>,
    /// How long it may run before it is killed.
    pub timeout: Duration,
}

impl Tool<'_> {
    /// The command line, for error messages.
    pub(crate) fn display(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }
}

/// Applies the identity, process group, cwd and env hygiene every PostgreSQL child gets.
pub(crate) fn prepare_command(program: &Path, user: Option<&OsUser>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.process_group(0).current_dir("/").stdin(Stdio::null());
    // Never let an inherited libpq password leak into a child.
    cmd.env_remove("PGPASSWORD");
    if let Some(u) = user {
        cmd.uid(u.uid.as_raw())
            .gid(u.gid.as_raw())
            .env("HOME", &u.home);
    }
    cmd
}

/// Runs a tool to completion within its timeout; kills its process group on timeout.
/// Returns stdout on success; the error carries the tail of stderr and stdout.
pub(crate) async fn run_tool(tool: &Tool<'_>, user: Option<&OsUser>) -> Result<String, PgError> {
    let mut cmd = prepare_command(&tool.program, user);
    cmd.args(&tool.args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in &tool.env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().map_err(|e| PgError::Io {
        what: format!("spawning `{}`", tool.display()),
        source: e,
    })?;
    let pid = child.id();
    match tokio::time::timeout(tool.timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() {
                Ok(stdout)
            } else {
                let stderr = String::from_utf8_lossy(&out.stderr);
                Err(PgError::CommandFailed {
                    command: tool.display(),
                    status: out.status.to_string(),
                    stderr_tail: tail(&format!("{stderr}{stdout}"), 10),
                })
            }
        }
        Ok(Err(e)) => Err(PgError::Io {
            what: format!("waiting for `{}`", tool.display()),
            source: e,
        }),
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            Err(PgError::Timeout {
                what: format!("`{}`", tool.display()),
                timeout: tool.timeout,
            })
        }
    }
}

/// The last `n` non-empty lines of `text`, joined with ` | ` for one-line error messages.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// The last `n` lines of a log file (best effort).
pub(crate) fn file_tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(64 * 1024);
            tail(&String::from_utf8_lossy(&bytes[start..]), n)
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// A process exists and is not a zombie. A zombie postmaster (exited, not reaped yet) is dead.
pub(crate) fn pid_alive(pid: i32) -> bool {
    match kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => {}
        Err(_) => return false,
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3 (after the parenthesised command name) is the state.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => true,
    }
}

/// The process looks like a PostgreSQL postmaster (guards against a recycled pid from a stale
/// `postmaster.pid`).
pub(crate) fn looks_like_postgres(pid: i32) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let first = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            let first = String::from_utf8_lossy(first);
            first.contains("postgres") || first.contains("postmaster")
        }
        // No /proc (or a race): trust the pid file.
        Err(_) => true,
    }
}

/// Writes `path` atomically (temp file + rename) with `mode`, owned by `user` when given.
pub(crate) fn write_atomic(
    path: &Path,
    content: &[u8],
    mode: u32,
    user: Option<&OsUser>,
) -> Result<(), PgError> {
    let io = |what: &str, e: std::io::Error| PgError::Io {
        what: format!("{what} {}", path.display()),
        source: e,
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".pgkeel-tmp");
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| io("creating a temp file for", e))?;
    f.write_all(content)
        .and_then(|()| f.sync_all())
        .map_err(|e| io("writing", e))?;
    drop(f);
    // The umask may have narrowed the mode; set it explicitly.
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io("chmod", e))?;
    if let Some(u) = user {
        nix::unistd::chown(&tmp, Some(u.uid), Some(u.gid))
            .map_err(|e| io("chown", std::io::Error::from(e)))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| io("renaming into place", e))
}

/// Creates `dir` (and parents) and makes `dir` itself owned by `user` with `mode`.
pub(crate) fn ensure_dir(dir: &Path, mode: u32, user: Option<&OsUser>) -> Result<(), PgError> {
    let io = |what: &str, e: std::io::Error| PgError::Io {
        what: format!("{what} {}", dir.display()),
        source: e,
    };
    std::fs::create_dir_all(dir).map_err(|e| io("creating", e))?;
    if let Some(u) = user {
        nix::unistd::chown(dir, Some(u.uid), Some(u.gid))
            .map_err(|e| io("chown", std::io::Error::from(e)))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(|e| io("chmod", e))
}

/// A secret temp file (mode 0600, owned by `user`) deleted when dropped.
pub(crate) struct SecretFile {
    /// Where it lives.
    pub path: PathBuf,
}

impl SecretFile {
    /// Creates it with `content` in the system temp dir.
    pub(crate) fn create(content: &[u8], user: Option<&OsUser>) -> Result<Self, PgError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path =
            std::env::temp_dir().join(format!("pgkeel-secret-{}-{nanos}", std::process::id()));
        write_atomic(&path, content, 0o600, user)?;
        Ok(SecretFile { path })
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Every process id in `/proc` (none where there is no `/proc`).
fn all_pids() -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .collect()
}

/// Processes whose working directory is `dir` (from `/proc`). Every PostgreSQL process works
/// in its data directory, so after a postmaster died these are its orphaned backends: until
/// they exit they hold the shared memory segment and a new postmaster refuses to start
/// ("pre-existing shared memory block is still in use").
pub(crate) fn pids_working_in(dir: &Path) -> Vec<i32> {
    let Ok(dir) = dir.canonicalize() else {
        return Vec::new();
    };
    all_pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir)
                && pid_alive(*pid)
        })
        .collect()
}

/// Direct children of `pid` (from `/proc`). PostgreSQL's children each call `setsid()`, so a
/// SIGKILL of the postmaster's process group does not reach them: they are killed one by one.
pub(crate) fn child_pids(pid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    let (_, rest) = stat.rsplit_once(')')?;
                    rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(pid)
        })
        .collect()
}
