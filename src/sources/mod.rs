//! Sources: one per configured account, each behind the same small interface.

pub mod cyberpilot;
pub mod lenient;
pub mod mimecast;
pub mod token;

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::config::{MetricsConfig, PollConfig, SourceConfig};
use crate::http::{Transport, TransportSettings};
use crate::snapshot::SourceKey;
use crate::stats::ApiStats;
use crate::store::PollOutcome;

/// A vendor account that can be polled. A poll returns every section it covers, each either
/// complete or failed; it never returns half a section.
pub trait Source: Send + Sync {
    fn key(&self) -> &SourceKey;
    fn poll(&self) -> BoxFuture<'_, PollOutcome>;
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

impl SourceContext {
    /// A context with its own global limit (tests and benchmarks polling one source).
    pub fn standalone(
        client: reqwest::Client,
        stats: Arc<ApiStats>,
        poll: PollConfig,
        metrics: MetricsConfig,
    ) -> Self {
        let global_permits = Arc::new(tokio::sync::Semaphore::new(
            poll.max_requests_in_flight.max(1),
        ));
        SourceContext {
            client,
            global_permits,
            stats,
            poll,
            metrics,
        }
    }

    pub fn transport(&self) -> Transport {
        Transport::new(
            self.client.clone(),
            self.stats.clone(),
            TransportSettings::from(&self.poll),
            self.global_permits.clone(),
        )
    }
}

/// Builds the source for one configured account.
pub fn build(config: &SourceConfig, ctx: SourceContext) -> Arc<dyn Source> {
    match config {
        SourceConfig::CyberPilot(c) => Arc::new(cyberpilot::CyberPilotSource::new(c.clone(), ctx)),
        SourceConfig::Mimecast(c) => Arc::new(mimecast::MimecastSource::new(c.clone(), ctx)),
    }
}

/// Keeps at most `max` per-user rows (sorted by email for stability) and warns when it cut.
pub fn cap_users<T>(key: &SourceKey, mut rows: Vec<(String, T)>, max: usize) -> Vec<(String, T)> {
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
