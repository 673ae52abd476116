//! Process helpers: signals by PID, `postmaster.pid`, ownership checks and resident memory.
//!
//! Everything here acts on one PID at a time, and only after checking that the PID still belongs to
//! a process we started (its command line or working directory names our directory), because a PID
//! read from a file may have been reused by an unrelated process since.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Sends `sig` to `pid`. Exists so callers never shell out to `kill` or signal a process group.
pub fn signal(pid: u32, sig: Signal) -> anyhow::Result<()> {
    let raw = i32::try_from(pid).map_err(|_| anyhow!("pid {pid} out of range"))?;
    if raw <= 0 {
        return Err(anyhow!("refusing to signal pid {raw}"));
    }
    kill(Pid::from_raw(raw), sig).with_context(|| format!("sending {sig} to pid {pid}"))
}

/// True while `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Polls (bounded) until `pid` is gone. Returns whether it went away within `timeout`.
pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    crate::eventually(timeout, Duration::from_millis(20), || {
        if alive(pid) {
            Err(format!("pid {pid} still alive"))
        } else {
            Ok(())
        }
    })
    .is_ok()
}

/// The command line of `pid`, arguments joined by spaces, or `None` if it is gone.
pub fn cmdline(pid: u32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let text = String::from_utf8_lossy(&raw).replace('\0', " ");
    Some(text.trim().to_owned())
}

/// The working directory of `pid`, if readable (we run as root in tests, so it normally is).
pub fn cwd(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// True if `pid` is alive and its command line mentions `marker` or its working directory is (under)
/// `dir`. Exists so a PID read from a file is only signalled when it is still ours.
pub fn is_ours(pid: u32, dir: &Path, marker: &str) -> bool {
    if !alive(pid) {
        return false;
    }
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let by_cwd = cwd(pid).is_some_and(|c| c.starts_with(&canon) || c.starts_with(dir));
    let by_cmd = cmdline(pid).is_some_and(|c| {
        (!marker.is_empty() && c.contains(marker))
            || c.contains(&*dir.to_string_lossy())
            || c.contains(&*canon.to_string_lossy())
    });
    by_cwd || by_cmd
}

/// The postmaster PID recorded in `<data_dir>/postmaster.pid` (its first line), if any.
pub fn postmaster_pid(data_dir: &Path) -> Option<u32> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Sends `sig` to the postmaster of `data_dir`, but only if the PID in `postmaster.pid` is alive and
/// its working directory or command line is that data directory. Returns the PID signalled.
pub fn signal_postmaster(data_dir: &Path, sig: Signal) -> anyhow::Result<Option<u32>> {
    let Some(pid) = postmaster_pid(data_dir) else {
        return Ok(None);
    };
    if !is_ours(pid, data_dir, &data_dir.to_string_lossy()) {
        return Ok(None);
    }
    signal(pid, sig)?;
    Ok(Some(pid))
}

/// Resident set size of `pid` in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// One process recorded in a pids file (`<kind> <pid> <marker>` per line).
///
/// Exists so a detached demo cluster (or a test process that was SIGKILLed before its `Drop` ran)
/// can later be stopped exactly: the marker is a path that must appear in the process's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidRecord {
    /// What the process is: `agent`, `etcd` (postmasters are found through `postmaster.pid`).
    pub kind: String,
    /// The PID at the time it was recorded.
    pub pid: u32,
    /// A string (a path) that the process's command line must contain for it to be ours.
    pub marker: String,
}

/// Writes `records` to `path`, one per line.
pub fn write_pid_file(path: &Path, records: &[PidRecord]) -> anyhow::Result<()> {
    let text: String = records
        .iter()
        .map(|r| format!("{} {} {}\n", r.kind, r.pid, r.marker))
        .collect();
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Reads a pids file written by [`write_pid_file`]; malformed lines are skipped.
pub fn read_pid_file(path: &Path) -> anyhow::Result<Vec<PidRecord>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ' ');
            let kind = it.next()?.to_owned();
            let pid = it.next()?.parse().ok()?;
            let marker = it.next().unwrap_or_default().to_owned();
            Some(PidRecord { kind, pid, marker })
        })
        .collect())
}

