//! Performance figures (printed, never asserted): `cargo bench --bench perf`. Every ratio of
//! issue 15's table is printed; docs/performance.md shows them with the command of each.
//!
//! - scrape: time and bytes of `/metrics` for 1k/10k/100k users, per_user off and on, requests/s
//!   under concurrent scrapes over HTTP, and gzip throughput against plain;
//! - poll: wall time of a full poll against simulated vendors with 5 ms latency per request,
//!   against the lower bound (pages × latency / concurrency), and CyberPilot requests against
//!   the minimum ceil(rows / server cap);
//! - cpu: the exporter's decode + fold of a users-summary report against a bare serde_json
//!   parse of the same bytes (200k and 1M users);
//! - memory: a daemon (child process) polling one account of 200k or 1M users: peak RSS per
//!   user of a poll and RSS after each of 5 polls, against its idle baseline; its CPU per poll
//!   against the bare parse; and 1,000 accounts × 1,000 users in one daemon.
//!
//! Set `PERF_QUICK=1` for a smaller, faster run, `PERF_ONLY=scrape|poll|cpu|memory` for one
//! part; for memory, `PERF_SIZES=1000000` (users, comma-separated), `PERF_POLLS=12` (polls
//! watched, 5), `PERF_PER_USER=on|off` (one half of the rows) and `PERF_ACCOUNTS=0`
//! (skips the many-accounts row) choose the sizes.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use awareness_exporter::app::{self, Exporter};
use awareness_exporter::config::{Config, MetricsConfig};
use awareness_exporter::model::{Platform, PollOutcome, SectionOutcome, SourceKey};
use awareness_exporter::registry;
use awareness_exporter::testing::sources::cyberpilot::metrics::Report;
use awareness_exporter::testing::sources::cyberpilot::models::UserSummary;
use awareness_exporter::testing::stats::ApiStats;
use awareness_exporter::testing::store::Store;
use awareness_sim::cyberpilot::{self, CyberPilotOptions};
use awareness_sim::mimecast::{self, MimecastOptions, SimAuth};
use awareness_sim::Population;

/// The source-polling harness the tests use.
#[path = "../tests/it/common/harness.rs"]
mod harness;
use harness::{Counted as _, Outcome, Render};

fn quick() -> bool {
    std::env::var("PERF_QUICK").is_ok_and(|v| v == "1")
}

