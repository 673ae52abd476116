//! `pgkeel-bench-switchover [--rounds N] [--ttl S] [--loop-wait S] [--retry-timeout S]`: write
//! unavailability of a 3-node cluster during a planned switchover.
//!
//! A client writes one row every 20 ms to whichever node accepts writes
//! (`pgkeel_testkit::writer`). Each round, on a healthy cluster (1 leader running + 2 replicas
//! streaming), `POST /switchover {"leader": L, "candidate": C}` is sent to the leader and the
//! longest interval between consecutive acknowledged writes, from the last write sent before the
//! request until writes flowed for 2 s on the new leader, is the round's gap. Rounds alternate
//! between two nodes. Prints every round, min/median/max, the target, the settings, the machine
//! and Patroni's number from the field notes. It reports; it does not assert.

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

const USAGE: &str =
    "usage: pgkeel-bench-switchover [--rounds N] [--ttl S] [--loop-wait S] [--retry-timeout S]";

struct Args {
    rounds: usize,
    ttl: u32,
    loop_wait: u32,
    retry_timeout: u32,
}

fn parse_args(args: &[String]) -> anyhow::Result<Args> {
    // Patroni's defaults: the switchover path must not depend on them.
    let mut a = Args {
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
    let c = PgkeelCluster::start(ClusterOptions {
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
    let candidate_of = |l: usize| if l == 0 { 1 } else { 0 };
    println!("machine:  {}", machine());
    println!(
        "settings: ttl {} / loop_wait {} / retry_timeout {}; one INSERT every {} ms",
        a.ttl,
        a.loop_wait,
        a.retry_timeout,
        WRITE_INTERVAL.as_millis()
    );
    let mut gaps = Vec::new();
    for round in 1..=a.rounds {
        // Writes flowing on a healthy cluster before the request.
        std::thread::sleep(Duration::from_secs(2));
        let cand = candidate_of(leader);
        let body = format!(
            r#"{{"leader":"{}","candidate":"{}"}}"#,
            c.node(leader).name,
            c.node(cand).name
        );
        let t = Instant::now();
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
        // Healthy, and the new leader's PostgreSQL takes writes (the key alone is not enough).
        let now_leader = eventually(Duration::from_secs(60), Duration::from_millis(50), || {
            let l = c.check_healthy()?;
            if c.writable().get(l) == Some(&true) {
                Ok(l)
            } else {
                Err(format!(
                    "{} holds the key but is not writable yet",
                    c.node(l).name
                ))
            }
        })
        .map_err(|e| anyhow::anyhow!("round {round}: not healthy: {e}\n{}", c.log_tails(60)))?;
        if now_leader != cand {
            bail!("round {round}: {} leads, not {}", now_leader, cand);
        }
        std::thread::sleep(SETTLE);
        let gap = writer
            .longest_gap(t, Instant::now())
            .context("no writes around the switchover")?;
        let s = gap.as_secs_f64();
        println!(
            "round {round:>2}: {} -> {}: write gap {s:.3} s (load {})",
            c.node(leader).name,
            c.node(cand).name,
            load()
        );
        gaps.push(s);
        leader = cand;
    }
    drop(writer);
    if let Some((min, median, max)) = stats(&gaps) {
        println!(
            "planned switchover write gap: min {min:.3} s / median {median:.3} s / max {max:.3} s over {} rounds",
            gaps.len()
        );
        println!("target: median < {TARGET_S} s; Patroni 4.1.5 on this machine: {PATRONI_S} s");
    }
    Ok(())
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
    }
}
