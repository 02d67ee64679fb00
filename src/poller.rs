//! Schedules the sources: one task per account, an immediate first poll (or, with sections
//! restored from the state dir, the next one due after their last success), then the interval
//! with jitter. Sections are scheduled on their own: a failed section is retried sooner, with
//! backoff (never later than the interval), without re-polling the good ones; a section the
//! vendor said not to ask again soon (not offered, quota spent) waits for the next interval.
//! Every poll is supervised: it runs in its own task under `poll.deadline`, and a panic is
//! caught, logged and counted while the source keeps its schedule.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::{Config, MetricsConfig, PollConfig, SourceConfig};
use crate::model::{PollError, PollOutcome, Retry, SourceKey};
use crate::shard::Shard;
use crate::sources::{self, Source, SourceContext};
use crate::state::{SourceState, StateDir};
use crate::store::Store;

/// First delay after a failed poll; doubles per consecutive failure up to the interval.
const FAILURE_BACKOFF: Duration = Duration::from_secs(30);

struct Running {
    settings: Settings,
    handle: JoinHandle<()>,
}

/// Everything a source's poller depends on. A reload restarts a source only when these
/// changed: `poll.max_age` (applied by the store) and another source's `interval` do not.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    source: SourceConfig,
    interval: Duration,
    /// `poll` with the keys that do not concern the source's task (`max_age`, `interval`)
    /// neutralised.
    poll: PollConfig,
    metrics: MetricsConfig,
}

impl Settings {
    /// A digest of what the account's data depends on (its vendor URL, account and auth as
    /// `describe` shows them, and the metrics settings): saved state of another is not served.
    fn identity(&self) -> String {
        use sha1::{Digest, Sha1};
        let text = format!("{}\n{:?}", self.source.account().describe(), self.metrics);
        format!("{:x}", Sha1::digest(text.as_bytes()))
    }

    fn of(source: &SourceConfig, config: &Config) -> Settings {
        let interval = source.interval().unwrap_or(config.poll.interval);
        let poll = PollConfig {
            max_age: Duration::ZERO,
            interval: Duration::ZERO,
            ..config.poll.clone()
        };
        Settings {
            source: source.clone(),
            interval,
            poll,
            metrics: config.metrics.clone(),
        }
    }
}

pub struct Poller {
    store: Arc<Store>,
    client: reqwest::Client,
    running: Mutex<BTreeMap<SourceKey, Running>>,
    failure_backoff: Duration,
    /// Process-wide request limit, replaced when `poll.max_requests_in_flight` changes.
    global: Mutex<(usize, Arc<tokio::sync::Semaphore>)>,
    /// The accounts this replica polls (`--shard` / `--total-shards`); the others are skipped
    /// on every apply, start and reload alike.
    shard: Shard,
    /// Where the last good sections are kept across restarts (`server.state_dir`).
    state: Option<Arc<StateDir>>,
}

impl Poller {
    pub fn new(store: Arc<Store>, client: reqwest::Client) -> Self {
        Poller {
            store,
            client,
            running: Mutex::new(BTreeMap::new()),
            failure_backoff: FAILURE_BACKOFF,
            global: Mutex::new((0, Arc::new(tokio::sync::Semaphore::new(1)))),
            shard: Shard::ALL,
            state: None,
        }
    }

    /// Polls only the accounts of `shard` (see [`crate::shard`]).
    pub fn with_shard(mut self, shard: Shard) -> Self {
        self.shard = shard;
        self
    }

    /// Keeps each account's last good sections in `dir` and serves them again after a
    /// restart (see [`crate::state`]).
    pub fn with_state_dir(mut self, dir: Option<std::path::PathBuf>) -> Self {
        self.state = dir.map(|d| Arc::new(StateDir::new(d)));
        self
    }

    /// Changes the first retry delay after a failed poll (tests use short ones).
    pub fn with_failure_backoff(mut self, d: Duration) -> Self {
        self.failure_backoff = d;
        self
    }

