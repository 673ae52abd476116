//! [`MemoryDcs`]: an in-process [`Dcs`] with etcd's semantics, for fast agent tests.
//!
//! Revisions, leases, compare-and-set and prefix watches behave like etcd v3 (one store revision per
//! write; a lease's keys vanish together when it expires; a `mod_revision` of 0 means "absent"). Lease
//! deadlines run on **tokio time**, so tests under `tokio::time::pause()` / `start_paused` expire leases
//! in virtual time. [`MemoryDcs::set_unavailable`] injects an outage: every call then fails with
//! [`DcsError::Unavailable`] while leases keep ticking, as they would on a real etcd the node cannot
//! reach.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, watch};
use tokio::time::{Duration, Instant};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{Dcs, DcsError, KeyValue, Snapshot};

/// A live lease.
#[derive(Debug, Clone, Copy)]
struct Lease {
    /// The TTL it was granted with, in seconds (what a keep-alive restores).
    ttl: i64,
    /// When it expires unless kept alive (tokio time).
    deadline: Instant,
}

/// The whole store, guarded by one mutex (it is never held across an await).
#[derive(Debug)]
struct State {
    /// Current store revision; etcd starts an empty store at 1.
    revision: i64,
    /// Next lease id to hand out.
    next_lease: i64,
    /// The keys, sorted like etcd's range results.
    kvs: BTreeMap<String, KeyValue>,
    /// Live leases by id.
    leases: BTreeMap<i64, Lease>,
    /// Prefix watchers; closed ones are pruned on the next notification.
    watchers: Vec<(String, watch::Sender<u64>)>,
}

impl State {
    /// Bumps every watcher whose prefix covers `key`.
    fn notify(&mut self, key: &str) {
        self.watchers.retain(|(_, tx)| !tx.is_closed());
        for (prefix, tx) in &self.watchers {
            if key.starts_with(prefix.as_str()) {
                tx.send_modify(|v| *v += 1);
            }
        }
    }

    /// Bumps every watcher (used when an injected outage ends, as a re-armed etcd watch would).
    fn notify_all(&mut self) {
        self.watchers.retain(|(_, tx)| !tx.is_closed());
        for (_, tx) in &self.watchers {
            tx.send_modify(|v| *v += 1);
        }
    }

    /// Deletes `keys` in one revision (like etcd's lease revocation or a range delete).
    fn delete_keys(&mut self, keys: Vec<String>) {
        if keys.is_empty() {
            return;
        }
        self.revision += 1;
        for key in keys {
            self.kvs.remove(&key);
            self.notify(&key);
        }
    }

    /// Drops a lease and every key attached to it.
    fn drop_lease(&mut self, id: i64) {
        self.leases.remove(&id);
        let keys = self
            .kvs
            .values()
            .filter(|kv| kv.lease == id)
            .map(|kv| kv.key.clone())
            .collect();
        self.delete_keys(keys);
    }

    /// Expires every lease whose deadline has passed.
    fn expire(&mut self, now: Instant) {
        let expired: Vec<i64> = self
            .leases
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            self.drop_lease(id);
        }
    }

    /// Fails with `LeaseNotFound` unless `lease` (if any) is live.
    fn check_lease(&self, lease: Option<i64>) -> Result<i64, DcsError> {
        match lease {
            None | Some(0) => Ok(0),
            Some(id) if self.leases.contains_key(&id) => Ok(id),
            Some(_) => Err(DcsError::LeaseNotFound),
        }
    }

    /// Writes `key` at a new revision, keeping its create_revision if it exists.
    fn write(&mut self, key: &str, value: &[u8], lease: i64) {
        self.revision += 1;
        let revision = self.revision;
        let create_revision = self.kvs.get(key).map_or(revision, |kv| kv.create_revision);
        self.kvs.insert(
            key.to_owned(),
            KeyValue {
                key: key.to_owned(),
                value: value.to_vec(),
                mod_revision: revision,
                create_revision,
                lease,
            },
        );
        self.notify(key);
    }
}

/// Shared between the [`MemoryDcs`] handle and (weakly) its lease reaper task.
struct Inner {
    /// The store.
    state: Mutex<State>,
    /// Wakes the reaper when a lease deadline may have moved earlier.
    wake: Arc<Notify>,
    /// Injected outage: every call fails with `Unavailable` while set.
    unavailable: AtomicBool,
    /// Stops the reaper task when the store is dropped.
    _reaper: Option<DropGuard>,
}

