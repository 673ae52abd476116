//! [`FakePostgres`]: an in-memory [`PostgresControl`] for in-process agent tests.
//!
//! It keeps what the agent can observe of a server (data directory, running role, timeline, WAL
//! position, the recovery settings last written, slots) and records every operation, so a test
//! can assert what the real agent loop did (`initdb` exactly once in a bootstrap race...). Every
//! operation succeeds at once unless the test arranged otherwise. A [`FakeWorld`] lets a clone
//! find its source by port, as `pg_basebackup` would over the network.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pgkeel::config::{BootstrapUser, PgAuthentication};
use pgkeel::postgres::dynamic_cache::CacheError;
use pgkeel::postgres::{
    ConfigChange, LiveWal, ManagedConfig, PgError, PostgresControl, Recovery, SlotInfo,
    StartOutcome, StatusDetails, StopMode,
};
use pgkeel_ha::pg::{DataDir, LocalPostgres, Lsn, ServerRole};
use tokio::sync::watch;

/// The servers of one test, by PostgreSQL port (what `basebackup` and `rewind` are given).
#[derive(Default)]
pub struct FakeWorld {
    servers: Mutex<BTreeMap<u16, Arc<FakePostgres>>>,
}

impl FakeWorld {
    /// A new fake server reachable at `port`.
    pub fn server(self: &Arc<Self>, port: u16) -> Arc<FakePostgres> {
        let pg = Arc::new(FakePostgres::new(port, Arc::downgrade(self)));
        lock(&self.servers).insert(port, pg.clone());
        pg
    }

    fn at(&self, port: u16) -> Option<Arc<FakePostgres>> {
        lock(&self.servers).get(&port).cloned()
    }
}

/// What the fake's data directory holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    /// `Database system identifier`.
    pub sysid: String,
    /// Shut down cleanly (else "in production" / crashed).
    pub clean: bool,
}

/// The fake server's whole state.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub data: Option<Data>,
    pub running: Option<ServerRole>,
    pub timeline: u32,
    pub wal: u64,
    pub config: Option<ManagedConfig>,
    pub slots: BTreeMap<String, bool>,
    pub dynamic_cache: Option<serde_json::Map<String, serde_json::Value>>,
    /// Every operation performed, in order (`initdb`, `start`, `stop Fast`, ...).
    pub calls: Vec<String>,
    /// The next configuration write changes a parameter only a restart applies.
    pub next_write_needs_restart: bool,
    /// Every `start` fails (a server that cannot come up).
    pub starts_fail: bool,
}

/// An in-memory PostgreSQL (see the module docs).
pub struct FakePostgres {
    port: u16,
    world: std::sync::Weak<FakeWorld>,
    state: Mutex<State>,
    exits: watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn failed(what: &str) -> PgError {
    PgError::CommandFailed {
        command: what.to_owned(),
        status: "exit status: 1".to_owned(),
        stderr_tail: "fake".to_owned(),
    }
}

/// System identifiers handed out by `initdb`, distinct within a test process.
static NEXT_SYSID: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(7_300_000_000_000_000_001);

impl FakePostgres {
    fn new(port: u16, world: std::sync::Weak<FakeWorld>) -> FakePostgres {
        FakePostgres {
            port,
            world,
            state: Mutex::new(State::default()),
            exits: watch::channel(0).0,
        }
    }

    /// The port this server is reachable at in its [`FakeWorld`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A committed write on a running primary: its WAL position moves on.
    pub fn write(&self) {
        let mut s = lock(&self.state);
        if s.running == Some(ServerRole::Primary) {
            s.wal = s.wal.saturating_add(0x100);
        }
    }

    /// The system identifier of its data directory, if it has one.
    pub fn probe_sysid(&self) -> Option<String> {
        lock(&self.state).data.as_ref().map(|d| d.sysid.clone())
    }

    /// A copy of the state.
    pub fn state(&self) -> State {
        lock(&self.state).clone()
    }

    /// The operations performed so far.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.state).calls.clone()
    }

    /// How many times operation `name` ran.
    pub fn count(&self, name: &str) -> usize {
        lock(&self.state)
            .calls
            .iter()
            .filter(|c| c.split(' ').next() == Some(name))
            .count()
    }

