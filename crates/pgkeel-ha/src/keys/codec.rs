//! Bytes <-> typed values for every key Patroni writes.
//!
//! Parsing never panics and never fails as a whole: a garbage value becomes an
//! [`Unreadable`] entry (and a member marked unhealthy). Encoding produces Patroni's
//! compact JSON with its field order, so Patroni's tools read what pgkeel writes.

use super::KeyLayout;
use crate::cluster::{
    Cluster, ClusterConfig, Failover, HistoryEntry, Leader, Member, Status, SyncState, Unreadable,
};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One raw key as read from the DCS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawKv<'a> {
    /// Full key path.
    pub key: &'a str,
    /// Raw value bytes.
    pub value: &'a [u8],
    /// The key's mod_revision.
    pub mod_revision: i64,
    /// Attached lease (0: none).
    pub lease: i64,
}

/// Builds a [`Cluster`] from every key under the layout's prefix. Keys outside the prefix or
/// unknown to Patroni are ignored.
pub fn parse_cluster(layout: &KeyLayout, kvs: &[RawKv<'_>]) -> Cluster {
    let mut c = Cluster::default();
    let mut legacy_optime: Option<u64> = None;
    let mut status_seen = false;
    for kv in kvs {
        let Some(rel) = layout.relative(kv.key) else {
            continue;
        };
        let text = String::from_utf8_lossy(kv.value);
        let text = text.trim();
        let mut bad = |reason: String| {
            c.unreadable.push(Unreadable {
                key: kv.key.to_string(),
                reason,
            });
        };
        match rel {
            "initialize" => c.initialize = Some(text.to_string()),
            "leader" => {
                // An empty value is still a key that blocks the create-if-absent race: keep it
                // (named "") so the core can see it and remove it as stale.
                if text.is_empty() {
                    bad("empty leader value".into());
                }
                c.leader = Some(Leader {
                    name: text.to_string(),
                    lease: kv.lease,
                    mod_revision: kv.mod_revision,
                });
            }
            "config" => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(data)) => {
                    c.config = Some(ClusterConfig {
                        data,
                        mod_revision: kv.mod_revision,
                    })
                }
                _ => {
                    bad("not a JSON object".into());
                    c.config = Some(ClusterConfig {
                        data: Map::new(),
                        mod_revision: kv.mod_revision,
                    });
                }
            },
            "status" => {
                status_seen = true;
                match parse_status(text) {
                    Some(s) => c.status = s,
                    None => bad("not a status object".into()),
                }
            }
            "optime/leader" => legacy_optime = text.parse().ok(),
            "history" => match serde_json::from_str::<Value>(text) {
                Ok(Value::Array(items)) => {
                    let parsed: Vec<HistoryEntry> =
                        items.iter().filter_map(HistoryEntry::from_json).collect();
                    if parsed.len() != items.len() {
                        bad(format!(
                            "{} malformed history entries skipped",
                            items.len().saturating_sub(parsed.len())
                        ));
                    }
                    c.history = Some(parsed);
                }
                _ => {
                    bad("not a JSON list".into());
                    c.history = Some(Vec::new());
                }
            },
            "failover" => c.failover = parse_failover(text, kv.mod_revision),
            "sync" => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(o)) => {
                    c.sync = Some(SyncState {
                        leader: o.get("leader").and_then(Value::as_str).map(str::to_string),
                        quorum: o.get("quorum").and_then(Value::as_i64),
                        sync_standby: o
                            .get("sync_standby")
                            .and_then(Value::as_str)
                            .map(|s| {
                                s.split(',')
                                    .filter(|x| !x.is_empty())
                                    .map(str::to_string)
                                    .collect()
                            })
                            .unwrap_or_default(),
                        mod_revision: kv.mod_revision,
                    })
                }
                _ => bad("not a sync object".into()),
            },
            _ => {
                if let Some(name) = rel.strip_prefix("members/") {
                    if name.is_empty() || name.contains('/') {
                        continue;
                    }
                    let m = parse_member(name, text, kv.lease, kv.mod_revision);
                    if let Some(r) = &m.unreadable {
                        bad(r.clone());
                    }
                    c.members.push(m);
                }
            }
        }
    }
    if !status_seen {
        c.status.optime = legacy_optime;
    }
    c.members.sort_by(|a, b| a.name.cmp(&b.name));
    c
}

