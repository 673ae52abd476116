//! Long operations (bootstrap, clone, start, rewind) run in the background while HA cycles go
//! on, so the lease stays renewed and the API answers. At most one runs at a time.

use pgkeel_ha::ha::{FailureCause, Outcome, TaskKind};
use std::future::Future;
use tokio::task::JoinHandle;

/// The one background task slot.
#[derive(Default)]
pub(crate) struct TaskSlot {
    running: Option<(TaskKind, JoinHandle<Result<(), TaskError>>)>,
    finished: Option<Outcome>,
}

/// Why a background task failed and whose fault it was: the core must not remember a failure
/// of the source member (unreachable, bogus) as a failure of the local data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskError {
    /// What went wrong.
    pub message: String,
    /// Local, or the source member.
    pub cause: FailureCause,
}

impl TaskError {
    /// A failure caused by the member the task copies from.
    pub fn source(message: impl Into<String>) -> TaskError {
        TaskError {
            message: message.into(),
            cause: FailureCause::Source,
        }
    }
}

/// Every plain error text is a local failure.
impl From<String> for TaskError {
    fn from(message: String) -> TaskError {
        TaskError {
            message,
            cause: FailureCause::Local,
        }
    }
}

/// An action's failure inside a task is a local failure.
impl From<super::execute::ActionError> for TaskError {
    fn from(e: super::execute::ActionError) -> TaskError {
        TaskError::from(e.to_string())
    }
}

impl TaskSlot {
    /// Spawns `work` as `kind` unless a task already runs (then it is dropped unstarted).
    pub fn start<F>(&mut self, kind: TaskKind, work: F)
    where
        F: Future<Output = Result<(), TaskError>> + Send + 'static,
    {
        self.collect();
        if self.running.is_some() {
            tracing::warn!("not starting {kind}: another task is running");
            return;
        }
        self.running = Some((kind, tokio::spawn(work)));
    }

    /// The task in flight, after collecting a finished one.
    pub fn running(&mut self) -> Option<TaskKind> {
        self.collect();
        self.running.as_ref().map(|(k, _)| k.clone())
    }

    /// The outcome of a task that ended since the last call.
    pub fn take_finished(&mut self) -> Option<Outcome> {
        self.collect();
        self.finished.take()
    }

    /// Collects the running task's outcome if it has ended, without waiting.
    fn collect(&mut self) {
        if !self.running.as_ref().is_some_and(|(_, h)| h.is_finished()) {
            return;
        }
        if let Some((kind, handle)) = self.running.take() {
            let result = futures_util::FutureExt::now_or_never(handle)
                .unwrap_or_else(|| Ok(Err("task result unavailable".to_string().into())));
            self.finished = Some(outcome(kind, result));
        }
    }

    /// Stops the running task (a forced reinitialize): aborting it drops its future, and with
    /// it the tool it runs (spawned `kill_on_drop`). It ends as failed through no fault of the
    /// local data, so the core remembers nothing about it.
    pub async fn cancel(&mut self) {
        self.collect();
        let Some((kind, handle)) = self.running.take() else {
            return;
        };
        handle.abort();
        let _ = handle.await;
        tracing::info!("cancelled {kind}");
        self.finished = Some(Outcome::TaskFinished {
            kind,
            ok: false,
            message: "cancelled by a forced reinitialize".to_string(),
            cause: FailureCause::Source,
        });
    }

    /// Resolves when a task has ended whose outcome the core has not seen yet: at once when it
    /// ended (and was collected) during the cycle that just ran, else when the running one
    /// ends; never when none runs. It waits on the task itself, so its end can never be
    /// missed: a wake-up sent by the task before it had returned was consumed by a cycle that
    /// still saw it running, and the loop then slept a whole loop_wait. Cancel-safe: dropped
    /// before the end, the task is still there.
    pub async fn finished(&mut self) {
        if self.finished.is_some() {
            return;
        }
        let Some((_, handle)) = self.running.as_mut() else {
            return std::future::pending::<()>().await;
        };
        let result = handle.await;
        if let Some((kind, _)) = self.running.take() {
            self.finished = Some(outcome(kind, result));
        }
    }
}

/// The core's view of how a task ended; failures are logged once, here.
fn outcome(
    kind: TaskKind,
    result: Result<Result<(), TaskError>, tokio::task::JoinError>,
) -> Outcome {
    let local = FailureCause::Local;
    let (ok, message, cause) = match result {
        Ok(Ok(())) => (true, String::new(), local),
        Ok(Err(e)) => (false, e.message, e.cause),
        Err(join) => (
            false,
            format!("task panicked or was cancelled: {join}"),
            local,
        ),
    };
    if !ok {
        tracing::error!("{kind} failed: {message}");
    }
    Outcome::TaskFinished {
        kind,
        ok,
        message,
        cause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const PROMPT: Duration = Duration::from_secs(2);

    fn bootstrap() -> TaskKind {
        TaskKind::Bootstrap
    }

    #[tokio::test]
    async fn a_task_that_ends_while_a_cycle_runs_wakes_the_loop() {
        // Found by the bootstrap bench: the task ended during a cycle, the cycle's own
        // `running()` collected it, and the loop then slept a whole loop_wait.
        let mut slot = TaskSlot::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        slot.start(bootstrap(), async move {
            let _ = rx.await;
            Ok(())
        });
        assert!(slot.running().is_some());
        let _ = tx.send(());
        // The cycle goes on and looks at the slot again after the task ended.
        tokio::time::timeout(PROMPT, async {
            while slot.running().is_some() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the task ends");
        tokio::time::timeout(PROMPT, slot.finished())
            .await
            .expect("finished() resolves for an outcome the core has not seen");
        assert!(matches!(
            slot.take_finished(),
            Some(Outcome::TaskFinished { ok: true, .. })
        ));
    }

    #[tokio::test]
    async fn a_task_that_ends_between_cycles_wakes_the_loop() {
        let mut slot = TaskSlot::default();
        slot.start(bootstrap(), async {
            Err("initdb failed".to_string().into())
        });
        tokio::time::timeout(PROMPT, slot.finished())
            .await
            .expect("finished() resolves when the task ends");
        assert!(matches!(
            slot.take_finished(),
            Some(Outcome::TaskFinished { ok: false, .. })
        ));
    }

    #[tokio::test]
    async fn an_outcome_already_handed_over_does_not_wake_the_loop_again() {
        let mut slot = TaskSlot::default();
        slot.start(bootstrap(), async { Ok(()) });
        // Collected by the cycle itself, so nobody consumed its wake-up.
        tokio::time::timeout(PROMPT, async {
            while slot.running().is_some() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the task ends");
        assert!(slot.take_finished().is_some());
        let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
        slot.start(bootstrap(), async move {
            let _ = rx.await;
            Ok(())
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(200), slot.finished())
                .await
                .is_err(),
            "the first task's wake-up must not end the wait for the second"
        );
    }

    #[tokio::test]
    async fn a_wait_cut_short_by_another_wake_up_still_sees_the_end_later() {
        let mut slot = TaskSlot::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        slot.start(bootstrap(), async move {
            let _ = rx.await;
            Ok(())
        });
        // Another branch of the loop's select wins first: the wait is dropped.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), slot.finished())
                .await
                .is_err()
        );
        let _ = tx.send(());
        tokio::time::timeout(PROMPT, slot.finished())
            .await
            .expect("the end is seen by the next wait");
        assert!(slot.take_finished().is_some());
    }
}
