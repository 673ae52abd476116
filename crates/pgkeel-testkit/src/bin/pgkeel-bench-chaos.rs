//! `pgkeel-bench-chaos [--mode on|quorum|off|all] [--faults N] [--seed S] [--writers W]
//! [--ttl S] [--loop-wait S] [--retry-timeout S] [--settle-bound S]`: the seeded fault campaign
//! (`pgkeel_testkit::chaos`) on a fresh 3-node cluster per mode: every fault, then per fault
//! kind the write gap and the time to settle (min/median/max), the acknowledged writes lost and
//! the windows with two primaries taking writes. `all` runs `on`, `quorum` and `off` with the
//! same seed. Exits 1 when a synchronous mode lost an acknowledged write or had overlapping
//! primaries (the asynchronous figures are reported, not judged).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use pgkeel_testkit::bench::{exit_code, load, machine};
use pgkeel_testkit::chaos::{self, CampaignOptions, Replication};
use pgkeel_testkit::{ClusterOptions, PgkeelCluster};

const USAGE: &str = "usage: pgkeel-bench-chaos [--mode on|quorum|off|all] [--faults N] [--seed S] \
[--writers W] [--ttl S] [--loop-wait S] [--retry-timeout S] [--settle-bound S]";

struct Args {
    modes: Vec<Replication>,
    faults: usize,
    seed: u64,
    writers: usize,
    ttl: u32,
    loop_wait: u32,
    retry_timeout: u32,
    settle_bound: u64,
}

fn parse_args(args: &[String]) -> anyhow::Result<Args> {
    let mut a = Args {
        modes: vec![Replication::Sync, Replication::Quorum, Replication::Async],
        faults: 20,
        seed: chaos::fresh_seed(),
        writers: 3,
        ttl: 6,
        loop_wait: 1,
        retry_timeout: 2,
        settle_bound: 90,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            bail!("{USAGE}");
        }
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        if flag == "--mode" {
            a.modes = match value.as_str() {
                "all" => a.modes,
                m => vec![
                    Replication::parse(m)
                        .with_context(|| format!("--mode {m}: expected on, quorum, off or all"))?,
                ],
            };
            continue;
        }
        let n: u64 = value
            .parse()
            .with_context(|| format!("{flag} {value}: not a number\n{USAGE}"))?;
        let small = || u32::try_from(n).with_context(|| format!("{flag} {n}: too large"));
        match flag.as_str() {
            "--faults" => a.faults = usize::try_from(n.max(1))?,
            "--seed" => a.seed = n,
            "--writers" => a.writers = usize::try_from(n.clamp(1, 16))?,
            "--ttl" => a.ttl = small()?,
            "--loop-wait" => a.loop_wait = small()?,
            "--retry-timeout" => a.retry_timeout = small()?,
            "--settle-bound" => a.settle_bound = n.max(1),
            _ => bail!("unknown option {flag}\n{USAGE}"),
        }
    }
    Ok(a)
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = parse_args(&args)?;
    pgkeel_testkit::require_tools();
    println!("machine:  {}", machine());
    println!(
        "settings: ttl {} / loop_wait {} / retry_timeout {}; {} writers, one INSERT each every 20 ms; \
         {} faults per mode; settle bound {} s; seed {} (replay: --seed {})",
        a.ttl, a.loop_wait, a.retry_timeout, a.writers, a.faults, a.settle_bound, a.seed, a.seed
    );
    let mut failed = Vec::new();
    for mode in &a.modes {
        let mut c = PgkeelCluster::start(ClusterOptions {
            scope: format!("bench-chaos-{}", mode.label()),
            ttl: a.ttl,
            loop_wait: a.loop_wait,
            retry_timeout: a.retry_timeout,
            pgkeel_bin: std::env::var_os("PGKEEL_BIN").map(Into::into),
            pgkeelctl_bin: std::env::var_os("PGKEELCTL_BIN").map(Into::into),
            ..ClusterOptions::default()
        })?;
        let outcome = chaos::run(
            &mut c,
            &CampaignOptions {
                replication: *mode,
                seed: a.seed,
                faults: a.faults,
                writers: a.writers,
                settle_bound: Duration::from_secs(a.settle_bound),
            },
        );
        // An aborted mode is reported and counted as failed; the other modes still run.
        let report = match outcome {
            Ok(report) => report,
            Err(e) => {
                println!("{e:?}");
                failed.push(mode.label());
                continue;
            }
        };
        print!("{}", report.render());
        println!("  (load {})", load());
        if !report.passed() {
            failed.push(mode.label());
        }
    }
    if !failed.is_empty() {
        bail!(
            "campaign aborted, acknowledged writes lost or overlapping primaries in mode(s) {failed:?}"
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    exit_code("pgkeel-bench-chaos", run())
}
