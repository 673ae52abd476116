//! The only notion of time in the pure core: a monotonic instant in milliseconds.
//!
//! The agent reads its monotonic clock and passes the value in; the simulator passes virtual time.
//! Nothing in this crate reads a clock.

use serde::{Deserialize, Serialize};

/// A point on the agent's monotonic clock, in milliseconds since an arbitrary origin.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct MonoTime(pub u64);

impl MonoTime {
    /// This instant plus `ms` milliseconds (saturating).
    pub fn plus_ms(self, ms: u64) -> MonoTime {
        MonoTime(self.0.saturating_add(ms))
    }

    /// This instant minus `ms` milliseconds (saturating at zero).
    pub fn minus_ms(self, ms: u64) -> MonoTime {
        MonoTime(self.0.saturating_sub(ms))
    }

    /// Milliseconds from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: MonoTime) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}
