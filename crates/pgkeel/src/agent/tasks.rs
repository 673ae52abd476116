//! Long operations (bootstrap, clone, start, rewind) run in the background while HA cycles go
//! on, so the lease stays renewed and the API answers. At most one runs at a time.

use pgkeel_ha::ha::{FailureCause, Outcome, TaskKind};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The one background task slot.
#[derive(Default)]
pub(crate) struct TaskSlot {
    running: Option<Running>,
    finished: Option<Outcome>,
}

/// The task in flight and how it says it ended (a fresh `Notify` per task, so a permit left by
/// one task never wakes the loop for the next).
struct Running {
    kind: TaskKind,
    handle: JoinHandle<Result<(), TaskError>>,
    done: Arc<Notify>,
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
        let done = Arc::new(Notify::new());
        let notify = done.clone();
        let handle = tokio::spawn(async move {
            let r = work.await;
            notify.notify_one();
            r
        });
        self.running = Some(Running { kind, handle, done });
    }

    /// The task in flight, after collecting a finished one.
    pub fn running(&mut self) -> Option<TaskKind> {
        self.collect();
        self.running.as_ref().map(|r| r.kind.clone())
    }

    /// The outcome of a task that ended since the last call.
    pub fn take_finished(&mut self) -> Option<Outcome> {
        self.collect();
        self.finished.take()
    }

    fn collect(&mut self) {
        if !self
            .running
            .as_ref()
            .is_some_and(|r| r.handle.is_finished())
        {
            return;
        }
        let Some(Running { kind, handle, .. }) = self.running.take() else {
            return;
        };
        let local = FailureCause::Local;
        let (ok, message, cause) = match futures_util::FutureExt::now_or_never(handle) {
            Some(Ok(Ok(()))) => (true, String::new(), local),
            Some(Ok(Err(e))) => (false, e.message, e.cause),
            Some(Err(join)) => (
                false,
                format!("task panicked or was cancelled: {join}"),
                local,
            ),
            None => (false, "task result unavailable".to_string(), local),
        };
        if !ok {
            tracing::error!("{kind} failed: {message}");
        }
        self.finished = Some(Outcome::TaskFinished {
            kind,
            ok,
            message,
            cause,
        });
    }

    /// Resolves when a task has ended whose outcome the core has not seen yet: at once when it
    /// ended (and was collected) during the cycle that just ran, else when the running one ends;
    /// never when none runs.
    pub async fn finished(&self) {
        if self.finished.is_some() {
            return;
        }
        match &self.running {
            Some(r) => r.done.notified().await,
            None => std::future::pending::<()>().await,
        }
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
}
