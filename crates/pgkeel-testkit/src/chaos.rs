//! A seeded fault campaign on a real cluster: the proof that the synchronous modes never lose
//! an acknowledged write, and the measure of what asynchronous replication loses.
//!
//! Several writer clients insert unique ids into `chaos(id)` on whichever node takes writes and
//! record each acknowledgement (id, node, when sent, when acknowledged); each reconnects every
//! second trying its own home node first, so two nodes taking writes at once would both get
//! some. A nemesis injects faults
//! one after another (every kind once, then at random), in an order and with delays drawn from
//! the seed; after each one the cluster must settle (one leader, every replica streaming, writes
//! acknowledged again and, in the synchronous modes, a standby in the `sync` key) within a
//! stated bound. The checker then reports:
//!
//! * acknowledged ids missing from the final primary (must be none in `on` and `quorum` modes);
//! * overlapping primaries: a node acknowledging a write that was sent after another node had
//!   acknowledged one, when that node had acknowledged before it, within one fault's window
//!   (two nodes took writes at the same time; must be none in the synchronous modes);
//! * per fault: the longest interval without any acknowledgement, and the time to settle.
//!
//! The same seed draws the same faults, targets and delays (the cluster's own timing still
//! varies). Network faults (partitions) will be further [`FaultKind`]s: each kind is injected
//! by `inject` and healed before the settle wait, so a partition fits the same shape.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use crate::bench::stats;
use crate::writer::{Ack, Writer, longest_gap};
use crate::{PgkeelCluster, eventually};

/// The replication mode a campaign runs (`synchronous_mode` in `/config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replication {
    /// `synchronous_mode: false`.
    Async,
    /// `synchronous_mode: true` (priority, `FIRST n`).
    Sync,
    /// `synchronous_mode: quorum` (`ANY n`).
    Quorum,
}

impl Replication {
    /// Parses `off`/`async`, `on`/`sync`, `quorum`.
    pub fn parse(s: &str) -> Option<Replication> {
        match s {
            "off" | "async" | "false" => Some(Replication::Async),
            "on" | "sync" | "true" => Some(Replication::Sync),
            "quorum" => Some(Replication::Quorum),
            _ => None,
        }
    }

    /// The mode as `synchronous_mode` is usually written.
    pub fn label(self) -> &'static str {
        match self {
            Replication::Async => "off",
            Replication::Sync => "on",
            Replication::Quorum => "quorum",
        }
    }

    fn config_value(self) -> Value {
        match self {
            Replication::Async => json!(false),
            Replication::Sync => json!(true),
            Replication::Quorum => json!("quorum"),
        }
    }

    /// Whether the mode promises anything about acknowledged writes (asynchronous does not).
    pub fn is_synchronous(self) -> bool {
        self != Replication::Async
    }
}

/// One fault the nemesis injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// SIGKILL of the primary's agent and postmaster (its etcd member stays); the agent is
    /// started again once another node leads.
    HostLoss,
    /// SIGKILL of the primary's agent alone, started again within half a TTL.
    AgentKill,
    /// SIGSTOP of the primary's agent for longer than the TTL, then SIGCONT.
    AgentFreeze,
    /// SIGKILL of the primary's postmaster (the agent restarts it).
    PgCrash,
    /// `POST /switchover` to a replica (the synchronous standby in `on` mode).
    Switchover,
    /// `POST /failover` to a replica (the synchronous standby in `on` mode).
    Failover,
    /// `POST /restart` on a replica.
    ReplicaRestart,
    /// SIGKILL of a synchronous standby's agent and postmaster (any replica in `off` mode),
    /// started again within a TTL.
    SyncStandbyKill,
}

impl FaultKind {
    /// Every kind, in the order the summary prints them.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::HostLoss,
        FaultKind::AgentKill,
        FaultKind::AgentFreeze,
        FaultKind::PgCrash,
        FaultKind::Switchover,
        FaultKind::Failover,
        FaultKind::ReplicaRestart,
        FaultKind::SyncStandbyKill,
    ];

    /// A short name for reports.
    pub fn label(self) -> &'static str {
        match self {
            FaultKind::HostLoss => "primary host lost",
            FaultKind::AgentKill => "primary agent killed",
            FaultKind::AgentFreeze => "primary agent frozen > ttl",
            FaultKind::PgCrash => "primary PostgreSQL crash",
            FaultKind::Switchover => "switchover",
            FaultKind::Failover => "failover to a replica",
            FaultKind::ReplicaRestart => "replica restart",
            FaultKind::SyncStandbyKill => "sync standby killed",
        }
    }
}

