//! A real etcd cluster on loopback for tests and the demo, driven by blocking `std::process` calls.
//!
//! Every member is an `/usr/bin/etcd` child process with its own data directory, client port and peer
//! port on 127.0.0.1. [`EtcdCluster`] owns the children: dropping it SIGKILLs every member by PID and
//! waits for it, so a panicking test never leaves etcd behind. (A `PR_SET_PDEATHSIG` guard for the case
//! where the whole test process is killed would need `pre_exec`, i.e. `unsafe`, which the workspace
//! forbids; `setpriv --pdeathsig` fires on the death of the spawning *thread*, which would kill members
//! started from short-lived threads, so it is not used either.)
//!
//! The members run with `--pre-vote=true` (off by default in etcd 3.4; without it a member that comes
//! back from a partition disrupts the etcd leader, see the field notes) and fast raft timing
//! (`--heartbeat-interval 100 --election-timeout 1000`). Each member logs to `<member dir>/etcd.log`;
//! the tails of those logs are printed when a cluster is dropped during a panic.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

/// The etcd server binary (Debian's `etcd-server` package). Overridable with `PGKEEL_ETCD_BIN`;
/// `scripts/install-deps.sh` checks the same path.
pub fn etcd_bin() -> String {
    std::env::var("PGKEEL_ETCD_BIN").unwrap_or_else(|_| "/usr/bin/etcd".to_owned())
}

/// The etcdctl binary used for status queries. Overridable with `PGKEEL_ETCDCTL_BIN`;
/// `scripts/install-deps.sh` checks the same path.
pub fn etcdctl_bin() -> String {
    std::env::var("PGKEEL_ETCDCTL_BIN").unwrap_or_else(|_| "/usr/bin/etcdctl".to_owned())
}

/// One etcd member: its fixed identity plus the running child, if any.
struct Member {
    /// etcd member name (`m0`, `m1`, ...), also used in `--initial-cluster`.
    name: String,
    /// Directory holding `data/` (the etcd data dir) and `etcd.log`.
    dir: PathBuf,
    /// Port serving the client (gRPC + HTTP gateway) API.
    client_port: u16,
    /// Port serving raft traffic between members.
    peer_port: u16,
    /// The running process; `None` after [`EtcdCluster::kill`].
    child: Option<Child>,
}

impl Member {
    fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    /// SIGKILLs the member (by PID, through `Child::kill`) and reaps it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running etcd cluster of `n` members on 127.0.0.1, killed on drop.
///
/// Exists so DCS tests, agent end-to-end tests and the demo all talk to a real etcd 3.4, the server
/// pgkeel must work with, instead of a mock.
pub struct EtcdCluster {
    /// Owns the temporary base directory of [`EtcdCluster::start`]; `None` for [`EtcdCluster::start_in`].
    _tmp: Option<tempfile::TempDir>,
    /// Unique `--initial-cluster-token`, so members of different clusters can never join each other.
    token: String,
    /// The members, indexed as in every method of this type.
    members: Vec<Member>,
}

impl std::fmt::Debug for EtcdCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdCluster")
            .field("token", &self.token)
            .field("client_urls", &self.client_urls())
            .field("pids", &self.pids())
            .finish()
    }
}

impl EtcdCluster {
    /// Starts an `n`-member cluster in a fresh temporary directory on free loopback ports and waits
    /// (up to 30 s) until every member answers and a leader is elected.
    pub fn start(n: usize) -> anyhow::Result<EtcdCluster> {
        let tmp = tempfile::Builder::new()
            .prefix("pgkeel-etcd-")
            .tempdir()
            .context("creating a temporary directory for etcd")?;
        let dir = tmp.path().to_path_buf();
        let mut cluster = Self::launch(&dir, n, None)?;
        cluster._tmp = Some(tmp);
        cluster.wait_healthy(Duration::from_secs(30))?;
        Ok(cluster)
    }

