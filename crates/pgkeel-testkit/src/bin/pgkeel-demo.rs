//! `pgkeel-demo`: a persistent 3-node pgkeel cluster on loopback, for trying pgkeel by hand.
//!
//! ```text
//! pgkeel-demo start  [--dir .demo]   # etcd x3 + pgkeel x3 + PostgreSQL 15 x3, then `pgkeelctl list`
//! pgkeel-demo status [--dir .demo]   # `pgkeelctl list`
//! pgkeel-demo stop   [--dir .demo]   # kills exactly the recorded processes and removes the dir
//! ```
//!
//! Ports (all on 127.0.0.1, chosen to avoid a system PostgreSQL on 5432 and a system etcd on
//! 2379/2380): etcd clients 12379/12381/12383 (peers 12380/12382/12384), PostgreSQL 15432..15434,
//! REST API 8008..8010. It is the same [`PgkeelCluster`] the end-to-end tests use, detached.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pgkeel_testkit::cluster::{find_bin, stop_recorded};
use pgkeel_testkit::{BasePorts, ClusterOptions, PgkeelCluster, procs};

/// The demo's fixed ports.
const PORTS: BasePorts = BasePorts {
    etcd: 12379,
    postgresql: 15432,
    restapi: 8008,
};
/// Ports the demo must never use: a distro PostgreSQL and a distro etcd.
const RESERVED: [u16; 3] = [5432, 2379, 2380];
const NODES: u16 = 3;

fn usage() -> &'static str {
    "usage: pgkeel-demo start|stop|status [--dir DIR]   (default DIR: .demo)"
}

/// Every port the demo listens on.
fn demo_ports() -> Vec<u16> {
    let mut ports = Vec::new();
    for i in 0..NODES {
        ports.push(PORTS.etcd + 2 * i);
        ports.push(PORTS.etcd + 2 * i + 1);
        ports.push(PORTS.postgresql + i);
        ports.push(PORTS.restapi + i);
    }
    ports
}

fn check_ports_free() -> anyhow::Result<()> {
    for p in demo_ports() {
        if RESERVED.contains(&p) {
            bail!("internal error: demo port {p} collides with a distro service port");
        }
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_err() {
            bail!("port 127.0.0.1:{p} is in use; is a demo already running? (`pgkeel-demo stop`)");
        }
    }
    Ok(())
}

fn config_of(dir: &Path) -> PathBuf {
    dir.join("node0").join("pgkeel.yml")
}

fn list(dir: &Path) -> anyhow::Result<()> {
    let ctl = find_bin("pgkeelctl", None, "PGKEELCTL_BIN")?;
    let out = std::process::Command::new(&ctl)
        .arg("-c")
        .arg(config_of(dir))
        .arg("list")
        .output()
        .with_context(|| format!("running {}", ctl.display()))?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("pgkeelctl list failed ({})", out.status);
    }
    Ok(())
}

fn running(dir: &Path) -> bool {
    procs::read_pid_file(&dir.join("pids")).is_ok_and(|recs| {
        recs.iter().any(|r| {
            r.kind == "agent"
                && procs::alive(r.pid)
                && procs::cmdline(r.pid).is_some_and(|c| c.contains(&r.marker))
        })
    })
}

fn start(dir: &Path) -> anyhow::Result<()> {
    if running(dir) {
        println!("demo already running in {}", dir.display());
        return list(dir);
    }
    if dir.join("pids").exists() {
        // A previous demo died or was half-stopped: clean it up first.
        stop_recorded(dir)?;
    }
    check_ports_free()?;
    let opts = ClusterOptions {
        scope: "demo".to_owned(),
        base_dir: Some(dir.to_path_buf()),
        ports: Some(PORTS),
        own_process_group: true,
        ..ClusterOptions::default()
    };
    println!(
        "starting 3 etcd members, 3 pgkeel agents and 3 PostgreSQL 15 in {}",
        dir.display()
    );
    let cluster = PgkeelCluster::start(opts)?;
    let t0 = Instant::now();
    let leader = cluster.wait_healthy(Duration::from_secs(90))?;
    println!(
        "healthy after {:.2?}: leader {} + {} streaming replicas",
        t0.elapsed(),
        cluster.node(leader).name,
        cluster.len() - 1
    );
    for i in 0..cluster.len() {
        let n = cluster.node(i);
        println!(
            "  {}: postgres 127.0.0.1:{}  api {}  log {}",
            n.name,
            n.pg_port,
            n.api_url,
            n.log_path.display()
        );
    }
    println!("etcd: {}", cluster.etcd_hosts().join(","));
    let dir = cluster.detach()?;
    println!("PIDs recorded in {}", dir.join("pids").display());
    println!();
    list(&dir)
}

fn stop(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        println!("no demo in {}", dir.display());
        return Ok(());
    }
    let killed = stop_recorded(dir)?;
    println!(
        "stopped {} processes, removed {}",
        killed.len(),
        dir.display()
    );
    Ok(())
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cmd = None;
    let mut dir = PathBuf::from(".demo");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dir" => match it.next() {
                Some(d) => dir = PathBuf::from(d),
                None => bail!("--dir needs a value\n{}", usage()),
            },
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(());
            }
            c @ ("start" | "stop" | "status") if cmd.is_none() => cmd = Some(c.to_owned()),
            other => bail!("unexpected argument {other:?}\n{}", usage()),
        }
    }
    match cmd.as_deref() {
        Some("start") => start(&dir),
        Some("stop") => stop(&dir),
        Some("status") => {
            if !running(&dir) {
                bail!("no demo running in {}", dir.display());
            }
            list(&dir)
        }
        _ => bail!("{}", usage()),
    }
}

fn main() -> ExitCode {
    pgkeel_testkit::bench::exit_code("pgkeel-demo", run())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_ports_avoid_distro_services_and_are_distinct() {
        let ports = demo_ports();
        for r in RESERVED {
            assert!(!ports.contains(&r), "{r} in {ports:?}");
        }
        let set: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(set.len(), ports.len());
    }
}