/// What a campaign does.
#[derive(Debug, Clone)]
pub struct CampaignOptions {
    /// The replication mode.
    pub replication: Replication,
    /// Draws the faults, their targets and delays.
    pub seed: u64,
    /// How many faults, one after another.
    pub faults: usize,
    /// How many concurrent writer clients.
    pub writers: usize,
    /// Each fault must have settled within this, counted from its injection.
    pub settle_bound: Duration,
}

/// What one fault did.
#[derive(Debug, Clone)]
pub struct FaultOutcome {
    /// Which fault.
    pub kind: FaultKind,
    /// The member it hit.
    pub target: String,
    /// The leader once settled.
    pub leader_after: String,
    /// From the injection until one leader, all replicas streaming and writes acknowledged.
    pub settled_after: Duration,
    /// The longest interval without an acknowledged write, from the last write sent before the
    /// injection until the cluster had settled.
    pub write_gap: Option<Duration>,
    /// The request the fault made was refused (its status and body), if it was.
    pub refused: Option<String>,
}

impl FaultOutcome {
    /// The report's line for the `i`-th fault (from 0).
    fn render_row(&self, i: usize) -> String {
        format!(
            "  fault {:>3}: {:<28} on {:<6} -> leader {:<6} settled {:>6.2} s, write gap {}{}\n",
            i + 1,
            self.kind.label(),
            self.target,
            self.leader_after,
            self.settled_after.as_secs_f64(),
            self.write_gap
                .map(|g| format!("{:.3} s", g.as_secs_f64()))
                .unwrap_or_else(|| "-".into()),
            self.refused
                .as_deref()
                .map(|r| format!(" (refused: {r})"))
                .unwrap_or_default()
        )
    }
}

/// The checker's findings.
#[derive(Debug, Clone)]
pub struct Report {
    /// The mode the campaign ran.
    pub replication: Replication,
    /// Its seed.
    pub seed: u64,
    /// Each fault, in order.
    pub faults: Vec<FaultOutcome>,
    /// Writes acknowledged to a client.
    pub acknowledged: usize,
    /// Acknowledged ids missing from the final primary.
    pub lost: Vec<i64>,
    /// Where the first of them were acknowledged (node, fault window).
    pub lost_where: Vec<String>,
    /// Where the agents' logs were copied when the campaign failed.
    pub logs_kept: Option<std::path::PathBuf>,
    /// Rows on the final primary whose write was not acknowledged (in doubt: the commit went
    /// through, its acknowledgement did not reach the client).
    pub in_doubt_present: usize,
    /// Windows in which two nodes acknowledged writes, described.
    pub overlaps: Vec<String>,
}

impl Report {
    /// No acknowledged write lost and no overlapping primaries, where the mode promises it.
    pub fn passed(&self) -> bool {
        !self.replication.is_synchronous() || (self.lost.is_empty() && self.overlaps.is_empty())
    }

