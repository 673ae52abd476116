//! Requests into the HA loop. The REST API (later also signals and timers) sends a typed
//! [`RequestKind`] with a channel for its answers; the loop hands the requests not answered yet
//! to the core in each observation, delivers the core's answers, and forgets a request once its
//! final answer went out or its sender stopped waiting. The sender's wait is bounded, so an
//! HTTP handler never hangs on a busy or stopped loop.

use pgkeel_ha::ha::{Answer, Request, RequestKind};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;

/// Requests queued for the loop at most; more are refused at once as "busy".
const QUEUE: usize = 16;

/// One request on its way to the loop, with where its answers go (`None`: nobody waits, as
/// for the loop's own requests from signals).
struct Incoming {
    kind: RequestKind,
    answers: Option<mpsc::Sender<Answer>>,
}

/// Why a request got no answer from the core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The loop is not running, or its queue is full.
    #[error("the HA loop is not taking requests")]
    NoLoop,
    /// No answer within the bound (the loop is busy with a long cycle).
    #[error("no answer from the HA loop within {0:?}")]
    Timeout(Duration),
}

/// The API's end: sends requests and waits for their answers.
#[derive(Clone)]
pub struct RequestSender {
    queue: mpsc::Sender<Incoming>,
}

impl RequestSender {
    /// Asks the loop and waits for the final answer: at most `accept_within` for the first
    /// answer, then, if that was `Accepted`, at most `done_within` for the work to end.
    pub async fn ask(
        &self,
        kind: RequestKind,
        accept_within: Duration,
        done_within: Duration,
    ) -> Result<Answer, RequestError> {
        let (tx, mut rx) = mpsc::channel(2);
        self.queue
            .try_send(Incoming {
                kind,
                answers: Some(tx),
            })
            .map_err(|_| RequestError::NoLoop)?;
        let first = tokio::time::timeout(accept_within, rx.recv())
            .await
            .map_err(|_| RequestError::Timeout(accept_within))?
            .ok_or(RequestError::NoLoop)?;
        if first.is_final() {
            return Ok(first);
        }
        tokio::time::timeout(done_within, rx.recv())
            .await
            .map_err(|_| RequestError::Timeout(done_within))?
            .ok_or(RequestError::NoLoop)
    }
}

/// The loop's end: the requests received and not answered for good yet.
pub struct Requests {
    queue: mpsc::Receiver<Incoming>,
    next_id: u64,
    /// Not answered yet: handed to the core in every observation.
    waiting: BTreeMap<u64, Incoming>,
    /// Accepted: their final answer comes when their work ends.
    accepted: BTreeMap<u64, mpsc::Sender<Answer>>,
}

/// A connected pair.
pub fn channel() -> (RequestSender, Requests) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (
        RequestSender { queue: tx },
        Requests {
            queue: rx,
            next_id: 1,
            waiting: BTreeMap::new(),
            accepted: BTreeMap::new(),
        },
    )
}

