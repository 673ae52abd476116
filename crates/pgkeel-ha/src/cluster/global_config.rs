//! The dynamic configuration (`/config` in the DCS, or `bootstrap.dcs` before it exists).
//!
//! Two readers, one set of rules ([`INT_KEYS`], [`BOOL_KEYS`]): [`GlobalConfig::check`] refuses a
//! `/config` write that breaks them (the REST API answers 400 with the reason), and
//! [`GlobalConfig::from_map_over`] reads whatever the DCS holds leniently: a bad value keeps the
//! last good one and is reported, never fatal. Every value is bounded here, so nothing derived
//! from it (milliseconds, deadlines) can overflow.

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
    /// `synchronous_mode`: off, on (priority) or quorum.
    pub synchronous_mode: SyncMode,
    /// `synchronous_mode_strict`: with no synchronous standby, commits wait rather than go
    /// unprotected.
    pub synchronous_mode_strict: bool,
    /// `synchronous_node_count`: how many standbys are synchronous (at least 1).
    pub synchronous_node_count: u64,
    /// `maximum_lag_on_syncnode`: bytes a synchronous standby may fall behind the most advanced
    /// one before another replaces it; 0 or less: never swapped for lag.
    pub maximum_lag_on_syncnode: i64,
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
            synchronous_mode: SyncMode::Off,
            synchronous_mode_strict: false,
            synchronous_node_count: 1,
            maximum_lag_on_syncnode: -1,
            warnings: Vec::new(),
        }
    }
}

/// Patroni's `synchronous_mode`: who must confirm a commit before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// Asynchronous replication (`false`, `off`).
    #[default]
    Off,
    /// Priority-based synchronous replication (`true`, `on`): `synchronous_standby_names` lists
    /// the synchronous standbys, the `sync` key the ones that may be promoted.
    On,
    /// Quorum commit (`quorum`): `ANY k (...)`.
    Quorum,
}

impl SyncMode {
    /// Reads `synchronous_mode` as Patroni does: a boolean (in any of Patroni's spellings) or
    /// `quorum` (any case); `None` for anything else.
    pub fn from_value(v: &Value) -> Option<SyncMode> {
        if let Value::String(s) = v
            && s.trim().eq_ignore_ascii_case("quorum")
        {
            return Some(SyncMode::Quorum);
        }
        bool_value(v).map(|on| if on { SyncMode::On } else { SyncMode::Off })
    }

    /// Synchronous replication of either kind is asked for.
    pub fn is_synchronous(self) -> bool {
        self != SyncMode::Off
    }
}

/// Largest accepted `synchronous_node_count`: more standbys than any cluster has.
pub const MAX_SYNC_NODES: u64 = 1_000;

/// Smallest accepted lease TTL (seconds). Patroni's floor is 20; pgkeel renews the lease on its
/// own task and fences on the monotonic clock, so it accepts shorter leases.
pub const MIN_TTL: u64 = 5;
/// Smallest accepted `loop_wait` (seconds), as in Patroni.
pub const MIN_LOOP_WAIT: u64 = 1;
/// Smallest accepted `retry_timeout` (seconds). Patroni's floor is 3.
pub const MIN_RETRY_TIMEOUT: u64 = 1;
/// Largest accepted value of each timing key (`ttl`, `loop_wait`, `retry_timeout`,
/// `primary_start_timeout`): one day, in seconds. Patroni sets no ceiling; one keeps every
/// derived millisecond count and deadline far from overflow (`u64::MAX` seconds killed every
/// agent), and no working cluster waits a day between cycles.
pub const MAX_SECONDS: u64 = 86_400;
/// Largest accepted `maximum_lag_on_failover` (bytes): PostgreSQL's largest WAL distance
/// (`i64::MAX`), which is what Patroni's integer can hold too.
pub const MAX_LAG_BYTES: u64 = i64::MAX as u64;

/// An integer key of the dynamic configuration and its accepted range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntKey {
    /// The key in `/config`.
    pub key: &'static str,
    /// Smallest accepted value. Below it, a write is refused; a read raises it (Patroni).
    pub min: u64,
    /// Largest accepted value. Above it, a write is refused; a read keeps the last good value.
    pub max: u64,
}

