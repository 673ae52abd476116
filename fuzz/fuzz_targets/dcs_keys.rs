//! Any bytes in any of Patroni's keys, as "another node" could write them: parsing the
//! cluster never panics, and what the HA core derives from it (the dynamic configuration and
//! its timeouts) stays within range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgkeel_ha::cluster::{GlobalConfig, MAX_SECONDS};
use pgkeel_ha::keys::KeyLayout;
use pgkeel_ha::keys::codec::{RawKv, parse_cluster};

const KEYS: &[&str] = &[
    "config",
    "leader",
    "status",
    "history",
    "failover",
    "sync",
    "initialize",
    "optime/leader",
    "members/n1",
    "members/n2",
    "failsafe",
];

fuzz_target!(|data: &[u8]| {
    let layout = KeyLayout::new("/service", "fuzz");
    // Chunks separated by 0xff: the first byte picks the key and lease, the rest is the value.
    let names: Vec<String> = KEYS.iter().map(|k| format!("/service/fuzz/{k}")).collect();
    let kvs: Vec<RawKv<'_>> = data
        .split(|b| *b == 0xff)
        .filter_map(|chunk| {
            let (&pick, value) = chunk.split_first()?;
            Some(RawKv {
                key: &names[usize::from(pick) % names.len()],
                value,
                mod_revision: i64::from(pick),
                lease: i64::from(pick & 1),
            })
        })
        .collect();
    let cluster = parse_cluster(&layout, &kvs);
    if let Some(config) = &cluster.config {
        let global = GlobalConfig::from_map_over(&config.data, &GlobalConfig::default());
        let t = global.timeouts();
        assert!(t.ttl <= MAX_SECONDS && t.loop_wait <= MAX_SECONDS);
        assert!(t.retry_timeout <= MAX_SECONDS);
        let _ = (global.ttl_ms(), global.fencing_margin_ms());
        let _ = global.primary_start_timeout_ms();
    }
});
