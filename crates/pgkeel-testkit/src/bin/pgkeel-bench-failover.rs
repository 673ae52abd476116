//! `pgkeel-bench-failover [--rounds N] [--profile fast|patroni-defaults] [--ttl S] [--loop-wait S]
//! [--retry-timeout S] [--scenario both|host-loss|pg-crash] [--sync off|on|quorum] [--logs]`: write
//! unavailability of a 3-node cluster when the primary fails (`--sync`: with that
//! `synchronous_mode` turned on first).
//!
//! A client thread writes one row (`INSERT INTO bench(t) VALUES (now())`) every 20 ms to whichever
//! node accepts writes (it tries each node's PostgreSQL with a short connect timeout and
//! `target_session_attrs=read-write`) and records when each write is acknowledged. Two faults, each
//! `--rounds` times, on a healthy cluster (1 leader running + 2 replicas streaming), after a random
//! delay so that faults land at random points of the lease-renewal and HA cycles:
//!
//! * **primary host lost**: SIGKILL the primary's agent and then at once its postmaster and all of
//!   PostgreSQL's processes (its etcd member stays up). A replica has to take over when the leader
//!   lease expires.
//! * **PostgreSQL crash**: SIGKILL the primary's postmaster only; the agent restarts it in place.
//!
//! The write gap of a round is the longest interval between consecutive acknowledged writes from the
//! acknowledgement of the last write sent before the fault until writes have been flowing again for
//! 2 s (at least half of the possible writes acknowledged in the last 2 s). Between rounds the killed agent is
//! restarted and the cluster must be healthy again; that is not measured. Prints every round,
//! min/median/max, the targets, the settings, the machine, and Patroni's numbers from the field
//! notes for comparison. It reports; it does not assert.

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use nix::sys::signal::Signal;
use pgkeel_testkit::bench::{load, machine, stats};
use pgkeel_testkit::chaos::{Replication, protected, set_replication};
use pgkeel_testkit::writer::{Ack, CONNECT_TIMEOUT, WRITE_INTERVAL, WRITE_TIMEOUT, Writer};
use pgkeel_testkit::{ClusterOptions, PgkeelCluster, eventually, procs};

/// How long writes must keep flowing after they resumed before a round's gap is taken.
const SETTLE: Duration = Duration::from_secs(2);
/// Target for a PostgreSQL crash on the primary: writable again within this.
const TARGET_CRASH_S: f64 = 1.2;

const USAGE: &str = "usage: pgkeel-bench-failover [--rounds N] [--profile fast|patroni-defaults] \
[--ttl S] [--loop-wait S] [--retry-timeout S] [--scenario both|host-loss|pg-crash] [--sync off|on|quorum] [--logs]";

// ---------------------------------------------------------------------------------------------

/// A tiny xorshift64* generator for the random fault delays (no crate needed for that).
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Rng((nanos ^ u64::from(std::process::id()).rotate_left(32)) | 1)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

// ---------------------------------------------------------------------------------------------
// Rounds.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    HostLoss,
    PgCrash,
}

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Scenario::HostLoss => "primary host lost",
            Scenario::PgCrash => "PostgreSQL crash",
        }
    }

    /// Patroni 4.1.5's write gap on this machine, from shared/reference/field-notes.md:
    /// (its defaults 30/10/10, its fastest 20/2/3).
    fn patroni(self) -> (&'static str, &'static str) {
        match self {
            Scenario::HostLoss => ("24.6 s (20.7-29.3)", "19.4 s (18.5-19.8)"),
            Scenario::PgCrash => ("5.1 s (2.2-10.6)", "2.4 s (2.1-3.9)"),
        }
    }
}

/// What one round measured.
#[derive(Debug, Clone)]
struct Round {
    /// Longest interval between consecutive acknowledged writes around the fault (s).
    gap: f64,
    /// From the fault to the first acknowledged write after it (s).
    first_write: f64,
    /// Random delay before the fault (s).
    delay: f64,
    old_leader: usize,
    /// The node that took the first write after the fault.
    new_node: usize,
}

struct Bench {
    cluster: PgkeelCluster,
    writer: Writer,
    rng: Rng,
    /// Random delays are uniform in [0, spread).
    spread: Duration,
    /// Bound of "writes resume" and "healthy again".
    recover_timeout: Duration,
    logs: bool,
    /// The replication mode (`--sync`).
    replication: Replication,
}