/// An in-process [`Dcs`] with etcd v3 semantics on tokio time.
///
/// Exists so the agent's HA loop can be tested in milliseconds and deterministically (paused time),
/// without starting etcd. The contract suite in `tests/dcs_contract.rs` runs against both this and a
/// real etcd cluster so the two cannot drift apart.
pub struct MemoryDcs {
    /// The store, shared with the reaper task.
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryDcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryDcs").finish_non_exhaustive()
    }
}

impl Default for MemoryDcs {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryDcs {
    /// Creates an empty store. Inside a tokio runtime it also spawns a reaper task that expires leases
    /// on time (so watchers see expiries without any further call); outside one, leases are only
    /// expired lazily, at the start of every call.
    pub fn new() -> Self {
        let wake = Arc::new(Notify::new());
        let token = CancellationToken::new();
        let has_runtime = tokio::runtime::Handle::try_current().is_ok();
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                revision: 1,
                next_lease: 0x1000,
                kvs: BTreeMap::new(),
                leases: BTreeMap::new(),
                watchers: Vec::new(),
            }),
            wake: Arc::clone(&wake),
            unavailable: AtomicBool::new(false),
            _reaper: has_runtime.then(|| token.clone().drop_guard()),
        });
        if has_runtime {
            tokio::spawn(reaper(Arc::downgrade(&inner), wake, token));
        }
        MemoryDcs { inner }
    }

    /// Injects (`true`) or ends (`false`) a DCS outage. While it lasts every call returns
    /// [`DcsError::Unavailable`]; leases keep running down. Ending it bumps every watcher once, as a
    /// re-armed etcd watch would.
    pub fn set_unavailable(&self, unavailable: bool) {
        let was = self.inner.unavailable.swap(unavailable, Ordering::SeqCst);
        if was && !unavailable {
            self.lock().notify_all();
        }
    }

    /// Locks the store (ignoring poisoning: the state is always left consistent).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks the store for one operation: fails during an injected outage, expires due leases first.
    fn begin(&self) -> Result<MutexGuard<'_, State>, DcsError> {
        if self.inner.unavailable.load(Ordering::SeqCst) {
            return Err(DcsError::Unavailable(
                "injected outage (MemoryDcs)".to_owned(),
            ));
        }
        let mut state = self.lock();
        state.expire(Instant::now());
        Ok(state)
    }
}

