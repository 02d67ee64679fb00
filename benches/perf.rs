//! Performance figures (printed, never asserted): `cargo bench --bench perf`.
//!
//! - scrape: time and bytes of `/metrics` for 1k/10k/100k users, per_user off and on, and
//!   requests/s under concurrent scrapes over HTTP;
//! - poll: wall time of a full poll against simulated vendors with 20 ms latency per request,
//!   compared with the lower bound (pages × latency / concurrency), and the requests made;
//! - memory: peak RSS of the daemon (a child process) holding 100 accounts / 200k users.
//!
//! Set `PERF_QUICK=1` for a smaller, faster run, `PERF_ONLY=scrape|poll|memory` for one part.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use awareness_exporter::app::{self, Exporter};
use awareness_exporter::config::{Config, MetricsConfig};
use awareness_exporter::snapshot::{Platform, SourceKey};
use awareness_exporter::sources::cyberpilot::metrics as cp_metrics;
use awareness_exporter::sources::cyberpilot::models::UserSummary;
use awareness_exporter::store::{PollOutcome, SectionOutcome, Store};
use awareness_sim::cyberpilot::{self, CyberPilotOptions};
use awareness_sim::mimecast::{self, MimecastOptions, SimAuth};
use awareness_sim::Population;

/// The source-polling harness the tests use.
#[path = "../tests/common/harness.rs"]
mod harness;

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
            let rendered = cp_metrics::render(&key, &users, &metrics);
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
            let client = reqwest::Client::new();
            let duration = Duration::from_secs(if quick() { 1 } else { 3 });
            for concurrency in [1usize, 8] {
                let start = Instant::now();
                let mut tasks = Vec::new();
                for _ in 0..concurrency {
                    let client = client.clone();
                    let url = url.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut n = 0u64;
                        while start.elapsed() < duration {
                            let r = client.get(&url).send().await.expect("scrape");
                            assert!(r.status().is_success());
                            r.bytes().await.expect("body");
                            n += 1;
                        }
                        n
                    }));
                }
                let mut total = 0;
                for t in tasks {
                    total += t.await.expect("task");
                }
                println!(
                    "HTTP scrapes, 10k users, per_user {}, {concurrency} concurrent: {:.0} requests/s",
                    if per_user { "on" } else { "off" },
                    total as f64 / start.elapsed().as_secs_f64()
                );
            }
            exporter.poller.stop();
            handle.shutdown().await;
        }
    });
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

#[allow(clippy::too_many_arguments)]
fn row(
    source: &str,
    ok: bool,
    users: usize,
    concurrency: usize,
    requests: u64,
    bound: f64,
    cpu: Duration,
    took: Duration,
) {
    let took = took.as_secs_f64();
    let cpu = cpu.as_secs_f64();
    println!(
        "| {source}{} | {users} | {concurrency} | {requests} | {bound:.2} s | {cpu:.2} s | {took:.2} s | {:.2} | {:.2} |",
        if ok { "" } else { " (FAILED)" },
        took / bound,
        took / bound.max(cpu)
    );
}

