//! Reading another node's `GET /patroni` document into the [`PeerStatus`] the leader race
//! compares. The document comes from the network: every field is optional, and anything
//! unreadable reads as "unreachable" rather than failing the race.

use super::PeerStatus;
use crate::cluster::{DEFAULT_FAILOVER_PRIORITY, failover_priority, forbids_failover};
use serde_json::Value;

impl PeerStatus {
    /// The status of peer `name` from its `/patroni` document (`None`: it did not answer).
    /// Tags read as in member keys ([`crate::cluster::Member::nofailover`]).
    pub fn from_patroni_document(name: &str, doc: Option<&Value>) -> PeerStatus {
        let unreachable = PeerStatus {
            detached: false,
            timeline: None,
            name: name.to_string(),
            reachable: false,
            in_recovery: true,
            lsn: 0,
            nofailover: false,
            failover_priority: DEFAULT_FAILOVER_PRIORITY,
        };
        let Some(doc) = doc else { return unreachable };
        let Some(xlog) = doc.get("xlog").or_else(|| doc.get("wal")) else {
            return unreachable;
        };
        let location = xlog.get("location").and_then(Value::as_u64);
        let position = |key: &str| xlog.get(key).and_then(Value::as_u64).unwrap_or(0);
        let role = doc.get("role").and_then(Value::as_str).unwrap_or("");
        let in_recovery = !(location.is_some() || role == "primary" || role == "master");
        let tag = |k: &str| doc.get("tags").and_then(|t| t.get(k));
        PeerStatus {
            name: name.to_string(),
            reachable: true,
            in_recovery,
            lsn: location
                .unwrap_or(position("received_location").max(position("replayed_location"))),
            nofailover: forbids_failover(tag("nofailover"), tag("failover_priority")),
            failover_priority: failover_priority(tag("failover_priority")),
            timeline: doc
                .get("timeline")
                .and_then(Value::as_u64)
                .and_then(|t| u32::try_from(t).ok()),
            detached: in_recovery && doc.get("detached").and_then(Value::as_bool) == Some(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_replica_document_gives_its_best_position_and_tags() {
        let doc = json!({
            "role": "replica",
            "xlog": {"received_location": 500, "replayed_location": 400},
            "tags": {"failover_priority": "3"}
        });
        let p = PeerStatus::from_patroni_document("n2", Some(&doc));
        assert!(p.reachable && p.in_recovery && !p.nofailover);
        assert_eq!((p.lsn, p.failover_priority), (500, 3));
    }

    #[test]
    fn tags_forbid_failover_with_the_spellings_member_keys_accept() {
        for tags in [
            json!({"nofailover": true}),
            json!({"nofailover": "yes"}),
            json!({"nofailover": 1}),
            json!({"failover_priority": 0}),
            json!({"failover_priority": "-1"}),
        ] {
            let doc = json!({"role": "replica", "xlog": {"received_location": 1}, "tags": tags});
            assert!(
                PeerStatus::from_patroni_document("n2", Some(&doc)).nofailover,
                "{tags}"
            );
        }
    }

    #[test]
    fn no_document_or_no_positions_is_unreachable() {
        assert!(!PeerStatus::from_patroni_document("n2", None).reachable);
        let doc = json!({"role": "replica", "tags": {"nofailover": true}});
        let p = PeerStatus::from_patroni_document("n2", Some(&doc));
        assert!(!p.reachable && !p.nofailover);
    }

    #[test]
    fn a_primary_is_not_in_recovery() {
        let doc = json!({"role": "primary", "xlog": {"location": 900}});
        let p = PeerStatus::from_patroni_document("n1", Some(&doc));
        assert!(p.reachable && !p.in_recovery);
        assert_eq!(p.lsn, 900);
    }
}