impl Bench {
    /// Waits until the cluster is healthy, the client has been writing to the leader for 1 s and,
    /// in the synchronous modes, the `sync` key names a standby.
    fn wait_steady(&self) -> anyhow::Result<usize> {
        let leader = self.cluster.wait_healthy(self.recover_timeout)?;
        eventually(self.recover_timeout, Duration::from_millis(50), || {
            let now = Instant::now();
            let acks = self.writer.acks();
            let recent: Vec<&Ack> = acks
                .iter()
                .rev()
                .take_while(|a| now.duration_since(a.at) < Duration::from_secs(1))
                .collect();
            if recent.len() >= 25 && recent.iter().all(|a| a.node == leader) {
                // In the synchronous modes a host loss is failed over only once the `sync`
                // key names a standby again (a restarted primary lists nobody at first).
                protected(&self.cluster, leader, self.replication)
            } else {
                Err(format!(
                    "{} writes to node{leader} in the last second",
                    recent.len()
                ))
            }
        })
        .map_err(|e| anyhow!("the client does not write steadily to the leader: {e}"))?;
        Ok(leader)
    }

    fn round(&mut self, scenario: Scenario) -> anyhow::Result<Round> {
        let leader = self.wait_steady()?;
        let delay = self.spread.mul_f64(self.rng.unit());
        std::thread::sleep(delay);
        let sizes = self.log_sizes();
        match scenario {
            Scenario::HostLoss => kill_host(&mut self.cluster, leader)?,
            Scenario::PgCrash => {
                self.cluster.kill_postmaster(leader)?;
            }
        }
        // The fault is complete once the signals are delivered; writes sent before this instant may
        // still be acknowledged (they count as before the fault).
        let fault = Instant::now();
        // Writes resume and keep flowing: at least half of the possible writes acknowledged during
        // the last SETTLE, all sent after the fault. (A single early acknowledgement, e.g. from a
        // backend orphaned by a crashed postmaster, does not end the round.)
        let steady = (SETTLE.as_millis() / WRITE_INTERVAL.as_millis() / 2) as usize;
        let settle_end = eventually(self.recover_timeout, Duration::from_millis(20), || {
            let now = Instant::now();
            let acks = self.writer.acks();
            let recent = acks
                .iter()
                .rev()
                .take_while(|a| a.sent > fault)
                .filter(|a| now.duration_since(a.at) <= SETTLE)
                .count();
            if recent >= steady {
                Ok(now)
            } else {
                Err(format!(
                    "{recent} writes sent after the fault acknowledged in the last {} s",
                    SETTLE.as_secs()
                ))
            }
        })
        .map_err(|e| {
            let dir = self.cluster.base_dir();
            anyhow!(
                "writes did not resume: {e} ({} {})\n{}",
                dir.display(),
                if dir.exists() { "exists" } else { "is gone" },
                self.cluster.log_tails(40)
            )
        })?;
        let round = {
            let acks = self.writer.acks();
            let before = acks
                .iter()
                .rev()
                .find(|a| a.sent <= fault)
                .copied()
                .ok_or_else(|| anyhow!("no write before the fault"))?;
            let first_after = acks
                .iter()
                .find(|a| a.sent > fault)
                .copied()
                .ok_or_else(|| anyhow!("no write after the fault"))?;
            let window: Vec<&Ack> = acks
                .iter()
                .filter(|a| a.at >= before.at && a.at <= settle_end)
                .collect();
            let gap = window
                .windows(2)
                .map(|w| w[1].at.duration_since(w[0].at).as_secs_f64())
                .fold(0.0, f64::max);
            Round {
                gap,
                first_write: first_after.at.duration_since(fault).as_secs_f64(),
                delay: delay.as_secs_f64(),
                old_leader: leader,
                new_node: first_after.node,
            }
        };
        if self.logs {
            self.print_logs(&sizes, fault, settle_end);
        }
        // Back to healthy (not measured).
        if scenario == Scenario::HostLoss {
            self.cluster.restart_agent(leader)?;
        }
        self.cluster.wait_healthy(self.recover_timeout)?;
        Ok(round)
    }

    /// Sizes of every agent log and PostgreSQL log, to print what was logged since.
    fn log_sizes(&self) -> Vec<(usize, usize)> {
        (0..self.cluster.len())
            .map(|i| (self.cluster.logs(i).len(), self.pg_log(i).len()))
            .collect()
    }

