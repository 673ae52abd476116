//! Long operations (bootstrap, clone, start, rewind) run in the background while HA cycles go
//! on, so the lease stays renewed and the API answers. At most one runs at a time.

use pgkeel_ha::ha::{Outcome, TaskKind};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The one background task slot.
#[derive(Default)]
pub(crate) struct TaskSlot {
    running: Option<(TaskKind, JoinHandle<Result<(), String>>)>,
    finished: Option<Outcome>,
    done: Arc<Notify>,
}

impl TaskSlot {
    /// Spawns `work` as `kind` unless a task already runs (then it is dropped unstarted).
    pub fn start<F>(&mut self, kind: TaskKind, work: F)
    where
        F: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.collect();
        if self.running.is_some() {
            tracing::warn!("not starting {kind}: another task is running");
            return;
        }
        let done = self.done.clone();
        let handle = tokio::spawn(async move {
            let r = work.await;
            done.notify_one();
            r
        });
        self.running = Some((kind, handle));
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

    fn collect(&mut self) {
        if !self.running.as_ref().is_some_and(|(_, h)| h.is_finished()) {
            return;
        }
        let Some((kind, handle)) = self.running.take() else {
            return;
        };
        let (ok, message) = match futures_util::FutureExt::now_or_never(handle) {
            Some(Ok(Ok(()))) => (true, String::new()),
            Some(Ok(Err(e))) => (false, e),
            Some(Err(join)) => (false, format!("task panicked or was cancelled: {join}")),
            None => (false, "task result unavailable".to_string()),
        };
        if !ok {
            tracing::error!("{kind} failed: {message}");
        }
        self.finished = Some(Outcome::TaskFinished { kind, ok, message });
    }

    /// Resolves when a task ends (never, when none runs).
    pub async fn finished(&self) {
        if self.running.is_some() {
            self.done.notified().await;
        } else {
            std::future::pending::<()>().await;
        }
    }
}
