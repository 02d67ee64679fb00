//! The published state of every source: the last good sections of data, the poll status and the
//! request counters. Pollers write whole polls into it; scrapes and the landing page read it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use crate::snapshot::{merge, MetricsBuilder, Rendered, SourceKey};
use crate::stats::ApiStats;

/// The result of one section (an endpoint group) of a poll.
#[derive(Debug)]
pub struct SectionOutcome {
    pub name: &'static str,
    pub result: Result<Rendered, String>,
}

/// Everything one poll of one source produced. A section is published whole or not at all.
#[derive(Debug, Default)]
pub struct PollOutcome {
    pub sections: Vec<SectionOutcome>,
}

impl PollOutcome {
    pub fn ok(&self) -> bool {
        self.sections.iter().all(|s| s.result.is_ok())
    }
    pub fn first_error(&self) -> Option<String> {
        self.sections.iter().find_map(|s| match &s.result {
            Err(e) => Some(format!("{}: {e}", s.name)),
            Ok(_) => None,
        })
    }
}

/// What the landing page and the health metrics show about a source.
#[derive(Debug, Clone, Default)]
pub struct SourceStatus {
    pub polls_ok: u64,
    pub polls_failed: u64,
    pub up: bool,
    pub last_poll_end: Option<SystemTime>,
    pub last_success: Option<SystemTime>,
    pub last_duration: Option<Duration>,
    pub last_error: Option<String>,
    /// Data series currently published (after `max_age`).
    pub series: usize,
}

impl SourceStatus {
    pub fn first_poll_done(&self) -> bool {
        self.polls_ok + self.polls_failed > 0
    }
}

#[derive(Debug)]
struct Section {
    data: Arc<Rendered>,
    success_at: SystemTime,
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
    version: String,
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
        }
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
            sections: BTreeMap::new(),
        });
        entry.stats.clone()
    }

    /// Forgets a source: its data and health series disappear from the next scrape.
    pub fn remove(&self, key: &SourceKey) {
        self.write().remove(key);
    }

    /// Publishes one finished poll. Sections that succeeded replace their predecessors; failed
    /// ones keep the last good data; sections no longer produced at all are dropped.
    pub fn publish(&self, key: &SourceKey, outcome: PollOutcome, took: Duration, now: SystemTime) {
        let mut map = self.write();
        let Some(entry) = map.get_mut(key) else {
            return; // removed by a reload while it polled
        };
        let ok = outcome.ok();
        let error = outcome.first_error();
        let names: Vec<&'static str> = outcome.sections.iter().map(|s| s.name).collect();
        entry.sections.retain(|name, _| names.contains(name));
        for section in outcome.sections {
            if let Ok(data) = section.result {
                entry.sections.insert(
                    section.name,
                    Section {
                        data: Arc::new(data),
                        success_at: now,
                    },
                );
            }
        }
        let status = &mut entry.status;
        status.up = ok;
        status.last_poll_end = Some(now);
        status.last_duration = Some(took);
        if ok {
            status.polls_ok += 1;
            status.last_success = Some(now);
            status.last_error = None;
        } else {
            status.polls_failed += 1;
            status.last_error = error;
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
            for (result, n) in [("success", st.polls_ok), ("failure", st.polls_failed)] {
                b.counter(
                    "awareness_polls",
                    "Finished polls of the source, by result",
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
        }
        b.finish()
    }
}

fn expired(section: &Section, now: SystemTime, max_age: Duration) -> bool {
    now.duration_since(section.success_at)
        .map(|age| age > max_age)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Platform;

    fn data(v: f64) -> Rendered {
        let mut b = MetricsBuilder::new();
        b.gauge("awareness_x", "X", &[("account", "a")], v);
        b.finish()
    }

    #[test]
    fn failed_section_keeps_last_good_data_until_max_age() {
        let store = Store::new(Duration::from_secs(60));
        let key = SourceKey::new(Platform::CyberPilot, "a");
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
}
