//! The dynamic configuration (`/config` in the DCS, or `bootstrap.dcs` before it exists),
//! read leniently: a bad value falls back to its default and is reported, never fatal.

use serde_json::{Map, Value};

/// Cluster-wide HA settings every node reads the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalConfig {
    /// Leader lease TTL, seconds.
    pub ttl: u64,
    /// Seconds between HA cycles.
    pub loop_wait: u64,
    /// Seconds a DCS or PostgreSQL operation may be retried.
    pub retry_timeout: u64,
    /// Bytes a replica may lag behind the last known leader optime and still be promoted.
    pub maximum_lag_on_failover: u64,
    /// Seconds a crashed primary may take to come back before the lease is released.
    pub primary_start_timeout: u64,
    /// Refuse promotion to members on an older timeline than the cluster's.
    pub check_timeline: bool,
    /// Keep one physical replication slot per member on the leader.
    pub use_slots: bool,
    /// Use pg_rewind to rejoin a former primary.
    pub use_pg_rewind: Option<bool>,
    /// Maintenance mode: the agents touch nothing.
    pub pause: bool,
    /// Problems found while reading (key, value, what was used instead).
    pub warnings: Vec<String>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            ttl: 30,
            loop_wait: 10,
            retry_timeout: 10,
            maximum_lag_on_failover: 1_048_576,
            primary_start_timeout: 300,
            check_timeline: false,
            use_slots: true,
            use_pg_rewind: None,
            pause: false,
            warnings: Vec::new(),
        }
    }
}

/// Smallest accepted lease TTL (seconds). Patroni's floor is 20; pgkeel renews the lease on its
/// own task and fences on the monotonic clock, so it accepts shorter leases.
pub const MIN_TTL: u64 = 5;
/// Smallest accepted `loop_wait` (seconds), as in Patroni.
pub const MIN_LOOP_WAIT: u64 = 1;
/// Smallest accepted `retry_timeout` (seconds). Patroni's floor is 3.
pub const MIN_RETRY_TIMEOUT: u64 = 1;

/// The three timing settings after Patroni's rule `loop_wait + 2 * retry_timeout <= ttl` has
/// been applied.
///
/// One rule for every reader: the agent (through [`GlobalConfig::from_map`]), the config
/// checks at load time and `--validate-config` all call [`Timeouts::adjusted`], so they agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Leader lease TTL, seconds.
    pub ttl: u64,
    /// Seconds between HA cycles.
    pub loop_wait: u64,
    /// Seconds a DCS or PostgreSQL operation may be retried.
    pub retry_timeout: u64,
}

impl Timeouts {
    /// Applies `loop_wait + 2 * retry_timeout <= ttl` exactly as Patroni's
    /// `Config._validate_and_adjust_timeouts` does: lower `loop_wait` first; only when even
    /// `loop_wait` 1 is too much, set `loop_wait` to 1 and `retry_timeout` to `(ttl - 1) / 2`.
    /// Returns the adjusted values and, when something changed, Patroni's warning text.
    /// The inputs must already be at or above their minimums.
    pub fn adjusted(self) -> (Timeouts, Option<String>) {
        let Timeouts {
            ttl,
            loop_wait,
            retry_timeout,
        } = self;
        if MIN_LOOP_WAIT + 2 * retry_timeout > ttl {
            let new_retry = (ttl.saturating_sub(MIN_LOOP_WAIT) / 2).max(MIN_RETRY_TIMEOUT);
            let warning = format!(
                "Violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl={ttl}. \
                 Adjusting loop_wait from {loop_wait} to {MIN_LOOP_WAIT} and retry_timeout from \
                 {retry_timeout} to {new_retry}"
            );
            let t = Timeouts {
                ttl,
                loop_wait: MIN_LOOP_WAIT,
                retry_timeout: new_retry,
            };
            (t, Some(warning))
        } else if loop_wait + 2 * retry_timeout > ttl {
            let new_loop_wait = ttl - 2 * retry_timeout;
            let warning = format!(
                "Violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl={ttl} and \
                 retry_timeout={retry_timeout}. Adjusting loop_wait from {loop_wait} to {new_loop_wait}"
            );
            let t = Timeouts {
                loop_wait: new_loop_wait,
                ..self
            };
            (t, Some(warning))
        } else {
            (self, None)
        }
    }
}

/// The timing keys, in the order Patroni reads (and warns about) them.
const TIMEOUT_KEYS: [&str; 3] = ["loop_wait", "retry_timeout", "ttl"];

