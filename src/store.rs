//! The published state of every source: the last good sections of data, the poll status and the
//! request counters, and the state of the config in force. Pollers write whole sections into
//! it; scrapes and the landing page read it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LockResult, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::model::{
    FailureReason, PollError, PollOutcome, Retry, SectionError, SourceInfo, SourceKey,
};
use crate::snapshot::{MetricsBuilder, Rendered};
use crate::stats::ApiStats;

/// A source as the landing page and the health metrics show it.
#[derive(Debug, Clone, Default)]
pub struct SourceStatus {
    /// Finished polls by result: `success`, `failure` or `panic` (caught; the source kept its
    /// schedule).
    pub polls: BTreeMap<&'static str, u64>,
    /// End of the last poll after which the source was up (or as restored from the state dir).
    pub last_success: Option<SystemTime>,
    /// How long the last poll took; `None` until the first one ends.
    pub last_duration: Option<Duration>,
    /// Why the source is down: the failure of the latest poll, else of a section still down.
    pub last_error: Option<SectionError>,
    /// Start of the poll running now, if one is.
    pub polling_since: Option<SystemTime>,
    /// The source's poll interval (its own or `poll.interval`).
    pub interval: Option<Duration>,
    pub info: SourceInfo,
    pub sections: BTreeMap<&'static str, SectionStatus>,
    pub(crate) stats: Arc<ApiStats>,
}

/// One section's health and its last good data.
#[derive(Debug, Clone, Default)]
pub struct SectionStatus {
    pub last_success: Option<SystemTime>,
    /// Why its last attempt failed; `None` after a success.
    pub last_error: Option<PollError>,
    /// As polled at `last_success`; gone once older than `max_age`.
    pub data: Option<Arc<Rendered>>,
}

impl SectionStatus {
    /// Good data, polled (or restored) as of `at`.
    fn succeeded(&mut self, at: SystemTime, data: Arc<Rendered>) {
        self.last_success = Some(at);
        self.last_error = None;
        self.data = Some(data);
    }

    /// Whether its last attempt succeeded; `None` until its first attempt ends.
    pub fn up(&self) -> Option<bool> {
        match (&self.last_error, self.last_success) {
            (Some(_), _) => Some(false),
            (None, success) => success.map(|_| true),
        }
    }

    /// The tenant does not offer it: down, but not the source's fault.
    pub fn not_offered(&self) -> bool {
        let error = self.last_error.as_ref();
        error.is_some_and(|e| e.retry() == Retry::NotOffered)
    }

    /// Its data, when not older than `max_age` at `now`.
    fn fresh(&self, now: SystemTime, max_age: Duration) -> Option<&Arc<Rendered>> {
        let at = self.last_success?;
        let age = now.duration_since(at).unwrap_or_default();
        self.data.as_ref().filter(|_| age <= max_age)
    }
}

impl SourceStatus {
    /// Every section's last attempt succeeded or found it not offered, and one succeeded.
    pub fn up(&self) -> bool {
        let mut sections = self.sections.values();
        sections.clone().any(|s| s.up() == Some(true))
            && sections.all(|s| s.up() == Some(true) || s.not_offered())
    }

    /// True once the first poll attempt ended, whatever its result, or data was restored.
    pub fn first_poll_done(&self) -> bool {
        self.last_duration.is_some() || self.last_success.is_some()
    }

    /// Data series published (after `max_age`, as [`Store::statuses`] gives them).
    pub fn series(&self) -> usize {
        let data = self.sections.values().filter_map(|s| s.data.as_ref());
        data.map(|d| d.series()).sum()
    }

    /// The latest failed request of the poll running now: endpoint and reason.
    pub fn current_error(&self) -> Option<(&'static str, FailureReason)> {
        let since = self.polling_since?;
        let (endpoint, reason, at) = self.stats.snapshot().last_failure?;
        (at >= since).then_some((endpoint, reason))
    }

