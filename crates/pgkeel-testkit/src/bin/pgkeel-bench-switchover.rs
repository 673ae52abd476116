//! `pgkeel-bench-switchover [--mode switchover|sigterm] [--rounds N] [--ttl S] [--loop-wait S]
//! [--retry-timeout S]`: write unavailability of a 3-node cluster during a planned switchover,
//! or while the leader's agent is stopped with SIGTERM (`systemctl stop`).
//!
//! A client writes one row every 20 ms to whichever node accepts writes
//! (`pgkeel_testkit::writer`). Each round, on a healthy cluster (1 leader running + 2 replicas
//! streaming), either `POST /switchover {"leader": L, "candidate": C}` is sent to the leader
//! (rounds alternate between two nodes) or the leader's agent gets SIGTERM (and is started
//! again once another node leads, to rejoin as a replica). The longest interval between
//! consecutive acknowledged writes, from the last write sent before the request or signal until
//! writes flowed for 2 s on the new leader, is the round's gap. Prints every round,
//! min/median/max, the target, the settings, the machine and Patroni's number from the field
//! notes, and how many acknowledged writes are missing on the last leader (none may be). It
//! reports; it does not assert.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pgkeel_testkit::bench::{load, machine, stats};
use pgkeel_testkit::writer::{WRITE_INTERVAL, Writer};
use pgkeel_testkit::{ClusterOptions, PgkeelCluster, eventually};

/// Target median write gap of a planned switchover (s).
const TARGET_S: f64 = 0.6;
/// Patroni 4.1.5's write gap on this machine (shared/reference/field-notes.md).
const PATRONI_S: f64 = 2.38;
/// How long writes must flow after the switch before the gap is taken.
const SETTLE: Duration = Duration::from_secs(2);

const USAGE: &str = "usage: pgkeel-bench-switchover [--mode switchover|sigterm] [--rounds N] \
                     [--ttl S] [--loop-wait S] [--retry-timeout S]";

/// What hands the leadership over in each round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `POST /switchover` to the leader, naming the candidate.
    Switchover,
    /// SIGTERM to the leader's agent (a drained node); the agent is started again afterwards.
    Sigterm,
}

impl Mode {
    /// What a round does, for the report.
    fn describe(self) -> &'static str {
        match self {
            Mode::Switchover => "planned switchover (POST /switchover to a named candidate)",
            Mode::Sigterm => "SIGTERM of the leader's agent",
        }
    }
}

struct Args {
    mode: Mode,
    rounds: usize,
    ttl: u32,
    loop_wait: u32,
    retry_timeout: u32,
}

