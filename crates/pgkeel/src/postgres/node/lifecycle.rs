//! The postmaster process of a [`PgNode`]: finding it (`postmaster.pid`), starting it (adopting
//! a running one, clearing a dead one's lock files, waiting for its orphaned backends), watching
//! it for exit, stopping it with escalation, reloading and promoting it.
//!
//! Kept apart because it is the one part of the node that signals processes and polls for their
//! state; everything else talks to the server through SQL or its tools.

use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::time::{Instant, sleep};

use super::{PgNode, QUERY_TIMEOUT};
use crate::postgres::{PgError, StartOutcome, StopMode, conf, os};

/// How long a start waits at most for the backends of a dead postmaster to exit.
const ORPHAN_WAIT: Duration = Duration::from_secs(5);
/// How long to wait after SIGKILL of the process group.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How often an adopted postmaster's pid is checked.
const ADOPT_POLL: Duration = Duration::from_millis(200);
/// How often start/stop/promote re-check their condition.
const POLL: Duration = Duration::from_millis(25);
/// How long a requested promotion may take before the startup process is woken (a promotion
/// without WAL left to replay is over within a few tens of milliseconds), and how often after.
const PROMOTE_KICK: Duration = Duration::from_millis(200);
const PROMOTE_KICK_AGAIN: Duration = Duration::from_secs(1);

