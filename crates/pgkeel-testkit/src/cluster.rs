//! [`PgkeelCluster`]: a whole pgkeel test cluster on loopback (3 etcd members, N agents, N PostgreSQL).
//!
//! Owns every process it starts. Dropping it (also while a test panics) SIGKILLs the agents, then every
//! postmaster (PID from `postmaster.pid`, only if that process runs in our data directory), then etcd,
//! then sweeps any leftover process that names our directory, and removes the directory. A test
//! process killed outright (nextest timeout) cannot run `Drop`; the next [`PgkeelCluster::start`] reaps
//! such orphans from their `pids` file (see [`reap_stale`]).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use nix::sys::signal::Signal;
use serde_json::Value;

use crate::etcd::EtcdCluster;
use crate::eventually::eventually;
use crate::nodeconf::{self, NodeConfig};
use crate::ports::free_port;
use crate::procs::{self, PidRecord};

/// Prefix of the temporary directories of test clusters (used to find orphans of killed tests).
const TMP_PREFIX: &str = "pgkeel-e2e-";

/// Fixed port bases, for the demo (tests pick free ports instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BasePorts {
    /// etcd member `i` listens on `etcd + 2i` (client) and `etcd + 2i + 1` (peer).
    pub etcd: u16,
    /// PostgreSQL of node `i` listens on `postgresql + i`.
    pub postgresql: u16,
    /// The REST API of node `i` listens on `restapi + i`.
    pub restapi: u16,
}

/// How to build a cluster. `ClusterOptions::default()` is a 3-node cluster with fast timing.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Number of pgkeel nodes (each an agent + a PostgreSQL).
    pub nodes: usize,
    /// Number of etcd members.
    pub etcd_members: usize,
    /// Patroni `scope`.
    pub scope: String,
    /// Patroni `namespace` (no slashes).
    pub namespace: String,
    /// `bootstrap.dcs.ttl` (s).
    pub ttl: u32,
    /// `bootstrap.dcs.loop_wait` (s).
    pub loop_wait: u32,
    /// `bootstrap.dcs.retry_timeout` (s).
    pub retry_timeout: u32,
    /// Tags per node (index = node); missing entries mean no tags.
    pub tags: Vec<BTreeMap<String, Value>>,
    /// `bootstrap.dcs.postgresql.parameters` (default [`nodeconf::default_dcs_parameters`]).
    pub dcs_parameters: BTreeMap<String, Value>,
    /// `bootstrap.post_bootstrap` (default none).
    pub post_bootstrap: Option<String>,
    /// One command for every `postgresql.callbacks` entry; `{node}` in it becomes the node's
    /// name (default none).
    pub callback: Option<String>,
    /// Where to put everything; `None` = a fresh temp dir under `/tmp`, removed on drop.
    pub base_dir: Option<PathBuf>,
    /// Fixed ports; `None` = free loopback ports.
    pub ports: Option<BasePorts>,
    /// The `pgkeel` binary; `None` = `$PGKEEL_BIN`, else next to the current executable.
    pub pgkeel_bin: Option<PathBuf>,
    /// The `pgkeelctl` binary; `None` = `$PGKEELCTL_BIN`, else next to the current executable.
    pub pgkeelctl_bin: Option<PathBuf>,
    /// Start agents in their own process group, so they outlive the launching terminal (the demo).
    pub own_process_group: bool,
    /// Run each agent with this many open files at most (soft and hard `RLIMIT_NOFILE`, set by
    /// util-linux `prlimit`, which then execs the agent); `None` = inherit.
    pub agent_open_files: Option<u64>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            etcd_members: 3,
            scope: "e2e".to_owned(),
            namespace: "service".to_owned(),
            // loop_wait + 2 * retry_timeout <= ttl, as Patroni requires.
            ttl: 20,
            loop_wait: 1,
            retry_timeout: 5,
            tags: Vec::new(),
            dcs_parameters: nodeconf::default_dcs_parameters(),
            post_bootstrap: None,
            callback: None,
            base_dir: None,
            ports: None,
            pgkeel_bin: None,
            pgkeelctl_bin: None,
            own_process_group: false,
            agent_open_files: None,
        }
    }
}

impl ClusterOptions {
    /// The settings most end-to-end tests run with: a short lease (ttl 6, loop_wait 1,
    /// retry_timeout 2) so failovers take seconds, and the binaries under test. Tests call it
    /// through [`fast_options!`](crate::fast_options), which fills in the binaries Cargo built.
    pub fn fast(scope: &str, pgkeel_bin: &str, pgkeelctl_bin: &str) -> Self {
        ClusterOptions {
            scope: scope.to_owned(),
            ttl: 6,
            loop_wait: 1,
            retry_timeout: 2,
            pgkeel_bin: Some(pgkeel_bin.into()),
            pgkeelctl_bin: Some(pgkeelctl_bin.into()),
            ..ClusterOptions::default()
        }
    }
}