    /// The report as printed by tests and the benchmark: each fault, then per fault kind the
    /// write gap and settle time (min/median/max), then the checker's verdict.
    pub fn render(&self) -> String {
        let mut out = format!(
            "campaign: synchronous_mode {}, seed {}, {} faults\n",
            self.replication.label(),
            self.seed,
            self.faults.len()
        );
        for (i, f) in self.faults.iter().enumerate() {
            out.push_str(&f.render_row(i));
        }
        out.push_str("  per fault kind (min / median / max):\n");
        for kind in FaultKind::ALL {
            let of_kind: Vec<&FaultOutcome> =
                self.faults.iter().filter(|f| f.kind == kind).collect();
            if of_kind.is_empty() {
                continue;
            }
            let gaps: Vec<f64> = of_kind
                .iter()
                .filter_map(|f| f.write_gap.map(|g| g.as_secs_f64()))
                .collect();
            let settles: Vec<f64> = of_kind
                .iter()
                .map(|f| f.settled_after.as_secs_f64())
                .collect();
            let fmt = |v: &[f64]| {
                stats(v)
                    .map(|(a, b, c)| format!("{a:.3} / {b:.3} / {c:.3} s"))
                    .unwrap_or_else(|| "-".into())
            };
            out.push_str(&format!(
                "    {:<28} x{:<3} write gap {}, settle {}\n",
                kind.label(),
                of_kind.len(),
                fmt(&gaps),
                fmt(&settles)
            ));
        }
        out.push_str(&format!(
            "  acknowledged writes: {}, lost: {}{}, in doubt but present: {}\n",
            self.acknowledged,
            self.lost.len(),
            if self.lost.is_empty() {
                String::new()
            } else {
                format!(
                    " (first ids: {:?})",
                    self.lost.iter().take(5).collect::<Vec<_>>()
                )
            },
            self.in_doubt_present
        ));
        for w in &self.lost_where {
            out.push_str(&format!("    lost: {w}\n"));
        }
        out.push_str(&format!(
            "  overlapping primaries: {}\n",
            self.overlaps.len()
        ));
        for o in &self.overlaps {
            out.push_str(&format!("    {o}\n"));
        }
        out.push_str(&format!(
            "  result: {}\n",
            if self.passed() { "PASS" } else { "FAIL" }
        ));
        if let Some(dir) = &self.logs_kept {
            out.push_str(&format!("  agent logs kept in {}\n", dir.display()));
        }
        out
    }
}

/// A tiny xorshift64* generator: the campaign's only source of randomness.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// Uniform in `0..max`.
    fn millis(&mut self, max: Duration) -> Duration {
        let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX).max(1);
        Duration::from_millis(self.next() % ms)
    }
}

/// Every kind once, in a seeded order: the first faults of a campaign.
fn first_faults(rng: &mut Rng) -> [FaultKind; 8] {
    let mut order = FaultKind::ALL;
    for k in (1..order.len()).rev() {
        order.swap(k, rng.below(k + 1));
    }
    order
}

/// A seed from the clock, for runs that were not given one (printed, so it can be replayed).
pub fn fresh_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        % 1_000_000_007
}

/// Ids of writer `w` start here (each writer's ids are its own).
const IDS_PER_WRITER: i64 = 1_000_000_000;
/// How long writes must have been acknowledged before the first fault.
const WARM_UP: Duration = Duration::from_secs(2);
/// How long the settled state must hold before the next fault.
const STABLE: Duration = Duration::from_secs(2);

/// Runs the campaign on a started cluster and reports; `Err` only when the campaign itself
/// could not go on (the cluster did not settle within the bound, a tool failed).
pub fn run(c: &mut PgkeelCluster, o: &CampaignOptions) -> anyhow::Result<Report> {
    let mut outcomes = Vec::new();
    match campaign(c, o, &mut outcomes) {
        Ok(report) => Ok(keep_logs_of_a_failure(c, report)),
        // An aborted campaign is a failure too: its logs and the faults it got through are
        // what tells why (the cluster's directory goes when the cluster is dropped).
        Err(e) => {
            let kept = keep_logs(c, o.replication, o.seed)
                .map(|d| format!("agent logs kept in {}", d.display()))
                .unwrap_or_else(|| "agent logs could not be kept".into());
            let done: String = outcomes
                .iter()
                .enumerate()
                .map(|(i, f)| f.render_row(i))
                .collect();
            Err(e.context(format!(
                "campaign aborted after {} of {} faults (synchronous_mode {}, seed {}); {kept}\n{done}",
                outcomes.len(),
                o.faults,
                o.replication.label(),
                o.seed
            )))
        }
    }
}

