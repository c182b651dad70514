//! `$SYS` messages: the payload parsers and the collector with every profile.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mqtt_sentinel::config::SysConfig;
use mqtt_sentinel::sys::profile::ProfileSet;
use mqtt_sentinel::sys::{Ingest, IngestCounters, SysStore, parse};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

fn profiles() -> Arc<ProfileSet> {
    static P: OnceLock<Arc<ProfileSet>> = OnceLock::new();
    P.get_or_init(|| Arc::new(ProfileSet::builtin())).clone()
}

fuzz_target!(|data: &[u8]| {
    let _ = parse::number(data);
    let _ = parse::duration(data, 0.001);
    let _ = parse::since(data, 1.0, 1.8e9);
    let _ = parse::version(data);
    if let Ok(obj) = parse::json_object(data) {
        for v in obj.values() {
            let _ = parse::json_number(v);
            let _ = parse::json_text(v);
        }
    }
    // first byte picks the profile, then "topic\0payload" pairs
    let Some((&pick, rest)) = data.split_first() else { return };
    // every built-in profile, so a new one is fuzzed without editing this list
    let set = profiles();
    let names: Vec<&str> = std::iter::once("auto").chain(set.names()).collect();
    let cfg = SysConfig {
        enabled: true,
        topic: "$SYS/#".into(),
        profile: names[pick as usize % names.len()].into(),
        max_series: 16,
        profiles: profiles(),
    };
    let mut ing = Ingest::new(&cfg, SysStore::new("f"), IngestCounters::default());
    let mut t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    for pair in rest.split(|b| *b == b'\n') {
        // message time moves on, past the instance-silence and ageing limits now and then
        t += Duration::from_secs(37);
        let (topic, payload) = match pair.iter().position(|b| *b == 0) {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        let topic = format!("$SYS/{}", String::from_utf8_lossy(topic));
        ing.handle(&topic, payload, t);
    }
});