/// `ClusterOptions::fast(scope, ..)` with the `pgkeel` and `pgkeelctl` binaries of the calling
/// test crate (`env!("CARGO_BIN_EXE_..")` only exists there, hence a macro).
#[macro_export]
macro_rules! fast_options {
    ($scope:expr) => {
        $crate::ClusterOptions::fast(
            $scope,
            env!("CARGO_BIN_EXE_pgkeel"),
            env!("CARGO_BIN_EXE_pgkeelctl"),
        )
    };
}

/// Where one node lives and listens.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// Member name (`node0`, `node1`, ...).
    pub name: String,
    /// REST API port.
    pub api_port: u16,
    /// `http://127.0.0.1:PORT`, without a path.
    pub api_url: String,
    /// PostgreSQL port.
    pub pg_port: u16,
    /// The node's directory (owned by the postgres user).
    pub node_dir: PathBuf,
    /// PostgreSQL data directory.
    pub data_dir: PathBuf,
    /// The agent's YAML config.
    pub config_path: PathBuf,
    /// The agent's stdout + stderr.
    pub log_path: PathBuf,
}

/// One node: where it lives plus its running agent.
struct Node {
    info: NodeInfo,
    child: Option<Child>,
}

/// A running pgkeel cluster. See the module docs for what `Drop` guarantees.
pub struct PgkeelCluster {
    opts: ClusterOptions,
    /// Owns the temp dir when `base_dir` was not given.
    tmp: Option<tempfile::TempDir>,
    base_dir: PathBuf,
    etcd: Option<EtcdCluster>,
    nodes: Vec<Node>,
    pgkeel_bin: PathBuf,
    pgkeelctl_bin: PathBuf,
    http: reqwest::blocking::Client,
    /// When the agents were launched (for bootstrap timing).
    launched_at: Instant,
    /// Set by [`PgkeelCluster::detach`]: `Drop` then leaves everything running.
    detached: bool,
}

impl std::fmt::Debug for PgkeelCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgkeelCluster")
            .field("base_dir", &self.base_dir)
            .field(
                "nodes",
                &self.nodes.iter().map(|n| &n.info).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Finds a binary: explicit path, then `$env_var`, then next to the current executable (also one level
/// up, since integration tests run from `target/<profile>/deps`).
pub fn find_bin(name: &str, explicit: Option<&Path>, env_var: &str) -> anyhow::Result<PathBuf> {
    let mut tried = Vec::new();
    if let Some(p) = explicit {
        tried.push(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(env_var) {
        tried.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        tried.push(dir.join(name));
        if let Some(up) = dir.parent() {
            tried.push(up.join(name));
        }
    }
    tried.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        anyhow!("cannot find the {name} binary (set {env_var}); tried {tried:?}; build it with `cargo build -p pgkeel`")
    })
}

/// The postgres OS user's uid/gid, when we run as root (the agent needs it to own the node dirs).
fn postgres_ids() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name("postgres").ok().flatten()?;
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

fn chmod(path: &Path, mode: u32) -> anyhow::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// Kills the processes of test clusters whose test process is gone (it was SIGKILLed, e.g. by a
/// nextest timeout, so its `Drop` never ran) and removes their directories. Only directories named
/// `/tmp/pgkeel-e2e-*` with a `pids` file whose `owner` record names a dead PID are touched.
pub fn reap_stale() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_ours = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(TMP_PREFIX));
        let Ok(records) = procs::read_pid_file(&path.join("pids")) else {
            continue;
        };
        let owner_dead = records
            .iter()
            .find(|r| r.kind == "owner")
            .is_some_and(|r| !procs::alive(r.pid));
        if is_ours && owner_dead {
            procs::kill_recorded(&records);
            procs::kill_dir_processes(&path);
            let _ = fs::remove_dir_all(&path);
        }
    }
}

