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
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use crate::config::{Config, MetricsConfig, PollConfig, SourceConfig};
use crate::model::{PollError, PollOutcome, Retry, SourceKey};
use crate::shard::Shard;
use crate::sources::{self, Source, SourceContext};
use crate::state::{self, SourceState};
use crate::store::{lock, Store};

/// First delay after a failed poll; doubles per consecutive failure up to the interval.
const FAILURE_BACKOFF: Duration = Duration::from_secs(30);

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
    /// A digest of the account and what its data depends on (its vendor URL, account and auth
    /// as `describe` shows them, and the metrics settings): saved state of another is not
    /// served.
    fn identity(&self) -> String {
        use sha1::{Digest, Sha1};
        let (key, account) = (self.source.key(), self.source.account().describe());
        let text = format!("{key}\n{account}\n{:?}", self.metrics);
        format!("{:x}", Sha1::digest(text.as_bytes()))
    }
}

pub struct Poller {
    store: Arc<Store>,
    client: reqwest::Client,
    /// Each source's poller task (stopped when dropped) and what it was started with.
    running: Mutex<BTreeMap<SourceKey, (Settings, AbortOnDropHandle<()>)>>,
    failure_backoff: Duration,
    /// Process-wide request limit, replaced when `poll.max_requests_in_flight` changes.
    global: Mutex<(usize, Arc<Semaphore>)>,
    /// The accounts this replica polls (`--shard` / `--total-shards`); the others are skipped
    /// on every apply, start and reload alike.
    shard: Shard,
    /// Where the last good sections are kept across restarts (`server.state_dir`).
    state_dir: Option<std::path::PathBuf>,
}

impl Poller {
    /// A poller of the accounts of `shard` (see [`crate::shard`]) into `store`; with
    /// `state_dir`, each account's last good sections are kept there and served again after a
    /// restart (see [`crate::state`]).
    pub fn new(store: Arc<Store>, shard: Shard, state_dir: Option<std::path::PathBuf>) -> Self {
        Poller {
            store,
            client: crate::http::client(),
            running: Mutex::default(),
            failure_backoff: FAILURE_BACKOFF,
            global: Mutex::new((0, Arc::new(Semaphore::new(1)))),
            shard,
            state_dir,
        }
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
        let limit = config.poll.max_requests_in_flight;
        let global = {
            let mut g = lock(self.global.lock());
            if g.0 != limit {
                *g = (limit, Arc::new(Semaphore::new(limit.max(1))));
            }
            g.1.clone()
        };
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

        let poll = PollConfig {
            max_age: Duration::ZERO,
            interval: Duration::ZERO,
            ..config.poll.clone()
        };
        let mut running = lock(self.running.lock());
        running.retain(|key, _| {
            let keep = wanted.contains_key(key);
            if !keep {
                self.store.remove(key);
                tracing::info!(source = %key, "source removed");
            }
            keep
        });
        if let Some(dir) = &self.state_dir {
            state::prune(dir, &wanted.keys().collect::<Vec<_>>());
        }

        for (key, source_config) in wanted {
            let settings = Settings {
                source: source_config.clone(),
                interval: source_config.interval().unwrap_or(config.poll.interval),
                poll: poll.clone(),
                metrics: config.metrics.clone(),
            };
            // A new source resumes from its saved state; a changed one polls at once.
            let restore = match running.get(&key) {
                Some((running, _)) if *running == settings => continue, // keeps its token, data
                Some(_) => {
                    running.remove(&key);
                    tracing::info!(source = %key, "source changed; restarting its poller");
                    false
                }
                None => {
                    tracing::info!(source = %key, "source added");
                    true
                }
            };
            let ctx = SourceContext {
                client: self.client.clone(),
                global_permits: global.clone(),
                stats: self.store.register(&key),
                poll: config.poll.clone(),
                metrics: config.metrics.clone(),
            };
            let Some(source) = sources::build(source_config, ctx) else {
                tracing::error!(source = %key, "no registered vendor builds this source");
                continue;
            };
            let interval = settings.interval;
            let info = source_config.account().info();
            self.store
                .configure(&key, &source.sections(), interval, info);
            let schedule = Schedule {
                interval,
                deadline: config.poll.deadline.min(interval),
                failure_backoff: self.failure_backoff,
            };
            let state = self.state_dir.as_ref().map(|dir| SourceState {
                dir: dir.clone(),
                identity: settings.identity(),
                restore,
            });
            let task = tokio::spawn(run(source, self.store.clone(), schedule, state));
            let task = AbortOnDropHandle::new(task);
            running.insert(key, (settings, task));
        }
    }

