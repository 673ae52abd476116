//! The lease keeper: one etcd lease per agent, kept alive on its own task so that a slow HA
//! cycle or a slow PostgreSQL query never delays renewal.
//!
//! Timing model: a keep-alive sent at `t` that succeeds proves etcd will not expire the lease
//! before `t + granted_ttl` (etcd counts from when it *received* the request, which is later).
//! So `valid_until = send_time + granted_ttl` on the monotonic clock is a safe lower bound.

use crate::dcs::{Dcs, DcsError};
use pgkeel_ha::ha::LeaseView;
use pgkeel_ha::time::MonoTime;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The agent's monotonic clock, as milliseconds since the agent started.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// Starts the clock now.
    pub fn new() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    /// Now, in the pure core's units.
    pub fn now(&self) -> MonoTime {
        self.at(Instant::now())
    }

    /// An `Instant` in the pure core's units.
    pub fn at(&self, i: Instant) -> MonoTime {
        MonoTime(i.saturating_duration_since(self.origin).as_millis() as u64)
    }

    /// A `MonoTime` back as an `Instant`.
    pub fn instant(&self, t: MonoTime) -> Instant {
        later(self.origin, Duration::from_millis(t.0))
    }
}

/// `from + wait`, never panicking: `Instant + Duration` panics on overflow, and waits come
/// from configuration and the DCS. A wait is capped at a year (the core's timeouts are at
/// most a day); if even that cannot be represented, `from` itself is returned (act now
/// rather than never).
pub fn later(from: Instant, wait: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 86_400);
    from.checked_add(wait.min(YEAR)).unwrap_or(from)
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Runs until `shutdown` fires: grants a lease with `ttl_secs`, renews it every `interval`,
/// retries quickly after errors, and grants a new one when etcd says the lease is gone.
/// Publishes the current lease (or `None`) on `tx`.
pub async fn keep_lease(
    dcs: Arc<dyn Dcs>,
    clock: Clock,
    ttl: watch::Receiver<u64>,
    tx: watch::Sender<Option<LeaseView>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut lease: Option<(i64, u64)> = None; // (id, ttl it was granted with)
    loop {
        if *shutdown.borrow() {
            return;
        }
        let want_ttl = (*ttl.borrow()).max(1);
        // A TTL change means a new lease, as in Patroni.
        if lease.is_some_and(|(_, t)| t != want_ttl) {
            lease = None;
        }
        let sent = Instant::now();
        let result = match lease {
            None => dcs
                .grant_lease(i64::try_from(want_ttl).unwrap_or(i64::MAX))
                .await
                .map(|id| {
                    lease = Some((id, want_ttl));
                    (id, i64::try_from(want_ttl).unwrap_or(i64::MAX))
                }),
            Some((id, _)) => dcs.keep_alive(id).await.map(|granted| (id, granted)),
        };
        let retry = match result {
            Ok((id, granted)) if granted > 0 => {
                // Never believe a lease lasts longer than the TTL asked for, whatever the
                // DCS answered.
                let granted = u64::try_from(granted).unwrap_or(0).min(want_ttl);
                let until = clock.at(sent).plus_ms(granted.saturating_mul(1000));
                tx.send_replace(Some(LeaseView {
                    id,
                    valid_until: until,
                }));
                false
            }
            Ok(_) | Err(DcsError::LeaseNotFound) => {
                tracing::warn!("the DCS lease expired; granting a new one");
                lease = None;
                tx.send_replace(None);
                true
            }
            Err(e) => {
                tracing::debug!("lease keep-alive failed: {e}");
                true
            }
        };
        // Renew six times per TTL (every 1 s with ttl 6, every 5 s from ttl 30 on), so an etcd
        // election of a few seconds fits before the fencing margin. A failed keep-alive already
        // took up to one DCS request bound (the DCS client moves to the next endpoint after it),
        // so retry almost at once: during back-to-back etcd elections the windows in which a
        // keep-alive can succeed are short, and waiting 250 ms more per attempt missed them.
        let interval = if retry {
            Duration::from_millis(50)
        } else {
            Duration::from_millis((want_ttl.saturating_mul(1000) / 6).clamp(300, 5000))
        };
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => {}
        }
    }
}
