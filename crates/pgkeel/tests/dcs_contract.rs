//! One contract for every `Dcs` implementation, run against `MemoryDcs` (in virtual time) and a real
//! 3-member etcd 3.4 cluster on loopback; plus etcd-only fault tests (member kill, leader restart).
//!
//! Waits are bounded polls or watch notifications, never bare sleeps used as synchronisation.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns: a failed unwrap is a failed test"
)]

use std::sync::Arc;
use std::time::Duration;

use pgkeel::dcs::{Dcs, DcsError, EtcdDcs, MemoryDcs};
use pgkeel_testkit::etcd::EtcdCluster;
use tokio::time::Instant;

/// Per-request bound used for etcd in these tests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// Polls `check` every 100 ms until it returns true or `limit` passes; returns the time it took.
async fn poll_until<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether `key` exists (errors count as "don't know" and fail the test).
async fn exists(dcs: &dyn Dcs, prefix: &str, key: &str) -> bool {
    dcs.get_prefix(prefix).await.unwrap().get(key).is_some()
}

// ---------------------------------------------------------------------------------------------
// The generic suite
// ---------------------------------------------------------------------------------------------

/// Runs every contract case against `dcs`, each under its own prefix below `base`.
async fn contract_suite(name: &str, dcs: Arc<dyn Dcs>, base: &str) {
    macro_rules! case {
        ($f:ident) => {{
            let start = Instant::now();
            $f(&*dcs, &format!("{base}/{}/", stringify!($f))).await;
            eprintln!("[{name}] {} ok in {:?}", stringify!($f), start.elapsed());
        }};
    }
    case!(create_if_absent_race_has_one_winner);
    case!(put_if_value_and_delete_if_value);
    case!(put_if_mod_revision_rejects_stale_revision);
    case!(delete_if_mod_revision_spares_a_rewritten_key);
    case!(get_prefix_delete_and_delete_prefix);
    case!(watch_bumps_after_a_put);
    case!(revoke_removes_keys_and_lease);
    case!(lease_expiry_removes_leased_keys);
    case!(keep_alive_keeps_leased_keys);
}

async fn create_if_absent_race_has_one_winner(dcs: &dyn Dcs, p: &str) {
    let key = format!("{p}leader");
    let lease = dcs.grant_lease(30).await.unwrap();
    let (a, b) = tokio::join!(
        dcs.create_if_absent(&key, b"node-a", Some(lease)),
        dcs.create_if_absent(&key, b"node-b", Some(lease)),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a ^ b, "exactly one winner expected, got a={a} b={b}");
    let snap = dcs.get_prefix(p).await.unwrap();
    let kv = snap.get(&key).unwrap();
    assert_eq!(
        kv.value,
        if a {
            b"node-a".to_vec()
        } else {
            b"node-b".to_vec()
        }
    );
    assert_eq!(kv.lease, lease);
    assert!(kv.create_revision > 0 && kv.mod_revision >= kv.create_revision);
    // A later create loses too, and leaves the value alone.
    assert!(!dcs.create_if_absent(&key, b"node-c", None).await.unwrap());
    // Without a lease the key is permanent (lease 0).
    let init = format!("{p}initialize");
    assert!(dcs.create_if_absent(&init, b"", None).await.unwrap());
    assert_eq!(
        dcs.get_prefix(p).await.unwrap().get(&init).unwrap().lease,
        0
    );
    dcs.revoke_lease(lease).await.unwrap();
}

async fn put_if_value_and_delete_if_value(dcs: &dyn Dcs, p: &str) {
    let key = format!("{p}leader");
    // Absent key: neither guarded op does anything.
    assert!(!dcs.put_if_value(&key, b"a", b"a", None).await.unwrap());
    assert!(!dcs.delete_if_value(&key, b"a").await.unwrap());
    assert!(dcs.get_prefix(p).await.unwrap().kvs.is_empty());

    dcs.put(&key, b"a", None).await.unwrap();
    assert!(!dcs.put_if_value(&key, b"b", b"b", None).await.unwrap());
    assert_eq!(
        dcs.get_prefix(p).await.unwrap().get(&key).unwrap().value,
        b"a"
    );

    // Patroni's leader update: same value, re-attached to the (new) lease.
    let lease = dcs.grant_lease(30).await.unwrap();
    assert!(
        dcs.put_if_value(&key, b"a", b"a", Some(lease))
            .await
            .unwrap()
    );
    let kv = dcs.get_prefix(p).await.unwrap().get(&key).cloned().unwrap();
    assert_eq!((kv.value.as_slice(), kv.lease), (&b"a"[..], lease));

    assert!(!dcs.delete_if_value(&key, b"b").await.unwrap());
    assert!(exists(dcs, p, &key).await);
    assert!(dcs.delete_if_value(&key, b"a").await.unwrap());
    assert!(!exists(dcs, p, &key).await);
    dcs.revoke_lease(lease).await.unwrap();
}

