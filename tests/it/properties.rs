//! Properties over generated input (proptest, on stable, in the normal run): the `$SYS`
//! payload parser, the collector, the config loader, the web config loader and the rule /
//! PromQL loader never panic, whatever they are given, and keep their promises. The same
//! entry points are cargo-fuzz targets under `fuzz/` for longer runs on nightly.

use mqtt_sentinel::config::{self, SysConfig};
use mqtt_sentinel::sys::parse;
use mqtt_sentinel::sys::profile::ProfileSet;
use mqtt_sentinel::sys::{Ingest, IngestCounters, Outcome, SysStore};
use proptest::prelude::*;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn payload_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse::number(&bytes);
        let _ = parse::counter(&bytes);
        let _ = parse::duration(&bytes, 0.001);
        let _ = parse::since(&bytes, 1.0, 1.8e9);
        let _ = parse::flag(&bytes);
        if let Ok((i, v)) = parse::version(&bytes) {
            prop_assert!(!i.chars().chain(v.chars()).any(char::is_control));
        }
    }

    #[test]
    fn finite_numbers_round_trip(v in any::<f64>().prop_filter("finite", |v| v.is_finite())) {
        // as a broker would print it: plain, or in exponent form (plain tiny numbers run to
        // hundreds of digits, past the 64-byte cap that keeps a hostile payload cheap)
        let plain = format!("{v}");
        if plain.len() <= parse::MAX_NUMBER_LEN {
            prop_assert_eq!(parse::number(plain.as_bytes()), Ok(v));
        }
        prop_assert_eq!(parse::number(format!("{v:e}").as_bytes()), Ok(v));
        let got = parse::counter(format!("{v:e}").as_bytes());
        prop_assert_eq!(got.is_ok(), v >= 0.0);
    }

    #[test]
    fn the_collector_survives_any_message_and_keeps_its_cap(
        msgs in proptest::collection::vec(
            ("(\\$SYS/)?[a-z/{}#+ \\u{202e}\\.]{0,30}", proptest::collection::vec(any::<u8>(), 0..24)),
            0..60,
        ),
        profile in prop::sample::select(vec!["auto", "mosquitto", "amqtt", "emqx", "vernemq", "nanomq", "generic"]),
    ) {
        let cfg = SysConfig {
            enabled: true,
            topic: "$SYS/#".into(),
            profile: profile.into(),
            max_series: 8,
            profiles: Arc::new(ProfileSet::builtin()),
        };
        let store = SysStore::new("p");
        let mut ing = Ingest::new(&cfg, store.clone(), IngestCounters::default());
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for (topic, payload) in &msgs {
            // an empty payload is a value only where every message counts (event topics)
            if ing.handle(topic, payload, t) == Outcome::Stored && payload.is_empty() {
                prop_assert!(matches!(profile, "nanomq" | "auto"), "{topic:?} stored an empty payload");
            }
        }
        let snap = store.snapshot();
        let dynamic = snap.series.keys().filter(|(_, l)| !l.is_empty()).count();
        // every labelled series counts against the cap (plus the mosquitto load windows, which are constant labels)
        prop_assert!(dynamic <= 8 + 27, "{dynamic} labelled series");
        prop_assert!(snap.series.values().all(|v| v.is_finite()));
    }

    #[test]
    fn config_loader_never_panics(text in "(listen|brokers|sys_profiles|web|rules|notify|probe_modules|[a-z_]{1,8})?[:\\-\\[\\]{}, \\n a-z0-9_./$#\"']{0,160}") {
        let _ = config::parse(&text, "p.yaml", Path::new("/nonexistent"), &|_| None);
    }

    #[test]
    fn web_config_loader_never_panics(text in "(tls_server_config|basic_auth_users|http_server_config)?[:\\-\\[\\]{}, \\n a-zA-Z0-9_./$]{0,120}") {
        let _ = config::web::parse(&text, "w.yml", Path::new("/nonexistent"));
    }

    #[test]
    fn rule_loader_never_panics_on_any_expression(expr in "[a-z_(){}\\[\\]=~!<>+\\-*/^%,.0-9 \"'$]{0,60}", name in "[A-Za-z]{1,8}") {
        let text = format!(
            "groups:\n  - name: g\n    rules:\n      - alert: {name}\n        expr: '{}'\n        annotations: {{ d: '{{{{ $value | humanize }}}} {{{{ $labels.x }}}}' }}\n",
            expr.replace('\'', "''")
        );
        let _ = mqtt_sentinel::rules::file::parse(&text, "r.yml");
    }
}