    /// Brings the running pollers in line with `config` as a diff: unchanged sources keep
    /// running (tokens, schedules, data), changed ones are restarted (keeping their published
    /// data), new ones started, removed ones stopped and their series dropped.
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
        let wanted: BTreeMap<SourceKey, &SourceConfig> = config
            .sources
            .iter()
            .map(|s| (s.key(), s))
            .filter(|(key, _)| self.shard.owns(key))
            .collect();
        if self.shard.is_sharded() {
            tracing::info!(
                shard = self.shard.ordinal(),
                total_shards = self.shard.total(),
                accounts = wanted.len(),
                configured = config.sources.len(),
                "polling the accounts of this shard"
            );
        }

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
            if let Some(state) = &self.state {
                state.remove(&key);
            }
            tracing::info!(source = %key, "source removed");
        }
        if let (Some(state), true) = (&self.state, running.is_empty()) {
            let keep: Vec<&SourceKey> = wanted.keys().collect();
            state.prune(&keep);
        }

        for (key, source_config) in wanted {
            let settings = Settings::of(source_config, config);
            // A new source resumes from its saved state; a changed one polls at once.
            let restore = if let Some(r) = running.get(&key) {
                if r.settings == settings {
                    continue; // unchanged: keeps its token, its schedule and its data
                }
                r.handle.abort();
                tracing::info!(source = %key, "source changed; restarting its poller");
                false
            } else {
                tracing::info!(source = %key, "source added");
                true
            };
            let stats = self.store.register(&key);
            let ctx = SourceContext {
                client: self.client.clone(),
                global_permits: global.clone(),
                stats,
                poll: config.poll.clone(),
                metrics: config.metrics.clone(),
            };
            let Some(source) = sources::build(source_config, ctx) else {
                tracing::error!(source = %key, "no registered vendor builds this source");
                continue;
            };
            let interval = settings.interval;
            self.store.configure(
                &key,
                &source.sections(),
                interval,
                source_config.account().info(),
            );
            let schedule = Schedule {
                interval,
                deadline: config.poll.deadline.min(interval),
                failure_backoff: self.failure_backoff,
            };
            let state = self.state.as_ref().map(|dir| SourceState {
                dir: dir.clone(),
                identity: settings.identity(),
                restore,
            });
            let handle = tokio::spawn(run(source, self.store.clone(), schedule, state));
            running.insert(key, Running { settings, handle });
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

/// How one source is polled.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub interval: Duration,
    /// Longest a whole poll may run; never more than the interval.
    pub deadline: Duration,
    pub failure_backoff: Duration,
}

/// When a section is next due, and how often in a row it failed.
#[derive(Debug, Clone, Copy)]
struct Due {
    at: Instant,
    failures: u32,
}

/// Polls one source for ever in a task of its own. The source must be registered (and
/// configured) in `store`.
pub fn spawn(source: Arc<dyn Source>, store: Arc<Store>, schedule: Schedule) -> JoinHandle<()> {
    tokio::spawn(run(source, store, schedule, None))
}