    /// Starts an `n`-member cluster under `dir` (member `i` in `dir/m<i>`), on ports
    /// `base_port + 2i` (client) and `base_port + 2i + 1` (peer) if `base_port` is given, else on free
    /// ports. Exists for the demo, which wants a predictable location and predictable ports.
    /// The member directories are removed on drop; `dir` itself is left in place.
    pub fn start_in(dir: &Path, n: usize, base_port: Option<u16>) -> anyhow::Result<EtcdCluster> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let cluster = Self::launch(dir, n, base_port)?;
        cluster.wait_healthy(Duration::from_secs(30))?;
        Ok(cluster)
    }

    fn launch(dir: &Path, n: usize, base_port: Option<u16>) -> anyhow::Result<EtcdCluster> {
        if n == 0 {
            bail!("an etcd cluster needs at least one member");
        }
        let ports: Vec<u16> = match base_port {
            Some(base) => (0..2 * n)
                .map(|k| {
                    u16::try_from(usize::from(base) + k)
                        .map_err(|_| anyhow!("port overflow from base {base}"))
                })
                .collect::<anyhow::Result<_>>()?,
            None => crate::ports::free_ports(2 * n).context("reserving etcd ports")?,
        };
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let token = format!(
            "pgkeel-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            nanos
        );
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                dir: dir.join(format!("m{i}")),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                child: None,
            })
            .collect();
        let mut cluster = EtcdCluster {
            _tmp: None,
            token,
            members,
        };
        for i in 0..n {
            let m = &cluster.members[i];
            if m.dir.exists() {
                fs::remove_dir_all(&m.dir)
                    .with_context(|| format!("cleaning {}", m.dir.display()))?;
            }
            fs::create_dir_all(&m.dir).with_context(|| format!("creating {}", m.dir.display()))?;
            cluster.spawn(i, "new")?;
        }
        Ok(cluster)
    }

    /// Spawns member `i` with `--initial-cluster-state <state>`.
    fn spawn(&mut self, i: usize, state: &str) -> anyhow::Result<()> {
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let m = &self.members[i];
        let log = File::options()
            .create(true)
            .append(true)
            .open(m.log_path())
            .with_context(|| format!("opening {}", m.log_path().display()))?;
        let log_err = log.try_clone().context("duplicating the etcd log handle")?;
        let client_url = m.client_url();
        let peer_url = m.peer_url();
        let child = Command::new(etcd_bin())
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(m.dir.join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &initial_cluster])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", state])
            .arg("--pre-vote=true")
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("spawning {} for member {}", etcd_bin(), m.name))?;
        self.members[i].child = Some(child);
        Ok(())
    }

    /// `127.0.0.1:PORT` of every member's client API, in member order (Patroni's `etcd3.hosts` form).
    pub fn client_hosts(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// `http://127.0.0.1:PORT` of every member's client API, in member order (what etcd clients take).
    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// SIGKILLs member `i` (no-op if it is not running). Exists for fault-injection tests.
    pub fn kill(&mut self, i: usize) {
        if let Some(m) = self.members.get_mut(i) {
            m.kill();
        }
    }

    /// Starts member `i` again on its old data directory and ports (after [`EtcdCluster::kill`]).
    /// Does not wait for it to rejoin; use [`EtcdCluster::wait_healthy`] for that.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        if i >= self.members.len() {
            bail!("no member {i}");
        }
        self.members[i].kill();
        self.spawn(i, "existing")
    }

    /// Status of member `i` as reported by `etcdctl endpoint status`: `(member_id, leader_id)`.
    fn status(&self, i: usize) -> anyhow::Result<(u64, u64)> {
        let m = &self.members[i];
        let out = Command::new(etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", m.client_url()))
            .args([
                "--dial-timeout=1s",
                "--command-timeout=1s",
                "endpoint",
                "status",
                "-w",
                "json",
            ])
            .stdin(Stdio::null())
            .output()
            .context("running etcdctl")?;
        if !out.status.success() {
            bail!(
                "etcdctl endpoint status on {} failed: {}",
                m.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("parsing etcdctl endpoint status JSON")?;
        let status = &v[0]["Status"];
        let member_id = status["header"]["member_id"]
            .as_u64()
            .ok_or_else(|| anyhow!("no member_id in {v}"))?;
        let leader = status["leader"].as_u64().unwrap_or(0);
        Ok((member_id, leader))
    }

    /// Index of the member that currently leads etcd's raft group, if any member knows a leader.
    /// Exists so tests can target the etcd leader (e.g. restart it) deliberately.
    pub fn leader_index(&self) -> Option<usize> {
        let statuses: Vec<Option<(u64, u64)>> = (0..self.members.len())
            .map(|i| {
                if self.members[i].child.is_some() {
                    self.status(i).ok()
                } else {
                    None
                }
            })
            .collect();
        let leader = statuses
            .iter()
            .flatten()
            .map(|&(_, l)| l)
            .find(|&l| l != 0)?;
        statuses
            .iter()
            .position(|s| matches!(s, Some((id, _)) if *id == leader))
    }

    /// Polls until every running member answers and all of them agree on one leader, or `timeout`.
    /// Fails early (with the log tail) if a member process has exited.
    pub fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut last_err = None;
            let mut leaders = Vec::new();
            let mut ids = Vec::new();
            for (i, m) in self.members.iter().enumerate() {
                if m.child.is_none() {
                    continue;
                }
                match self.status(i) {
                    Ok((id, leader)) => {
                        ids.push(id);
                        leaders.push(leader);
                    }
                    Err(e) => last_err = Some(e),
                }
            }
            // Right after a kill the survivors still name the dead leader for up to an election
            // timeout, so the agreed leader must also be one of the running members.
            let agreed = last_err.is_none()
                && !leaders.is_empty()
                && ids.contains(&leaders[0])
                && leaders.iter().all(|&l| l == leaders[0]);
            if agreed {
                return Ok(());
            }
            if let Some(exited) = self.exited_member() {
                bail!(
                    "etcd member {exited} exited during startup:\n{}",
                    self.log_tail(exited, 30)
                );
            }
            if Instant::now() >= deadline {
                let tails: String = (0..self.members.len())
                    .map(|i| self.log_tail(i, 15))
                    .collect();
                bail!(
                    "etcd cluster not healthy after {timeout:?} (leaders seen: {leaders:?}, last error: {last_err:?})\n{tails}"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Index of a member whose process was started but has exited on its own.
    fn exited_member(&self) -> Option<usize> {
        // `try_wait` needs `&mut Child`; probing `/proc/<pid>` keeps this method `&self`.
        self.members.iter().position(|m| {
            m.child.as_ref().is_some_and(|c| {
                let stat = fs::read_to_string(format!("/proc/{}/stat", c.id())).unwrap_or_default();
                stat.is_empty() || stat.split_whitespace().nth(2) == Some("Z")
            })
        })
    }

    /// The last `lines` lines of member `i`'s log, for failure messages.
    fn log_tail(&self, i: usize, lines: usize) -> String {
        let m = &self.members[i];
        let text = fs::read_to_string(m.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let start = all.len().saturating_sub(lines);
        format!(
            "--- {} ({}) ---\n{}\n",
            m.name,
            m.log_path().display(),
            all[start..].join("\n")
        )
    }

    /// PIDs of the running members, for tests that check process state or signal members directly.
    pub fn pids(&self) -> Vec<u32> {
        self.members
            .iter()
            .filter_map(|m| m.child.as_ref().map(Child::id))
            .collect()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for m in &mut self.members {
            m.kill();
        }
        if panicking {
            for i in 0..self.members.len() {
                eprintln!("{}", self.log_tail(i, 20));
            }
        }
        if self._tmp.is_none() {
            for m in &self.members {
                let _ = fs::remove_dir_all(&m.dir);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_members_elect_survive_leader_kill_and_rejoin() {
        let mut c = EtcdCluster::start(3).unwrap();
        assert_eq!(c.pids().len(), 3);
        let leader = c.leader_index().expect("a leader after start");
        c.kill(leader);
        assert_eq!(c.pids().len(), 2);
        c.wait_healthy(Duration::from_secs(10)).unwrap();
        let new_leader = c.leader_index().expect("a leader after the kill");
        assert_ne!(new_leader, leader);
        c.restart(leader).unwrap();
        c.wait_healthy(Duration::from_secs(10)).unwrap();
        assert_eq!(c.pids().len(), 3);
    }
}
