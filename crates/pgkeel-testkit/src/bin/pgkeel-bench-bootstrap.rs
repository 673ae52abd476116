//! `pgkeel-bench-bootstrap [--runs N]`: bootstrap time and agent memory of a fresh 3-node cluster.
//!
//! For each run: start 3 etcd members, launch 3 agents, and measure the time from launching the agents
//! until `/cluster` shows 1 leader (running) + 2 replicas (streaming); then read each agent's `VmRSS`.
//! Prints every run, min/median/max, the machine and the settings. Targets: healthy < 3 s, agent RSS
//! < 10 MiB. It reports; it does not assert.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use pgkeel_testkit::bench::{machine, stats};
use pgkeel_testkit::{ClusterOptions, PgkeelCluster, procs};

const TARGET_HEALTHY_S: f64 = 3.0;
const TARGET_RSS_KIB: u64 = 10 * 1024;

fn run() -> anyhow::Result<()> {
    let mut runs = 3usize;
    let mut logs = false;
    let mut opts = ClusterOptions {
        scope: "bench".to_owned(),
        ..ClusterOptions::default()
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    const USAGE: &str = "usage: pgkeel-bench-bootstrap [--runs N] [--profile patroni-defaults] \
        [--ttl S] [--loop-wait S] [--retry-timeout S] [--logs]";
    while let Some(a) = it.next() {
        if a == "--logs" {
            logs = true;
            continue;
        }
        match (a.as_str(), it.next()) {
            ("--runs", Some(n)) => runs = n.parse()?,
            ("--profile", Some(p)) if p == "patroni-defaults" => {
                (opts.ttl, opts.loop_wait, opts.retry_timeout) = (30, 10, 10);
            }
            ("--ttl", Some(n)) => opts.ttl = n.parse()?,
            ("--loop-wait", Some(n)) => opts.loop_wait = n.parse()?,
            ("--retry-timeout", Some(n)) => opts.retry_timeout = n.parse()?,
            _ => bail!(USAGE),
        }
    }
    let bin = pgkeel_testkit::cluster::find_bin("pgkeel", None, "PGKEEL_BIN")?;
    println!("pgkeel bootstrap bench: {runs} runs of a fresh 3-node cluster");
    println!("machine:  {}", machine());
    println!("binary:   {}", bin.display());
    println!(
        "settings: ttl={} loop_wait={} retry_timeout={}, 3 etcd 3.4 members (pre-vote), PostgreSQL 15",
        opts.ttl, opts.loop_wait, opts.retry_timeout
    );
    println!("measured: agents launched -> 1 leader running + 2 replicas streaming (per /cluster)");
    println!();
    let mut times = Vec::new();
    let mut rss_all = Vec::new();
    for run in 1..=runs {
        let cluster = PgkeelCluster::start(opts.clone())?;
        let launched = cluster.launched_at();
        cluster.wait_healthy(Duration::from_secs(120))?;
        let secs = launched.elapsed().as_secs_f64();
        let rss: Vec<u64> = (0..cluster.len())
            .map(|i| cluster.agent_pid(i).and_then(procs::rss_kib).unwrap_or(0))
            .collect();
        let rss_text: Vec<String> = rss
            .iter()
            .map(|k| format!("{:.1} MiB", *k as f64 / 1024.0))
            .collect();
        println!(
            "run {run}: healthy in {secs:.2} s; agent RSS {}",
            rss_text.join(", ")
        );
        if logs && secs >= TARGET_HEALTHY_S {
            println!("{}", cluster.log_tails(40));
        }
        times.push(secs);
        rss_all.extend(rss.iter().map(|&k| k as f64 / 1024.0));
        drop(cluster);
    }
    println!();
    if let Some((min, med, max)) = stats(&times) {
        let mark = if med < TARGET_HEALTHY_S {
            "meets"
        } else {
            "MISSES"
        };
        println!(
            "healthy:   min {min:.2} s, median {med:.2} s, max {max:.2} s  ({mark} target < {TARGET_HEALTHY_S} s)"
        );
    }
    if let Some((min, med, max)) = stats(&rss_all) {
        let mark = if max * 1024.0 < TARGET_RSS_KIB as f64 {
            "meets"
        } else {
            "MISSES"
        };
        println!(
            "agent RSS: min {min:.1} MiB, median {med:.1} MiB, max {max:.1} MiB  ({mark} target < {} MiB)",
            TARGET_RSS_KIB / 1024
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    pgkeel_testkit::bench::exit_code("pgkeel-bench-bootstrap", run())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_odd_and_even() {
        assert_eq!(stats(&[3.0, 1.0, 2.0]), Some((1.0, 2.0, 3.0)));
        assert_eq!(stats(&[4.0, 1.0, 2.0, 3.0]), Some((1.0, 2.5, 4.0)));
        assert_eq!(stats(&[]), None);
    }
}