fn json_u64(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Parses a `members/<name>` value. Never fails: garbage gives a member with `unreadable` set.
pub fn parse_member(name: &str, text: &str, lease: i64, mod_revision: i64) -> Member {
    let mut m = Member {
        name: name.to_string(),
        lease,
        mod_revision,
        ..Member::default()
    };
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        // Legacy value: just the connection URL.
        m.conn_url = Some(text.to_string());
        m.state = "running".into();
        m.role = "replica".into();
        return m;
    }
    let o = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => o,
        Ok(_) => {
            m.unreadable = Some("member value is not a JSON object".into());
            return m;
        }
        Err(e) => {
            m.unreadable = Some(format!("member value is not JSON: {e}"));
            return m;
        }
    };
    let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
    m.conn_url = s("conn_url");
    m.api_url = s("api_url");
    m.state = s("state").unwrap_or_else(|| "unknown".into());
    m.role = match s("role").as_deref() {
        Some("master") => "primary".into(),
        Some(r) => r.to_string(),
        None => "unknown".into(),
    };
    m.version = s("version");
    m.xlog_location = json_u64(o.get("xlog_location"));
    m.receive_lsn = json_u64(o.get("receive_lsn"));
    m.replay_lsn = json_u64(o.get("replay_lsn"));
    m.replication_state = s("replication_state");
    m.timeline = json_u64(o.get("timeline")).and_then(|t| u32::try_from(t).ok());
    if let Some(Value::Object(t)) = o.get("tags") {
        m.tags = t.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    }
    m.pending_restart = matches!(o.get("pending_restart"), Some(Value::Bool(true)));
    if let Some(Value::Object(r)) = o.get("pending_restart_reason") {
        m.pending_restart_reason = r.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    }
    if let Some(Value::Object(r)) = o.get("scheduled_restart") {
        m.scheduled_restart = Some(r.clone());
    }
    m
}

fn parse_status(text: &str) -> Option<Status> {
    match serde_json::from_str::<Value>(text).ok()? {
        Value::Number(n) => Some(Status {
            optime: n.as_u64(),
            ..Status::default()
        }),
        Value::Object(o) => {
            let slots = o
                .get("slots")
                .and_then(Value::as_object)
                .map(|s| {
                    s.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                        .collect()
                })
                .unwrap_or_default();
            let retain_slots = o
                .get("retain_slots")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            Some(Status {
                optime: json_u64(o.get("optime")),
                slots,
                retain_slots,
            })
        }
        _ => None,
    }
}

fn parse_failover(text: &str, mod_revision: i64) -> Option<Failover> {
    if text.is_empty() {
        return None;
    }
    let f = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => {
            let s = |k: &str| {
                o.get(k)
                    .and_then(Value::as_str)
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
            };
            Failover {
                leader: s("leader"),
                member: s("member"),
                scheduled_at: s("scheduled_at"),
                mod_revision,
            }
        }
        _ => {
            // Legacy "leader:candidate".
            let (l, c) = text.split_once(':')?;
            Failover {
                leader: Some(l.to_string()).filter(|x| !x.is_empty()),
                member: Some(c.to_string()).filter(|x| !x.is_empty()),
                scheduled_at: None,
                mod_revision,
            }
        }
    };
    if f.leader.is_none() && f.member.is_none() && f.scheduled_at.is_none() {
        None
    } else {
        Some(f)
    }
}

/// What this node publishes in `members/<name>`, in Patroni's field order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberData {
    /// `postgres://<connect_address>/postgres`.
    pub conn_url: String,
    /// `http://<restapi.connect_address>/patroni`.
    pub api_url: String,
    /// PostgreSQL state string.
    pub state: String,
    /// Role string (`primary`, `replica`, ...).
    pub role: String,
    /// Agent version as dotted integers (peers parse it).
    pub version: String,
    /// Tags, omitted when empty.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, Value>,
    /// Present (true) only when a restart is pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_restart: Option<bool>,
    /// Why: `{"<guc>": {"old_value": .., "new_value": ..}}`, omitted when nothing is pending.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub pending_restart_reason: BTreeMap<String, Value>,
    /// Primary: current LSN; replica: max(receive, replay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xlog_location: Option<u64>,
    /// Replica: replayed LSN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_lsn: Option<u64>,
    /// Replica: received LSN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receive_lsn: Option<u64>,
    /// Replica: `streaming` / `in archive recovery`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_state: Option<String>,
    /// Current timeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    /// A restart waiting for its time (after `timeline`, as Patroni writes it): `{"schedule": .., "postmaster_start_time": .., filters}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_restart: Option<Map<String, Value>>,
    /// Present (true) while the cluster is paused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause: Option<bool>,
}

