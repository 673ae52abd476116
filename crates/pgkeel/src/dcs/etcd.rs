//! [`EtcdDcs`]: the [`Dcs`] seam over native etcd v3 gRPC: tonic clients over code generated from
//! etcd's `.proto` files and committed in `pgkeel-etcd-proto` (so a build needs no protoc).
//!
//! * **Endpoints.** One gRPC channel per endpoint (`rpc::Endpoint`), and one *current* endpoint
//!   that all calls use (like Patroni's etcd3 client). An `Unavailable` answer or a timeout moves the
//!   current endpoint on to the next one; an error that proves the request was never processed
//!   (connection refused, "no leader") is retried at once on the next endpoint within the same call.
//!   (A single channel balancing over all endpoints with tower's p2c, as `etcd-client` builds it,
//!   kept sending some requests to a SIGKILLed member: "tcp connect error".) Channels dial lazily,
//!   so a down endpoint, or all of them, never fails [`EtcdDcs::connect`].
//! * **Timeouts.** Every call, including the authentication it may need first, runs under one
//!   `request_timeout`; expiry is [`DcsError::Unavailable`]. Requests carry etcd's `hasleader`
//!   metadata (`require_leader`), so a member that lost its raft leader refuses at once ("etcdserver:
//!   no leader") instead of stalling.
//! * **Leases.** One persistent keep-alive stream per lease, reopened after any error; each
//!   [`Dcs::keep_alive`] is one request/response on it, and opening a stream is one round trip as
//!   well (the first request goes out with the stream). A response TTL of 0 means the lease is gone.
//! * **CAS.** Transactions exactly as Patroni's `etcd3` backend builds them (see the module docs of
//!   [`crate::dcs`]).
//! * **Errors.** Only definite answers are semantic ([`DcsError::LeaseNotFound`], and
//!   [`DcsError::Other`] for invalid arguments, permission or credential errors); everything else is
//!   [`DcsError::Unavailable`].
//! * **Auth.** With a user, each endpoint fetches a token lazily before its first call and sends it
//!   with every request; when etcd refuses it as invalid or expired, one new token is fetched and
//!   the request retried once. The password is never logged or printed by `Debug`.