impl Requests {
    /// Waits for the next request (for the loop's `select!`); pending forever once every
    /// sender is gone.
    pub async fn arrived(&mut self) {
        match self.queue.recv().await {
            Some(incoming) => {
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1);
                self.waiting.insert(id, incoming);
            }
            None => std::future::pending().await,
        }
    }

    /// Queues a request of the loop's own (a signal: SIGTERM is `Shutdown`) that nobody
    /// waits for; it is handed to the core until the core answers it for good.
    pub fn push(&mut self, kind: RequestKind) {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.waiting.insert(
            id,
            Incoming {
                kind,
                answers: None,
            },
        );
    }

    /// The requests the core has not answered yet; those whose sender stopped waiting are
    /// dropped first.
    pub fn pending(&mut self) -> Vec<Request> {
        self.waiting
            .retain(|_, r| r.answers.as_ref().is_none_or(|a| !a.is_closed()));
        self.waiting
            .iter()
            .map(|(id, r)| Request {
                id: *id,
                kind: r.kind.clone(),
            })
            .collect()
    }

    /// Delivers the core's answers.
    pub fn deliver(&mut self, answers: &[(u64, Answer)]) {
        for (id, answer) in answers {
            let to = match self.waiting.remove(id) {
                Some(Incoming {
                    answers: Some(to), ..
                }) => to,
                // The loop's own request: answered, nobody to tell.
                Some(Incoming { answers: None, .. }) => continue,
                None => match self.accepted.remove(id) {
                    Some(to) => to,
                    None => continue,
                },
            };
            // The sender may have stopped waiting; nothing to do then.
            let _ = to.try_send(answer.clone());
            if !answer.is_final() {
                self.accepted.insert(*id, to);
            }
        }
        self.accepted.retain(|_, to| !to.is_closed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgkeel_ha::ha::RestartConditions;

    fn restart() -> RequestKind {
        RequestKind::Restart(RestartConditions::default())
    }

    const SHORT: Duration = Duration::from_millis(100);

    #[tokio::test]
    async fn an_accepted_request_waits_for_done() {
        let (tx, mut loop_end) = channel();
        let asking = tokio::spawn(async move { tx.ask(restart(), SHORT * 10, SHORT * 10).await });
        loop_end.arrived().await;
        let pending = loop_end.pending();
        assert_eq!(pending.len(), 1);
        let id = pending[0].id;
        loop_end.deliver(&[(id, Answer::Accepted("restart initiated".into()))]);
        assert!(
            loop_end.pending().is_empty(),
            "accepted is no longer pending"
        );
        let done = Answer::Done {
            ok: true,
            message: "restarted successfully".into(),
        };
        loop_end.deliver(&[(id, done.clone())]);
        assert_eq!(asking.await.unwrap(), Ok(done));
    }

    #[tokio::test]
    async fn refused_and_busy_answers_are_final() {
        for answer in [
            Answer::Refused("restart conditions are not satisfied".into()),
            Answer::Busy("restart already in progress".into()),
        ] {
            let (tx, mut loop_end) = channel();
            let asking =
                tokio::spawn(async move { tx.ask(restart(), SHORT * 10, SHORT * 10).await });
            loop_end.arrived().await;
            let id = loop_end.pending()[0].id;
            loop_end.deliver(&[(id, answer.clone())]);
            assert_eq!(asking.await.unwrap(), Ok(answer));
        }
    }

    /// A signal's request stays pending, with nobody waiting, until the core answers it.
    #[test]
    fn the_loops_own_request_stays_until_answered() {
        let (_tx, mut loop_end) = channel();
        loop_end.push(RequestKind::Shutdown);
        let pending = loop_end.pending();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].kind, RequestKind::Shutdown);
        assert_eq!(loop_end.pending().len(), 1, "still there on the next step");
        loop_end.deliver(&[(pending[0].id, Answer::Accepted("stopping".into()))]);
        assert_eq!(loop_end.pending().len(), 0, "answered");
    }

    #[tokio::test]
    async fn the_wait_is_bounded_when_the_loop_does_not_answer() {
        let (tx, mut loop_end) = channel();
        let started = tokio::time::Instant::now();
        let asking = tokio::spawn(async move { tx.ask(restart(), SHORT, SHORT).await });
        loop_end.arrived().await;
        assert_eq!(asking.await.unwrap(), Err(RequestError::Timeout(SHORT)));
        assert!(started.elapsed() < SHORT * 10);
        // The caller gave up: the request is dropped, not handed to the core forever.
        assert!(loop_end.pending().is_empty());
        // And no loop at all: refused at once.
        let (tx, loop_end) = channel();
        drop(loop_end);
        assert_eq!(
            tx.ask(restart(), SHORT, SHORT).await,
            Err(RequestError::NoLoop)
        );
    }
}
