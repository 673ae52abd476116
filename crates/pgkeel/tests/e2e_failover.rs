//! End-to-end failover acceptance: real etcd + PostgreSQL 15 + pgkeel agents on 127.0.0.1, all
//! with the fast profile (ttl 6, loop_wait 1, retry_timeout 2; see docs/ha-timing.md).
//!
//! * (a) primary host lost (agent + postmaster SIGKILLed): a replica takes over, the old node
//!   rejoins (pg_rewind when needed) and streams from the new primary;
//! * (b) primary postmaster SIGKILLed: restarted in place, no failover;
//! * (c) primary agent SIGSTOPped beyond ttl: a replica takes over; after SIGCONT the old
//!   primary stops taking writes within one loop and rejoins;
//! * (d) five failovers in a row: healthy cluster, `history` lists each timeline switch;
//! * (e) a `nofailover` member is never promoted;
//! * (f) five restarts of the etcd leader: no demotion, no failover.
//!
//! Each scenario has its own cluster so a failure names one scenario. Every wait is a bounded
//! poll; the only waits that let time pass on purpose are observation windows in which a wrong
//! agent would have failed over (they are then checked through a background [`Monitor`]).
//! Measured timings are printed (`cargo nextest run --no-capture` shows them).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pgkeel_testkit::shape::{ShapeRules, shape_differences};
use pgkeel_testkit::{ClusterOptions, PgkeelCluster, eventually, require_tools, wait};
use serde_json::Value;

const POLL: Duration = Duration::from_millis(100);
/// The fast profile of docs/ha-timing.md.
const TTL: u32 = 6;
const LOOP_WAIT: u32 = 1;
const RETRY_TIMEOUT: u32 = 2;

fn options(scope: &str) -> ClusterOptions {
    ClusterOptions {
        ttl: TTL,
        loop_wait: LOOP_WAIT,
        retry_timeout: RETRY_TIMEOUT,
        ..pgkeel_testkit::fast_options!(scope)
    }
}

/// Starts a cluster and waits until it is healthy; returns it with the leader's index.
fn start(opts: ClusterOptions) -> (PgkeelCluster, usize) {
    require_tools();
    let c = PgkeelCluster::start(opts).expect("start the cluster");
    let leader = c
        .wait_healthy(Duration::from_secs(60))
        .expect("bootstrap to a healthy cluster");
    println!(
        "bootstrap: healthy {:.2?} after launch (leader {})",
        c.launched_at().elapsed(),
        c.node(leader).name
    );
    (c, leader)
}

fn fail(c: &PgkeelCluster, msg: impl std::fmt::Display) -> ! {
    panic!("{msg}\n{}", c.log_tails(40))
}

/// The leader key: `(member name, create_revision)`. A key deleted and created again (even with
/// the same name) gets a new `create_revision`.
fn leader_key(c: &PgkeelCluster) -> Result<Option<(String, i64)>, String> {
    let j = c.etcd_get_json("leader").map_err(|e| format!("{e:#}"))?;
    parse_leader_json(&j)
}

fn parse_leader_json(j: &Value) -> Result<Option<(String, i64)>, String> {
    let Some(kv) = j["kvs"].get(0) else {
        return Ok(None);
    };
    let value = kv["value"].as_str().ok_or(format!("no value in {j}"))?;
    let name = String::from_utf8(
        pgkeel_testkit::cluster::base64_decode(value).ok_or(format!("bad base64 {value}"))?,
    )
    .map_err(|e| e.to_string())?;
    Ok(Some((name, kv["create_revision"].as_i64().unwrap_or(0))))
}

/// The `history` key as a list of entries (`[timeline, lsn, reason, timestamp, leader]`).
fn history(c: &PgkeelCluster) -> Result<Vec<Value>, String> {
    match c.etcd_get("history").map_err(|e| format!("{e:#}"))? {
        None => Ok(vec![]),
        Some(h) => serde_json::from_str::<Value>(&h)
            .map_err(|e| format!("history not JSON: {e}: {h}"))?
            .as_array()
            .cloned()
            .ok_or(format!("history is not a list: {h}")),
    }
}

