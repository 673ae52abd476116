//! The DCS seam: the few etcd v3 operations the agent and `pgkeelctl` need, as raw bytes.
//!
//! Patroni keeps its cluster state in etcd under `/<namespace>/<scope>/` (`leader`, `members/<name>`,
//! `config`, `failover`, `sync`, ...). This layer only moves keys and bytes; parsing the values is the
//! job of the pure crate `pgkeel_ha`. The guarantees mirror Patroni's `etcd3` backend:
//!
//! * one lease per node, attached to `leader` and `members/<name>` ([`Dcs::grant_lease`],
//!   [`Dcs::keep_alive`]);
//! * the leader race is a create-if-absent ([`Dcs::create_if_absent`]), the leader update a put guarded
//!   by the current value ([`Dcs::put_if_value`]), the voluntary release a guarded delete
//!   ([`Dcs::delete_if_value`]);
//! * `config`, `failover` and `sync` are compare-and-set on `mod_revision`
//!   ([`Dcs::put_if_mod_revision`]);
//! * a stale `leader` key (no lease, or no such member) is removed with a compare-and-delete on
//!   its `mod_revision` ([`Dcs::delete_if_mod_revision`]).
//!
//! Two implementations: [`EtcdDcs`] (native gRPC to a real etcd) and [`MemoryDcs`] (in-process, on
//! tokio time, for fast agent tests).
//!
//! Errors are deliberately coarse: anything that is not a definite answer from the server is
//! [`DcsError::Unavailable`], so the HA logic treats it as "the DCS state is unknown" and never as a
//! verdict (Patroni issue #3572: failsafe mode demoted a primary on etcd's "no leader" error).

pub mod etcd;
pub mod memory;

pub use etcd::EtcdDcs;
pub use memory::MemoryDcs;

/// One key as read from the DCS.
///
/// Exists so callers see exactly what etcd stores: the revisions are Patroni's object "version"
/// (`mod_revision`) and the lease is a member's or leader's "session".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// Full key, e.g. `/service/demo/leader`.
    pub key: String,
    /// Raw value bytes (a member name, JSON, a system identifier, ...).
    pub value: Vec<u8>,
    /// Revision of the last write to this key; the CAS token for `config`/`failover`/`sync`.
    pub mod_revision: i64,
    /// Revision at which the key was created (0 never appears for an existing key).
    pub create_revision: i64,
    /// Id of the lease the key is attached to, 0 if none.
    pub lease: i64,
}

/// A consistent read of a prefix.
///
/// Exists so one HA cycle decides on a single point-in-time view of all cluster keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Store revision at which the read was served.
    pub revision: i64,
    /// Every key under the prefix, sorted by key.
    pub kvs: Vec<KeyValue>,
}

impl Snapshot {
    /// The entry for `key`, if present. A convenience for callers and tests.
    pub fn get(&self, key: &str) -> Option<&KeyValue> {
        self.kvs.iter().find(|kv| kv.key == key)
    }
}

/// Why a DCS operation failed.
///
/// Exists so the HA logic can tell "unknown" (retry, stay in failsafe) from "the lease is gone" (it must
/// re-grant and stop acting as the holder of the old lease).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DcsError {
    /// The DCS could not be reached or did not answer definitively: connection refused, timeout, no
    /// etcd leader, a broken stream, any transport error. The state of the DCS is unknown.
    #[error("DCS unavailable: {0}")]
    Unavailable(String),
    /// The lease does not exist (it expired or was revoked); keys attached to it are gone.
    #[error("lease not found")]
    LeaseNotFound,
    /// A definite, non-transient error (invalid argument, permission denied, bad credentials, ...).
    #[error("DCS error: {0}")]
    Other(String),
}

/// The operations pgkeel needs from etcd v3 (see the module docs for how Patroni uses each).
///
/// Every method is bounded by the implementation's request timeout, so a dead endpoint can never hang
/// the agent; a timeout is reported as [`DcsError::Unavailable`].
#[async_trait::async_trait]
pub trait Dcs: Send + Sync + 'static {
    /// Linearizable read of every key under `prefix`.
    async fn get_prefix(&self, prefix: &str) -> Result<Snapshot, DcsError>;
    /// Grants a lease of `ttl_secs`; returns its id.
    async fn grant_lease(&self, ttl_secs: i64) -> Result<i64, DcsError>;
    /// One keep-alive round trip; returns the TTL (s) the server granted. `Err(DcsError::LeaseNotFound)`
    /// if the lease expired.
    async fn keep_alive(&self, lease: i64) -> Result<i64, DcsError>;
    /// Revokes a lease (its keys vanish).
    async fn revoke_lease(&self, lease: i64) -> Result<(), DcsError>;
    /// Creates `key` only if it does not exist; true if created.
    async fn create_if_absent(
        &self,
        key: &str,
        value: &[u8],
        lease: Option<i64>,
    ) -> Result<bool, DcsError>;
    /// Unconditional put.
    async fn put(&self, key: &str, value: &[u8], lease: Option<i64>) -> Result<(), DcsError>;
    /// Put only if the current value equals `expected` (Patroni's leader update: re-attach to `lease`).
    /// True if written.
    async fn put_if_value(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        lease: Option<i64>,
    ) -> Result<bool, DcsError>;
    /// Put only if the key's mod_revision equals `mod_revision` (0 = key must not exist). True if written.
    async fn put_if_mod_revision(
        &self,
        key: &str,
        mod_revision: i64,
        value: &[u8],
    ) -> Result<bool, DcsError>;
    /// Delete only if the current value equals `expected`. True if deleted.
    async fn delete_if_value(&self, key: &str, expected: &[u8]) -> Result<bool, DcsError>;
    /// Delete only if the key's mod_revision equals `mod_revision`. True if deleted. Exists to
    /// remove a stale `leader` key seen in a snapshot without ever removing one written since.
    async fn delete_if_mod_revision(&self, key: &str, mod_revision: i64) -> Result<bool, DcsError>;
    /// Unconditional delete of one key.
    async fn delete(&self, key: &str) -> Result<(), DcsError>;
    /// Deletes every key under prefix (for `remove`).
    async fn delete_prefix(&self, prefix: &str) -> Result<(), DcsError>;
    /// Subscribes to changes under `prefix`: the receiver's value is bumped (a counter) after every
    /// change event. The implementation re-arms the watch itself after errors (backoff <= 1 s) and bumps
    /// the value once after every (re-)arm, including the first one, so the caller re-reads; a value
    /// >= 1 therefore means "the watch has been armed at least once". Never ends while the Dcs lives.
    fn watch_prefix(&self, prefix: &str) -> tokio::sync::watch::Receiver<u64>;
}

/// Reads every key of the cluster and parses it (unreadable values never fail the read).
pub async fn read_cluster(
    dcs: &dyn Dcs,
    layout: &pgkeel_ha::keys::KeyLayout,
) -> Result<pgkeel_ha::cluster::Cluster, DcsError> {
    let snap = dcs.get_prefix(layout.prefix()).await?;
    let raw: Vec<pgkeel_ha::keys::codec::RawKv<'_>> = snap
        .kvs
        .iter()
        .map(|kv| pgkeel_ha::keys::codec::RawKv {
            key: &kv.key,
            value: &kv.value,
            mod_revision: kv.mod_revision,
            lease: kv.lease,
        })
        .collect();
    Ok(pgkeel_ha::keys::codec::parse_cluster(layout, &raw))
}
