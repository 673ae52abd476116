//! The DCS seam: etcd v3 with Patroni's key layout. Values are raw bytes here; parsing lives
//! in `pgkeel_ha::keys::codec`.

/// One key as read from the DCS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// Full key path.
    pub key: String,
    /// Raw value.
    pub value: Vec<u8>,
    /// Revision of the last modification.
    pub mod_revision: i64,
    /// Revision of creation.
    pub create_revision: i64,
    /// Attached lease (0: none).
    pub lease: i64,
}

/// A consistent read of a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Store revision of the read.
    pub revision: i64,
    /// Every key under the prefix.
    pub kvs: Vec<KeyValue>,
}

/// DCS failures. Anything that is not a semantic answer counts as `Unavailable`.
#[derive(Debug, thiserror::Error)]
pub enum DcsError {
    /// Unreachable, timed out, no etcd leader, or any transport error.
    #[error("DCS is not accessible: {0}")]
    Unavailable(String),
    /// The lease expired or was revoked.
    #[error("lease not found")]
    LeaseNotFound,
    /// Any other error the DCS returned.
    #[error("DCS error: {0}")]
    Other(String),
}

/// The operations the agent and pgkeelctl need from the DCS; every call is bounded in time.
#[async_trait::async_trait]
pub trait Dcs: Send + Sync + 'static {
    /// Linearizable read of every key under `prefix`.
    async fn get_prefix(&self, prefix: &str) -> Result<Snapshot, DcsError>;
    /// Grants a lease of `ttl_secs`; returns its id.
    async fn grant_lease(&self, ttl_secs: i64) -> Result<i64, DcsError>;
    /// One keep-alive round trip; returns the TTL (s) granted.
    async fn keep_alive(&self, lease: i64) -> Result<i64, DcsError>;
    /// Revokes a lease (its keys vanish).
    async fn revoke_lease(&self, lease: i64) -> Result<(), DcsError>;
    /// Creates `key` only if absent; true if created.
    async fn create_if_absent(
        &self,
        key: &str,
        value: &[u8],
        lease: Option<i64>,
    ) -> Result<bool, DcsError>;
    /// Unconditional put.
    async fn put(&self, key: &str, value: &[u8], lease: Option<i64>) -> Result<(), DcsError>;
    /// Put only if the current value equals `expected`; true if written.
    async fn put_if_value(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        lease: Option<i64>,
    ) -> Result<bool, DcsError>;
    /// Put only if mod_revision matches (0 = must not exist); true if written.
    async fn put_if_mod_revision(
        &self,
        key: &str,
        mod_revision: i64,
        value: &[u8],
    ) -> Result<bool, DcsError>;
    /// Delete only if the current value equals `expected`; true if deleted.
    async fn delete_if_value(&self, key: &str, expected: &[u8]) -> Result<bool, DcsError>;
    /// Unconditional delete of one key.
    async fn delete(&self, key: &str) -> Result<(), DcsError>;
    /// Deletes every key under `prefix`.
    async fn delete_prefix(&self, prefix: &str) -> Result<(), DcsError>;
    /// A receiver bumped after every change under `prefix` (and after each watch re-arm).
    fn watch_prefix(&self, prefix: &str) -> tokio::sync::watch::Receiver<u64>;
}
