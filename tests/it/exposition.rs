//! `/metrics` as clients see it: content negotiation (OpenMetrics only when asked for, text
//! 0.0.4 otherwise), the 0.0.4 body of the demo passing `promtool check metrics`, and gzip
//! bodies that are the same bytes for every scrape.

use crate::common;

use std::io::Read;
use std::sync::{Arc, OnceLock};

use awareness_exporter::app::{self, Exporter, ServerHandle};
use awareness_exporter::demo::Demo;
use common::*;

const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// One demo exporter for every test here, polled once and then still, on a runtime of its own
/// that lives as long as the test binary. The small demo (the same tenants and families, a tenth
/// of the people) is polled in paused time, so KnowBe4's real pacing costs no real time; time
/// resumes before the server answers real HTTP, so its timeouts stay real.
fn demo_base() -> String {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .unwrap();
            rt.block_on(async {
                let (_demo, _exporter, _handle, base) = demo_exporter().await;
                tx.send(base).unwrap();
                std::future::pending::<()>().await
            })
        });
        rx.recv().unwrap()
    })
    .clone()
}

async fn demo_exporter() -> (Demo, Arc<Exporter>, ServerHandle, String) {
    let demo = Demo::start_sized(awareness_sim::demo::Size::Small)
        .await
        .unwrap();
    let loader = awareness_exporter::registry::loader();
    let config = loader.parse(&demo.config_text(), "<demo>").unwrap();
    let server_config = config.server.clone();
    let exporter = Exporter::start(config, None);
    assert!(
        eventually(60, || exporter.store.ready()).await,
        "demo polls finished"
    );
    exporter.poller.stop();
    tokio::time::resume();
    let handle = app::serve(exporter.clone(), "127.0.0.1:0", &server_config)
        .await
        .unwrap();
    let base = format!("http://{}", handle.addr);
    (demo, exporter, handle, base)
}

async fn get(base: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let client = reqwest::Client::builder().no_gzip().build().unwrap();
    let mut req = client.get(format!("{base}/metrics"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    r
}

fn gunzip(bytes: &[u8]) -> String {
    let mut d = flate2::read::GzDecoder::new(bytes);
    let mut s = String::new();
    d.read_to_string(&mut s).unwrap();
    let mut rest = Vec::new();
    d.into_inner().read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "a single gzip member");
    s
}

#[tokio::test]
async fn openmetrics_only_when_asked_for_and_text_0_0_4_otherwise() {
    let base = tokio::task::spawn_blocking(demo_base).await.unwrap();

    let om = get(&base, &[("accept", PROMETHEUS_ACCEPT)]).await;
    assert_eq!(
        om.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.headers()["vary"].to_str().unwrap().contains("Accept"));
    let om = om.text().await.unwrap();
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE awareness_polls counter\n"));

    for accept in [
        None,
        Some("*/*"),
        Some("text/plain"),
        Some("text/plain;version=0.0.4"),
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        let r = get(&base, &headers).await;
        assert_eq!(
            r.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8",
            "Accept: {accept:?}"
        );
        let text = r.text().await.unwrap();
        assert!(!text.contains("# EOF"), "no OpenMetrics trailer in 0.0.4");
        assert!(!text.contains("# UNIT"));
        // Counters are declared under the name their samples carry.
        assert!(text.contains("# HELP awareness_polls_total "), "{text}");
        assert!(text.contains("# TYPE awareness_polls_total counter\n"));
        assert!(!text.contains("# TYPE awareness_polls counter"));
        // Same series and values in both formats.
        assert_eq!(samples(&text), samples(&om));
    }
}

#[tokio::test]
async fn promtool_accepts_the_demo_text_0_0_4_body() {
    let base = tokio::task::spawn_blocking(demo_base).await.unwrap();
    let body = get(&base, &[]).await.text().await.unwrap();
    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match promtool {
        Ok(c) => c,
        Err(e) => {
            // CI must run this check (scripts/install-test-deps.sh installs promtool).
            assert!(
                std::env::var("CI").map(|v| v != "true").unwrap_or(true),
                "promtool is missing on CI: {e}"
            );
            eprintln!("skipping: promtool not installed ({e}); run scripts/install-test-deps.sh");
            return;
        }
    };
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(body.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool check metrics:\n{report}");
    assert!(report.trim().is_empty(), "promtool has remarks:\n{report}");
}

#[tokio::test]
async fn gzip_bodies_are_shared_and_decode_to_the_plain_body() {
    let base = tokio::task::spawn_blocking(demo_base).await.unwrap();
    for accept in [PROMETHEUS_ACCEPT, "text/plain"] {
        let plain = get(&base, &[("accept", accept)])
            .await
            .text()
            .await
            .unwrap();
        let mut seen = None;
        for _ in 0..3 {
            let r = get(&base, &[("accept", accept), ("accept-encoding", "gzip")]).await;
            assert_eq!(r.headers()["content-encoding"], "gzip");
            let zipped = r.bytes().await.unwrap();
            assert!(zipped.len() * 3 < plain.len(), "compressed");
            let text = gunzip(&zipped);
            // Health series (request counters, poll durations) are identical while nothing
            // polls, so every scrape gets the same bytes.
            assert_eq!(text, plain);
            if let Some(prev) = &seen {
                assert_eq!(prev, &zipped);
            }
            seen = Some(zipped);
        }
    }
}