    /// The server dies (as on `kill -9` of the postmaster); the agent is told at once.
    pub fn crash(&self) {
        {
            let mut s = lock(&self.state);
            s.running = None;
            if let Some(d) = &mut s.data {
                d.clean = false;
            }
        }
        self.exits.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Gives the server a data directory of cluster `sysid` (stopped, clean), as one left by
    /// an earlier run.
    pub fn with_data(&self, sysid: &str) {
        let mut s = lock(&self.state);
        s.data = Some(Data {
            sysid: sysid.to_owned(),
            clean: true,
        });
        s.timeline = 1;
    }

    /// The server forgets whom it follows (its recovery settings name `other`), and the next
    /// configuration write needs a restart: the agent must point it at the leader again.
    pub fn follow_elsewhere_needing_restart(&self, other: &str) {
        let mut s = lock(&self.state);
        s.next_write_needs_restart = true;
        if let Some(u) = s
            .config
            .as_mut()
            .and_then(|c| c.recovery.as_mut())
            .and_then(|r| r.upstream.as_mut())
        {
            u.leader_name = other.to_owned();
        }
    }

    /// A physical replication slot `name` appears on the server (`active`: a walsender uses it).
    pub fn add_slot(&self, name: &str, active: bool) {
        lock(&self.state).slots.insert(name.to_owned(), active);
    }

    /// From now on every `start` fails, as for a server whose configuration it refuses.
    pub fn fail_starts(&self) {
        lock(&self.state).starts_fail = true;
    }

    /// The member this server follows, from the recovery settings last written.
    pub fn following(&self) -> Option<String> {
        let s = lock(&self.state);
        following(&s)
    }

    /// The state of the running server at `port` in this world, as a tool connecting to it
    /// would find it; `None` when nothing runs there.
    fn running_server_at(&self, port: u16) -> Option<State> {
        self.world
            .upgrade()
            .and_then(|w| w.at(port))
            .map(|pg| pg.state())
            .filter(|src| src.running.is_some())
    }

    fn record(&self, call: String) -> MutexGuard<'_, State> {
        let mut s = lock(&self.state);
        s.calls.push(call);
        s
    }
}

fn following(s: &State) -> Option<String> {
    s.config
        .as_ref()
        .and_then(|c| c.recovery.as_ref())
        .and_then(|r| r.upstream.as_ref())
        .map(|u| u.leader_name.clone())
}

#[async_trait::async_trait]
impl PostgresControl for FakePostgres {
    async fn probe(&self) -> LocalPostgres {
        let s = lock(&self.state);
        let mut p = LocalPostgres::empty();
        let Some(data) = &s.data else { return p };
        p.data_dir = DataDir::Initialized {
            sysid: data.sysid.clone(),
        };
        p.server_version = Some(150_004);
        p.timeline = Some(s.timeline);
        p.following = following(&s);
        match s.running {
            Some(role) => {
                p.running = true;
                p.accepting_connections = true;
                p.role = Some(role);
                p.wal_position = Some(Lsn(s.wal));
                p.cluster_state = Some(
                    match role {
                        ServerRole::Primary => "in production",
                        ServerRole::Replica => "in archive recovery",
                    }
                    .to_owned(),
                );
                if role == ServerRole::Replica {
                    p.receive_lsn = Some(Lsn(s.wal));
                    p.replay_lsn = Some(Lsn(s.wal));
                    p.streaming = p.following.is_some();
                }
            }
            None => {
                p.cluster_state = Some(
                    if data.clean {
                        "shut down"
                    } else {
                        "in production"
                    }
                    .to_owned(),
                );
                p.checkpoint_lsn = Some(Lsn(s.wal));
            }
        }
        p
    }

    async fn initdb(&self, _extra_args: &[String]) -> Result<(), PgError> {
        let mut s = self.record("initdb".into());
        if s.data.is_some() {
            return Err(failed("initdb: data directory not empty"));
        }
        let sysid = NEXT_SYSID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        s.data = Some(Data {
            sysid: sysid.to_string(),
            clean: true,
        });
        s.timeline = 1;
        s.wal = 0x100_0000;
        Ok(())
    }

    async fn write_config(&self, config: &ManagedConfig) -> Result<ConfigChange, PgError> {
        let mut s = self.record("write_config".into());
        let old = s.config.replace(config.clone());
        let changed = old.as_ref() != Some(config);
        let mode_changed =
            old.as_ref().map(|o| o.recovery.is_some()) != Some(config.recovery.is_some());
        let postmaster_parameter = std::mem::take(&mut s.next_write_needs_restart);
        Ok(ConfigChange {
            changed,
            needs_restart: s.running.is_some() && (mode_changed || postmaster_parameter),
            changed_parameters: vec![],
        })
    }

    async fn write_pgpass(&self) -> Result<(), PgError> {
        drop(self.record("write_pgpass".into()));
        Ok(())
    }

    async fn start(&self, _timeout: Duration) -> Result<StartOutcome, PgError> {
        let mut s = self.record("start".into());
        if s.starts_fail {
            return Err(failed("pg_ctl start: the server did not start"));
        }
        if s.data.is_none() {
            return Err(failed("pg_ctl start: no data directory"));
        }
        if s.running.is_none() {
            let standby = s.config.as_ref().is_some_and(|c| c.recovery.is_some());
            s.running = Some(if standby {
                ServerRole::Replica
            } else {
                ServerRole::Primary
            });
        }
        Ok(StartOutcome::Ready)
    }