fn parse_args(args: &[String]) -> anyhow::Result<Args> {
    // Patroni's defaults: the switchover path must not depend on them.
    let mut a = Args {
        mode: Mode::Switchover,
        rounds: 10,
        ttl: 30,
        loop_wait: 10,
        retry_timeout: 10,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        if flag == "--mode" {
            a.mode = match value.as_str() {
                "switchover" => Mode::Switchover,
                "sigterm" => Mode::Sigterm,
                other => bail!("--mode {other}: expected switchover or sigterm\n{USAGE}"),
            };
            continue;
        }
        let n: u32 = value
            .parse()
            .with_context(|| format!("{flag} {value}: not a number\n{USAGE}"))?;
        match flag.as_str() {
            "--rounds" => a.rounds = usize::try_from(n.max(1))?,
            "--ttl" => a.ttl = n,
            "--loop-wait" => a.loop_wait = n,
            "--retry-timeout" => a.retry_timeout = n,
            _ => bail!("unknown option {flag}\n{USAGE}"),
        }
    }
    Ok(a)
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = parse_args(&args)?;
    pgkeel_testkit::require_tools();
    let mut c = PgkeelCluster::start(ClusterOptions {
        scope: "bench-switchover".into(),
        ttl: a.ttl,
        loop_wait: a.loop_wait,
        retry_timeout: a.retry_timeout,
        pgkeel_bin: std::env::var_os("PGKEEL_BIN").map(Into::into),
        pgkeelctl_bin: std::env::var_os("PGKEELCTL_BIN").map(Into::into),
        ..ClusterOptions::default()
    })?;
    let mut leader = c.wait_healthy(Duration::from_secs(120))?;
    c.psql(leader, "CREATE TABLE bench (t timestamptz)")?;
    let ports: Vec<u16> = (0..c.len()).map(|i| c.node(i).pg_port).collect();
    let writer = Writer::start(ports, "pgkeel-bench-switchover")?;
    println!("machine:  {}", machine());
    println!(
        "settings: {}; ttl {} / loop_wait {} / retry_timeout {}; one INSERT every {} ms",
        a.mode.describe(),
        a.ttl,
        a.loop_wait,
        a.retry_timeout,
        WRITE_INTERVAL.as_millis()
    );
    let mut gaps = Vec::new();
    for round in 1..=a.rounds {
        // Writes flowing on a healthy cluster before the request.
        std::thread::sleep(Duration::from_secs(2));
        let t = Instant::now();
        let expected = match a.mode {
            Mode::Switchover => Some(switchover(&c, leader, round)?),
            Mode::Sigterm => {
                c.terminate_agent(leader, Duration::from_secs(60))
                    .with_context(|| format!("round {round}\n{}", c.log_tails(30)))?;
                None
            }
        };
        let now_leader = eventually(Duration::from_secs(60), Duration::from_millis(50), || {
            c.writable_leader_other_than(leader)
        })
        .map_err(|e| anyhow::anyhow!("round {round}: no new leader: {e}\n{}", c.log_tails(60)))?;
        if let Some(cand) = expected
            && now_leader != cand
        {
            bail!("round {round}: {} leads, not {}", now_leader, cand);
        }
        std::thread::sleep(SETTLE);
        let gap = writer
            .longest_gap(t, Instant::now())
            .context("no writes around the handover")?;
        let s = gap.as_secs_f64();
        println!(
            "round {round:>2}: {} -> {}: write gap {s:.3} s (load {})",
            c.node(leader).name,
            c.node(now_leader).name,
            load()
        );
        gaps.push(s);
        if a.mode == Mode::Sigterm {
            // The drained node comes back and rejoins as a replica before the next round.
            c.restart_agent(leader)?;
        }
        c.wait_healthy(Duration::from_secs(120))
            .with_context(|| format!("round {round}: the cluster did not settle"))?;
        leader = now_leader;
    }
    let acknowledged = writer.acks().len();
    drop(writer);
    // Every acknowledged INSERT is a row on the last leader (more rows are fine: a commit
    // whose acknowledgement was lost in the handover).
    let rows: usize = c
        .psql(leader, "SELECT count(*) FROM bench")?
        .trim()
        .parse()
        .context("counting the rows on the last leader")?;
    println!(
        "acknowledged writes: {acknowledged}, rows on the last leader: {rows}, lost: {}",
        acknowledged.saturating_sub(rows)
    );
    if let Some((min, median, max)) = stats(&gaps) {
        let what = match a.mode {
            Mode::Switchover => "planned switchover",
            Mode::Sigterm => "leader agent SIGTERM",
        };
        println!(
            "{what} write gap: min {min:.3} s / median {median:.3} s / max {max:.3} s over {} rounds",
            gaps.len()
        );
        println!(
            "target: median < {TARGET_S} s; Patroni 4.1.5 on this machine (switchover): {PATRONI_S} s"
        );
    }
    Ok(())
}

/// Asks `leader` to hand over to another node (alternating between nodes 0 and 1); returns the
/// candidate's index.
fn switchover(c: &PgkeelCluster, leader: usize, round: usize) -> anyhow::Result<usize> {
    let cand = if leader == 0 { 1 } else { 0 };
    let body = format!(
        r#"{{"leader":"{}","candidate":"{}"}}"#,
        c.node(leader).name,
        c.node(cand).name
    );
    let (code, answer) = c.api_request_within(
        leader,
        "POST",
        "/switchover",
        &body,
        Duration::from_secs(60),
    )?;
    if code != 200 {
        bail!("round {round}: {code} {answer}\n{}", c.log_tails(30));
    }
    Ok(cand)
}

fn main() -> ExitCode {
    pgkeel_testkit::bench::exit_code("pgkeel-bench-switchover", run())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_override_patronis_defaults() {
        let a = parse_args(&[]).unwrap();
        assert_eq!((a.rounds, a.ttl, a.loop_wait), (10, 30, 10));
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let a = parse_args(&s(&["--rounds", "3", "--loop-wait", "1"])).unwrap();
        assert_eq!((a.rounds, a.loop_wait), (3, 1));
        assert!(parse_args(&s(&["--rounds"])).is_err());
        assert!(parse_args(&s(&["--nope", "1"])).is_err());
        let a = parse_args(&s(&["--mode", "sigterm"])).unwrap();
        assert_eq!(a.mode, Mode::Sigterm);
        assert!(parse_args(&s(&["--mode", "reboot"])).is_err());
    }
}