    /// Node `i`'s PostgreSQL log (the postmaster's stderr, where the agent sends it).
    fn pg_log(&self, i: usize) -> String {
        let path = self
            .cluster
            .node(i)
            .data_dir
            .join("log")
            .join("pgkeel-postgres.log");
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Prints what each agent and PostgreSQL logged since the fault (without the leader's
    /// routine "no action" lines), and the client's distinct errors.
    fn print_logs(&self, sizes: &[(usize, usize)], fault: Instant, until: Instant) {
        for (i, &(agent_from, pg_from)) in sizes.iter().enumerate() {
            for (what, text, from) in [
                ("agent", self.cluster.logs(i), agent_from),
                ("PostgreSQL", self.pg_log(i), pg_from),
            ] {
                println!("    --- node{i} {what} log since the fault ---");
                let new = text.get(from..).unwrap_or_default();
                for l in new
                    .lines()
                    .filter(|l| !l.contains("no action. I am"))
                    .take(60)
                {
                    println!("    {l}");
                }
            }
        }
        let errs = self.writer.errors();
        let mut seen: Vec<&str> = Vec::new();
        println!("    --- client errors since the fault (distinct, first 15) ---");
        for (at, msg) in errs.iter().filter(|(at, _)| *at > fault && *at <= until) {
            if seen.len() < 15 && !seen.contains(&msg.as_str()) {
                seen.push(msg);
                println!("    +{:.3} s {msg}", at.duration_since(fault).as_secs_f64());
            }
        }
    }
}

/// The PIDs whose parent is `pid` (scans `/proc`).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| procs::parent(p) == Some(pid))
        .collect()
}

/// The loss of node `i`'s host (its etcd member aside): SIGKILL the agent, then the postmaster
/// together with every PostgreSQL child process. The children matter: a backend orphaned by its
/// postmaster's death can still commit a write it already received, which no lost host would do.
fn kill_host(cluster: &mut PgkeelCluster, i: usize) -> anyhow::Result<()> {
    let pm = cluster
        .postmaster_pid(i)
        .ok_or_else(|| anyhow!("node{i} has no running postmaster"))?;
    cluster.kill_agent(i)?;
    // Stopped, the postmaster forks no new child while we collect them.
    procs::signal(pm, Signal::SIGSTOP)?;
    let children = children_of(pm);
    for &c in &children {
        // A child may exit on its own meanwhile: ignore "no such process".
        let _ = procs::signal(c, Signal::SIGKILL);
    }
    procs::signal(pm, Signal::SIGKILL)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Arguments and report.

struct Args {
    rounds: usize,
    ttl: u32,
    loop_wait: u32,
    retry_timeout: u32,
    profile: &'static str,
    scenarios: Vec<Scenario>,
    logs: bool,
    /// `--sync`: the replication mode turned on before the first round.
    replication: Replication,
}

fn parse_args(args: &[String]) -> anyhow::Result<Args> {
    let mut a = Args {
        rounds: 5,
        ttl: 6,
        loop_wait: 1,
        retry_timeout: 2,
        profile: "fast",
        scenarios: vec![Scenario::HostLoss, Scenario::PgCrash],
        logs: false,
        replication: Replication::Async,
    };
    let (mut ttl, mut loop_wait, mut retry) = (None, None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--logs" {
            a.logs = true;
            continue;
        }
        let Some(v) = it.next() else {
            bail!("{flag} needs a value\n{USAGE}");
        };
        match flag.as_str() {
            "--rounds" => a.rounds = v.parse().context("--rounds")?,
            "--ttl" => ttl = Some(v.parse().context("--ttl")?),
            "--loop-wait" => loop_wait = Some(v.parse().context("--loop-wait")?),
            "--retry-timeout" => retry = Some(v.parse().context("--retry-timeout")?),
            "--profile" => match v.as_str() {
                "fast" => (a.profile, a.ttl, a.loop_wait, a.retry_timeout) = ("fast", 6, 1, 2),
                "patroni-defaults" => {
                    (a.profile, a.ttl, a.loop_wait, a.retry_timeout) =
                        ("patroni-defaults", 30, 10, 10)
                }
                other => bail!("unknown profile {other:?} (fast, patroni-defaults)\n{USAGE}"),
            },
            "--sync" => {
                a.replication = Replication::parse(v)
                    .with_context(|| format!("--sync {v}: expected off, on or quorum\n{USAGE}"))?
            }
            "--scenario" => {
                a.scenarios = match v.as_str() {
                    "both" => vec![Scenario::HostLoss, Scenario::PgCrash],
                    "host-loss" => vec![Scenario::HostLoss],
                    "pg-crash" => vec![Scenario::PgCrash],
                    other => bail!("unknown scenario {other:?}\n{USAGE}"),
                }
            }
            _ => bail!("unknown argument {flag:?}\n{USAGE}"),
        }
    }
    if ttl.is_some() || loop_wait.is_some() || retry.is_some() {
        a.profile = "custom";
    }
    a.ttl = ttl.unwrap_or(a.ttl);
    a.loop_wait = loop_wait.unwrap_or(a.loop_wait);
    a.retry_timeout = retry.unwrap_or(a.retry_timeout);
    if a.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    Ok(a)
}

/// The target write gap of a scenario (s).
fn target(scenario: Scenario, ttl: u32) -> f64 {
    match scenario {
        Scenario::HostLoss => f64::from(ttl) + 1.0,
        Scenario::PgCrash => TARGET_CRASH_S,
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = parse_args(&args)?;
    let opts = ClusterOptions {
        scope: "bench".to_owned(),
        ttl: a.ttl,
        loop_wait: a.loop_wait,
        retry_timeout: a.retry_timeout,
        ..ClusterOptions::default()
    };
    let bin = pgkeel_testkit::cluster::find_bin("pgkeel", None, "PGKEEL_BIN")?;
    // pgkeel's lease renewal interval, clamp(ttl/4, 0.3 s, 5 s) (docs/ha-timing.md): faults land at a
    // random point of it and of the HA loop.
    let renew = (f64::from(a.ttl) / 4.0).clamp(0.3, 5.0);
    let spread = Duration::from_secs_f64(renew.max(f64::from(a.loop_wait)));
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "pgkeel failover bench: {} rounds per scenario, 3-node cluster",
        a.rounds
    );
    println!("machine:  {} (load average {} at start)", machine(), load());
    println!(
        "binary:   {} (bench built {build}; bench/failover.sh builds both in release)",
        bin.display()
    );
    println!(
        "settings: profile {}: ttl={} loop_wait={} retry_timeout={}; synchronous_mode {}; 3 etcd 3.4 members (pre-vote), PostgreSQL 15, all on 127.0.0.1",
        a.profile,
        a.ttl,
        a.loop_wait,
        a.retry_timeout,
        a.replication.label()
    );
    if a.loop_wait + 2 * a.retry_timeout > a.ttl {
        println!(
            "          (loop_wait + 2*retry_timeout > ttl: the agent lowers loop_wait, as Patroni does)"
        );
    }
    println!(
        "client:   one INSERT every {} ms to the node that accepts a read-write session (connect bound {} ms, write bound {} ms)",
        WRITE_INTERVAL.as_millis(),
        CONNECT_TIMEOUT.as_millis(),
        WRITE_TIMEOUT.as_millis()
    );
    println!(
        "measured: write gap = longest interval between consecutive acknowledged writes, from the last write sent before the fault until writes flow again steadily for {} s",
        SETTLE.as_secs()
    );
    println!(
        "faults:   after a random delay in [0, {:.1} s) on a healthy cluster; host lost = SIGKILL agent + postmaster + its children (etcd member stays); PostgreSQL crash = SIGKILL postmaster",
        spread.as_secs_f64()
    );
    println!();

    let cluster = PgkeelCluster::start(opts)?;
    let recover_timeout = Duration::from_secs(u64::from(a.ttl) * 3 + 60);
    let leader = cluster.wait_healthy(recover_timeout)?;
    cluster
        .psql(
            leader,
            "CREATE TABLE IF NOT EXISTS bench(id bigserial PRIMARY KEY, t timestamptz NOT NULL)",
        )
        .context("creating the bench table")?;
    let ports: Vec<u16> = (0..cluster.len())
        .map(|i| cluster.node(i).pg_port)
        .collect();
    set_replication(&cluster, leader, a.replication)?;
    let writer = Writer::start(ports, "pgkeel-bench-failover")?;
    let mut bench = Bench {
        cluster,
        writer,
        rng: Rng::seeded(),
        spread,
        recover_timeout,
        logs: a.logs,
        replication: a.replication,
    };

    let mut results: Vec<(Scenario, Vec<Round>)> = Vec::new();
    for &scenario in &a.scenarios {
        println!("{}:", scenario.label());
        let mut rounds = Vec::new();
        for n in 1..=a.rounds {
            let r = bench
                .round(scenario)
                .with_context(|| format!("{} round {n}", scenario.label()))?;
            let mut over = if r.gap > target(scenario, a.ttl) {
                "  OVER TARGET"
            } else {
                ""
            };
            if scenario == Scenario::HostLoss && r.new_node == r.old_leader {
                over = "  WARNING: the lost node acknowledged a write sent after the fault";
            }
            println!(
                "  round {n}: write gap {:6.3} s  (next write acknowledged {:.3} s after the fault, node{} -> node{}, fault delay {:.2} s, load {}){over}",
                r.gap,
                r.first_write,
                r.old_leader,
                r.new_node,
                r.delay,
                load()
            );
            rounds.push(r);
        }
        results.push((scenario, rounds));
        println!();
    }
    drop(bench);

    println!(
        "summary (write gap, s; ttl={} loop_wait={} retry_timeout={}, {build} bench, {} rounds):",
        a.ttl, a.loop_wait, a.retry_timeout, a.rounds
    );
    println!(
        "  {:<18} {:>7} {:>7} {:>7}  {:<10} {:<22}  Patroni 4.1.5 here (field notes, NOT measured by this bench)",
        "scenario", "min", "median", "max", "target", "result"
    );
    for (scenario, rounds) in &results {
        let gaps: Vec<f64> = rounds.iter().map(|r| r.gap).collect();
        let Some((min, med, max)) = stats(&gaps) else {
            continue;
        };
        let t = target(*scenario, a.ttl);
        let over = gaps.iter().filter(|&&g| g > t).count();
        let result = if over == 0 {
            "meets (all rounds)".to_owned()
        } else {
            format!("MISSES in {over} of {}", gaps.len())
        };
        let (pd, pf) = scenario.patroni();
        let target_text = format!("< {t:.1} s");
        println!(
            "  {:<18} {min:7.3} {med:7.3} {max:7.3}  {target_text:<10} {result:<22}  30/10/10: {pd}; 20/2/3: {pf}",
            scenario.label()
        );
    }
    println!(
        "  targets: host lost within ttl + 1 s ({:.0} s here); PostgreSQL crash writable again within {TARGET_CRASH_S} s",
        f64::from(a.ttl) + 1.0
    );
    Ok(())
}

fn main() -> ExitCode {
    pgkeel_testkit::bench::exit_code("pgkeel-bench-failover", run())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn stats_of_odd_and_even() {
        assert_eq!(stats(&[3.0, 1.0, 2.0]), Some((1.0, 2.0, 3.0)));
        assert_eq!(stats(&[4.0, 1.0, 2.0, 3.0]), Some((1.0, 2.5, 4.0)));
        assert_eq!(stats(&[]), None);
    }

    #[test]
    fn profiles_and_overrides() {
        let a = parse_args(&args("")).unwrap();
        assert_eq!(
            (a.ttl, a.loop_wait, a.retry_timeout, a.rounds),
            (6, 1, 2, 5)
        );
        let a = parse_args(&args("--profile patroni-defaults --rounds 7")).unwrap();
        assert_eq!(
            (a.ttl, a.loop_wait, a.retry_timeout, a.rounds),
            (30, 10, 10, 7)
        );
        let a = parse_args(&args("--ttl 8 --profile fast")).unwrap();
        assert_eq!((a.ttl, a.loop_wait, a.profile), (8, 1, "custom"));
        let a = parse_args(&args("--scenario pg-crash --logs")).unwrap();
        assert_eq!(a.scenarios, vec![Scenario::PgCrash]);
        assert!(a.logs);
        assert!(parse_args(&args("--rounds")).is_err());
        assert!(parse_args(&args("--rounds 0")).is_err());
        assert!(parse_args(&args("--profile slow")).is_err());
    }

    #[test]
    fn rng_is_in_unit_interval() {
        let mut r = Rng(42);
        for _ in 0..1000 {
            let x = r.unit();
            assert!((0.0..1.0).contains(&x));
        }
    }
}
