//! A client that writes one row every 20 ms to whichever node accepts writes, recording when each
//! write is acknowledged: the ground truth for "how long were writes unavailable" in the
//! failover and switchover benches and tests. It tries each node's PostgreSQL with a short
//! connect timeout and `target_session_attrs=read-write`, the last writable node first.
//! It writes into a table `bench(t timestamptz)` that the caller creates, or, started with
//! [`Writer::start_ids`], unique ids into `chaos(id bigint)`: the fault campaign's record of
//! which writes were acknowledged.

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
    /// The id written (`chaos` table), or the attempt's number (`bench` table).
    pub id: i64,
}

/// What each write inserts.
#[derive(Debug, Clone, Copy)]
enum Row {
    /// `INSERT INTO bench(t) VALUES (now())`.
    Timestamp,
    /// `INSERT INTO chaos(id) VALUES ($1)`, ids counting up from `first`; the connection is
    /// made again every [`RECONNECT_EVERY`] writes, trying node `home` first, so that writers
    /// with different homes spread over every node that takes writes (two primaries show).
    IdFrom { first: i64, home: usize },
}

/// In [`Writer::start_ids`] mode, the writer reconnects after this many writes (1 s).
pub const RECONNECT_EVERY: u64 = 50;

impl Row {
    fn sql(self) -> &'static str {
        match self {
            Row::Timestamp => "INSERT INTO bench(t) VALUES (now())",
            Row::IdFrom { .. } => "INSERT INTO chaos(id) VALUES ($1)",
        }
    }
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
        Writer::spawn(pg_ports, application_name, Row::Timestamp)
    }

    /// As [`Writer::start`], inserting the ids `first_id`, `first_id + 1`, ... into
    /// `chaos(id bigint)` (each id is tried once: a write whose outcome is unknown is not
    /// retried, so an id is either acknowledged or in doubt). It reconnects every second,
    /// trying node `home` first: writers with different homes land on different nodes when
    /// two of them take writes.
    pub fn start_ids(
        pg_ports: Vec<u16>,
        application_name: &str,
        first_id: i64,
        home: usize,
    ) -> anyhow::Result<Writer> {
        let row = Row::IdFrom {
            first: first_id,
            home,
        };
        Writer::spawn(pg_ports, application_name, row)
    }

    fn spawn(pg_ports: Vec<u16>, application_name: &str, row: Row) -> anyhow::Result<Writer> {
        let shared = Arc::new(Shared::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the client's tokio runtime")?;
        let s = Arc::clone(&shared);
        let app = application_name.to_owned();
        let handle = std::thread::Builder::new()
            .name("bench-writer".to_owned())
            .spawn(move || rt.block_on(write_loop(s, pg_ports, app, row)))
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
        longest_gap(&self.acks(), from, until)
    }
}

/// [`Writer::longest_gap`] over any acknowledgements sorted by arrival (several writers'
/// merged: the cluster was unavailable while none of them got one).
pub fn longest_gap(acks: &[Ack], from: Instant, until: Instant) -> Option<Duration> {
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

async fn connect(node: usize, port: u16, app: &str, row: Row) -> anyhow::Result<Conn> {
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
        let insert = client.prepare(row.sql()).await?;
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
/// writable one first; after a planned reconnect, the writer's home first) until one accepts a
/// read-write session.
async fn write_loop(shared: Arc<Shared>, ports: Vec<u16>, app: String, row: Row) {
    let mut tick = tokio::time::interval(WRITE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn: Option<Conn> = None;
    let mut prefer = 0usize;
    for attempt in 0..CLIENT_MAX_TICKS {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        tick.tick().await;
        if conn.is_none() {
            for k in 0..ports.len() {
                let node = (prefer + k) % ports.len();
                match connect(node, ports[node], &app, row).await {
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
        let n = i64::try_from(attempt).unwrap_or(i64::MAX);
        let id = match row {
            Row::Timestamp => n,
            Row::IdFrom { first, .. } => first.saturating_add(n),
        };
        let params: &[&(dyn tokio_postgres::types::ToSql + Sync)] = match row {
            Row::Timestamp => &[],
            Row::IdFrom { .. } => &[&id],
        };
        let sent = Instant::now();
        match tokio::time::timeout(WRITE_TIMEOUT, c.client.execute(&c.insert, params)).await {
            Ok(Ok(_)) => {
                lock(&shared.acks).push(Ack {
                    sent,
                    at: Instant::now(),
                    node: c.node,
                    id,
                });
                if let Row::IdFrom { home, .. } = row
                    && attempt.is_multiple_of(RECONNECT_EVERY)
                {
                    prefer = home % ports.len().max(1);
                    conn = None;
                }
            }
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
