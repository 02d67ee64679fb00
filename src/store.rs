//! The published state of every source: the last good sections of data, the poll status and the
//! request counters, and the state of the config in force. Pollers write whole sections into
//! it; scrapes and the landing page read it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::model::{
    FailureReason, PollError, PollOutcome, Retry, SectionError, SourceInfo, SourceKey,
};
use crate::snapshot::{merge, MetricsBuilder, Rendered};
use crate::stats::ApiStats;

/// What the landing page and the health metrics show about a source.
#[derive(Debug, Clone, Default)]
pub struct SourceStatus {
    pub polls_ok: u64,
    pub polls_failed: u64,
    /// Polls that panicked (caught; the source kept its schedule).
    pub polls_panicked: u64,
    /// Every section's last attempt succeeded, or found it not offered by the tenant.
    pub up: bool,
    pub last_poll_end: Option<SystemTime>,
    /// End of the last poll after which the source was up (or as restored from the state dir).
    pub last_success: Option<SystemTime>,
    pub last_duration: Option<Duration>,
    /// Why the source is down: a failed section and its typed error.
    pub last_error: Option<SectionError>,
    /// Start of the poll running now, if one is.
    pub polling_since: Option<SystemTime>,
    /// The latest failed request of the poll running now: endpoint and reason.
    pub current_error: Option<(&'static str, FailureReason)>,
    /// The source's poll interval (its own or `poll.interval`).
    pub interval: Option<Duration>,
    pub info: SourceInfo,
    /// Each section's state, in name order.
    pub sections: Vec<SectionStatus>,
    /// Data series currently published (after `max_age`).
    pub series: usize,
}

/// One section's health.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SectionStatus {
    pub name: &'static str,
    /// `None` until its first attempt ends.
    pub up: Option<bool>,
    pub last_success: Option<SystemTime>,
    pub last_error: Option<PollError>,
}

impl SectionStatus {
    /// The tenant does not offer it: down, but not the source's fault.
    pub fn not_offered(&self) -> bool {
        self.up == Some(false)
            && self
                .last_error
                .as_ref()
                .is_some_and(|e| e.retry() == Retry::NotOffered)
    }
}

impl SourceStatus {
    /// True once the first poll attempt ended, whatever its result, or data was restored.
    pub fn first_poll_done(&self) -> bool {
        self.last_poll_end.is_some() || self.last_success.is_some()
    }
}

/// The config in force and the last reload's verdict.
#[derive(Debug, Clone, Default)]
pub struct ConfigStatus {
    /// When the config in force was loaded (at start or by the last good reload).
    pub loaded_at: Option<SystemTime>,
    /// The last reload, when it was refused: when, and why (keys, never values).
    pub refused: Option<(SystemTime, String)>,
}