fn users_from(pop: &Population) -> Vec<UserSummary> {
    pop.users
        .iter()
        .map(|u| serde_json::from_value(cyberpilot::users_summary_row(u)).expect("sim row parses"))
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn scrape_bench(rt: &tokio::runtime::Runtime) {
    println!("\n## scrape: /metrics served from data prepared at poll time");
    println!("| users | per_user | series | body bytes | render (median) | gzip body bytes |");
    println!("|---:|:---:|---:|---:|---:|---:|");
    let sizes: &[usize] = if quick() {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    for &n in sizes {
        let pop = Population::generate(9, n);
        let users = users_from(&pop);
        for per_user in [false, true] {
            let key = SourceKey::new(Platform::new("cyberpilot"), "bench");
            let metrics = MetricsConfig {
                per_user,
                max_users: 1_000_000,
                ..Default::default()
            };
            let mut report = Report::new(&metrics);
            users.iter().for_each(|u| report.add(u));
            let rendered = report.render(&key, &metrics, &ApiStats::default());
            let store = Store::new(Duration::from_secs(3600));
            store.register(&key);
            let series = rendered.series();
            store.publish(
                &key,
                PollOutcome {
                    sections: vec![SectionOutcome {
                        name: "users-summary",
                        result: Ok(rendered),
                    }],
                },
                Duration::from_millis(1),
                SystemTime::now(),
            );
            let iterations = if n >= 100_000 && per_user { 20 } else { 200 };
            let mut times = Vec::new();
            let mut bytes = 0;
            for _ in 0..iterations {
                let t = Instant::now();
                let body = store.render(SystemTime::now());
                times.push(t.elapsed().as_secs_f64());
                bytes = body.len();
            }
            let body = store.render(SystemTime::now());
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut enc, body.as_bytes()).expect("gzip");
            let gz = enc.finish().expect("gzip").len();
            println!(
                "| {n} | {} | {series} | {bytes} | {:.3} ms | {gz} |",
                if per_user { "on" } else { "off" },
                median(times) * 1e3
            );
        }
    }

    // Requests per second over HTTP with concurrent scrapers (10k users, per_user on ≈ 40k series).
    rt.block_on(async {
        let pop = Arc::new(Population::generate(9, 10_000));
        let tenant = cyberpilot::tenant(pop, CyberPilotOptions::default(), "bench").await.expect("sim");
        for per_user in [false, true] {
            let settings = format!("[metrics]\nper_user = {per_user}\nmax_users = 100000\n");
            let config = harness::load(&harness::config_text(&settings, &tenant, ""));
            let server_config = config.server.clone();
            let exporter = Exporter::start(config, None);
            let handle = app::serve(exporter.clone(), "127.0.0.1:0", &server_config).await.expect("serve");
            while !exporter.store.ready() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let url = format!("http://{}/metrics", handle.addr);
            let duration = Duration::from_secs(if quick() { 1 } else { 3 });
            let label = if per_user { "on" } else { "off" };
            for concurrency in [1usize, 8] {
                let (rate, _) = scrape_rate(&url, concurrency, duration, false).await;
                println!("HTTP scrapes, 10k users, per_user {label}, {concurrency} concurrent: {rate:.0} requests/s");
            }
            // Prometheus asks for gzip: the body is compressed once per publish and shared.
            // Plain and gzip alternate (5 rounds each) so that a change in the machine's load
            // hits both; the ratio is of the medians. The client does not decompress (reqwest
            // is built without its gzip feature), as the server's throughput is what counts.
            let (mut plain, mut gzip, mut zipped) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..5 {
                plain.push(scrape_rate(&url, 4, duration, false).await.0);
                let (rate, share) = scrape_rate(&url, 4, duration, true).await;
                gzip.push(rate);
                zipped.push(share);
            }
            let ratios: Vec<f64> = gzip.iter().zip(&plain).map(|(g, p)| g / p).collect();
            let (lo, hi) = ratios
                .iter()
                .fold((f64::INFINITY, 0.0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
            let (plain, gzip) = (median(plain), median(gzip));
            println!(
                "gzip vs plain, 10k users, per_user {label}, 4 concurrent, 5 alternating rounds: gzip {gzip:.0} / plain {plain:.0} requests/s (medians) = **{:.2}×** (rounds {lo:.2}–{hi:.2}×; goal ≥ 1.0×); answered gzip: {:.1} %",
                gzip / plain,
                zipped.iter().sum::<f64>() / zipped.len() as f64 * 100.0
            );
            exporter.poller.stop();
            handle.shutdown().await;
        }
    });
}

/// Scrapes `url` from `concurrency` clients for `duration`, as Prometheus asks (its Accept
/// header, gzip when `gzip`); requests per second, and the share of answers that came gzipped
/// (a gzip scrape gets the plain body when the body changed within a second of the last
/// compression).
async fn scrape_rate(url: &str, concurrency: usize, duration: Duration, gzip: bool) -> (f64, f64) {
    let client = reqwest::Client::new();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let (mut n, mut zipped) = (0u64, 0u64);
            while start.elapsed() < duration {
                let mut req = client.get(&url).header(
                    "accept",
                    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
                );
                if gzip {
                    req = req.header("accept-encoding", "gzip");
                }
                let r = req.send().await.expect("scrape");
                assert!(r.status().is_success());
                zipped += u64::from(r.headers().contains_key("content-encoding"));
                r.bytes().await.expect("body");
                n += 1;
            }
            (n, zipped)
        }));
    }
    let (mut total, mut zipped) = (0, 0);
    for t in tasks {
        let (n, z) = t.await.expect("task");
        total += n;
        zipped += z;
    }
    (
        total as f64 / start.elapsed().as_secs_f64(),
        zipped as f64 / total.max(1) as f64,
    )
}

async fn poll(config: &Config) -> (Duration, bool, u64) {
    let polled = harness::poll(config).await;
    if let Some(e) = polled.outcome.first_error() {
        eprintln!("poll error: {e}");
    }
    (
        polled.took,
        polled.outcome.ok(),
        polled.stats.total_requests(),
    )
}