mod rpc;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pgkeel_etcd_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseRevokeRequest,
    WatchResponse, request_op,
};
use pgkeel_etcd_proto::mvccpb;
use tokio::sync::{Mutex, mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::{Code, Status, Streaming};

use self::rpc::{Conn, Endpoint, Guard};
use super::{Dcs, DcsError, KeyValue, Snapshot};

/// How long one keep-alive attempt may wait for a member before the next member is asked. A
/// healthy member answers in milliseconds; one that lost its etcd leader hangs, and a lease with
/// a short TTL cannot afford to wait the whole request bound on it.
const KEEP_ALIVE_ATTEMPT: Duration = Duration::from_millis(300);
/// Longest pause between two attempts to re-arm a broken watch.
const MAX_WATCH_BACKOFF: Duration = Duration::from_secs(1);
/// First pause after a watch broke.
const MIN_WATCH_BACKOFF: Duration = Duration::from_millis(100);

/// The endpoints plus the failover policy shared by calls, keep-alive streams and watch tasks.
struct Pool {
    /// All configured endpoints, in configuration order.
    endpoints: Vec<Endpoint>,
    /// Index of the endpoint calls go to first.
    current: AtomicUsize,
    /// User and password, if etcd auth is on. Never printed.
    credentials: Option<(String, String)>,
    /// Bound of every call.
    timeout: Duration,
}

/// Whether a failed request certainly had no effect on the server, so it can be retried elsewhere
/// even if it is a compare-and-set: the connection was never made, or the member refused it up
/// front because it has no raft leader (the `hasleader` check runs before the request is applied).
fn never_processed(status: &Status) -> bool {
    let text = status.message().to_ascii_lowercase();
    text.contains("connect error")
        || text.contains("connection refused")
        || text.contains("error trying to connect")
        || text.contains("no leader")
}

impl Pool {
    /// Moves the current endpoint past `failed`, unless another call already did.
    fn rotate_from(&self, failed: usize) {
        let next = (failed + 1) % self.endpoints.len();
        let _ = self
            .current
            .compare_exchange(failed, next, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// A handle on endpoint `i`, with an auth token if credentials are configured.
    async fn conn(&self, i: usize) -> Result<Conn, Status> {
        self.endpoints[i]
            .conn(self.credentials.as_ref(), None)
            .await
    }

    /// Runs `f` on `conn` (endpoint `i`); if etcd refuses the token as invalid or expired, fetches a
    /// new one (once for all concurrent callers) and runs `f` once more.
    async fn run_refreshing<T, F, Fut>(&self, i: usize, conn: Conn, f: &F) -> Result<T, Status>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let stale = conn.token.clone();
        match f(conn).await {
            Err(status) if self.credentials.is_some() && rpc::is_invalid_auth_token(&status) => {
                let conn = self.endpoints[i]
                    .conn(self.credentials.as_ref(), stale.as_ref())
                    .await?;
                f(conn).await
            }
            other => other,
        }
    }

    /// [`Pool::call_until`] with a deadline one request timeout from now.
    async fn call<T, F, Fut>(
        &self,
        what: &str,
        idempotent: bool,
        f: F,
    ) -> Result<(usize, T), DcsError>
    where
        F: Fn(Conn) -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, Status>> + Send,
        T: Send,
    {
        let deadline = Instant::now() + self.timeout;
        self.call_until(deadline, None, what, idempotent, f).await
    }

    /// Runs `f` against the current endpoint until `deadline`, failing over as described in the
    /// module docs. `idempotent` calls are also retried on the next endpoint after ambiguous
    /// failures; compare-and-set calls only after failures that prove nothing was applied. Returns the
    /// index of the endpoint that answered along with the result.
    async fn call_until<T, F, Fut>(
        &self,
        deadline: Instant,
        attempt_bound: Option<Duration>,
        what: &str,
        idempotent: bool,
        f: F,
    ) -> Result<(usize, T), DcsError>
    where
        F: Fn(Conn) -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, Status>> + Send,
        T: Send,
    {
        let n = self.endpoints.len();
        let first = self.current.load(Ordering::SeqCst) % n;
        let attempting = AtomicUsize::new(first);
        let attempts = async {
            let mut last = None;
            for k in 0..n {
                let i = (first + k) % n;
                attempting.store(i, Ordering::SeqCst);
                let res = match self.conn(i).await {
                    // Authenticating changes nothing: always safe to retry elsewhere.
                    Err(e) => Err((true, e)),
                    Ok(conn) => match attempt_bound {
                        // An idempotent call may give up on a member that does not answer
                        // (e.g. one without an etcd leader, which hangs) and ask the next.
                        Some(bound) if idempotent => {
                            match tokio::time::timeout(bound, self.run_refreshing(i, conn, &f))
                                .await
                            {
                                Ok(r) => r.map_err(|e| (true, e)),
                                Err(_) => Err((
                                    true,
                                    Status::unavailable(format!("no answer within {bound:?}")),
                                )),
                            }
                        }
                        _ => self
                            .run_refreshing(i, conn, &f)
                            .await
                            .map_err(|e| (idempotent || never_processed(&e), e)),
                    },
                };
                match res {
                    Ok(v) => return Ok((i, v)),
                    Err((retryable, e)) => {
                        let e = classify(e);
                        let DcsError::Unavailable(msg) = &e else {
                            return Err(e);
                        };
                        tracing::debug!(endpoint = %self.endpoints[i].url, error = %msg, "etcd {what} failed; switching endpoint");
                        self.rotate_from(i);
                        if !retryable {
                            return Err(e);
                        }
                        last = Some(DcsError::Unavailable(format!(
                            "{} ({msg})",
                            self.endpoints[i].url
                        )));
                    }
                }
            }
            Err(last.unwrap_or_else(|| DcsError::Unavailable("no etcd endpoints".to_owned())))
        };
        match tokio::time::timeout_at(deadline, attempts).await {
            Ok(res) => res,
            Err(_) => {
                let i = attempting.load(Ordering::SeqCst);
                self.rotate_from(i);
                Err(DcsError::Unavailable(format!(
                    "etcd {what} timed out after {:?} ({})",
                    self.timeout, self.endpoints[i].url
                )))
            }
        }
    }
}

/// An open keep-alive stream for one lease.
struct Keeper {
    /// The endpoint the stream runs on (rotated away from if the stream breaks).
    endpoint: usize,
    /// The lease kept alive.
    lease: i64,
    /// Feeds keep-alive requests into the stream (dropping it ends the stream).
    requests: mpsc::Sender<LeaseKeepAliveRequest>,
    /// Receives the matching responses.
    responses: Streaming<LeaseKeepAliveResponse>,
}

impl Keeper {
    /// Opens a keep-alive stream for `lease` on `conn`; the first request goes out with it, and its
    /// answer is returned: the granted TTL (0 if the lease is gone). The caller sets `endpoint`.
    async fn open(conn: Conn, lease: i64) -> Result<(i64, Keeper), Status> {
        let (requests, rx) = mpsc::channel(1);
        // The response headers of a bidirectional stream only arrive with the first answer, so
        // the first request must be queued before the call is made.
        requests
            .send(LeaseKeepAliveRequest { id: lease })
            .await
            .map_err(|_| Status::unavailable("keep-alive stream closed"))?;
        let responses = conn
            .lease()
            .lease_keep_alive(conn.request(ReceiverStream::new(rx)))
            .await?
            .into_inner();
        let mut keeper = Keeper {
            endpoint: 0,
            lease,
            requests,
            responses,
        };
        let ttl = keeper.receive().await?;
        Ok((ttl, keeper))
    }

    /// One keep-alive request/response on the open stream; returns the granted TTL.
    async fn round_trip(&mut self) -> Result<i64, DcsError> {
        self.requests
            .send(LeaseKeepAliveRequest { id: self.lease })
            .await
            .map_err(|_| DcsError::Unavailable("keep-alive stream closed".to_owned()))?;
        self.receive().await.map_err(classify)
    }

    /// The TTL of the next response.
    async fn receive(&mut self) -> Result<i64, Status> {
        match self.responses.message().await? {
            Some(resp) => Ok(resp.ttl),
            None => Err(Status::unavailable("keep-alive stream closed")),
        }
    }
}

/// [`Dcs`] implementation over a real etcd v3 cluster.
///
/// Exists as the production DCS: Patroni's `etcd3` key layout and lease discipline, spoken over native
/// gRPC instead of Patroni's JSON gateway (which etcd 3.6 no longer serves on the old prefixes).
pub struct EtcdDcs {
    /// Endpoints, clients and failover state; shared with the watch tasks.
    pool: Arc<Pool>,
    /// Open keep-alive streams by lease id.
    keepers: Mutex<BTreeMap<i64, Keeper>>,
    /// Stops the watch tasks when this value is dropped.
    _shutdown: DropGuard,
    /// Handed to the watch tasks.
    shutdown: CancellationToken,
}

impl std::fmt::Debug for EtcdDcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<&str> = self.pool.endpoints.iter().map(|e| e.url.as_str()).collect();
        f.debug_struct("EtcdDcs")
            .field("endpoints", &urls)
            .field("timeout", &self.pool.timeout)
            .field("user", &self.pool.credentials.as_ref().map(|(u, _)| u))
            .finish_non_exhaustive()
    }
}