/// The campaign proper; `outcomes` holds the faults it got through, also when it aborts.
fn campaign(
    c: &mut PgkeelCluster,
    o: &CampaignOptions,
    outcomes: &mut Vec<FaultOutcome>,
) -> anyhow::Result<Report> {
    let mut rng = Rng::new(o.seed);
    let ttl = Duration::from_secs(c.options().ttl.into());
    let leader = c.wait_healthy(o.settle_bound)?;
    set_replication(c, leader, o.replication)?;
    c.psql(leader, "CREATE TABLE chaos (id bigint PRIMARY KEY)")?;
    let ports: Vec<u16> = (0..c.len()).map(|i| c.node(i).pg_port).collect();
    let writers = (0..o.writers.max(1))
        .map(|w| {
            let first = i64::try_from(w).unwrap_or(0).saturating_mul(IDS_PER_WRITER);
            Writer::start_ids(ports.clone(), &format!("chaos-writer-{w}"), first, w)
        })
        .collect::<anyhow::Result<Vec<Writer>>>()?;
    wait_for_writes(&writers, Instant::now(), WARM_UP + o.settle_bound)?;
    std::thread::sleep(WARM_UP);

    let order = first_faults(&mut rng);
    let mut windows = Vec::new();
    for n in 0..o.faults {
        let leader = c.wait_healthy(o.settle_bound)?;
        let kind = match order.get(n) {
            Some(k) => *k,
            None => FaultKind::ALL[rng.below(FaultKind::ALL.len())],
        };
        // Land at a random point of the lease renewal and HA cycle.
        std::thread::sleep(rng.millis(Duration::from_secs(1)));
        let injected = Instant::now();
        let (target, refused) = inject(c, kind, leader, &mut rng, o, ttl)
            .with_context(|| format!("fault {} ({})\n{}", n + 1, kind.label(), c.log_tails(30)))?;
        let healed = Instant::now();
        let left = o
            .settle_bound
            .saturating_sub(healed.duration_since(injected));
        // Settled once the condition has held for STABLE (a restarted primary's first cycles
        // may still move the `sync` key); the settle time is when it began to hold.
        let mut holding: Option<(Instant, usize)> = None;
        let (settled, leader_after) = eventually(left, Duration::from_millis(100), || {
            let check = c.check_healthy().and_then(|l| {
                protected(c, l, o.replication)?;
                wait_for_writes(&writers, healed, Duration::ZERO).map_err(|e| e.to_string())?;
                Ok(l)
            });
            match (check, holding) {
                (Ok(l), Some((since, held))) if held == l => {
                    if since.elapsed() >= STABLE {
                        Ok((since, l))
                    } else {
                        Err("settling".into())
                    }
                }
                (Ok(l), _) => {
                    holding = Some((Instant::now(), l));
                    Err("settling".into())
                }
                (Err(e), _) => {
                    holding = None;
                    Err(e)
                }
            }
        })
        .map_err(|e| {
            anyhow!(
                "fault {} ({} on {target}): not settled within {:?} (seed {}): {e}\n{}\n{}",
                n + 1,
                kind.label(),
                o.settle_bound,
                o.seed,
                writers_state(&writers, healed),
                c.log_tails(40)
            )
        })?;
        let merged = merged_acks(&writers);
        outcomes.push(FaultOutcome {
            kind,
            target,
            leader_after: c.node(leader_after).name.clone(),
            settled_after: settled.duration_since(injected),
            write_gap: longest_gap(&merged, injected, settled),
            refused,
        });
        windows.push(injected);
    }
    let last = c.wait_healthy(o.settle_bound)?;
    let merged = merged_acks(&writers);
    drop(writers);
    let rows = c.psql(last, "SELECT id FROM chaos")?;
    let present: BTreeSet<i64> = rows.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let acked: BTreeSet<i64> = merged.iter().map(|a| a.id).collect();
    let lost: Vec<i64> = acked.difference(&present).copied().collect();
    let in_doubt_present = present.difference(&acked).count();
    let names: Vec<String> = (0..c.len()).map(|i| c.node(i).name.clone()).collect();
    let overlaps = overlapping_primaries(&merged, &windows, outcomes, &names);
    let lost_where = lost
        .iter()
        .take(5)
        .filter_map(|id| merged.iter().find(|a| a.id == *id))
        .map(|a| where_acknowledged(a, &windows, outcomes, &names))
        .collect();
    Ok(Report {
        replication: o.replication,
        seed: o.seed,
        faults: outcomes.clone(),
        acknowledged: acked.len(),
        lost,
        lost_where,
        in_doubt_present,
        overlaps,
        logs_kept: None,
    })
}

