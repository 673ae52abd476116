//! REST API behaviour against a hand-made `NodeStatus` and an in-test fake DCS.
// Reference: patroni-reference.md §3 (REST API).
#![allow(clippy::unwrap_used)] // test support code outside #[test] fns

use pgkeel::agent::published::NodeStatus;
use pgkeel::api::access::AccessList;
use pgkeel::api::{ApiState, router};
use pgkeel::config::BasicAuth;
use pgkeel::dcs::{Dcs, DcsError, KeyValue, Snapshot};
use pgkeel_ha::cluster::GlobalConfig;
use pgkeel_ha::keys::KeyLayout;
use pgkeel_ha::keys::codec::{RawKv, parse_cluster};
use pgkeel_ha::pg::{DataDir, LocalPostgres, Lsn, ServerRole};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Minimal DCS: a map of key -> (value, mod_revision).
#[derive(Default)]
struct FakeDcs {
    kv: Mutex<BTreeMap<String, (Vec<u8>, i64)>>,
    rev: Mutex<i64>,
}

impl FakeDcs {
    fn set(&self, key: &str, value: &str) {
        let mut rev = self.rev.lock().unwrap();
        *rev += 1;
        self.kv
            .lock()
            .unwrap()
            .insert(key.into(), (value.as_bytes().to_vec(), *rev));
    }
    fn get(&self, key: &str) -> Option<String> {
        self.kv
            .lock()
            .unwrap()
            .get(key)
            .map(|(v, _)| String::from_utf8_lossy(v).into_owned())
    }
}

#[async_trait::async_trait]
impl Dcs for FakeDcs {
    async fn get_prefix(&self, prefix: &str) -> Result<Snapshot, DcsError> {
        let kvs = self
            .kv
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, (v, r))| KeyValue {
                key: k.clone(),
                value: v.clone(),
                mod_revision: *r,
                create_revision: *r,
                lease: 0,
            })
            .collect();
        Ok(Snapshot {
            revision: *self.rev.lock().unwrap(),
            kvs,
        })
    }
    async fn grant_lease(&self, _ttl: i64) -> Result<i64, DcsError> {
        Ok(1)
    }
    async fn keep_alive(&self, _lease: i64) -> Result<i64, DcsError> {
        Ok(30)
    }
    async fn revoke_lease(&self, _lease: i64) -> Result<(), DcsError> {
        Ok(())
    }
    async fn create_if_absent(&self, k: &str, v: &[u8], _l: Option<i64>) -> Result<bool, DcsError> {
        if self.get(k).is_some() {
            return Ok(false);
        }
        self.set(k, &String::from_utf8_lossy(v));
        Ok(true)
    }
    async fn put(&self, k: &str, v: &[u8], _l: Option<i64>) -> Result<(), DcsError> {
        self.set(k, &String::from_utf8_lossy(v));
        Ok(())
    }
    async fn put_if_value(
        &self,
        k: &str,
        e: &[u8],
        v: &[u8],
        _l: Option<i64>,
    ) -> Result<bool, DcsError> {
        if self.get(k).as_deref().map(str::as_bytes) != Some(e) {
            return Ok(false);
        }
        self.set(k, &String::from_utf8_lossy(v));
        Ok(true)
    }
    async fn put_if_mod_revision(&self, k: &str, rev: i64, v: &[u8]) -> Result<bool, DcsError> {
        let current = self.kv.lock().unwrap().get(k).map(|(_, r)| *r).unwrap_or(0);
        if current != rev {
            return Ok(false);
        }
        self.set(k, &String::from_utf8_lossy(v));
        Ok(true)
    }
    async fn delete_if_mod_revision(&self, _: &str, _: i64) -> Result<bool, DcsError> {
        Err(DcsError::Other("FakeDcs keeps no revisions".into()))
    }
    async fn delete_if_value(&self, k: &str, e: &[u8]) -> Result<bool, DcsError> {
        if self.get(k).as_deref().map(str::as_bytes) != Some(e) {
            return Ok(false);
        }
        self.kv.lock().unwrap().remove(k);
        Ok(true)
    }
    async fn delete(&self, k: &str) -> Result<(), DcsError> {
        self.kv.lock().unwrap().remove(k);
        Ok(())
    }
    async fn delete_prefix(&self, p: &str) -> Result<(), DcsError> {
        self.kv.lock().unwrap().retain(|k, _| !k.starts_with(p));
        Ok(())
    }
    fn watch_prefix(&self, _p: &str) -> tokio::sync::watch::Receiver<u64> {
        tokio::sync::watch::channel(0).1
    }
}

const OPTIME: u64 = 0x4000060;

fn layout() -> KeyLayout {
    KeyLayout::new("/service", "batman")
}

