//! Per-source request accounting: what the exporter asked of a vendor and what went wrong.
//!
//! Kept per source (not in a global registry) so removing a source on reload removes its series.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::model::FailureReason;

/// Monotonic counters of one source, by endpoint.
#[derive(Debug, Default)]
pub struct ApiStats {
    inner: Mutex<StatsInner>,
}

#[derive(Debug, Default, Clone)]
pub struct StatsInner {
    pub requests: BTreeMap<&'static str, u64>,
    pub failures: BTreeMap<(&'static str, FailureReason), u64>,
    pub rows_skipped: BTreeMap<&'static str, u64>,
    /// Distinct label values folded into `__other__`, by label (`metrics.max_label_values`).
    pub labels_folded: BTreeMap<&'static str, u64>,
    /// Vendor strings cut to `lenient::MAX_LABEL_BYTES` on their way to a label, over polls.
    pub labels_cut: u64,
    /// Rows read from the vendor by the latest poll (`poll.max_rows` bounds it).
    pub rows_read: Option<u64>,
    /// The latest failed request (the landing page shows it while a poll still runs).
    pub last_failure: Option<(&'static str, FailureReason, std::time::SystemTime)>,
}

impl ApiStats {
    fn with<R>(&self, f: impl FnOnce(&mut StatsInner) -> R) -> R {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// The endpoints known up front: their request and skipped-row counters exist at 0 from
    /// the start (a failure's counter appears with its reason).
    pub fn expect(&self, endpoints: &[&'static str]) {
        self.with(|s| {
            for e in endpoints {
                s.requests.entry(e).or_default();
                s.rows_skipped.entry(e).or_default();
            }
        });
    }

    pub fn request(&self, endpoint: &'static str) {
        self.with(|s| *s.requests.entry(endpoint).or_default() += 1);
    }

    pub fn failure(&self, endpoint: &'static str, reason: FailureReason) {
        self.with(|s| {
            *s.failures.entry((endpoint, reason)).or_default() += 1;
            s.last_failure = Some((endpoint, reason, std::time::SystemTime::now()));
        });
    }

    pub fn rows_skipped(&self, endpoint: &'static str, n: u64) {
        self.with(|s| *s.rows_skipped.entry(endpoint).or_default() += n);
    }

    pub fn labels_folded(&self, label: &'static str, n: u64) {
        self.with(|s| *s.labels_folded.entry(label).or_default() += n);
    }

    pub fn labels_cut(&self, n: u64) {
        self.with(|s| s.labels_cut += n);
    }

    pub fn rows_read(&self, n: u64) {
        self.with(|s| s.rows_read = Some(n));
    }

    pub fn snapshot(&self) -> StatsInner {
        self.with(|s| s.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What unit tests ask of the counters (the exporter itself only renders them).
    impl ApiStats {
        pub(crate) fn total_requests(&self) -> u64 {
            self.with(|s| s.requests.values().sum())
        }

        pub(crate) fn failures(&self, reason: FailureReason) -> u64 {
            let failures = self.snapshot().failures.into_iter();
            failures
                .filter(|((_, r), _)| *r == reason)
                .map(|(_, n)| n)
                .sum()
        }
    }
}