/// Maps a gRPC status (etcd's answer, or tonic's report of a transport failure) to a [`DcsError`]:
/// semantic only where etcd answered definitively.
fn classify(status: Status) -> DcsError {
    let msg = status.message();
    if msg.contains("lease not found") {
        return DcsError::LeaseNotFound;
    }
    // Only definite refusals are semantic; Unavailable, DeadlineExceeded, Unknown, Unauthenticated
    // (an expired token), ResourceExhausted, ... all mean "unknown".
    match status.code() {
        Code::InvalidArgument
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::Unimplemented => DcsError::Other(format!("{:?}: {msg}", status.code())),
        code => DcsError::Unavailable(format!("{code:?}: {msg}")),
    }
}

impl EtcdDcs {
    /// Builds one channel per endpoint (`http://host:port`). Does no network I/O: an unreachable
    /// cluster shows up as [`DcsError::Unavailable`] on the calls, never here. Fails only on invalid
    /// URLs (or `https://`, which this build does not support). `request_timeout` bounds every call.
    pub async fn connect(
        endpoints: Vec<String>,
        username: Option<String>,
        password: Option<String>,
        request_timeout: Duration,
    ) -> Result<EtcdDcs, DcsError> {
        if endpoints.is_empty() {
            return Err(DcsError::Other("no etcd endpoints configured".to_owned()));
        }
        let pool = endpoints
            .into_iter()
            .map(|url| Endpoint::new(url, request_timeout))
            .collect::<Result<Vec<_>, _>>()?;
        let credentials = match (username, password) {
            (Some(u), p) if !u.is_empty() => Some((u, p.unwrap_or_default())),
            _ => None,
        };
        let shutdown = CancellationToken::new();
        Ok(EtcdDcs {
            pool: Arc::new(Pool {
                endpoints: pool,
                current: AtomicUsize::new(0),
                credentials,
                timeout: request_timeout,
            }),
            keepers: Mutex::new(BTreeMap::new()),
            _shutdown: shutdown.clone().drop_guard(),
            shutdown,
        })
    }