impl MemberData {
    /// Compact JSON as Patroni writes it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// Encodes the `status` key: `{"optime":N,"slots":{..},"retain_slots":[..]}` (empty parts omitted).
pub fn encode_status(
    optime: u64,
    slots: &BTreeMap<String, u64>,
    retain_slots: &[String],
) -> String {
    let mut o = Map::new();
    o.insert("optime".into(), Value::from(optime));
    if !slots.is_empty() {
        o.insert(
            "slots".into(),
            Value::Object(
                slots
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(*v)))
                    .collect(),
            ),
        );
    }
    if !retain_slots.is_empty() {
        let mut r = retain_slots.to_vec();
        r.sort();
        o.insert("retain_slots".into(), Value::from(r));
    }
    Value::Object(o).to_string()
}

/// True when the parsed `status` key already says what [`encode_status`] would write for this
/// optime and these slots (`retain_slots` empty). The leader compares etcd's value with its truth
/// with it, so that anything else in the key (a forged optime) is rewritten.
pub fn status_is_current(current: &Status, optime: u64, slots: &BTreeMap<String, u64>) -> bool {
    current.optime == Some(optime) && &current.slots == slots && current.retain_slots.is_empty()
}

/// The `sync` key's value as Patroni writes it: `{"leader":..,"quorum":..,"sync_standby":..}`,
/// the standbys sorted and comma-joined, `null` when there are none.
pub fn encode_sync(leader: &str, sync_standby: &[String], quorum: i64) -> String {
    let mut names: Vec<&str> = sync_standby.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let standbys = if names.is_empty() {
        Value::Null
    } else {
        Value::from(names.join(","))
    };
    let mut o = serde_json::Map::new();
    o.insert("leader".into(), Value::from(leader));
    o.insert("quorum".into(), Value::from(quorum));
    o.insert("sync_standby".into(), standbys);
    Value::Object(o).to_string()
}

/// Encodes the `history` key.
pub fn encode_history(entries: &[HistoryEntry]) -> String {
    Value::Array(entries.iter().map(HistoryEntry::to_json).collect()).to_string()
}

/// Encodes the `failover` key (only the fields that are set; `{}` clears it).
pub fn encode_failover(
    leader: Option<&str>,
    member: Option<&str>,
    scheduled_at: Option<&str>,
) -> String {
    let mut o = Map::new();
    if let Some(l) = leader {
        o.insert("leader".into(), Value::from(l));
    }
    if let Some(m) = member {
        o.insert("member".into(), Value::from(m));
    }
    if let Some(s) = scheduled_at {
        o.insert("scheduled_at".into(), Value::from(s));
    }
    Value::Object(o).to_string()
}

