//! User callbacks (`postgresql.callbacks`): each runs as `<command words...> <action> <role>
//! <scope>`, as Patroni runs them, without blocking the HA loop.
//!
//! One worker runs them one at a time, in the order the core asked for them, so a VIP script's
//! `on_stop` (remove the address) has finished before the `on_role_change` that adds it on
//! another role starts. Each is bounded: after [`CALLBACK_TIMEOUT`] its whole process group is
//! killed, so a hung script delays the next one by at most that. Every line it prints goes to
//! the agent's log. Patroni instead kills a running callback when the next one arrives; a queue
//! keeps every event a script was promised and still never runs two at once.
//!
//! `on_reload` has its own worker (as Patroni has its own executor for it), so a reload never
//! waits behind a role change.

use crate::config::{PrimaryRoleName, ShellCommand};
use pgkeel_ha::ha::{CallbackEvent, Role};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{mpsc, watch};

/// How long one callback may run before its process group is killed.
pub const CALLBACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Callbacks waiting at most; a new one beyond that is dropped with an error (the core asks for
/// a handful per role change, so this only fills when scripts hang).
const QUEUE: usize = 64;

/// One callback to run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Invocation {
    /// Program, its configured words, then action, role, scope.
    argv: Vec<String>,
}

impl Invocation {
    fn describe(&self) -> String {
        let items: Vec<String> = self.argv.iter().map(|w| format!("'{w}'")).collect();
        format!("[{}]", items.join(", "))
    }
}

/// One queue and its worker.
struct Worker {
    queue: mpsc::Sender<Invocation>,
    /// Callbacks queued or running.
    pending: watch::Sender<usize>,
}

impl Worker {
    fn spawn(timeout: Duration) -> Worker {
        let (queue, mut incoming) = mpsc::channel::<Invocation>(QUEUE);
        let (pending, _) = watch::channel(0usize);
        let done = pending.clone();
        tokio::spawn(async move {
            while let Some(call) = incoming.recv().await {
                run_one(&call, timeout).await;
                done.send_modify(|n| *n = n.saturating_sub(1));
            }
        });
        Worker { queue, pending }
    }

    fn submit(&self, call: Invocation) {
        self.pending.send_modify(|n| *n = n.saturating_add(1));
        if let Err(e) = self.queue.try_send(call) {
            self.pending.send_modify(|n| *n = n.saturating_sub(1));
            let call = match e {
                mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
            };
            tracing::error!(
                "callback {} not run: {QUEUE} callbacks are already waiting",
                call.describe()
            );
        }
    }

    async fn drain(&self, within: Duration) -> bool {
        let mut rx = self.pending.subscribe();
        tokio::time::timeout(within, rx.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Runs the configured callbacks in order (see the module docs).
pub struct CallbackRunner {
    /// The commands; replaced by a reload ([`CallbackRunner::set_commands`]).
    commands: std::sync::RwLock<crate::config::Callbacks>,
    scope: String,
    main: Worker,
    reload: Worker,
}

impl CallbackRunner {
    /// A runner for these commands; must be created inside a Tokio runtime.
    pub fn new(commands: crate::config::Callbacks, scope: &str) -> CallbackRunner {
        Self::with_timeout(commands, scope, CALLBACK_TIMEOUT)
    }

    /// As [`CallbackRunner::new`], with another bound per callback (tests).
    pub fn with_timeout(
        commands: crate::config::Callbacks,
        scope: &str,
        timeout: Duration,
    ) -> CallbackRunner {
        CallbackRunner {
            commands: std::sync::RwLock::new(commands),
            scope: scope.to_string(),
            main: Worker::spawn(timeout),
            reload: Worker::spawn(timeout),
        }
    }

    /// Runs these commands for the events queued from now on (a reload); callbacks already
    /// queued keep the command they were queued with.
    pub fn set_commands(&self, commands: crate::config::Callbacks) {
        match self.commands.write() {
            Ok(mut c) => *c = commands,
            Err(poisoned) => *poisoned.into_inner() = commands,
        }
    }

    /// Queues the callback for `event` if one is configured; returns at once.
    pub fn submit(&self, event: CallbackEvent, role: Role) {
        let Some((command, primary_name)) = self.command(event) else {
            return;
        };
        let role = match role {
            Role::Primary => primary_name.as_str(),
            other => other.as_str(),
        };
        let mut argv = command.argv().to_vec();
        argv.extend([
            event.as_str().to_string(),
            role.to_string(),
            self.scope.clone(),
        ]);
        let call = Invocation { argv };
        match event {
            CallbackEvent::OnReload => self.reload.submit(call),
            _ => self.main.submit(call),
        }
    }

    /// Waits until every queued callback has run, at most `within`; false when some had not.
    /// The agent calls it before it exits, so an `on_stop` of a shutdown still runs.
    pub async fn drain(&self, within: Duration) -> bool {
        let started = tokio::time::Instant::now();
        let main = self.main.drain(within).await;
        let left = within.saturating_sub(started.elapsed());
        main && self.reload.drain(left).await
    }

    /// The command for `event`, if any, and the word for the primary role it is to be given.
    fn command(&self, event: CallbackEvent) -> Option<(ShellCommand, PrimaryRoleName)> {
        let c = match self.commands.read() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        let command = match event {
            CallbackEvent::OnStart => c.on_start.clone(),
            CallbackEvent::OnStop => c.on_stop.clone(),
            CallbackEvent::OnRoleChange => c.on_role_change.clone(),
            CallbackEvent::OnRestart => c.on_restart.clone(),
            CallbackEvent::OnReload => c.on_reload.clone(),
        };
        command.map(|cmd| (cmd, c.primary_role_name))
    }
}

/// Runs one callback to its end or its timeout, logging its output.
async fn run_one(call: &Invocation, timeout: Duration) {
    let Some((program, args)) = call.argv.split_first() else {
        return;
    };
    let what = call.describe();
    let mut child = match tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a timeout kills the script and whatever it started.
        .process_group(0)
        .kill_on_drop(false)
        .spawn()
    {
        Ok(child) => child,
        // Patroni's words (`callback %s %r %s %s failed`), at its level (`logger.exception`).
        Err(e) => {
            let [action, role, scope] = match call.argv.as_slice() {
                [.., a, r, s] => [a.as_str(), r.as_str(), s.as_str()],
                _ => ["", "", ""],
            };
            tracing::error!("callback {what} '{action}' {role} {scope} failed: {e}");
            return;
        }
    };
    tracing::info!("callback {what} started");
    let out = child
        .stdout
        .take()
        .map(|s| tokio::spawn(log_lines(s, what.clone())));
    let err = child
        .stderr
        .take()
        .map(|s| tokio::spawn(log_lines(s, what.clone())));
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => tracing::info!("callback {what} finished"),
        Ok(Ok(status)) => tracing::warn!("callback {what} finished with {status}"),
        Ok(Err(e)) => tracing::error!("callback {what} failed: {e}"),
        Err(_) => {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.wait().await;
            tracing::error!(
                "callback {what} killed after {} s without finishing",
                timeout.as_secs_f64()
            );
        }
    }
    // The pipes close when the group is gone; a grandchild that left the group and keeps them
    // open must not hold the queue up.
    for task in [out, err].into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
    }
}

/// Logs every line a callback prints.
async fn log_lines(stream: impl AsyncRead + Unpin, what: String) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!("callback {what}: {line}");
    }
}
