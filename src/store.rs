//! The published state of every source: the last good sections of data, the poll status and the
//! request counters. Pollers write whole polls into it; scrapes and the landing page read it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use crate::model::{FailureReason, PollError, PollOutcome, SectionError, SourceInfo, SourceKey};
use crate::snapshot::{merge, MetricsBuilder, Rendered};
use crate::stats::ApiStats;

/// What the landing page and the health metrics show about a source.
#[derive(Debug, Clone, Default)]
pub struct SourceStatus {
    pub polls_ok: u64,
    pub polls_failed: u64,
    /// Polls that panicked (caught; the source kept its schedule).
    pub polls_panicked: u64,
    /// Every section's last attempt succeeded.
    pub up: bool,
    pub last_poll_end: Option<SystemTime>,
    /// End of the last poll after which every section was up.
    pub last_success: Option<SystemTime>,
    pub last_duration: Option<Duration>,
    /// Why the source is down: the failed section and its typed error.
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

impl SourceStatus {
    /// True once the first poll attempt ended, whatever its result.
    pub fn first_poll_done(&self) -> bool {
        self.polls_ok + self.polls_failed + self.polls_panicked > 0
    }
}

/// The last good data of a section.
#[derive(Debug)]
struct Section {
    data: Arc<Rendered>,
    success_at: SystemTime,
}

#[derive(Debug)]
struct Entry {
    stats: Arc<ApiStats>,
    status: SourceStatus,
    /// Health of every section, data or not.
    health: BTreeMap<&'static str, SectionStatus>,
    sections: BTreeMap<&'static str, Section>,
}

#[derive(Debug)]
pub struct Store {
    sources: RwLock<BTreeMap<SourceKey, Entry>>,
    max_age: RwLock<Duration>,
    version: String,
    /// The process polls built-in simulators (`--demo`), not vendors.
    demo: std::sync::atomic::AtomicBool,
    /// The accounts this replica polls, shown on the landing page and as series when sharded.
    shard: std::sync::OnceLock<crate::shard::Shard>,
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Store {
    pub fn new(max_age: Duration) -> Self {
        Store {
            sources: RwLock::new(BTreeMap::new()),
            max_age: RwLock::new(max_age),
            version: env!("CARGO_PKG_VERSION").to_string(),
            demo: std::sync::atomic::AtomicBool::new(false),
            shard: std::sync::OnceLock::new(),
        }
    }

    /// Records this replica's shard (set once, at start).
    pub fn set_shard(&self, shard: crate::shard::Shard) {
        let _ = self.shard.set(shard);
    }

    pub fn shard(&self) -> crate::shard::Shard {
        self.shard.get().copied().unwrap_or_default()
    }

    pub fn set_demo_mode(&self, demo: bool) {
        self.demo.store(demo, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn demo_mode(&self) -> bool {
        self.demo.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<SourceKey, Entry>> {
        self.sources.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<SourceKey, Entry>> {
        self.sources.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn max_age(&self) -> Duration {
        *self.max_age.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_max_age(&self, d: Duration) {
        *self.max_age.write().unwrap_or_else(|e| e.into_inner()) = d;
    }

    /// Registers a source (keeping its state if it exists) and returns its counters.
    pub fn register(&self, key: &SourceKey) -> Arc<ApiStats> {
        let mut map = self.write();
        let entry = map.entry(key.clone()).or_insert_with(|| Entry {
            stats: Arc::new(ApiStats::default()),
            status: SourceStatus::default(),
            health: BTreeMap::new(),
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
        let mut map = self.write();
        let Some(entry) = map.get_mut(key) else {
            return;
        };
        entry.sections.retain(|name, _| sections.contains(name));
        entry.health.retain(|name, _| sections.contains(name));
        for name in sections {
            entry.health.entry(name).or_insert_with(|| SectionStatus {
                name,
                ..SectionStatus::default()
            });
        }
        entry.status.interval = Some(interval);
        entry.status.info = info;
        entry.status.up = all_up(&entry.health);
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
            sections.iter().any(|name| {
                e.sections
                    .get(name)
                    .is_some_and(|s| !expired(s, now, max_age))
            })
        })
    }

    /// Forgets a source: its data and health series disappear from the next scrape.
    pub fn remove(&self, key: &SourceKey) {
        self.write().remove(key);
    }

    /// Publishes one finished poll (of every section or of some). Sections that succeeded
    /// replace their predecessors; failed ones keep the last good data; sections not polled keep
    /// their state. The source is up when every section's last attempt succeeded.
    pub fn publish(&self, key: &SourceKey, outcome: PollOutcome, took: Duration, now: SystemTime) {
        self.finish(key, outcome, took, now, false);
    }

    /// Publishes a poll that panicked: its sections failed, counted apart from failures.
    pub fn publish_panic(
        &self,
        key: &SourceKey,
        outcome: PollOutcome,
        took: Duration,
        now: SystemTime,
    ) {
        self.finish(key, outcome, took, now, true);
    }

    fn finish(
        &self,
        key: &SourceKey,
        outcome: PollOutcome,
        took: Duration,
        now: SystemTime,
        panicked: bool,
    ) {
        let mut map = self.write();
        let Some(entry) = map.get_mut(key) else {
            return; // removed by a reload while it polled
        };
        let ok = outcome.ok() && !panicked;
        let error = outcome.first_failure();
        for section in outcome.sections {
            let health = entry
                .health
                .entry(section.name)
                .or_insert_with(|| SectionStatus {
                    name: section.name,
                    ..SectionStatus::default()
                });
            match section.result {
                Ok(data) => {
                    health.up = Some(true);
                    health.last_success = Some(now);
                    health.last_error = None;
                    entry.sections.insert(
                        section.name,
                        Section {
                            data: Arc::new(data),
                            success_at: now,
                        },
                    );
                }
                Err(e) => {
                    health.up = Some(false);
                    health.last_error = Some(e);
                }
            }
        }
        let up = all_up(&entry.health);
        let status = &mut entry.status;
        status.up = up;
        status.polling_since = None;
        status.current_error = None;
        status.last_poll_end = Some(now);
        status.last_duration = Some(took);
        if panicked {
            status.polls_panicked += 1;
        } else if ok {
            status.polls_ok += 1;
        } else {
            status.polls_failed += 1;
        }
        if up {
            status.last_success = Some(now);
            status.last_error = None;
        } else {
            // The error of this poll, else that of a section still down from an earlier one.
            status.last_error = error.or_else(|| {
                entry
                    .health
                    .values()
                    .find_map(|h| match (&h.up, &h.last_error) {
                        (Some(false), Some(e)) => Some(SectionError {
                            section: h.name,
                            error: e.clone(),
                        }),
                        _ => None,
                    })
            });
        }
    }

    /// Drops sections older than `max_age` so their memory is freed, not just hidden.
    pub fn expire(&self, now: SystemTime) {
        let max_age = self.max_age();
        for entry in self.write().values_mut() {
            entry.sections.retain(|_, s| !expired(s, now, max_age));
        }
    }

    /// Status of every source, with the number of data series currently published.
    pub fn statuses(&self, now: SystemTime) -> Vec<(SourceKey, SourceStatus)> {
        let max_age = self.max_age();
        self.read()
            .iter()
            .map(|(k, e)| {
                let mut s = e.status.clone();
                s.sections = e.health.values().cloned().collect();
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
                    .filter(|sec| !expired(sec, now, max_age))
                    .map(|sec| sec.data.series())
                    .sum();
                (k.clone(), s)
            })
            .collect()
    }

    /// True once every registered source has finished its first poll.
    pub fn ready(&self) -> bool {
        self.read().values().all(|e| e.status.first_poll_done())
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
        let mut parts: Vec<Arc<Rendered>> = Vec::with_capacity(map.len() * 6);
        for entry in map.values() {
            for section in entry.sections.values() {
                if !expired(section, now, max_age) {
                    parts.push(section.data.clone());
                }
            }
        }
        parts
    }

    /// The health series (build info, per-source status and request counters) as of now.
    pub fn render_health(&self) -> Rendered {
        let map = self.read();
        self.health(&map)
    }

    fn health(&self, map: &BTreeMap<SourceKey, Entry>) -> Rendered {
        let mut b = MetricsBuilder::new();
        b.gauge(
            "awareness_build_info",
            "A constant 1, labelled with the exporter's version",
            &[("version", &self.version)],
            1.0,
        );
        // As kube-state-metrics shows its sharding; absent when not sharded.
        let shard = self.shard();
        if shard.is_sharded() {
            let ordinal = shard.ordinal().to_string();
            let labels = [("shard", ordinal.as_str())];
            b.gauge(
                "awareness_shard_ordinal",
                "This replica's shard (--shard or the StatefulSet ordinal): it polls the accounts \
                 whose hash of (platform, account) falls on it",
                &labels,
                f64::from(shard.ordinal()),
            );
            b.gauge(
                "awareness_total_shards",
                "The number of shards the accounts are spread over (--total-shards)",
                &labels,
                f64::from(shard.total()),
            );
        }
        for (key, entry) in map {
            let platform = key.platform.as_str();
            let account = key.account.as_str();
            let labels = [("platform", platform), ("account", account)];
            let st = &entry.status;
            b.gauge(
                "awareness_up",
                "1 when the last poll of the source fully succeeded, else 0",
                &labels,
                if st.up { 1.0 } else { 0.0 },
            );
            if let Some(t) = st.last_success {
                b.gauge(
                    "awareness_last_success_timestamp_seconds",
                    "Unix time at the end of the last fully successful poll",
                    &labels,
                    secs(t),
                );
            }
            if let Some(d) = st.last_duration {
                b.gauge(
                    "awareness_poll_duration_seconds",
                    "How long the last poll of the source took",
                    &labels,
                    d.as_secs_f64(),
                );
            }
            if let Some(d) = st.interval {
                b.gauge(
                    "awareness_poll_interval_seconds",
                    "The source's poll interval (after a success; failures retry sooner)",
                    &labels,
                    d.as_secs_f64(),
                );
            }
            for (name, h) in &entry.health {
                let labels = [
                    ("platform", platform),
                    ("account", account),
                    ("section", *name),
                ];
                if let Some(up) = h.up {
                    b.gauge(
                        "awareness_section_up",
                        "1 when the last attempt at this section of the source succeeded, else 0",
                        &labels,
                        if up { 1.0 } else { 0.0 },
                    );
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
                b.counter(
                    "awareness_polls",
                    "Finished polls of the source, by result (a panic is caught and counted)",
                    &[
                        ("platform", platform),
                        ("account", account),
                        ("result", result),
                    ],
                    n as f64,
                );
            }
            let stats = entry.stats.snapshot();
            for (endpoint, n) in &stats.requests {
                b.counter(
                    "awareness_api_requests",
                    "HTTP requests made to the vendor API",
                    &[
                        ("platform", platform),
                        ("account", account),
                        ("endpoint", endpoint),
                    ],
                    *n as f64,
                );
            }
            for ((endpoint, reason), n) in &stats.failures {
                b.counter(
                    "awareness_api_request_failures",
                    "Failed HTTP requests to the vendor API, by reason",
                    &[
                        ("platform", platform),
                        ("account", account),
                        ("endpoint", endpoint),
                        ("reason", reason.as_str()),
                    ],
                    *n as f64,
                );
            }
            for (endpoint, n) in &stats.rows_skipped {
                b.counter(
                    "awareness_rows_skipped",
                    "Malformed rows in vendor answers that were skipped",
                    &[
                        ("platform", platform),
                        ("account", account),
                        ("endpoint", endpoint),
                    ],
                    *n as f64,
                );
            }
            if let Some(n) = stats.rows_read {
                b.gauge(
                    "awareness_source_rows",
                    "Rows read from the vendor by the source's latest poll, all pages and sections \
                     (what its memory grows with; poll.max_rows bounds it)",
                    &[("platform", platform), ("account", account)],
                    n as f64,
                );
            }
            for (label, n) in &stats.labels_folded {
                b.counter(
                    "awareness_label_values_folded",
                    "Distinct vendor label values folded into __other__ by \
                     metrics.max_label_values, summed over polls",
                    &[
                        ("platform", platform),
                        ("account", account),
                        ("label", label),
                    ],
                    *n as f64,
                );
            }
        }
        b.finish()
    }
}

fn all_up(health: &BTreeMap<&'static str, SectionStatus>) -> bool {
    !health.is_empty() && health.values().all(|h| h.up == Some(true))
}

fn expired(section: &Section, now: SystemTime, max_age: Duration) -> bool {
    now.duration_since(section.success_at)
        .map(|age| age > max_age)
        .unwrap_or(false)
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