impl PgkeelCluster {
    /// Starts etcd, writes one config per node and launches every agent. Does not wait for the cluster
    /// to become healthy: call [`PgkeelCluster::wait_healthy`] (the time between is the bootstrap time).
    pub fn start(opts: ClusterOptions) -> anyhow::Result<PgkeelCluster> {
        if opts.nodes == 0 {
            bail!("a cluster needs at least one node");
        }
        let pgkeel_bin = find_bin("pgkeel", opts.pgkeel_bin.as_deref(), "PGKEEL_BIN")?;
        let pgkeelctl_bin = find_bin("pgkeelctl", opts.pgkeelctl_bin.as_deref(), "PGKEELCTL_BIN")?;
        if opts.base_dir.is_none() {
            reap_stale();
        }
        let (tmp, base_dir) = match &opts.base_dir {
            Some(dir) => {
                fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                let dir = dir
                    .canonicalize()
                    .with_context(|| format!("resolving {}", dir.display()))?;
                (None, dir)
            }
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix(TMP_PREFIX)
                    .tempdir_in("/tmp")
                    .context("creating the cluster's temp dir")?;
                let dir = tmp.path().to_path_buf();
                (Some(tmp), dir)
            }
        };
        // The agent runs PostgreSQL as `postgres`, which must be able to traverse down to its dirs.
        chmod(&base_dir, 0o755)?;
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_secs(1))
            .build()
            .context("building the HTTP client")?;
        let etcd = EtcdCluster::start_in(
            &base_dir.join("etcd"),
            opts.etcd_members,
            opts.ports.map(|p| p.etcd),
        )
        .context("starting etcd")?;
        let mut cluster = PgkeelCluster {
            tmp,
            base_dir,
            etcd: Some(etcd),
            nodes: Vec::new(),
            pgkeel_bin,
            pgkeelctl_bin,
            http,
            launched_at: Instant::now(),
            detached: false,
            opts,
        };
        cluster.write_configs()?;
        cluster.launched_at = Instant::now();
        for i in 0..cluster.nodes.len() {
            cluster.spawn_agent(i)?;
        }
        Ok(cluster)
    }

    /// Creates the node dirs and writes each node's YAML config.
    fn write_configs(&mut self) -> anyhow::Result<()> {
        let hosts = self.etcd_hosts();
        let ids = postgres_ids();
        for i in 0..self.opts.nodes {
            let offset = u16::try_from(i).map_err(|_| anyhow!("too many nodes"))?;
            let (api_port, pg_port) = match self.opts.ports {
                Some(p) => (
                    p.restapi
                        .checked_add(offset)
                        .ok_or_else(|| anyhow!("port overflow"))?,
                    p.postgresql
                        .checked_add(offset)
                        .ok_or_else(|| anyhow!("port overflow"))?,
                ),
                None => (free_port(), free_port()),
            };
            let name = format!("node{i}");
            let node_dir = self.base_dir.join(&name);
            if node_dir.exists() {
                fs::remove_dir_all(&node_dir)
                    .with_context(|| format!("cleaning {}", node_dir.display()))?;
            }
            fs::create_dir_all(&node_dir)
                .with_context(|| format!("creating {}", node_dir.display()))?;
            chmod(&node_dir, 0o755)?;
            if let Some((uid, gid)) = ids {
                std::os::unix::fs::chown(&node_dir, Some(uid), Some(gid))
                    .with_context(|| format!("chown postgres {}", node_dir.display()))?;
            }
            let data_dir = node_dir.join("data");
            let conf = NodeConfig {
                scope: self.opts.scope.clone(),
                namespace: self.opts.namespace.clone(),
                name: name.clone(),
                api_port,
                pg_port,
                etcd_hosts: hosts.clone(),
                node_dir: node_dir.clone(),
                data_dir: data_dir.clone(),
                ttl: self.opts.ttl,
                loop_wait: self.opts.loop_wait,
                retry_timeout: self.opts.retry_timeout,
                tags: self.opts.tags.get(i).cloned().unwrap_or_default(),
                dcs_parameters: self.opts.dcs_parameters.clone(),
                post_bootstrap: self.opts.post_bootstrap.clone(),
                callback: self
                    .opts
                    .callback
                    .as_ref()
                    .map(|c| c.replace("{node}", &name)),
            };
            let config_path = node_dir.join("pgkeel.yml");
            fs::write(&config_path, conf.render())
                .with_context(|| format!("writing {}", config_path.display()))?;
            // It holds passwords: readable by root (the agent) only.
            chmod(&config_path, 0o600)?;
            self.nodes.push(Node {
                info: NodeInfo {
                    name,
                    api_port,
                    api_url: format!("http://127.0.0.1:{api_port}"),
                    pg_port,
                    log_path: node_dir.join("pgkeel.log"),
                    node_dir,
                    data_dir,
                    config_path,
                },
                child: None,
            });
        }
        Ok(())
    }

    /// Launches agent `i` (appending to its log) and records its PID.
    fn spawn_agent(&mut self, i: usize) -> anyhow::Result<()> {
        let node = self.nodes.get(i).ok_or_else(|| anyhow!("no node {i}"))?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(&node.info.log_path)
            .with_context(|| format!("opening {}", node.info.log_path.display()))?;
        let log_err = log.try_clone().context("duplicating the log handle")?;
        let mut cmd = match self.opts.agent_open_files {
            // prlimit sets the limit on itself and execs the agent: same PID, limit inherited.
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(&self.pgkeel_bin);
                c
            }
            None => Command::new(&self.pgkeel_bin),
        };
        cmd.arg(&node.info.config_path)
            .current_dir(&node.info.node_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        if self.opts.own_process_group {
            cmd.process_group(0);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", self.pgkeel_bin.display()))?;
        if let Some(n) = self.nodes.get_mut(i) {
            n.child = Some(child);
        }
        self.write_pids()
    }

    /// Rewrites `<base>/pids`: the owner (this process, unless detached), agents and etcd members.
    fn write_pids(&self) -> anyhow::Result<()> {
        let mut recs = Vec::new();
        if !self.detached {
            recs.push(PidRecord {
                kind: "owner".into(),
                pid: std::process::id(),
                marker: String::new(),
            });
        }
        for n in &self.nodes {
            if let Some(c) = &n.child {
                recs.push(PidRecord {
                    kind: "agent".into(),
                    pid: c.id(),
                    marker: n.info.config_path.to_string_lossy().into_owned(),
                });
            }
        }
        if let Some(etcd) = &self.etcd {
            let marker = self.base_dir.join("etcd").to_string_lossy().into_owned();
            for pid in etcd.pids() {
                recs.push(PidRecord {
                    kind: "etcd".into(),
                    pid,
                    marker: marker.clone(),
                });
            }
        }
        procs::write_pid_file(&self.base_dir.join("pids"), &recs)
    }

    /// The directory holding everything (configs, data dirs, logs, etcd).
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a cluster has at least one node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The options the cluster was started with.
    pub fn options(&self) -> &ClusterOptions {
        &self.opts
    }

    /// When the agents were launched.
    pub fn launched_at(&self) -> Instant {
        self.launched_at
    }

    /// Where node `i` lives and listens. Panics on a bad index (a bug in the test).
    pub fn node(&self, i: usize) -> &NodeInfo {
        &self.nodes[i].info
    }

    /// The etcd cluster, e.g. to kill a member.
    pub fn etcd(&mut self) -> Option<&mut EtcdCluster> {
        self.etcd.as_mut()
    }

    /// `127.0.0.1:PORT` of every etcd member.
    pub fn etcd_hosts(&self) -> Vec<String> {
        self.etcd
            .as_ref()
            .map(EtcdCluster::client_hosts)
            .unwrap_or_default()
    }

    /// The PID of agent `i`, if it is running.
    pub fn agent_pid(&self, i: usize) -> Option<u32> {
        self.nodes.get(i)?.child.as_ref().map(Child::id)
    }

    /// The PID in node `i`'s `postmaster.pid`, if that process is alive and runs in its data dir.
    pub fn postmaster_pid(&self, i: usize) -> Option<u32> {
        let data_dir = &self.nodes.get(i)?.info.data_dir;
        let pid = procs::postmaster_pid(data_dir)?;
        procs::is_ours(pid, data_dir, &data_dir.to_string_lossy()).then_some(pid)
    }

    /// SIGKILLs agent `i` (its PostgreSQL keeps running) and reaps it.
    pub fn kill_agent(&mut self, i: usize) -> anyhow::Result<()> {
        let node = self
            .nodes
            .get_mut(i)
            .ok_or_else(|| anyhow!("no node {i}"))?;
        if let Some(mut child) = node.child.take() {
            child.kill().context("killing the agent")?;
            child.wait().context("reaping the agent")?;
        }
        self.write_pids()
    }

    /// SIGTERMs agent `i` (a clean shutdown: it stops its PostgreSQL and gives up the leader
    /// key) and reaps it; SIGKILLs it if it has not exited within `timeout`.
    pub fn terminate_agent(&mut self, i: usize, timeout: Duration) -> anyhow::Result<()> {
        let node = self
            .nodes
            .get_mut(i)
            .ok_or_else(|| anyhow!("no node {i}"))?;
        if let Some(mut child) = node.child.take() {
            procs::signal(child.id(), Signal::SIGTERM)?;
            let deadline = Instant::now() + timeout;
            while child.try_wait().context("waiting for the agent")?.is_none() {
                if Instant::now() > deadline {
                    child.kill().context("killing the agent")?;
                    child.wait().context("reaping the agent")?;
                    self.write_pids()?;
                    return Err(anyhow!(
                        "agent {i} did not exit within {timeout:?} of SIGTERM"
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.write_pids()
    }

    /// SIGKILLs node `i`'s postmaster. Returns the PID killed.
    pub fn kill_postmaster(&self, i: usize) -> anyhow::Result<u32> {
        let node = self.nodes.get(i).ok_or_else(|| anyhow!("no node {i}"))?;
        procs::signal_postmaster(&node.info.data_dir, Signal::SIGKILL)?
            .ok_or_else(|| anyhow!("node {i} has no running postmaster"))
    }

    /// SIGSTOPs agent `i` (simulates a hung agent).
    pub fn stop_agent(&self, i: usize) -> anyhow::Result<()> {
        let pid = self
            .agent_pid(i)
            .ok_or_else(|| anyhow!("agent {i} not running"))?;
        procs::signal(pid, Signal::SIGSTOP)
    }

    /// SIGCONTs agent `i` after [`PgkeelCluster::stop_agent`].
    pub fn cont_agent(&self, i: usize) -> anyhow::Result<()> {
        let pid = self
            .agent_pid(i)
            .ok_or_else(|| anyhow!("agent {i} not running"))?;
        procs::signal(pid, Signal::SIGCONT)
    }

    /// Kills agent `i` if it runs and launches it again with the same config.
    pub fn restart_agent(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill_agent(i)?;
        self.spawn_agent(i)
    }

    /// GET `path` on node `i`'s REST API: `(status, body)`.
    pub fn api_get(&self, i: usize, path: &str) -> anyhow::Result<(u16, String)> {
        self.api_request(i, "GET", path, "")
    }

    /// `method path` with a JSON `body` (none when empty) on node `i`'s REST API:
    /// `(status, body)`.
    pub fn api_request(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: &str,
    ) -> anyhow::Result<(u16, String)> {
        let url = format!("{}{}", self.node(i).api_url, path);
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .with_context(|| format!("HTTP method {method:?}"))?;
        let mut req = self.http.request(method.clone(), &url);
        if !body.is_empty() {
            req = req
                .header("Content-Type", "application/json")
                .body(body.to_owned());
        }
        let resp = req.send().with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let body = resp.text().with_context(|| format!("reading {url}"))?;
        Ok((status, body))
    }

    /// [`PgkeelCluster::api_request`] for a request that may take up to `timeout` (a
    /// `POST /failover` waits for the old leader's lease to run out).
    pub fn api_request_within(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: &str,
        timeout: Duration,
    ) -> anyhow::Result<(u16, String)> {
        let url = format!("{}{}", self.node(i).api_url, path);
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .with_context(|| format!("HTTP method {method:?}"))?;
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(1))
            .build()
            .context("building an HTTP client")?;
        let resp = http
            .request(method.clone(), &url)
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let body = resp.text().with_context(|| format!("reading {url}"))?;
        Ok((status, body))
    }

    /// GET `path` on node `i` and parse the body as JSON: `(status, json)`.
    pub fn api_json(&self, i: usize, path: &str) -> anyhow::Result<(u16, Value)> {
        let (status, body) = self.api_get(i, path)?;
        let v = serde_json::from_str(&body)
            .with_context(|| format!("node {i} {path}: not JSON: {body:?}"))?;
        Ok((status, v))
    }

    /// `GET /cluster` from the first node that answers it with 200.
    pub fn cluster_view(&self) -> Result<Value, String> {
        let mut errs = Vec::new();
        for i in 0..self.nodes.len() {
            match self.api_json(i, "/cluster") {
                Ok((200, v)) => return Ok(v),
                Ok((s, v)) => errs.push(format!("node{i}: {s} {v}")),
                Err(e) => errs.push(format!("node{i}: {e:#}")),
            }
        }
        Err(format!("no node served /cluster: {}", errs.join("; ")))
    }

    /// Index of a node by member name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.info.name == name)
    }

    /// One check of "1 leader (running) + N-1 replicas (streaming)" per `/cluster`; the leader's index.
    pub fn check_healthy(&self) -> Result<usize, String> {
        let view = self.cluster_view()?;
        let members = view["members"]
            .as_array()
            .ok_or_else(|| format!("/cluster has no members list: {view}"))?;
        if members.len() != self.nodes.len() {
            return Err(format!(
                "{} of {} members: {view}",
                members.len(),
                self.nodes.len()
            ));
        }
        let mut leader = None;
        for m in members {
            let name = m["name"].as_str().unwrap_or_default();
            let idx = self
                .index_of(name)
                .ok_or_else(|| format!("unknown member {name:?}"))?;
            match (m["role"].as_str(), m["state"].as_str()) {
                (Some("leader"), Some("running")) => {
                    if leader.replace(idx).is_some() {
                        return Err(format!("two leaders: {view}"));
                    }
                }
                // A synchronous standby is a streaming replica too.
                (Some("replica" | "sync_standby" | "quorum_standby"), Some("streaming")) => {}
                _ => return Err(format!("member {name} not ready: {m}")),
            }
        }
        leader.ok_or_else(|| format!("no leader: {view}"))
    }

    /// Polls until the cluster is healthy (see [`PgkeelCluster::check_healthy`]); the leader's index.
    /// The error carries the agents' last log lines.
    /// Fails at once (instead of at the timeout) if an agent process has exited.
    pub fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<usize> {
        let outcome = eventually(timeout, Duration::from_millis(100), || {
            if let Some(dead) = self.exited_agent() {
                return Ok(Err(format!("agent {} exited", self.node(dead).name)));
            }
            self.check_healthy().map(Ok)
        });
        match outcome {
            Ok(Ok(leader)) => Ok(leader),
            Ok(Err(fatal)) => bail!("cluster not healthy: {fatal}\n{}", self.log_tails(30)),
            Err(e) => bail!("cluster not healthy: {e}\n{}", self.log_tails(30)),
        }
    }

    /// Index of a node whose agent was started (and not killed by us) but has exited on its own.
    pub fn exited_agent(&self) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.child.as_ref().is_some_and(|c| !procs::alive(c.id())))
    }

    /// The index of the one node whose `/primary` answers 200 right now, if exactly one does.
    pub fn leader_index(&self) -> Option<usize> {
        let leaders: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| matches!(self.api_get(i, "/primary"), Ok((200, _))))
            .collect();
        match leaders.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// One check that a node other than `old` holds the key and its PostgreSQL takes writes
    /// (the key alone is not enough): its index. For handovers (switchover, SIGTERM).
    pub fn writable_leader_other_than(&self, old: usize) -> Result<usize, String> {
        let l = self
            .leader_index()
            .filter(|&l| l != old)
            .ok_or_else(|| "no new leader yet".to_string())?;
        if self.writable().get(l) == Some(&true) {
            Ok(l)
        } else {
            Err(format!(
                "{} holds the key but is not writable yet",
                self.node(l).name
            ))
        }
    }

    /// Polls until exactly one node answers `/primary` with 200; its index.
    pub fn wait_for_leader(&self, timeout: Duration) -> anyhow::Result<usize> {
        eventually(timeout, Duration::from_millis(100), || {
            self.leader_index()
                .ok_or_else(|| "no single node answers /primary 200".to_owned())
        })
        .map_err(|e| anyhow!("no leader: {e}\n{}", self.log_tails(30)))
    }

    /// Which nodes' PostgreSQL accepts writes right now, asked of PostgreSQL itself (not of the
    /// agents, which may publish a stale role when starved or confused): the ground truth for
    /// "never two primaries".
    pub fn writable(&self) -> Vec<bool> {
        (0..self.nodes.len())
            .map(|i| {
                self.psql(i, "SELECT pg_is_in_recovery()")
                    .is_ok_and(|r| r == "f")
            })
            .collect()
    }

    /// Runs `sql` with `psql -At` on node `i` as the postgres OS user, over TCP with the superuser
    /// password in `PGPASSWORD` (never in argv). Returns stdout without the trailing newline.
    pub fn psql(&self, i: usize, sql: &str) -> anyhow::Result<String> {
        let out = self
            .psql_command(i, sql)?
            .output()
            .context("running psql")?;
        if !out.status.success() {
            bail!(
                "psql on node {i} ({sql:?}) failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    }

    /// Starts `psql -c SQL` on node `i` without waiting for it (a commit that must wait for a
    /// synchronous standby); the caller waits for the child (and kills it if the test fails).
    pub fn psql_spawn(&self, i: usize, sql: &str) -> anyhow::Result<std::process::Child> {
        self.psql_command(i, sql)?
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting psql")
    }

    /// The `psql` command line the helpers above run (as `postgres`, with the superuser's
    /// password in the environment).
    fn psql_command(&self, i: usize, sql: &str) -> anyhow::Result<Command> {
        let node = self.nodes.get(i).ok_or_else(|| anyhow!("no node {i}"))?;
        let mut cmd = Command::new(Path::new(nodeconf::PG_BIN_DIR).join("psql"));
        cmd.args(["-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
            .arg(node.info.pg_port.to_string())
            .args(["-U", "postgres", "-d", "postgres", "-At", "-c", sql])
            .env("PGPASSWORD", nodeconf::SUPERUSER_PASSWORD)
            .env("PGCONNECT_TIMEOUT", "3")
            .current_dir("/")
            .stdin(Stdio::null());
        if let Some((uid, gid)) = postgres_ids() {
            cmd.uid(uid).gid(gid);
        }
        Ok(cmd)
    }

    /// Runs `pgkeelctl -c <node0 config> ARGS`.
    pub fn ctl(&self, args: &[&str]) -> anyhow::Result<Output> {
        Command::new(&self.pgkeelctl_bin)
            .arg("-c")
            .arg(&self.node(0).config_path)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", self.pgkeelctl_bin.display()))
    }

    /// Runs `pgkeelctl ARGS` without `-c` (e.g. with `--dcs-url etcd3://...`), from `/`.
    pub fn ctl_without_config(&self, args: &[&str]) -> anyhow::Result<Output> {
        Command::new(&self.pgkeelctl_bin)
            .args(args)
            .current_dir("/")
            .env_remove("PATRONICTL_CONFIG_FILE")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", self.pgkeelctl_bin.display()))
    }

    /// The full etcd key of a cluster key (`leader` -> `/service/e2e/leader`); absolute keys unchanged.
    pub fn etcd_key(&self, key: &str) -> String {
        if key.starts_with('/') {
            key.to_owned()
        } else {
            format!("/{}/{}/{}", self.opts.namespace, self.opts.scope, key)
        }
    }

    fn etcdctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let urls = self
            .etcd
            .as_ref()
            .map(EtcdCluster::client_urls)
            .unwrap_or_default();
        let out = Command::new(crate::etcd::etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", urls.join(",")))
            .args(["--dial-timeout=2s", "--command-timeout=3s"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running etcdctl")?;
        if !out.status.success() {
            bail!(
                "etcdctl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Writes `value` into a cluster key (see [`PgkeelCluster::etcd_key`]) with no lease, as a
    /// hostile or broken "other node" would.
    pub fn etcd_put(&self, key: &str, value: &str) -> anyhow::Result<()> {
        let full = self.etcd_key(key);
        self.etcdctl(&["put", "--", &full, value]).map(|_| ())
    }

    /// Deletes a cluster key (see [`PgkeelCluster::etcd_key`]).
    pub fn etcd_del(&self, key: &str) -> anyhow::Result<()> {
        let full = self.etcd_key(key);
        self.etcdctl(&["del", "--", &full]).map(|_| ())
    }

    /// The value of a cluster key (see [`PgkeelCluster::etcd_key`]), `None` if absent.
    pub fn etcd_get(&self, key: &str) -> anyhow::Result<Option<String>> {
        let full = self.etcd_key(key);
        let json = self.etcd_get_json(&full)?;
        let Some(kv) = json["kvs"].as_array().and_then(|a| a.first()) else {
            return Ok(None);
        };
        let b64 = kv["value"].as_str().unwrap_or_default();
        let bytes = base64_decode(b64).ok_or_else(|| anyhow!("bad base64 from etcdctl: {b64}"))?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// `etcdctl get KEY -w json` (keys and values are base64; `lease` is present when non-zero).
    pub fn etcd_get_json(&self, key: &str) -> anyhow::Result<Value> {
        let full = self.etcd_key(key);
        let text = self.etcdctl(&["get", &full, "-w", "json"])?;
        serde_json::from_str(&text).with_context(|| format!("etcdctl JSON: {text}"))
    }

    /// The `sync` key as JSON (`Null` when absent or unreadable): synchronous replication's
    /// state, for the end-to-end tests and the fault campaign.
    pub fn sync_key(&self) -> Value {
        self.etcd_get("sync")
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or(Value::Null)
    }

    /// `SHOW guc` on node `i`; empty when it cannot be read.
    pub fn show(&self, i: usize, guc: &str) -> String {
        self.psql(i, &format!("SHOW {guc}")).unwrap_or_default()
    }

    /// Polls until synchronous replication is off as the primary `leader` leaves it: the
    /// `sync` key deleted and `synchronous_standby_names` cleared.
    pub fn wait_asynchronous(&self, leader: usize, timeout: Duration) -> anyhow::Result<()> {
        eventually(timeout, Duration::from_millis(100), || {
            if let Some(v) = self.etcd_get("sync").map_err(|e| e.to_string())? {
                return Err(format!("the sync key is still {v}"));
            }
            match self.show(leader, "synchronous_standby_names") {
                v if v.is_empty() => Ok(()),
                v => Err(format!("synchronous_standby_names is still {v:?}")),
            }
        })
        .map_err(|e| {
            anyhow!(
                "synchronous replication not off: {e}\n{}",
                self.log_tails(30)
            )
        })
    }

    /// All keys under the cluster prefix.
    pub fn etcd_keys(&self) -> anyhow::Result<Vec<String>> {
        let prefix = self.etcd_key("");
        let text = self.etcdctl(&["get", &prefix, "--prefix", "--keys-only"])?;
        Ok(text
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// Agent `i`'s whole log.
    pub fn logs(&self, i: usize) -> String {
        self.nodes
            .get(i)
            .and_then(|n| fs::read_to_string(&n.info.log_path).ok())
            .unwrap_or_default()
    }

    /// The last `lines` lines of every agent's log, for failure messages.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let text = self.logs(i);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            out.push_str(&format!(
                "--- {} ({}) ---\n{}\n",
                n.info.name,
                n.info.log_path.display(),
                all[start..].join("\n")
            ));
        }
        out
    }

    /// Leaves every process running and returns the base dir, whose `pids` file lists the agents and
    /// etcd members (postmasters are in each data dir's `postmaster.pid`). For the demo.
    pub fn detach(mut self) -> anyhow::Result<PathBuf> {
        self.detached = true;
        self.write_pids()?;
        if let Some(etcd) = self.etcd.take() {
            // Dropping it would kill the members; forgetting it leaves them running.
            std::mem::forget(etcd);
        }
        for n in &mut self.nodes {
            // Dropping a `Child` does not kill it.
            drop(n.child.take());
        }
        if let Some(tmp) = self.tmp.take() {
            let _ = tmp.keep();
        }
        Ok(self.base_dir.clone())
    }
}

/// Standard base64 decoding (etcdctl's JSON output).
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// Stops a cluster recorded in `dir/pids` (a detached demo): kills the recorded agents and etcd
/// members (only if their command line still names our files), every postmaster found in a
/// `dir/node*/data/postmaster.pid`, then any leftover process naming `dir`, and removes `dir`.
pub fn stop_recorded(dir: &Path) -> anyhow::Result<Vec<u32>> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let records = procs::read_pid_file(&dir.join("pids"))?;
    // Ask the agents to shut down first: each stops its PostgreSQL cleanly and reaps it, so no
    // orphaned (zombie) backends are left behind. Whatever is still alive after that is killed.
    let agents: Vec<u32> = records
        .iter()
        .filter(|r| r.kind == "agent" && !r.marker.is_empty() && procs::alive(r.pid))
        .filter(|r| procs::cmdline(r.pid).is_some_and(|c| c.contains(&r.marker)))
        .map(|r| r.pid)
        .collect();
    for &pid in &agents {
        let _ = procs::signal(pid, Signal::SIGTERM);
    }
    for &pid in &agents {
        procs::wait_gone(pid, Duration::from_secs(30));
    }
    let mut killed = procs::kill_recorded(&records);
    killed.extend(agents);
    if let Ok(entries) = fs::read_dir(&dir) {
        for e in entries.flatten() {
            let data = e.path().join("data");
            if let Ok(Some(pid)) = procs::signal_postmaster(&data, Signal::SIGKILL) {
                procs::wait_gone(pid, Duration::from_secs(5));
                killed.push(pid);
            }
        }
    }
    killed.extend(procs::kill_dir_processes(&dir));
    fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(killed)
}

impl Drop for PgkeelCluster {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        if std::thread::panicking() {
            eprintln!(
                "pgkeel test cluster in {} failed; agent logs:",
                self.base_dir.display()
            );
            eprintln!("{}", self.log_tails(40));
        }
        // 1. Agents first, so nothing restarts PostgreSQL behind our back.
        for n in &mut self.nodes {
            if let Some(mut child) = n.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // 2. Postmasters, by the PID in postmaster.pid, only if it runs in our data dir.
        for n in &self.nodes {
            if let Ok(Some(pid)) = procs::signal_postmaster(&n.info.data_dir, Signal::SIGKILL) {
                procs::wait_gone(pid, Duration::from_secs(5));
            }
        }
        // 3. etcd (its Drop kills the members by PID).
        drop(self.etcd.take());
        // 4. Anything left that names our directory (initdb, pg_basebackup, orphaned backends).
        procs::kill_dir_processes(&self.base_dir);
        let keep = std::env::var_os("PGKEEL_KEEP_TEST_DIR").is_some();
        match self.tmp.take() {
            Some(tmp) if keep => {
                eprintln!("keeping {} (PGKEEL_KEEP_TEST_DIR)", tmp.keep().display());
            }
            Some(tmp) => drop(tmp),
            None if keep => {}
            None => {
                for n in &self.nodes {
                    let _ = fs::remove_dir_all(&n.info.node_dir);
                }
                let _ = fs::remove_file(self.base_dir.join("pids"));
                let _ = fs::remove_dir(self.base_dir.join("etcd"));
                let _ = fs::remove_dir(&self.base_dir);
            }
        }
    }
}

/// Polls `check` every 100 ms until it succeeds or `timeout` passes, then panics with `what`,
/// the last reason and the agents' last log lines. For end-to-end tests.
pub fn wait<T>(
    c: &PgkeelCluster,
    what: &str,
    timeout: Duration,
    check: impl FnMut() -> Result<T, String>,
) -> T {
    match crate::eventually(timeout, Duration::from_millis(100), check) {
        Ok(v) => v,
        Err(e) => panic!("timed out waiting for {what}: {e}\n{}", c.log_tails(40)),
    }
}

/// Panics naming the first tool an end-to-end test needs that is missing.
pub fn require_tools() {
    for tool in [
        &format!("{}/postgres", crate::nodeconf::PG_BIN_DIR),
        &format!("{}/psql", crate::nodeconf::PG_BIN_DIR),
        &crate::etcd::etcd_bin(),
        &crate::etcd::etcdctl_bin(),
    ] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: run scripts/install-deps.sh (as root)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_values() {
        assert_eq!(base64_decode("bm9kZTA=").unwrap(), b"node0");
        assert_eq!(
            base64_decode("L3NlcnZpY2UvZTJlL2xlYWRlcg==").unwrap(),
            b"/service/e2e/leader"
        );
        assert!(base64_decode("!!").is_none());
    }

    #[test]
    fn missing_binary_is_a_clear_error() {
        let e = find_bin("no-such-pgkeel-binary", None, "PGKEEL_NO_SUCH_VAR").unwrap_err();
        assert!(e.to_string().contains("no-such-pgkeel-binary"), "{e}");
    }
}
