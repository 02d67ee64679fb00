//! Soak test (bounded, loopback only): thousands of scrapes while polls run every second and
//! faults are injected into the simulated vendors. Reports scrape errors (must be 0) and RSS
//! growth after warm-up (must stay flat). Exit code 1 when either fails.
//!
//!     cargo run --release --example soak -- [SCRAPES]        (default 20000)

use std::sync::Arc;
use std::time::{Duration, Instant};

use awareness_exporter::app::{self, Exporter};
use awareness_exporter::registry;
use awareness_sim::cyberpilot::{self, CyberPilotOptions};
use awareness_sim::mimecast::{self, MimecastOptions, SimAuth};
use awareness_sim::{Fault, Population};

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() {
    let scrapes: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20000);
    let cp = cyberpilot::tenant(
        Arc::new(Population::generate(1, 3000)),
        CyberPilotOptions::default(),
        "soak-cp",
    )
    .await
    .expect("cyberpilot sim");
    let mc = mimecast::tenant(
        Arc::new(Population::generate(2, 2000)),
        MimecastOptions {
            auth: SimAuth::demo_hmac(),
            ..MimecastOptions::default()
        },
        "soak-mc",
    )
    .await
    .expect("mimecast sim");
    let text = format!(
        "[poll]\ninterval = \"1s\"\ntimeout = \"1s\"\nretry_backoff = \"10ms\"\nmax_attempts = 2\n[metrics]\nper_user = true\n{}{}",
        cp.table(""),
        mc.table(""),
    );
    let config = registry::loader().parse(&text, "soak").expect("config");
    let server_config = config.server.clone();
    let exporter = Exporter::start_with(config, None, awareness_exporter::Shard::ALL, |p| {
        p.with_failure_backoff(Duration::from_millis(200))
    });
    let handle = app::serve(exporter.clone(), "127.0.0.1:0", &server_config)
        .await
        .expect("serve");
    while !exporter.store.ready() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = format!("http://{}/metrics", handle.addr);
    let client = reqwest::Client::new();

    // Fault schedule: cycle through faults on both vendors while scraping.
    let faults = vec![
        None,
        Some(Fault::Status {
            code: 500,
            times: 5,
        }),
        Some(Fault::RateLimit {
            times: 3,
            reset_ms: 100,
        }),
        Some(Fault::Malformed),
        None,
        Some(Fault::Truncated),
        Some(Fault::Slow(Duration::from_millis(1500))),
        Some(Fault::WrongTypes),
        None,
    ];
    let fault_task = {
        let (cpc, mcc) = (cp.control().clone(), mc.control().clone());
        tokio::spawn(async move {
            for f in faults.into_iter().cycle() {
                cpc.clear_faults();
                mcc.clear_faults();
                if let Some(f) = f {
                    cpc.set_fault(f.clone());
                    mcc.set_fault(f);
                }
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
        })
    };

    let warmup = scrapes / 4;
    let started = Instant::now();
    let mut errors = 0usize;
    let mut rss_after_warmup = f64::NAN;
    let mut bytes = 0usize;
    let concurrency = 4;
    let mut done = 0usize;
    while done < scrapes {
        let batch: Vec<_> = (0..concurrency.min(scrapes - done))
            .map(|_| {
                let client = client.clone();
                let url = url.clone();
                tokio::spawn(async move {
                    match client
                        .get(&url)
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => {
                            r.text().await.map(|t| t.len()).map_err(|_| ())
                        }
                        _ => Err(()),
                    }
                })
            })
            .collect();
        for t in batch {
            match t.await {
                Ok(Ok(n)) if n > 0 => bytes = n,
                _ => errors += 1,
            }
            done += 1;
        }
        if done >= warmup && rss_after_warmup.is_nan() {
            rss_after_warmup = rss_mib();
        }
    }
    let rss_end = rss_mib();
    fault_task.abort();
    let statuses = exporter.store.statuses(std::time::SystemTime::now());
    let polls: u64 = statuses.iter().flat_map(|(_, s)| s.polls.values()).sum();
    let failed: u64 = statuses
        .iter()
        .filter_map(|(_, s)| s.polls.get("failure"))
        .sum();
    let growth = rss_end - rss_after_warmup;
    println!(
        "soak: {scrapes} scrapes in {:.1} s, {errors} errors, last body {bytes} bytes",
        started.elapsed().as_secs_f64()
    );
    println!("soak: {polls} polls during the run ({failed} failed under injected faults)");
    println!("soak: RSS after warm-up {rss_after_warmup:.1} MiB, at end {rss_end:.1} MiB, growth {growth:+.1} MiB");
    exporter.poller.stop();
    handle.shutdown().await;
    // Flat: allow allocator noise of a few MiB, nothing that scales with the scrape count.
    if errors > 0 || growth > 8.0 {
        println!("soak: FAILED");
        std::process::exit(1);
    }
    println!("soak: ok");
}