impl GlobalConfig {
    /// Reads the dynamic configuration object. Missing keys take Patroni's defaults; bad values
    /// are replaced by the default with a warning; a value below its minimum is raised to it
    /// with Patroni's warning; then [`Timeouts::adjusted`] enforces the timing rule.
    pub fn from_map(m: &Map<String, Value>) -> GlobalConfig {
        let mut c = GlobalConfig::default();
        let mut w = Vec::new();
        c.loop_wait = read_u64(m, "loop_wait", c.loop_wait, MIN_LOOP_WAIT, &mut w);
        c.retry_timeout = read_u64(
            m,
            "retry_timeout",
            c.retry_timeout,
            MIN_RETRY_TIMEOUT,
            &mut w,
        );
        c.ttl = read_u64(m, "ttl", c.ttl, MIN_TTL, &mut w);
        c.maximum_lag_on_failover = read_u64(
            m,
            "maximum_lag_on_failover",
            c.maximum_lag_on_failover,
            0,
            &mut w,
        );
        let pst_key = if m.contains_key("primary_start_timeout") {
            "primary_start_timeout"
        } else {
            "master_start_timeout"
        };
        c.primary_start_timeout = read_u64(m, pst_key, c.primary_start_timeout, 0, &mut w);
        c.check_timeline = read_bool(m, "check_timeline", false, &mut w);
        c.pause = read_bool(m, "pause", false, &mut w);
        if let Some(pg) = m.get("postgresql").and_then(Value::as_object) {
            c.use_slots = read_bool(pg, "use_slots", true, &mut w);
            if pg.contains_key("use_pg_rewind") {
                c.use_pg_rewind = Some(read_bool(pg, "use_pg_rewind", false, &mut w));
            }
        }
        let (t, warning) = c.timeouts().adjusted();
        (c.ttl, c.loop_wait, c.retry_timeout) = (t.ttl, t.loop_wait, t.retry_timeout);
        w.extend(warning);
        c.warnings = w;
        c
    }

    /// The effective `ttl`, `loop_wait` and `retry_timeout`.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            ttl: self.ttl,
            loop_wait: self.loop_wait,
            retry_timeout: self.retry_timeout,
        }
    }

    /// `m` with its timing keys replaced by the values actually used, as Patroni stores its
    /// adjusted dynamic configuration (so `/config` written at bootstrap shows what runs).
    /// A key is written only when its effective value differs from what `m` says (or from the
    /// default, when `m` leaves it out); keys holding garbage are left for the reader to report.
    pub fn with_effective_timeouts(m: &Map<String, Value>) -> Map<String, Value> {
        let effective = GlobalConfig::from_map(m).timeouts();
        let defaults = GlobalConfig::default().timeouts();
        let mut out = m.clone();
        for key in TIMEOUT_KEYS {
            let (want, default) = match key {
                "ttl" => (effective.ttl, defaults.ttl),
                "loop_wait" => (effective.loop_wait, defaults.loop_wait),
                _ => (effective.retry_timeout, defaults.retry_timeout),
            };
            let given = match m.get(key) {
                None => Some(default),
                Some(v) => parse_u64(v),
            };
            if given.is_some_and(|g| g != want) {
                out.insert(key.to_string(), Value::from(want));
            }
        }
        out
    }

    /// Lease TTL in milliseconds.
    pub fn ttl_ms(&self) -> u64 {
        self.ttl * 1000
    }

    /// How long before the lease deadline a primary that could not renew must stop accepting
    /// writes: a quarter of the TTL, between 1 and 3 seconds. The demotion itself is bounded
    /// by this margin, so it completes before any other node can win the expired lease.
    pub fn fencing_margin_ms(&self) -> u64 {
        (self.ttl_ms() / 4).clamp(1000, 3000)
    }
}

fn parse_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
}

fn read_u64(m: &Map<String, Value>, key: &str, default: u64, min: u64, w: &mut Vec<String>) -> u64 {
    let Some(v) = m.get(key) else { return default };
    match parse_u64(v) {
        Some(x) if x >= min => x,
        Some(x) => {
            // Patroni's `__get_and_maybe_adjust_int_value` wording.
            w.push(format!(
                "{key}={x} can't be smaller than {min}, adjusting..."
            ));
            min
        }
        None => {
            w.push(format!(
                "{key}: {v} is not a non-negative integer; using {default}"
            ));
            default
        }
    }
}