    /// Runs a transaction: if `key` passes `guard`, `then` is applied (never retried after an
    /// ambiguous failure). Reports whether the guard held.
    async fn txn(
        &self,
        what: &str,
        key: &str,
        guard: Guard<'_>,
        then: request_op::Request,
    ) -> Result<bool, DcsError> {
        let txn = rpc::txn(key, guard, then);
        let (_, succeeded) = self
            .pool
            .call(what, false, |conn| {
                let txn = txn.clone();
                async move {
                    let resp = conn.kv().txn(conn.request(txn)).await?;
                    Ok(resp.into_inner().succeeded)
                }
            })
            .await?;
        Ok(succeeded)
    }

    /// Keep-alive on the open stream, if any; reopens one (with failover) if it broke.
    async fn keep_alive_inner(&self, lease: i64) -> Result<i64, DcsError> {
        let deadline = Instant::now() + self.pool.timeout;
        let timed_out = || {
            DcsError::Unavailable(format!(
                "etcd lease keep-alive timed out after {:?}",
                self.pool.timeout
            ))
        };
        let mut keepers = tokio::time::timeout_at(deadline, self.keepers.lock())
            .await
            .map_err(|_| timed_out())?;
        // Taken out while in flight: if the timeout cancels us mid-request the stream is dropped, so a
        // late response can never be paired with the next request.
        if let Some(mut keeper) = keepers.remove(&lease) {
            let attempt_end = deadline.min(Instant::now() + KEEP_ALIVE_ATTEMPT);
            let reused = tokio::time::timeout_at(attempt_end, keeper.round_trip()).await;
            match reused {
                Ok(Ok(ttl)) if ttl > 0 => {
                    keepers.insert(lease, keeper);
                    return Ok(ttl);
                }
                Ok(Ok(_)) => return Err(DcsError::LeaseNotFound),
                Ok(Err(DcsError::LeaseNotFound)) => return Err(DcsError::LeaseNotFound),
                Ok(Err(e)) => {
                    tracing::debug!(lease, error = %e, "lease keep-alive stream broke; reopening");
                    self.pool.rotate_from(keeper.endpoint);
                }
                Err(_) => {
                    // No answer: that member may have lost its etcd leader. Reopen the
                    // stream on the next member within the remaining time.
                    tracing::debug!(lease, "lease keep-alive unanswered; trying the next member");
                    self.pool.rotate_from(keeper.endpoint);
                }
            }
        }
        // Opening the stream sends one keep-alive and yields its answer: the granted TTL, 0 if the
        // lease is gone. Idempotent, so an unanswered attempt moves on to the next member.
        let (endpoint, (ttl, mut keeper)) = self
            .pool
            .call_until(
                deadline,
                Some(KEEP_ALIVE_ATTEMPT),
                "lease keep-alive",
                true,
                |conn| Keeper::open(conn, lease),
            )
            .await?;
        if ttl <= 0 {
            return Err(DcsError::LeaseNotFound);
        }
        keeper.endpoint = endpoint;
        keepers.insert(lease, keeper);
        Ok(ttl)
    }
}

/// Converts an etcd key-value into ours.
fn convert(kv: mvccpb::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(&kv.key).into_owned(),
        value: kv.value,
        mod_revision: kv.mod_revision,
        create_revision: kv.create_revision,
        lease: kv.lease,
    }
}

