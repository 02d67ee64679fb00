//! Schedules the sources: one task per account, an immediate first poll, then the interval with
//! jitter; after a failure, retries sooner with backoff (never later than the interval). Each
//! finished poll is published whole into the store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;
use tokio::task::JoinHandle;

use crate::config::{Config, MetricsConfig, PollConfig, SourceConfig};
use crate::snapshot::SourceKey;
use crate::sources::{self, Source, SourceContext};
use crate::store::Store;

/// First delay after a failed poll; doubles per consecutive failure up to the interval.
const FAILURE_BACKOFF: Duration = Duration::from_secs(30);

struct Running {
    config: SourceConfig,
    poll: PollConfig,
    metrics: MetricsConfig,
    handle: JoinHandle<()>,
}

pub struct Poller {
    store: Arc<Store>,
    client: reqwest::Client,
    running: Mutex<BTreeMap<SourceKey, Running>>,
    failure_backoff: Duration,
    /// Process-wide request limit, replaced when `poll.max_requests_in_flight` changes.
    global: Mutex<(usize, Arc<tokio::sync::Semaphore>)>,
}

impl Poller {
    pub fn new(store: Arc<Store>, client: reqwest::Client) -> Self {
        Poller {
            store,
            client,
            running: Mutex::new(BTreeMap::new()),
            failure_backoff: FAILURE_BACKOFF,
            global: Mutex::new((0, Arc::new(tokio::sync::Semaphore::new(1)))),
        }
    }

    /// Changes the first retry delay after a failed poll (tests use short ones).
    pub fn with_failure_backoff(mut self, d: Duration) -> Self {
        self.failure_backoff = d;
        self
    }

    /// Brings the running pollers in line with `config`: starts new accounts, restarts changed
    /// ones (keeping their published data), stops removed ones and drops their series.
    pub fn apply(&self, config: &Config) {
        self.store.set_max_age(config.poll.max_age);
        let global = {
            let mut g = self.global.lock().unwrap_or_else(|e| e.into_inner());
            if g.0 != config.poll.max_requests_in_flight {
                *g = (
                    config.poll.max_requests_in_flight,
                    Arc::new(tokio::sync::Semaphore::new(
                        config.poll.max_requests_in_flight.max(1),
                    )),
                );
            }
            g.1.clone()
        };
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let wanted: BTreeMap<SourceKey, &SourceConfig> =
            config.sources.iter().map(|s| (s.key(), s)).collect();

        let removed: Vec<SourceKey> = running
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in removed {
            if let Some(r) = running.remove(&key) {
                r.handle.abort();
            }
            self.store.remove(&key);
            tracing::info!(source = %key, "source removed");
        }

        for (key, source_config) in wanted {
            if let Some(r) = running.get(&key) {
                if r.config == *source_config
                    && r.poll == config.poll
                    && r.metrics == config.metrics
                {
                    continue;
                }
                r.handle.abort();
                tracing::info!(source = %key, "source changed; restarting its poller");
            } else {
                tracing::info!(source = %key, "source added");
            }
            let stats = self.store.register(&key);
            let ctx = SourceContext {
                client: self.client.clone(),
                global_permits: global.clone(),
                stats,
                poll: config.poll.clone(),
                metrics: config.metrics.clone(),
            };
            let source = sources::build(source_config, ctx);
            let interval = source_config.interval().unwrap_or(config.poll.interval);
            let handle = tokio::spawn(run(
                source,
                self.store.clone(),
                interval,
                self.failure_backoff,
            ));
            running.insert(
                key,
                Running {
                    config: source_config.clone(),
                    poll: config.poll.clone(),
                    metrics: config.metrics.clone(),
                    handle,
                },
            );
        }
    }

    /// Stops every poller (at shutdown).
    pub fn stop(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for (_, r) in std::mem::take(&mut *running) {
            r.handle.abort();
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls one source for ever.
async fn run(
    source: Arc<dyn Source>,
    store: Arc<Store>,
    interval: Duration,
    failure_backoff: Duration,
) {
    let mut failures = 0u32;
    loop {
        let started = Instant::now();
        let outcome = source.poll().await;
        let took = started.elapsed();
        let ok = outcome.ok();
        if ok {
            tracing::info!(source = %source.key(), took_ms = took.as_millis() as u64, "poll succeeded");
        } else {
            tracing::warn!(
                source = %source.key(),
                took_ms = took.as_millis() as u64,
                error = outcome.first_error().unwrap_or_default(),
                "poll failed; keeping the last good data"
            );
        }
        let now = SystemTime::now();
        store.publish(source.key(), outcome, took, now);
        store.expire(now);

        let wait = if ok {
            failures = 0;
            jitter(interval)
        } else {
            failures = failures.saturating_add(1);
            let backoff = failure_backoff.saturating_mul(1u32 << (failures - 1).min(16));
            jitter(backoff.min(interval))
        };
        tokio::time::sleep(wait).await;
    }
}

/// Spreads polls of many accounts: ±10% of the delay.
fn jitter(d: Duration) -> Duration {
    let f = rand::thread_rng().gen_range(0.9..=1.1);
    d.mul_f64(f)
}
