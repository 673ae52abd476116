//! Bounded polling: the only way tests and the demo wait for a condition.
//!
//! Exists so no test ever synchronises with a bare `sleep`: a condition is re-checked every
//! `interval` until it holds or `timeout` has passed, and the failure names the last reason.

use std::time::{Duration, Instant};

/// Calls `check` every `interval` until it returns `Ok`, or until `timeout` has elapsed.
///
/// `check` returns `Err(reason)` while the condition does not hold yet; the last reason is part of
/// the error returned on timeout, so a failing test says *why* it was still waiting.
/// `check` is always called at least once, even with a zero timeout.
pub fn eventually<T, F>(timeout: Duration, interval: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Result<T, String>,
{
    let start = Instant::now();
    let deadline = start + timeout;
    let mut attempts = 0u64;
    loop {
        attempts += 1;
        match check() {
            Ok(v) => return Ok(v),
            Err(reason) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(format!(
                        "condition not met after {:.1?} ({attempts} attempts); last: {reason}",
                        now - start
                    ));
                }
                std::thread::sleep(interval.min(deadline - now));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_first_success() {
        let mut n = 0;
        let v = eventually(Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            if n >= 3 { Ok(n) } else { Err(format!("n={n}")) }
        });
        assert_eq!(v, Ok(3));
    }

    #[test]
    fn times_out_with_last_reason() {
        let r: Result<(), String> =
            eventually(Duration::from_millis(20), Duration::from_millis(5), || {
                Err("still no leader".to_owned())
            });
        let e = r.unwrap_err();
        assert!(e.contains("still no leader"), "{e}");
    }

    #[test]
    fn zero_timeout_checks_once() {
        let mut calls = 0;
        let _ = eventually(
            Duration::ZERO,
            Duration::from_secs(1),
            || -> Result<(), String> {
                calls += 1;
                Err("no".into())
            },
        );
        assert_eq!(calls, 1);
    }
}