#[async_trait::async_trait]
impl Dcs for EtcdDcs {
    async fn get_prefix(&self, prefix: &str) -> Result<Snapshot, DcsError> {
        let (_, snapshot) = self
            .pool
            .call("range", true, |conn| async move {
                let resp = conn
                    .kv()
                    .range(conn.request(rpc::range_prefix(prefix)))
                    .await?
                    .into_inner();
                Ok(Snapshot {
                    revision: resp.header.map_or(0, |h| h.revision),
                    kvs: resp.kvs.into_iter().map(convert).collect(),
                })
            })
            .await?;
        Ok(snapshot)
    }

    async fn grant_lease(&self, ttl_secs: i64) -> Result<i64, DcsError> {
        // Not idempotent, but a duplicate grant after an ambiguous failure only leaks a lease that
        // expires on its own; being able to get a lease during a member failure matters more.
        let (_, id) = self
            .pool
            .call("lease grant", true, |conn| async move {
                let request = LeaseGrantRequest {
                    ttl: ttl_secs,
                    id: 0,
                };
                Ok(conn
                    .lease()
                    .lease_grant(conn.request(request))
                    .await?
                    .into_inner()
                    .id)
            })
            .await?;
        Ok(id)
    }

    async fn keep_alive(&self, lease: i64) -> Result<i64, DcsError> {
        // Lock wait, reuse of the open stream and a reopen all share one request-timeout deadline.
        self.keep_alive_inner(lease).await
    }

    async fn revoke_lease(&self, lease: i64) -> Result<(), DcsError> {
        self.keepers.lock().await.remove(&lease);
        self.pool
            .call("lease revoke", false, |conn| async move {
                let request = LeaseRevokeRequest { id: lease };
                conn.lease()
                    .lease_revoke(conn.request(request))
                    .await
                    .map(|_| ())
            })
            .await?;
        Ok(())
    }

    async fn create_if_absent(
        &self,
        key: &str,
        value: &[u8],
        lease: Option<i64>,
    ) -> Result<bool, DcsError> {
        let put = request_op::Request::RequestPut(rpc::put(key, value, lease));
        self.txn("create-if-absent", key, Guard::CreateRevision(0), put)
            .await
    }

    async fn put(&self, key: &str, value: &[u8], lease: Option<i64>) -> Result<(), DcsError> {
        self.pool
            .call("put", true, |conn| async move {
                conn.kv()
                    .put(conn.request(rpc::put(key, value, lease)))
                    .await
                    .map(|_| ())
            })
            .await?;
        Ok(())
    }

    async fn put_if_value(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        lease: Option<i64>,
    ) -> Result<bool, DcsError> {
        let put = request_op::Request::RequestPut(rpc::put(key, value, lease));
        self.txn("put-if-value", key, Guard::Value(expected), put)
            .await
    }

    async fn put_if_mod_revision(
        &self,
        key: &str,
        mod_revision: i64,
        value: &[u8],
    ) -> Result<bool, DcsError> {
        let put = request_op::Request::RequestPut(rpc::put(key, value, None));
        self.txn(
            "put-if-mod-revision",
            key,
            Guard::ModRevision(mod_revision),
            put,
        )
        .await
    }

    async fn delete_if_value(&self, key: &str, expected: &[u8]) -> Result<bool, DcsError> {
        let delete = request_op::Request::RequestDeleteRange(rpc::delete(key, false));
        self.txn("delete-if-value", key, Guard::Value(expected), delete)
            .await
    }

    async fn delete_if_mod_revision(&self, key: &str, mod_revision: i64) -> Result<bool, DcsError> {
        let delete = request_op::Request::RequestDeleteRange(rpc::delete(key, false));
        self.txn(
            "delete-if-mod-revision",
            key,
            Guard::ModRevision(mod_revision),
            delete,
        )
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), DcsError> {
        self.pool
            .call("delete", true, |conn| async move {
                conn.kv()
                    .delete_range(conn.request(rpc::delete(key, false)))
                    .await
                    .map(|_| ())
            })
            .await?;
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<(), DcsError> {
        self.pool
            .call("delete prefix", true, |conn| async move {
                conn.kv()
                    .delete_range(conn.request(rpc::delete(prefix, true)))
                    .await
                    .map(|_| ())
            })
            .await?;
        Ok(())
    }

    /// Spawns the watch task on the current tokio runtime (must be called inside one).
    fn watch_prefix(&self, prefix: &str) -> watch::Receiver<u64> {
        let (tx, rx) = watch::channel(0);
        let task = WatchTask {
            pool: Arc::clone(&self.pool),
            prefix: prefix.to_owned(),
            tx,
        };
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = task.run() => {}
            }
        });
        rx
    }
}

