//! Timeline history: the `history` key and PostgreSQL's `<timeline>.history` files.

use serde_json::Value;

/// One timeline switch: `[timeline, lsn, reason, timestamp, new_leader]` in the `history` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The timeline that ended.
    pub timeline: u32,
    /// Absolute LSN where it ended.
    pub lsn: u64,
    /// Reason text from the history file.
    pub reason: String,
    /// When the switch was recorded (ISO 8601), if known.
    pub timestamp: Option<String>,
    /// Who was promoted, if known.
    pub new_leader: Option<String>,
}

impl HistoryEntry {
    /// Parses one element of the `history` JSON list; `None` for garbage.
    pub fn from_json(v: &Value) -> Option<HistoryEntry> {
        let a = v.as_array()?;
        let timeline = u32::try_from(a.first()?.as_u64()?).ok()?;
        let lsn = a.get(1)?.as_u64()?;
        let reason = a.get(2).and_then(Value::as_str).unwrap_or("").to_string();
        let timestamp = a.get(3).and_then(Value::as_str).map(str::to_string);
        let new_leader = a.get(4).and_then(Value::as_str).map(str::to_string);
        Some(HistoryEntry {
            timeline,
            lsn,
            reason,
            timestamp,
            new_leader,
        })
    }

    /// The JSON list form Patroni writes.
    pub fn to_json(&self) -> Value {
        let mut a = vec![
            Value::from(self.timeline),
            Value::from(self.lsn),
            Value::from(self.reason.clone()),
        ];
        if let Some(ts) = &self.timestamp {
            a.push(Value::from(ts.clone()));
            if let Some(l) = &self.new_leader {
                a.push(Value::from(l.clone()));
            }
        }
        Value::Array(a)
    }
}

/// Parses a PostgreSQL timeline history file (`<tli>\t<X/Y>\t<reason>` lines).
/// Lines that do not parse are skipped.
pub fn parse_timeline_history_file(text: &str) -> Vec<HistoryEntry> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let mut parts = line.splitn(3, '\t');
            let timeline = parts.next()?.trim().parse().ok()?;
            let lsn: crate::pg::Lsn = parts.next()?.trim().parse().ok()?;
            let reason = parts.next().unwrap_or("").trim().to_string();
            Some(HistoryEntry {
                timeline,
                lsn: lsn.0,
                reason,
                timestamp: None,
                new_leader: None,
            })
        })
        .collect()
}

/// Merges the entries of a fresh history file into the known `history`: entries already
/// known keep their timestamp and new leader; new ones get `timestamp` and `new_leader`.
pub fn merge_timeline_history(
    known: &[HistoryEntry],
    from_file: &[HistoryEntry],
    timestamp: &str,
    new_leader: &str,
) -> Vec<HistoryEntry> {
    let mut out = Vec::with_capacity(from_file.len());
    let last_index = from_file.len().saturating_sub(1);
    for (i, e) in from_file.iter().enumerate() {
        match known.iter().find(|k| k.timeline == e.timeline) {
            Some(k) => out.push(k.clone()),
            None => {
                let mut e = e.clone();
                e.timestamp = Some(timestamp.to_string());
                // Only the newest switch was caused by this node's promotion.
                if i == last_index {
                    e.new_leader = Some(new_leader.to_string());
                }
                out.push(e);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_file_lines_parse_and_garbage_is_skipped() {
        let h = parse_timeline_history_file(
            "1\t0/3000158\tno recovery target specified\n\ngarbage\n2\t0/5000000\tx\n",
        );
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].timeline, 1);
        assert_eq!(h[0].lsn, 0x3000158);
        assert_eq!(h[1].reason, "x");
    }

    #[test]
    fn merge_keeps_known_entries_and_stamps_new_ones() {
        let known = vec![HistoryEntry {
            timeline: 1,
            lsn: 5,
            reason: "a".into(),
            timestamp: Some("t0".into()),
            new_leader: Some("n1".into()),
        }];
        let file = parse_timeline_history_file("1\t0/5\ta\n2\t0/9\tb\n");
        let m = merge_timeline_history(&known, &file, "t1", "n2");
        assert_eq!(m[0].timestamp.as_deref(), Some("t0"));
        assert_eq!(m[1].timestamp.as_deref(), Some("t1"));
        assert_eq!(m[1].new_leader.as_deref(), Some("n2"));
        assert_eq!(m[1].to_json(), serde_json::json!([2, 9, "b", "t1", "n2"]));
    }
}