/// "id N acknowledged by nodeX at +t s into fault k (kind)", for a lost write.
fn where_acknowledged(
    a: &Ack,
    windows: &[Instant],
    outcomes: &[FaultOutcome],
    names: &[String],
) -> String {
    let node = names.get(a.node).map_or("?", String::as_str);
    match windows.iter().rposition(|w| *w <= a.sent) {
        Some(k) => format!(
            "id {} acknowledged by {node} at +{:.3} s into fault {} ({})",
            a.id,
            a.at.duration_since(windows[k]).as_secs_f64(),
            k + 1,
            outcomes.get(k).map_or("?", |f| f.kind.label())
        ),
        None => format!("id {} acknowledged by {node} before the first fault", a.id),
    }
}

/// A failed campaign's agent logs are copied to `$TMPDIR/pgkeel-chaos-<mode>-<seed>/` (the cluster's
/// own directory goes with it), so the failure can be read afterwards.
fn keep_logs_of_a_failure(c: &PgkeelCluster, mut report: Report) -> Report {
    if report.passed() {
        return report;
    }
    report.logs_kept = keep_logs(c, report.replication, report.seed);
    report
}

/// Copies every agent's log to `$TMPDIR/pgkeel-chaos-<mode>-<seed>/` (one directory per mode:
/// `--mode all` runs them all with one seed); the directory, if it could be made.
fn keep_logs(c: &PgkeelCluster, mode: Replication, seed: u64) -> Option<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("pgkeel-chaos-{}-{seed}", mode.label()));
    std::fs::create_dir_all(&dir).ok()?;
    for i in 0..c.len() {
        let _ = std::fs::write(dir.join(format!("{}.log", c.node(i).name)), c.logs(i));
    }
    Some(dir)
}

/// Turns the mode on through `/config` and waits until the leader's `sync` key names a
/// standby (writes are protected from then on). Asynchronous: nothing to do.
pub fn set_replication(c: &PgkeelCluster, leader: usize, r: Replication) -> anyhow::Result<()> {
    if !r.is_synchronous() {
        return Ok(());
    }
    let body = json!({ "synchronous_mode": r.config_value() }).to_string();
    let (code, text) = c.api_request(leader, "PATCH", "/config", &body)?;
    if code != 200 {
        bail!("PATCH /config {body}: {code} {text}");
    }
    eventually(Duration::from_secs(30), Duration::from_millis(100), || {
        protected(c, leader, r)
    })
    .map_err(|e| anyhow!("synchronous_mode {} not in effect: {e}", r.label()))
}

/// In a synchronous mode, `Ok` once the `sync` key names the leader and a standby: only then
/// can a failure of the leader be failed over (after a primary restarts, the key lists nobody
/// until a standby has confirmed again, as in Patroni, and a host loss in that window is not
/// failed over in `on` mode).
pub fn protected(c: &PgkeelCluster, leader: usize, r: Replication) -> Result<(), String> {
    if !r.is_synchronous() {
        return Ok(());
    }
    let key = c.sync_key();
    let named = key["sync_standby"].as_str().is_some_and(|s| !s.is_empty());
    if key["leader"] == json!(c.node(leader).name) && named {
        Ok(())
    } else {
        Err(format!("sync key {key}"))
    }
}

/// The members the `sync` key lists.
fn synchronous_standbys(c: &PgkeelCluster) -> Vec<usize> {
    c.sync_key()["sync_standby"]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .filter_map(|name| c.index_of(name.trim()))
        .collect()
}

/// A replica to aim at: a synchronous standby in `on` mode (the only ones a switchover or
/// failover may go to), any replica otherwise.
fn pick_replica(
    c: &PgkeelCluster,
    leader: usize,
    prefer_sync: bool,
    rng: &mut Rng,
) -> anyhow::Result<usize> {
    let replicas: Vec<usize> = (0..c.len()).filter(|&i| i != leader).collect();
    let sync: Vec<usize> = synchronous_standbys(c)
        .into_iter()
        .filter(|i| replicas.contains(i))
        .collect();
    let pool = if prefer_sync && !sync.is_empty() {
        sync
    } else {
        replicas
    };
    if pool.is_empty() {
        bail!("no replica to aim at");
    }
    Ok(pool[rng.below(pool.len())])
}

