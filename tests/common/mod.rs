//! Shared test helpers: configs pointing at the simulators, one-shot polls (the harness shared
//! with the benchmarks), exposition parsing.
#![allow(dead_code)]

pub mod harness;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use awareness_exporter::config::{self, Config};
use awareness_exporter::stats::ApiStats;
use awareness_exporter::store::{PollOutcome, Store};

// Not every test binary uses it.
#[allow(unused_imports)]
pub use harness::text_of;

/// Parses a config and overrides the poll settings to test-friendly ones.
pub fn parse(text: &str) -> Config {
    let mut c = config::parse(text, "test.toml").unwrap_or_else(|e| panic!("config: {e}"));
    c.poll.timeout = Duration::from_secs(2);
    c.poll.retry_backoff = Duration::from_millis(10);
    c.poll.max_attempts = 3;
    c
}

/// Runs one poll of the first source of `config`.
pub async fn poll_once(config: &Config) -> (PollOutcome, Arc<ApiStats>) {
    let polled = harness::poll(config).await;
    (polled.outcome, polled.stats)
}

/// Sample lines of an exposition: `name{labels}` → value.
pub fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Escapes a label value the way the exposition format does.
pub fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn series(name: &str, labels: &[(&str, &str)]) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
        .collect();
    if inner.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", inner.join(","))
    }
}

/// Publishes an outcome into a fresh store registered for the first source and renders it.
pub fn store_with(config: &Config) -> Arc<Store> {
    let store = Arc::new(Store::new(config.poll.max_age));
    store.register(&config.sources[0].key());
    store
}

/// Waits until `cond` holds, polling every 20 ms, up to `secs` seconds.
pub async fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}
