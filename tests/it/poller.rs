//! The poller against the simulators: one token per poll, a request budget against a vendor
//! that never answers, the landing page while a poll runs, a reload that touches only what
//! changed. One source's schedule (sections on their own, panics caught, the poll deadline,
//! logs that name their source) is tested beside it, in src/poller.rs.

use crate::common;
use crate::common::harness::Counted as _;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use awareness_exporter::app::Exporter;
use awareness_exporter::config;
use awareness_exporter::registry;
use awareness_sim::mimecast::{self, MimecastOptions, SimAuth};
use awareness_sim::{Fault, Population};
use common::*;

#[test]
fn poll_deadline_is_configurable_with_a_default() {
    let c = registry::loader()
        .parse(
            "[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken = \"t\"\n",
            "t.toml",
        )
        .unwrap();
    assert_eq!(c.poll.deadline, Duration::from_secs(600));
    let c = registry::loader().parse(
        "[poll]\ndeadline = \"90s\"\n[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken = \"t\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.poll.deadline, Duration::from_secs(90));
    let e = registry::loader()
        .parse("[poll]\ndeadline = \"10ms\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("poll.deadline"), "{e}");
}

/// A TCP port that accepts connections and never answers (an egress firewall that drops).
async fn blackhole() -> (String, Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (format!("http://{addr}"), accepted, task)
}

/// A config with a short request timeout and `attempts` tries per request.
fn load(text: &str, timeout_ms: u64, attempts: u32) -> config::Config {
    let mut c = registry::loader()
        .parse(text, "test.toml")
        .unwrap_or_else(|e| panic!("config: {e}"));
    c.poll.timeout = Duration::from_millis(timeout_ms);
    c.poll.max_attempts = attempts;
    c.poll.retry_backoff = Duration::from_millis(10);
    c
}

/// Mimecast OAuth2 with a blackholed token endpoint: one token acquisition (one request budget)
/// fails the whole poll, not one per endpoint group.
#[tokio::test]
async fn a_blackholed_mimecast_token_endpoint_fails_the_poll_within_one_request_budget() {
    let (url, accepted, _bh) = blackhole().await;
    let config = load(&format!(
        "[[mimecast]]\naccount = \"corp\"\nbase_url = \"{url}\"\nauth = \"oauth2\"\nclient_id = \"c\"\nclient_secret = \"s\"\n"
    ), 300, 2);
    let (outcome, stats) = poll_once(&config).await;
    assert_eq!(outcome.sections.len(), 7);
    for s in &outcome.sections {
        let e = s.result.as_ref().unwrap_err().to_string();
        assert!(e.contains("token request failed"), "{}: {e}", s.name);
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "max_attempts token requests"
    );
    assert_eq!(stats.total_requests(), 2);
}

/// CyberPilot login against a blackhole: one login per poll.
#[tokio::test]
async fn a_blackholed_cyberpilot_login_fails_the_poll_within_one_request_budget() {
    let (url, accepted, _bh) = blackhole().await;
    let config = load(&format!(
        "[[cyberpilot]]\naccount = \"acme\"\naccount_id = \"x\"\nbase_url = \"{url}\"\n[cyberpilot.login]\ntoken_url = \"{url}/oauth/token\"\nclient_id = \"c\"\nusername = \"u\"\npassword = \"p\"\n"
    ), 300, 2);
    let (outcome, _) = poll_once(&config).await;
    let e = outcome.sections[0].result.as_ref().unwrap_err().to_string();
    assert!(e.contains("login failed"), "{e}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

/// While the first poll hangs on a blackholed token endpoint, the landing page says since when
/// it polls and the latest error; once that attempt ends the exporter is ready (failure or not).
#[tokio::test]
async fn the_landing_page_shows_the_running_attempt_and_readiness_follows_the_first_attempt() {
    let (url, _accepted, _bh) = blackhole().await;
    let config = load(&format!(
        "[[mimecast]]\naccount = \"corp\"\nbase_url = \"{url}/x?key=SECRET\"\nauth = \"oauth2\"\nclient_id = \"c\"\nclient_secret = \"s\"\n"
    ), 200, 4);
    let exporter = Exporter::start_with(config, None, awareness_exporter::Shard::ALL, |p| {
        p.with_failure_backoff(Duration::from_secs(3600))
    });
    let page = || awareness_exporter::testing::landing::render(&exporter.store, SystemTime::now());
    assert!(
        eventually(10, || page().contains("latest error: oauth/token: timeout")).await,
        "{}",
        page()
    );
    let html = page();
    assert!(html.contains("polling since"), "{html}");
    assert!(html.contains(&format!("<td>{url}/x</td>")), "{html}");
    assert!(!html.contains("SECRET"));
    assert!(html.contains("OAuth2 client credentials (API 2.0)"));
    assert!(!exporter.store.ready(), "the first attempt still runs");
    assert!(eventually(10, || exporter.store.ready()).await);
    let html = page();
    assert!(!html.contains("polling since"), "{html}");
    // The reason, not the words of the failure (they may quote the vendor).
    assert!(html.contains(": timeout</td><td>timeout</td>"), "{html}");
    assert!(!html.contains("token request failed"), "{html}");
    exporter.poller.stop();
}

/// An unlicensed Mimecast endpoint: only it is retried, the others are polled once.
#[tokio::test]
async fn an_unlicensed_mimecast_endpoint_is_retried_without_the_others() {
    let auth = SimAuth::demo_oauth2();
    let server = mimecast::start(
        Arc::new(Population::generate(5, 30)),
        MimecastOptions {
            auth: auth.clone(),
            ..MimecastOptions::default()
        },
    )
    .await
    .unwrap();
    server.control.set_fault(Fault::NotLicensed {
        endpoint: "phishing/campaign/get-campaign".into(),
    });
    let config = parse(&mimecast::account_block(&server, "corp", &auth));
    let exporter = Exporter::start_with(config, None, awareness_exporter::Shard::ALL, |p| {
        p.with_failure_backoff(Duration::from_millis(20))
    });
    assert!(
        eventually(10, || server
            .control
            .requests("phishing/campaign/get-campaign")
            >= 4)
        .await
    );
    assert_eq!(
        server.control.requests("company/get-performance-details"),
        1
    );
    assert_eq!(server.control.token_requests(), 1, "the token is reused");
    let body = exporter.store.render(SystemTime::now());
    assert!(body.contains(
        "awareness_section_up{platform=\"mimecast\",account=\"corp\",section=\"phishing-campaigns\"} 0"
    ));
    assert!(body.contains(
        "awareness_section_up{platform=\"mimecast\",account=\"corp\",section=\"performance-details\"} 1"
    ));
    exporter.poller.stop();
}

/// A reload applies a diff: a `max_age`-only change restarts nothing (no new token, no new
/// poll), a changed account is restarted alone, a removed one stopped, an added one started.
#[tokio::test]
async fn a_reload_touches_only_what_changed() {
    use awareness_sim::cyberpilot::{self, CyberPilotOptions};
    let cp_options = CyberPilotOptions::default();
    let cp = cyberpilot::start(Arc::new(Population::generate(3, 20)), cp_options.clone())
        .await
        .unwrap();
    let auth = SimAuth::demo_oauth2();
    let mc = mimecast::start(
        Arc::new(Population::generate(4, 20)),
        MimecastOptions {
            auth: auth.clone(),
            ..MimecastOptions::default()
        },
    )
    .await
    .unwrap();
    let text = |max_age: &str, mc_interval: &str, with_cp: bool| {
        let cp_block = if with_cp {
            format!(
                "{}{}",
                cp_options.account_block(&cp, "acme"),
                cp_options.login_table(&cp)
            )
        } else {
            String::new()
        };
        format!(
            "[poll]\nmax_age = \"{max_age}\"\ntimeout = \"5s\"\n\n{}interval = \"{mc_interval}\"\n\n{cp_block}",
            mimecast::account_block(&mc, "corp", &auth)
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text("6h", "30m", true)).unwrap();
    let config = registry::loader().load(&path).unwrap();
    let exporter = Exporter::start(config, Some(path.clone()));
    assert!(eventually(10, || exporter.store.ready()).await);
    let polls = |account: &str| {
        exporter
            .store
            .statuses(SystemTime::now())
            .into_iter()
            .find(|(k, _)| k.account == account)
            .map(|(_, s)| s.polls.values().sum::<u64>())
    };
    assert_eq!(
        (mc.control.token_requests(), cp.control.token_requests()),
        (1, 1)
    );

    // max_age only: nothing restarts, but the store takes the new max_age.
    std::fs::write(&path, text("2h", "30m", true)).unwrap();
    exporter.reload().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mc.control.token_requests(), 1, "no new Mimecast token");
    assert_eq!(cp.control.token_requests(), 1, "no new CyberPilot login");
    assert_eq!((polls("corp"), polls("acme")), (Some(1), Some(1)));
    assert_eq!(exporter.store.max_age(), Duration::from_secs(7200));

    // The Mimecast account changes: it alone restarts (a new token, a new poll).
    std::fs::write(&path, text("2h", "45m", true)).unwrap();
    exporter.reload().await.unwrap();
    assert!(eventually(10, || polls("corp") == Some(2)).await);
    assert_eq!(mc.control.token_requests(), 2);
    assert_eq!(cp.control.token_requests(), 1);
    assert_eq!(polls("acme"), Some(1));
    let body = exporter.store.render(SystemTime::now());
    assert!(body
        .contains("awareness_poll_interval_seconds{platform=\"mimecast\",account=\"corp\"} 2700"));

    // CyberPilot removed: its series go; added back: it starts again.
    std::fs::write(&path, text("2h", "45m", false)).unwrap();
    exporter.reload().await.unwrap();
    assert_eq!(polls("acme"), None);
    assert!(!exporter
        .store
        .render(SystemTime::now())
        .contains("account=\"acme\""));
    std::fs::write(&path, text("2h", "45m", true)).unwrap();
    exporter.reload().await.unwrap();
    assert!(eventually(10, || polls("acme") == Some(1)).await);
    assert_eq!(cp.control.token_requests(), 2);
    assert_eq!(mc.control.token_requests(), 2);
    exporter.poller.stop();
}

/// The demo (the default `demo` feature; scripts/test.sh checks a build without it refuses
/// `--demo`) starts a tenant per account and shows every health signal: all sources and
/// sections up, the counters there at 0 from the start, and no failure (the demo injects none).
/// In paused time: the simulated KnowBe4 tenant and the exporter's pacing share tokio's clock,
/// so its 4/s and 50/min cost no real time.
#[tokio::test(start_paused = true)]
async fn the_demo_exposes_every_health_signal_with_every_section_up() {
    // The small demo: the same tenants and sections, a tenth of the people.
    let demo = awareness_sim::demo::Demo::start_sized(awareness_sim::demo::Size::Small)
        .await
        .unwrap();
    let config = registry::loader()
        .parse(&demo.config_text(), "<demo>")
        .unwrap();
    let (accounts, sections_total) = (config.sources.len(), harness::section_count(&config));
    assert_eq!(accounts, demo.tenants().len());
    let exporter = Exporter::start(config, None);
    assert!(eventually(60, || exporter.store.ready()).await);
    exporter.poller.stop();
    let body = exporter.store.render(SystemTime::now());
    let s = samples(&body);
    let ups: Vec<(&String, &f64)> = s
        .iter()
        .filter(|(k, _)| k.starts_with("awareness_up{"))
        .collect();
    assert_eq!(ups.len(), accounts, "{ups:?}");
    assert!(ups.iter().all(|(_, v)| **v == 1.0), "{ups:?}");
    let sections: Vec<(&String, &f64)> = s
        .iter()
        .filter(|(k, _)| k.starts_with("awareness_section_up{"))
        .collect();
    assert_eq!(sections.len(), sections_total, "{sections:?}");
    assert!(sections.iter().all(|(_, v)| **v == 1.0), "{sections:?}");
    assert!(!s
        .keys()
        .any(|k| k.starts_with("awareness_api_request_failures_total{")));
    for name in [
        "awareness_rows_skipped_total{",
        "awareness_poll_interval_seconds{",
        "awareness_section_last_success_timestamp_seconds{",
    ] {
        assert!(s.keys().any(|k| k.starts_with(name)), "{name} missing");
    }
    let html = awareness_exporter::testing::landing::render(&exporter.store, SystemTime::now());
    assert!(html.contains("Demo mode"));
}

/// Stopping a poller (shutdown, or a reload that removes or restarts its source) stops the
/// poll it is running: its request, which the vendor never answers and which would wait an
/// hour for `poll.timeout`, is dropped at once, and with it the poll and its retries.
#[tokio::test]
async fn a_stopped_poller_stops_its_running_poll() {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = load(
        &format!(
            "[[mimecast]]\naccount = \"corp\"\nbase_url = \"{url}\"\nauth = \"oauth2\"\nclient_id = \"c\"\nclient_secret = \"s\"\n"
        ),
        3_600_000,
        20,
    );
    let exporter = Exporter::start(config, None);
    let accepted = tokio::time::timeout(Duration::from_secs(10), listener.accept()).await;
    let (mut request, _) = accepted.expect("the poll sends a request").unwrap();
    exporter.poller.stop();
    // Its connection closes: the read ends (EOF or reset) once the request is read.
    let mut buf = [0u8; 4096];
    let closed = async { while request.read(&mut buf).await.unwrap_or(0) > 0 {} };
    let closed = tokio::time::timeout(Duration::from_secs(10), closed).await;
    assert!(closed.is_ok(), "the running request was not dropped");
}