fn history_timelines(h: &[Value]) -> Vec<u64> {
    h.iter().filter_map(|e| e[0].as_u64()).collect()
}

fn patroni(c: &PgkeelCluster, i: usize) -> Result<Value, String> {
    let (status, v) = c
        .api_json(i, "/patroni")
        .map_err(|e| format!("node{i}: {e:#}"))?;
    match status {
        200 | 503 => Ok(v),
        s => Err(format!("node{i} /patroni: {s} {v}")),
    }
}

fn pg_timeline(c: &PgkeelCluster, i: usize) -> Result<u64, String> {
    c.psql(i, "SELECT timeline_id FROM pg_control_checkpoint()")
        .map_err(|e| format!("{e:#}"))?
        .parse()
        .map_err(|e| format!("timeline: {e}"))
}

/// Waits until the leader key names a member other than `old` and that member answers
/// `/primary` with 200; returns its index.
fn wait_new_leader(c: &PgkeelCluster, old: &str, timeout: Duration) -> usize {
    wait(c, &format!("a leader other than {old}"), timeout, || {
        let (name, _) = leader_key(c)?.ok_or("no leader key")?;
        if name == old {
            return Err(format!("leader key still names {old}"));
        }
        let i = c.index_of(&name).ok_or(format!("unknown leader {name}"))?;
        match c.api_get(i, "/primary") {
            Ok((200, _)) => Ok(i),
            other => Err(format!("{name} holds the key; /primary: {other:?}")),
        }
    })
}

/// Waits until node `i` is a replica streaming from the primary `leader` on its timeline.
fn wait_streaming(c: &PgkeelCluster, i: usize, leader: usize, timeout: Duration) {
    wait(
        c,
        &format!("{} streaming from {}", c.node(i).name, c.node(leader).name),
        timeout,
        || {
            let p = patroni(c, i)?;
            let want_tl = patroni(c, leader)?["timeline"].as_u64();
            if p["role"] != "replica"
                || p["state"] != "running"
                || p["replication_state"] != "streaming"
            {
                return Err(format!("/patroni: {p}"));
            }
            if p["timeline"].as_u64() != want_tl || want_tl.is_none() {
                return Err(format!(
                    "timeline {} != leader's {want_tl:?}",
                    p["timeline"]
                ));
            }
            let sql = format!(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND application_name = '{}'",
                c.node(i).name
            );
            let senders = c.psql(leader, &sql).map_err(|e| format!("{e:#}"))?;
            if senders != "1" {
                return Err(format!(
                    "the leader has {senders} streaming walsenders to it"
                ));
            }
            Ok(())
        },
    );
}

/// Waits until `sql` (a SELECT returning one value) gives `want` on node `i`.
fn wait_value(c: &PgkeelCluster, i: usize, sql: &str, want: &str, timeout: Duration) {
    wait(
        c,
        &format!("{sql:?} = {want:?} on {}", c.node(i).name),
        timeout,
        || match c.psql(i, sql) {
            Ok(v) if v == want => Ok(()),
            Ok(v) => Err(format!("got {v:?}")),
            Err(e) => Err(format!("{e:#}")),
        },
    );
}

/// SIGKILLs node `i`'s agent, then its postmaster: the whole "host" is gone.
fn kill_node(c: &mut PgkeelCluster, i: usize) -> u32 {
    c.kill_agent(i).expect("kill the agent");
    c.kill_postmaster(i).expect("kill the postmaster")
}

/// One observation of the background [`Monitor`].
#[derive(Debug, Clone)]
struct Sample {
    /// Since the monitor started.
    at: Duration,
    /// The leader key (name, create_revision); `Err` when etcd did not answer.
    leader: Result<Option<(String, i64)>, String>,
    /// `role` in `/patroni` of each watched node (`Err` when it did not answer).
    roles: Vec<Result<String, String>>,
}

