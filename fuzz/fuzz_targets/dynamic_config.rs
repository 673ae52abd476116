//! Any JSON as a `/config` write or as the `config` key: the check and the reader never panic,
//! a value the check accepts reads back as itself, and whatever is read is within range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgkeel_ha::cluster::{GlobalConfig, INT_KEYS};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let accepted = GlobalConfig::check(&m).is_ok();
    let read = GlobalConfig::from_map_over(&m, &GlobalConfig::default());
    let _ = GlobalConfig::with_effective_timeouts(&m);
    let (t, _) = read.timeouts().adjusted();
    for k in INT_KEYS {
        let v = match k.key {
            "ttl" => t.ttl,
            "loop_wait" => t.loop_wait,
            "retry_timeout" => t.retry_timeout,
            _ => continue,
        };
        assert!(v >= k.min && v <= k.max, "{} = {v} out of range", k.key);
    }
    if accepted {
        // Accepted values are used as given (the timing rule aside, which adjusts).
        assert!(
            read.warnings.iter().all(|w| !w.contains("keeping")),
            "{:?}",
            read.warnings
        );
    }
});