/// Injects one fault and heals what the fault itself does not heal (restarts a killed agent,
/// resumes a frozen one): the member hit, and a refusal if the request was refused.
fn inject(
    c: &mut PgkeelCluster,
    kind: FaultKind,
    leader: usize,
    rng: &mut Rng,
    o: &CampaignOptions,
    ttl: Duration,
) -> anyhow::Result<(String, Option<String>)> {
    let on_mode = o.replication == Replication::Sync;
    let mut refused = None;
    let target = match kind {
        FaultKind::HostLoss => {
            c.kill_agent(leader)?;
            let _ = c.kill_postmaster(leader);
            eventually(o.settle_bound, Duration::from_millis(50), || {
                c.writable_leader_other_than(leader)
            })
            .map_err(|e| anyhow!("no new leader after the host loss: {e}"))?;
            c.restart_agent(leader)?;
            leader
        }
        FaultKind::AgentKill => {
            c.kill_agent(leader)?;
            std::thread::sleep(rng.millis(ttl / 2));
            c.restart_agent(leader)?;
            leader
        }
        FaultKind::AgentFreeze => {
            c.stop_agent(leader)?;
            std::thread::sleep(ttl + Duration::from_secs(2));
            c.cont_agent(leader)?;
            leader
        }
        FaultKind::PgCrash => {
            c.kill_postmaster(leader)?;
            leader
        }
        FaultKind::Switchover | FaultKind::Failover => {
            let cand = pick_replica(c, leader, on_mode, rng)?;
            let (path, body) = if kind == FaultKind::Switchover {
                (
                    "/switchover",
                    json!({"leader": c.node(leader).name, "candidate": c.node(cand).name}),
                )
            } else {
                ("/failover", json!({"candidate": c.node(cand).name}))
            };
            let (code, text) =
                c.api_request_within(leader, "POST", path, &body.to_string(), o.settle_bound)?;
            if code != 200 {
                refused = Some(format!("{code} {text}"));
            }
            cand
        }
        FaultKind::ReplicaRestart => {
            let r = pick_replica(c, leader, false, rng)?;
            let (code, text) = c.api_request_within(r, "POST", "/restart", "{}", o.settle_bound)?;
            if code != 200 {
                refused = Some(format!("{code} {text}"));
            }
            r
        }
        FaultKind::SyncStandbyKill => {
            let r = pick_replica(c, leader, true, rng)?;
            c.kill_agent(r)?;
            let _ = c.kill_postmaster(r);
            std::thread::sleep(rng.millis(ttl));
            c.restart_agent(r)?;
            r
        }
    };
    Ok((c.node(target).name.clone(), refused))
}

/// Each writer's last acknowledgement and last errors, for a campaign that did not settle.
fn writers_state(writers: &[Writer], since: Instant) -> String {
    let mut out = String::new();
    for (w, writer) in writers.iter().enumerate() {
        let last = writer.acks().last().map(|a| {
            let after = a.at.checked_duration_since(since).map(|d| d.as_secs_f64());
            format!("node{} ({:?} s after the heal)", a.node, after)
        });
        let errors = writer.errors();
        let recent: Vec<&str> = errors
            .iter()
            .rev()
            .take(3)
            .map(|(_, e)| e.as_str())
            .collect();
        out.push_str(&format!(
            "writer {w}: last acknowledged by {}; last errors: {recent:?}\n",
            last.unwrap_or_else(|| "nobody".into())
        ));
    }
    out
}

/// Every writer's acknowledgements, by arrival.
fn merged_acks(writers: &[Writer]) -> Vec<Ack> {
    let mut all: Vec<Ack> = writers.iter().flat_map(|w| w.acks().clone()).collect();
    all.sort_by_key(|a| a.at);
    all
}

/// `Ok` once every writer has had a write sent after `since` acknowledged; polls until
/// `timeout` (zero: one check).
fn wait_for_writes(writers: &[Writer], since: Instant, timeout: Duration) -> anyhow::Result<()> {
    eventually(timeout, Duration::from_millis(20), || {
        let idle = writers
            .iter()
            .filter(|w| !w.acks().iter().rev().any(|a| a.sent > since))
            .count();
        if idle == 0 {
            Ok(())
        } else {
            Err(format!("{idle} writers without an acknowledged write yet"))
        }
    })
    .map_err(|e| anyhow!(e))
}

