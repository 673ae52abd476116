//! `PgNode` against real PostgreSQL 15 binaries: bootstrap, streaming replica, crash
//! detection, stop escalation, promotion and pg_rewind.
//!
//! Tests run as root in CI; `PgNode` must switch to the `postgres` OS user by itself. Every
//! postmaster started here is SIGKILLed by a drop guard, even when an assertion fails.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use pgkeel::config::{BootstrapUser, Callbacks, PgAuthentication, PgUser, PostgresqlConfig};
use pgkeel::postgres::{PgNode, PostgresControl, Recovery, StartOutcome, StopMode, Upstream};
use pgkeel_ha::pg::{DataDir, LocalPostgres, ServerRole};

const BIN: &str = "/usr/lib/postgresql/15/bin";
const SU_PASSWORD: &str = "su:pa's\\w0rd";
const REPL_PASSWORD: &str = "repl-secret-123";
const REWIND_PASSWORD: &str = "rewind-secret-456";
const APP_PASSWORD: &str = "app-secret-789";

/// SIGKILLs every postmaster (and its process group) under the given data dirs on drop.
struct KillOnDrop(Vec<PathBuf>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for dir in &self.0 {
            let Ok(text) = std::fs::read_to_string(dir.join("postmaster.pid")) else {
                continue;
            };
            let Some(pid) = text
                .lines()
                .next()
                .and_then(|l| l.trim().parse::<i32>().ok())
            else {
                continue;
            };
            let all = tree(pid);
            signal_all(&all, Signal::SIGCONT);
            signal_all(&all, Signal::SIGKILL);
        }
    }
}