/// Samples the leader key (and optionally some nodes' `/patroni` role) every ~100 ms on its own
/// thread while the test injects faults, so a transient leader change cannot slip between the
/// test's own checks.
struct Monitor {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<Sample>>,
}

impl Monitor {
    fn start(c: &PgkeelCluster, watched: &[usize]) -> Monitor {
        let endpoints = c
            .etcd_hosts()
            .iter()
            .map(|h| format!("http://{h}"))
            .collect::<Vec<_>>()
            .join(",");
        let key = c.etcd_key("leader");
        let apis: Vec<String> = watched
            .iter()
            .map(|&i| format!("{}/patroni", c.node(i).api_url))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .timeout(Duration::from_millis(800))
                .build()
                .expect("http client");
            let t0 = Instant::now();
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let leader = Command::new("etcdctl")
                    .env("ETCDCTL_API", "3")
                    .arg(format!("--endpoints={endpoints}"))
                    .args(["--dial-timeout=1s", "--command-timeout=1s"])
                    .args(["get", &key, "-w", "json"])
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| e.to_string())
                    .and_then(|o| {
                        if o.status.success() {
                            serde_json::from_slice::<Value>(&o.stdout).map_err(|e| e.to_string())
                        } else {
                            Err(String::from_utf8_lossy(&o.stderr).trim().to_owned())
                        }
                    })
                    .and_then(|j| parse_leader_json(&j));
                let roles = apis
                    .iter()
                    .map(|u| {
                        let r = http.get(u).send().map_err(|e| e.to_string())?;
                        let v: Value = r.json().map_err(|e| e.to_string())?;
                        Ok(v["role"].as_str().unwrap_or_default().to_owned())
                    })
                    .collect();
                samples.push(Sample {
                    at: t0.elapsed(),
                    leader,
                    roles,
                });
                std::thread::sleep(POLL);
            }
            samples
        });
        Monitor { stop, handle }
    }

    fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("monitor thread")
    }
}

/// Checks that every answered sample shows the leader key `want` (same name, same
/// create_revision); requires at least `min_ok` answered samples.
fn assert_leader_constant(
    c: &PgkeelCluster,
    samples: &[Sample],
    want: &(String, i64),
    min_ok: usize,
) {
    let mut ok = 0;
    let mut errors = 0;
    for s in samples {
        match &s.leader {
            Ok(Some(k)) if k == want => ok += 1,
            Ok(other) => fail(
                c,
                format!(
                    "at {:.2?} the leader key was {other:?}, expected {want:?} throughout",
                    s.at
                ),
            ),
            Err(_) => errors += 1,
        }
    }
    println!(
        "monitor: {} samples, {ok} show the leader key unchanged ({}), {errors} unanswered",
        samples.len(),
        want.0
    );
    assert!(
        ok >= min_ok,
        "only {ok} answered samples of the leader key (want >= {min_ok}); errors: {:?}",
        samples
            .iter()
            .filter_map(|s| s.leader.as_ref().err())
            .take(3)
            .collect::<Vec<_>>()
    );
}

fn create_table(c: &PgkeelCluster, leader: usize) {
    c.psql(
        leader,
        "CREATE TABLE e2e_rows (id int PRIMARY KEY, note text)",
    )
    .expect("create the table on the primary");
}

fn insert(c: &PgkeelCluster, i: usize, id: i32, note: &str) -> Result<(), String> {
    c.psql(i, &format!("INSERT INTO e2e_rows VALUES ({id}, '{note}')"))
        .map(|_| ())
        .map_err(|e| format!("{e:#}"))
}

fn wait_row(c: &PgkeelCluster, i: usize, id: i32, note: &str) {
    wait_value(
        c,
        i,
        &format!("SELECT note FROM e2e_rows WHERE id = {id}"),
        note,
        Duration::from_secs(20),
    );
}

// ---------------------------------------------------------------------------------------------