/// The integer keys pgkeel reads, with their ranges (docs/configuration.md lists them).
/// `master_start_timeout` is Patroni's old name of `primary_start_timeout`.
pub const INT_KEYS: [IntKey; 7] = [
    IntKey {
        key: "ttl",
        min: MIN_TTL,
        max: MAX_SECONDS,
    },
    IntKey {
        key: "loop_wait",
        min: MIN_LOOP_WAIT,
        max: MAX_SECONDS,
    },
    IntKey {
        key: "retry_timeout",
        min: MIN_RETRY_TIMEOUT,
        max: MAX_SECONDS,
    },
    IntKey {
        key: "maximum_lag_on_failover",
        min: 0,
        max: MAX_LAG_BYTES,
    },
    IntKey {
        key: "primary_start_timeout",
        min: 0,
        max: MAX_SECONDS,
    },
    IntKey {
        key: "master_start_timeout",
        min: 0,
        max: MAX_SECONDS,
    },
    IntKey {
        key: "synchronous_node_count",
        min: 1,
        max: MAX_SYNC_NODES,
    },
];

/// The top-level boolean keys a `/config` write is checked for (Patroni's validator's).
pub const BOOL_KEYS: [&str; 4] = [
    "check_timeline",
    "pause",
    "failsafe_mode",
    "synchronous_mode_strict",
];
/// The boolean keys under `postgresql` pgkeel reads.
pub const PG_BOOL_KEYS: [&str; 2] = ["use_slots", "use_pg_rewind"];

/// Why a `/config` write was refused: the key, the value (quoted, at most [`QUOTE_LIMIT`]
/// characters) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {value} is {problem}; expected {expected}")]
pub struct ConfigRejected {
    /// Path of the key (`postgresql.use_slots`).
    pub key: String,
    /// The value given, quoted and bounded.
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
    /// What would have been accepted.
    pub expected: String,
}

/// How many characters of a bad value a message quotes: a 1 MB value is not echoed back.
pub const QUOTE_LIMIT: usize = 64;

/// `v` as JSON, cut after [`QUOTE_LIMIT`] characters.
fn quote(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(QUOTE_LIMIT) {
        Some((end, _)) => format!("{}...", &s[..end]),
        None => s,
    }
}

/// What is wrong with an integer value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IntProblem {
    /// Not a number, or a string that is not one.
    NotInteger,
    /// A negative number.
    Negative,
    /// A non-negative number below the minimum.
    BelowMin(u64),
    /// A number above the maximum.
    AboveMax,
}

/// Reads an integer value the way both readers do: JSON integers, non-negative floats
/// (truncated, saturating) and strings holding a decimal integer.
fn int_value(v: &Value, k: &IntKey) -> Result<u64, IntProblem> {
    let n = match v {
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u,
            (None, Some(_), _) => return Err(IntProblem::Negative),
            // `as` saturates: 1e19 becomes u64::MAX, which is above every maximum.
            (None, None, Some(f)) if f >= 0.0 => f as u64,
            (None, None, Some(_)) => return Err(IntProblem::Negative),
            (None, None, None) => return Err(IntProblem::NotInteger),
        },
        Value::String(s) => {
            let s = s.trim();
            match s.parse::<u64>() {
                Ok(u) => u,
                Err(_) if s.parse::<i64>().is_ok() => return Err(IntProblem::Negative),
                Err(_) if s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty() => {
                    return Err(IntProblem::AboveMax);
                }
                Err(_) => return Err(IntProblem::NotInteger),
            }
        }
        _ => return Err(IntProblem::NotInteger),
    };
    if n < k.min {
        Err(IntProblem::BelowMin(n))
    } else if n > k.max {
        Err(IntProblem::AboveMax)
    } else {
        Ok(n)
    }
}