/// Patroni's `slot_name_from_member_name`: lowercase; `-` and `.` become `_`; any other
/// character outside `[a-z0-9_]` becomes `u%04d` of its code point; at most 63 characters.
///
/// One definition, so that pgkeel's core, its executor and Patroni members agree on slot names
/// in a mixed cluster.
pub fn slot_name_from_member_name(name: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(name.len());
    for c in name.to_lowercase().chars() {
        match c {
            'a'..='z' | '0'..='9' | '_' => out.push(c),
            '-' | '.' => out.push('_'),
            other => {
                let _ = write!(out, "u{:04}", u32::from(other));
            }
        }
    }
    out.chars().take(63).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kv<'a>(key: &'a str, value: &'a str) -> RawKv<'a> {
        RawKv {
            key,
            value: value.as_bytes(),
            mod_revision: 7,
            lease: 42,
        }
    }

    #[test]
    fn a_full_patroni_cluster_parses() {
        let l = KeyLayout::new("/service", "batman");
        let c = parse_cluster(
            &l,
            &[
                kv("/service/batman/initialize", "7277694203142172922"),
                kv("/service/batman/leader", "postgresql0"),
                kv("/service/batman/config", r#"{"ttl":30,"loop_wait":10}"#),
                kv(
                    "/service/batman/status",
                    r#"{"optime":67419744,"slots":{"postgresql1":67419744}}"#,
                ),
                kv(
                    "/service/batman/history",
                    r#"[[1,25307912,"no recovery target specified","2024-08-28T19:39:26.352526+00:00","postgresql0"]]"#,
                ),
                kv(
                    "/service/batman/members/postgresql1",
                    r#"{"conn_url":"postgres://127.0.0.1:5433/postgres","api_url":"http://127.0.0.1:8009/patroni","state":"running","role":"replica","version":"4.1.4","xlog_location":67419744,"replay_lsn":67419744,"receive_lsn":67419744,"replication_state":"streaming","timeline":5,"tags":{"nofailover":true}}"#,
                ),
                kv(
                    "/service/batman/members/postgresql0",
                    r#"{"conn_url":"postgres://127.0.0.1:5432/postgres","api_url":"http://127.0.0.1:8008/patroni","state":"running","role":"master","version":"4.1.4","xlog_location":67419744,"timeline":5}"#,
                ),
                kv("/service/other/leader", "x"),
            ],
        );
        assert!(c.is_initialized());
        assert_eq!(c.leader_name(), Some("postgresql0"));
        assert_eq!(c.leader.as_ref().unwrap().lease, 42);
        assert_eq!(c.members.len(), 2);
        assert_eq!(c.members[0].name, "postgresql0");
        assert_eq!(c.members[0].role, "primary");
        assert_eq!(c.members[1].host_port(), Some(("127.0.0.1".into(), 5433)));
        assert!(c.members[1].nofailover());
        assert_eq!(c.status.optime, Some(67419744));
        assert_eq!(c.status.slots.get("postgresql1"), Some(&67419744));
        assert_eq!(c.timeline(), 2);
        assert!(c.unreadable.is_empty());
    }

    #[test]
    fn garbage_member_is_kept_but_marked_unreadable() {
        let l = KeyLayout::new("service", "b");
        let c = parse_cluster(
            &l,
            &[
                kv("/service/b/members/evil", "{not json"),
                kv("/service/b/members/num", "42"),
            ],
        );
        assert_eq!(c.members.len(), 2);
        assert!(
            c.members
                .iter()
                .all(|m| m.unreadable.is_some() && !m.is_running())
        );
        assert_eq!(c.unreadable.len(), 2);
    }

    #[test]
    fn garbage_in_every_key_never_breaks_the_snapshot() {
        let l = KeyLayout::new("service", "b");
        let c = parse_cluster(
            &l,
            &[
                kv("/service/b/config", "[1,2]"),
                kv("/service/b/status", "\"x\""),
                kv("/service/b/history", "[[\"a\"],[2,3,\"r\"]]"),
                kv("/service/b/sync", "7"),
                kv("/service/b/failover", "{}"),
                kv("/service/b/leader", ""),
            ],
        );
        assert_eq!(c.leader_name(), Some(""));
        assert!(c.failover.is_none());
        assert_eq!(c.history.as_ref().unwrap().len(), 1);
        assert_eq!(c.timeline(), 3);
        assert_eq!(c.unreadable.len(), 5);
    }

    #[test]
    fn legacy_values_are_understood() {
        let l = KeyLayout::new("service", "b");
        let c = parse_cluster(
            &l,
            &[
                kv("/service/b/optime/leader", "1234"),
                kv("/service/b/failover", "n1:n2"),
                kv("/service/b/members/n3", "postgres://10.0.0.3:5432/postgres"),
            ],
        );
        assert_eq!(c.status.optime, Some(1234));
        assert_eq!(c.failover.as_ref().unwrap().member.as_deref(), Some("n2"));
        assert_eq!(c.members[0].host_port(), Some(("10.0.0.3".into(), 5432)));
    }

    #[test]
    fn history_absent_empty_and_present_give_patroni_timelines() {
        let l = KeyLayout::new("service", "b");
        assert_eq!(parse_cluster(&l, &[]).timeline(), 0);
        assert_eq!(
            parse_cluster(&l, &[kv("/service/b/history", "[]")]).timeline(),
            1
        );
    }

    #[test]
    fn member_json_has_patroni_field_order() {
        let m = MemberData {
            conn_url: "postgres://127.0.0.1:5433/postgres".into(),
            api_url: "http://127.0.0.1:8009/patroni".into(),
            state: "running".into(),
            role: "replica".into(),
            version: "4.1.4".into(),
            tags: BTreeMap::new(),
            pending_restart: None,
            pending_restart_reason: BTreeMap::new(),
            xlog_location: Some(1),
            replay_lsn: Some(1),
            receive_lsn: Some(1),
            replication_state: Some("streaming".into()),
            timeline: Some(5),
            scheduled_restart: None,
            pause: None,
        };
        assert_eq!(
            m.to_json(),
            r#"{"conn_url":"postgres://127.0.0.1:5433/postgres","api_url":"http://127.0.0.1:8009/patroni","state":"running","role":"replica","version":"4.1.4","xlog_location":1,"replay_lsn":1,"receive_lsn":1,"replication_state":"streaming","timeline":5}"#
        );
    }

    #[test]
    fn status_and_failover_encode_compactly() {
        let mut slots = BTreeMap::new();
        slots.insert("n2".to_string(), 5u64);
        assert_eq!(
            encode_status(9, &slots, &[]),
            r#"{"optime":9,"slots":{"n2":5}}"#
        );
        assert_eq!(encode_status(9, &BTreeMap::new(), &[]), r#"{"optime":9}"#);
        assert_eq!(
            encode_failover(Some("a"), Some("b"), None),
            r#"{"leader":"a","member":"b"}"#
        );
        assert_eq!(encode_failover(None, None, None), "{}");
    }

    #[test]
    fn status_is_current_compares_with_what_etcd_holds() {
        let l = KeyLayout::new("service", "b");
        let mut slots = BTreeMap::new();
        slots.insert("n1".to_string(), 100u64);
        let status = |v: &str| parse_cluster(&l, &[kv("/service/b/status", v)]).status;
        assert!(status_is_current(
            &status(&encode_status(100, &slots, &[])),
            100,
            &slots
        ));
        // A forged optime (or anything else) differs from the truth and is rewritten.
        assert!(!status_is_current(
            &status(r#"{"optime":18446744073709551615,"slots":{"n1":100}}"#),
            100,
            &slots
        ));
        assert!(!status_is_current(
            &status(r#"{"optime":100}"#),
            100,
            &slots
        ));
        assert!(!status_is_current(&Status::default(), 100, &slots));
    }

    #[test]
    fn slot_names_follow_patroni() {
        assert_eq!(slot_name_from_member_name("Node-1.a"), "node_1_a");
        assert_eq!(slot_name_from_member_name("ü"), "u0252");
        assert_eq!(slot_name_from_member_name(&"a".repeat(80)).len(), 63);
        assert_eq!(slot_name_from_member_name("postgresql0"), "postgresql0");
        assert_eq!(slot_name_from_member_name("a b"), "au0032b");
        assert_eq!(slot_name_from_member_name("x@y"), "xu0064y");
        assert_eq!(slot_name_from_member_name("Ω"), "u0969");
        assert_eq!(slot_name_from_member_name("😀"), "u128512");
        assert_eq!(slot_name_from_member_name("__x__"), "__x__");
    }

    proptest! {
        #[test]
        fn any_bytes_in_any_key_never_panic(key in "[a-z/]{0,20}", value in proptest::collection::vec(any::<u8>(), 0..200)) {
            let l = KeyLayout::new("service", "b");
            let full = format!("/service/b/{key}");
            let _ = parse_cluster(&l, &[RawKv { key: &full, value: &value, mod_revision: 1, lease: 0 }]);
        }

        #[test]
        fn any_json_member_never_panics(s in ".{0,200}") {
            let _ = parse_member("x", &s, 0, 0);
        }
    }
}
