//! [`EtcdDcs`]: the [`Dcs`] seam over native etcd v3 gRPC (`etcd-client`).
//!
//! * **Endpoints.** One `etcd-client` [`Client`] per endpoint, and one *current* endpoint that all
//!   calls use (like Patroni's etcd3 client). An `Unavailable` answer or a timeout moves the current
//!   endpoint on to the next one; an error that proves the request was never processed (connection
//!   refused, "no leader") is retried at once on the next endpoint within the same call. (A single
//!   `etcd-client` client over all endpoints balances with tower's p2c, which kept sending some
//!   requests to a SIGKILLed member: "tcp connect error".) Building the clients does no I/O, so a
//!   down endpoint, or all of them, never fails [`EtcdDcs::connect`].
//! * **Timeouts.** Every call, including the authentication it may need first, runs under one
//!   `request_timeout`; expiry is [`DcsError::Unavailable`]. Requests carry etcd's `hasleader`
//!   metadata (`require_leader`), so a member that lost its raft leader refuses at once ("etcdserver:
//!   no leader") instead of stalling.
//! * **Leases.** One persistent keep-alive stream per lease, reopened after any error; each
//!   [`Dcs::keep_alive`] is one request/response on it (a reopen costs one extra round trip, because
//!   `etcd-client` consumes the first response). A response TTL of 0 means the lease is gone.
//! * **CAS.** Transactions exactly as Patroni's `etcd3` backend builds them (see the module docs of
//!   [`crate::dcs`]).
//! * **Errors.** Only definite answers are semantic ([`DcsError::LeaseNotFound`], and
//!   [`DcsError::Other`] for invalid arguments, permission or credential errors); everything else is
//!   [`DcsError::Unavailable`].
//! * **Auth.** With a user, the token is fetched lazily before the first call (and re-fetched when it
//!   expires); the password is never logged or printed by `Debug`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, LeaseKeepAliveStream,
    LeaseKeeper, PutOptions, Txn, TxnOp, WatchOptions,
};
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{Dcs, DcsError, KeyValue, Snapshot};

/// How long one keep-alive attempt may wait for a member before the next member is asked. A
/// healthy member answers in milliseconds; one that lost its etcd leader hangs, and a lease with
/// a short TTL cannot afford to wait the whole request bound on it.
const KEEP_ALIVE_ATTEMPT: Duration = Duration::from_millis(300);
/// Longest pause between two attempts to re-arm a broken watch.
const MAX_WATCH_BACKOFF: Duration = Duration::from_secs(1);
/// First pause after a watch broke.
const MIN_WATCH_BACKOFF: Duration = Duration::from_millis(100);

/// gRPC status codes that are definite answers (see `classify`).
const GRPC_INVALID_ARGUMENT: i32 = 3;
/// See [`GRPC_INVALID_ARGUMENT`].
const GRPC_ALREADY_EXISTS: i32 = 6;
/// See [`GRPC_INVALID_ARGUMENT`].
const GRPC_PERMISSION_DENIED: i32 = 7;
/// See [`GRPC_INVALID_ARGUMENT`].
const GRPC_FAILED_PRECONDITION: i32 = 9;
/// See [`GRPC_INVALID_ARGUMENT`].
const GRPC_OUT_OF_RANGE: i32 = 11;
/// See [`GRPC_INVALID_ARGUMENT`].
const GRPC_UNIMPLEMENTED: i32 = 12;

