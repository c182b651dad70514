//! Rule files and PromQL: any text gives rules or an error; any expression in a valid file
//! is parsed, checked against the supported subset, or refused.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = mqtt_sentinel::rules::file::parse(text, "f.yml");
    let wrapped = format!(
        "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: '{}'\n",
        text.replace('\'', "''").replace('\n', " ")
    );
    let _ = mqtt_sentinel::rules::file::parse(&wrapped, "f.yml");
});
