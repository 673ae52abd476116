//! Serving the REST API so that no client can starve the agent of file descriptors.
//!
//! A load balancer, a monitoring system and the other nodes' leader races all need the API, but
//! the HA loop and PostgreSQL need descriptors more: a node out of them cannot see its own data
//! directory. So the server holds at most [`Limits::max_connections`] connections, well below
//! the process's descriptor limit; a connection that has not sent a complete request head within
//! [`Limits::header_read_timeout`] (slowloris, idle keep-alive) is closed; and when the cap is
//! reached a new connection evicts the oldest one whose client has not sent a byte, not even
//! one still waiting unread in the socket (else the oldest between requests), so a flood of
//! idle connections cannot keep a health check out (a real client sends its request at once). A
//! failed `accept` (EMFILE) backs off briefly instead of spinning.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;

/// How many connections the REST API holds and how long one may stay silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Concurrent connections at most.
    pub max_connections: usize,
    /// A connection must deliver each request head within this long (also bounds idle
    /// keep-alive connections).
    pub header_read_timeout: Duration,
}

impl Limits {
    /// Sockets the server may hold open at once, closing ones included: an evicted connection
    /// keeps its descriptor until its task has run and dropped it, which under a flood of
    /// thousands of connections a second lags behind the evictions (a flood in CI drove the
    /// agent to EMFILE that way). Twice the connection cap: what the reserve leaves.
    fn max_sockets(&self) -> usize {
        self.max_connections.saturating_mul(2)
    }
}

/// Counts the sockets the server holds, from `accept` until the socket is dropped.
#[derive(Clone, Default)]
struct SocketBudget {
    open: Arc<AtomicUsize>,
    closed: Arc<tokio::sync::Notify>,
}

/// One accepted socket's share of the budget; released when dropped, with the socket.
struct SocketShare(SocketBudget);

impl SocketBudget {
    /// Waits until fewer than `max` sockets are open. The kernel's accept queue holds the
    /// connections meanwhile.
    async fn room_for_one(&self, max: usize) {
        while self.open.load(Ordering::Acquire) >= max {
            // A close notifies; the timer covers a notification that came before the wait.
            tokio::select! {
                () = self.closed.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    }

    fn take(&self) -> SocketShare {
        self.open.fetch_add(1, Ordering::AcqRel);
        SocketShare(self.clone())
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for SocketShare {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.closed.notify_one();
    }
}

/// Descriptors kept for the HA loop, PostgreSQL's tools, etcd and callbacks.
const RESERVED_DESCRIPTORS: u64 = 256;
/// Upper bound of the connection cap, whatever the descriptor limit.
const MAX_CONNECTIONS: usize = 1024;
/// Lower bound, so a tiny limit still serves a few health checks.
const MIN_CONNECTIONS: usize = 16;
/// Pause after a failed `accept`.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

impl Limits {
    /// Limits for a process allowed `descriptors` open files: at most half of what is left
    /// after the reserve, between 16 and 1024 connections; 5 s to send a request head.
    pub fn for_descriptor_limit(descriptors: u64) -> Limits {
        let spare = descriptors.saturating_sub(RESERVED_DESCRIPTORS) / 2;
        Limits {
            max_connections: usize::try_from(spare)
                .unwrap_or(MAX_CONNECTIONS)
                .clamp(MIN_CONNECTIONS, MAX_CONNECTIONS),
            header_read_timeout: Duration::from_secs(5),
        }
    }

    /// Limits for this process's current soft `RLIMIT_NOFILE`.
    pub fn for_this_process() -> Limits {
        let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024);
        Limits::for_descriptor_limit(soft)
    }
}

/// One open connection: how many requests it is serving, whether the client has sent
/// anything yet, and how to close it.
struct Conn {
    busy: Arc<AtomicUsize>,
    spoke: Arc<AtomicBool>,
    close: CancellationToken,
    /// The socket, to look for a request the server has not read yet (see [`sent_unread`]).
    fd: std::os::fd::RawFd,
}

/// Whether the client on `fd` has sent bytes the server has not read yet: a health check
/// accepted a moment ago whose request is waiting in the socket, which must not be evicted as
/// silent while the (busy) server gets to it. A peek, so nothing is consumed; never blocks.
/// The descriptor is only a hint: should it have been closed and reused meanwhile, the worst
/// outcome is one wrong eviction choice.
fn sent_unread(fd: std::os::fd::RawFd) -> bool {
    use nix::sys::socket::{MsgFlags, recv};
    let mut byte = [0u8; 1];
    // An invalid descriptor fails (EBADF), which reads as "nothing sent"; 0 is end of file.
    recv(fd, &mut byte, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT).is_ok_and(|n| n > 0)
}

/// The open connections, oldest first (ids only grow).
#[derive(Default)]
struct Registry {
    next_id: u64,
    open: BTreeMap<u64, Conn>,
}

impl Registry {
    /// Makes room for one more connection under `cap`. At the cap it closes the oldest silent
    /// connections, a batch of them ([`eviction_batch`]), so that the next accepts under a
    /// flood do not each wait for one closed socket (the accept queue, where a health check
    /// waits behind the flood, drains that much faster); with none silent, the oldest one
    /// between requests. `false` when every connection is serving a request (the new one is
    /// then refused).
    fn make_room(&mut self, cap: usize) -> bool {
        if self.open.len() < cap {
            return true;
        }
        // A client that has not sent a byte goes first (a flood's connections never do; a real
        // client's request is usually on its way before it could be evicted), then the oldest
        // one between requests.
        let idle = |c: &Conn| c.busy.load(Ordering::Acquire) == 0;
        let silent: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, c)| idle(c) && !c.spoke.load(Ordering::Acquire) && !sent_unread(c.fd))
            .take(eviction_batch(cap))
            .map(|(id, _)| *id)
            .collect();
        let evict = if silent.is_empty() {
            self.open
                .iter()
                .find(|(_, c)| idle(c))
                .map(|(id, _)| *id)
                .into_iter()
                .collect()
        } else {
            silent
        };
        let mut evicted = false;
        for id in evict {
            if let Some(conn) = self.open.remove(&id) {
                conn.close.cancel();
                evicted = true;
            }
        }
        evicted
    }
}

