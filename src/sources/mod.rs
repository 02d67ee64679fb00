//! Sources: one per configured account, each behind the same small interface. Vendors are
//! registered in [`registry`]; nothing else here names one.

pub(crate) mod aggregate;
pub(crate) mod cyberpilot;
pub(crate) mod decode;
pub(crate) mod defender;
pub(crate) mod knowbe4;
pub(crate) mod lenient;
pub(crate) mod mimecast;
pub(crate) mod order_free_sum;
pub(crate) mod paging;
pub(crate) mod proofpoint;
pub mod registry;
pub mod testing;
pub(crate) mod token;

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::config::{MetricsConfig, PollConfig, SourceConfig};
use crate::model::{PollOutcome, SourceKey};
use crate::stats::ApiStats;

/// A vendor account that can be polled. A poll returns the sections it was asked for, each
/// either complete or failed; it never returns half a section.
pub trait Source: Send + Sync {
    fn key(&self) -> &SourceKey;
    /// Every section a full poll produces, in a stable order.
    fn sections(&self) -> Vec<&'static str>;
    /// Polls only the sections in `wanted` (names from [`sections`](Self::sections)), so a
    /// failed section can be retried without re-polling the good ones. Credentials are
    /// acquired once per poll and shared by its sections.
    fn poll_sections(&self, wanted: Vec<&'static str>) -> BoxFuture<'_, PollOutcome>;
    /// Polls every section.
    fn poll(&self) -> BoxFuture<'_, PollOutcome> {
        self.poll_sections(self.sections())
    }
    /// The vendor's request ledger (a daily quota count) in a plain form the state dir keeps
    /// across restarts; `None` for vendors that count nothing themselves.
    fn ledger(&self) -> Option<serde_json::Value> {
        None
    }
    /// Continues a ledger saved by [`ledger`](Self::ledger) before a restart.
    fn restore_ledger(&self, _ledger: serde_json::Value) {}
}

/// The sections a poll wants, for a vendor whose sections are its configured endpoint groups
/// (Mimecast, KnowBe4): those of `configured` that `wanted` names, in configured order, with
/// their names. Both are empty when it wants none of them.
pub(crate) fn wanted_sections<E: Copy>(
    configured: &[E],
    wanted: &[&str],
    name: fn(E) -> &'static str,
) -> (Vec<E>, Vec<&'static str>) {
    configured
        .iter()
        .copied()
        .filter(|e| wanted.contains(&name(*e)))
        .map(|e| (e, name(e)))
        .unzip()
}

/// A URL fit to show: without user, password, query or fragment.
pub(crate) fn public_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => "(invalid URL)".to_string(),
    }
}

/// What every source needs besides its own config.
#[derive(Clone)]
pub struct SourceContext {
    pub client: reqwest::Client,
    /// The process-wide limit of requests in flight (`poll.max_requests_in_flight`).
    pub global_permits: Arc<tokio::sync::Semaphore>,
    pub stats: Arc<ApiStats>,
    pub poll: PollConfig,
    pub metrics: MetricsConfig,
}

/// Builds the source for one configured account (`None` for a platform no vendor registered).
pub fn build(config: &SourceConfig, ctx: SourceContext) -> Option<Arc<dyn Source>> {
    registry::vendor(config.platform())?.build(config, ctx)
}

/// Keeps at most `max` per-user rows (sorted by email for stability) and warns when it cut.
pub(crate) fn cap_users<T>(
    key: &SourceKey,
    mut rows: Vec<(String, T)>,
    max: usize,
) -> Vec<(String, T)> {
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    if rows.len() > max {
        tracing::warn!(
            source = %key,
            users = rows.len(),
            max_users = max,
            "per-user series capped by metrics.max_users"
        );
        rows.truncate(max);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_sections_keep_the_configured_order() {
        #[derive(Debug, Clone, Copy, PartialEq)]
        enum E {
            A,
            B,
            C,
        }
        fn name(e: E) -> &'static str {
            match e {
                E::A => "a",
                E::B => "b",
                E::C => "c",
            }
        }
        let all = [E::A, E::B, E::C];
        assert_eq!(
            wanted_sections(&all, &["c", "a", "unknown"], name),
            (vec![E::A, E::C], vec!["a", "c"])
        );
        assert_eq!(wanted_sections(&all, &["x"], name), (vec![], vec![]));
        assert_eq!(
            wanted_sections(&[E::B], &["a", "b", "c"], name),
            (vec![E::B], vec!["b"])
        );
    }
}