fn seeded_dcs() -> Arc<FakeDcs> {
    let d = FakeDcs::default();
    d.set("/service/batman/initialize", "7277694203142172922");
    d.set("/service/batman/leader", "postgresql0");
    d.set(
        "/service/batman/config",
        r#"{"ttl":30,"loop_wait":10,"postgresql":{"parameters":{"max_connections":100}}}"#,
    );
    d.set(
        "/service/batman/status",
        &format!(r#"{{"optime":{OPTIME}}}"#),
    );
    d.set(
        "/service/batman/history",
        r#"[[1,25307912,"no recovery target specified","2024-08-28T19:39:26.352526+00:00","postgresql0"]]"#,
    );
    d.set(
        "/service/batman/members/postgresql0",
        &format!(r#"{{"conn_url":"postgres://127.0.0.1:5432/postgres","api_url":"http://127.0.0.1:8008/patroni","state":"running","role":"primary","version":"4.1.4","xlog_location":{OPTIME},"timeline":2}}"#),
    );
    d.set(
        "/service/batman/members/postgresql1",
        &format!(r#"{{"conn_url":"postgres://127.0.0.1:5433/postgres","api_url":"http://127.0.0.1:8009/patroni","state":"running","role":"replica","version":"4.1.4","xlog_location":{OPTIME},"receive_lsn":{OPTIME},"replay_lsn":{},"replication_state":"streaming","timeline":2,"tags":{{"dc":"a"}}}}"#, OPTIME - 0x60),
    );
    Arc::new(d)
}

async fn cluster_of(d: &FakeDcs) -> pgkeel_ha::cluster::Cluster {
    let snap = d.get_prefix("/service/batman/").await.unwrap();
    let raw: Vec<RawKv<'_>> = snap
        .kvs
        .iter()
        .map(|kv| RawKv {
            key: &kv.key,
            value: &kv.value,
            mod_revision: kv.mod_revision,
            lease: kv.lease,
        })
        .collect();
    parse_cluster(&layout(), &raw)
}

fn pg(role: Option<ServerRole>) -> LocalPostgres {
    LocalPostgres {
        data_dir: DataDir::Initialized {
            sysid: "7277694203142172922".into(),
        },
        running: role.is_some(),
        accepting_connections: role.is_some(),
        role,
        timeline: role.map(|_| 2),
        wal_position: Some(Lsn(OPTIME)),
        receive_lsn: role
            .filter(|r| *r == ServerRole::Replica)
            .map(|_| Lsn(OPTIME)),
        replay_lsn: role
            .filter(|r| *r == ServerRole::Replica)
            .map(|_| Lsn(OPTIME - 0x60)),
        streaming: role == Some(ServerRole::Replica),
        wal_receiver: role == Some(ServerRole::Replica),
        following: None,
        cluster_state: None,
        server_version: role.map(|_| 160004),
        checkpoint_lsn: None,
        pending_restart: Vec::new(),
        postmaster_start_time: None,
        replication: Vec::new(),
        synchronous_standby_names: None,
        synchronous_commit: None,
    }
}

async fn node(kind: &str, dcs: &FakeDcs) -> NodeStatus {
    use pgkeel_ha::ha::{PgState, Role};
    let (name, state, role, pgrole, leader) = match kind {
        "leader" => (
            "postgresql0",
            PgState::Running,
            Role::Primary,
            Some(ServerRole::Primary),
            true,
        ),
        "replica" => (
            "postgresql1",
            PgState::Running,
            Role::Replica,
            Some(ServerRole::Replica),
            false,
        ),
        _ => ("postgresql1", PgState::Stopped, Role::Replica, None, false),
    };
    let mut tags = BTreeMap::new();
    tags.insert("dc".to_string(), json!("a"));
    tags.insert("nosync".to_string(), json!(false));
    NodeStatus {
        name: name.into(),
        scope: "batman".into(),
        state,
        role,
        postgres: pg(pgrole),
        postmaster_start_time: pgrole.map(|_| "2024-08-28 19:39:26.352526+00:00".into()),
        replication: Vec::new(),
        replayed_timestamp: None,
        replay_paused: false,
        latest_end_lsn: None,
        leader_until: leader.then(|| Instant::now() + Duration::from_secs(30)),
        cluster: Some(cluster_of(dcs).await),
        dcs_last_seen: Some(SystemTime::now()),
        global: GlobalConfig::default(),
        tags,
        next_cycle_due: Instant::now() + Duration::from_secs(10),
        last_message: String::new(),
        version: "0.1.0".into(),
        scheduled_restart: None,
    }
}

struct Api {
    base: String,
    http: reqwest::Client,
    dcs: Arc<FakeDcs>,
    wake: Arc<tokio::sync::Notify>,
    _status: tokio::sync::watch::Sender<Arc<NodeStatus>>,
}

async fn start(kind: &str) -> Api {
    start_with(kind, |_| {}).await
}

async fn start_with(kind: &str, tweak: impl FnOnce(&mut NodeStatus)) -> Api {
    start_full(kind, tweak, None).await
}

async fn start_full(
    kind: &str,
    tweak: impl FnOnce(&mut NodeStatus),
    requests: Option<pgkeel::agent::requests::RequestSender>,
) -> Api {
    let dcs = seeded_dcs();
    let mut status = node(kind, &dcs).await;
    tweak(&mut status);
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(status));
    let wake = Arc::new(tokio::sync::Notify::new());
    let state = ApiState {
        status: rx,
        dcs: dcs.clone(),
        layout: layout(),
        write_guard: pgkeel::api::WriteGuard::new(
            Some(BasicAuth {
                username: "admin".into(),
                password: "secret".into(),
            }),
            AccessList::default(),
        ),
        wake_agent: wake.clone(),
        live_wal: None,
        requests,
        restart_wait: Duration::from_secs(5),
        reload_agent: Arc::new(tokio::sync::Notify::new()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router(state)).await.unwrap();
    });
    Api {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        dcs,
        wake,
        _status: tx,
    }
}

impl Api {
    async fn code(&self, method: &str, path: &str) -> u16 {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        self.http
            .request(m, format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
    async fn patch(&self, body: &str, auth: Option<(&str, &str)>) -> (u16, String) {
        let mut req = self
            .http
            .patch(format!("{}/config", self.base))
            .body(body.to_string());
        if let Some((u, p)) = auth {
            req = req.basic_auth(u, Some(p));
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

#[tokio::test]
async fn primary_endpoints_answer_200_only_on_the_leader() {
    let leader = start("leader").await;
    let replica = start("replica").await;
    for path in [
        "/",
        "/primary",
        "/master",
        "/read-write",
        "/leader",
        "/read-only",
        "/health",
    ] {
        assert_eq!(leader.code("GET", path).await, 200, "leader {path}");
    }
    for path in [
        "/",
        "/primary",
        "/master",
        "/read-write",
        "/leader",
        "/standby-leader",
    ] {
        assert_eq!(replica.code("GET", path).await, 503, "replica {path}");
    }
    assert_eq!(leader.code("GET", "/replica").await, 503);
    assert_eq!(leader.code("GET", "/standby-leader").await, 503);
    assert_eq!(replica.code("GET", "/replica").await, 200);
    assert_eq!(replica.code("GET", "/read-only").await, 200);
    assert_eq!(replica.code("GET", "/health").await, 200);
}

#[tokio::test]
async fn replica_lag_filter_accepts_units() {
    let replica = start("replica").await; // 0x60 = 96 bytes behind
    assert_eq!(replica.code("GET", "/replica?lag=16kB").await, 200);
    assert_eq!(replica.code("GET", "/replica?lag=96").await, 200);
    assert_eq!(replica.code("GET", "/replica?lag=95").await, 503);
    assert_eq!(replica.code("GET", "/replica?lag=1MB").await, 200);
    assert_eq!(replica.code("GET", "/async?lag=10").await, 503);
    // An unreadable lag is ignored, as Patroni does.
    assert_eq!(replica.code("GET", "/replica?lag=lots").await, 200);
    // latest_end_lsn counts as the leader position too.
    let ahead = start_with("replica", |s| {
        s.latest_end_lsn = Some(OPTIME + 64 * 1024 * 1024)
    })
    .await;
    assert_eq!(ahead.code("GET", "/replica?lag=65MB").await, 200);
    assert_eq!(ahead.code("GET", "/replica?lag=16MB").await, 503);
}

#[tokio::test]
async fn tag_filters_compare_as_patroni_does() {
    let replica = start("replica").await;
    assert_eq!(replica.code("GET", "/replica?tag_dc=a").await, 200);
    assert_eq!(replica.code("GET", "/replica?tag_dc=b").await, 503);
    assert_eq!(replica.code("GET", "/replica?tag_nosync=false").await, 200);
    assert_eq!(replica.code("GET", "/replica?tag_missing=x").await, 503);
    // Leader endpoints ignore tags.
    let leader = start("leader").await;
    assert_eq!(leader.code("GET", "/primary?tag_dc=b").await, 200);
    let noload = start_with("replica", |s| {
        s.tags.insert("noloadbalance".into(), json!(true));
    })
    .await;
    assert_eq!(noload.code("GET", "/replica").await, 503);
}

#[tokio::test]
async fn get_paths_that_name_no_health_check_answer_404() {
    let leader = start("leader").await;
    // Endpoints Patroni has and pgkeel does not serve yet, and plain typos: never a status
    // document that reads as "this endpoint exists and the node is unhealthy".
    for path in ["/foo", "/metrics", "/failsafe", "/no/such/path"] {
        let (code, body) = leader.get(path).await;
        assert_eq!(code, 404, "GET {path}");
        assert!(
            serde_json::from_str::<Value>(&body).is_err(),
            "{path}: {body}"
        );
        assert_eq!(leader.code("HEAD", path).await, 404, "HEAD {path}");
        assert_eq!(leader.code("OPTIONS", path).await, 404, "OPTIONS {path}");
    }
    // Substring matching: anything containing "primary" is a primary check.
    assert_eq!(leader.code("GET", "/xprimaryx").await, 200);
    assert_eq!(leader.code("GET", "/").await, 200);
    assert_eq!(leader.code("GET", "/sync").await, 503);
    assert_eq!(leader.code("POST", "/foo").await, 501);
    assert_eq!(leader.code("DELETE", "/config").await, 501);
}

#[tokio::test]
async fn unsupported_method_answer_quotes_at_most_a_few_bytes_of_the_method() {
    let leader = start("leader").await;
    let long = "X".repeat(10_000);
    let method = reqwest::Method::from_bytes(long.as_bytes()).unwrap();
    let r = leader
        .http
        .request(method, format!("{}/foo", leader.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 501);
    let body = r.text().await.unwrap();
    assert!(body.len() < 100, "{} bytes: {}", body.len(), &body[..100]);
    assert!(body.starts_with("Unsupported method (\"XXXX"), "{body}");
}

#[tokio::test]
async fn head_and_options_return_only_the_status() {
    let leader = start("leader").await;
    for m in [reqwest::Method::HEAD, reqwest::Method::OPTIONS] {
        let r = leader
            .http
            .request(m.clone(), format!("{}/primary", leader.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.bytes().await.unwrap().is_empty(), "{m}");
    }
    assert_eq!(leader.code("HEAD", "/replica").await, 503);
}

#[tokio::test]
async fn patroni_document_has_patroni_field_names_and_types() {
    let leader = start("leader").await;
    let (code, body) = leader.get("/patroni").await;
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["state"], "running");
    assert_eq!(doc["role"], "primary");
    assert_eq!(doc["server_version"], 160004);
    assert_eq!(doc["xlog"], json!({"location": OPTIME}));
    assert_eq!(doc["timeline"], 2);
    assert!(doc["dcs_last_seen"].is_u64());
    assert_eq!(doc["database_system_identifier"], "7277694203142172922");
    assert_eq!(
        doc["patroni"],
        json!({"version": "0.1.0", "scope": "batman", "name": "postgresql0"})
    );
    assert_eq!(doc["tags"]["dc"], "a");
    assert!(doc.get("cluster_unlocked").is_none());
    assert_eq!(
        doc["postmaster_start_time"],
        "2024-08-28 19:39:26.352526+00:00"
    );

    let replica = start("replica").await;
    let doc: Value = serde_json::from_str(&replica.get("/patroni").await.1).unwrap();
    assert_eq!(doc["role"], "replica");
    assert_eq!(doc["replication_state"], "streaming");
    assert_eq!(
        doc["xlog"],
        json!({"received_location": OPTIME, "replayed_location": OPTIME - 0x60, "replayed_timestamp": null, "paused": false})
    );

    // PostgreSQL down: only state, role, flags and identity; /patroni still answers 200.
    let stopped = start_with("stopped", |s| s.cluster.as_mut().unwrap().leader = None).await;
    let (code, body) = stopped.get("/patroni").await;
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["state"], "stopped");
    assert_eq!(doc["cluster_unlocked"], true);
    assert!(doc.get("xlog").is_none() && doc.get("timeline").is_none());
    assert_eq!(stopped.code("GET", "/health").await, 503);
    assert_eq!(stopped.code("GET", "/replica").await, 503);
}

#[tokio::test]
async fn cluster_document_lists_members_with_lag() {
    let replica = start("replica").await;
    let (code, body) = replica.get("/cluster").await;
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["scope"], "batman");
    let m = doc["members"].as_array().unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(
        m[0],
        json!({"name": "postgresql0", "role": "leader", "state": "running", "api_url": "http://127.0.0.1:8008/patroni", "host": "127.0.0.1", "port": 5432, "timeline": 2})
    );
    assert_eq!(m[1]["role"], "replica");
    assert_eq!(m[1]["state"], "streaming");
    assert_eq!(m[1]["port"], 5433);
    assert_eq!(m[1]["receive_lsn"], "0/4000060");
    assert_eq!(m[1]["receive_lag"], 0);
    assert_eq!(m[1]["replay_lsn"], "0/4000000");
    assert_eq!(m[1]["replay_lag"], 96);
    assert_eq!(m[1]["lsn"], "0/4000060");
    assert_eq!(m[1]["lag"], 0);
    assert_eq!(m[1]["tags"], json!({"dc": "a"}));

    let (code, body) = replica.get("/history").await;
    assert_eq!(code, 200);
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h[0][0], 1);
    assert_eq!(h[0][4], "postgresql0");
}

#[tokio::test]
async fn config_get_and_patch_with_auth_and_cas() {
    let api = start("leader").await;
    let (code, body) = api.get("/config").await;
    assert_eq!(code, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["ttl"], 30);

    assert_eq!(
        api.patch(r#"{"ttl":20}"#, None).await,
        (401, "no auth header received".into())
    );
    assert_eq!(
        api.patch(r#"{"ttl":20}"#, Some(("admin", "wrong"))).await,
        (401, "not authenticated".into())
    );
    let r = api
        .http
        .patch(format!("{}/config", api.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["www-authenticate"].to_str().unwrap(),
        "Basic realm=\"Patroni\""
    );

    let woken = api.wake.notified();
    let (code, body) = api
        .patch(
            r#"{"ttl":20,"loop_wait":null,"postgresql":{"parameters":{"work_mem":"8MB"}}}"#,
            Some(("admin", "secret")),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let expected = json!({"ttl": 20, "postgresql": {"parameters": {"max_connections": 100, "work_mem": "8MB"}}});
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), expected);
    let stored: Value =
        serde_json::from_str(&api.dcs.get("/service/batman/config").unwrap()).unwrap();
    assert_eq!(stored, expected);
    tokio::time::timeout(Duration::from_secs(1), woken)
        .await
        .expect("agent woken");

    let (code, body) = api.patch("{not json", Some(("admin", "secret"))).await;
    assert_eq!(code, 400);
    assert!(body.contains("not valid JSON"), "{body}");
    assert_eq!(api.patch("", Some(("admin", "secret"))).await.0, 400);
    assert_eq!(api.patch("[1]", Some(("admin", "secret"))).await.0, 400);
    // GET never needs auth.
    assert_eq!(api.code("GET", "/config").await, 200);
}

#[tokio::test]
async fn patch_config_conflict_gives_409() {
    // A DCS whose config revision moves between the read and the CAS write.
    struct Racing(Arc<FakeDcs>);
    #[async_trait::async_trait]
    impl Dcs for Racing {
        async fn get_prefix(&self, p: &str) -> Result<Snapshot, DcsError> {
            let s = self.0.get_prefix(p).await;
            self.0.set("/service/batman/config", r#"{"ttl":25}"#);
            s
        }
        async fn grant_lease(&self, t: i64) -> Result<i64, DcsError> {
            self.0.grant_lease(t).await
        }
        async fn keep_alive(&self, l: i64) -> Result<i64, DcsError> {
            self.0.keep_alive(l).await
        }
        async fn revoke_lease(&self, l: i64) -> Result<(), DcsError> {
            self.0.revoke_lease(l).await
        }
        async fn create_if_absent(
            &self,
            k: &str,
            v: &[u8],
            l: Option<i64>,
        ) -> Result<bool, DcsError> {
            self.0.create_if_absent(k, v, l).await
        }
        async fn put(&self, k: &str, v: &[u8], l: Option<i64>) -> Result<(), DcsError> {
            self.0.put(k, v, l).await
        }
        async fn put_if_value(
            &self,
            k: &str,
            e: &[u8],
            v: &[u8],
            l: Option<i64>,
        ) -> Result<bool, DcsError> {
            self.0.put_if_value(k, e, v, l).await
        }
        async fn put_if_mod_revision(&self, k: &str, r: i64, v: &[u8]) -> Result<bool, DcsError> {
            self.0.put_if_mod_revision(k, r, v).await
        }
        async fn delete_if_value(&self, k: &str, e: &[u8]) -> Result<bool, DcsError> {
            self.0.delete_if_value(k, e).await
        }
        async fn delete_if_mod_revision(&self, k: &str, r: i64) -> Result<bool, DcsError> {
            self.0.delete_if_mod_revision(k, r).await
        }
        async fn delete(&self, k: &str) -> Result<(), DcsError> {
            self.0.delete(k).await
        }
        async fn delete_prefix(&self, p: &str) -> Result<(), DcsError> {
            self.0.delete_prefix(p).await
        }
        fn watch_prefix(&self, p: &str) -> tokio::sync::watch::Receiver<u64> {
            self.0.watch_prefix(p)
        }
    }
    let inner = seeded_dcs();
    let status = node("leader", &inner).await;
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(status));
    let state = ApiState {
        status: rx,
        dcs: Arc::new(Racing(inner.clone())),
        layout: layout(),
        write_guard: pgkeel::api::WriteGuard::new(None, AccessList::default()),
        wake_agent: Arc::new(tokio::sync::Notify::new()),
        live_wal: None,
        requests: None,
        restart_wait: Duration::from_secs(5),
        reload_agent: Arc::new(tokio::sync::Notify::new()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    let r = reqwest::Client::new()
        .patch(format!("http://{addr}/config"))
        .body(r#"{"ttl":20}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    assert_eq!(
        inner.get("/service/batman/config").unwrap(),
        r#"{"ttl":25}"#
    );
}

#[tokio::test]
async fn put_config_replaces_and_needs_auth() {
    let api = start("leader").await;
    let url = format!("{}/config", api.base);
    let r = api
        .http
        .put(&url)
        .body(r#"{"ttl":15}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = api
        .http
        .put(&url)
        .basic_auth("admin", Some("secret"))
        .body(r#"{"ttl":15}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        api.dcs.get("/service/batman/config").unwrap(),
        r#"{"ttl":15}"#
    );
}

#[tokio::test]
async fn config_absent_gives_502() {
    let api = start("leader").await;
    api.dcs.kv.lock().unwrap().remove("/service/batman/config");
    assert_eq!(api.code("GET", "/config").await, 502);
}

#[tokio::test]
async fn liveness_and_readiness() {
    let leader = start("leader").await;
    assert_eq!(leader.get("/liveness").await, (200, String::new()));
    assert_eq!(leader.get("/readiness").await, (200, String::new()));

    // HA loop stuck for longer than 2 * ttl on a replica.
    let stuck = start_with("replica", |s| {
        s.next_cycle_due = Instant::now().checked_sub(Duration::from_secs(61)).unwrap();
    })
    .await;
    assert_eq!(stuck.code("GET", "/liveness").await, 503);
    let paused = start_with("replica", |s| {
        s.next_cycle_due = Instant::now().checked_sub(Duration::from_secs(61)).unwrap();
        s.global.pause = true;
    })
    .await;
    assert_eq!(paused.code("GET", "/liveness").await, 200);

    let replica = start("replica").await; // 96 bytes behind
    assert_eq!(replica.code("GET", "/readiness").await, 200);
    assert_eq!(replica.code("GET", "/readiness?lag=10").await, 503);
    assert_eq!(
        replica.code("GET", "/readiness?lag=10&mode=write").await,
        200
    );
    let stopped = start("stopped").await;
    assert_eq!(stopped.code("GET", "/readiness").await, 503);
}

#[tokio::test]
async fn patroni_document_shows_live_wal_positions_of_the_published_role() {
    use pgkeel::api::status::{patroni_status, with_live_wal};
    use pgkeel::postgres::WalNow;
    let dcs = seeded_dcs();
    let replica = node("replica", &dcs).await;
    let live = WalNow {
        in_recovery: true,
        current: None,
        received: Some(Lsn(OPTIME + 0x100)),
        replayed: Some(Lsn(OPTIME + 0x80)),
        wal_receiver: true,
    };
    let doc = serde_json::to_value(patroni_status(&with_live_wal(&replica, live))).unwrap();
    assert_eq!(doc["xlog"]["received_location"], OPTIME + 0x100);
    assert_eq!(doc["xlog"]["replayed_location"], OPTIME + 0x80);
    // It names no upstream, but its WAL receiver still runs: WAL may still arrive, so it is
    // not `detached` (a quorum vote counts only then). Found by the fault campaign.
    assert_eq!(doc.get("detached"), None, "{doc}");
    let gone = WalNow {
        wal_receiver: false,
        ..live
    };
    let doc = serde_json::to_value(patroni_status(&with_live_wal(&replica, gone))).unwrap();
    assert_eq!(doc["detached"], true, "{doc}");

    let leader = node("leader", &dcs).await;
    let live = WalNow {
        in_recovery: false,
        current: Some(Lsn(OPTIME + 0x200)),
        received: None,
        replayed: None,
        wal_receiver: false,
    };
    let doc = serde_json::to_value(patroni_status(&with_live_wal(&leader, live))).unwrap();
    assert_eq!(doc["xlog"]["location"], OPTIME + 0x200);

    // Promoted since the agent published: the document stays as published until its next cycle.
    let doc = serde_json::to_value(patroni_status(&with_live_wal(&replica, live))).unwrap();
    assert_eq!(doc["role"], "replica");
    assert_eq!(doc["xlog"]["received_location"], OPTIME);
}

#[tokio::test]
async fn cluster_document_is_read_from_the_dcs_when_asked() {
    // Found by the bootstrap bench: /cluster served the agent's view from its last cycle, so a
    // replica that had started streaming showed up a whole loop_wait later.
    let replica = start("replica").await;
    replica.dcs.set(
        "/service/batman/members/postgresql2",
        r#"{"conn_url":"postgres://127.0.0.1:5434/postgres","api_url":"http://127.0.0.1:8010/patroni","state":"running","role":"replica","version":"4.1.4","replication_state":"streaming","timeline":2}"#,
    );
    let doc: Value = serde_json::from_str(&replica.get("/cluster").await.1).unwrap();
    let names: Vec<&str> = doc["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(names.contains(&"postgresql2"), "{names:?}");
}

impl Api {
    async fn put(&self, body: &str) -> (u16, String) {
        let r = self
            .http
            .put(format!("{}/config", self.base))
            .basic_auth("admin", Some("secret"))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
    fn stored_config(&self) -> String {
        self.dcs.get("/service/batman/config").unwrap()
    }
}

/// Issue 10 point 2 and 5: a value that overflowed every agent's arithmetic, or that the agents
/// would silently replace by a default, is refused with 400 naming the key, and nothing is stored.
#[tokio::test]
async fn config_writes_with_out_of_range_or_wrong_typed_values_are_refused() {
    let api = start("leader").await;
    let before = api.stored_config();
    for (body, key) in [
        (r#"{"loop_wait":18446744073709551615}"#, "loop_wait"),
        (r#"{"ttl":1e19}"#, "ttl"),
        (r#"{"ttl":"abc"}"#, "ttl"),
        (r#"{"ttl":-1}"#, "ttl"),
        (r#"{"ttl":4}"#, "ttl"),
        (r#"{"retry_timeout":9223372036854775807}"#, "retry_timeout"),
        (
            r#"{"maximum_lag_on_failover":-5}"#,
            "maximum_lag_on_failover",
        ),
        (r#"{"primary_start_timeout":[1]}"#, "primary_start_timeout"),
        (r#"{"pause":"maybe"}"#, "pause"),
        (r#"{"postgresql":{"use_slots":7}}"#, "postgresql.use_slots"),
        (
            r#"{"postgresql":{"parameters":"x"}}"#,
            "postgresql.parameters",
        ),
        (r#"{"postgresql":3}"#, "postgresql"),
    ] {
        let (code, answer) = api.patch(body, Some(("admin", "secret"))).await;
        assert_eq!(code, 400, "PATCH {body}: {answer}");
        assert!(answer.contains(key), "PATCH {body}: {answer}");
        assert_eq!(api.stored_config(), before, "PATCH {body} changed the DCS");
        let (code, answer) = api.put(body).await;
        assert_eq!(code, 400, "PUT {body}: {answer}");
        assert_eq!(api.stored_config(), before, "PUT {body} changed the DCS");
    }
    // Values Patroni accepts still pass: strings holding integers, "on" for booleans, null.
    let (code, answer) = api
        .patch(
            r#"{"ttl":"25","pause":"off","loop_wait":null,"postgresql":{"use_slots":true}}"#,
            Some(("admin", "secret")),
        )
        .await;
    assert_eq!(code, 200, "{answer}");
}

#[tokio::test]
async fn config_bodies_and_results_over_64_kib_get_413() {
    let api = start("leader").await;
    let before = api.stored_config();
    let huge = format!(
        r#"{{"postgresql":{{"parameters":{{"application_name":"{}"}}}}}}"#,
        "x".repeat(65 * 1024)
    );
    assert_eq!(api.patch(&huge, Some(("admin", "secret"))).await.0, 413);
    assert_eq!(api.put(&huge).await.0, 413);
    assert_eq!(api.stored_config(), before);
    // Each PATCH is small, but the merged result would pass the limit.
    let half = |k: &str| {
        format!(
            r#"{{"postgresql":{{"parameters":{{"{k}":"{}"}}}}}}"#,
            "y".repeat(40 * 1024)
        )
    };
    assert_eq!(
        api.patch(&half("a"), Some(("admin", "secret"))).await.0,
        200
    );
    let stored_once = api.stored_config();
    let (code, answer) = api.patch(&half("b"), Some(("admin", "secret"))).await;
    assert_eq!(code, 413, "{answer}");
    assert_eq!(api.stored_config(), stored_once);
}

fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z0-9 ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        let keys = prop_oneof![
            Just("ttl".to_string()),
            Just("loop_wait".to_string()),
            Just("retry_timeout".to_string()),
            Just("maximum_lag_on_failover".to_string()),
            Just("primary_start_timeout".to_string()),
            Just("pause".to_string()),
            Just("postgresql".to_string()),
            Just("use_slots".to_string()),
            Just("parameters".to_string()),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

use pgkeel_ha::cluster::MAX_SECONDS;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Any body: the API answers (200 only when the core's check accepts it), and whatever it
    /// stored reads back through `GlobalConfig` without a panic and within range.
    #[test]
    fn any_config_body_is_answered_and_what_is_stored_is_usable(body in any_json()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let api = start("leader").await;
            let text = body.to_string();
            let (code, answer) = api.patch(&text, Some(("admin", "secret"))).await;
            let accepted = body
                .as_object()
                .is_some_and(|m| GlobalConfig::check(m).is_ok());
            let expected = if accepted { 200 } else { 400 };
            assert_eq!(code, expected, "{text}: {answer}");
            let stored: Value = serde_json::from_str(&api.stored_config()).unwrap();
            let t = GlobalConfig::from_map(stored.as_object().unwrap()).timeouts();
            for seconds in [t.ttl, t.loop_wait, t.retry_timeout] {
                assert!(seconds <= MAX_SECONDS, "{text} stored {stored}");
            }
        });
    }
}

/// `patronictl pause` PATCHes `{"pause": true}`, `patronictl resume` `{"pause": null}`; both
/// are stored as sent (a PUT too) and wake the agent.
#[tokio::test]
async fn pause_and_resume_are_stored() {
    let api = start("leader").await;
    for body in [r#"{"pause":true}"#, r#"{"pause":"on"}"#] {
        let (code, answer) = api.patch(body, Some(("admin", "secret"))).await;
        assert_eq!(code, 200, "{body}: {answer}");
        let stored: Value = serde_json::from_str(&api.stored_config()).unwrap();
        assert!(
            GlobalConfig::from_map(stored.as_object().unwrap()).pause,
            "{stored}"
        );
        let (code, _) = api
            .patch(r#"{"pause":null}"#, Some(("admin", "secret")))
            .await;
        assert_eq!(code, 200);
        let stored: Value = serde_json::from_str(&api.stored_config()).unwrap();
        assert_eq!(stored.get("pause"), None, "{stored}");
    }
    assert_eq!(api.put(r#"{"pause":true,"ttl":30}"#).await.0, 200);
    let stored: Value = serde_json::from_str(&api.stored_config()).unwrap();
    assert_eq!(stored, json!({"pause": true, "ttl": 30}));
}

impl Api {
    async fn post(&self, path: &str, body: &str, auth: bool) -> (u16, String) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .body(body.to_string());
        if auth {
            req = req.basic_auth("admin", Some("secret"));
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// Issue 7 point 1: `POST /restart` is a request into the HA loop, answered with what the core
/// decided (here a stand-in loop answers: accepted then done, busy, refused).
#[tokio::test]
async fn restart_is_a_request_answered_by_the_loop() {
    use pgkeel_ha::ha::{Answer, RequestKind};
    let (tx, mut loop_end) = pgkeel::agent::requests::channel();
    let api = start_full("leader", |_| {}, Some(tx)).await;
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            loop_end.arrived().await;
            for r in loop_end.pending() {
                n += 1;
                let _ = seen_tx.send(r.kind.clone());
                match n {
                    1 => {
                        loop_end.deliver(&[(r.id, Answer::Accepted("restart initiated".into()))]);
                        loop_end.deliver(&[(
                            r.id,
                            Answer::Done {
                                ok: true,
                                message: "restarted successfully".into(),
                            },
                        )]);
                    }
                    2 => loop_end
                        .deliver(&[(r.id, Answer::Busy("restart already in progress".into()))]),
                    _ => loop_end.deliver(&[(
                        r.id,
                        Answer::Refused("restart conditions are not satisfied".into()),
                    )]),
                }
            }
        }
    });
    assert_eq!(api.post("/restart", "", false).await.0, 401);
    assert_eq!(
        api.post("/restart", "", true).await,
        (200, "restarted successfully".into())
    );
    assert_eq!(
        api.post("/restart", "{}", true).await,
        (503, "restart already in progress".into())
    );
    assert_eq!(
        api.post(
            "/restart",
            r#"{"role":"replica","restart_pending":true}"#,
            true
        )
        .await,
        (503, "restart conditions are not satisfied".into())
    );
    let mut kinds = Vec::new();
    while let Ok(k) = seen.try_recv() {
        kinds.push(k);
    }
    assert_eq!(kinds.len(), 3);
    assert!(
        matches!(&kinds[2], RequestKind::Restart(c) if c.only_if_pending && c.role == Some(pgkeel_ha::ha::Role::Replica)),
        "{kinds:?}"
    );
    // A bad filter never reaches the loop.
    assert_eq!(
        api.post("/restart", r#"{"role":"boss"}"#, true).await.0,
        400
    );
    assert!(seen.try_recv().is_err());
}

#[tokio::test]
async fn restart_without_a_loop_is_refused_not_hung() {
    let api = start("leader").await;
    let started = std::time::Instant::now();
    assert_eq!(api.post("/restart", "", true).await.0, 503);
    assert!(started.elapsed() < Duration::from_secs(2));
}

impl Api {
    /// `METHOD path` with body `{}` and the given basic-auth credentials.
    async fn write(&self, method: &str, path: &str, auth: Option<(&str, &str)>) -> (u16, String) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(m, format!("{}{path}", self.base))
            .body("{}");
        if let Some((u, p)) = auth {
            req = req.basic_auth(u, Some(p));
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    fn dcs_dump(&self) -> BTreeMap<String, (Vec<u8>, i64)> {
        self.dcs.kv.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn no_write_method_reaches_a_handler_without_the_configured_credentials() {
    use pgkeel::api::WriteEndpoint;
    let api = start("leader").await;
    let before = api.dcs_dump();
    let mut paths: Vec<&str> = WriteEndpoint::ALL.iter().map(|(_, _, p)| *p).collect();
    paths.extend([
        "/patroni",
        "/cluster",
        "/reload",
        "/config/ttl",
        "/restart/now",
        "/",
    ]);
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        for path in &paths {
            let (code, body) = api.write(method, path, None).await;
            let segment = path.trim_start_matches('/').split('/').next().unwrap();
            let is_write = WriteEndpoint::route(&method.parse().unwrap(), segment).is_some();
            if is_write {
                assert_eq!(
                    (code, body.as_str()),
                    (401, "no auth header received"),
                    "{method} {path}"
                );
                let wrong = api.write(method, path, Some(("admin", "secreT"))).await;
                assert_eq!(
                    (wrong.0, wrong.1.as_str()),
                    (401, "not authenticated"),
                    "{method} {path}"
                );
            } else {
                assert_eq!(code, 501, "{method} {path}: {body}");
            }
        }
    }
    assert_eq!(api.dcs_dump(), before, "a refused request changed the DCS");
    for (endpoint, method, path) in WriteEndpoint::ALL {
        let (code, body) = api.write(method, path, Some(("admin", "secret"))).await;
        assert!(
            code != 401 && code != 501,
            "{endpoint:?}: {code} {body} with the right credentials"
        );
    }
}

/// `restapi.allowlist` / `allowlist_include_members` (Patroni's `check_access`), on pgkeel's
/// own server (which knows the client's address): a client outside the list gets 403 `Access is
/// denied` on every write endpoint before its credentials are looked at; GETs stay open; a
/// listed client, or a member's API host with `allowlist_include_members`, gets on to the
/// credential check.
#[tokio::test]
async fn the_allowlist_keeps_other_clients_off_the_write_endpoints() {
    let cases: [(&[&str], bool, bool); 4] = [
        (&["10.0.0.0/8"], false, true),
        (&["127.0.0.0/8"], false, false),
        (&["localhost"], false, false),
        // The seeded members' api_url hosts are 127.0.0.1.
        (&[], true, false),
    ];
    for (list, include_members, denied) in cases {
        let dcs = seeded_dcs();
        let status = node("leader", &dcs).await;
        let (_tx, rx) = tokio::sync::watch::channel(Arc::new(status));
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        let state = ApiState {
            status: rx,
            dcs: dcs.clone(),
            layout: layout(),
            write_guard: pgkeel::api::WriteGuard::new(
                Some(BasicAuth {
                    username: "admin".into(),
                    password: "secret".into(),
                }),
                AccessList::from_config(&list, include_members),
            ),
            wake_agent: Arc::new(tokio::sync::Notify::new()),
            live_wal: None,
            requests: None,
            restart_wait: Duration::from_secs(5),
            reload_agent: Arc::new(tokio::sync::Notify::new()),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(pgkeel::api::serve(listener, state, std::future::pending()));
        let http = reqwest::Client::new();
        for (_, method, path) in pgkeel::api::WriteEndpoint::ALL {
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let r = http
                .request(m, format!("http://{addr}{path}"))
                .basic_auth("admin", Some("secret"))
                .send()
                .await
                .unwrap();
            let code = r.status().as_u16();
            let body = r.text().await.unwrap();
            if denied {
                assert_eq!(
                    (code, body.as_str()),
                    (403, "Access is denied"),
                    "{method} {path} with {list:?}"
                );
            } else {
                assert_ne!(code, 403, "{method} {path} with {list:?}: {body}");
            }
        }
        let r = http
            .get(format!("http://{addr}/patroni"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "GET restricted by {list:?}");
        assert_eq!(
            dcs.get("/service/batman/config").unwrap(),
            seeded_dcs().get("/service/batman/config").unwrap(),
            "a denied write changed the config"
        );
    }
}