/// SIGKILLs every recorded process that is still ours (marker in its command line) and waits (bounded)
/// for it to go away. Returns the PIDs killed.
pub fn kill_recorded(records: &[PidRecord]) -> Vec<u32> {
    let mut killed = Vec::new();
    for r in records {
        // An empty marker would match every process: such records (e.g. `owner`) are never killed.
        if r.marker.is_empty() || r.kind == "owner" || r.pid == std::process::id() {
            continue;
        }
        let ours = alive(r.pid) && cmdline(r.pid).is_some_and(|c| c.contains(&r.marker));
        if ours && signal(r.pid, Signal::SIGKILL).is_ok() {
            killed.push(r.pid);
        }
    }
    for &pid in &killed {
        wait_gone(pid, Duration::from_secs(5));
    }
    killed
}

/// The parent PID of `pid` (field 4 of `/proc/<pid>/stat`).
pub fn parent(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `pid`'s ancestors up to init (bounded to 64 levels).
fn ancestors(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut cur = pid;
    for _ in 0..64 {
        match parent(cur) {
            Some(p) if p > 1 => {
                out.push(p);
                cur = p;
            }
            _ => break,
        }
    }
    out
}

/// SIGKILLs every process of ours that belongs to the directory `dir`: a PostgreSQL program
/// (executable under `/usr/lib/postgresql`), etcd or a `pgkeel*` binary whose command line mentions
/// `dir`, or a PostgreSQL process whose working directory is under `dir` (backends and auxiliary
/// processes run with the data directory as cwd). Returns the PIDs killed.
///
/// Exists as the last sweep of a cleanup: it catches initdb, pg_basebackup, pg_rewind and orphaned
/// backends that no PID file names. `dir` must be unique to us (a temp dir or the demo dir).
pub fn kill_dir_processes(dir: &Path) -> Vec<u32> {
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let needle = canon.to_string_lossy().into_owned();
    if needle.len() < 5 || canon == Path::new("/") {
        return Vec::new();
    }
    let me = std::process::id();
    // Never our own process or its ancestors (e.g. `scripts/demo.sh stop --dir DIR` names `dir`).
    let ancestors = ancestors(me);
    let mut killed = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return killed;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me || ancestors.contains(&pid) || !alive(pid) {
            continue;
        }
        // Only programs we launch (directly or through the agent): PostgreSQL's, etcd, pgkeel's.
        // A user's `tail -f DIR/node0/pgkeel.log` names DIR too, and is left alone.
        let Ok(exe) = fs::read_link(format!("/proc/{pid}/exe")) else {
            continue;
        };
        let is_pg = exe.starts_with("/usr/lib/postgresql");
        let exe_name = exe.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let ours = is_pg || exe_name == "etcd" || exe_name.starts_with("pgkeel");
        if !ours {
            continue;
        }
        let by_cmd = cmdline(pid).is_some_and(|c| c.contains(&needle));
        let by_cwd = is_pg && cwd(pid).is_some_and(|c| c.starts_with(&canon));
        if (by_cmd || by_cwd) && signal(pid, Signal::SIGKILL).is_ok() {
            killed.push(pid);
        }
    }
    for &pid in &killed {
        wait_gone(pid, Duration::from_secs(5));
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_has_rss() {
        let me = std::process::id();
        assert!(alive(me));
        assert!(rss_kib(me).unwrap_or(0) > 0);
    }

    #[test]
    fn pid_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pids");
        let recs = vec![
            PidRecord {
                kind: "agent".into(),
                pid: 42,
                marker: "/tmp/x y/node0.yml".into(),
            },
            PidRecord {
                kind: "etcd".into(),
                pid: 43,
                marker: "/tmp/x".into(),
            },
        ];
        write_pid_file(&p, &recs).unwrap();
        assert_eq!(read_pid_file(&p).unwrap(), recs);
    }

    #[test]
    fn postmaster_pid_reads_first_line() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("postmaster.pid"),
            "1234\n/data\n1700000000\n",
        )
        .unwrap();
        assert_eq!(postmaster_pid(dir.path()), Some(1234));
        // Not our process (pid 1234 is almost certainly not running in that dir): no signal.
        assert!(!is_ours(1234, dir.path(), "no-such-marker-xyz") || alive(1234));
    }
}