async fn put_if_mod_revision_rejects_stale_revision(dcs: &dyn Dcs, p: &str) {
    let key = format!("{p}config");
    assert!(dcs.put_if_mod_revision(&key, 0, b"v1").await.unwrap());
    assert!(
        !dcs.put_if_mod_revision(&key, 0, b"v1bis").await.unwrap(),
        "0 means must not exist"
    );
    let r1 = dcs
        .get_prefix(p)
        .await
        .unwrap()
        .get(&key)
        .unwrap()
        .mod_revision;
    assert!(dcs.put_if_mod_revision(&key, r1, b"v2").await.unwrap());
    let kv = dcs.get_prefix(p).await.unwrap().get(&key).cloned().unwrap();
    assert!(kv.mod_revision > r1);
    assert_eq!(kv.value, b"v2");
    assert!(
        !dcs.put_if_mod_revision(&key, r1, b"v3").await.unwrap(),
        "stale revision must fail"
    );
    assert_eq!(
        dcs.get_prefix(p).await.unwrap().get(&key).unwrap().value,
        b"v2"
    );
    // A key someone else wrote in between: its revision moved on.
    dcs.put(&key, b"other", None).await.unwrap();
    assert!(
        !dcs.put_if_mod_revision(&key, kv.mod_revision, b"v4")
            .await
            .unwrap()
    );
}

/// The stale-leader removal: a compare-and-delete on the revision seen in a snapshot removes
/// that key only, never one written since (another agent's leader key).
async fn delete_if_mod_revision_spares_a_rewritten_key(dcs: &dyn Dcs, p: &str) {
    let key = format!("{p}leader");
    assert!(!dcs.delete_if_mod_revision(&key, 1).await.unwrap());
    dcs.put(&key, b"ghost", None).await.unwrap();
    let r1 = dcs
        .get_prefix(p)
        .await
        .unwrap()
        .get(&key)
        .unwrap()
        .mod_revision;
    dcs.put(&key, b"n1", None).await.unwrap();
    assert!(
        !dcs.delete_if_mod_revision(&key, r1).await.unwrap(),
        "a key rewritten since the snapshot must survive"
    );
    assert!(exists(dcs, p, &key).await);
    let r2 = dcs
        .get_prefix(p)
        .await
        .unwrap()
        .get(&key)
        .unwrap()
        .mod_revision;
    assert!(dcs.delete_if_mod_revision(&key, r2).await.unwrap());
    assert!(!exists(dcs, p, &key).await);
}

async fn get_prefix_delete_and_delete_prefix(dcs: &dyn Dcs, p: &str) {
    let before = dcs.get_prefix(p).await.unwrap();
    assert!(before.kvs.is_empty());
    dcs.put(&format!("{p}members/b"), b"{}", None)
        .await
        .unwrap();
    dcs.put(&format!("{p}members/a"), b"{}", None)
        .await
        .unwrap();
    dcs.put(&format!("{p}config"), b"{}", None).await.unwrap();
    let outside = format!("{}-sibling/key", p.trim_end_matches('/'));
    dcs.put(&outside, b"x", None).await.unwrap();
    let snap = dcs.get_prefix(p).await.unwrap();
    let keys: Vec<&str> = snap.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            format!("{p}config"),
            format!("{p}members/a"),
            format!("{p}members/b")
        ]
    );
    assert!(snap.revision > before.revision);
    assert!(snap.kvs.iter().all(|kv| kv.mod_revision <= snap.revision));

    dcs.delete(&format!("{p}config")).await.unwrap();
    dcs.delete(&format!("{p}config")).await.unwrap(); // deleting an absent key is fine
    assert_eq!(dcs.get_prefix(p).await.unwrap().kvs.len(), 2);
    dcs.delete_prefix(p).await.unwrap();
    assert!(dcs.get_prefix(p).await.unwrap().kvs.is_empty());
    assert!(
        exists(dcs, &outside, &outside).await,
        "delete_prefix must stay inside its prefix"
    );
    dcs.delete(&outside).await.unwrap();
}

