//! The one source-polling harness of the tests and the benchmarks: take a simulated tenant
//! (`awareness_sim::<vendor>::tenant`, any vendor), write the exporter config that polls it,
//! build its source as the exporter does, poll it once and read the rendered text.
//!
//! It needs the exporter's types, so it cannot live in the simulator crate (the exporter
//! depends on that one): tests/it/common/mod.rs includes it as a module, benches/perf.rs with
//! `#[path]`.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use awareness_exporter::config::{Config, MetricsConfig, PollConfig, SourceConfig};
use awareness_exporter::model::{FailureReason, PollOutcome};
use awareness_exporter::registry;
use awareness_exporter::testing::snapshot::{merge, Rendered};
use awareness_exporter::testing::sources::{self, Source, SourceContext};
use awareness_exporter::testing::stats::ApiStats;
use awareness_exporter::testing::store::Store;
use awareness_sim::Tenant;

/// What tests ask of a source's request counters (the exporter itself only renders them).
pub trait Counted {
    /// Requests sent to `endpoint`.
    fn requests(&self, endpoint: &str) -> u64;
    /// Requests sent to every endpoint.
    fn total_requests(&self) -> u64;
    /// Failed requests with `reason`, over every endpoint.
    fn failures(&self, reason: FailureReason) -> u64;
}

impl Counted for ApiStats {
    fn requests(&self, endpoint: &str) -> u64 {
        self.snapshot().requests.get(endpoint).copied().unwrap_or(0)
    }

    fn total_requests(&self) -> u64 {
        self.snapshot().requests.values().sum()
    }

    fn failures(&self, reason: FailureReason) -> u64 {
        let failures = self.snapshot().failures.into_iter();
        failures
            .filter(|((_, r), _)| *r == reason)
            .map(|(_, n)| n)
            .sum()
    }
}

/// The config text polling `tenant`: `settings` first (e.g. `[poll]` or `[metrics]` tables),
/// then the tenant's table with `account_keys` (e.g. `"page_size = 100\n"`) added.
pub fn config_text(settings: &str, tenant: &Tenant, account_keys: &str) -> String {
    let mut text = settings.to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&tenant.table(account_keys));
    text
}

/// Loads config text as the exporter does; panics with the loader's message.
pub fn load(text: &str) -> Config {
    registry::loader()
        .parse(text, "harness.toml")
        .unwrap_or_else(|e| panic!("config: {e}\n{text}"))
}

/// The whole `/metrics` body of a store, as a scrape gets it.
pub trait Render {
    fn render(&self, now: SystemTime) -> String;
}

impl Render for Store {
    fn render(&self, now: SystemTime) -> String {
        let (health, parts) = (self.render_health(), self.data_sections(now));
        merge(std::iter::once(&health).chain(parts.iter().map(|p| p.as_ref())))
    }
}

/// What tests ask of a poll's outcome.
pub trait Outcome {
    /// Every section succeeded.
    fn ok(&self) -> bool;
    /// The first failed section and why, as text (`section: message`).
    fn first_error(&self) -> Option<String>;
}

impl Outcome for PollOutcome {
    fn ok(&self) -> bool {
        self.sections.iter().all(|s| s.result.is_ok())
    }
    fn first_error(&self) -> Option<String> {
        self.first_failure().map(|e| e.to_string())
    }
}

/// What one poll gave.
pub struct Polled {
    pub outcome: PollOutcome,
    pub stats: Arc<ApiStats>,
    /// Wall time of the poll (building the source excluded).
    pub took: Duration,
}

impl Polled {
    /// The rendered text of every section; panics if one failed.
    pub fn text(&self) -> String {
        text_of(&self.outcome)
    }
}

/// Builds the first source of `config` as the exporter does (with its own HTTP client and
/// request statistics) and polls it once.
pub async fn poll(config: &Config) -> Polled {
    let (source, stats) = build(config, 0);
    let started = Instant::now();
    let outcome = source.poll().await;
    Polled {
        outcome,
        stats,
        took: started.elapsed(),
    }
}

/// Builds source `i` of `config` as the exporter does, with its own HTTP client and request
/// statistics.
pub fn build(config: &Config, i: usize) -> (Arc<dyn Source>, Arc<ApiStats>) {
    build_account(
        &config.sources[i],
        config.poll.clone(),
        config.metrics.clone(),
    )
}

/// Builds the source of one account (e.g. `SourceConfig::new(PLATFORM, Arc::new(account))`) as
/// the exporter does, its transport speaking the vendor's HTTP semantics, with `poll` and
/// `metrics` settings, its own HTTP client and request statistics.
pub fn build_account(
    account: &SourceConfig,
    poll: PollConfig,
    metrics: MetricsConfig,
) -> (Arc<dyn Source>, Arc<ApiStats>) {
    let stats = Arc::new(ApiStats::default());
    let permits = tokio::sync::Semaphore::new(poll.max_requests_in_flight.max(1));
    let ctx = SourceContext {
        client: awareness_exporter::testing::http::client(),
        global_permits: Arc::new(permits),
        stats: stats.clone(),
        poll,
        metrics,
    };
    (
        sources::build(account, ctx).expect("a registered platform"),
        stats,
    )
}

/// How many sections the sources of `config` poll, all together.
pub fn section_count(config: &Config) -> usize {
    (0..config.sources.len())
        .map(|i| build(config, i).0.sections().len())
        .sum()
}

/// Polls `tenant` once with `settings` and `account_keys` (see [`config_text`]).
pub async fn poll_tenant(tenant: &Tenant, settings: &str, account_keys: &str) -> Polled {
    poll(&load(&config_text(settings, tenant, account_keys))).await
}

/// The rendered text of a successful outcome (all sections, merged as a scrape does, a family
/// declared differently in one section or by two being an error).
pub fn text_of(outcome: &PollOutcome) -> String {
    let parts: Vec<&Rendered> = outcome
        .sections
        .iter()
        .map(|s| match &s.result {
            Ok(r) => r,
            Err(e) => panic!("section {} failed: {e}", s.name),
        })
        .collect();
    if let Err(clash) = declared_alike(&parts) {
        panic!("{clash}");
    }
    awareness_exporter::testing::snapshot::merge(parts)
}

/// Each family declared alike (type and help) in every part: the check the served merge leaves
/// to the tests (it keeps a name's first declaration and leaves a clashing one out).
pub fn declared_alike(parts: &[&Rendered]) -> Result<(), String> {
    let mut declared = std::collections::BTreeMap::new();
    for f in parts.iter().flat_map(|part| &part.families) {
        let first = *declared.entry(&f.name).or_insert((f.metric_type, &f.help));
        if first != (f.metric_type, &f.help) {
            let second = (f.metric_type, &f.help);
            return Err(format!(
                "metric family {} declared as {first:?} and as {second:?}",
                f.name
            ));
        }
    }
    Ok(())
}
