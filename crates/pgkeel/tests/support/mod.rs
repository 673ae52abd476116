//! In-process agent harness: the real agent loop (`pgkeel::agent::run_with`, its REST API on a
//! loopback port) on one shared [`MemoryDcs`] and [`fake_pg::FakePostgres`] servers.
//!
//! Fast because nothing waits on a real server: an agent bootstraps in milliseconds, and the
//! loop reacts to DCS watches, postmaster exits and requests at once. Every agent is stopped
//! when its [`TestNode`] is dropped (its task is aborted), so a failing test leaves nothing.

#![allow(dead_code)] // each test binary uses a part of the harness

pub mod fake_pg;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_pg::{FakePostgres, FakeWorld};
use pgkeel::agent::AgentError;
use pgkeel::dcs::{Dcs, MemoryDcs};
use pgkeel_ha::cluster::Cluster;
use pgkeel_ha::keys::KeyLayout;
use pgkeel_testkit::nodeconf::{NodeConfig, default_dcs_parameters};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One cluster: its DCS, its fake servers, and the settings every node starts with.
pub struct TestCluster {
    pub scope: String,
    pub dcs: Arc<MemoryDcs>,
    pub world: Arc<FakeWorld>,
    pub layout: KeyLayout,
    /// `bootstrap.dcs.ttl`: 5 (the minimum) unless a test sets another.
    pub ttl: u32,
    /// `bootstrap.dcs.loop_wait`: 1 unless a test sets another (retry_timeout is 1).
    pub loop_wait: u32,
}

/// One running agent.
pub struct TestNode {
    pub name: String,
    pub api_port: u16,
    pub pg_port: u16,
    pub pg: Arc<FakePostgres>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), AgentError>>>,
}

impl TestCluster {
    /// A new cluster with an empty DCS.
    pub fn new(scope: &str) -> TestCluster {
        TestCluster {
            scope: scope.to_owned(),
            dcs: Arc::new(MemoryDcs::new()),
            world: Arc::new(FakeWorld::default()),
            layout: KeyLayout::new("/service/", scope),
            ttl: 5,
            loop_wait: 1,
        }
    }

    /// The configuration of node `name` (Patroni YAML, as the e2e tests render it).
    pub fn config(&self, name: &str, api_port: u16, pg_port: u16) -> pgkeel::config::Config {
        let dir = std::env::temp_dir().join(format!("pgkeel-agent-loop-{}-{name}", self.scope));
        let text = NodeConfig {
            scope: self.scope.clone(),
            namespace: "service".into(),
            name: name.to_owned(),
            api_port,
            pg_port,
            etcd_hosts: vec!["127.0.0.1:1".into()],
            node_dir: dir.clone(),
            data_dir: dir.join("data"),
            ttl: self.ttl,
            loop_wait: self.loop_wait,
            retry_timeout: 1,
            tags: Default::default(),
            dcs_parameters: default_dcs_parameters(),
            post_bootstrap: None,
            callback: None,
        }
        .render();
        match pgkeel::config::load_config_from_str(&text, Path::new("agent-loop.yml"), &[]) {
            Ok(loaded) => loaded.config,
            Err(e) => panic!("the harness's config does not load: {e}"),
        }
    }

    /// Starts node `name` on a new fake server.
    pub fn start(&self, name: &str) -> TestNode {
        let pg_port = pgkeel_testkit::ports::free_port();
        let pg = self.world.server(pg_port);
        self.start_on(name, pg)
    }

    /// Starts node `name` on the fake server `pg` (one left by an earlier agent, or prepared).
    pub fn start_on(&self, name: &str, pg: Arc<FakePostgres>) -> TestNode {
        let api_port = pgkeel_testkit::ports::free_port();
        let pg_port = pg.port();
        let cfg = self.config(name, api_port, pg_port);
        let (stop, stopped) = oneshot::channel::<()>();
        let dcs: Arc<dyn Dcs> = self.dcs.clone();
        let task = tokio::spawn(pgkeel::agent::run_with(cfg, dcs, pg.clone(), async move {
            let _ = stopped.await;
        }));
        TestNode {
            name: name.to_owned(),
            api_port,
            pg_port,
            pg,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The cluster as the agents read it.
    pub async fn read(&self) -> Cluster {
        match pgkeel::dcs::read_cluster(self.dcs.as_ref(), &self.layout).await {
            Ok(c) => c,
            Err(e) => panic!("reading the MemoryDcs: {e}"),
        }
    }

    /// The leader key's holder.
    pub async fn leader(&self) -> Option<String> {
        self.read().await.leader.map(|l| l.name)
    }

    /// Polls `check` on the cluster every 5 ms until it holds; panics naming `what` after
    /// `within`. Returns how long it took.
    pub async fn until(
        &self,
        what: &str,
        within: Duration,
        mut check: impl FnMut(&Cluster) -> bool,
    ) -> Duration {
        let t0 = Instant::now();
        loop {
            let c = self.read().await;
            if check(&c) {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < within,
                "{what}: not within {within:?}; the cluster: {c:#?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Polls `check` every 5 ms until it holds; panics naming `what` after `within`.
pub async fn until(what: &str, within: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !check() {
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    t0.elapsed()
}

impl TestNode {
    /// Stops the agent as SIGTERM does and returns how it ended.
    pub async fn shutdown(mut self) -> Result<(), AgentError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(Ok(ended)) => ended,
            Ok(Err(e)) => panic!("the agent task of {} failed: {e}", self.name),
            Err(_) => panic!("the agent {} did not stop within 10 s", self.name),
        }
    }

    /// Waits for the agent to end by itself (a fatal decision) and returns how it ended.
    pub async fn ended(mut self, within: Duration) -> Result<(), AgentError> {
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(within, task).await {
            Ok(Ok(ended)) => ended,
            Ok(Err(e)) => panic!("the agent task of {} failed: {e}", self.name),
            Err(_) => panic!("the agent {} did not end within {within:?}", self.name),
        }
    }

    /// Freezes the agent: its task is aborted at once, with no shutdown (its lease runs out
    /// and its fake server keeps running, as when the agent's process is killed).
    pub fn kill(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// `GET` `path` on the node's REST API: status and body.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.http(reqwest::Method::GET, path, None).await
    }

    /// A request with a JSON body on the node's REST API: status and body (JSON, or the text
    /// as a JSON string).
    pub async fn http(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let url = format!("http://127.0.0.1:{}{path}", self.api_port);
        let mut req = reqwest::Client::new()
            .request(method, &url)
            .timeout(Duration::from_secs(10));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => panic!("{url}: {e}"),
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, body)
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