    /// A copy as served at `now`: sections older than `max_age` without their data.
    fn served(&self, now: SystemTime, max_age: Duration) -> SourceStatus {
        let mut served = self.clone();
        for section in served.sections.values_mut() {
            section.data = section.fresh(now, max_age).cloned();
        }
        served
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

#[derive(Debug)]
pub struct Store {
    sources: RwLock<BTreeMap<SourceKey, SourceStatus>>,
    max_age: RwLock<Duration>,
    /// `(ordinal, total)` when this replica polls one shard of several.
    pub(crate) shard: Option<(u32, u32)>,
    /// The process polls built-in simulators (`--demo`), not vendors.
    pub(crate) demo: bool,
    config: Mutex<ConfigStatus>,
    /// Latched once the first config's sources finished their first poll: a reload that adds
    /// an account does not take a serving exporter out of its Service.
    ready: AtomicBool,
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A lock's guard, also after a panic elsewhere poisoned it: every writer leaves whole values.
pub(crate) fn lock<T>(r: LockResult<T>) -> T {
    r.unwrap_or_else(|e| e.into_inner())
}

impl Store {
    pub fn new(max_age: Duration) -> Self {
        Store {
            sources: RwLock::default(),
            max_age: RwLock::new(max_age),
            shard: None,
            demo: false,
            config: Mutex::default(),
            ready: AtomicBool::new(false),
        }
    }

    pub fn max_age(&self) -> Duration {
        *lock(self.max_age.read())
    }

    pub fn set_max_age(&self, d: Duration) {
        *lock(self.max_age.write()) = d;
    }

    /// Records a config taken (at start or on reload), or a reload refused and why.
    pub fn config_loaded(&self, refused: Option<String>) {
        let (mut c, now) = (lock(self.config.lock()), SystemTime::now());
        if refused.is_none() {
            c.loaded_at = Some(now);
        }
        c.refused = refused.map(|reason| (now, reason));
    }

    pub fn config_status(&self) -> ConfigStatus {
        lock(self.config.lock()).clone()
    }

    /// Registers a source (keeping its state if it exists) and returns its counters.
    pub fn register(&self, key: &SourceKey) -> Arc<ApiStats> {
        let mut map = lock(self.sources.write());
        map.entry(key.clone()).or_default().stats.clone()
    }

    /// Changes the source of `key`, if it is registered.
    fn update(&self, key: &SourceKey, change: impl FnOnce(&mut SourceStatus)) {
        if let Some(status) = lock(self.sources.write()).get_mut(key) {
            change(status);
        }
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
        self.update(key, |s| {
            s.sections.retain(|name, _| sections.contains(name));
            for name in sections {
                s.sections.entry(name).or_default();
            }
            s.interval = Some(interval);
            s.info = info;
        });
    }

    /// Serves sections saved before a restart as if just polled at their own success times
    /// (`max_age` still applies); the source's last success is `last_success`. Returns when
    /// each section it polls was restored to.
    pub(crate) fn restore(
        &self,
        key: &SourceKey,
        sections: Vec<(String, SystemTime, Arc<Rendered>)>,
        last_success: Option<SystemTime>,
    ) -> BTreeMap<&'static str, SystemTime> {
        let mut restored = BTreeMap::new();
        self.update(key, |s| {
            for (name, at, data) in sections {
                if let Some((name, section)) = s.sections.iter_mut().find(|(n, _)| **n == name) {
                    section.succeeded(at, data);
                    restored.insert(*name, at);
                }
            }
            s.last_success = last_success;
        });
        restored
    }

    /// Marks a poll of `key` as running since `now` (the landing page shows it).
    pub fn poll_started(&self, key: &SourceKey, now: SystemTime) {
        self.update(key, |s| s.polling_since = Some(now));
    }

    /// Forgets a source: its data and health series disappear from the next scrape.
    pub fn remove(&self, key: &SourceKey) {
        lock(self.sources.write()).remove(key);
    }

    /// Publishes one finished poll (of every section or of some) and drops data older than
    /// `max_age` so its memory is freed. Sections that succeeded replace their predecessors;
    /// failed ones keep the last good data; sections not polled keep their state. A poll with a
    /// panicked section is counted as a panic. True when a failed section kept data.
    pub fn publish(
        &self,
        key: &SourceKey,
        outcome: PollOutcome,
        took: Duration,
        now: SystemTime,
    ) -> bool {
        let max_age = self.max_age();
        let mut map = lock(self.sources.write());
        let mut kept = false;
        if let Some(status) = map.get_mut(key) {
            let polled: Vec<&'static str> = outcome.sections.iter().map(|s| s.name).collect();
            // A panic fails every section of its poll.
            let result = match outcome.first_failure().map(|e| e.error) {
                Some(PollError::Panicked(_)) => "panic",
                Some(_) => "failure",
                None => "success",
            };
            *status.polls.entry(result).or_default() += 1;
            for outcome in outcome.sections {
                let section = status.sections.entry(outcome.name).or_default();
                match outcome.result {
                    Ok(data) => section.succeeded(now, Arc::new(data)),
                    Err(e) => {
                        section.last_error = Some(e);
                        kept |= section.fresh(now, max_age).is_some();
                    }
                }
            }
            status.polling_since = None;
            status.last_duration = Some(took);
            if status.up() {
                status.last_success = Some(now);
            }
            // The error of this poll, else that of a section still down from an earlier one.
            let mut names = polled.iter().chain(status.sections.keys());
            status.last_error = names.find_map(|name| {
                let s = status.sections.get(name)?;
                let error = s.last_error.clone().filter(|_| !s.not_offered())?;
                Some(SectionError {
                    section: name,
                    error,
                })
            });
        } // else removed by a reload while it polled
        for s in map.values_mut().flat_map(|s| s.sections.values_mut()) {
            s.data = s.fresh(now, max_age).cloned();
        }
        kept
    }

    /// The source of `key` as served at `now`.
    pub(crate) fn status(&self, key: &SourceKey, now: SystemTime) -> Option<SourceStatus> {
        let max_age = self.max_age();
        let map = lock(self.sources.read());
        map.get(key).map(|s| s.served(now, max_age))
    }

    /// Every source as served at `now`.
    pub fn statuses(&self, now: SystemTime) -> Vec<(SourceKey, SourceStatus)> {
        let max_age = self.max_age();
        let map = lock(self.sources.read());
        map.iter()
            .map(|(key, s)| (key.clone(), s.served(now, max_age)))
            .collect()
    }

    /// True once every source of the first config has finished its first poll, and from then
    /// on (reloads included).
    pub fn ready(&self) -> bool {
        let sources = lock(self.sources.read());
        let done = || sources.values().all(SourceStatus::first_poll_done);
        let ready = self.ready.load(Ordering::Relaxed) || done();
        self.ready.fetch_or(ready, Ordering::Relaxed) || ready
    }

    /// The published data sections not older than `max_age`, in a stable order (by source,
    /// then section). A section's `Arc` is replaced on every publish, so pointer identity tells
    /// whether anything changed.
    pub fn data_sections(&self, now: SystemTime) -> Vec<Arc<Rendered>> {
        let max_age = self.max_age();
        let map = lock(self.sources.read());
        let sections = map.values().flat_map(|s| s.sections.values());
        sections
            .filter_map(|s| s.fresh(now, max_age).cloned())
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
        gauges(&mut b, &[], config_gauges);
        // As kube-state-metrics shows its sharding; absent when not sharded.
        if let Some((ordinal, total)) = self.shard {
            let shard_gauges = [
                ("awareness_shard_ordinal", "This replica's shard (--shard or the StatefulSet ordinal): it polls the accounts whose hash of (platform, account) falls on it", Some(f64::from(ordinal))),
                ("awareness_total_shards", "The number of shards the accounts are spread over (--total-shards)", Some(f64::from(total))),
            ];
            gauges(&mut b, &[("shard", &ordinal.to_string())], shard_gauges);
        }
        for (key, status) in lock(self.sources.read()).iter() {
            source_health(&mut b, key, status);
        }
        b.finish()
    }
}

/// Sets each gauge that has a value.
fn gauges<const N: usize>(
    b: &mut MetricsBuilder,
    labels: &[(&str, &str)],
    gauges: [(&'static str, &'static str, Option<f64>); N],
) {
    for (name, help, value) in gauges {
        if let Some(v) = value {
            b.gauge(name, help, labels, v);
        }
    }
}

/// A source's labels and one more.
fn labels<'a>(key: &'a SourceKey, name: &'a str, value: &'a str) -> [(&'a str, &'a str); 3] {
    let (platform, account) = (key.platform.as_str(), key.account.as_str());
    [("platform", platform), ("account", account), (name, value)]
}

/// The health series of one source.
fn source_health(b: &mut MetricsBuilder, key: &SourceKey, st: &SourceStatus) {
    let source = &labels(key, "", "")[..2];
    let source_gauges = [
        ("awareness_up", "1 when the last poll of the source fully succeeded (sections the tenant does not offer aside), else 0", Some(f64::from(u8::from(st.up())))),
        ("awareness_last_success_timestamp_seconds", "Unix time at the end of the last fully successful poll", st.last_success.map(secs)),
        ("awareness_poll_duration_seconds", "How long the last poll of the source took", st.last_duration.map(|d| d.as_secs_f64())),
        ("awareness_poll_interval_seconds", "The source's poll interval (after a success; failures retry sooner)", st.interval.map(|d| d.as_secs_f64())),
    ];
    gauges(b, source, source_gauges);
    for (name, s) in &st.sections {
        let section_gauges = [
            ("awareness_section_up", "1 when the last attempt at this section of the source succeeded, else 0 (down, or not offered by the tenant)", s.up().map(|up| f64::from(u8::from(up)))),
            ("awareness_section_last_success_timestamp_seconds", "Unix time at the end of the last successful poll of this section", s.last_success.map(secs)),
        ];
        gauges(b, &labels(key, "section", name), section_gauges);
    }
    let mut polls = BTreeMap::from([("success", 0), ("failure", 0), ("panic", 0)]);
    polls.extend(&st.polls);
    let stats = st.stats.snapshot();
    // Counters with one label more than the source's: its value, and the count.
    let counters = [
        ("awareness_polls", "Finished polls of the source, by result (a panic is caught and counted)", "result", &polls),
        ("awareness_api_requests", "HTTP requests made to the vendor API", "endpoint", &stats.requests),
        ("awareness_rows_skipped", "Malformed rows in vendor answers that were skipped", "endpoint", &stats.rows_skipped),
        ("awareness_label_values_folded", "Distinct vendor label values folded into __other__ by metrics.max_label_values, summed over polls", "label", &stats.labels_folded),
    ];
    for (name, help, label, counts) in counters {
        for (value, n) in counts {
            b.counter(name, help, &labels(key, label, value), *n as f64);
        }
    }
    for ((endpoint, reason), n) in &stats.failures {
        let labels = [
            source[0],
            source[1],
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
        b.gauge("awareness_source_rows", "Rows read from the vendor by the source's latest poll, all pages and sections (what its memory grows with; poll.max_rows bounds it)", source, n as f64);
    }
    b.counter("awareness_label_values_cut", "Vendor strings cut to 256 bytes (ending in …) on their way to a label value, summed over polls", source, stats.labels_cut as f64);
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Platform, SectionOutcome};
    use crate::snapshot::merge;

    impl Store {
        /// The whole `/metrics` body in OpenMetrics as a scrape would get it (the tests'
        /// oracle; scrapes are served from [`crate::scrape_body`]).
        pub(crate) fn render(&self, now: SystemTime) -> String {
            let (health, parts) = (self.render_health(), self.data_sections(now));
            merge(std::iter::once(&health).chain(parts.iter().map(|p| p.as_ref())))
        }
    }

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
                result: Err(PollError::Ended("boom".into())),
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
        assert_eq!(last.error.reason(), Some(FailureReason::Auth));
        assert_eq!(last.to_string(), "s: HTTP 401 Unauthorized");
        assert_eq!(
            status.sections["s"].last_error,
            Some(PollError::Fetch(refused))
        );

        let deadline = PollOutcome::all_failed(&["t"], PollError::Deadline(Duration::from_secs(5)));
        store.publish(&key, deadline, Duration::from_secs(5), now);
        let status = &store.statuses(now)[0].1;
        let last = status.last_error.clone().unwrap();
        assert_eq!(last.error.reason(), None);
        assert_eq!(
            last.to_string(),
            "t: poll deadline of 5s exceeded (poll.deadline)"
        );
    }
}