/// Polls one source for ever; with `state`, its sections are restored at start (when asked)
/// and saved after each publish.
async fn run(
    source: Arc<dyn Source>,
    store: Arc<Store>,
    schedule: Schedule,
    state: Option<SourceState>,
) {
    let key = source.key().clone();
    let span = tracing::info_span!(
        "poll",
        platform = key.platform.as_str(),
        account = key.account.as_str()
    );
    let restored = match &state {
        Some(s) if s.restore => s.load(&source, &store).instrument(span.clone()).await,
        _ => BTreeMap::new(),
    };
    // A restored section is next due one interval (jittered) after its last success.
    let (start, now) = (Instant::now(), SystemTime::now());
    let mut due: BTreeMap<&'static str, Due> = source
        .sections()
        .into_iter()
        .map(|name| {
            let at = restored.get(name).map_or(start, |success: &SystemTime| {
                // Never later than one interval from now: a clock set back must not stall it.
                let interval = jitter(schedule.interval);
                start
                    + (*success + interval)
                        .duration_since(now)
                        .unwrap_or_default()
                        .min(interval)
            });
            (name, Due { at, failures: 0 })
        })
        .collect();
    loop {
        let Some(next) = due.values().map(|d| d.at).min() else {
            return; // a source without sections has nothing to poll
        };
        tokio::time::sleep_until(next).await;
        // Sections due within a second are polled together (one token, one log line).
        let horizon = Instant::now() + Duration::from_secs(1);
        let wanted: Vec<&'static str> = due
            .iter()
            .filter(|(_, d)| d.at <= horizon)
            .map(|(name, _)| *name)
            .collect();
        let failed = poll_supervised(&source, &store, wanted.clone(), schedule.deadline)
            .instrument(span.clone())
            .await;
        if let Some(state) = &state {
            state.save(&source, &store).instrument(span.clone()).await;
        }

        // Good sections (re)join the next regular poll; failed ones retry on their own backoff,
        // but never later than that regular poll; those the vendor said not to ask again soon
        // wait for it.
        let finished = Instant::now();
        let group = due
            .iter()
            .filter(|(name, d)| !wanted.contains(name) && d.failures == 0 && d.at > finished)
            .map(|(_, d)| d.at)
            .min();
        let any_ok = wanted.iter().any(|n| !failed.contains_key(n));
        let regular = group.or(any_ok.then(|| finished + jitter(schedule.interval)));
        let regular = regular.unwrap_or_else(|| finished + jitter(schedule.interval));
        for name in &wanted {
            let Some(d) = due.get_mut(name) else { continue };
            (d.at, d.failures) = match failed.get(name) {
                Some(Retry::Backoff) => {
                    let failures = d.failures.saturating_add(1);
                    let backoff = schedule
                        .failure_backoff
                        .saturating_mul(1u32 << (failures - 1).min(16))
                        .min(schedule.interval);
                    ((finished + jitter(backoff)).min(regular), failures)
                }
                _ => (regular, 0),
            };
        }
    }
}

/// Runs one poll in its own task, under the deadline, and publishes its outcome. A panic or
/// the deadline fails every section polled, with a reason that says which. Returns the failed
/// sections and when each may be tried again.
async fn poll_supervised(
    source: &Arc<dyn Source>,
    store: &Arc<Store>,
    wanted: Vec<&'static str>,
    deadline: Duration,
) -> BTreeMap<&'static str, Retry> {
    let key = source.key().clone();
    store.poll_started(&key, SystemTime::now());
    let started = Instant::now();
    let task = {
        let source = source.clone();
        let wanted = wanted.clone();
        tokio::spawn(
            async move { source.poll_sections(wanted).await }.instrument(tracing::Span::current()),
        )
    };
    // Stopping this poller (reload, shutdown) or the deadline must stop the poll too: a
    // dropped JoinHandle would leave it running detached.
    let _abort = AbortOnDrop(task.abort_handle());
    let error = match tokio::time::timeout(deadline, task).await {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(e)) if e.is_panic() => {
            let message = panic_message(e.into_panic());
            tracing::error!(panic = %message, "poll panicked; the source keeps its schedule");
            Err(PollError::Panicked(message))
        }
        Ok(Err(e)) => Err(PollError::Ended(e.to_string())),
        Err(_) => Err(PollError::Deadline(deadline)),
    };
    let outcome = error.unwrap_or_else(|e| PollOutcome::all_failed(&wanted, e));
    let took = started.elapsed();
    let failed: BTreeMap<&'static str, Retry> = outcome
        .sections
        .iter()
        .filter_map(|s| Some((s.name, s.result.as_ref().err()?.retry())))
        .collect();
    let now = SystemTime::now();
    let took_ms = took.as_millis() as u64;
    if failed.is_empty() {
        tracing::info!(took_ms, sections = wanted.len(), "poll succeeded");
    } else {
        let names: Vec<&str> = failed.keys().copied().collect();
        let kept = store.has_data(&key, &names, now);
        let error = outcome
            .first_failure()
            .map(|e| format!("{}: {}", e.section, e.error.summary()));
        let error = error.unwrap_or_default();
        if kept {
            tracing::warn!(took_ms, failed = ?names, error, "poll failed; keeping the last good data");
        } else {
            tracing::warn!(took_ms, failed = ?names, error, "poll failed; no data to publish yet");
        }
    }
    store.publish(&key, outcome, took, now);
    store.expire(now);
    failed
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The text of a panic payload (`panic!` gives a `&str` or a `String`).
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// Spreads polls of many accounts: ±10% of the delay.
fn jitter(d: Duration) -> Duration {
    let f = rand::thread_rng().gen_range(0.9..=1.1);
    d.mul_f64(f)
}