/// Reads a boolean value as Patroni's `parse_bool` does: JSON booleans, the integers 1 and 0,
/// and the strings true/on/yes/1 and false/off/no/0; anything else is not a boolean.
pub fn bool_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "on" | "yes" | "1" => Some(true),
            "false" | "off" | "no" | "0" => Some(false),
            _ => None,
        },
        // Patroni's parse_bool compares str(value): only 1 and 0 are booleans.
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        _ => None,
    }
}

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
    /// The inputs should be within their ranges ([`INT_KEYS`]); any `u64` is handled without
    /// overflow (the sums saturate).
    pub fn adjusted(self) -> (Timeouts, Option<String>) {
        let Timeouts {
            ttl,
            loop_wait,
            retry_timeout,
        } = self;
        let twice_retry = retry_timeout.saturating_mul(2);
        if MIN_LOOP_WAIT.saturating_add(twice_retry) > ttl {
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
        } else if loop_wait.saturating_add(twice_retry) > ttl {
            let new_loop_wait = ttl.saturating_sub(twice_retry);
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

/// The range of the integer key `key`.
fn int_key(key: &str) -> IntKey {
    INT_KEYS
        .into_iter()
        .find(|k| k.key == key)
        .unwrap_or(IntKey {
            key: "",
            min: 0,
            max: 0,
        })
}

impl GlobalConfig {
    /// Reads the dynamic configuration object with the defaults as the last good values
    /// (see [`GlobalConfig::from_map_over`]).
    pub fn from_map(m: &Map<String, Value>) -> GlobalConfig {
        GlobalConfig::from_map_over(m, &GlobalConfig::default())
    }

    /// Reads the dynamic configuration object as the DCS holds it, which no one checked.
    /// Missing keys take Patroni's defaults; a value of the wrong type, negative or above its
    /// maximum keeps its value in `last_good` (the configuration read before), with a warning
    /// naming key and value; a value below its minimum is raised to it with Patroni's warning;
    /// then [`Timeouts::adjusted`] enforces the timing rule. Never panics, and every value
    /// returned is within its range ([`INT_KEYS`]).
    pub fn from_map_over(m: &Map<String, Value>, last_good: &GlobalConfig) -> GlobalConfig {
        let d = GlobalConfig::default();
        let last = last_good;
        let mut w = Vec::new();
        let mut c = GlobalConfig {
            loop_wait: read_u64(m, "loop_wait", d.loop_wait, last.loop_wait, &mut w),
            retry_timeout: read_u64(
                m,
                "retry_timeout",
                d.retry_timeout,
                last.retry_timeout,
                &mut w,
            ),
            ttl: read_u64(m, "ttl", d.ttl, last.ttl, &mut w),
            maximum_lag_on_failover: read_u64(
                m,
                "maximum_lag_on_failover",
                d.maximum_lag_on_failover,
                last.maximum_lag_on_failover,
                &mut w,
            ),
            ..d
        };
        let pst_key = if m.contains_key("primary_start_timeout") {
            "primary_start_timeout"
        } else {
            "master_start_timeout"
        };
        c.primary_start_timeout = read_u64(
            m,
            pst_key,
            d.primary_start_timeout,
            last.primary_start_timeout,
            &mut w,
        );
        c.check_timeline = read_bool(
            m,
            "check_timeline",
            d.check_timeline,
            last.check_timeline,
            &mut w,
        );
        c.pause = read_bool(m, "pause", d.pause, last.pause, &mut w);
        c.synchronous_mode = match m.get("synchronous_mode") {
            None | Some(Value::Null) => d.synchronous_mode,
            Some(v) => SyncMode::from_value(v).unwrap_or_else(|| {
                w.push(format!(
                    "synchronous_mode: {} is not a boolean or \"quorum\"; keeping {:?}",
                    quote(v),
                    last.synchronous_mode
                ));
                last.synchronous_mode
            }),
        };
        c.synchronous_mode_strict = read_bool(
            m,
            "synchronous_mode_strict",
            d.synchronous_mode_strict,
            last.synchronous_mode_strict,
            &mut w,
        );
        c.synchronous_node_count = read_u64(
            m,
            "synchronous_node_count",
            d.synchronous_node_count,
            last.synchronous_node_count,
            &mut w,
        );
        c.maximum_lag_on_syncnode = match m.get("maximum_lag_on_syncnode") {
            None | Some(Value::Null) => d.maximum_lag_on_syncnode,
            Some(v) => signed_int(v).unwrap_or_else(|| {
                w.push(format!(
                    "maximum_lag_on_syncnode: {} is not an integer; keeping {}",
                    quote(v),
                    last.maximum_lag_on_syncnode
                ));
                last.maximum_lag_on_syncnode
            }),
        };
        match m.get("postgresql") {
            Some(Value::Object(pg)) => {
                c.use_slots = read_bool(pg, "use_slots", d.use_slots, last.use_slots, &mut w);
                c.use_pg_rewind = match pg.get("use_pg_rewind") {
                    None | Some(Value::Null) => None,
                    Some(v) => match bool_value(v) {
                        Some(b) => Some(b),
                        None => {
                            w.push(format!(
                                "postgresql.use_pg_rewind: {} is not a boolean; keeping {}",
                                quote(v),
                                last.use_pg_rewind.unwrap_or(false)
                            ));
                            last.use_pg_rewind
                        }
                    },
                };
            }
            None | Some(Value::Null) => {}
            Some(v) => {
                w.push(format!(
                    "postgresql: {} is not a mapping; keeping use_slots={} and use_pg_rewind={}",
                    quote(v),
                    last.use_slots,
                    last.use_pg_rewind.unwrap_or(false)
                ));
                c.use_slots = last.use_slots;
                c.use_pg_rewind = last.use_pg_rewind;
            }
        }
        let (t, warning) = c.timeouts().adjusted();
        (c.ttl, c.loop_wait, c.retry_timeout) = (t.ttl, t.loop_wait, t.retry_timeout);
        w.extend(warning);
        c.warnings = w;
        c
    }

    /// Checks a `/config` write (a PATCH body or a PUT body) against [`INT_KEYS`] and the
    /// boolean keys: wrong types and values out of range are refused, naming key, value and
    /// what is expected. `null` (delete the key in a PATCH) and keys pgkeel does not read pass.
    /// The timing rule `loop_wait + 2 * retry_timeout <= ttl` is not checked: as in Patroni,
    /// a violation is adjusted with a warning when read.
    pub fn check(m: &Map<String, Value>) -> Result<(), ConfigRejected> {
        for k in INT_KEYS {
            let Some(v) = m.get(k.key).filter(|v| !v.is_null()) else {
                continue;
            };
            let problem = match int_value(v, &k) {
                Ok(_) => continue,
                Err(IntProblem::NotInteger) => "not an integer",
                Err(IntProblem::Negative | IntProblem::BelowMin(_)) => "below the minimum",
                Err(IntProblem::AboveMax) => "above the maximum",
            };
            return Err(ConfigRejected {
                key: k.key.to_string(),
                value: quote(v),
                problem: problem.to_string(),
                expected: format!("an integer from {} to {}", k.min, k.max),
            });
        }
        if let Some(v) = m.get("synchronous_mode").filter(|v| !v.is_null())
            && SyncMode::from_value(v).is_none()
        {
            return Err(ConfigRejected {
                key: "synchronous_mode".to_string(),
                value: quote(v),
                problem: "not a synchronous mode".to_string(),
                expected: "true, false or \"quorum\"".to_string(),
            });
        }
        if let Some(v) = m.get("maximum_lag_on_syncnode").filter(|v| !v.is_null())
            && signed_int(v).is_none()
        {
            return Err(ConfigRejected {
                key: "maximum_lag_on_syncnode".to_string(),
                value: quote(v),
                problem: "not an integer".to_string(),
                expected: "an integer (bytes; -1 to never swap for lag)".to_string(),
            });
        }
        let bool_rejected = |key: String, v: &Value| ConfigRejected {
            key,
            value: quote(v),
            problem: "not a boolean".to_string(),
            expected: "true or false".to_string(),
        };
        for key in BOOL_KEYS {
            if let Some(v) = m.get(key).filter(|v| !v.is_null())
                && bool_value(v).is_none()
            {
                return Err(bool_rejected(key.to_string(), v));
            }
        }
        match m.get("postgresql") {
            None | Some(Value::Null) => Ok(()),
            Some(Value::Object(pg)) => {
                for key in PG_BOOL_KEYS {
                    if let Some(v) = pg.get(key).filter(|v| !v.is_null())
                        && bool_value(v).is_none()
                    {
                        return Err(bool_rejected(format!("postgresql.{key}"), v));
                    }
                }
                match pg.get("parameters") {
                    None | Some(Value::Null | Value::Object(_)) => Ok(()),
                    Some(v) => Err(ConfigRejected {
                        key: "postgresql.parameters".to_string(),
                        value: quote(v),
                        problem: "not a mapping".to_string(),
                        expected: "a mapping of PostgreSQL parameters".to_string(),
                    }),
                }
            }
            Some(v) => Err(ConfigRejected {
                key: "postgresql".to_string(),
                value: quote(v),
                problem: "not a mapping".to_string(),
                expected: "a mapping".to_string(),
            }),
        }
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
                Some(v) => match int_value(v, &int_key(key)) {
                    Ok(n) | Err(IntProblem::BelowMin(n)) => Some(n),
                    Err(_) => None,
                },
            };
            if given.is_some_and(|g| g != want) {
                out.insert(key.to_string(), Value::from(want));
            }
        }
        out
    }

    /// Lease TTL in milliseconds.
    pub fn ttl_ms(&self) -> u64 {
        self.ttl.saturating_mul(1000)
    }

    /// `primary_start_timeout` in milliseconds.
    pub fn primary_start_timeout_ms(&self) -> u64 {
        self.primary_start_timeout.saturating_mul(1000)
    }

    /// How long before the lease deadline a primary that could not renew must stop accepting
    /// writes: a quarter of the TTL, between 1 and 3 seconds. The demotion itself is bounded
    /// by this margin, so it completes before any other node can win the expired lease.
    pub fn fencing_margin_ms(&self) -> u64 {
        (self.ttl_ms() / 4).clamp(1000, 3000)
    }
}