/// Expires leases on time. Holds only a weak reference, and stops when the store is dropped.
async fn reaper(inner: std::sync::Weak<Inner>, wake: Arc<Notify>, token: CancellationToken) {
    loop {
        let next = {
            let Some(inner) = inner.upgrade() else { return };
            let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.expire(Instant::now());
            state.leases.values().map(|l| l.deadline).min()
        };
        let sleep = async {
            match next {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = token.cancelled() => return,
            () = wake.notified() => {}
            () = sleep => {}
        }
    }
}

#[async_trait::async_trait]
impl Dcs for MemoryDcs {
    async fn get_prefix(&self, prefix: &str) -> Result<Snapshot, DcsError> {
        let state = self.begin()?;
        let kvs = state
            .kvs
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, kv)| kv.clone())
            .collect();
        Ok(Snapshot {
            revision: state.revision,
            kvs,
        })
    }

    async fn grant_lease(&self, ttl_secs: i64) -> Result<i64, DcsError> {
        if ttl_secs <= 0 {
            return Err(DcsError::Other(format!("invalid lease TTL {ttl_secs}")));
        }
        let mut state = self.begin()?;
        state.next_lease += 1;
        let id = state.next_lease;
        let deadline = Instant::now() + Duration::from_secs(ttl_secs.unsigned_abs());
        state.leases.insert(
            id,
            Lease {
                ttl: ttl_secs,
                deadline,
            },
        );
        drop(state);
        self.inner.wake.notify_one();
        Ok(id)
    }

    async fn keep_alive(&self, lease: i64) -> Result<i64, DcsError> {
        let mut state = self.begin()?;
        let l = state
            .leases
            .get_mut(&lease)
            .ok_or(DcsError::LeaseNotFound)?;
        l.deadline = Instant::now() + Duration::from_secs(l.ttl.unsigned_abs());
        Ok(l.ttl)
    }

    async fn revoke_lease(&self, lease: i64) -> Result<(), DcsError> {
        let mut state = self.begin()?;
        if !state.leases.contains_key(&lease) {
            return Err(DcsError::LeaseNotFound);
        }
        state.drop_lease(lease);
        Ok(())
    }

    async fn create_if_absent(
        &self,
        key: &str,
        value: &[u8],
        lease: Option<i64>,
    ) -> Result<bool, DcsError> {
        let mut state = self.begin()?;
        if state.kvs.contains_key(key) {
            return Ok(false);
        }
        let lease = state.check_lease(lease)?;
        state.write(key, value, lease);
        Ok(true)
    }

    async fn put(&self, key: &str, value: &[u8], lease: Option<i64>) -> Result<(), DcsError> {
        let mut state = self.begin()?;
        let lease = state.check_lease(lease)?;
        state.write(key, value, lease);
        Ok(())
    }

    async fn put_if_value(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        lease: Option<i64>,
    ) -> Result<bool, DcsError> {
        let mut state = self.begin()?;
        if state.kvs.get(key).is_none_or(|kv| kv.value != expected) {
            return Ok(false);
        }
        let lease = state.check_lease(lease)?;
        state.write(key, value, lease);
        Ok(true)
    }

    async fn put_if_mod_revision(
        &self,
        key: &str,
        mod_revision: i64,
        value: &[u8],
    ) -> Result<bool, DcsError> {
        let mut state = self.begin()?;
        let current = state.kvs.get(key).map_or(0, |kv| kv.mod_revision);
        if current != mod_revision {
            return Ok(false);
        }
        state.write(key, value, 0);
        Ok(true)
    }

    async fn delete_if_value(&self, key: &str, expected: &[u8]) -> Result<bool, DcsError> {
        let mut state = self.begin()?;
        if state.kvs.get(key).is_none_or(|kv| kv.value != expected) {
            return Ok(false);
        }
        state.delete_keys(vec![key.to_owned()]);
        Ok(true)
    }

    async fn delete_if_mod_revision(&self, key: &str, mod_revision: i64) -> Result<bool, DcsError> {
        let mut state = self.begin()?;
        if state
            .kvs
            .get(key)
            .is_none_or(|kv| kv.mod_revision != mod_revision)
        {
            return Ok(false);
        }
        state.delete_keys(vec![key.to_owned()]);
        Ok(true)
    }

    async fn delete(&self, key: &str) -> Result<(), DcsError> {
        let mut state = self.begin()?;
        if state.kvs.contains_key(key) {
            state.delete_keys(vec![key.to_owned()]);
        }
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<(), DcsError> {
        let mut state = self.begin()?;
        let keys = state
            .kvs
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        state.delete_keys(keys);
        Ok(())
    }

    fn watch_prefix(&self, prefix: &str) -> watch::Receiver<u64> {
        let (tx, rx) = watch::channel(0);
        // Armed at once; bump so the caller (re-)reads, as after an etcd (re-)arm.
        tx.send_modify(|v| *v += 1);
        self.lock().watchers.push((prefix.to_owned(), tx));
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reaper expires a lease on time and wakes watchers without any further call.
    /// (Real time: the workspace's tokio lacks `test-util`, so `start_paused` is unavailable.)
    #[tokio::test]
    async fn lease_expiry_wakes_watchers_without_calls() {
        let dcs = MemoryDcs::new();
        let mut rx = dcs.watch_prefix("/s/");
        rx.borrow_and_update();
        let lease = dcs.grant_lease(1).await.unwrap();
        assert!(
            dcs.create_if_absent("/s/leader", b"a", Some(lease))
                .await
                .unwrap()
        );
        rx.changed().await.unwrap();
        let start = Instant::now();
        tokio::time::timeout(Duration::from_secs(3), rx.changed())
            .await
            .unwrap()
            .unwrap(); // the expiry, delivered by the reaper alone
        assert!(start.elapsed() >= Duration::from_millis(900));
        assert!(dcs.get_prefix("/s/").await.unwrap().kvs.is_empty());
        assert_eq!(dcs.keep_alive(lease).await, Err(DcsError::LeaseNotFound));
    }

    #[tokio::test]
    async fn injected_outage() {
        let dcs = MemoryDcs::new();
        dcs.set_unavailable(true);
        assert!(matches!(
            dcs.get_prefix("/").await,
            Err(DcsError::Unavailable(_))
        ));
        dcs.set_unavailable(false);
        assert!(dcs.get_prefix("/").await.is_ok());
    }
}
