//! `pgkeel-bench-flood [--rounds N] [--seconds S] [--connections N]`: how fast the leader's
//! `/health` answers while a flood of idle TCP connections hits its REST port.
//!
//! A 3-node cluster (fast profile ttl 6 / loop_wait 1 / retry_timeout 2) whose agents may each
//! hold 1024 open files. Each round floods the leader's REST port with up to `--connections`
//! idle connections (default 3072, three times what the agent could hold) for `--seconds`
//! (default 8), 60,000 connections at most, while a checker sends `GET /health` every 100 ms on
//! a new connection ([`pgkeel_testkit::flood`], the same flood as the end-to-end test). Prints
//! every round, min/median/max of all checks against issue 10's target (every check answered
//! 200 within 100 ms), the settings and the machine. It reports; it does not assert. The flood's
//! client runs on the same cores as the cluster, which a real attacker's would not.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use pgkeel_testkit::bench::{load, machine, stats};
use pgkeel_testkit::flood::{self, Flood};
use pgkeel_testkit::{ClusterOptions, PgkeelCluster};

/// Open files each agent may hold.
const AGENT_OPEN_FILES: u64 = 1024;
/// Issue 10's target: every health check during the flood answered within this.
const TARGET_MS: f64 = 100.0;

const USAGE: &str = "usage: pgkeel-bench-flood [--rounds N] [--seconds S] [--connections N]";

#[derive(Debug, PartialEq)]
struct Args {
    rounds: u32,
    seconds: u64,
    connections: usize,
}

fn parse_args(args: &[String]) -> anyhow::Result<Args> {
    let mut a = Args {
        rounds: 3,
        seconds: 8,
        connections: 3 * AGENT_OPEN_FILES as usize,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = || -> anyhow::Result<u64> {
            match value.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => bail!("{flag}: expected a positive number, got {value:?}\n{USAGE}"),
            }
        };
        match flag.as_str() {
            "--rounds" => a.rounds = u32::try_from(number()?).context("--rounds: too large")?,
            "--seconds" => a.seconds = number()?.min(600),
            "--connections" => {
                a.connections = usize::try_from(number()?).context("--connections: too large")?
            }
            _ => bail!("unknown argument {flag:?}\n{USAGE}"),
        }
    }
    Ok(a)
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = parse_args(&args)?;
    let limit = flood::raise_own_open_files();
    if (limit as usize) < a.connections + 512 {
        bail!(
            "the flood needs {} open files, this process may have {limit}",
            a.connections + 512
        );
    }
    let bin = pgkeel_testkit::cluster::find_bin("pgkeel", None, "PGKEEL_BIN")?;
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("pgkeel REST flood bench: {} rounds", a.rounds);
    println!("machine:  {} (load average {} at start)", machine(), load());
    println!(
        "binary:   {} (bench built {build}; bench/flood.sh builds both in release)",
        bin.display()
    );
    println!(
        "settings: 3-node cluster ttl=6 loop_wait=1 retry_timeout=2, each agent limited to {AGENT_OPEN_FILES} open files; all on 127.0.0.1"
    );
    println!(
        "flood:    up to {} idle connections at a time against the leader's REST port for {} s (60,000 at most), re-opened every 200 ms; GET /health on a new connection every 100 ms",
        a.connections, a.seconds
    );
    println!();
    let cluster = PgkeelCluster::start(ClusterOptions {
        scope: "bench-flood".to_owned(),
        ttl: 6,
        loop_wait: 1,
        retry_timeout: 2,
        agent_open_files: Some(AGENT_OPEN_FILES),
        ..ClusterOptions::default()
    })?;
    let leader = cluster.wait_healthy(Duration::from_secs(60))?;
    let api: SocketAddr = format!("127.0.0.1:{}", cluster.node(leader).api_port).parse()?;
    let flood = Flood {
        connections: a.connections,
        duration: Duration::from_secs(a.seconds),
        total: 60_000,
    };
    let mut all = Vec::new();
    let mut failed = 0usize;
    for n in 1..=a.rounds {
        let out = flood.run(api);
        let ms = out.millis();
        let bad = out.checks.iter().filter(|c| c.status != 200).count();
        failed += bad;
        let (min, med, max) = stats(&ms).unwrap_or_default();
        println!(
            "  round {n}: {} connections, {} checks ({bad} not 200), ms min {min:.1} median {med:.1} max {max:.1} (load {})",
            out.opened,
            ms.len(),
            load()
        );
        all.extend(ms);
        cluster.wait_healthy(Duration::from_secs(30))?;
    }
    let now = cluster.wait_healthy(Duration::from_secs(30))?;
    println!();
    let Some((min, med, max)) = stats(&all) else {
        bail!("no health check ran");
    };
    let over = all.iter().filter(|&&t| t > TARGET_MS).count();
    let result = if over == 0 && failed == 0 {
        "meets".to_owned()
    } else {
        format!(
            "MISSES: {over} of {} over {TARGET_MS} ms, {failed} not 200",
            all.len()
        )
    };
    println!(
        "summary ({build}, {} rounds, {} checks): /health ms min {min:.1} median {med:.1} max {max:.1}; target every check 200 within {TARGET_MS} ms: {result}",
        a.rounds,
        all.len()
    );
    println!(
        "leader:   node{leader} before, node{now} after{}",
        if now == leader {
            ""
        } else {
            "  WARNING: the flood moved the leader"
        }
    );
    Ok(())
}

fn main() -> ExitCode {
    pgkeel_testkit::bench::exit_code("pgkeel-bench-flood", run())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn defaults_and_flags() {
        let a = parse_args(&args("")).unwrap();
        assert_eq!((a.rounds, a.seconds, a.connections), (3, 8, 3072));
        let a = parse_args(&args("--rounds 5 --seconds 4 --connections 100")).unwrap();
        assert_eq!((a.rounds, a.seconds, a.connections), (5, 4, 100));
        assert!(parse_args(&args("--rounds")).is_err());
        assert!(parse_args(&args("--rounds 0")).is_err());
        assert!(parse_args(&args("--seconds x")).is_err());
        assert!(parse_args(&args("--fast 1")).is_err());
    }
}