/// (a) kill -9 the primary's agent and postmaster: a replica takes over; the old node rejoins.
#[test]
fn e2e_failover_primary_host_lost_then_old_primary_rejoins() {
    let (mut c, old) = start(options("fo-a"));
    let old_name = c.node(old).name.clone();
    create_table(&c, old);
    insert(&c, old, 1, "before").expect("write before the failover");
    for r in (0..c.len()).filter(|&r| r != old) {
        wait_row(&c, r, 1, "before");
    }
    let tl_before = pg_timeline(&c, old).expect("timeline");

    kill_node(&mut c, old);
    let killed = Instant::now();
    let new = wait_new_leader(&c, &old_name, Duration::from_secs(30));
    let failover = killed.elapsed();
    wait(
        &c,
        "a write on the new primary",
        Duration::from_secs(10),
        || insert(&c, new, 2, "after failover"),
    );
    let writable = killed.elapsed();
    println!(
        "(a) failover: {} holds the key and answers /primary {failover:.2?} after the kill; writable after {writable:.2?}",
        c.node(new).name
    );
    let tl_new = pg_timeline(&c, new).expect("timeline of the new primary");
    assert!(
        tl_new > tl_before,
        "the new primary must be on a new timeline ({tl_new} vs {tl_before})"
    );

    c.restart_agent(old)
        .expect("restart the old primary's agent");
    let restarted = Instant::now();
    wait_streaming(&c, old, new, Duration::from_secs(30));
    let rejoin = restarted.elapsed();
    let rewound = c.logs(old).contains("pg_rewind");
    println!(
        "(a) rejoin: {old_name} streams from {} on timeline {tl_new} {rejoin:.2?} after its agent restart (pg_rewind in its log: {rewound})",
        c.node(new).name
    );
    insert(&c, new, 3, "after rejoin").expect("write on the new primary");
    wait_row(&c, old, 3, "after rejoin");
    wait_row(&c, old, 2, "after failover");
    wait_value(
        &c,
        old,
        "SELECT pg_is_in_recovery()",
        "t",
        Duration::from_secs(5),
    );
    let leader = c
        .wait_healthy(Duration::from_secs(30))
        .expect("healthy after the rejoin");
    assert_eq!(leader, new, "the rejoin must not move the leader");
}

/// (b) kill -9 only the primary's postmaster: restarted in place, no failover.
#[test]
fn e2e_failover_primary_postgres_crash_restarts_in_place() {
    let (c, leader) = start(options("fo-b"));
    let name = c.node(leader).name.clone();
    create_table(&c, leader);
    let key = leader_key(&c)
        .expect("leader key")
        .expect("leader key present");
    assert_eq!(key.0, name);
    let hist = history(&c).expect("history");
    let tl = pg_timeline(&c, leader).expect("timeline");

    let monitor = Monitor::start(&c, &[]);
    let old_pid = c.kill_postmaster(leader).expect("kill the postmaster");
    let killed = Instant::now();
    let mut attempt = 0;
    wait(
        &c,
        "the primary writable again",
        Duration::from_secs(20),
        || {
            attempt += 1;
            insert(&c, leader, attempt, "after crash")
        },
    );
    let writable = killed.elapsed();
    let new_pid = c.postmaster_pid(leader).expect("a new postmaster");
    assert_ne!(new_pid, old_pid);
    println!(
        "(b) postmaster crash: {name} writable again {writable:.2?} after the kill (pid {old_pid} -> {new_pid})"
    );
    // A wrong agent would lose the key within ttl (a replica would race for it): keep watching
    // for ttl + 2 loops after the kill.
    let window = Duration::from_secs(u64::from(TTL + 2 * LOOP_WAIT));
    if let Some(rest) = window.checked_sub(killed.elapsed()) {
        std::thread::sleep(rest);
    }
    let samples = monitor.finish();
    assert_leader_constant(&c, &samples, &key, 20);
    assert_eq!(
        history(&c).expect("history"),
        hist,
        "history must not gain an entry"
    );
    assert_eq!(
        pg_timeline(&c, leader).expect("timeline"),
        tl,
        "the timeline must not change"
    );
    let now_leader = c
        .wait_healthy(Duration::from_secs(30))
        .expect("healthy after the crash");
    assert_eq!(now_leader, leader, "no failover");
    assert_eq!(
        c.psql(leader, "SELECT pg_is_in_recovery()").expect("psql"),
        "f"
    );
}