/// Two polls of `config` without latency: the first with the simulator building every page
/// (which also fills its answer cache), the second with every answer replayed from memory, the
/// exporter's own floor. The answer cache stays on for the timed poll.
async fn cpu_floors(control: &awareness_sim::Control, config: &Config) -> (Duration, Duration) {
    control.set_latency(Duration::ZERO);
    control.set_answer_cache(false);
    control.set_answer_cache(true);
    let (building, _, _) = poll(config).await;
    let (replayed, _, _) = poll(config).await;
    (building, replayed)
}

/// `take` rows asked of `sim` 60 times in a row by the exporter's HTTP client alone, answers
/// replayed after `latency`: (rows, body bytes, served latency, mean step), times in seconds.
async fn bare_steps(
    sim: &awareness_sim::SimServer,
    options: &CyberPilotOptions,
    take: usize,
    latency: Duration,
) -> (usize, usize, f64, f64) {
    let client = awareness_exporter::testing::http::client();
    let url = format!(
        "{}/accounts/{}/reports/users-summary?skip=0&take={take}",
        sim.base_url(),
        options.account_id
    );
    let token = options.static_token.clone().unwrap_or_default();
    sim.control.set_answer_cache(true);
    sim.control.set_latency(latency);
    let get = || async {
        let reply = client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("get");
        reply.bytes().await.expect("body").len()
    };
    let mut bytes = 0;
    for _ in 0..3 {
        bytes = get().await;
    }
    sim.control.reset_counters();
    let n = 60;
    let started = Instant::now();
    for _ in 0..n {
        get().await;
    }
    let step = started.elapsed().as_secs_f64() / n as f64;
    let served = served_latency(&sim.control, latency);
    sim.control.set_answer_cache(false);
    (take, bytes, served, step)
}

/// The mean time the simulated server took from a request's arrival to its answer since its
/// counters were reset, in seconds (the configured latency if it answered nothing).
fn served_latency(control: &awareness_sim::Control, configured: Duration) -> f64 {
    control
        .mean_answer_time()
        .unwrap_or(configured)
        .as_secs_f64()
}

#[allow(clippy::too_many_arguments)]
fn row(
    source: &str,
    ok: bool,
    users: usize,
    concurrency: usize,
    requests: u64,
    served: f64,
    bound: f64,
    plumbing: f64,
    building: Duration,
    cpu: Duration,
    took: Duration,
) {
    let took = took.as_secs_f64();
    let cpu = cpu.as_secs_f64();
    println!(
        "| {source}{} | {users} | {concurrency} | {requests} | {:.2} ms | {bound:.3} s | {:.3} s | {cpu:.3} s | {took:.3} s | {:.2} | {:.2} | {:.2} |",
        if ok { "" } else { " (FAILED)" },
        served * 1e3,
        building.as_secs_f64(),
        took / bound,
        took / bound.max(cpu),
        took / (bound * plumbing).max(cpu)
    );
}

