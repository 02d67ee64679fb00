//! Shared test helpers: configs pointing at the simulators, one-shot polls (the harness shared
//! with the benchmarks), exposition parsing.
#![allow(dead_code)]

pub mod harness;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use awareness_exporter::config::Config;
use awareness_exporter::model::{PollOutcome, SourceKey};
use awareness_exporter::registry;
use awareness_exporter::testing::sources::knowbe4::config::KnowBe4Config;
use awareness_exporter::testing::stats::ApiStats;
use awareness_exporter::testing::store::Store;

// Not every test binary uses it.
#[allow(unused_imports)]
pub use harness::{text_of, Outcome, Render};

/// The request budget of [`parse`]'s configs.
pub const MAX_ATTEMPTS: u32 = 3;

/// Parses a config and overrides the poll settings to test-friendly ones.
pub fn parse(text: &str) -> Config {
    let mut c = registry::loader()
        .parse(text, "test.toml")
        .unwrap_or_else(|e| panic!("config: {e}"));
    c.poll.timeout = Duration::from_secs(2);
    c.poll.retry_backoff = Duration::from_millis(10);
    c.poll.max_attempts = MAX_ATTEMPTS;
    c
}

/// A KnowBe4 account on `base_url` with the defaults, read from a block as a user's is.
pub fn knowbe4_config(base_url: &str, token: &str) -> KnowBe4Config {
    let (url, token) = (
        awareness_sim::toml_str(base_url),
        awareness_sim::toml_str(token),
    );
    let c = parse(&format!(
        "[[knowbe4]]\naccount = \"acme\"\nbase_url = {url}\ntoken = {token}\n"
    ));
    c.sources[0].get::<KnowBe4Config>().unwrap().clone()
}

/// Runs one poll of the first source of `config`.
pub async fn poll_once(config: &Config) -> (PollOutcome, Arc<ApiStats>) {
    let polled = harness::poll(config).await;
    (polled.outcome, polled.stats)
}

/// Sample lines of an exposition: `name{labels}` → value.
pub fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Escapes a label value the way the exposition format does.
pub fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn series(name: &str, labels: &[(&str, &str)]) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
        .collect();
    if inner.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", inner.join(","))
    }
}

/// Publishes an outcome into a fresh store registered for the first source and renders it.
pub fn store_with(config: &Config) -> Arc<Store> {
    let store = Arc::new(Store::new(config.poll.max_age));
    store.register(&config.sources[0].key());
    store
}