/// (c) SIGSTOP the primary's agent beyond ttl: a replica takes over; after SIGCONT the old
/// primary stops taking writes within one loop and rejoins.
#[test]
fn e2e_failover_frozen_primary_agent_is_fenced_after_sigcont() {
    let (c, old) = start(options("fo-c"));
    let old_name = c.node(old).name.clone();
    create_table(&c, old);

    c.stop_agent(old).expect("SIGSTOP the agent");
    let stopped = Instant::now();
    // The scenario: hold the agent frozen until the cluster has moved on (ttl must pass).
    let new = wait_new_leader(&c, &old_name, Duration::from_secs(30));
    let failover = stopped.elapsed();
    assert!(
        failover >= Duration::from_secs(u64::from(TTL) - 2),
        "a replica took over {failover:.2?} after the freeze, before the lease could expire"
    );
    // The frozen node's PostgreSQL still runs as a primary: nobody can stop it meanwhile.
    let still_primary = c.psql(old, "SELECT pg_is_in_recovery()").ok();
    println!(
        "(c) {} promoted {failover:.2?} after the freeze (frozen primary's pg_is_in_recovery: {still_primary:?})",
        c.node(new).name
    );
    insert(&c, new, 1, "on the new primary").expect("write on the new primary");

    c.cont_agent(old).expect("SIGCONT the agent");
    let resumed = Instant::now();
    let read_only = match eventually(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || match c.psql(old, "SELECT pg_is_in_recovery()") {
            Ok(v) if v == "f" => Err("still a writable primary".to_owned()),
            _ => Ok(resumed.elapsed()),
        },
    ) {
        Ok(t) => t,
        Err(e) => fail(&c, format!("the old primary still accepts writes: {e}")),
    };
    println!("(c) old primary read-only {read_only:.2?} after SIGCONT");
    let budget = Duration::from_secs(u64::from(LOOP_WAIT)) + Duration::from_millis(1000);
    if read_only > budget {
        fail(
            &c,
            format!(
                "the old primary took {read_only:.2?} to stop taking writes (budget {budget:.2?})"
            ),
        );
    }
    wait_streaming(&c, old, new, Duration::from_secs(30));
    let rejoin = resumed.elapsed();
    println!(
        "(c) rejoin: {old_name} streams from {} {rejoin:.2?} after SIGCONT (pg_rewind in its log: {})",
        c.node(new).name,
        c.logs(old).contains("pg_rewind")
    );
    wait_row(&c, old, 1, "on the new primary");
    let leader = c
        .wait_healthy(Duration::from_secs(30))
        .expect("healthy after the rejoin");
    assert_eq!(leader, new);
}