async fn watch_bumps_after_a_put(dcs: &dyn Dcs, p: &str) {
    let mut rx = dcs.watch_prefix(p);
    // The first bump means "armed" (and: read now).
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|&v| v >= 1))
        .await
        .expect("watch armed")
        .unwrap();
    let armed = *rx.borrow_and_update();
    dcs.put(&format!("{p}members/x"), b"{}", None)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .expect("a bump after the put")
        .unwrap();
    assert!(*rx.borrow_and_update() > armed);
    // Deletes are changes too.
    dcs.delete(&format!("{p}members/x")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .expect("a bump after the delete")
        .unwrap();
}

async fn revoke_removes_keys_and_lease(dcs: &dyn Dcs, p: &str) {
    let lease = dcs.grant_lease(30).await.unwrap();
    let member = format!("{p}members/n1");
    dcs.put(&member, b"{}", Some(lease)).await.unwrap();
    assert_eq!(
        dcs.get_prefix(p).await.unwrap().get(&member).unwrap().lease,
        lease
    );
    dcs.revoke_lease(lease).await.unwrap();
    assert!(
        !exists(dcs, p, &member).await,
        "revoke deletes attached keys at once"
    );
    assert_eq!(dcs.keep_alive(lease).await, Err(DcsError::LeaseNotFound));
    assert_eq!(
        dcs.put(&member, b"{}", Some(lease)).await,
        Err(DcsError::LeaseNotFound)
    );
    assert_eq!(
        dcs.create_if_absent(&format!("{p}leader"), b"n1", Some(lease))
            .await,
        Err(DcsError::LeaseNotFound)
    );
    assert_eq!(dcs.revoke_lease(lease).await, Err(DcsError::LeaseNotFound));
}

async fn lease_expiry_removes_leased_keys(dcs: &dyn Dcs, p: &str) {
    let lease = dcs.grant_lease(2).await.unwrap();
    let member = format!("{p}members/n1");
    let leader = format!("{p}leader");
    let permanent = format!("{p}initialize");
    dcs.put(&member, b"{}", Some(lease)).await.unwrap();
    assert!(
        dcs.create_if_absent(&leader, b"n1", Some(lease))
            .await
            .unwrap()
    );
    dcs.put(&permanent, b"123", None).await.unwrap();
    let took = poll_until("leased keys to vanish", Duration::from_secs(10), || async {
        let snap = dcs.get_prefix(p).await.unwrap();
        snap.get(&member).is_none() && snap.get(&leader).is_none()
    })
    .await;
    assert!(
        took >= Duration::from_millis(1500),
        "expired too early: {took:?}"
    );
    assert!(
        exists(dcs, p, &permanent).await,
        "keys without a lease stay"
    );
    assert_eq!(dcs.keep_alive(lease).await, Err(DcsError::LeaseNotFound));
}