/// Silent connections closed at once when the cap is reached: an eighth of the cap, at least
/// one. The sockets still closing count against [`Limits::max_sockets`], twice the cap, so a
/// batch always fits.
fn eviction_batch(cap: usize) -> usize {
    (cap / 8).max(1)
}

/// Counts a request in flight on its connection for as long as it lives.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn start(count: &Arc<AtomicUsize>) -> Busy {
        count.fetch_add(1, Ordering::AcqRel);
        Busy(count.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A client connection that notes when the client first sends something.
struct Heard {
    inner: tokio::net::TcpStream,
    spoke: Arc<AtomicBool>,
}

impl tokio::io::AsyncRead for Heard {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.spoke.store(true, Ordering::Release);
        }
        polled
    }
}

impl tokio::io::AsyncWrite for Heard {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes; then closes every
/// connection.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let registry = Arc::new(Mutex::new(Registry::default()));
    let budget = SocketBudget::default();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = async {
                budget.room_for_one(limits.max_sockets()).await;
                listener.accept().await
            } => accepted,
        };
        let (stream, peer, share) = match accepted {
            Ok((stream, peer)) => (stream, peer, budget.take()),
            Err(e) => {
                if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!("REST API: accepting a connection failed: {e}");
                    last_warning = Some(Instant::now());
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let (id, busy, spoke, close) = {
            let Ok(mut reg) = registry.lock() else {
                break;
            };
            if !reg.make_room(limits.max_connections) {
                continue; // every connection is serving a request: refuse this one
            }
            let id = reg.next_id;
            reg.next_id += 1;
            let conn = Conn {
                busy: Arc::new(AtomicUsize::new(0)),
                spoke: Arc::new(AtomicBool::new(false)),
                close: CancellationToken::new(),
                fd: std::os::fd::AsRawFd::as_raw_fd(&stream),
            };
            let handles = (conn.busy.clone(), conn.spoke.clone(), conn.close.clone());
            reg.open.insert(id, conn);
            (id, handles.0, handles.1, handles.2)
        };
        let inner = TowerToHyperService::new(router.clone());
        let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
            // The client's address, for `restapi.allowlist` (axum's `ConnectInfo`).
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let guard = Busy::start(&busy);
            let answer = inner.call(req);
            async move {
                let answer: Result<_, Infallible> = answer.await;
                drop(guard);
                answer
            }
        });
        let registry = registry.clone();
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true);
            let stream = Heard {
                inner: stream,
                spoke,
            };
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = close.cancelled() => {}
            }
            if let Ok(mut reg) = registry.lock() {
                reg.open.remove(&id);
            }
            // The socket is closed (dropped with `connection` above): its share goes back.
            drop(share);
        });
    }
    if let Ok(mut reg) = registry.lock() {
        for (_, conn) in std::mem::take(&mut reg.open) {
            conn.close.cancel();
        }
    }
    Ok(())
}