/// An armed watch: the request side must stay open for as long as the responses are read (etcd
/// ends the watch when the client closes its half of the stream).
struct ArmedWatch {
    /// Kept only so the request stream stays open.
    _requests: mpsc::Sender<pgkeel_etcd_proto::etcdserverpb::WatchRequest>,
    /// Watch responses (events, cancellation).
    responses: Streaming<WatchResponse>,
}

/// The background task behind one [`Dcs::watch_prefix`] subscription.
struct WatchTask {
    /// Endpoints and failover state shared with the [`EtcdDcs`].
    pool: Arc<Pool>,
    /// Watched prefix.
    prefix: String,
    /// Bumped once per (re-)arm and once per response carrying events.
    tx: watch::Sender<u64>,
}

impl WatchTask {
    /// Arms, follows and re-arms the watch until every receiver is gone.
    async fn run(self) {
        let mut backoff = MIN_WATCH_BACKOFF;
        while !self.tx.is_closed() {
            let endpoint = self.pool.current.load(Ordering::SeqCst) % self.pool.endpoints.len();
            match self.follow(endpoint).await {
                Ok(()) => return, // receivers gone
                Err((armed, e)) => {
                    if armed {
                        backoff = MIN_WATCH_BACKOFF;
                    }
                    self.pool.rotate_from(endpoint);
                    tracing::debug!(prefix = %self.prefix, endpoint = %self.pool.endpoints[endpoint].url, error = %e, "etcd watch broke; re-arming in {backoff:?}");
                }
            }
            tokio::select! {
                () = self.tx.closed() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_WATCH_BACKOFF);
        }
    }

    /// Opens the watch stream on `conn` and sends the create request.
    async fn open(conn: Conn, prefix: &str) -> Result<ArmedWatch, Status> {
        let (requests, rx) = mpsc::channel(1);
        requests
            .send(rpc::watch_prefix(prefix))
            .await
            .map_err(|_| Status::unavailable("watch stream closed"))?;
        let responses = conn
            .watch()
            .watch(conn.request(ReceiverStream::new(rx)))
            .await?
            .into_inner();
        Ok(ArmedWatch {
            _requests: requests,
            responses,
        })
    }

    /// One armed watch on `endpoint`. `Ok` when the receivers are gone; `Err((was_armed, why))` when
    /// it broke.
    async fn follow(&self, endpoint: usize) -> Result<(), (bool, DcsError)> {
        let prefix = self.prefix.as_str();
        let arm = async {
            let conn = self.pool.conn(endpoint).await.map_err(classify)?;
            let mut watch = self
                .pool
                .run_refreshing(endpoint, conn, &|conn| Self::open(conn, prefix))
                .await
                .map_err(classify)?;
            // The first response confirms creation; only then are events guaranteed to be delivered.
            match watch.responses.message().await.map_err(classify)? {
                Some(resp) if resp.created && !resp.canceled => Ok(watch),
                Some(resp) => Err(DcsError::Unavailable(format!(
                    "watch not created: {}",
                    resp.cancel_reason
                ))),
                None => Err(DcsError::Unavailable("watch stream closed".to_owned())),
            }
        };
        let mut watch = match tokio::time::timeout(self.pool.timeout, arm).await {
            Ok(Ok(watch)) => watch,
            Ok(Err(e)) => return Err((false, e)),
            Err(_) => {
                return Err((
                    false,
                    DcsError::Unavailable("arming the watch timed out".to_owned()),
                ));
            }
        };
        self.tx.send_modify(|v| *v += 1);
        loop {
            tokio::select! {
                () = self.tx.closed() => return Ok(()),
                msg = watch.responses.message() => match msg {
                    Ok(Some(resp)) => {
                        if resp.canceled {
                            return Err((true, DcsError::Unavailable(format!("watch canceled: {}", resp.cancel_reason))));
                        }
                        if !resp.events.is_empty() {
                            self.tx.send_modify(|v| *v += 1);
                        }
                    }
                    Ok(None) => return Err((true, DcsError::Unavailable("watch stream ended".to_owned()))),
                    Err(e) => return Err((true, classify(e))),
                },
            }
        }
    }
}