/// Reads integer `key` of `m`: absent or `null` gives `default`; below the minimum is raised to
/// it (Patroni's `__get_and_maybe_adjust_int_value`); any other bad value keeps `last`, with a
/// warning naming key and value.
fn read_u64(
    m: &Map<String, Value>,
    key: &str,
    default: u64,
    last: u64,
    w: &mut Vec<String>,
) -> u64 {
    let k = int_key(key);
    let v = match m.get(key) {
        None | Some(Value::Null) => return default,
        Some(v) => v,
    };
    match int_value(v, &k) {
        Ok(x) => x,
        Err(IntProblem::BelowMin(x)) => {
            // Patroni's wording.
            w.push(format!(
                "{key}={x} can't be smaller than {}, adjusting...",
                k.min
            ));
            k.min
        }
        Err(p) => {
            let what = match p {
                IntProblem::AboveMax => format!("is bigger than {}", k.max),
                IntProblem::Negative => "is negative".to_string(),
                _ => "is not an integer".to_string(),
            };
            // A hand-made `last_good` may be out of range; what is returned never is.
            let last = last.clamp(k.min, k.max);
            w.push(format!("{key}: {} {what}; keeping {last}", quote(v)));
            last
        }
    }
}

/// A signed integer: a JSON integer or a string holding one.
fn signed_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads boolean `key` of `m`: absent or `null` gives `default`; a value that is not a boolean
/// keeps `last`, with a warning naming key and value.
fn read_bool(
    m: &Map<String, Value>,
    key: &str,
    default: bool,
    last: bool,
    w: &mut Vec<String>,
) -> bool {
    match m.get(key) {
        None | Some(Value::Null) => default,
        Some(v) => bool_value(v).unwrap_or_else(|| {
            let path = if key == "use_slots" {
                "postgresql.use_slots"
            } else {
                key
            };
            w.push(format!(
                "{path}: {} is not a boolean; keeping {last}",
                quote(v)
            ));
            last
        }),
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

    // Issue 10 point 2: these values panicked every agent (debug) or made it renew its lease
    // 19 times a second (release).
    #[test]
    fn values_above_the_maximum_keep_the_last_good_value() {
        let c = cfg(
            json!({"loop_wait": u64::MAX, "ttl": 1e19, "retry_timeout": 9223372036854775807u64}),
        );
        assert_eq!((c.ttl, c.loop_wait, c.retry_timeout), (30, 10, 10));
        assert_eq!(
            c.warnings,
            [
                "loop_wait: 18446744073709551615 is bigger than 86400; keeping 10",
                "retry_timeout: 9223372036854775807 is bigger than 86400; keeping 10",
                "ttl: 1e+19 is bigger than 86400; keeping 30",
            ]
        );
        let last = cfg(
            json!({"ttl": 12, "loop_wait": 2, "retry_timeout": 3, "maximum_lag_on_failover": 5, "primary_start_timeout": 7, "pause": true, "postgresql": {"use_slots": false, "use_pg_rewind": true}}),
        );
        assert!(last.warnings.is_empty(), "{:?}", last.warnings);
        let bad = json!({"ttl": -1, "loop_wait": "x", "retry_timeout": 1e300, "maximum_lag_on_failover": "99999999999999999999", "primary_start_timeout": [1], "pause": "maybe", "postgresql": {"use_slots": {}, "use_pg_rewind": 3.5}});
        let c = GlobalConfig::from_map_over(bad.as_object().unwrap(), &last);
        assert_eq!(
            (
                c.ttl,
                c.loop_wait,
                c.retry_timeout,
                c.maximum_lag_on_failover,
                c.primary_start_timeout
            ),
            (12, 2, 3, 5, 7)
        );
        assert!(c.pause && !c.use_slots && c.use_pg_rewind == Some(true));
        assert_eq!(c.warnings.len(), 8, "{:?}", c.warnings);
        assert!(
            c.warnings[0].starts_with("loop_wait: \"x\""),
            "{:?}",
            c.warnings
        );
        // A postgresql section that is no mapping keeps both of its keys.
        let c = GlobalConfig::from_map_over(json!({"postgresql": 5}).as_object().unwrap(), &last);
        assert!(!c.use_slots && c.use_pg_rewind == Some(true));
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn a_huge_value_is_quoted_only_in_part() {
        let c = cfg(json!({"ttl": "x".repeat(1_000_000)}));
        assert_eq!(c.ttl, 30);
        assert!(c.warnings[0].len() < 200, "{}", c.warnings[0]);
        let e = GlobalConfig::check(json!({"pause": "y".repeat(1_000_000)}).as_object().unwrap())
            .unwrap_err();
        assert!(e.to_string().len() < 200, "{e}");
    }

    fn check(v: Value) -> Result<(), String> {
        GlobalConfig::check(v.as_object().unwrap()).map_err(|e| e.to_string())
    }

    // Issue 10 points 2 and 5: what `/config` writes must not store.
    #[test]
    fn writes_out_of_range_or_of_the_wrong_type_are_refused() {
        assert_eq!(
            check(json!({"loop_wait": u64::MAX})),
            Err("loop_wait: 18446744073709551615 is above the maximum; expected an integer from 1 to 86400".into())
        );
        assert_eq!(
            check(json!({"ttl": 1e19})),
            Err("ttl: 1e+19 is above the maximum; expected an integer from 5 to 86400".into())
        );
        assert_eq!(
            check(json!({"ttl": "abc"})),
            Err("ttl: \"abc\" is not an integer; expected an integer from 5 to 86400".into())
        );
        assert_eq!(
            check(json!({"ttl": -1})),
            Err("ttl: -1 is below the minimum; expected an integer from 5 to 86400".into())
        );
        assert_eq!(
            check(json!({"retry_timeout": 0})),
            Err(
                "retry_timeout: 0 is below the minimum; expected an integer from 1 to 86400".into()
            )
        );
        assert_eq!(
            check(json!({"maximum_lag_on_failover": -5})),
            Err("maximum_lag_on_failover: -5 is below the minimum; expected an integer from 0 to 9223372036854775807".into())
        );
        assert_eq!(
            check(json!({"master_start_timeout": 86401})),
            Err("master_start_timeout: 86401 is above the maximum; expected an integer from 0 to 86400".into())
        );
        assert_eq!(
            check(json!({"pause": "maybe"})),
            Err("pause: \"maybe\" is not a boolean; expected true or false".into())
        );
        assert_eq!(
            check(json!({"postgresql": {"use_slots": [true]}})),
            Err("postgresql.use_slots: [true] is not a boolean; expected true or false".into())
        );
        assert_eq!(
            check(json!({"postgresql": {"parameters": "max_connections=100"}})),
            Err("postgresql.parameters: \"max_connections=100\" is not a mapping; expected a mapping of PostgreSQL parameters".into())
        );
        assert_eq!(
            check(json!({"postgresql": []})),
            Err("postgresql: [] is not a mapping; expected a mapping".into())
        );
    }

    #[test]
    fn valid_writes_pass_the_check() {
        assert_eq!(check(json!({})), Ok(()));
        assert_eq!(
            check(
                json!({"ttl": 86400, "loop_wait": "10", "retry_timeout": 1, "maximum_lag_on_failover": 9223372036854775807u64, "primary_start_timeout": 0, "pause": "on", "check_timeline": false, "postgresql": {"use_slots": 0, "use_pg_rewind": "true", "parameters": {"max_connections": 100}}, "unknown": [1, 2]})
            ),
            Ok(())
        );
        // null deletes a key in a PATCH; the timing rule is adjusted on read, not refused.
        assert_eq!(check(json!({"ttl": null, "postgresql": null})), Ok(()));
        assert_eq!(
            check(json!({"ttl": 20, "loop_wait": 10, "retry_timeout": 10})),
            Ok(())
        );
    }

    #[test]
    fn timing_rule_never_overflows() {
        let (t, w) = Timeouts {
            ttl: MAX_SECONDS,
            loop_wait: u64::MAX,
            retry_timeout: u64::MAX,
        }
        .adjusted();
        assert!(w.is_some());
        assert_eq!((t.loop_wait, t.retry_timeout), (MIN_LOOP_WAIT, 43_199));
        let (t, _) = Timeouts {
            ttl: u64::MAX,
            loop_wait: u64::MAX,
            retry_timeout: u64::MAX,
        }
        .adjusted();
        assert_eq!(t.ttl, u64::MAX);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Any JSON value, with numbers at the edges (huge, negative, fractional) and
        /// strings that look like numbers.
        fn any_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<u64>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                (0u64..100_000).prop_map(Value::from),
                "[-0-9a-z. ]{0,24}".prop_map(Value::String),
                any::<u64>().prop_map(|n| Value::String(n.to_string())),
            ];
            leaf.prop_recursive(3, 24, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::vec((key(), inner), 0..6)
                        .prop_map(|kv| Value::Object(kv.into_iter().collect())),
                ]
            })
        }

        /// The keys pgkeel reads, and some it does not.
        fn key() -> impl Strategy<Value = String> {
            let known: Vec<&'static str> = INT_KEYS
                .iter()
                .map(|k| k.key)
                .chain(BOOL_KEYS)
                .chain(PG_BOOL_KEYS)
                .chain(["postgresql", "parameters", "x"])
                .collect();
            prop_oneof![
                4 => prop::sample::select(known).prop_map(str::to_string),
                1 => "[a-z_]{1,12}",
            ]
        }

        fn any_object() -> impl Strategy<Value = Map<String, Value>> {
            prop::collection::vec((key(), any_json()), 0..10)
                .prop_map(|kv| kv.into_iter().collect())
        }

        fn in_range(c: &GlobalConfig) -> bool {
            let r = |key: &str, v: u64| {
                let k = int_key(key);
                (k.min..=k.max).contains(&v)
            };
            r("ttl", c.ttl)
                && r("loop_wait", c.loop_wait)
                && r("retry_timeout", c.retry_timeout)
                && r("maximum_lag_on_failover", c.maximum_lag_on_failover)
                && r("primary_start_timeout", c.primary_start_timeout)
                && c.loop_wait
                    .saturating_add(c.retry_timeout.saturating_mul(2))
                    <= c.ttl
        }

        proptest! {
            // Whatever the DCS holds: no panic, every value in range, the timing rule holds,
            // and reading over a last good configuration keeps that in range too.
            #[test]
            fn any_object_reads_in_range(m in any_object(), last in any_object()) {
                let last = GlobalConfig::from_map(&last);
                prop_assert!(in_range(&last), "{last:?}");
                let c = GlobalConfig::from_map_over(&m, &last);
                prop_assert!(in_range(&c), "{c:?}");
                let _ = c.fencing_margin_ms();
                let _ = c.primary_start_timeout_ms();
                let _ = GlobalConfig::with_effective_timeouts(&m);
            }

            // What passes the write check is read back as written: no warning other than
            // Patroni's timing adjustment.
            #[test]
            fn checked_writes_read_back_without_fallback(m in any_object()) {
                if GlobalConfig::check(&m).is_ok() {
                    let c = GlobalConfig::from_map(&m);
                    for w in &c.warnings {
                        prop_assert!(w.starts_with("Violated the rule"), "{w} for {m:?}");
                    }
                }
            }
        }
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