/// Connections the kernel queues for `accept` (capped by `net.core.somaxconn`). A burst of
/// connections beyond the queue makes the kernel drop SYNs, and a dropped health check retries
/// only after a second; a long queue, drained fast, keeps it waiting milliseconds instead.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the REST API's listener on `addr` (`host:port`, the first address it resolves to)
/// with a long accept queue.
pub async fn bind(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    let mut last = None;
    for sa in tokio::net::lookup_host(addr).await? {
        let socket = if sa.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(sa).and_then(|()| socket.listen(LISTEN_BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            "no address to listen on",
        )
    }))
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (as PostgreSQL's own tools
/// and most servers do), so the reserve above is large; returns the soft limit now in force.
pub fn raise_descriptor_limit() -> std::io::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(std::io::Error::from)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(std::io::Error::from)?;
    }
    Ok(hard.max(soft))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(fd: std::os::fd::RawFd) -> Conn {
        Conn {
            busy: Arc::new(AtomicUsize::new(0)),
            spoke: Arc::new(AtomicBool::new(false)),
            close: CancellationToken::new(),
            fd,
        }
    }

    /// Under a flood the server may accept many connections before it reads a health check
    /// that arrived among them: a request already waiting in its socket is not "silent".
    #[test]
    fn a_request_waiting_unread_protects_its_connection_from_eviction() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        use std::os::unix::net::UnixStream;
        let (mut check_client, check_server) = UnixStream::pair().unwrap();
        let (_flood_client, flood_server) = UnixStream::pair().unwrap();
        check_client
            .write_all(b"GET /health HTTP/1.1\r\n\r\n")
            .unwrap();
        let mut reg = Registry::default();
        // The health check is the oldest connection; the flood's came after it.
        reg.open.insert(0, conn(check_server.as_raw_fd()));
        reg.open.insert(1, conn(flood_server.as_raw_fd()));
        assert!(reg.make_room(2));
        assert_eq!(
            reg.open.keys().collect::<Vec<_>>(),
            [&0],
            "the silent one goes"
        );
        // Nothing was consumed: the server still reads the whole request.
        assert!(sent_unread(check_server.as_raw_fd()));
    }

    /// At the cap, the oldest silent connections go in a batch (an eighth of the cap), and a
    /// client that has spoken is passed over.
    #[test]
    fn a_full_registry_closes_a_batch_of_the_oldest_silent_connections() {
        let mut reg = Registry::default();
        for id in 0..16 {
            reg.open.insert(id, conn(-1));
        }
        reg.open[&1].spoke.store(true, Ordering::Release);
        let closes: Vec<CancellationToken> = reg.open.values().map(|c| c.close.clone()).collect();
        assert!(reg.make_room(16));
        let gone: Vec<usize> = (0..16).filter(|&i| closes[i].is_cancelled()).collect();
        assert_eq!(
            gone,
            [0, 2],
            "the two oldest silent ones, not the one that spoke"
        );
        assert_eq!(reg.open.len(), 14);
        assert!(reg.make_room(16), "below the cap: nothing to close");
        assert_eq!(reg.open.len(), 14);
    }

    /// Accepting waits while the budget is spent (evicted sockets not closed yet count), and
    /// goes on as soon as one socket is released.
    #[tokio::test]
    async fn accepting_waits_until_a_socket_is_really_closed() {
        let budget = SocketBudget::default();
        let first = budget.take();
        let _second = budget.take();
        assert_eq!(budget.open(), 2);
        let waited = tokio::time::timeout(Duration::from_millis(50), budget.room_for_one(2)).await;
        assert!(waited.is_err(), "room while two of two sockets are open");
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), budget.room_for_one(2))
            .await
            .expect("room once one socket is closed");
        assert_eq!(budget.open(), 1);
    }

    #[test]
    fn the_cap_leaves_a_reserve_of_descriptors() {
        assert_eq!(Limits::for_descriptor_limit(1024).max_connections, 384);
        assert_eq!(Limits::for_descriptor_limit(20_000).max_connections, 1024);
        assert_eq!(Limits::for_descriptor_limit(100).max_connections, 16);
        assert_eq!(Limits::for_descriptor_limit(u64::MAX).max_connections, 1024);
    }
}