impl PgNode {
    /// The pid of a live postmaster for our data directory, from `postmaster.pid`.
    ///
    /// When `postmaster.pid` cannot be read for another reason than its absence (the agent is
    /// out of file descriptors, the disk fails), the postmaster this agent started or adopted
    /// still counts while it lives: checking and signalling a known PID needs no file, so a
    /// server the agent cannot see is still reported, and can still be stopped.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = match std::fs::read_to_string(self.cfg.data_dir.join("postmaster.pid")) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(_) => return self.known_postmaster().filter(|pid| os::pid_alive(*pid)),
        };
        let pf = conf::parse_pidfile(&text)?;
        (os::pid_alive(pf.pid) && os::looks_like_postgres(pf.pid)).then_some(pf.pid)
    }

    /// The postmaster this agent started or adopted, if it has not seen it exit.
    fn known_postmaster(&self) -> Option<i32> {
        self.watch.lock().ok().and_then(|w| w.pid)
    }

    /// After a postmaster was killed, its backends notice only a moment later and exit; a new
    /// postmaster started before they are gone fails ("pre-existing shared memory block is
    /// still in use"). Waits, at most `bound`, until no process works in the data directory.
    async fn wait_for_orphaned_backends(&self, bound: Duration) {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let orphans = os::pids_working_in(&self.cfg.data_dir);
            if orphans.is_empty() {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    ?orphans,
                    "processes of a dead postmaster still run in the data directory; starting anyway"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts watching `pid` (started elsewhere or by a previous agent) for exit.
    pub(super) fn adopt(&self, pid: i32) {
        {
            let Ok(mut w) = self.watch.lock() else {
                return;
            };
            if w.pid == Some(pid) {
                return;
            }
            w.pid = Some(pid);
        }
        let watch = self.watch.clone();
        let exits = self.exits.clone();
        tokio::spawn(async move {
            loop {
                sleep(ADOPT_POLL).await;
                let still_ours = watch.lock().map(|w| w.pid == Some(pid)).unwrap_or(false);
                if !still_ours {
                    return;
                }
                if !os::pid_alive(pid) {
                    if let Ok(mut w) = watch.lock()
                        && w.pid == Some(pid)
                    {
                        w.pid = None;
                        w.last_exit = Some("adopted postmaster exited".into());
                    }
                    exits.send_modify(|n| *n += 1);
                    return;
                }
            }
        });
    }

    /// Waits until `postmaster.pid` shows `pid` ready, the postmaster dies, or `bound` passes.
    async fn wait_ready(&self, pid: i32, bound: Duration) -> Result<StartOutcome, PgError> {
        let deadline = Instant::now() + bound;
        loop {
            if !os::pid_alive(pid) {
                let status = self
                    .watch
                    .lock()
                    .ok()
                    .and_then(|w| w.last_exit.clone())
                    .unwrap_or_else(|| "exited".into());
                return Err(PgError::StartFailed {
                    status,
                    log_tail: os::file_tail(&self.log_file(), 15),
                });
            }
            let pidfile = std::fs::read_to_string(self.cfg.data_dir.join("postmaster.pid"))
                .ok()
                .and_then(|t| conf::parse_pidfile(&t));
            if let Some(pf) = pidfile
                && pf.pid == pid
                && matches!(pf.status.as_deref(), Some("ready" | "standby"))
            {
                return Ok(StartOutcome::Ready);
            }
            if Instant::now() >= deadline {
                return Ok(StartOutcome::StillStarting);
            }
            sleep(POLL).await;
        }
    }

    async fn wait_dead(pid: i32, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        loop {
            if !os::pid_alive(pid) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            sleep(POLL).await;
        }
    }

    /// Refuses an operation that needs the server stopped.
    pub(super) fn ensure_stopped(&self, what: &str) -> Result<(), PgError> {
        match self.postmaster_pid() {
            Some(pid) => Err(PgError::Refused(format!(
                "cannot {what}: postgres is running (pid {pid})"
            ))),
            None => Ok(()),
        }
    }

    /// A standby (`standby.signal`) whose primary ran with higher settings than configured
    /// starts with the primary's (Patroni's `effective_configuration`), logged in Patroni's
    /// words and remembered as pending a restart. Empty for a primary.
    async fn standby_minimums(&self) -> Vec<pgkeel_ha::pg::PendingRestart> {
        let data = &self.cfg.data_dir;
        let raised = if data.join("standby.signal").exists() {
            let configured = std::fs::read_to_string(data.join("postgresql.conf"))
                .map(|t| conf::parse_managed_params(&t))
                .unwrap_or_default();
            match self.controldata().await {
                Ok(cd) => conf::raised_for_standby(&cd, &configured),
                Err(e) => {
                    tracing::warn!("cannot read pg_controldata before the start: {e}");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        for r in &raised {
            tracing::info!(
                "{} value in pg_controldata: {}, in the global configuration: {}. pg_controldata value will be used. Setting 'Pending restart' flag",
                r.name,
                r.old_value,
                r.new_value
            );
        }
        if let Ok(mut g) = self.raised.lock() {
            g.clone_from(&raised);
        }
        raised
    }

    /// Starts the postmaster, or adopts a running one, and waits for it: the body of
    /// [`PostgresControl::start`].
    ///
    /// [`PostgresControl::start`]: crate::postgres::PostgresControl::start
    pub(super) async fn start(&self, bound: Duration) -> Result<StartOutcome, PgError> {
        if let Some(pid) = self.postmaster_pid() {
            self.adopt(pid);
            return self.wait_ready(pid, bound).await;
        }
        // No live postmaster owns this data directory, but a lock file may still name a dead
        // one: a crashed postmaster we adopted (not our child) stays a zombie until its parent
        // reaps it, and PostgreSQL's own check counts a zombie as alive and refuses to start.
        // Removing the stale lock is safe: PostgreSQL still refuses to start while any old
        // backend holds the shared memory segment.
        let lock = self.cfg.data_dir.join("postmaster.pid");
        if lock.exists() {
            tracing::info!(path = %lock.display(), "removing the stale lock file of a dead postmaster");
            let _ = std::fs::remove_file(&lock);
        }
        // The same for the unix socket's lock, unless it belongs to a live postgres.
        let (_, port) = self.listen();
        let socket_lock = self.socket_dir().join(format!(".s.PGSQL.{port}.lock"));
        if let Ok(text) = std::fs::read_to_string(&socket_lock) {
            let owner = text
                .lines()
                .next()
                .and_then(|l| l.trim().parse::<i32>().ok());
            let live = owner.is_some_and(|pid| os::pid_alive(pid) && os::looks_like_postgres(pid));
            if !live {
                tracing::info!(path = %socket_lock.display(), "removing the stale socket lock file of a dead postmaster");
                let _ = std::fs::remove_file(&socket_lock);
            }
        }
        self.wait_for_orphaned_backends(bound.min(ORPHAN_WAIT))
            .await;
        let user = self.os_user()?;
        let log = self.log_file();
        if let Some(dir) = log.parent() {
            os::ensure_dir(dir, 0o700, user.as_ref())?;
        }
        let log_io = |e| PgError::Io {
            what: format!("opening {}", log.display()),
            source: e,
        };
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&log)
                .map_err(log_io)?
        };
        if let Some(u) = &user {
            let _ = nix::unistd::chown(&log, Some(u.uid), Some(u.gid));
        }
        let err_file = file.try_clone().map_err(log_io)?;
        let mut cmd = os::prepare_command(&self.bin_dir.join("postgres"), user.as_ref());
        cmd.arg("-D").arg(&self.cfg.data_dir);
        for raised in self.standby_minimums().await {
            cmd.arg("-c")
                .arg(format!("{}={}", raised.name, raised.old_value));
        }
        cmd.stdout(file).stderr(err_file);
        let mut child = cmd.spawn().map_err(|e| PgError::Io {
            what: format!("spawning {}/postgres", self.bin_dir.display()),
            source: e,
        })?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| PgError::Refused("postgres exited before it got a pid".into()))?;
        tracing::info!(pid, data_dir = %self.cfg.data_dir.display(), "started postgres");
        if let Ok(mut w) = self.watch.lock() {
            w.pid = Some(pid);
            w.last_exit = None;
        }
        let watch = self.watch.clone();
        let exits = self.exits.clone();
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => format!("wait failed: {e}"),
            };
            tracing::info!(pid, %status, "postmaster exited");
            if let Ok(mut w) = watch.lock() {
                if w.pid == Some(pid) {
                    w.pid = None;
                }
                w.last_exit = Some(status);
            }
            exits.send_modify(|n| *n += 1);
        });
        self.wait_ready(pid, bound).await
    }

    /// Stops the postmaster, escalating stage by stage: the body of [`PostgresControl::stop`].
    ///
    /// [`PostgresControl::stop`]: crate::postgres::PostgresControl::stop
    pub(super) async fn stop(
        &self,
        mode: StopMode,
        bound: Duration,
    ) -> Result<Option<StopMode>, PgError> {
        let Some(pid) = self.postmaster_pid() else {
            return Ok(None);
        };
        *self.client.lock().await = None;
        let stages: &[StopMode] = match mode {
            StopMode::Smart => &[
                StopMode::Smart,
                StopMode::Fast,
                StopMode::Immediate,
                StopMode::Kill,
            ],
            StopMode::Fast => &[StopMode::Fast, StopMode::Immediate, StopMode::Kill],
            StopMode::Immediate => &[StopMode::Immediate, StopMode::Kill],
            StopMode::Kill => &[StopMode::Kill],
        };
        let target = Pid::from_raw(pid);
        for &stage in stages {
            let sent = match stage {
                StopMode::Smart => kill(target, Signal::SIGTERM),
                StopMode::Fast => kill(target, Signal::SIGINT),
                StopMode::Immediate => kill(target, Signal::SIGQUIT),
                StopMode::Kill => {
                    // The postmaster's children each run in their own session (setsid), so
                    // kill them one by one, then the postmaster's group when it leads one
                    // (we start it with process_group(0)); never our own group.
                    for child in os::child_pids(pid) {
                        let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
                    }
                    let own = nix::unistd::getpgrp();
                    match nix::unistd::getpgid(Some(target)) {
                        Ok(pg) if pg == target && pg != own => killpg(pg, Signal::SIGKILL),
                        _ => kill(target, Signal::SIGKILL),
                    }
                }
            };
            if let Err(nix::errno::Errno::ESRCH) = sent {
                return Ok(Some(stage));
            }
            let wait = if stage == StopMode::Kill {
                KILL_WAIT
            } else {
                bound
            };
            if Self::wait_dead(pid, wait).await {
                if stage != mode {
                    tracing::warn!(pid, requested = ?mode, finished = ?stage, "postgres stop escalated");
                }
                return Ok(Some(stage));
            }
            tracing::warn!(pid, ?stage, timeout = ?wait, "postgres did not stop in time, escalating");
        }
        Err(PgError::Timeout {
            what: format!("stopping postgres (pid {pid})"),
            timeout: bound,
        })
    }

    /// Sends SIGHUP to the postmaster: the body of [`PostgresControl::reload`].
    ///
    /// [`PostgresControl::reload`]: crate::postgres::PostgresControl::reload
    pub(super) async fn reload(&self) -> Result<(), PgError> {
        let pid = self
            .postmaster_pid()
            .ok_or_else(|| PgError::Refused("cannot reload: postgres is not running".into()))?;
        kill(Pid::from_raw(pid), Signal::SIGHUP).map_err(|e| PgError::Io {
            what: format!("sending SIGHUP to postmaster {pid}"),
            source: e.into(),
        })
    }

    /// Promotes a standby and waits until it is out of recovery: the body of
    /// [`PostgresControl::promote`].
    ///
    /// [`PostgresControl::promote`]: crate::postgres::PostgresControl::promote
    pub(super) async fn promote(&self, bound: Duration) -> Result<(), PgError> {
        let deadline = Instant::now() + bound;
        let pid = self
            .postmaster_pid()
            .ok_or_else(|| PgError::Refused("cannot promote: postgres is not running".into()))?;
        const IN_RECOVERY: &str = "SELECT pg_catalog.pg_is_in_recovery()";
        let asked = match self.query("promote", IN_RECOVERY, &[], QUERY_TIMEOUT).await {
            Ok(rows) if rows.first().is_some_and(|r| !r.get::<_, bool>(0)) => return Ok(()),
            Ok(_) => self
                .query(
                    "promote",
                    "SELECT pg_catalog.pg_promote(false)",
                    &[],
                    QUERY_TIMEOUT,
                )
                .await
                .is_ok(),
            Err(_) => false,
        };
        if !asked {
            // Not accepting connections: what `pg_ctl promote` does.
            let user = self.os_user()?;
            os::write_atomic(
                &self.cfg.data_dir.join("promote"),
                b"",
                0o600,
                user.as_ref(),
            )?;
            kill(Pid::from_raw(pid), Signal::SIGUSR1).map_err(|e| PgError::Io {
                what: format!("sending SIGUSR1 to postmaster {pid}"),
                source: e.into(),
            })?;
        }
        let mut next_kick = Instant::now() + PROMOTE_KICK;
        loop {
            if let Ok(rows) = self.query("promote", IN_RECOVERY, &[], QUERY_TIMEOUT).await
                && rows.first().is_some_and(|r| !r.get::<_, bool>(0))
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(PgError::Timeout {
                    what: "promotion".into(),
                    timeout: bound,
                });
            }
            if Instant::now() >= next_kick {
                // The startup process may have taken the request while streaming and then
                // sleep `wal_retrieve_retry_interval` (5 s) before it looks at it again; a
                // SIGHUP ends that sleep (measured: a reload 10 ms before the request made
                // every synchronous-mode failover 5 s slower).
                if let Err(e) = self.reload().await {
                    tracing::debug!(error = %e, "could not wake the startup process");
                }
                next_kick = Instant::now() + PROMOTE_KICK_AGAIN;
            }
            sleep(POLL).await;
        }
    }
}