fn poll_bench(rt: &tokio::runtime::Runtime) {
    println!("\n## poll: wall time against simulated vendors with 5 ms latency per request");
    println!("The simulated vendor replays its answers from memory (`Control::set_answer_cache`): a real vendor");
    println!("builds its pages on its own machines, not on the exporter's cores.\n");
    println!("| source | users | concurrency | requests | latency served (mean) | latency bound | 0 ms latency, simulator building pages | CPU floor: 0 ms latency, answers replayed | measured | ratio to latency bound | ratio to max(bound, CPU floor) | ratio to max(bound × plumbing, CPU floor) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let latency = Duration::from_millis(5);
    let mut requests_vs_minimum = Vec::new();
    let mut steps = Vec::new();
    rt.block_on(async {
        let cp_users = if quick() { 20_000 } else { 100_000 };
        let pop = Arc::new(Population::generate(21, cp_users));
        // First the plumbing of one request for each page size used below.
        let options = CyberPilotOptions {
            max_take: 1_000,
            ..CyberPilotOptions::default()
        };
        let sim = cyberpilot::start(pop.clone(), options.clone())
            .await
            .expect("sim");
        for take in [100, 500, 1_000] {
            steps.push(bare_steps(&sim, &options, take, latency).await);
        }
        drop(sim);
        // A row's bound, stretched by the plumbing of its page size.
        let plumbing = |rows: usize| {
            steps
                .iter()
                .find(|s| s.0 == rows)
                .map_or(1.0, |s| s.3 / s.2)
        };
        // The server's cap on `take`: 100 (the simulator's default) and 1,000. The exporter asks
        // for 1,000 (the default page_size) and pages by what the server sends.
        for cap in [100usize, 1_000] {
            let options = CyberPilotOptions {
                max_take: cap,
                ..CyberPilotOptions::default()
            };
            let sim = cyberpilot::start(pop.clone(), options.clone())
                .await
                .expect("sim");
            for concurrency in [4usize, 8] {
                let text = format!(
                    "[poll]\nconcurrency = {concurrency}\n{}{}",
                    options.account_block(&sim, "bench"),
                    options.token_key()
                );
                let config = registry::loader().parse(&text, "bench").expect("config");
                let (building, cpu) = cpu_floors(&sim.control, &config).await;
                sim.control.set_latency(latency);
                sim.control.reset_counters();
                let (took, ok, requests) = poll(&config).await;
                sim.control.set_answer_cache(false);
                // The latency the server really gave (arrival to answer, timer rounding and
                // building the answer included): the vendor's part, not ours.
                let served = served_latency(&sim.control, latency);
                // The first page must come alone (it tells the total), then pages in parallel.
                let pages = cp_users.div_ceil(cap) as f64;
                let bound = served * (1.0 + ((pages - 1.0) / concurrency as f64).ceil());
                row(
                    &format!("cyberpilot (server cap {cap})"),
                    ok,
                    cp_users,
                    concurrency,
                    requests,
                    served,
                    bound,
                    plumbing(cap),
                    building,
                    cpu,
                    took,
                );
                if concurrency == 4 {
                    requests_vs_minimum.push((cap, requests, cp_users.div_ceil(cap) as u64));
                }
            }
        }

        let mc_users = if quick() { 10_000 } else { 50_000 };
        let pop = Arc::new(Population::generate(22, mc_users));
        let campaigns = pop.campaigns.len();
        let tenant = mimecast::tenant(
            pop.clone(),
            MimecastOptions {
                auth: SimAuth::demo_oauth2(),
                rate_limit: 1_000_000,
                ..MimecastOptions::default()
            },
            "bench",
        )
        .await
        .expect("sim");
        let sim = &tenant.server;
        sim.control.set_latency(latency);
        for concurrency in [4usize, 8, 16] {
            let settings = format!("[poll]\nconcurrency = {concurrency}\n");
            let config = harness::load(&harness::config_text(
                &settings,
                &tenant,
                "page_size = 500\n",
            ));
            let (building, cpu) = cpu_floors(&sim.control, &config).await;
            sim.control.set_latency(latency);
            sim.control.reset_counters();
            let (took, ok, requests) = poll(&config).await;
            sim.control.set_answer_cache(false);
            // Token paging is sequential per endpoint: chains run in parallel. The bound is the
            // larger of (the poll's requests / concurrency) and the longest chain: the token,
            // then an endpoint's pages, or the campaign list and the largest campaign's pages.
            let per_endpoint = mc_users.div_ceil(500) as f64;
            let largest_campaign = (0..campaigns)
                .map(|c| pop.campaign_members(c).len().max(1).div_ceil(500))
                .max()
                .unwrap_or(1) as f64;
            let longest = 1.0 + per_endpoint.max(1.0 + largest_campaign);
            let served = served_latency(&sim.control, latency);
            let bound = served * (requests as f64 / concurrency as f64).max(longest);
            row(
                "mimecast",
                ok,
                mc_users,
                concurrency,
                requests,
                served,
                bound,
                plumbing(500),
                building,
                cpu,
                took,
            );
        }
    });
    println!("\nOne request's plumbing on this machine: the exporter's HTTP client alone, asking the simulated");
    println!("server (answers replayed, 5 ms latency) for one page 60 times in a row. What a step takes beyond");
    println!("the served latency is loopback HTTP and thread wake-ups, which no client avoids; it is the");
    println!("floor under every chain of dependent requests (Mimecast's page tokens).\n");
    println!("| rows a page | body bytes | latency served (mean) | step (mean) | step / served |");
    println!("|---:|---:|---:|---:|---:|");
    for (take, bytes, served, step) in steps {
        println!(
            "| {take} | {bytes} | {:.2} ms | {:.2} ms | {:.2} |",
            served * 1e3,
            step * 1e3,
            step / served
        );
    }
    println!("\nCyberPilot requests against the minimum ceil(rows / server cap), default page_size (1,000):");
    for (cap, requests, minimum) in requests_vs_minimum {
        println!(
            "server cap {cap}: {requests} requests, minimum {minimum}: **{:.2}×** (goal 1.00×)",
            requests as f64 / minimum as f64
        );
    }
}

/// Every users-summary page of `users` users, as the server sends them (cap 1,000 a page).
async fn cyberpilot_pages(pop: Arc<Population>) -> Vec<bytes::Bytes> {
    let options = CyberPilotOptions {
        max_take: 1_000,
        ..CyberPilotOptions::default()
    };
    let token = options.static_token.clone().expect("static token");
    let sim = cyberpilot::start(pop.clone(), options.clone())
        .await
        .expect("sim");
    let client = reqwest::Client::new();
    let mut pages = Vec::new();
    for skip in (0..pop.users.len()).step_by(1_000) {
        let url = format!(
            "{}/accounts/{}/reports/users-summary?take=1000&skip={skip}",
            sim.base_url(),
            options.account_id
        );
        let r = client
            .get(url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("page");
        pages.push(r.bytes().await.expect("body"));
    }
    pages
}

/// Parses every page with serde_json alone, dropping each result.
fn parse_each<T: serde::de::DeserializeOwned>(pages: &[bytes::Bytes]) {
    for p in pages {
        std::hint::black_box(serde_json::from_slice::<T>(p).expect("json"));
    }
}

/// The least of `runs` timings of `f` (the machine is shared: the least is the least disturbed).
fn least<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// The exporter's CPU for a poll's JSON (decode every page, drop repeated users, fold, then render),
/// against a bare serde_json parse of the same bytes, one thread each.
fn cpu_bench(rt: &tokio::runtime::Runtime) {
    use awareness_exporter::testing::sources::aggregate::SeenKeys;
    use awareness_exporter::testing::sources::cyberpilot::page::UsersFormat;
    use awareness_exporter::testing::sources::decode::RowBudget;
    use awareness_exporter::testing::sources::paging::Format;
    println!("\n## cpu: decode + fold of a users-summary report vs a bare serde_json parse of the same bytes");
    println!("| users | bytes | serde_json::Value | IgnoredAny (scan only) | typed rows (Vec<UserSummary>) | exporter: decode + fold + render | ratio to Value | ratio to IgnoredAny | ratio to typed rows |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let sizes: &[usize] = if quick() {
        &[50_000]
    } else {
        &[200_000, 1_000_000]
    };
    for &n in sizes {
        let pages = rt.block_on(cyberpilot_pages(Arc::new(Population::generate(41, n))));
        let bytes: usize = pages.iter().map(|p| p.len()).sum();
        let runs = if n >= 1_000_000 { 3 } else { 5 };
        let value = least(runs, || parse_each::<serde_json::Value>(&pages));
        let scan = least(runs, || parse_each::<serde::de::IgnoredAny>(&pages));
        // The rows the exporter needs, parsed by serde alone into a list (no fold, no dedup).
        #[derive(serde::Deserialize)]
        struct TypedPage {
            #[allow(dead_code)]
            result: Vec<UserSummary>,
        }
        let typed = least(runs, || parse_each::<TypedPage>(&pages));
        let key = SourceKey::new(Platform::new("cyberpilot"), "bench");
        let metrics = MetricsConfig::default();
        let ours = least(runs, || {
            let budget = RowBudget::new(u64::MAX);
            let mut report = Report::new(&metrics);
            let mut seen = SeenKeys::default();
            for p in &pages {
                // As the paging engine reads a page: rows parsed one by one, each user once.
                let mut users = Vec::new();
                UsersFormat::read(p, &budget, &mut |raw| UsersFormat::rows(raw, &mut users).0)
                    .expect("page");
                users.retain(|u| UsersFormat::key(u).is_none_or(|k| seen.first_time(&k)));
                for u in &users {
                    report.add(u);
                }
            }
            report.render(&key, &metrics, &ApiStats::default())
        });
        let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
        println!(
            "| {n} | {bytes} | {} | {} | {} | {} | **{:.2}×** | {:.2}× | {:.2}× |",
            ms(value),
            ms(scan),
            ms(typed),
            ms(ours),
            ours.as_secs_f64() / value.as_secs_f64(),
            ours.as_secs_f64() / scan.as_secs_f64(),
            ours.as_secs_f64() / typed.as_secs_f64()
        );
    }
}

/// The exporter as a child process, with its memory and CPU read from /proc. Its polls are
/// counted from its own log lines (`poll succeeded` / `poll failed`, JSON on stderr), not by
/// scraping it: a scrape every few milliseconds would add its own CPU and allocations to the
/// figures (with 1,000 accounts each scrape after a publish merges a ~15 MB body).
struct Daemon {
    child: std::process::Child,
    dir: std::path::PathBuf,
    log: Arc<PollLog>,
}

/// What the daemon's log said about its polls so far.
#[derive(Default)]
struct PollLog {
    succeeded: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
    /// The longest `took_ms` of a successful poll.
    longest_ms: std::sync::atomic::AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
}

impl PollLog {
    fn read(&self, stderr: impl std::io::Read) {
        use std::io::BufRead;
        use std::sync::atomic::Ordering::Relaxed;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let fields = &v["fields"];
            match fields["message"].as_str() {
                Some("poll succeeded") => {
                    let took = fields["took_ms"].as_u64().unwrap_or(0);
                    self.longest_ms.fetch_max(took, Relaxed);
                    self.succeeded.fetch_add(1, Relaxed);
                }
                Some(m) if m.starts_with("poll failed") => {
                    self.failed.fetch_add(1, Relaxed);
                    *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                        fields["error"].as_str().map(str::to_string);
                }
                _ => {}
            }
        }
    }
}

impl Daemon {
    fn start(config: &str, per_user: bool, env: &[(&str, &str)]) -> Daemon {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("awareness-bench-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join("config.toml");
        std::fs::write(&path, config).expect("write");
        // Inline secrets: keep the file private, as the daemon asks.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_awareness-exporter"))
            .arg("--config.file")
            .arg(&path)
            .args([
                "--web.listen-address",
                &format!("127.0.0.1:{port}"),
                "--log.level",
                "warn,awareness_exporter::poller=info",
                "--log.format",
                "json",
            ])
            .env("AWARENESS_METRICS__PER_USER", per_user.to_string())
            // Only the malloc settings of the row, never ones the bench was started with.
            .env_remove("MALLOC_ARENA_MAX")
            .env_remove("MALLOC_MMAP_THRESHOLD_")
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn daemon");
        let log = Arc::new(PollLog::default());
        let stderr = child.stderr.take().expect("stderr");
        let reader = log.clone();
        std::thread::spawn(move || reader.read(stderr));
        Daemon { child, dir, log }
    }

    /// A `VmRSS:`/`VmHWM:` figure of /proc/<pid>/status, in MiB.
    fn mib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    }

    /// User + system CPU seconds so far (clock ticks of 10 ms).
    fn cpu(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name (field 3, the
        // state, is the 1st).
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }

    /// Successful polls so far, over all sources.
    fn polls(&self) -> u64 {
        self.log
            .succeeded
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Failed polls so far and the reason of the last one.
    fn failures(&self) -> String {
        let n = self.log.failed.load(std::sync::atomic::Ordering::Relaxed);
        match &*self
            .log
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
        {
            Some(e) if n > 0 => format!("{n} (last: {e})"),
            _ => n.to_string(),
        }
    }

    /// The longest successful poll so far, in seconds (the daemon's own `took_ms`).
    fn longest_poll(&self) -> f64 {
        self.log
            .longest_ms
            .load(std::sync::atomic::Ordering::Relaxed) as f64
            / 1e3
    }

    /// Waits until at least `n` successful polls have finished.
    async fn wait_polls(&self, n: u64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.polls() >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `[[cyberpilot]]` blocks for `accounts` accounts on one simulator (the daemon cannot tell
/// they share it).
/// `interval` must leave room for a whole poll: `poll.deadline` is never longer than it, and a
/// poll cut by it fails (a 1M-user poll takes several seconds on 2 busy cores).
fn cyberpilot_accounts(
    sim: &awareness_sim::SimServer,
    options: &CyberPilotOptions,
    accounts: usize,
    interval: &str,
) -> String {
    let mut text = format!("[poll]\ninterval = \"{interval}\"\nmax_age = \"1h\"\n");
    for i in 0..accounts {
        text.push_str(&options.account_block(sim, &format!("customer-{i:04}")));
        text.push_str(&options.token_key());
    }
    text
}

/// The glibc malloc settings that deploy/Dockerfile and the systemd unit ship (environment
/// variables read by glibc at start).
const SHIPPED_MALLOC: &[(&str, &str)] = &[
    ("MALLOC_ARENA_MAX", "2"),
    ("MALLOC_MMAP_THRESHOLD_", "131072"),
];

fn malloc_label(env: &[(&str, &str)]) -> String {
    if env.is_empty() {
        return "glibc default".to_string();
    }
    env.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A list of numbers from the environment (`PERF_SIZES=200000,1000000`), or `default`.
fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .map(|n| {
                n.trim()
                    .replace('_', "")
                    .parse()
                    .expect("a list of numbers")
            })
            .collect(),
        _ => default.to_vec(),
    }
}

/// Peak and settled RSS of a daemon polling one account of `users` users five times, against
/// its idle baseline; and its CPU per poll against a bare parse of the same bytes. Then many
/// accounts of 1,000 users in one daemon. `PERF_SIZES` (users, comma-separated) and
/// `PERF_ACCOUNTS` (0 skips that row) change the sizes.
fn memory_bench(rt: &tokio::runtime::Runtime) {
    println!("\n## memory: RSS of the daemon (a child process) around its polls");
    rt.block_on(async {
        let options = CyberPilotOptions {
            max_take: 1_000,
            ..CyberPilotOptions::default()
        };
        // Baseline: the daemon after polling a 10-user account.
        let tiny = cyberpilot::start(Arc::new(Population::generate(40, 10)), options.clone())
            .await
            .expect("sim");
        let daemon = Daemon::start(&cyberpilot_accounts(&tiny, &options, 1, "2s"), false, &[]);
        daemon.wait_polls(2, Duration::from_secs(60)).await;
        let baseline = daemon.mib("VmRSS:");
        println!(
            "baseline (one 10-user account polled twice): RSS {baseline:.1} MiB, peak {:.1} MiB",
            daemon.mib("VmHWM:")
        );
        drop(daemon);

        // PERF_POLLS: how many polls each daemon is watched for (5).
        let polls = env_list("PERF_POLLS", &[5])[0];
        println!("\n| users | per_user | malloc | bytes received per poll | peak RSS, poll 1 | peak − baseline per user | peak RSS, polls 1..{polls} | RSS after polls 1..{polls} (MiB) | CPU per poll (daemon) | bare Value parse | ratio | longest poll | failed polls |");
        println!("|---:|:---:|:---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|");
        let default_sizes: &[usize] = if quick() { &[50_000] } else { &[200_000, 1_000_000] };
        for n in env_list("PERF_SIZES", default_sizes) {
            let pop = Arc::new(Population::generate(41, n));
            let pages = cyberpilot_pages(pop.clone()).await;
            let bytes: usize = pages.iter().map(|p| p.len()).sum();
            let bare = least(3, || parse_each::<serde_json::Value>(&pages));
            drop(pages);
            let sim = cyberpilot::start(pop, options.clone()).await.expect("sim");
            // glibc as it comes (up to 8 arenas per core, each keeping what it freed, and a
            // dynamic mmap threshold), arenas alone, and the shipped settings.
            let configs: [(bool, &[(&str, &str)]); 5] = [
                (false, &[]),
                (false, &[("MALLOC_ARENA_MAX", "2")]),
                (false, SHIPPED_MALLOC),
                (true, &[]),
                (true, SHIPPED_MALLOC),
            ];
            // The interval caps `poll.deadline`: leave a busy machine room for a whole poll.
            let interval = format!("{}s", (n / 50_000).max(5));
            // PERF_PER_USER=on|off keeps one half of the rows.
            let wanted = std::env::var("PERF_PER_USER").unwrap_or_default();
            for (per_user, env) in configs {
                if !wanted.is_empty() && (wanted == "on") != per_user {
                    continue;
                }
                let daemon = Daemon::start(
                    &cyberpilot_accounts(&sim, &options, 1, &interval),
                    per_user,
                    env,
                );
                let mut after = Vec::new();
                let mut peak = f64::NAN;
                let mut cpu = Vec::new();
                for k in 1..=polls as u64 {
                    let before = daemon.cpu();
                    if !daemon.wait_polls(k, Duration::from_secs(900)).await {
                        println!("(poll {k} did not finish; failed polls: {})", daemon.failures());
                        break;
                    }
                    cpu.push(daemon.cpu() - before);
                    if k == 1 {
                        peak = daemon.mib("VmHWM:");
                    }
                    after.push(daemon.mib("VmRSS:"));
                }
                // The first poll's CPU includes start-up; the others are polls alone.
                let per_poll = if cpu.len() > 1 {
                    median(cpu[1..].to_vec())
                } else {
                    cpu.first().copied().unwrap_or(f64::NAN)
                };
                println!(
                    "| {n} | {} | {} | {bytes} | {peak:.1} MiB | {:.0} B | {:.1} MiB | {} | {per_poll:.2} s | {:.2} s | {:.2}× | {:.1} s | {} |",
                    if per_user { "on (max_users 20,000)" } else { "off" },
                    malloc_label(env),
                    (peak - baseline) * 1024.0 * 1024.0 / n as f64,
                    daemon.mib("VmHWM:"),
                    after.iter().map(|m| format!("{m:.1}")).collect::<Vec<_>>().join(" / "),
                    bare.as_secs_f64(),
                    per_poll / bare.as_secs_f64(),
                    daemon.longest_poll(),
                    daemon.failures()
                );
            }
        }

        // Many accounts: 1,000 accounts × 1,000 users in one daemon, all due at once.
        let default_accounts = if quick() { 100 } else { 1_000 };
        let accounts = env_list("PERF_ACCOUNTS", &[default_accounts])[0];
        if accounts == 0 {
            return;
        }
        let pop = Arc::new(Population::generate(42, 1_000));
        let sim = cyberpilot::start(pop, options.clone()).await.expect("sim");
        // 60 s: a round of 1,000 accounts queues behind `poll.max_requests_in_flight`, and an
        // account's deadline (≤ the interval) runs while it waits.
        let daemon = Daemon::start(
            &cyberpilot_accounts(&sim, &options, accounts, "60s"),
            false,
            SHIPPED_MALLOC,
        );
        let t = Instant::now();
        let mut after = Vec::new();
        let mut first = Duration::ZERO;
        for k in 1..=5 {
            if !daemon
                .wait_polls((k * accounts) as u64, Duration::from_secs(900))
                .await
            {
                println!("(round {k} did not finish; failed polls: {})", daemon.failures());
                break;
            }
            if k == 1 {
                first = t.elapsed();
            }
            after.push(daemon.mib("VmRSS:"));
        }
        let cpu = daemon.cpu();
        println!(
            "\n{accounts} accounts × 1,000 users ({} users), {}, interval 60 s: first round (every account polled once) {:.1} s; longest single poll {:.1} s; peak RSS {:.1} MiB; RSS after rounds 1..{}: {} MiB; CPU {:.1} s for {} rounds ({:.2} s a round); failed polls: {}",
            accounts * 1_000,
            malloc_label(SHIPPED_MALLOC),
            first.as_secs_f64(),
            daemon.longest_poll(),
            daemon.mib("VmHWM:"),
            after.len(),
            after.iter().map(|m| format!("{m:.1}")).collect::<Vec<_>>().join(" / "),
            cpu,
            after.len(),
            cpu / after.len().max(1) as f64,
            daemon.failures()
        );
    });
}

fn main() {
    // `cargo bench` passes `--bench`; anything else is ignored.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "# awareness-exporter performance ({} run)",
        if quick() { "quick" } else { "full" }
    );
    // PERF_ONLY=scrape|poll|cpu|memory runs one part.
    let only = std::env::var("PERF_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only == part;
    if run("scrape") {
        scrape_bench(&rt);
    }
    if run("poll") {
        poll_bench(&rt);
    }
    if run("cpu") {
        cpu_bench(&rt);
    }
    if run("memory") {
        memory_bench(&rt);
    }
}