    async fn stop(&self, mode: StopMode, _timeout: Duration) -> Result<Option<StopMode>, PgError> {
        let mut s = self.record(format!("stop {mode:?}"));
        if s.running.take().is_none() {
            return Ok(None);
        }
        if let Some(d) = &mut s.data {
            d.clean = mode != StopMode::Immediate && mode != StopMode::Kill;
        }
        Ok(Some(mode))
    }

    async fn reload(&self) -> Result<(), PgError> {
        drop(self.record("reload".into()));
        Ok(())
    }

    async fn promote(&self, _timeout: Duration) -> Result<(), PgError> {
        let mut s = self.record("promote".into());
        if s.running != Some(ServerRole::Replica) {
            return Err(failed("pg_ctl promote: not in standby mode"));
        }
        s.running = Some(ServerRole::Primary);
        s.timeline = s.timeline.saturating_add(1);
        if let Some(c) = &mut s.config {
            c.recovery = None;
        }
        Ok(())
    }

    async fn create_roles(
        &self,
        _auth: &PgAuthentication,
        _users: &[BootstrapUser],
    ) -> Result<(), PgError> {
        drop(self.record("create_roles".into()));
        Ok(())
    }

    async fn basebackup(
        &self,
        _from_host: &str,
        from_port: u16,
        _extra_args: &[String],
        _timeout: Duration,
    ) -> Result<(), PgError> {
        let source = self.running_server_at(from_port);
        let mut s = self.record(format!("basebackup {from_port}"));
        if s.data.is_some() {
            return Err(failed("pg_basebackup: data directory not empty"));
        }
        let source = source.ok_or_else(|| failed("pg_basebackup: could not connect"))?;
        s.data = source.data.map(|d| Data { clean: true, ..d });
        s.timeline = source.timeline;
        s.wal = source.wal;
        Ok(())
    }

    async fn rewind(
        &self,
        _from_host: &str,
        from_port: u16,
        _timeout: Duration,
    ) -> Result<(), PgError> {
        let source = self.running_server_at(from_port);
        let mut s = self.record(format!("rewind {from_port}"));
        let source = source.ok_or_else(|| failed("pg_rewind: could not connect"))?;
        s.timeline = source.timeline;
        if let Some(d) = &mut s.data {
            d.clean = true;
        }
        Ok(())
    }

    async fn checkpoint(&self) -> Result<(), PgError> {
        drop(self.record("checkpoint".into()));
        Ok(())
    }

    async fn set_synchronous_standby_names(&self, value: Option<&str>) -> Result<(), PgError> {
        drop(self.record(format!(
            "synchronous_standby_names {}",
            value.unwrap_or("(reset)")
        )));
        Ok(())
    }

    async fn list_slots(&self) -> Result<Vec<SlotInfo>, PgError> {
        let s = lock(&self.state);
        Ok(s.slots
            .iter()
            .map(|(name, active)| SlotInfo {
                name: name.clone(),
                slot_type: "physical".into(),
                active: *active,
                restart_lsn: Some(Lsn(s.wal)),
            })
            .collect())
    }

    async fn create_physical_slot(&self, name: &str) -> Result<bool, PgError> {
        let mut s = self.record(format!("create_slot {name}"));
        Ok(s.slots.insert(name.to_owned(), false).is_none())
    }

    async fn drop_slot(&self, name: &str) -> Result<bool, PgError> {
        let mut s = self.record(format!("drop_slot {name}"));
        Ok(s.slots.remove(name).is_some())
    }

    async fn remove_data_dir(&self) -> Result<(), PgError> {
        let mut s = self.record("remove_data_dir".into());
        if s.running.is_some() {
            return Err(failed("remove data directory: server running"));
        }
        s.data = None;
        Ok(())
    }

    async fn move_data_dir_aside(&self) -> Result<(), PgError> {
        let mut s = self.record("move_data_dir_aside".into());
        if s.data.take().is_none() {
            return Err(failed("moving the data directory aside: no data directory"));
        }
        Ok(())
    }

    fn postmaster_exits(&self) -> watch::Receiver<u64> {
        self.exits.subscribe()
    }

    fn managed_config(&self, recovery: Option<Recovery>) -> ManagedConfig {
        ManagedConfig {
            parameters: BTreeMap::from([("port".to_owned(), self.port.to_string())]),
            pg_hba: vec![],
            recovery,
        }
    }

    fn local_dsn(&self) -> String {
        format!("dbname=postgres host=127.0.0.1 port={}", self.port)
    }

    async fn status_details(&self) -> StatusDetails {
        StatusDetails::default()
    }

    fn load_dynamic_cache(
        &self,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, CacheError> {
        Ok(lock(&self.state).dynamic_cache.clone())
    }

    fn save_dynamic_cache(
        &self,
        config: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), PgError> {
        lock(&self.state).dynamic_cache = Some(config.clone());
        Ok(())
    }

    fn live_wal(&self) -> Option<LiveWal> {
        None
    }
}
