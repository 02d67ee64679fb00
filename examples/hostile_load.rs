//! Load from hostile or greedy clients against a running exporter (loopback), to measure what
//! it costs the server. Measure the server's memory meanwhile, e.g.
//! `grep VmRSS /proc/$(pgrep -f 'awareness-exporter --demo')/status`.
//!
//!     cargo run --release --example hostile_load -- stalled-h2 URL CONNS STREAMS HOLD_SECS
//!         CONNS HTTP/2 connections (prior knowledge), each opening STREAMS requests with a
//!         receive window of 0 (headers arrive, no body byte can), held HOLD_SECS seconds.
//!     cargo run --release --example hostile_load -- stalled-h1 ADDR CONNS HOLD_SECS
//!         CONNS HTTP/1.1 connections to ADDR (host:port), each sending `GET /metrics` with
//!         Prometheus' Accept header and never reading, held HOLD_SECS seconds.
//!     cargo run --release --example hostile_load -- scrape URL SCRAPES CONCURRENCY [gzip]
//!         SCRAPES requests with CONCURRENCY in flight, Prometheus' Accept header, gzip if asked;
//!         prints requests/s and mean bytes per answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str) -> T {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("missing or bad argument {name}"))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("stalled-h2") => {
            stalled_h2(
                &args[2],
                arg(&args, 3, "CONNS"),
                arg(&args, 4, "STREAMS"),
                arg(&args, 5, "HOLD_SECS"),
            )
            .await
        }
        Some("stalled-h1") => {
            stalled_h1(&args[2], arg(&args, 3, "CONNS"), arg(&args, 4, "HOLD_SECS")).await
        }
        Some("scrape") => {
            scrape(
                &args[2],
                arg(&args, 3, "SCRAPES"),
                arg(&args, 4, "CONCURRENCY"),
                args.get(5).map(String::as_str) == Some("gzip"),
            )
            .await
        }
        _ => eprintln!("usage: see the comment at the top of examples/hostile_load.rs"),
    }
}

async fn stalled_h2(url: &str, conns: usize, streams: usize, hold: u64) {
    let headers = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let client = reqwest::Client::builder()
            .http2_prior_knowledge()
            .http2_initial_stream_window_size(0)
            .timeout(Duration::from_secs(hold + 60))
            .build()
            .expect("client");
        for _ in 0..streams {
            let client = client.clone();
            let url = url.to_string();
            let headers = headers.clone();
            tasks.push(tokio::spawn(async move {
                let r = client
                    .get(&url)
                    .header("accept", PROMETHEUS_ACCEPT)
                    .send()
                    .await;
                if let Ok(r) = r {
                    headers.fetch_add(1, Ordering::Relaxed);
                    // Hold the response without reading its body.
                    tokio::time::sleep(Duration::from_secs(hold)).await;
                    drop(r);
                }
            }));
        }
    }
    for s in 0..hold {
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!(
            "t={}s streams with headers: {}",
            s + 1,
            headers.load(Ordering::Relaxed)
        );
    }
    for t in tasks {
        t.abort();
    }
}

async fn stalled_h1(addr: &str, conns: usize, hold: u64) {
    use tokio::io::AsyncWriteExt;
    let request =
        format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: {PROMETHEUS_ACCEPT}\r\n\r\n");
    let mut held = Vec::new();
    for _ in 0..conns {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(mut s) => {
                let _ = s.write_all(request.as_bytes()).await;
                held.push(s);
            }
            Err(e) => eprintln!("connect: {e}"),
        }
    }
    println!("{} connections sent a request and do not read", held.len());
    tokio::time::sleep(Duration::from_secs(hold)).await;
}

async fn scrape(url: &str, scrapes: usize, concurrency: usize, gzip: bool) {
    let client = reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("client");
    let next = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_string());
            let (next, bytes, errors) = (next.clone(), bytes.clone(), errors.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < scrapes as u64 {
                    let mut req = client.get(&url).header("accept", PROMETHEUS_ACCEPT);
                    if gzip {
                        req = req.header("accept-encoding", "gzip");
                    }
                    match req.send().await {
                        Ok(r) => match r.bytes().await {
                            Ok(b) => {
                                bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
                            }
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        },
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} scrapes ({}), concurrency {concurrency}: {:.0} requests/s, {:.0} bytes per answer, {} errors",
        scrapes,
        if gzip { "gzip" } else { "plain" },
        scrapes as f64 / secs,
        bytes.load(Ordering::Relaxed) as f64 / scrapes as f64,
        errors.load(Ordering::Relaxed)
    );
}