async fn keep_alive_keeps_leased_keys(dcs: &dyn Dcs, p: &str) {
    let lease = dcs.grant_lease(2).await.unwrap();
    let member = format!("{p}members/n1");
    dcs.put(&member, b"{}", Some(lease)).await.unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        let ttl = dcs.keep_alive(lease).await.unwrap();
        assert!(ttl >= 2, "granted TTL {ttl}");
        assert!(exists(dcs, p, &member).await, "kept-alive key vanished");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    dcs.revoke_lease(lease).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------------

async fn connect(cluster: &EtcdCluster) -> Arc<dyn Dcs> {
    Arc::new(
        EtcdDcs::connect(cluster.client_urls(), None, None, REQUEST_TIMEOUT)
            .await
            .unwrap(),
    )
}

/// Starts a 3-member cluster without blocking the runtime's other tasks.
fn start_cluster() -> EtcdCluster {
    tokio::task::block_in_place(|| EtcdCluster::start(3)).unwrap()
}

// `start_paused` would make this instant, but the workspace's tokio lacks the `test-util` feature;
// the suite runs in real time (about 6 s, mostly the lease cases).
#[tokio::test]
async fn memory_contract() {
    let dcs: Arc<dyn Dcs> = Arc::new(MemoryDcs::new());
    contract_suite("memory", dcs, "/service/memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_contract() {
    let cluster = start_cluster();
    let dcs = connect(&cluster).await;
    contract_suite("etcd", dcs, "/service/etcd").await;
}

/// A cluster that cannot be reached does not fail `connect`, and calls fail fast as `Unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_unreachable_is_unavailable_and_bounded() {
    let ports = pgkeel_testkit::ports::free_ports(2).unwrap();
    let urls = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let dcs = EtcdDcs::connect(urls, None, None, Duration::from_millis(500))
        .await
        .unwrap();
    let start = Instant::now();
    let err = dcs.get_prefix("/service/x/").await.unwrap_err();
    assert!(matches!(err, DcsError::Unavailable(_)), "{err:?}");
    let err = dcs.keep_alive(42).await.unwrap_err();
    assert!(matches!(err, DcsError::Unavailable(_)), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    // The watch keeps trying without ever bumping, and does not panic.
    let rx = dcs.watch_prefix("/service/x/");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*rx.borrow(), 0);
}

/// Killing one member of three (the etcd leader, the harder case) leaves the Dcs working within a
/// couple of seconds, for reads, writes, keep-alives and the watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_survives_killing_one_of_three() {
    let mut cluster = start_cluster();
    let dcs = connect(&cluster).await;
    let p = "/service/kill/";
    let lease = dcs.grant_lease(10).await.unwrap();
    dcs.put(&format!("{p}members/n1"), b"{}", Some(lease))
        .await
        .unwrap();
    let mut rx = dcs.watch_prefix(p);
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|&v| v >= 1))
        .await
        .unwrap()
        .unwrap();
    dcs.keep_alive(lease).await.unwrap();

    let victim = cluster.leader_index().expect("an etcd leader");
    cluster.kill(victim);
    let killed_at = Instant::now();
    let errors = std::sync::Mutex::new(Vec::new());
    let recovered = poll_until("a write after the kill", Duration::from_secs(5), || async {
        match dcs.put(&format!("{p}probe"), b"1", None).await {
            Ok(()) => true,
            Err(e) => {
                errors
                    .lock()
                    .unwrap()
                    .push(format!("{:?} {e}", killed_at.elapsed()));
                false
            }
        }
    })
    .await;
    eprintln!(
        "killed etcd leader m{victim}; first successful write after {recovered:?}; errors: {errors:?}"
    );
    assert!(recovered < Duration::from_secs(4));

    // From now on every call must succeed: the client must not keep routing to the dead member.
    for i in 0..30 {
        dcs.put(&format!("{p}probe"), format!("{i}").as_bytes(), None)
            .await
            .unwrap();
        assert!(exists(&*dcs, p, &format!("{p}members/n1")).await);
        dcs.keep_alive(lease).await.unwrap();
    }
    // The watch re-armed (if it was on the dead member) and still delivers.
    rx.borrow_and_update();
    dcs.put(&format!("{p}members/n2"), b"{}", None)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .expect("watch bump")
        .unwrap();
}