/// One endpoint: its URL, its client, and whether that client holds an auth token yet.
struct Endpoint {
    /// `http://host:port`, for messages.
    url: String,
    /// A client talking to this endpoint only.
    client: Client,
    /// Whether the credentials were exchanged for a token on this client (lazily, on first use).
    authenticated: Mutex<bool>,
}

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
fn never_processed(err: &etcd_client::Error) -> bool {
    let text = match err {
        etcd_client::Error::GRpcStatus(status) => status.message().to_ascii_lowercase(),
        etcd_client::Error::TransportError(e) => e.to_string().to_ascii_lowercase(),
        _ => return false,
    };
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

    /// The client of endpoint `i`, authenticated first if credentials are configured.
    async fn client_at(&self, i: usize) -> Result<Client, etcd_client::Error> {
        let endpoint = &self.endpoints[i];
        let mut client = endpoint.client.clone();
        if let Some((user, password)) = &self.credentials {
            let mut done = endpoint.authenticated.lock().await;
            if !*done {
                client
                    .update_user(Some((user.clone(), password.clone())))
                    .await?;
                *done = true;
            }
        }
        Ok(client)
    }

    /// [`Pool::call_until`] with a deadline one request timeout from now.
    async fn call<T, F, Fut>(
        &self,
        what: &str,
        idempotent: bool,
        f: F,
    ) -> Result<(usize, T), DcsError>
    where
        F: Fn(Client) -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, etcd_client::Error>> + Send,
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
        F: Fn(Client) -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, etcd_client::Error>> + Send,
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
                let res = match self.client_at(i).await {
                    // Authenticating changes nothing: always safe to retry elsewhere.
                    Err(e) => Err((true, e)),
                    Ok(client) => match attempt_bound {
                        // An idempotent call may give up on a member that does not answer
                        // (e.g. one without an etcd leader, which hangs) and ask the next.
                        Some(bound) if idempotent => {
                            match tokio::time::timeout(bound, f(client)).await {
                                Ok(r) => r.map_err(|e| (true, e)),
                                Err(_) => Err((
                                    true,
                                    etcd_client::Error::LeaseKeepAliveError(format!(
                                        "no answer within {bound:?}"
                                    )),
                                )),
                            }
                        }
                        _ => f(client)
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
    /// Sends keep-alive requests on the stream.
    keeper: LeaseKeeper,
    /// Receives the matching responses.
    stream: LeaseKeepAliveStream,
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

/// Maps an `etcd-client` error to a [`DcsError`]: semantic only where etcd answered definitively.
fn classify(err: etcd_client::Error) -> DcsError {
    use etcd_client::Error as E;
    match err {
        E::GRpcStatus(status) => {
            let msg = status.message();
            if msg.contains("lease not found") {
                return DcsError::LeaseNotFound;
            }
            // tonic is not a direct dependency, so match the numeric gRPC codes: only definite
            // refusals are semantic; Unavailable, DeadlineExceeded, Unknown, Unauthenticated (an
            // expired token), ResourceExhausted, ... all mean "unknown".
            match i32::from(status.code()) {
                GRPC_INVALID_ARGUMENT
                | GRPC_ALREADY_EXISTS
                | GRPC_PERMISSION_DENIED
                | GRPC_FAILED_PRECONDITION
                | GRPC_OUT_OF_RANGE
                | GRPC_UNIMPLEMENTED => DcsError::Other(format!("{:?}: {msg}", status.code())),
                _ => DcsError::Unavailable(format!("{:?}: {msg}", status.code())),
            }
        }
        E::LeaseKeepAliveError(msg) if msg.contains("lease not found") => DcsError::LeaseNotFound,
        E::InvalidArgs(msg) => DcsError::Other(format!("invalid arguments: {msg}")),
        E::InvalidUri(e) => DcsError::Other(format!("invalid etcd URL: {e}")),
        E::Utf8Error(e) => DcsError::Other(format!("invalid UTF-8: {e}")),
        E::InvalidMetadataValue(e) => DcsError::Other(format!("invalid metadata: {e}")),
        E::EndpointsNotManaged => DcsError::Other("endpoints not managed".to_owned()),
        other => DcsError::Unavailable(other.to_string()),
    }
}

impl EtcdDcs {
    /// Builds one client per endpoint (`http://host:port`). Does no network I/O: an unreachable
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
        let options = ConnectOptions::new()
            .with_connect_timeout(request_timeout.min(Duration::from_secs(2)))
            // etcd's default keepalive enforcement rejects pings more often than every 5 s.
            .with_keep_alive(
                Duration::from_secs(10),
                request_timeout.max(Duration::from_secs(1)),
            )
            .with_keep_alive_while_idle(false)
            .with_require_leader(true)
            .with_auto_token_refresh(true);
        let mut pool = Vec::with_capacity(endpoints.len());
        for url in endpoints {
            // Without credentials `connect` does no I/O (the channel dials lazily).
            let client = Client::connect([url.as_str()], Some(options.clone()))
                .await
                .map_err(classify)?;
            pool.push(Endpoint {
                url,
                client,
                authenticated: Mutex::new(false),
            });
        }
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

    /// Runs a transaction (never retried after an ambiguous failure) and reports whether its compare
    /// held.
    async fn txn(&self, what: &str, txn: Txn) -> Result<bool, DcsError> {
        let (_, succeeded) = self
            .pool
            .call(what, false, |client| {
                let txn = txn.clone();
                async move { client.kv_client().txn(txn).await.map(|r| r.succeeded()) }
            })
            .await?;
        Ok(succeeded)
    }

    /// One keep-alive request/response on `keeper`; returns the granted TTL.
    async fn round_trip(keeper: &mut Keeper) -> Result<i64, DcsError> {
        keeper.keeper.keep_alive().await.map_err(classify)?;
        match keeper.stream.message().await.map_err(classify)? {
            Some(resp) => Ok(resp.ttl()),
            None => Err(DcsError::Unavailable("keep-alive stream closed".to_owned())),
        }
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
            let reused = tokio::time::timeout_at(attempt_end, Self::round_trip(&mut keeper)).await;
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
        // Opening the stream already sends one keep-alive, and fails with "lease not found" if the
        // lease is gone; its response is consumed by `etcd-client`, so one more round trip yields the
        // granted TTL. Both are idempotent.
        let (endpoint, (ttl, keeper, stream)) = self
            .pool
            .call_until(
                deadline,
                Some(KEEP_ALIVE_ATTEMPT),
                "lease keep-alive",
                true,
                |client| async move {
                    let (mut keeper, mut stream) = client.lease_client().keep_alive(lease).await?;
                    keeper.keep_alive().await?;
                    match stream.message().await? {
                        Some(resp) => Ok((resp.ttl(), keeper, stream)),
                        None => Err(etcd_client::Error::LeaseKeepAliveError(
                            "keep-alive stream closed".to_owned(),
                        )),
                    }
                },
            )
            .await?;
        if ttl <= 0 {
            return Err(DcsError::LeaseNotFound);
        }
        keepers.insert(
            lease,
            Keeper {
                endpoint,
                keeper,
                stream,
            },
        );
        Ok(ttl)
    }
}

/// Converts an etcd key-value into ours.
fn convert(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        mod_revision: kv.mod_revision(),
        create_revision: kv.create_revision(),
        lease: kv.lease(),
    }
}

/// Put options attaching `lease` (if any).
fn put_options(lease: Option<i64>) -> Option<PutOptions> {
    match lease {
        Some(id) if id != 0 => Some(PutOptions::new().with_lease(id)),
        _ => None,
    }
}

#[async_trait::async_trait]
impl Dcs for EtcdDcs {
    async fn get_prefix(&self, prefix: &str) -> Result<Snapshot, DcsError> {
        let (_, snapshot) = self
            .pool
            .call("range", true, |client| async move {
                let resp = client
                    .kv_client()
                    .get(prefix, Some(GetOptions::new().with_prefix()))
                    .await?;
                Ok(Snapshot {
                    revision: resp.header().map_or(0, |h| h.revision()),
                    kvs: resp.kvs().iter().map(convert).collect(),
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
            .call("lease grant", true, |client| async move {
                Ok(client.lease_client().grant(ttl_secs, None).await?.id())
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
            .call("lease revoke", false, |client| async move {
                client.lease_client().revoke(lease).await.map(|_| ())
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
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, put_options(lease))]);
        self.txn("create-if-absent", txn).await
    }

    async fn put(&self, key: &str, value: &[u8], lease: Option<i64>) -> Result<(), DcsError> {
        self.pool
            .call("put", true, |client| async move {
                client
                    .kv_client()
                    .put(key, value, put_options(lease))
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
        let txn = Txn::new()
            .when([Compare::value(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::put(key, value, put_options(lease))]);
        self.txn("put-if-value", txn).await
    }

    async fn put_if_mod_revision(
        &self,
        key: &str,
        mod_revision: i64,
        value: &[u8],
    ) -> Result<bool, DcsError> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, mod_revision)])
            .and_then([TxnOp::put(key, value, None)]);
        self.txn("put-if-mod-revision", txn).await
    }

    async fn delete_if_value(&self, key: &str, expected: &[u8]) -> Result<bool, DcsError> {
        let txn = Txn::new()
            .when([Compare::value(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::delete(key, None)]);
        self.txn("delete-if-value", txn).await
    }

    async fn delete(&self, key: &str) -> Result<(), DcsError> {
        self.pool
            .call("delete", true, |client| async move {
                client.kv_client().delete(key, None).await.map(|_| ())
            })
            .await?;
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<(), DcsError> {
        self.pool
            .call("delete prefix", true, |client| async move {
                client
                    .kv_client()
                    .delete(prefix, Some(DeleteOptions::new().with_prefix()))
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

    /// One armed watch on `endpoint`. `Ok` when the receivers are gone; `Err((was_armed, why))` when
    /// it broke.
    async fn follow(&self, endpoint: usize) -> Result<(), (bool, DcsError)> {
        let prefix = self.prefix.as_str();
        let arm = async {
            let client = self.pool.client_at(endpoint).await.map_err(classify)?;
            let mut stream = client
                .watch_client()
                .watch(prefix, Some(WatchOptions::new().with_prefix()))
                .await
                .map_err(classify)?;
            // The first response confirms creation; only then are events guaranteed to be delivered.
            match stream.message().await.map_err(classify)? {
                Some(resp) if resp.created() && !resp.canceled() => Ok(stream),
                Some(resp) => Err(DcsError::Unavailable(format!(
                    "watch not created: {}",
                    resp.cancel_reason()
                ))),
                None => Err(DcsError::Unavailable("watch stream closed".to_owned())),
            }
        };
        let mut stream = match tokio::time::timeout(self.pool.timeout, arm).await {
            Ok(Ok(stream)) => stream,
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
                msg = stream.message() => match msg {
                    Ok(Some(resp)) => {
                        if resp.canceled() {
                            return Err((true, DcsError::Unavailable(format!("watch canceled: {}", resp.cancel_reason()))));
                        }
                        if !resp.events().is_empty() {
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
