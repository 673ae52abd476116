//! End-to-end: hostile clients against a real cluster (3 etcd + 3 PostgreSQL 15 + 3 agents on
//! 127.0.0.1, fast profile ttl 6 / loop_wait 1 / retry_timeout 2).
//!
//! * A flood of idle TCP connections against the leader's REST port ([`pgkeel_testkit::flood`]),
//!   with each agent limited to 1024 open files (the probe that found the defect used 20,000
//!   connections against `ulimit -n 20000`; the ratio is what matters). Before the fix the agent
//!   ran out of descriptors, could not read its data directory, released the leader key while
//!   PostgreSQL kept taking writes, and a replica was promoted next to it. Now: never two writable
//!   primaries, no acknowledged write lost, the leader stays, and `/health` answers throughout.
//!   The 100 ms target of issue 10 is measured on the release build by `bench/flood.sh`; this
//!   test runs the debug build (see [`HEALTH_BOUND`]).
//!
//! Every load loop here is bounded in count and time and talks to 127.0.0.1 only.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pgkeel_testkit::bench::stats;
use pgkeel_testkit::flood::{self, Flood};
use pgkeel_testkit::{ClusterOptions, PgkeelCluster, require_tools};

/// Open files each agent may hold.
const AGENT_OPEN_FILES: u64 = 1024;
/// The flood: three times the connections the agent could hold, for 8 s, 60,000 at most.
const FLOOD: Flood = Flood {
    connections: 3 * AGENT_OPEN_FILES as usize,
    duration: Duration::from_secs(8),
    total: 60_000,
};
/// Every health check during the flood must be answered within this. The release build
/// answers within 100 ms (issue 10's target; `bench/flood.sh`: max 40-47 ms on the project's
/// 2-core machine); this test runs the debug build, with the flood's client, the writer and
/// the sampler on the same two cores, where the maxima were 52-136 ms in eight runs. The
/// bound is what tells a working server from the old failures (timeouts, resets, a dropped
/// SYN retried after a second).
const HEALTH_BOUND: Duration = Duration::from_millis(300);

fn options(scope: &str) -> ClusterOptions {
    ClusterOptions {
        agent_open_files: Some(AGENT_OPEN_FILES),
        ..pgkeel_testkit::fast_options!(scope)
    }
}

#[test]
fn e2e_hostile_rest_connection_flood_keeps_one_primary_and_every_write() {
    require_tools();
    let own_limit = flood::raise_own_open_files();
    assert!(
        own_limit as usize > FLOOD.connections + 512,
        "this test needs {} open files, the hard limit is {own_limit}",
        FLOOD.connections + 512
    );
    let c = PgkeelCluster::start(options("hostile-flood")).expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let leader_name = c.node(leader).name.clone();
    c.psql(leader, "CREATE TABLE acked (id int PRIMARY KEY)")
        .expect("create the table");
    let api: SocketAddr = format!("127.0.0.1:{}", c.node(leader).api_port)
        .parse()
        .expect("the API's address");

    let stop = AtomicBool::new(false);
    let (acked, samples, flooded) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut acked = Vec::new();
            let mut id = 0;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                if c.psql(leader, &format!("INSERT INTO acked VALUES ({id})"))
                    .is_ok()
                {
                    acked.push(id);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            acked
        });
        // Which nodes take writes, about 30 times a second (each sample runs psql on every
        // node; a tighter loop would mostly measure process creation on two cores).
        let sampler = s.spawn(|| {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                samples.push(c.writable());
                std::thread::sleep(Duration::from_millis(25));
            }
            samples
        });
        let flooded = FLOOD.run(api);
        // Let the cluster settle with the writer still going, then stop.
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        let acked = writer.join().expect("writer");
        let samples = sampler.join().expect("sampler");
        (acked, samples, flooded)
    });
    let (min, median, max) = stats(&flooded.millis()).unwrap_or_default();
    println!(
        "flood: {} connections opened in {:?}; {} writes acknowledged; {} health checks, ms min {min:.1} median {median:.1} max {max:.1}",
        flooded.opened,
        FLOOD.duration,
        acked.len(),
        flooded.checks.len(),
    );

    for (i, w) in samples.iter().enumerate() {
        let primaries = w.iter().filter(|w| **w).count();
        assert!(
            primaries <= 1,
            "sample {i}: {primaries} writable primaries: {w:?}\n{}",
            c.log_tails(30)
        );
    }
    // Every check is answered, 200, within HEALTH_BOUND (before the fix: timeouts; before a
    // request waiting unread in its socket protected the connection from eviction: resets).
    assert!(!flooded.checks.is_empty(), "no health check ran");
    for (i, check) in flooded.checks.iter().enumerate() {
        assert!(
            check.status == 200 && check.took < HEALTH_BOUND,
            "health check {i} during the flood: {} after {:?}\n{}",
            check.status,
            check.took,
            c.log_tails(30)
        );
    }
    let now_leader = c
        .wait_healthy(Duration::from_secs(30))
        .expect("healthy after the flood");
    assert_eq!(
        c.node(now_leader).name,
        leader_name,
        "the flood moved the leader\n{}",
        c.log_tails(30)
    );
    assert!(!acked.is_empty(), "no write was acknowledged");
    let have: Vec<i64> = c
        .psql(now_leader, "SELECT id FROM acked ORDER BY id")
        .expect("read back")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let lost: Vec<i64> = acked
        .iter()
        .map(|&i| i64::from(i))
        .filter(|i| have.binary_search(i).is_err())
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    let log = c.logs(leader);
    assert!(
        !log.contains("Too many open files"),
        "the leader's agent ran out of descriptors:\n{}",
        c.log_tails(30)
    );
}
