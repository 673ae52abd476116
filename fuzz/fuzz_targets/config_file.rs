//! Any text as a configuration file: loading answers a configuration or an error, never a
//! panic, and an error is one line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = pgkeel::config::load_config_from_str(text, Path::new("fuzz.yml"), &[]) {
        assert!(!e.to_string().contains('\n'), "not one line: {e}");
    }
});