fn read_bool(m: &Map<String, Value>, key: &str, default: bool, w: &mut Vec<String>) -> bool {
    let Some(v) = m.get(key) else { return default };
    match v {
        Value::Bool(b) => *b,
        Value::Null => default,
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "on" | "yes" | "1" => true,
            "false" | "off" | "no" | "0" => false,
            _ => {
                w.push(format!("{key}: {v} is not a boolean; using {default}"));
                default
            }
        },
        Value::Number(n) => n.as_i64().is_some_and(|n| n != 0),
        _ => {
            w.push(format!("{key}: {v} is not a boolean; using {default}"));
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: Value) -> GlobalConfig {
        GlobalConfig::from_map(v.as_object().unwrap())
    }

    #[test]
    fn defaults_match_patroni() {
        let c = cfg(json!({}));
        assert_eq!((c.ttl, c.loop_wait, c.retry_timeout), (30, 10, 10));
        assert_eq!(c.maximum_lag_on_failover, 1_048_576);
        assert_eq!(c.primary_start_timeout, 300);
        assert!(c.use_slots);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn fast_profile_is_accepted_unchanged() {
        let c = cfg(json!({"ttl": 6, "loop_wait": 1, "retry_timeout": 2}));
        assert_eq!((c.ttl, c.loop_wait, c.retry_timeout), (6, 1, 2));
        assert!(c.warnings.is_empty());
        assert_eq!(c.fencing_margin_ms(), 1500);
    }

    #[test]
    fn ttl_arithmetic_is_enforced_by_lowering_loop_wait() {
        let c = cfg(json!({"ttl": 10, "loop_wait": 10, "retry_timeout": 4}));
        assert_eq!((c.ttl, c.loop_wait, c.retry_timeout), (10, 2, 4));
        assert_eq!(c.warnings.len(), 1);
    }

    // Reference: Patroni `Config._validate_and_adjust_timeouts` (patroni/config.py): the rule is
    // restored with a warning, never refused.
    #[test]
    fn timing_rule_is_adjusted_with_patronis_warnings() {
        let c = cfg(json!({"ttl": 20, "loop_wait": 10, "retry_timeout": 10}));
        assert_eq!((c.ttl, c.loop_wait, c.retry_timeout), (20, 1, 9));
        assert_eq!(
            c.warnings,
            [
                "Violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl=20. Adjusting loop_wait from 10 to 1 and retry_timeout from 10 to 9"
            ]
        );
        let c = cfg(json!({"ttl": 10, "loop_wait": 10, "retry_timeout": 4}));
        assert_eq!(
            c.warnings,
            [
                "Violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl=10 and retry_timeout=4. Adjusting loop_wait from 10 to 2"
            ]
        );
        let c = cfg(json!({"ttl": 4, "loop_wait": 0, "retry_timeout": 1}));
        assert_eq!(
            c.warnings,
            [
                "loop_wait=0 can't be smaller than 1, adjusting...",
                "ttl=4 can't be smaller than 5, adjusting...",
            ]
        );
    }

    #[test]
    fn effective_timeouts_are_written_back_only_when_adjusted() {
        let m = json!({"ttl": 20, "loop_wait": 10, "retry_timeout": 10, "x": 1});
        let out = GlobalConfig::with_effective_timeouts(m.as_object().unwrap());
        assert_eq!(
            Value::Object(out),
            json!({"ttl": 20, "loop_wait": 1, "retry_timeout": 9, "x": 1})
        );
        // Absent keys take the defaults (30/10/10): ttl 20 alone also needs the adjustment.
        let m = json!({"ttl": 20});
        let out = GlobalConfig::with_effective_timeouts(m.as_object().unwrap());
        assert_eq!(
            Value::Object(out),
            json!({"ttl": 20, "loop_wait": 1, "retry_timeout": 9})
        );
        let m = json!({"ttl": 30, "loop_wait": "10", "retry_timeout": "abc"});
        let out = GlobalConfig::with_effective_timeouts(m.as_object().unwrap());
        assert_eq!(
            Value::Object(out),
            m,
            "valid or garbage values are left alone"
        );
    }

    #[test]
    fn garbage_values_fall_back_with_a_warning() {
        let c = cfg(
            json!({"ttl": "abc", "loop_wait": [1], "check_timeline": "maybe", "postgresql": {"use_slots": "off"}}),
        );
        assert_eq!(c.ttl, 30);
        assert_eq!(c.loop_wait, 10);
        assert!(!c.check_timeline);
        assert!(!c.use_slots);
        assert_eq!(c.warnings.len(), 3);
    }

    #[test]
    fn ttl_below_floor_is_raised() {
        let c = cfg(json!({"ttl": 2, "loop_wait": 1, "retry_timeout": 1}));
        assert_eq!(c.ttl, MIN_TTL);
    }

    #[test]
    fn legacy_master_start_timeout_is_read() {
        assert_eq!(
            cfg(json!({"master_start_timeout": 7})).primary_start_timeout,
            7
        );
    }
}