/// The sum of the samples whose series starts with `prefix` (e.g. `awareness_cyberpilot_users{`).
pub fn sum_of(samples: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

/// The samples of a platform's own series (`awareness_<platform>_*`).
pub fn platform_samples(samples: &BTreeMap<String, f64>, platform: &str) -> BTreeMap<String, f64> {
    let prefix = format!("awareness_{platform}_");
    samples
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// A store after a good poll and, a second later, a failed one.
pub struct GoodThenBad {
    /// Its `max_age` is an hour.
    pub store: Store,
    /// When the good poll was published.
    pub t0: SystemTime,
    /// The samples rendered after the good poll and after the failed one.
    pub before: BTreeMap<String, f64>,
    pub after: BTreeMap<String, f64>,
}

/// Publishes a good poll of `key` into a fresh store, then a failed one a second later.
pub fn publish_good_then_bad(key: &SourceKey, good: PollOutcome, bad: PollOutcome) -> GoodThenBad {
    let store = Store::new(Duration::from_secs(3600));
    store.register(key);
    let t0 = SystemTime::now();
    let t1 = t0 + Duration::from_secs(1);
    store.publish(key, good, Duration::from_millis(5), t0);
    let before = samples(&store.render(t0));
    store.publish(key, bad, Duration::from_millis(5), t1);
    let after = samples(&store.render(t1));
    GoodThenBad {
        store,
        t0,
        before,
        after,
    }
}

/// A failed poll kept the source's last good data, all of it, and its `awareness_up` is 0.
pub fn assert_last_good_data_kept(key: &SourceKey, published: &GoodThenBad) {
    let (before, after) = (&published.before, &published.after);
    let platform = key.platform.as_str();
    let kept = platform_samples(before, platform);
    assert!(!kept.is_empty(), "no {platform} data to keep");
    assert_eq!(kept, platform_samples(after, platform));
    let up = series(
        "awareness_up",
        &[("platform", platform), ("account", &key.account)],
    );
    assert_eq!(after.get(&up), Some(&0.0), "{up}");
}

/// Waits until `cond` holds, polling every 20 ms, up to `secs` seconds.
pub async fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// The shipped config.example.toml.
pub fn example_text() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"))
        .unwrap_or_else(|e| panic!("config.example.toml: {e}"))
}

/// How many account blocks (`[[<platform>]]` tables) a config text has.
pub fn account_blocks(text: &str) -> usize {
    text.lines()
        .filter(|l| {
            let l = l.trim();
            l.starts_with("[[") && l.ends_with("]]")
        })
        .count()
}

/// A secret a config text points at: a `*_file` or `*_env` key of an account block.
pub struct SecretRef {
    /// Its full name as the loader reports it, e.g. `mimecast[1].app_key_file`.
    pub key: String,
    /// The file's path or the variable's name.
    pub value: String,
}

impl SecretRef {
    pub fn is_file(&self) -> bool {
        self.key.ends_with("_file")
    }
}

/// Every secret the account blocks of a config text point at (commented lines are not keys),
/// so that tests of the example follow it when a vendor's block is added.
pub fn secret_refs(text: &str) -> Vec<SecretRef> {
    let mut blocks: BTreeMap<String, usize> = BTreeMap::new();
    let mut table: Option<String> = None;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        if let Some(platform) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            let n = blocks.entry(platform.to_string()).or_insert(0);
            table = Some(format!("{platform}[{n}]"));
            *n += 1;
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            // A sub-table of the last block (`[cyberpilot.login]`), or a settings table.
            table = name.split_once('.').and_then(|(platform, sub)| {
                let n = blocks.get(platform)?.checked_sub(1)?;
                Some(format!("{platform}[{n}].{sub}"))
            });
        } else if let (Some(table), Some((key, value))) = (&table, line.split_once('=')) {
            let key = key.trim();
            if key.ends_with("_file") || key.ends_with("_env") {
                let value = value
                    .split('#')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_matches('"');
                out.push(SecretRef {
                    key: format!("{table}.{key}"),
                    value: value.to_string(),
                });
            }
        }
    }
    out
}

/// A writer that collects the log output of the current thread in memory.
#[derive(Clone, Default)]
pub struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

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
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Captures this thread's logs (a current-thread test runtime's tasks) until dropped.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        // Other tests of this binary may have hit the same callsites first, with no subscriber,
        // and cached "never interested": recompute with this one in place.
        tracing::callsite::rebuild_interest_cache();
        guard
    }
}

/// The exporter binary run on `config` with `args` and JSON logs, and the address it logged
/// that it listens on (the rest of its log is drained). Killed when dropped.
pub async fn start_binary(
    config: &std::path::Path,
    args: &[&str],
) -> (tokio::process::Child, std::net::SocketAddr) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_awareness-exporter"))
        .arg("--config.file")
        .arg(config)
        .args(args)
        .args(["--log.format", "json"])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addr = None;
    while let Ok(Some(line)) = lines.next_line().await {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(a) = v["fields"]["address"].as_str() {
            addr = Some(a.parse().unwrap());
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr.expect("the listening address is logged"))
}

/// A bare transport, for tests of the transport itself: `max_attempts` attempts 1 ms apart,
/// a 5 s timeout, `vendor`'s HTTP semantics and `scrub`'s secrets.
pub fn transport(
    stats: Arc<ApiStats>,
    max_attempts: u32,
    vendor: Arc<dyn awareness_exporter::testing::http::VendorHttp>,
    scrub: awareness_exporter::testing::http::Scrub,
) -> awareness_exporter::testing::http::Transport {
    let poll = awareness_exporter::config::PollConfig {
        timeout: Duration::from_secs(5),
        max_attempts,
        retry_backoff: Duration::from_millis(1),
        max_body_bytes: 1 << 20,
        concurrency: 2,
        ..Default::default()
    };
    let global = Arc::new(tokio::sync::Semaphore::new(8));
    let client = awareness_exporter::testing::http::client();
    awareness_exporter::testing::http::Transport::new(client, stats, poll, global, vendor, scrub)
}

/// Sends one request through `t`, the answer as it came.
pub async fn send(
    t: &awareness_exporter::testing::http::Transport,
    endpoint: &'static str,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<awareness_exporter::testing::http::Reply, awareness_exporter::model::FetchError> {
    t.fetch(endpoint, build, |r| async { Ok(r) }).await
}