/// A section's name, success time and data, as the state dir keeps it.
pub type SavedSection<D> = (&'static str, SystemTime, D);

/// A section's health and its last good data (published at `health.last_success`).
#[derive(Debug)]
struct Section {
    health: SectionStatus,
    data: Option<Arc<Rendered>>,
}

impl Section {
    fn new(name: &'static str) -> Section {
        let health = SectionStatus {
            name,
            ..SectionStatus::default()
        };
        Section { health, data: None }
    }

    /// Good data, polled (or restored) as of `at`.
    fn succeeded(&mut self, at: SystemTime, data: Rendered) {
        self.health.up = Some(true);
        self.health.last_success = Some(at);
        self.health.last_error = None;
        self.data = Some(Arc::new(data));
    }
}

#[derive(Debug)]
struct Entry {
    stats: Arc<ApiStats>,
    status: SourceStatus,
    sections: BTreeMap<&'static str, Section>,
}

#[derive(Debug)]
pub struct Store {
    sources: RwLock<BTreeMap<SourceKey, Entry>>,
    max_age: RwLock<Duration>,
    /// `(ordinal, total)` when this replica polls one shard of several.
    shard: Option<(u32, u32)>,
    /// The process polls built-in simulators (`--demo`), not vendors.
    demo: bool,
    config: Mutex<ConfigStatus>,
    /// Latched once the first config's sources finished their first poll: a reload that adds
    /// an account does not take a serving exporter out of its Service.
    ready: AtomicBool,
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn lock<T>(r: std::sync::LockResult<T>) -> T {
    r.unwrap_or_else(|e| e.into_inner())
}

impl Store {
    pub fn new(max_age: Duration) -> Self {
        Store {
            sources: RwLock::new(BTreeMap::new()),
            max_age: RwLock::new(max_age),
            shard: None,
            demo: false,
            config: Mutex::new(ConfigStatus::default()),
            ready: AtomicBool::new(false),
        }
    }

    /// The replica this store serves: its shard `(ordinal, total)` when sharded, and whether
    /// it polls the demo's simulators.
    pub fn for_replica(mut self, shard: Option<(u32, u32)>, demo: bool) -> Self {
        self.shard = shard;
        self.demo = demo;
        self
    }

    pub fn shard(&self) -> Option<(u32, u32)> {
        self.shard
    }

    pub fn demo_mode(&self) -> bool {
        self.demo
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<SourceKey, Entry>> {
        lock(self.sources.read())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<SourceKey, Entry>> {
        lock(self.sources.write())
    }

    pub fn max_age(&self) -> Duration {
        *lock(self.max_age.read())
    }

    pub fn set_max_age(&self, d: Duration) {
        *lock(self.max_age.write()) = d;
    }

    /// Records a config taken (`Ok`, at start or on reload) or a reload refused, and why.
    pub fn config_loaded(&self, result: Result<(), String>, now: SystemTime) {
        let mut c = lock(self.config.lock());
        match result {
            Ok(()) => {
                *c = ConfigStatus {
                    loaded_at: Some(now),
                    refused: None,
                }
            }
            Err(reason) => c.refused = Some((now, reason)),
        }
    }

    pub fn config_status(&self) -> ConfigStatus {
        lock(self.config.lock()).clone()
    }

    /// Registers a source (keeping its state if it exists) and returns its counters.
    pub fn register(&self, key: &SourceKey) -> Arc<ApiStats> {
        let mut map = self.write();
        let entry = map.entry(key.clone()).or_insert_with(|| Entry {
            stats: Arc::new(ApiStats::default()),
            status: SourceStatus::default(),
            sections: BTreeMap::new(),
        });
        entry.stats.clone()
    }

    /// Sets what a (re)started poller of `key` polls: its sections (others are forgotten, data
    /// and health), interval and vendor.
    pub fn configure(
        &self,
        key: &SourceKey,
        sections: &[&'static str],
        interval: Duration,
        info: SourceInfo,
    ) {
        if let Some(entry) = self.write().get_mut(key) {
            entry.sections.retain(|name, _| sections.contains(name));
            for name in sections {
                entry
                    .sections
                    .entry(name)
                    .or_insert_with(|| Section::new(name));
            }
            entry.status.interval = Some(interval);
            entry.status.info = info;
            entry.status.up = all_up(&entry.sections);
        }
    }

    /// Serves sections saved before a restart as if just polled at their own success times
    /// (`max_age` still applies); the source's last success is `last_success`.
    pub fn restore(
        &self,
        key: &SourceKey,
        sections: Vec<SavedSection<Rendered>>,
        last_success: Option<SystemTime>,
    ) {
        if let Some(entry) = self.write().get_mut(key) {
            for (name, at, data) in sections {
                if let Some(s) = entry.sections.get_mut(name) {
                    s.succeeded(at, data);
                }
            }
            entry.status.up = all_up(&entry.sections);
            entry.status.last_success = last_success;
        }
    }

    /// The sections of `key` with good data, when each succeeded, and the source's last
    /// success: what the state dir keeps.
    pub fn saved(&self, key: &SourceKey) -> (Vec<SavedSection<Arc<Rendered>>>, Option<SystemTime>) {
        let map = self.read();
        let Some(entry) = map.get(key) else {
            return (Vec::new(), None);
        };
        let sections = entry
            .sections
            .values()
            .filter_map(|s| Some((s.health.name, s.health.last_success?, s.data.clone()?)));
        (sections.collect(), entry.status.last_success)
    }

    /// Marks a poll of `key` as running since `now` (the landing page shows it).
    pub fn poll_started(&self, key: &SourceKey, now: SystemTime) {
        if let Some(entry) = self.write().get_mut(key) {
            entry.status.polling_since = Some(now);
        }
    }

    /// True when one of `sections` of `key` has good data to keep (not yet expired).
    pub fn has_data(&self, key: &SourceKey, sections: &[&'static str], now: SystemTime) -> bool {
        let max_age = self.max_age();
        self.read().get(key).is_some_and(|e| {
            sections
                .iter()
                .any(|name| e.sections.get(name).is_some_and(|s| fresh(s, now, max_age)))
        })
    }

    /// Forgets a source: its data and health series disappear from the next scrape.
    pub fn remove(&self, key: &SourceKey) {
        self.write().remove(key);
    }

    /// Publishes one finished poll (of every section or of some). Sections that succeeded
    /// replace their predecessors; failed ones keep the last good data; sections not polled keep
    /// their state. A poll with a panicked section is counted as a panic.
    pub fn publish(&self, key: &SourceKey, outcome: PollOutcome, took: Duration, now: SystemTime) {
        let mut map = self.write();
        let Some(entry) = map.get_mut(key) else {
            return; // removed by a reload while it polled
        };
        let panicked = outcome
            .sections
            .iter()
            .any(|s| matches!(s.result, Err(PollError::Panicked(_))));
        let ok = outcome.ok();
        let error = outcome.sections.iter().find_map(|s| match &s.result {
            Err(e) if e.retry() != Retry::NotOffered => Some(SectionError {
                section: s.name,
                error: e.clone(),
            }),
            _ => None,
        });
        for outcome in outcome.sections {
            let section = entry.sections.entry(outcome.name);
            let section = section.or_insert_with(|| Section::new(outcome.name));
            match outcome.result {
                Ok(data) => section.succeeded(now, data),
                Err(e) => {
                    section.health.up = Some(false);
                    section.health.last_error = Some(e);
                }
            }
        }
        let up = all_up(&entry.sections);
        let status = &mut entry.status;
        status.up = up;
        status.polling_since = None;
        status.last_poll_end = Some(now);
        status.last_duration = Some(took);
        match (panicked, ok) {
            (true, _) => status.polls_panicked += 1,
            (false, true) => status.polls_ok += 1,
            (false, false) => status.polls_failed += 1,
        }
        if up {
            status.last_success = Some(now);
        }
        // The error of this poll, else that of a section still down from an earlier one.
        status.last_error = error.or_else(|| {
            let down = entry.sections.values().map(|s| &s.health);
            down.filter(|h| h.up == Some(false) && !h.not_offered())
                .find_map(|h| {
                    let error = h.last_error.clone()?;
                    Some(SectionError {
                        section: h.name,
                        error,
                    })
                })
        });
    }

    /// Drops sections older than `max_age` so their memory is freed, not just hidden.
    pub fn expire(&self, now: SystemTime) {
        let max_age = self.max_age();
        for entry in self.write().values_mut() {
            for s in entry.sections.values_mut() {
                if !fresh(s, now, max_age) {
                    s.data = None;
                }
            }
        }
    }

    /// Status of every source, with the number of data series currently published.
    pub fn statuses(&self, now: SystemTime) -> Vec<(SourceKey, SourceStatus)> {
        let max_age = self.max_age();
        self.read()
            .iter()
            .map(|(k, e)| {
                let mut s = e.status.clone();
                s.sections = e.sections.values().map(|sec| sec.health.clone()).collect();
                if let Some(since) = s.polling_since {
                    s.current_error = e
                        .stats
                        .last_failure()
                        .filter(|(_, _, at)| *at >= since)
                        .map(|(endpoint, reason, _)| (endpoint, reason));
                }
                s.series = e
                    .sections
                    .values()
                    .filter(|sec| fresh(sec, now, max_age))
                    .filter_map(|sec| Some(sec.data.as_ref()?.series()))
                    .sum();
                (k.clone(), s)
            })
            .collect()
    }

    /// True once every source of the first config has finished its first poll, and from then
    /// on (reloads included).
    pub fn ready(&self) -> bool {
        if self.ready.load(Ordering::Relaxed) {
            return true;
        }
        let ready = self.read().values().all(|e| e.status.first_poll_done());
        self.ready.fetch_or(ready, Ordering::Relaxed) || ready
    }

    /// The whole `/metrics` body in OpenMetrics, sorted by family: health series built now,
    /// data series as prepared at poll time (minus sections older than `max_age`). Scrapes are
    /// served from [`crate::scrape_body`], which shares this work between scrapes.
    pub fn render(&self, now: SystemTime) -> String {
        let health = self.render_health();
        let parts = self.data_sections(now);
        merge(std::iter::once(&health).chain(parts.iter().map(|p| p.as_ref())))
    }

    /// The published data sections not older than `max_age`, in a stable order (by source,
    /// then section). A section's `Arc` is replaced on every publish, so pointer identity tells
    /// whether anything changed.
    pub fn data_sections(&self, now: SystemTime) -> Vec<Arc<Rendered>> {
        let max_age = self.max_age();
        let map = self.read();
        let sections = map.values().flat_map(|e| e.sections.values());
        sections
            .filter(|s| fresh(s, now, max_age))
            .filter_map(|s| s.data.clone())
            .collect()
    }

    /// The health series (build info, config, per-source status and request counters) now.
    pub fn render_health(&self) -> Rendered {
        let mut b = MetricsBuilder::new();
        let version = [("version", env!("CARGO_PKG_VERSION"))];
        b.gauge(
            "awareness_build_info",
            "A constant 1, labelled with the exporter's version",
            &version,
            1.0,
        );
        let config = self.config_status();
        let config_gauges = [
            ("awareness_config_last_reload_successful", "1 when the last attempt to load the config file succeeded (at start or on reload), else 0", Some(f64::from(u8::from(config.refused.is_none())))),
            ("awareness_config_last_reload_success_timestamp_seconds", "Unix time at which the config in force was loaded", config.loaded_at.map(secs)),
        ];
        for (name, help, value) in config_gauges {
            if let Some(v) = value {
                b.gauge(name, help, &[], v);
            }
        }
        // As kube-state-metrics shows its sharding; absent when not sharded.
        if let Some((ordinal, total)) = self.shard {
            let shard = ordinal.to_string();
            let labels = [("shard", shard.as_str())];
            b.gauge("awareness_shard_ordinal", "This replica's shard (--shard or the StatefulSet ordinal): it polls the accounts whose hash of (platform, account) falls on it", &labels, f64::from(ordinal));
            b.gauge(
                "awareness_total_shards",
                "The number of shards the accounts are spread over (--total-shards)",
                &labels,
                f64::from(total),
            );
        }
        for (key, entry) in self.read().iter() {
            source_health(&mut b, key, entry);
        }
        b.finish()
    }
}

/// The health series of one source.
fn source_health(b: &mut MetricsBuilder, key: &SourceKey, entry: &Entry) {
    let (platform, account) = (key.platform.as_str(), key.account.as_str());
    let labels = [("platform", platform), ("account", account)];
    let st = &entry.status;
    let gauges = [
        ("awareness_up", "1 when the last poll of the source fully succeeded (sections the tenant does not offer aside), else 0", Some(f64::from(u8::from(st.up)))),
        ("awareness_last_success_timestamp_seconds", "Unix time at the end of the last fully successful poll", st.last_success.map(secs)),
        ("awareness_poll_duration_seconds", "How long the last poll of the source took", st.last_duration.map(|d| d.as_secs_f64())),
        ("awareness_poll_interval_seconds", "The source's poll interval (after a success; failures retry sooner)", st.interval.map(|d| d.as_secs_f64())),
    ];
    for (name, help, value) in gauges {
        if let Some(v) = value {
            b.gauge(name, help, &labels, v);
        }
    }
    for (name, s) in &entry.sections {
        let labels = [
            ("platform", platform),
            ("account", account),
            ("section", *name),
        ];
        let h = &s.health;
        if let Some(up) = h.up {
            b.gauge("awareness_section_up", "1 when the last attempt at this section of the source succeeded, else 0 (down, or not offered by the tenant)", &labels, f64::from(u8::from(up)));
        }
        if let Some(t) = h.last_success {
            b.gauge(
                "awareness_section_last_success_timestamp_seconds",
                "Unix time at the end of the last successful poll of this section",
                &labels,
                secs(t),
            );
        }
    }
    for (result, n) in [
        ("success", st.polls_ok),
        ("failure", st.polls_failed),
        ("panic", st.polls_panicked),
    ] {
        let labels = [
            ("platform", platform),
            ("account", account),
            ("result", result),
        ];
        b.counter(
            "awareness_polls",
            "Finished polls of the source, by result (a panic is caught and counted)",
            &labels,
            n as f64,
        );
    }
    let stats = entry.stats.snapshot();
    let by_endpoint = [
        (
            "awareness_api_requests",
            "HTTP requests made to the vendor API",
            &stats.requests,
        ),
        (
            "awareness_rows_skipped",
            "Malformed rows in vendor answers that were skipped",
            &stats.rows_skipped,
        ),
    ];
    for (name, help, counts) in by_endpoint {
        for (endpoint, n) in counts {
            let labels = [
                ("platform", platform),
                ("account", account),
                ("endpoint", endpoint),
            ];
            b.counter(name, help, &labels, *n as f64);
        }
    }
    for ((endpoint, reason), n) in &stats.failures {
        let labels = [
            ("platform", platform),
            ("account", account),
            ("endpoint", endpoint),
            ("reason", reason.as_str()),
        ];
        b.counter(
            "awareness_api_request_failures",
            "Failed HTTP requests to the vendor API, by reason",
            &labels,
            *n as f64,
        );
    }
    if let Some(n) = stats.rows_read {
        b.gauge("awareness_source_rows", "Rows read from the vendor by the source's latest poll, all pages and sections (what its memory grows with; poll.max_rows bounds it)", &labels, n as f64);
    }
    b.counter("awareness_label_values_cut", "Vendor strings cut to 256 bytes (ending in …) on their way to a label value, summed over polls", &labels, stats.labels_cut as f64);
    for (label, n) in &stats.labels_folded {
        let labels = [
            ("platform", platform),
            ("account", account),
            ("label", label),
        ];
        b.counter("awareness_label_values_folded", "Distinct vendor label values folded into __other__ by metrics.max_label_values, summed over polls", &labels, *n as f64);
    }
}

/// Up when every section's last attempt succeeded or found it not offered, and one succeeded.
fn all_up(sections: &BTreeMap<&'static str, Section>) -> bool {
    let health = || sections.values().map(|s| &s.health);
    health().any(|h| h.up == Some(true)) && health().all(|h| h.up == Some(true) || h.not_offered())
}

/// The section's data is there and not older than `max_age`.
fn fresh(section: &Section, now: SystemTime, max_age: Duration) -> bool {
    section.data.is_some()
        && section
            .health
            .last_success
            .is_some_and(|at| now.duration_since(at).map_or(true, |age| age <= max_age))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Platform, SectionOutcome};

    fn data(v: f64) -> Rendered {
        let mut b = MetricsBuilder::new();
        b.gauge("awareness_x", "X", &[("account", "a")], v);
        b.finish()
    }

    #[test]
    fn failed_section_keeps_last_good_data_until_max_age() {
        let store = Store::new(Duration::from_secs(60));
        let key = SourceKey::new(Platform::new("cyberpilot"), "a");
        store.register(&key);
        assert!(!store.ready());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let ok = PollOutcome {
            sections: vec![SectionOutcome {
                name: "s",
                result: Ok(data(1.0)),
            }],
        };
        store.publish(&key, ok, Duration::from_secs(1), t0);
        assert!(store.ready());
        let failed = PollOutcome {
            sections: vec![SectionOutcome {
                name: "s",
                result: Err("boom".into()),
            }],
        };
        store.publish(
            &key,
            failed,
            Duration::from_secs(1),
            t0 + Duration::from_secs(30),
        );
        let body = store.render(t0 + Duration::from_secs(30));
        assert!(body.contains("awareness_x{account=\"a\"} 1.0"));
        assert!(body.contains("awareness_up{platform=\"cyberpilot\",account=\"a\"} 0.0"));
        let later = store.render(t0 + Duration::from_secs(61));
        assert!(!later.contains("awareness_x{"));
        assert!(later.contains("awareness_last_success_timestamp_seconds{"));
        store.remove(&key);
        assert!(!store.render(t0).contains("account=\"a\""));
    }

    #[test]
    fn the_status_keeps_the_reason_of_a_failure_not_just_its_text() {
        use crate::model::FetchError;
        let store = Store::new(Duration::from_secs(60));
        let key = SourceKey::new(Platform::new("cyberpilot"), "a");
        store.register(&key);
        store.configure(
            &key,
            &["s", "t"],
            Duration::from_secs(60),
            Default::default(),
        );
        let refused = FetchError::new(FailureReason::Auth, "HTTP 401 Unauthorized");
        let outcome = PollOutcome {
            sections: vec![
                SectionOutcome {
                    name: "s",
                    result: Err(refused.clone().into()),
                },
                SectionOutcome {
                    name: "t",
                    result: Ok(data(1.0)),
                },
            ],
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        store.publish(&key, outcome, Duration::from_secs(1), now);
        let status = &store.statuses(now)[0].1;
        let last = status.last_error.clone().unwrap();
        assert_eq!(last.reason(), Some(FailureReason::Auth));
        assert_eq!(last.to_string(), "s: HTTP 401 Unauthorized");
        assert_eq!(
            status.sections[0].last_error,
            Some(PollError::Fetch(refused))
        );

        let deadline = PollOutcome::all_failed(&["t"], PollError::Deadline(Duration::from_secs(5)));
        store.publish(&key, deadline, Duration::from_secs(5), now);
        let status = &store.statuses(now)[0].1;
        let last = status.last_error.clone().unwrap();
        assert_eq!(last.reason(), None);
        assert_eq!(
            last.to_string(),
            "t: poll deadline of 5s exceeded (poll.deadline)"
        );
    }
}
