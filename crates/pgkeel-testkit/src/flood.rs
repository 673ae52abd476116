//! A REST connection flood with a load balancer's health check beside it, shared by the
//! end-to-end hostile-input test and `pgkeel-bench-flood`.
//!
//! The flood opens TCP connections to one agent's REST port that never send a byte (what
//! exhausted the agent's descriptors before issue 10), up to [`Flood::connections`] at a time,
//! re-opening the ones the server closes every 200 ms, for [`Flood::duration`] or
//! [`Flood::total`] connections, whichever ends first. Meanwhile a checker thread sends
//! `GET /health` on a new connection every 100 ms, as HAProxy does, and records the status and
//! how long the answer took (connect + request + status line).
//!
//! Bounded in time and count; talks to the address it is given (loopback in every caller).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How hard and how long to flood.
#[derive(Debug, Clone, Copy)]
pub struct Flood {
    /// Idle connections held open at most.
    pub connections: usize,
    /// How long the flood lasts.
    pub duration: Duration,
    /// Connections opened in all, at most.
    pub total: usize,
}

/// One health check: the HTTP status (0 when none came) and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    pub status: u16,
    pub took: Duration,
}

/// What a flood did.
#[derive(Debug, Clone)]
pub struct FloodOutcome {
    /// Connections the flood opened.
    pub opened: usize,
    /// Every health check sent during the flood, in order.
    pub checks: Vec<Check>,
}

impl FloodOutcome {
    /// The checks' durations in milliseconds, for [`crate::bench::stats`].
    pub fn millis(&self) -> Vec<f64> {
        self.checks
            .iter()
            .map(|c| c.took.as_secs_f64() * 1000.0)
            .collect()
    }
}

/// Timeout of each step of a health check (connect, then the answer).
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// A health check every this long, as a load balancer's `inter 100ms`.
const CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// The flood notices closed connections and re-opens them this often.
const REFILL_INTERVAL: Duration = Duration::from_millis(200);

/// One `GET /health` on a new connection.
pub fn health_check(addr: SocketAddr) -> Check {
    let t = Instant::now();
    let answer = (|| -> std::io::Result<u16> {
        let mut s = TcpStream::connect_timeout(&addr, CHECK_TIMEOUT)?;
        s.set_read_timeout(Some(CHECK_TIMEOUT))?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        let text = String::from_utf8_lossy(&head);
        Ok(text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0))
    })();
    Check {
        status: answer.unwrap_or(0),
        took: t.elapsed(),
    }
}

impl Flood {
    /// Floods `addr` and checks its health at the same time; returns when the flood ends
    /// (its connections are closed then).
    pub fn run(&self, addr: SocketAddr) -> FloodOutcome {
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let checker = s.spawn(|| {
                let mut checks = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    checks.push(health_check(addr));
                    std::thread::sleep(CHECK_INTERVAL);
                }
                checks
            });
            let opened = self.flood(addr);
            stop.store(true, Ordering::Relaxed);
            FloodOutcome {
                opened,
                checks: checker.join().unwrap_or_default(),
            }
        })
    }

    /// The flood itself; returns how many connections it opened.
    fn flood(&self, addr: SocketAddr) -> usize {
        let t0 = Instant::now();
        let mut open: Vec<TcpStream> = Vec::new();
        let mut opened = 0usize;
        while t0.elapsed() < self.duration {
            while open.len() < self.connections
                && opened < self.total
                && t0.elapsed() < self.duration
            {
                match TcpStream::connect(addr) {
                    Ok(s) => {
                        opened += 1;
                        open.push(s);
                    }
                    Err(_) => break,
                }
            }
            std::thread::sleep(REFILL_INTERVAL);
            // Drop the ones the server closed, so the flood keeps its size.
            open.retain(|s| {
                let _ = s.set_nonblocking(true);
                let mut b = [0u8; 1];
                !matches!((&*s).read(&mut b), Ok(0))
            });
        }
        opened
    }
}

/// Lets this process hold a flood's sockets: raises the soft open-files limit to the hard one
/// and returns the limit now in force.
pub fn raise_own_open_files() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}
