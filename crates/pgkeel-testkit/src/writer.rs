//! A client that writes one row every 20 ms to whichever node accepts writes, recording when each
//! write is acknowledged: the ground truth for "how long were writes unavailable" in the
//! failover and switchover benches and tests. It tries each node's PostgreSQL with a short
//! connect timeout and `target_session_attrs=read-write`, the last writable node first.
//! It writes into a table `bench(t timestamptz)` that the caller creates.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};

use crate::nodeconf;

/// The client tries one write this often.
pub const WRITE_INTERVAL: Duration = Duration::from_millis(20);
/// Bound of one connection attempt to one node (TCP connect + auth + read-write check).
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
/// Bound of one INSERT.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Hard cap of the client loop (about 55 h at one write every 20 ms): a bounded loop.
const CLIENT_MAX_TICKS: u64 = 10_000_000;

/// One acknowledged write: when it was sent, when the acknowledgement arrived, and on which node.
/// A write sent before the fault may be acknowledged just after it; it counts as before the fault.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    /// When the INSERT was sent.
    pub sent: Instant,
    /// When its acknowledgement arrived.
    pub at: Instant,
    /// The node (index) that acknowledged it.
    pub node: usize,
}

/// State shared between the client thread and the main thread.
#[derive(Debug, Default)]
struct Shared {
    acks: Mutex<Vec<Ack>>,
    /// Failed attempts (connect or write): when and why.
    errors: Mutex<Vec<(Instant, String)>>,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn record_error(&self, msg: String) {
        let mut errs = lock(&self.errors);
        // Bounded: keep the first 100k (about 30 min of continuous failures).
        if errs.len() < 100_000 {
            errs.push((Instant::now(), msg.replace('\n', " ")));
        }
    }
}

/// The client thread; stops and joins on drop.
pub struct Writer {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts writing to the nodes' PostgreSQL ports (index = node), as `application_name`.
    pub fn start(pg_ports: Vec<u16>, application_name: &str) -> anyhow::Result<Writer> {
        let shared = Arc::new(Shared::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the client's tokio runtime")?;
        let s = Arc::clone(&shared);
        let app = application_name.to_owned();
        let handle = std::thread::Builder::new()
            .name("bench-writer".to_owned())
            .spawn(move || rt.block_on(write_loop(s, pg_ports, app)))
            .context("spawning the client thread")?;
        Ok(Writer {
            shared,
            handle: Some(handle),
        })
    }

    /// The writes acknowledged so far, in order.
    pub fn acks(&self) -> MutexGuard<'_, Vec<Ack>> {
        lock(&self.shared.acks)
    }

    /// The failed attempts so far: when and why.
    pub fn errors(&self) -> MutexGuard<'_, Vec<(Instant, String)>> {
        lock(&self.shared.errors)
    }

    /// The longest interval without an acknowledgement from the last write sent before `from`
    /// until `until` (the write gap of a fault or switchover at `from`); the time from the last
    /// acknowledgement to `until` counts too, so writes that never resumed show as a gap.
    pub fn longest_gap(&self, from: Instant, until: Instant) -> Option<Duration> {
        let acks = self.acks();
        let start = acks.iter().rposition(|a| a.sent < from)?;
        let window: Vec<Instant> = acks[start..]
            .iter()
            .map(|a| a.at)
            .take_while(|at| *at <= until)
            .chain(std::iter::once(until))
            .collect();
        window
            .windows(2)
            .map(|w| w[1].saturating_duration_since(w[0]))
            .max()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A connection to the node that accepts writes, with the INSERT prepared.
struct Conn {
    client: tokio_postgres::Client,
    insert: tokio_postgres::Statement,
    node: usize,
}

async fn connect(node: usize, port: u16, app: &str) -> anyhow::Result<Conn> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(port)
        .user("postgres")
        .password(nodeconf::SUPERUSER_PASSWORD)
        .dbname("postgres")
        .application_name(app)
        .connect_timeout(CONNECT_TIMEOUT)
        .target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
    let attempt = async {
        let (client, connection) = cfg.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let insert = client
            .prepare("INSERT INTO bench(t) VALUES (now())")
            .await?;
        Ok::<_, tokio_postgres::Error>(Conn {
            client,
            insert,
            node,
        })
    };
    tokio::time::timeout(CONNECT_TIMEOUT * 2, attempt)
        .await
        .map_err(|_| anyhow!("node{node}: connect timed out"))?
        .map_err(|e| anyhow!("node{node}: {}", pg_error(&e)))
}

/// A tokio-postgres error with its cause (its `Display` alone says only "db error").
pub fn pg_error(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Every 20 ms: one INSERT on the current connection, or, without one, try each node (the last
/// writable one first) until one accepts a read-write session.
async fn write_loop(shared: Arc<Shared>, ports: Vec<u16>, app: String) {
    let mut tick = tokio::time::interval(WRITE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn: Option<Conn> = None;
    let mut prefer = 0usize;
    for _ in 0..CLIENT_MAX_TICKS {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        tick.tick().await;
        if conn.is_none() {
            for k in 0..ports.len() {
                let node = (prefer + k) % ports.len();
                match connect(node, ports[node], &app).await {
                    Ok(c) => {
                        prefer = node;
                        conn = Some(c);
                        break;
                    }
                    Err(e) => shared.record_error(format!("{e:#}")),
                }
            }
        }
        let Some(c) = &conn else { continue };
        let sent = Instant::now();
        match tokio::time::timeout(WRITE_TIMEOUT, c.client.execute(&c.insert, &[])).await {
            Ok(Ok(_)) => lock(&shared.acks).push(Ack {
                sent,
                at: Instant::now(),
                node: c.node,
            }),
            Ok(Err(e)) => {
                shared.record_error(format!("node{}: write: {}", c.node, pg_error(&e)));
                conn = None;
            }
            Err(_) => {
                shared.record_error(format!("node{}: write timed out", c.node));
                conn = None;
            }
        }
    }
}