/// (d) five failovers in a row leave one healthy leader and five `history` entries.
#[test]
fn e2e_failover_five_in_a_row_history_lists_each_switch() {
    let (mut c, mut leader) = start(options("fo-d"));
    create_table(&c, leader);
    assert!(
        history(&c).expect("history").is_empty(),
        "no history on timeline 1"
    );
    for round in 1..=5u64 {
        let old_name = c.node(leader).name.clone();
        kill_node(&mut c, leader);
        let killed = Instant::now();
        let new = wait_new_leader(&c, &old_name, Duration::from_secs(30));
        let failover = killed.elapsed();
        c.restart_agent(leader).expect("restart the agent");
        let restarted = Instant::now();
        let healthy = c
            .wait_healthy(Duration::from_secs(40))
            .expect("healthy after the rejoin");
        assert_eq!(healthy, new, "round {round}: the leader moved again");
        let rejoin = restarted.elapsed();
        let tl = pg_timeline(&c, new).expect("timeline");
        println!(
            "(d) round {round}: {old_name} -> {} in {failover:.2?}; {old_name} rejoined in {rejoin:.2?}; timeline {tl}",
            c.node(new).name
        );
        assert_eq!(tl, round + 1, "round {round}: one timeline per failover");
        insert(&c, new, i32::try_from(round).unwrap_or(0), "round").expect("write");
        leader = new;
    }
    let h = wait(
        &c,
        "history with 5 entries",
        Duration::from_secs(10),
        || {
            let h = history(&c)?;
            if h.len() == 5 {
                Ok(h)
            } else {
                Err(format!("{} entries: {h:?}", h.len()))
            }
        },
    );
    let tls = history_timelines(&h);
    println!("(d) history: {h:?}");
    assert_eq!(tls, vec![1, 2, 3, 4, 5], "history timelines: {h:?}");
    // The key and GET /history have the shape of Patroni 4.1's (tests/snapshots/patroni-4.1).
    let example: Value = serde_json::from_str(include_str!("snapshots/patroni-4.1/history.json"))
        .expect("the example is JSON");
    let (_, served) = c.api_json(leader, "/history").expect("GET /history");
    for doc in [Value::Array(h.clone()), served] {
        let d = shape_differences(&example, &doc, &ShapeRules::default());
        assert!(d.is_empty(), "history vs Patroni's: {d:?}\n{doc}");
    }
    // Only one leader, and every replica has every row.
    assert_eq!(
        c.wait_healthy(Duration::from_secs(10)).expect("healthy"),
        leader
    );
    for r in 0..c.len() {
        wait_value(
            &c,
            r,
            "SELECT count(*) FROM e2e_rows",
            "5",
            Duration::from_secs(20),
        );
    }
}

/// (e) a member tagged `nofailover: true` is never promoted.
#[test]
fn e2e_failover_nofailover_member_is_never_promoted() {
    let tagged = 0;
    let mut opts = options("fo-e");
    opts.tags = vec![
        [("nofailover".to_owned(), Value::Bool(true))]
            .into_iter()
            .collect(),
    ];
    let (mut c, mut leader) = start(opts);
    let tagged_name = c.node(tagged).name.clone();
    assert_ne!(
        leader, tagged,
        "{tagged_name} is tagged nofailover but bootstrapped the cluster"
    );
    create_table(&c, leader);

    let monitor = Monitor::start(&c, &[tagged]);
    for round in 1..=2 {
        let old_name = c.node(leader).name.clone();
        kill_node(&mut c, leader);
        let killed = Instant::now();
        let new = wait_new_leader(&c, &old_name, Duration::from_secs(30));
        assert_ne!(new, tagged, "round {round}: {tagged_name} was promoted");
        println!(
            "(e) round {round}: {old_name} -> {} in {:.2?}",
            c.node(new).name,
            killed.elapsed()
        );
        c.restart_agent(leader).expect("restart the agent");
        let healthy = c
            .wait_healthy(Duration::from_secs(40))
            .expect("healthy after the rejoin");
        assert_eq!(healthy, new);
        leader = new;
    }
    let samples = monitor.finish();
    let mut answered = 0;
    for s in &samples {
        if let Ok(Some((name, _))) = &s.leader
            && name == &tagged_name
        {
            fail(
                &c,
                format!("at {:.2?} {tagged_name} held the leader key", s.at),
            );
        }
        match &s.roles[0] {
            Ok(role) if role == "primary" || role == "master" => fail(
                &c,
                format!("at {:.2?} {tagged_name} reported role {role}", s.at),
            ),
            Ok(_) => answered += 1,
            Err(_) => {}
        }
    }
    println!(
        "(e) monitor: {} samples, {answered} answers from {tagged_name}, never primary",
        samples.len()
    );
    assert!(
        answered >= 20,
        "too few answers from {tagged_name}: {answered}"
    );
    assert_eq!(
        c.psql(tagged, "SELECT pg_is_in_recovery()").expect("psql"),
        "t"
    );
}

