//! The config loader and the web config loader: any text gives a config or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = mqtt_sentinel::config::parse(text, "f.yaml", Path::new("/nonexistent"), &|_| None);
    let _ = mqtt_sentinel::config::web::parse(text, "w.yml", Path::new("/nonexistent"));
});
