//! Property tests: nothing a vendor or a user can send makes the parsers or the config loader
//! panic. A bounded number of cases runs in the normal test suite.

use awareness_exporter::config;
use awareness_exporter::model::{Platform, SourceKey};
use awareness_exporter::registry;
use awareness_exporter::testing::sources::cyberpilot::metrics::Report;
use awareness_exporter::testing::sources::cyberpilot::page::UsersFormat;
use awareness_exporter::testing::sources::decode::RowBudget;
use awareness_exporter::testing::sources::mimecast::models as mc;
use awareness_exporter::testing::sources::paging::Format;
use awareness_exporter::testing::stats::ApiStats;
use proptest::prelude::*;
use serde_json::Value;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("user"),
            Just("email"),
            Just("branch"),
            Just("name"),
            Just("overdueCourses"),
            Just("data"),
            Just("meta"),
            Just("fail"),
            Just("items"),
            Just("training"),
            Just("results")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop_oneof![
            Just("user".to_string()),
            Just("id".to_string()),
            Just("email".to_string()),
            Just("branch".to_string()),
            Just("name".to_string()),
            Just("count".to_string()),
            Just("result".to_string()),
            Just("overdueCourses".to_string()),
            Just("averageScore".to_string()),
            Just("linksClicked".to_string()),
            Just("meta".to_string()),
            Just("pagination".to_string()),
            Just("next".to_string()),
            Just("data".to_string()),
            Just("fail".to_string()),
            Just("errors".to_string()),
            Just("code".to_string()),
            Just("items".to_string()),
            Just("training".to_string()),
            Just("watched".to_string()),
            Just("onWatchList".to_string()),
            Just("results".to_string()),
            Just("forQuestion1".to_string()),
            Just("department".to_string()),
            Just("numCorrect".to_string()),
            Just("risk".to_string()),
            ".{0,6}".prop_map(|s| s),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The elements of the array under `key`, raw.
fn elements(page: &Value, key: &str) -> Vec<Box<serde_json::value::RawValue>> {
    match page.get(key) {
        Some(Value::Array(rows)) => rows
            .iter()
            .filter_map(|r| serde_json::value::to_raw_value(r).ok())
            .collect(),
        _ => Vec::new(),
    }
}

fn exercise_cyberpilot(text: &str) {
    // As the paging engine reads a page: its rows one by one, the malformed ones skipped.
    let mut users = Vec::new();
    let budget = RowBudget::new(u64::MAX);
    let _ = UsersFormat::read(text.as_bytes(), &budget, &mut |raw| {
        UsersFormat::rows(raw, &mut users).0
    });
    let key = SourceKey::new(Platform::new("cyberpilot"), "p");
    let metrics = config::MetricsConfig {
        per_user: true,
        max_users: 5,
        ..Default::default()
    };
    let mut report = Report::new(&metrics);
    users.iter().for_each(|u| report.add(u));
    let rendered = report.render(&key, &metrics, &ApiStats::default());
    let _ = awareness_exporter::testing::snapshot::merge([&rendered]);
}

fn exercise_mimecast(text: &str) {
    if let Ok(env) = serde_json::from_str::<Value>(text) {
        for raw in elements(&env, "data") {
            let s = raw.get();
            let _ = serde_json::from_str::<mc::Items>(s);
            let _ = serde_json::from_str::<mc::UserRow>(s);
            let _ = serde_json::from_str::<mc::TrainingRow>(s);
            let _ = serde_json::from_str::<mc::CampaignUserRow>(s);
            let _ = serde_json::from_str::<mc::PhishingCampaign>(s);
            let _ = serde_json::from_str::<mc::Campaign>(s);
        }
    }
    let _ = mc::parse_timestamp(text);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn vendor_parsers_never_panic_on_structured_json(v in json_value()) {
        let text = v.to_string();
        exercise_cyberpilot(&text);
        exercise_mimecast(&text);
        let wrapped = serde_json::json!({"count": 3, "fetched": 1, "result": [v.clone()]}).to_string();
        exercise_cyberpilot(&wrapped);
        let wrapped = serde_json::json!({"meta": {"status": 200}, "data": [v], "fail": []}).to_string();
        exercise_mimecast(&wrapped);
    }

    #[test]
    fn vendor_parsers_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        exercise_cyberpilot(&text);
        exercise_mimecast(&text);
    }

    #[test]
    fn config_loader_never_panics(text in ".{0,400}") {
        let _ = registry::loader().parse(&text, "fuzz.toml");
    }

    #[test]
    fn config_loader_never_panics_on_toml_like_input(
        lines in prop::collection::vec(
            prop_oneof![
                Just("[server]".to_string()), Just("[poll]".to_string()), Just("[metrics]".to_string()),
                Just("[[cyberpilot]]".to_string()), Just("[[mimecast]]".to_string()), Just("[cyberpilot.login]".to_string()),
                ("[a-z_]{1,14}", prop_oneof![
                    "\"[ -~]{0,10}\"".prop_map(|s| s),
                    any::<i64>().prop_map(|n| n.to_string()),
                    Just("true".to_string()),
                    Just("[\"a\", 1]".to_string()),
                    Just("\"1s\"".to_string()),
                    Just("\"10m\"".to_string()),
                ]).prop_map(|(k, v)| format!("{k} = {v}")),
            ],
            0..20,
        )
    ) {
        let _ = registry::loader().parse(&lines.join("\n"), "fuzz.toml");
    }
}