/// (f) restarting the etcd leader five times neither demotes the primary nor fails over.
#[test]
fn e2e_failover_etcd_leader_restarts_keep_the_primary() {
    let (mut c, leader) = start(options("fo-f"));
    let name = c.node(leader).name.clone();
    create_table(&c, leader);
    let key = leader_key(&c)
        .expect("leader key")
        .expect("leader key present");
    let pid = c.postmaster_pid(leader).expect("postmaster pid");
    let hist = history(&c).expect("history");

    let monitor = Monitor::start(&c, &[leader]);
    for round in 1..=5 {
        let etcd = c.etcd().expect("etcd");
        let el = eventually(Duration::from_secs(10), POLL, || {
            etcd.leader_index().ok_or("no etcd leader".to_owned())
        })
        .expect("an etcd leader");
        let t0 = Instant::now();
        etcd.kill(el);
        etcd.wait_healthy(Duration::from_secs(15))
            .expect("a new etcd leader");
        let elected = t0.elapsed();
        let etcd = c.etcd().expect("etcd");
        let new_el = etcd.leader_index();
        etcd.restart(el).expect("restart the etcd member");
        etcd.wait_healthy(Duration::from_secs(15))
            .expect("etcd healthy with the member back");
        println!(
            "(f) round {round}: etcd leader m{el} killed, new leader {new_el:?} after {elected:.2?}, all healthy after {:.2?}",
            t0.elapsed()
        );
        if c.postmaster_pid(leader) != Some(pid) {
            fail(
                &c,
                format!("round {round}: the primary's postmaster changed (was {pid})"),
            );
        }
        wait(&c, "the primary writable", Duration::from_secs(5), || {
            insert(&c, leader, round, "etcd restart")
        });
    }
    // A lease lost during the last election would expire within ttl: keep watching that long.
    std::thread::sleep(Duration::from_secs(u64::from(TTL)));
    let samples = monitor.finish();
    assert_leader_constant(&c, &samples, &key, 20);
    for s in &samples {
        if let Ok(role) = &s.roles[0]
            && role != "primary"
        {
            fail(&c, format!("at {:.2?} {name} reported role {role}", s.at));
        }
    }
    assert_eq!(c.postmaster_pid(leader), Some(pid), "postmaster restarted");
    assert_eq!(history(&c).expect("history"), hist, "history grew");
    assert_eq!(
        c.wait_healthy(Duration::from_secs(20)).expect("healthy"),
        leader
    );
    assert_eq!(
        c.psql(leader, "SELECT pg_is_in_recovery()").expect("psql"),
        "f"
    );
    let demoted = c
        .logs(leader)
        .lines()
        .filter(|l| l.contains("demot"))
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert!(
        demoted.is_empty(),
        "the primary logged a demotion: {demoted:?}"
    );
}

