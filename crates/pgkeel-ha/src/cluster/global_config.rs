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

impl GlobalConfig {
    /// Reads the dynamic configuration object. Missing keys take Patroni's defaults; bad values
    /// are replaced by the default with a warning; `loop_wait + 2 * retry_timeout <= ttl` is
    /// enforced as Patroni does, by lowering `loop_wait` first, then `retry_timeout`.
    pub fn from_map(m: &Map<String, Value>) -> GlobalConfig {
        let mut c = GlobalConfig::default();
        let mut w = Vec::new();
        c.ttl = read_u64(m, "ttl", c.ttl, MIN_TTL, &mut w);
        c.loop_wait = read_u64(m, "loop_wait", c.loop_wait, 1, &mut w);
        c.retry_timeout = read_u64(m, "retry_timeout", c.retry_timeout, 1, &mut w);
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
        if c.loop_wait + 2 * c.retry_timeout > c.ttl {
            let lowered = c.ttl.saturating_sub(2 * c.retry_timeout).max(1);
            w.push(format!(
                "loop_wait + 2 * retry_timeout must not exceed ttl ({} + 2 * {} > {}): using loop_wait {}",
                c.loop_wait, c.retry_timeout, c.ttl, lowered
            ));
            c.loop_wait = lowered;
            if c.loop_wait + 2 * c.retry_timeout > c.ttl {
                c.retry_timeout = ((c.ttl - c.loop_wait) / 2).max(1);
                w.push(format!("using retry_timeout {}", c.retry_timeout));
            }
        }
        c.warnings = w;
        c
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

fn read_u64(m: &Map<String, Value>, key: &str, default: u64, min: u64, w: &mut Vec<String>) -> u64 {
    let Some(v) = m.get(key) else { return default };
    let parsed = match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match parsed {
        Some(x) if x >= min => x,
        Some(x) => {
            w.push(format!(
                "{key}: {x} is below the minimum {min}; using {min}"
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
