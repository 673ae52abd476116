//! Free loopback ports for test processes (etcd, PostgreSQL, agents).
//!
//! Tests in one binary run in parallel threads, and a port the kernel hands out for `127.0.0.1:0` is free
//! again the moment the probing socket is dropped, so two tests could be told the same port. Every port
//! handed out here is therefore remembered in a process-global set and never handed out twice.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::{Mutex, OnceLock};

/// Ports already handed out by this process (never reused, so parallel tests cannot collide).
fn handed_out() -> &'static Mutex<BTreeSet<u16>> {
    static SET: OnceLock<Mutex<BTreeSet<u16>>> = OnceLock::new();
    SET.get_or_init(|| Mutex::new(BTreeSet::new()))
}

/// Asks the kernel for a port that is free on 127.0.0.1 right now.
fn probe() -> std::io::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// Returns a loopback port that was free when probed and that this process has not handed out before.
///
/// Exists so tests can give every child process its own port without a fixed port plan.
///
/// # Panics
/// If no port can be bound at all (the loopback interface is unusable), which no test can survive anyway.
pub fn free_port() -> u16 {
    #[allow(clippy::expect_used)]
    let mut ports = free_ports(1).expect("no free loopback port");
    ports.remove(0)
}

/// Reserves `n` distinct free loopback ports at once (e.g. client + peer port of every etcd member).
///
/// Exists because callers that need a block of ports must not receive the same port twice, neither
/// within the block nor across parallel tests.
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let mut out = Vec::with_capacity(n);
    let mut attempts = 0usize;
    while out.len() < n {
        attempts += 1;
        if attempts > 1000 + 10 * n {
            return Err(std::io::Error::other(
                "could not find enough free loopback ports",
            ));
        }
        let port = probe()?;
        let mut set = handed_out()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if set.insert(port) {
            out.push(port);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct() {
        let ports = free_ports(20).unwrap();
        let set: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(set.len(), 20);
        assert!(!ports.contains(&free_port()));
    }
}
