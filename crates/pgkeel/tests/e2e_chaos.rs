//! End-to-end: the seeded fault campaign (`pgkeel_testkit::chaos`) on a real cluster in
//! `synchronous_mode: on` and `quorum`: three writers insert unique ids while ten faults land
//! one after another (host loss, agent kill, agent frozen past the TTL, PostgreSQL crash,
//! switchover, failover, replica restart, synchronous standby killed); every fault must settle
//! within 90 s, no acknowledged id may be missing from the final primary and no two nodes may
//! have taken writes at the same time. `PGKEEL_CHAOS_SEED=<n>` replays a run; the long runs
//! are `bench/chaos.sh`.

use std::time::Duration;

use pgkeel_testkit::chaos::{self, CampaignOptions, Replication};
use pgkeel_testkit::{PgkeelCluster, require_tools};

fn campaign(replication: Replication, scope: &str) {
    require_tools();
    let seed = std::env::var("PGKEEL_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(chaos::fresh_seed);
    eprintln!(
        "chaos seed {seed} (replay: PGKEEL_CHAOS_SEED={seed} cargo nextest run -E 'binary(e2e_chaos)')"
    );
    let mut c =
        PgkeelCluster::start(pgkeel_testkit::fast_options!(scope)).expect("start the cluster");
    let report = chaos::run(
        &mut c,
        &CampaignOptions {
            replication,
            seed,
            faults: 10,
            writers: 3,
            settle_bound: Duration::from_secs(90),
        },
    )
    .unwrap_or_else(|e| panic!("seed {seed}: {e:#}"));
    let text = report.render();
    eprintln!("{text}");
    assert!(report.acknowledged > 100, "{text}");
    assert!(report.lost.is_empty(), "acknowledged writes lost:\n{text}");
    assert!(
        report.overlaps.is_empty(),
        "two nodes took writes at once:\n{text}"
    );
}

#[test]
fn e2e_chaos_synchronous_mode_on_loses_no_acknowledged_write() {
    campaign(Replication::Sync, "e2e-chaos-on");
}

#[test]
fn e2e_chaos_quorum_mode_loses_no_acknowledged_write() {
    campaign(Replication::Quorum, "e2e-chaos-quorum");
}