/// Restarting the etcd leader does not expire a lease that is being kept alive (etcd re-extends all
/// leases when a new leader takes over); keep-alives fail only during the election.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_leader_restart_keeps_kept_alive_lease() {
    let mut cluster = start_cluster();
    let dcs = connect(&cluster).await;
    let p = "/service/restart/";
    let member = format!("{p}members/n1");
    let lease = dcs.grant_lease(2).await.unwrap();
    dcs.put(&member, b"{}", Some(lease)).await.unwrap();

    // Keep the lease alive every 500 ms in the background, recording failures.
    let keeper_dcs = Arc::clone(&dcs);
    let stop = tokio_util::sync::CancellationToken::new();
    let keeper_stop = stop.clone();
    let keeper = tokio::spawn(async move {
        let start = Instant::now();
        let mut log = Vec::new();
        while !keeper_stop.is_cancelled() {
            let t = start.elapsed();
            match keeper_dcs.keep_alive(lease).await {
                Ok(_) => {}
                Err(DcsError::LeaseNotFound) => panic!("lease expired at {t:?}: {log:?}"),
                Err(e) => log.push(format!("{t:?}: {e}")),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        log
    });

    // Kill the etcd leader, let the survivors elect a new one, then bring the old leader back.
    let victim = cluster.leader_index().expect("an etcd leader");
    let killed_at = Instant::now();
    let (elected_after, new_leader) = tokio::task::block_in_place(|| -> anyhow::Result<_> {
        cluster.kill(victim);
        cluster.wait_healthy(Duration::from_secs(15))?;
        let elected_after = killed_at.elapsed();
        let new_leader = cluster.leader_index();
        cluster.restart(victim)?;
        cluster.wait_healthy(Duration::from_secs(15))?;
        Ok((elected_after, new_leader))
    })
    .unwrap();
    let healthy_after = killed_at.elapsed();
    assert_ne!(new_leader, Some(victim));
    // Let at least two more TTLs pass with keep-alives running.
    let until = Instant::now() + Duration::from_secs(4);
    poll_until(
        "two TTLs after the restart",
        Duration::from_secs(6),
        || async {
            assert!(
                exists(&*dcs, p, &member).await,
                "kept-alive key vanished after the restart"
            );
            Instant::now() >= until
        },
    )
    .await;
    stop.cancel();
    let errors = keeper.await.unwrap();
    eprintln!(
        "killed etcd leader m{victim}; new leader {new_leader:?} seen after {elected_after:?}; restarted, all 3 healthy after {healthy_after:?}; keep-alive errors: {errors:?}"
    );
    assert!(exists(&*dcs, p, &member).await);
    assert!(dcs.keep_alive(lease).await.unwrap() >= 2);
}

/// With etcd auth on: the right user/password works (token fetched lazily), a wrong password or no
/// user at all is a definite `Other` error, not `Unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_auth_user_password() {
    let cluster = tokio::task::block_in_place(|| EtcdCluster::start(1)).unwrap();
    let url = cluster.client_urls().remove(0);
    tokio::task::block_in_place(|| {
        for args in [
            &["user", "add", "root:s3cret"][..],
            &["user", "grant-role", "root", "root"],
            &["auth", "enable"],
        ] {
            let out = std::process::Command::new("/usr/bin/etcdctl")
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={url}"))
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "etcdctl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    });
    let urls = cluster.client_urls();
    let connect = |user: Option<&str>, password: Option<&str>| {
        EtcdDcs::connect(
            urls.clone(),
            user.map(str::to_owned),
            password.map(str::to_owned),
            REQUEST_TIMEOUT,
        )
    };
    let good = connect(Some("root"), Some("s3cret")).await.unwrap();
    assert!(format!("{good:?}").contains("root") && !format!("{good:?}").contains("s3cret"));
    good.put("/service/auth/config", b"{}", None).await.unwrap();
    let lease = good.grant_lease(10).await.unwrap();
    assert!(good.keep_alive(lease).await.unwrap() >= 10);
    let mut rx = good.watch_prefix("/service/auth/");
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|&v| v >= 1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        good.get_prefix("/service/auth/").await.unwrap().kvs.len(),
        1
    );

    let wrong = connect(Some("root"), Some("nope")).await.unwrap();
    let err = wrong.get_prefix("/service/auth/").await.unwrap_err();
    assert!(matches!(err, DcsError::Other(_)), "{err:?}");
    let anonymous = connect(None, None).await.unwrap();
    let err = anonymous.get_prefix("/service/auth/").await.unwrap_err();
    assert!(matches!(err, DcsError::Other(_)), "{err:?}");
}

/// A compare-and-set is never retried after an ambiguous failure, but a refused connection proves
/// nothing was applied: the same call moves on to the next endpoint and succeeds there. (Pins that
/// the transport's "connection refused" text is recognised as "never processed".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cas_fails_over_past_a_refused_endpoint() {
    let cluster = tokio::task::block_in_place(|| EtcdCluster::start(1)).unwrap();
    let dead = pgkeel_testkit::ports::free_ports(1).unwrap()[0];
    let mut urls = vec![format!("http://127.0.0.1:{dead}")];
    urls.extend(cluster.client_urls());
    let dcs = EtcdDcs::connect(urls, None, None, REQUEST_TIMEOUT)
        .await
        .unwrap();
    let key = "/service/refused/leader";
    assert!(dcs.create_if_absent(key, b"n1", None).await.unwrap());
    assert!(dcs.put_if_value(key, b"n1", b"n1", None).await.unwrap());
    assert_eq!(
        dcs.get_prefix("/service/refused/")
            .await
            .unwrap()
            .get(key)
            .map(|kv| kv.value.clone()),
        Some(b"n1".to_vec())
    );
}