    /// Stops every poller (at shutdown).
    pub fn stop(&self) {
        lock(self.running.lock()).clear();
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

/// Polls one source for ever in a task of its own. The source must be registered (and
/// configured) in `store`.
pub fn spawn(source: Arc<dyn Source>, store: Arc<Store>, schedule: Schedule) -> JoinHandle<()> {
    tokio::spawn(run(source, store, schedule, None))
}

/// Polls `source`; with `state`, its sections are restored at start (when asked) and saved
/// after each publish. Every log line of the task names the source.
#[tracing::instrument(name = "poll", skip_all, fields(platform = source.key().platform.as_str(), account = source.key().account.as_str()))]
async fn run(
    source: Arc<dyn Source>,
    store: Arc<Store>,
    schedule: Schedule,
    state: Option<SourceState>,
) {
    let restored = match &state {
        Some(s) if s.restore => s.load(&source, &store).await,
        _ => BTreeMap::new(),
    };
    // A restored section is next due one interval (jittered) after its last success, but never
    // later than one interval from now: a clock set back must not stall it.
    let (start, now) = (Instant::now(), SystemTime::now());
    // When each section is next due, and how often in a row it failed.
    let mut due: BTreeMap<&'static str, (Instant, u32)> = source
        .sections()
        .into_iter()
        .map(|name| {
            let interval = jitter(schedule.interval);
            let wait = restored.get(name).map_or(Duration::ZERO, |success| {
                let next = *success + interval;
                next.duration_since(now).unwrap_or_default().min(interval)
            });
            (name, (start + wait, 0))
        })
        .collect();
    loop {
        let Some(next) = due.values().map(|(at, _)| *at).min() else {
            return; // a source without sections has nothing to poll
        };
        tokio::time::sleep_until(next).await;
        // Sections due within a second are polled together (one token, one log line).
        let horizon = Instant::now() + Duration::from_secs(1);
        let wanted: Vec<&'static str> = due
            .iter()
            .filter(|(_, (at, _))| *at <= horizon)
            .map(|(name, _)| *name)
            .collect();
        let failed = poll_supervised(&source, &store, wanted.clone(), schedule.deadline).await;
        if let Some(state) = &state {
            state.save(&source, &store).await;
        }

        // Good sections (re)join the next regular poll; failed ones retry on their own backoff,
        // but never later than that regular poll; those the vendor said not to ask again soon
        // wait for it.
        let finished = Instant::now();
        let group = due
            .iter()
            .filter(|(name, (at, failures))| {
                !wanted.contains(name) && *failures == 0 && *at > finished
            })
            .map(|(_, (at, _))| *at)
            .min();
        let regular = group.unwrap_or_else(|| finished + jitter(schedule.interval));
        for name in &wanted {
            let Some((at, failures)) = due.get_mut(name) else {
                continue;
            };
            (*at, *failures) = match failed.get(name) {
                Some(Retry::Backoff) => {
                    let backoff = schedule
                        .failure_backoff
                        .saturating_mul(1u32 << (*failures).min(16))
                        .min(schedule.interval);
                    (
                        (finished + jitter(backoff)).min(regular),
                        failures.saturating_add(1),
                    )
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
    store: &Store,
    wanted: Vec<&'static str>,
    deadline: Duration,
) -> BTreeMap<&'static str, Retry> {
    let key = source.key();
    store.poll_started(key, SystemTime::now());
    let started = Instant::now();
    let (polled, names) = (source.clone(), wanted.clone());
    let poll = async move { polled.poll_sections(names).await };
    // Stopping this poller (reload, shutdown) or the deadline must stop the poll too: a
    // dropped JoinHandle would leave it running detached.
    let task = tokio::spawn(poll.instrument(tracing::Span::current()));
    let outcome = match tokio::time::timeout(deadline, AbortOnDropHandle::new(task)).await {
        Ok(Ok(outcome)) => Ok(outcome),
        // tokio's words: "task 7 panicked with message \"...\"".
        Ok(Err(e)) if e.is_panic() => {
            tracing::error!(panic = %e, "poll panicked; the source keeps its schedule");
            Err(PollError::Panicked(e.to_string()))
        }
        Ok(Err(e)) => Err(PollError::Ended(e.to_string())),
        Err(_) => Err(PollError::Deadline(deadline)),
    };
    let outcome = outcome.unwrap_or_else(|e| PollOutcome::all_failed(&wanted, e));
    let took = started.elapsed();
    let failed: BTreeMap<&'static str, Retry> = outcome
        .sections
        .iter()
        .filter_map(|s| Some((s.name, s.result.as_ref().err()?.retry())))
        .collect();
    let error = outcome.first_failure();
    let error = error.map_or(String::new(), |e| {
        format!("{}: {}", e.section, e.error.summary())
    });
    let kept = store.publish(key, outcome, took, SystemTime::now());
    let (took_ms, names) = (took.as_millis() as u64, failed.keys().collect::<Vec<_>>());
    if failed.is_empty() {
        tracing::info!(took_ms, sections = wanted.len(), "poll succeeded");
    } else {
        let data = if kept {
            "keeping the last good data"
        } else {
            "no data to publish yet"
        };
        tracing::warn!(took_ms, failed = ?names, error, "poll failed; {data}");
    }
    failed
}

/// Spreads polls of many accounts: ±10% of the delay.
fn jitter(d: Duration) -> Duration {
    let f = rand::thread_rng().gen_range(0.9..=1.1);
    d.mul_f64(f)
}