/// (g) Replicas at the same WAL position: a clean shutdown of the primary promotes the one with
/// the highest `failover_priority`, and the other says why it stood back.
#[test]
fn e2e_failover_equal_replicas_promote_the_highest_failover_priority() {
    let mut opts = options("fo-g");
    opts.tags = (1..=3)
        .map(|p| [("failover_priority".to_owned(), Value::from(p))].into())
        .collect();
    let (mut c, old) = start(opts);
    let priority = |i: usize| i + 1;
    let replicas: Vec<usize> = (0..c.len()).filter(|&r| r != old).collect();
    let (low, high) = if priority(replicas[0]) < priority(replicas[1]) {
        (replicas[0], replicas[1])
    } else {
        (replicas[1], replicas[0])
    };
    create_table(&c, old);
    insert(&c, old, 1, "before").expect("write before the shutdown");
    for &r in &replicas {
        wait_streaming(&c, r, old, Duration::from_secs(30));
        wait_row(&c, r, 1, "before");
    }

    c.terminate_agent(old, Duration::from_secs(30))
        .expect("a clean shutdown of the primary's agent");
    let new = wait_new_leader(&c, &c.node(old).name.clone(), Duration::from_secs(30));
    let (high_name, low_name) = (c.node(high).name.clone(), c.node(low).name.clone());
    if new != high {
        fail(
            &c,
            format!(
                "{} was promoted; {high_name} has priority {} and {low_name} {}",
                c.node(new).name,
                priority(high),
                priority(low)
            ),
        );
    }
    // Patroni's features/priority_failover.feature accepts either reason. A node that was busy
    // when the key went away may only look after the winner took it: then it never raced and
    // has nothing to explain.
    let equal = format!(
        "{high_name} has equally tolerable WAL position and priority {}, while this node has priority {}",
        priority(high),
        priority(low)
    );
    let ahead = format!("Wal position of {high_name} is ahead of my wal position");
    wait(
        &c,
        &format!("{low_name} logs why it did not race"),
        Duration::from_secs(5),
        || {
            let log = c.logs(low);
            let raced = log.contains("no leader: asking peers before the leader race");
            (!raced || log.contains(&equal) || log.contains(&ahead))
                .then_some(())
                .ok_or_else(|| "not logged yet".to_string())
        },
    );
    println!(
        "(g) {high_name} (priority {}) promoted over {low_name}",
        priority(high)
    );
}

/// (h) The primary's postmaster dies and PostgreSQL cannot start again (a broken setting): the
/// node gives up the leader key after the first failed start, not after primary_start_timeout
/// (300 s here), so a replica takes over; once the setting is fixed the node rejoins.
#[test]
fn e2e_failover_primary_that_fails_to_restart_releases_the_key() {
    let (c, old) = start(options("fo-h"));
    let old_name = c.node(old).name.clone();
    create_table(&c, old);
    insert(&c, old, 1, "before").expect("write before the crash");
    let auto_conf = c.node(old).data_dir.join("postgresql.auto.conf");
    let original = std::fs::read_to_string(&auto_conf).expect("read postgresql.auto.conf");
    std::fs::write(
        &auto_conf,
        format!("{original}\npgkeel_e2e_not_a_setting = on\n"),
    )
    .expect("break postgresql.auto.conf");

    let killed = Instant::now();
    c.kill_postmaster(old).expect("kill the postmaster");
    // Freeze the old agent once it has given up the key, so the repair below lands before it
    // tries to rejoin: its rewind first runs crash recovery, which fails with the broken file,
    // and a failed rewind is remembered (without remove_data_directory_on_rewind_failure the
    // node then waits for an operator, as Patroni's does). Without the freeze the test raced
    // its own repair.
    if let Err(e) =
        pgkeel_testkit::eventually(Duration::from_secs(30), Duration::from_millis(10), || {
            if c.logs(old)
                .contains("removed leader key after trying and failing to start postgres")
            {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        })
    {
        fail(&c, format!("{old_name} did not give up the key: {e}"));
    }
    c.stop_agent(old).expect("freeze the old agent");
    let new = wait_new_leader(&c, &old_name, Duration::from_secs(30));
    println!(
        "(h) {} promoted {:.2?} after the primary's postmaster was killed",
        c.node(new).name,
        killed.elapsed()
    );
    let log = c.logs(old);
    if !log.contains("removed leader key after trying and failing to start postgres") {
        fail(
            &c,
            format!("{old_name} did not say why it released the key"),
        );
    }

    std::fs::write(&auto_conf, original).expect("repair postgresql.auto.conf");
    c.cont_agent(old).expect("thaw the old agent");
    wait_streaming(&c, old, new, Duration::from_secs(60));
    insert(&c, new, 2, "after").expect("write on the new primary");
    wait_row(&c, old, 2, "after");
}
