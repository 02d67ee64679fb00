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
pub(crate) struct Schedule {
    interval: Duration,
    /// Longest a whole poll may run; never more than the interval.
    deadline: Duration,
    failure_backoff: Duration,
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

#[cfg(test)]
mod tests {
    //! One source's schedule driven by a fake source: sections on their own, supervised polls
    //! (panics caught, a deadline for the whole poll), logs that name their source.
    use super::*;

    use std::sync::atomic::{AtomicU64, Ordering};

    use futures::future::BoxFuture;
    use futures::FutureExt;

    use crate::model::{FailureReason, FetchError, Platform, SectionOutcome, SourceInfo};
    use crate::snapshot::MetricsBuilder;

    /// Waits until `cond` holds, polling every 20 ms, up to `secs` seconds.
    async fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if cond() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cond()
    }

    fn series(name: &str, labels: &[(&str, &str)]) -> String {
        let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        format!("{name}{{{}}}", inner.join(","))
    }

    /// A writer that collects the log output of the current thread in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }

        /// Captures this thread's logs (a current-thread test runtime's tasks) until dropped.
        fn install(&self) -> tracing::subscriber::DefaultGuard {
            let writer = self.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish();
            let guard = tracing::subscriber::set_default(subscriber);
            // Other tests may have hit the same callsites first, with no subscriber, and
            // cached "never interested": recompute with this one in place.
            tracing::callsite::rebuild_interest_cache();
            guard
        }
    }

    /// What a fake section does when polled.
    #[derive(Clone, Copy, PartialEq)]
    enum Act {
        Ok,
        Fail,
        Panic,
        Hang,
        /// 404: the tenant does not offer the endpoint.
        NotOffered,
        /// 402: the API budget is spent until the next interval.
        Spent,
    }

    /// A source whose sections behave as told, counting how often each is polled.
    struct Fake {
        key: SourceKey,
        sections: Vec<&'static str>,
        /// What each section does on its n-th poll (the last entry repeats).
        script: Box<dyn Fn(&'static str, u64) -> Act + Send + Sync>,
        polls: Mutex<std::collections::BTreeMap<&'static str, u64>>,
        calls: AtomicU64,
    }

    impl Fake {
        fn new(
            sections: Vec<&'static str>,
            script: impl Fn(&'static str, u64) -> Act + Send + Sync + 'static,
        ) -> Arc<Fake> {
            Arc::new(Fake {
                key: SourceKey::new(Platform::new("mimecast"), "fake"),
                sections,
                script: Box::new(script),
                polls: Mutex::new(Default::default()),
                calls: AtomicU64::new(0),
            })
        }
        fn polls(&self, section: &str) -> u64 {
            self.polls
                .lock()
                .unwrap()
                .get(section)
                .copied()
                .unwrap_or(0)
        }
    }

    impl Source for Fake {
        fn key(&self) -> &SourceKey {
            &self.key
        }
        fn sections(&self) -> Vec<&'static str> {
            self.sections.clone()
        }
        fn poll_sections(&self, wanted: Vec<&'static str>) -> BoxFuture<'_, PollOutcome> {
            async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                tracing::warn!("fake source polled");
                let mut sections = Vec::new();
                for name in wanted {
                    let n = {
                        let mut p = self.polls.lock().unwrap();
                        let n = p.entry(name).or_default();
                        *n += 1;
                        *n
                    };
                    match (self.script)(name, n) {
                        Act::Ok => {
                            let mut b = MetricsBuilder::new();
                            b.gauge("awareness_fake", "Fake", &[("section", name)], n as f64);
                            sections.push(SectionOutcome {
                                name,
                                result: Ok(b.finish()),
                            });
                        }
                        Act::Fail => {
                            sections.push(SectionOutcome {
                                name,
                                result: Err(
                                    FetchError::new(FailureReason::Http, "not licensed").into()
                                ),
                            })
                        }
                        Act::NotOffered | Act::Spent => {
                            let (reason, status, retry) = match (self.script)(name, n) {
                                Act::Spent => (FailureReason::Quota, 402, Retry::NextInterval),
                                _ => (FailureReason::Http, 404, Retry::NotOffered),
                            };
                            let error = FetchError {
                                status: Some(status),
                                retry,
                                ..FetchError::new(reason, "the vendor's own words")
                            };
                            sections.push(SectionOutcome {
                                name,
                                result: Err(error.into()),
                            })
                        }
                        Act::Panic => panic!("injected panic in section {name}"),
                        Act::Hang => futures::future::pending::<()>().await,
                    }
                }
                PollOutcome { sections }
            }
            .boxed()
        }
    }

    fn start(fake: Arc<Fake>, schedule: Schedule) -> (Arc<Store>, tokio::task::JoinHandle<()>) {
        let store = Arc::new(Store::new(Duration::from_secs(3600)));
        store.register(&fake.key);
        store.configure(
            &fake.key,
            &fake.sections,
            schedule.interval,
            SourceInfo::default(),
        );
        let handle = tokio::spawn(run(fake, store.clone(), schedule, None));
        (store, handle)
    }

    fn fast(interval: Duration) -> Schedule {
        Schedule {
            interval,
            deadline: interval,
            failure_backoff: Duration::from_millis(20),
        }
    }

    fn value(body: &str, series_text: &str) -> Option<f64> {
        let line = body
            .lines()
            .find(|l| l.rsplit_once(' ').is_some_and(|(s, _)| s == series_text));
        line?.rsplit_once(' ')?.1.parse().ok()
    }

    /// A failing section is retried on its own backoff; the good one is not re-polled.
    #[tokio::test(start_paused = true)]
    async fn a_failed_section_is_retried_alone() {
        let fake = Fake::new(vec!["good", "unlicensed"], |name, _| {
            if name == "good" {
                Act::Ok
            } else {
                Act::Fail
            }
        });
        let (store, handle) = start(fake.clone(), fast(Duration::from_secs(3600)));
        assert!(eventually(10, || fake.polls("unlicensed") >= 4).await);
        assert_eq!(fake.polls("good"), 1, "the good section keeps its interval");
        let body = store.render(SystemTime::now());
        let up = |section: &str| {
            value(
                &body,
                &series(
                    "awareness_section_up",
                    &[
                        ("platform", "mimecast"),
                        ("account", "fake"),
                        ("section", section),
                    ],
                ),
            )
        };
        assert_eq!(up("good"), Some(1.0));
        assert_eq!(up("unlicensed"), Some(0.0));
        assert!(body.contains(
            "awareness_section_last_success_timestamp_seconds{platform=\"mimecast\",account=\"fake\",section=\"good\"}"
        ));
        assert!(!body.contains("section=\"unlicensed\"} 1") && !body.contains(
            "awareness_section_last_success_timestamp_seconds{platform=\"mimecast\",account=\"fake\",section=\"unlicensed\"}"
        ));
        assert_eq!(
            value(
                &body,
                "awareness_up{platform=\"mimecast\",account=\"fake\"}"
            ),
            Some(0.0)
        );
        assert_eq!(
            value(
                &body,
                "awareness_poll_interval_seconds{platform=\"mimecast\",account=\"fake\"}"
            ),
            Some(3600.0)
        );
        assert!(body.contains("awareness_fake{section=\"good\"} 1"));
        handle.abort();
    }

    /// A section the tenant does not offer (404) is unavailable, not down: the source stays up and
    /// the section is asked again at the next interval, not on the failure backoff; a spent API
    /// budget (402) waits for the interval too, but the source is down.
    #[tokio::test(start_paused = true)]
    async fn sections_not_offered_or_out_of_budget_wait_for_the_next_interval() {
        let fake = Fake::new(vec!["absent", "good", "spent"], |name, _| match name {
            "absent" => Act::NotOffered,
            "spent" => Act::Spent,
            _ => Act::Ok,
        });
        let (store, handle) = start(fake.clone(), fast(Duration::from_secs(3600)));
        // The next interval polls all three together: none was retried on the 20 ms backoff.
        for _ in 0..4000 {
            if fake.polls("good") == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await; // paused time: no real wait
        }
        assert_eq!((fake.polls("absent"), fake.polls("spent")), (2, 2));
        let body = store.render(SystemTime::now());
        let labels = |section| {
            [
                ("platform", "mimecast"),
                ("account", "fake"),
                ("section", section),
            ]
        };
        assert_eq!(
            value(&body, &series("awareness_section_up", &labels("absent"))),
            Some(0.0)
        );
        assert_eq!(
            value(&body, &series("awareness_section_up", &labels("spent"))),
            Some(0.0)
        );
        let up = "awareness_up{platform=\"mimecast\",account=\"fake\"}";
        assert_eq!(value(&body, up), Some(0.0), "a spent budget is a failure");
        let html = crate::landing::render(&store, SystemTime::now());
        assert!(html.contains("spent: HTTP 402 (quota)"), "{html}");
        assert!(
            html.contains("not offered by this tenant: absent"),
            "{html}"
        );
        assert!(html.contains("<code>endpoints</code>"), "{html}");
        assert!(!html.contains("the vendor's own words"), "{html}");
        handle.abort();

        // Without the spent section, the source is up.
        let fake = Fake::new(vec!["absent", "good"], |name, _| match name {
            "absent" => Act::NotOffered,
            _ => Act::Ok,
        });
        let (store, handle) = start(fake.clone(), fast(Duration::from_secs(3600)));
        assert!(eventually(10, || store.ready()).await);
        let body = store.render(SystemTime::now());
        assert_eq!(value(&body, up), Some(1.0), "{body}");
        assert!(store.statuses(SystemTime::now())[0].1.last_error.is_none());
        handle.abort();
    }

    /// A section that recovers rejoins the regular schedule, and the source is up again.
    #[tokio::test(start_paused = true)]
    async fn a_recovered_section_makes_the_source_up() {
        let fake = Fake::new(vec!["a", "b"], |name, n| {
            if name == "b" && n < 3 {
                Act::Fail
            } else {
                Act::Ok
            }
        });
        let (store, handle) = start(fake.clone(), fast(Duration::from_secs(3600)));
        assert!(eventually(10, || fake.polls("b") >= 3).await);
        assert!(
            eventually(5, || store
                .statuses(SystemTime::now())
                .iter()
                .all(|(_, s)| s.up() && s.last_success.is_some()))
            .await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(fake.polls("a"), 1);
        assert_eq!(fake.polls("b"), 3);
        handle.abort();
    }

    /// A panicking poll is caught, counted and logged; the source keeps polling.
    #[tokio::test(start_paused = true)]
    async fn a_panic_is_caught_counted_and_the_source_keeps_its_schedule() {
        let fake = Fake::new(vec!["s"], |_, n| if n <= 2 { Act::Panic } else { Act::Ok });
        let (store, handle) = start(fake.clone(), fast(Duration::from_secs(3600)));
        assert!(eventually(10, || fake.polls("s") >= 3).await);
        assert!(
            eventually(5, || store
                .statuses(SystemTime::now())
                .iter()
                .all(|(_, s)| s.up()))
            .await
        );
        let body = store.render(SystemTime::now());
        assert_eq!(
            value(
                &body,
                "awareness_polls_total{platform=\"mimecast\",account=\"fake\",result=\"panic\"}"
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &body,
                "awareness_polls_total{platform=\"mimecast\",account=\"fake\",result=\"success\"}"
            ),
            Some(1.0)
        );
        assert!(store.ready());
        handle.abort();
    }

    /// `poll.deadline` ends a hanging poll with a reason that says so.
    #[tokio::test(start_paused = true)]
    async fn the_deadline_ends_a_whole_poll() {
        let fake = Fake::new(vec!["s"], |_, _| Act::Hang);
        let schedule = Schedule {
            interval: Duration::from_secs(3600),
            deadline: Duration::from_millis(200),
            failure_backoff: Duration::from_secs(3600),
        };
        let (store, handle) = start(fake.clone(), schedule);
        assert!(eventually(10, || store.ready()).await);
        let statuses = store.statuses(SystemTime::now());
        let error = statuses[0]
            .1
            .last_error
            .as_ref()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("deadline"), "{error}");
        assert!(!statuses[0].1.up());
        let html = crate::landing::render(&store, SystemTime::now());
        assert!(html.contains("poll deadline of 200ms exceeded"), "{html}");
        handle.abort();
    }

    /// Every log line of a poll names its source; "keeping the last good data" only when there is
    /// some to keep.
    #[tokio::test(start_paused = true)]
    async fn poll_logs_name_their_source_and_tell_the_truth_about_kept_data() {
        let out = Captured::default();
        let _guard = out.install();
        let fake = Fake::new(vec!["s"], |_, n| match n {
            1 => Act::Fail,
            2 => Act::Ok,
            _ => Act::Fail,
        });
        let (_store, handle) = start(fake.clone(), fast(Duration::from_millis(300)));
        // Wait for the log lines themselves, not for the poll count: the third poll is counted
        // when it starts, and on a loaded machine its "poll failed" line can come much later.
        let failures = |text: &str| text.lines().filter(|l| l.contains("poll failed")).count();
        assert!(
            eventually(30, || failures(&out.text()) >= 2).await,
            "{}",
            out.text()
        );
        handle.abort();
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        let polled: Vec<&&str> = lines
            .iter()
            .filter(|l| l.contains("fake source polled"))
            .collect();
        assert!(!polled.is_empty(), "{text}");
        for l in polled {
            assert!(
                l.contains("platform=\"mimecast\"") || l.contains("platform=mimecast"),
                "{l}"
            );
            assert!(
                l.contains("account=\"fake\"") || l.contains("account=fake"),
                "{l}"
            );
        }
        let failed: Vec<&&str> = lines.iter().filter(|l| l.contains("poll failed")).collect();
        assert!(failed.len() >= 2, "{text}");
        assert!(
            !failed[0].contains("keeping the last good data"),
            "first failure has no data to keep: {}",
            failed[0]
        );
        assert!(
            failed[1].contains("keeping the last good data"),
            "{}",
            failed[1]
        );
    }
}