fn poll_bench(rt: &tokio::runtime::Runtime) {
    println!("\n## poll: wall time against simulated vendors with 20 ms latency per request");
    println!("| source | users | concurrency | requests | latency bound | CPU floor (0 ms latency) | measured | ratio to latency bound | ratio to max(bound, CPU floor) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let latency = Duration::from_millis(20);
    rt.block_on(async {
        let cp_users = if quick() { 20_000 } else { 100_000 };
        let pop = Arc::new(Population::generate(21, cp_users));
        let tenant = cyberpilot::tenant(pop, CyberPilotOptions::default(), "bench")
            .await
            .expect("sim");
        let sim = &tenant.server;
        sim.control.set_latency(latency);
        for concurrency in [4usize, 8] {
            let settings = format!("[poll]\nconcurrency = {concurrency}\n");
            let config = harness::load(&harness::config_text(
                &settings,
                &tenant,
                "page_size = 100\n",
            ));
            // CPU floor: the same poll without latency (simulator and exporter share 2 cores).
            sim.control.set_latency(Duration::ZERO);
            let (cpu, _, _) = poll(&config).await;
            sim.control.set_latency(latency);
            sim.control.reset_counters();
            let (took, ok, requests) = poll(&config).await;
            // The first page must come alone (it tells the total), then pages in parallel.
            let pages = cp_users.div_ceil(100) as f64;
            let bound = latency.as_secs_f64() * (1.0 + ((pages - 1.0) / concurrency as f64).ceil());
            row(
                "cyberpilot",
                ok,
                cp_users,
                concurrency,
                requests,
                bound,
                cpu,
                took,
            );
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
            sim.control.set_latency(Duration::ZERO);
            let (cpu, _, _) = poll(&config).await;
            sim.control.set_latency(latency);
            sim.control.reset_counters();
            let (took, ok, requests) = poll(&config).await;
            // Token paging is sequential per endpoint: chains run in parallel. The bound is the
            // larger of (all requests / concurrency) and the longest chain.
            let per_endpoint = mc_users.div_ceil(500) as f64;
            let campaign_pages: f64 = (0..campaigns)
                .map(|c| (pop.campaign_members(c).len().max(1)).div_ceil(500) as f64)
                .sum();
            let longest = per_endpoint.max(1.0 + campaign_pages / concurrency as f64);
            let total = 1.0 + 4.0 * per_endpoint + 1.0 + campaign_pages + 1.0;
            let bound = latency.as_secs_f64() * (total / concurrency as f64).max(longest + 1.0);
            row(
                "mimecast",
                ok,
                mc_users,
                concurrency,
                requests,
                bound,
                cpu,
                took,
            );
        }
    });
}

/// Peak RSS (VmHWM) of a child daemon polling 100 CyberPilot accounts of 2,000 users each.
fn memory_bench(rt: &tokio::runtime::Runtime) {
    println!("\n## memory: peak RSS of the daemon");
    let accounts = if quick() { 20 } else { 100 };
    let per_account = 2_000;
    rt.block_on(async {
        let pop = Arc::new(Population::generate(33, per_account));
        let mut sims = Vec::new();
        let mut text = String::from("[poll]\ninterval = \"1h\"\n");
        for i in 0..accounts {
            // One server per account, all sharing a population (the daemon cannot tell).
            let account = format!("customer-{i:03}");
            let tenant = cyberpilot::tenant(pop.clone(), CyberPilotOptions::default(), &account).await.expect("sim");
            text.push_str(&tenant.table(""));
            sims.push(tenant.server);
        }
        let dir = std::env::temp_dir().join(format!("awareness-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join("config.toml");
        std::fs::write(&path, text).expect("write");
        // Inline secrets: keep the file private, as the daemon asks.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let bin = env!("CARGO_BIN_EXE_awareness-exporter");
        for per_user in [false, true] {
            let mut child = std::process::Command::new(bin)
                .arg("--config.file")
                .arg(&path)
                .args(["--web.listen-address", "127.0.0.1:0", "--log.level", "warn"])
                .env("AWARENESS_METRICS__PER_USER", per_user.to_string())
                .spawn()
                .expect("spawn daemon");
            let pid = child.id();
            // Wait until every account has been polled once: all sims have been asked.
            let deadline = Instant::now() + Duration::from_secs(120);
            while sims.iter().any(|s| s.control.requests("users-summary") < 20) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let field = |name: &str| {
                status
                    .lines()
                    .find(|l| l.starts_with(name))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
                    .map(|kb| kb / 1024.0)
                    .unwrap_or(f64::NAN)
            };
            println!(
                "daemon, {accounts} accounts x {per_account} users = {} users, per_user {}: peak RSS {:.1} MiB (current {:.1} MiB)",
                accounts * per_account,
                if per_user { "on (max_users 20000)" } else { "off" },
                field("VmHWM:"),
                field("VmRSS:")
            );
            let _ = child.kill();
            let _ = child.wait();
            for s in &sims {
                s.control.reset_counters();
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
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
    // PERF_ONLY=scrape|poll|memory runs one part.
    let only = std::env::var("PERF_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only == part;
    if run("scrape") {
        scrape_bench(&rt);
    }
    if run("poll") {
        poll_bench(&rt);
    }
    if run("memory") {
        memory_bench(&rt);
    }
}