/// Windows (from one injection to the next) in which node X acknowledged a write, then node Y
/// acknowledged one sent after that, then X acknowledged one sent after Y's acknowledgement:
/// two nodes took writes at the same time. Within a window at most one leader change is
/// expected, so a legitimate X -> Y -> X cannot happen inside one.
fn overlapping_primaries(
    acks: &[Ack],
    windows: &[Instant],
    outcomes: &[FaultOutcome],
    names: &[String],
) -> Vec<String> {
    let name = |i: usize| {
        names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("node #{i}"))
    };
    let mut found = Vec::new();
    for (w, start) in windows.iter().enumerate() {
        let end = windows.get(w + 1).copied();
        let in_window: Vec<&Ack> = acks
            .iter()
            .filter(|a| a.sent >= *start && end.is_none_or(|e| a.sent < e))
            .collect();
        let mut by_node: BTreeMap<usize, Vec<&Ack>> = BTreeMap::new();
        for a in &in_window {
            by_node.entry(a.node).or_default().push(a);
        }
        for (&x, xs) in &by_node {
            let Some(first_x) = xs.iter().map(|a| a.at).min() else {
                continue;
            };
            let Some(last_x_sent) = xs.iter().map(|a| a.sent).max() else {
                continue;
            };
            for (&y, ys) in &by_node {
                if x == y {
                    continue;
                }
                let y_between = ys
                    .iter()
                    .filter(|b| b.sent > first_x)
                    .map(|b| b.at)
                    .min()
                    .filter(|y_at| *y_at < last_x_sent);
                if let Some(y_at) = y_between {
                    let kind = outcomes.get(w).map(|f| f.kind.label()).unwrap_or("?");
                    found.push(format!(
                        "fault {} ({kind}): {} acknowledged at +{:.3} s, {} at +{:.3} s, {} again for a write sent at +{:.3} s",
                        w + 1,
                        name(x),
                        first_x.duration_since(*start).as_secs_f64(),
                        name(y),
                        y_at.duration_since(*start).as_secs_f64(),
                        name(x),
                        last_x_sent.duration_since(*start).as_secs_f64(),
                    ));
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(base: Instant, node: usize, sent_ms: u64, at_ms: u64) -> Ack {
        Ack {
            sent: base + Duration::from_millis(sent_ms),
            at: base + Duration::from_millis(at_ms),
            node,
            id: 0,
        }
    }

    fn outcome() -> FaultOutcome {
        FaultOutcome {
            kind: FaultKind::AgentFreeze,
            target: "node0".into(),
            leader_after: "node1".into(),
            settled_after: Duration::ZERO,
            write_gap: None,
            refused: None,
        }
    }

    #[test]
    fn a_clean_leader_change_is_no_overlap() {
        let t = Instant::now();
        let names = vec!["node0".to_string(), "node1".to_string()];
        // node0 until 100 ms, then node1 from 900 ms; a late acknowledgement of a write node0
        // received before node1 took over does not count either.
        let acks = vec![
            ack(t, 0, 10, 20),
            ack(t, 0, 90, 100),
            ack(t, 1, 880, 900),
            ack(t, 0, 95, 905),
            ack(t, 1, 920, 930),
        ];
        assert!(overlapping_primaries(&acks, &[t], &[outcome()], &names).is_empty());
    }

    #[test]
    fn a_write_taken_after_another_node_acknowledged_is_an_overlap() {
        let t = Instant::now();
        let names = vec!["node0".to_string(), "node1".to_string()];
        let acks = vec![
            ack(t, 0, 10, 20),
            ack(t, 1, 880, 900),
            ack(t, 0, 950, 960), // sent after node1 acknowledged: two primaries
        ];
        let found = overlapping_primaries(&acks, &[t], &[outcome()], &names);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("node0 acknowledged"), "{found:?}");
        // The same acknowledgements split by a second fault between them are two leader
        // changes, each clean.
        let second = t + Duration::from_millis(940);
        let found = overlapping_primaries(&acks, &[t, second], &[outcome(), outcome()], &names);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn the_first_faults_are_every_kind_once_and_the_seed_replays_them() {
        let a = first_faults(&mut Rng::new(7));
        let mut sorted = a;
        sorted.sort();
        assert_eq!(sorted, FaultKind::ALL);
        assert_eq!(a, first_faults(&mut Rng::new(7)));
        assert_ne!(a, first_faults(&mut Rng::new(8)));
    }
}