/// `pid` and its direct children (PostgreSQL's children each run in their own session).
fn tree(pid: i32) -> Vec<i32> {
    let mut out = vec![pid];
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let ppid = std::fs::read_to_string(format!("/proc/{child}/stat"))
            .ok()
            .and_then(|s| {
                let (_, rest) = s.rsplit_once(')')?;
                rest.split_whitespace().nth(1)?.parse::<i32>().ok()
            });
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

fn signal_all(pids: &[i32], sig: Signal) {
    for &p in pids {
        let _ = nix::sys::signal::kill(Pid::from_raw(p), sig);
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A temp dir the `postgres` user can traverse.
fn base_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("pgk")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

fn auth() -> PgAuthentication {
    PgAuthentication {
        superuser: PgUser {
            username: "postgres".into(),
            password: Some(SU_PASSWORD.into()),
        },
        replication: PgUser {
            username: "replicator".into(),
            password: Some(REPL_PASSWORD.into()),
        },
        rewind: Some(PgUser {
            username: "rewind_user".into(),
            password: Some(REWIND_PASSWORD.into()),
        }),
    }
}

fn pg_config(base: &Path, name: &str, port: u16) -> PostgresqlConfig {
    let mut parameters = BTreeMap::new();
    parameters.insert("fsync".to_string(), serde_json::Value::Bool(false));
    parameters.insert("shared_buffers".to_string(), "16MB".into());
    // Proves create_roles keeps passwords out of the server log even with this set.
    parameters.insert("log_statement".to_string(), "all".into());
    PostgresqlConfig {
        listen: format!("127.0.0.1:{port}"),
        connect_address: format!("127.0.0.1:{port}"),
        data_dir: base.join(name),
        bin_dir: Some(PathBuf::from(BIN)),
        pgpass: base.join(format!("pgpass-{name}")),
        authentication: auth(),
        parameters,
        pg_hba: vec![
            "local all all scram-sha-256".into(),
            "host all all 127.0.0.1/32 scram-sha-256".into(),
            "host replication all 127.0.0.1/32 scram-sha-256".into(),
        ],
        use_pg_rewind: true,
        use_unix_socket: true,
        callbacks: Callbacks::default(),
        remove_data_directory_on_rewind_failure: false,
        remove_data_directory_on_diverged_timelines: false,
        pg_ctl_timeout: 60,
        basebackup: vec![],
    }
}

async fn sql_client(cfg: &PostgresqlConfig, port: u16) -> tokio_postgres::Client {
    let mut c = tokio_postgres::Config::new();
    c.host_path(PgNode::new(cfg, "t", "t").socket_dir())
        .port(port)
        .user("postgres")
        .password(SU_PASSWORD)
        .dbname("postgres");
    let (client, conn) = c.connect(tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

/// Polls `probe()` until `cond` holds, or panics after `limit` with the last observation.
async fn probe_until(
    node: &PgNode,
    limit: Duration,
    what: &str,
    cond: impl Fn(&LocalPostgres) -> bool,
) -> LocalPostgres {
    let deadline = Instant::now() + limit;
    loop {
        let p = node.probe().await;
        if cond(&p) {
            return p;
        }
        assert!(Instant::now() < deadline, "{what}: last probe {p:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn bootstrap_primary(base: &Path, name: &str, port: u16) -> (PostgresqlConfig, PgNode) {
    let cfg = pg_config(base, name, port);
    let node = PgNode::new(&cfg, "demo", name);
    node.initdb(&[
        "--no-sync".into(),
        "--encoding=UTF8".into(),
        "--locale=C".into(),
    ])
    .await
    .expect("initdb");
    node.write_pgpass().await.expect("pgpass");
    let change = node
        .write_config(&node.managed_config(None))
        .await
        .expect("write_config");
    assert!(change.changed && change.needs_restart, "{change:?}");
    assert!(cfg.data_dir.join("postgresql.base.conf").is_file());
    assert_eq!(
        node.start(Duration::from_secs(20)).await.expect("start"),
        StartOutcome::Ready
    );
    (cfg, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_replica_crash_escalation_promote_rewind() {
    let t0 = Instant::now();
    let base = base_dir();
    let (p1, p2) = (free_port(), free_port());
    let _guard = KillOnDrop(vec![base.path().join("node1"), base.path().join("node2")]);

    // --- primary
    let (cfg1, node1) = bootstrap_primary(base.path(), "node1", p1).await;
    let postgres_uid = nix::unistd::User::from_name("postgres")
        .expect("getpwnam")
        .expect("postgres user")
        .uid
        .as_raw();
    let md = std::fs::metadata(&cfg1.pgpass).expect("pgpass exists");
    assert_eq!(md.mode() & 0o777, 0o600, "pgpass mode");
    assert_eq!(md.uid(), postgres_uid, "pgpass owner");
    assert_eq!(
        std::fs::metadata(&cfg1.data_dir).expect("data dir").mode() & 0o777,
        0o700
    );
    // Rewriting the same config changes nothing.
    let again = node1
        .write_config(&node1.managed_config(None))
        .await
        .expect("rewrite");
    assert!(!again.changed && !again.needs_restart, "{again:?}");

    let p = node1.probe().await;
    assert!(p.running && p.accepting_connections, "{p:?}");
    assert_eq!(p.role, Some(ServerRole::Primary));
    assert!(matches!(p.data_dir, DataDir::Initialized { .. }), "{p:?}");
    assert_eq!(p.timeline, Some(1));
    assert!(p.wal_position.is_some_and(|l| l.0 > 0), "{p:?}");
    assert!(p.server_version.is_some_and(|v| v >= 150000), "{p:?}");
    assert_eq!(p.cluster_state.as_deref(), Some("in production"));
    assert_eq!(p.following, None);
    let sysid = p.sysid().expect("sysid").to_string();

    node1
        .create_roles(
            &auth(),
            &[BootstrapUser {
                name: "app".into(),
                password: Some(APP_PASSWORD.into()),
                options: vec!["createdb".into()],
            }],
        )
        .await
        .expect("create_roles");
    let slot = pgkeel_ha::keys::codec::slot_name_from_member_name("node2");
    assert!(node1.create_physical_slot(&slot).await.expect("slot"));
    assert!(!node1.create_physical_slot(&slot).await.expect("slot again"));
    assert!(
        node1
            .create_physical_slot("scratch")
            .await
            .expect("scratch")
    );
    assert!(node1.drop_slot("scratch").await.expect("drop"));
    assert!(!node1.drop_slot("scratch").await.expect("drop absent"));
    let slots = node1.list_slots().await.expect("slots");
    assert_eq!(slots.len(), 1, "{slots:?}");
    assert!(slots[0].restart_lsn.is_some(), "slot reserves WAL at once");
    // Exhausting max_replication_slots is told apart by its SQLSTATE, not by its text.
    let mut extra = Vec::new();
    let exhausted = loop {
        let name = format!("fill_{}", extra.len());
        match node1.create_physical_slot(&name).await {
            Ok(_) if extra.len() < 64 => extra.push(name),
            Ok(_) => panic!("64 slots created: max_replication_slots not enforced?"),
            Err(e) => break e,
        }
    };
    assert!(exhausted.is_configuration_limit(), "{exhausted}");
    for name in &extra {
        assert!(node1.drop_slot(name).await.expect("drop a filler slot"));
    }

    // --- replica
    let cfg2 = pg_config(base.path(), "node2", p2);
    let node2 = PgNode::new(&cfg2, "demo", "node2");
    node2.write_pgpass().await.expect("pgpass2");
    node2
        .basebackup("127.0.0.1", p1, &[], Duration::from_secs(30))
        .await
        .expect("basebackup");
    let rec = Recovery::streaming_from(Upstream {
        leader_name: "node1".into(),
        host: "127.0.0.1".into(),
        port: p1,
        slot_name: Some(slot.clone()),
        nostream: false,
    });
    let change = node2
        .write_config(&node2.managed_config(Some(rec)))
        .await
        .expect("write_config replica");
    assert!(change.needs_restart, "{change:?}");
    assert!(cfg2.data_dir.join("standby.signal").is_file());
    node2
        .start(Duration::from_secs(20))
        .await
        .expect("start replica");
    let r = probe_until(&node2, Duration::from_secs(20), "replica streaming", |p| {
        p.streaming && p.role == Some(ServerRole::Replica)
    })
    .await;
    assert_eq!(r.following.as_deref(), Some("node1"));
    assert_eq!(r.sysid(), Some(sysid.as_str()));
    assert_eq!(r.timeline, Some(1));
    assert!(r.receive_lsn.is_some() && r.replay_lsn.is_some(), "{r:?}");
    assert!(node1.list_slots().await.expect("slots")[0].active);

    // Secrets never reach the server log, even with log_statement = 'all'.
    let log = std::fs::read_to_string(node1.log_file()).expect("server log");
    for secret in [SU_PASSWORD, REPL_PASSWORD, REWIND_PASSWORD, APP_PASSWORD] {
        assert!(!log.contains(secret), "password leaked into the server log");
    }

    // --- a row written on the primary is read on the replica
    let c1 = sql_client(&cfg1, p1).await;
    c1.batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (42)")
        .await
        .expect("write");
    let c2 = sql_client(&cfg2, p2).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(row) = c2.query_one("SELECT x FROM t", &[]).await {
            assert_eq!(row.get::<_, i32>(0), 42);
            break;
        }
        assert!(Instant::now() < deadline, "row never replicated");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(c2);

    // --- crash of the replica is noticed at once
    let mut exits = node2.postmaster_exits();
    let before = *exits.borrow_and_update();
    let pid2 = node2.postmaster_pid().expect("replica pid");
    nix::sys::signal::kill(Pid::from_raw(pid2), Signal::SIGKILL).expect("kill -9");
    let t_kill = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), exits.changed())
        .await
        .expect("exit noticed")
        .expect("watch open");
    assert!(*exits.borrow() > before);
    println!("crash noticed after {:?}", t_kill.elapsed());
    let p = node2.probe().await;
    assert!(!p.running && !p.accepting_connections, "{p:?}");

    // Restart in place (crash recovery), back to streaming.
    node2
        .start(Duration::from_secs(20))
        .await
        .expect("restart replica");
    probe_until(
        &node2,
        Duration::from_secs(20),
        "replica streaming again",
        |p| p.streaming,
    )
    .await;

    // --- stop(Fast) escalates: with the only standby frozen, the primary's walsender waits
    // for it forever during a fast shutdown (field-notes #4); immediate must take over.
    let pid2 = node2.postmaster_pid().expect("replica pid");
    let frozen = tree(pid2);
    signal_all(&frozen, Signal::SIGSTOP);
    let t_stop = Instant::now();
    let how = node1
        .stop(StopMode::Fast, Duration::from_secs(2))
        .await
        .expect("stop primary");
    signal_all(&frozen, Signal::SIGCONT);
    assert_eq!(how, Some(StopMode::Immediate));
    println!("escalated stop took {:?}", t_stop.elapsed());
    assert!(t_stop.elapsed() < Duration::from_secs(6));
    let p = node1.probe().await;
    assert!(!p.running, "{p:?}");
    // The shutdown checkpoint was written before the walsender started waiting.
    assert_eq!(p.cluster_state.as_deref(), Some("shut down"));
    assert_eq!(
        node1
            .stop(StopMode::Fast, Duration::from_secs(1))
            .await
            .expect("stop"),
        None
    );

    // --- promote the replica. PostgreSQL can take the request and then sleep out
    // wal_retrieve_retry_interval (5 s) before acting on it (a WAL receiver asked for but not
    // yet running when the request came); the agent wakes it with a SIGHUP while it waits.
    // Here the startup process is frozen, so the promotion waits until the wake-up is seen.
    let startup = tree(node2.postmaster_pid().expect("replica pid"))
        .into_iter()
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.contains("startup"))
        })
        .expect("the startup process");
    signal_all(&[startup], Signal::SIGSTOP);
    let sighups = || {
        std::fs::read_to_string(node2.log_file())
            .unwrap_or_default()
            .matches("received SIGHUP")
            .count()
    };
    let before = sighups();
    let t_promote = Instant::now();
    let woken = async {
        let deadline = Instant::now() + Duration::from_secs(5);
        while sighups() == before && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let woken = sighups() > before;
        signal_all(&[startup], Signal::SIGCONT);
        woken
    };
    let (promoted, woken) = tokio::join!(node2.promote(Duration::from_secs(20)), woken);
    promoted.expect("promote");
    println!("promotion took {:?}", t_promote.elapsed());
    assert!(woken, "no SIGHUP while the promotion was pending");
    let p = probe_until(&node2, Duration::from_secs(10), "promoted", |p| {
        p.role == Some(ServerRole::Primary)
    })
    .await;
    assert_eq!(p.timeline, Some(2), "{p:?}");
    let c2 = sql_client(&cfg2, p2).await;
    c2.batch_execute("INSERT INTO t VALUES (43)")
        .await
        .expect("write on new primary");
    node2.checkpoint().await.expect("checkpoint after promote");

    // --- rewind the old primary onto the new timeline and make it follow node2
    node1
        .rewind("127.0.0.1", p2, Duration::from_secs(60))
        .await
        .expect("rewind");
    let rec = Recovery::streaming_from(Upstream {
        leader_name: "node2".into(),
        host: "127.0.0.1".into(),
        port: p2,
        slot_name: None,
        nostream: false,
    });
    node1
        .write_config(&node1.managed_config(Some(rec)))
        .await
        .expect("config old primary");
    node1
        .start(Duration::from_secs(20))
        .await
        .expect("start rewound");
    let p = probe_until(
        &node1,
        Duration::from_secs(20),
        "rewound node streams",
        |p| p.streaming && p.timeline == Some(2),
    )
    .await;
    assert_eq!(p.following.as_deref(), Some("node2"));

    // --- clean stops
    assert_eq!(
        node1
            .stop(StopMode::Fast, Duration::from_secs(10))
            .await
            .expect("stop1"),
        Some(StopMode::Fast)
    );
    assert_eq!(
        node2
            .stop(StopMode::Fast, Duration::from_secs(10))
            .await
            .expect("stop2"),
        Some(StopMode::Fast)
    );
    let p = node2.probe().await;
    assert_eq!(p.cluster_state.as_deref(), Some("shut down"), "{p:?}");
    println!("scenario took {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_postmaster_is_killed_and_exit_is_reported() {
    let base = base_dir();
    let port = free_port();
    let _guard = KillOnDrop(vec![base.path().join("solo")]);
    let (_cfg, node) = bootstrap_primary(base.path(), "solo", port).await;
    let mut exits = node.postmaster_exits();
    let before = *exits.borrow_and_update();
    let pid = node.postmaster_pid().expect("pid");
    // A stopped postmaster cannot act on SIGINT or SIGQUIT: only SIGKILL works.
    signal_all(&[pid], Signal::SIGSTOP);
    let how = node
        .stop(StopMode::Fast, Duration::from_millis(300))
        .await
        .expect("stop");
    assert_eq!(how, Some(StopMode::Kill));
    tokio::time::timeout(Duration::from_secs(5), exits.changed())
        .await
        .expect("exit noticed")
        .expect("watch open");
    assert!(*exits.borrow() > before);
    let p = node.probe().await;
    assert!(!p.running, "{p:?}");
    assert_eq!(p.cluster_state.as_deref(), Some("in production"));
    // pg_rewind of a crashed node runs single-user crash recovery first; the rewind itself
    // then fails (nothing to rewind from), as an error naming the command.
    let err = node
        .rewind("127.0.0.1", free_port(), Duration::from_secs(30))
        .await
        .expect_err("no source server");
    assert!(err.to_string().contains("pg_rewind"), "{err}");
    assert_eq!(
        node.probe().await.cluster_state.as_deref(),
        Some("shut down"),
        "single-user recovery left a cleanly shut down cluster"
    );
    node.remove_data_dir().await.expect("remove");
    assert_eq!(node.probe().await.data_dir, DataDir::Empty);
}

#[tokio::test]
async fn probe_and_refusals_without_a_server() {
    let base = base_dir();
    let cfg = pg_config(base.path(), "none", free_port());
    let node = PgNode::new(&cfg, "demo", "none");
    let p = node.probe().await;
    assert_eq!(p, LocalPostgres::empty());
    assert_eq!(
        node.stop(StopMode::Fast, Duration::from_secs(1))
            .await
            .expect("stop"),
        None
    );
    assert!(node.reload().await.is_err());
    std::fs::create_dir_all(&cfg.data_dir).expect("mkdir");
    assert_eq!(node.probe().await.data_dir, DataDir::Empty);
    std::fs::write(cfg.data_dir.join("junk"), b"x").expect("junk");
    assert!(matches!(
        node.probe().await.data_dir,
        DataDir::Inaccessible(_)
    ));
    let err = node
        .initdb(&[])
        .await
        .expect_err("initdb into a non-empty dir");
    assert!(err.to_string().contains("not empty"), "{err}");
    let err = node
        .basebackup("127.0.0.1", 1, &[], Duration::from_secs(1))
        .await
        .expect_err("basebackup into a non-empty dir");
    assert!(err.to_string().contains("not empty"), "{err}");
    node.remove_data_dir().await.expect("remove");
    assert!(!cfg.data_dir.exists());
}

#[tokio::test]
async fn errors_never_contain_passwords() {
    let base = base_dir();
    let cfg = pg_config(base.path(), "down", free_port());
    let node = PgNode::new(&cfg, "demo", "down");
    // Nothing listens: the connect error must not echo the password.
    let err = node.checkpoint().await.expect_err("no server");
    let msg = err.to_string();
    for secret in [SU_PASSWORD, REPL_PASSWORD, REWIND_PASSWORD] {
        assert!(!msg.contains(secret), "{msg}");
    }
    // A failing pg_basebackup shows its command line, without any password.
    let err = node
        .basebackup("127.0.0.1", 1, &[], Duration::from_secs(10))
        .await
        .expect_err("nothing to clone from");
    let msg = err.to_string();
    assert!(msg.contains("pg_basebackup"), "{msg}");
    assert!(!msg.contains(REPL_PASSWORD), "{msg}");
    assert!(!cfg.data_dir.exists(), "partial clone removed");
}

// Reference: Patroni `Bootstrap.call_post_bootstrap` passes
// `format_dsn(connection_pool.conn_kwargs)`: the unix socket with `use_unix_socket`, else
// localhost when PostgreSQL listens on a local address, else the first listen address.
#[test]
fn post_bootstrap_gets_patronis_local_connection_string() {
    let base = Path::new("/nonexistent-pgkeel");
    let mut cfg = pg_config(base, "dsn", 5433);
    cfg.parameters
        .insert("unix_socket_directories".into(), "/run/pg sock,/tmp".into());
    assert_eq!(
        PgNode::new(&cfg, "demo", "dsn").local_dsn(),
        "dbname=postgres user=postgres host=/run/pg\\ sock port=5433"
    );
    cfg.use_unix_socket = false;
    assert_eq!(
        PgNode::new(&cfg, "demo", "dsn").local_dsn(),
        "dbname=postgres user=postgres host=localhost port=5433"
    );
    cfg.listen = "10.1.2.3,0.0.0.0:6000".into();
    assert_eq!(
        PgNode::new(&cfg, "demo", "dsn").local_dsn(),
        "dbname=postgres user=postgres host=localhost port=6000"
    );
    cfg.listen = "10.1.2.3:6000".into();
    assert_eq!(
        PgNode::new(&cfg, "demo", "dsn").local_dsn(),
        "dbname=postgres user=postgres host=10.1.2.3 port=6000"
    );
}
