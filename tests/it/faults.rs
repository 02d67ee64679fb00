//! Hostile vendors: every fault the simulators can inject, against both sources. For each, the
//! poll fails (or succeeds) truthfully, the failure counters say why, the last good data is
//! kept, and the number of requests stays within the retry budget.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use awareness_exporter::app::{self, Exporter};
use awareness_exporter::model::FailureReason;
use awareness_sim::cyberpilot::{self, CyberPilotOptions};
use awareness_sim::mimecast::{self, MimecastOptions, SimAuth};
use awareness_sim::{Fault, Population, SimServer};
use common::*;

const ATTEMPTS: u64 = 3;

fn cp_config(server: &SimServer, login: bool, extra: &str) -> String {
    let o = CyberPilotOptions::default();
    let auth = if login {
        o.login_table(server)
    } else {
        o.token_key()
    };
    format!(
        "[poll]\ntimeout = \"1s\"\nmax_pages = 30\nmax_body_bytes = 1048576\n{extra}\n{}page_size = 100\n{auth}",
        o.account_block(server, "acme")
    )
}

fn data_series(text: &str) -> BTreeMap<String, f64> {
    samples(text)
        .into_iter()
        .filter(|(k, _)| {
            k.starts_with("awareness_cyberpilot_") || k.starts_with("awareness_mimecast_")
        })
        .collect()
}

fn fix_timeout(mut c: awareness_exporter::config::Config) -> awareness_exporter::config::Config {
    c.poll.timeout = Duration::from_secs(1);
    c
}

/// (fault, expected failure reason, upper bound of data requests in the failing poll)
fn cyberpilot_cases() -> Vec<(Fault, FailureReason, u64)> {
    vec![
        (
            Fault::Status {
                code: 500,
                times: 1000,
            },
            FailureReason::Http,
            ATTEMPTS,
        ),
        (
            Fault::Status {
                code: 503,
                times: 1000,
            },
            FailureReason::Http,
            ATTEMPTS,
        ),
        (
            Fault::RateLimit {
                times: 1000,
                reset_ms: 20,
            },
            FailureReason::RateLimited,
            ATTEMPTS,
        ),
        (
            Fault::Slow(Duration::from_millis(1500)),
            FailureReason::Timeout,
            ATTEMPTS,
        ),
        (Fault::Truncated, FailureReason::Decode, 1),
        (Fault::Malformed, FailureReason::Decode, 1),
        (Fault::ErrorIn200, FailureReason::Decode, 1),
        (Fault::HugeBody(3 * 1024 * 1024), FailureReason::Decode, 1),
        (Fault::EndlessPaging, FailureReason::Decode, 31),
        (
            Fault::Status {
                code: 404,
                times: 1000,
            },
            FailureReason::Http,
            1,
        ),
    ]
}

#[tokio::test]
async fn cyberpilot_faults_keep_last_good_data_and_count_truthfully() {
    let sim = cyberpilot::start(
        Arc::new(Population::generate(8, 250)),
        CyberPilotOptions::default(),
    )
    .await
    .unwrap();
    let config = fix_timeout(parse(&cp_config(&sim, false, "")));
    let key = config.sources[0].key();
    let store = store_with(&config);
    let (good, _) = poll_once(&config).await;
    assert!(good.ok());
    let t0 = SystemTime::now();
    store.publish(&key, good, Duration::ZERO, t0);
    let baseline = data_series(&store.render(t0));
    assert!(!baseline.is_empty());

    for (fault, reason, budget) in cyberpilot_cases() {
        sim.control.clear_faults();
        sim.control.reset_counters();
        sim.control.set_fault(fault.clone());
        let (outcome, stats) = poll_once(&config).await;
        assert!(!outcome.ok(), "{fault:?} must fail the poll");
        assert!(
            stats.failures(reason) >= 1,
            "{fault:?}: expected a {reason} failure, got {:?}",
            stats.snapshot().failures
        );
        let requests = sim.control.requests("users-summary");
        assert!(
            requests <= budget,
            "{fault:?}: {requests} requests > budget {budget}"
        );
        assert_eq!(
            stats.requests("users-summary"),
            requests,
            "{fault:?}: our count matches the server's"
        );
        store.publish(&key, outcome, Duration::ZERO, t0 + Duration::from_secs(1));
        let body = store.render(t0 + Duration::from_secs(1));
        assert_eq!(
            data_series(&body),
            baseline,
            "{fault:?}: last good data kept"
        );
        assert!(body.contains("awareness_up{platform=\"cyberpilot\",account=\"acme\"} 0.0"));
    }

    // Vendor down: connections refused or reset.
    sim.control.clear_faults();
    sim.control.set_refuse(true);
    let (outcome, stats) = poll_once(&config).await;
    assert!(!outcome.ok());
    assert_eq!(stats.failures(FailureReason::Connect), ATTEMPTS);
    sim.control.set_refuse(false);

    // Rows of the wrong type are skipped and counted, the rest published.
    sim.control.set_fault(Fault::WrongTypes);
    let (outcome, stats) = poll_once(&config).await;
    assert!(outcome.ok());
    assert!(stats.snapshot().rows_skipped.values().sum::<u64>() > 0);
}

#[tokio::test]
async fn a_failing_token_endpoint_is_an_auth_failure() {
    let sim = cyberpilot::start(
        Arc::new(Population::generate(8, 20)),
        CyberPilotOptions::default(),
    )
    .await
    .unwrap();
    sim.control.set_fault(Fault::TokenFailure);
    let config = fix_timeout(parse(&cp_config(&sim, true, "")));
    let (outcome, stats) = poll_once(&config).await;
    assert!(!outcome.ok());
    assert_eq!(stats.failures(FailureReason::Auth), 1);
    assert_eq!(sim.control.requests("users-summary"), 0);

    let auth = SimAuth::demo_oauth2();
    let mc = mimecast::start(
        Arc::new(Population::generate(8, 20)),
        MimecastOptions {
            auth: auth.clone(),
            ..MimecastOptions::default()
        },
    )
    .await
    .unwrap();
    mc.control.set_fault(Fault::TokenFailure);
    let config = parse(&mimecast::account_block(&mc, "m", &auth));
    let (outcome, stats) = poll_once(&config).await;
    assert!(outcome.sections.iter().all(|s| s.result.is_err()));
    assert!(stats.failures(FailureReason::Auth) >= 1);
    // The token endpoint is asked once per section at most, not hammered.
    assert!(
        mc.control.token_requests() <= 6,
        "{}",
        mc.control.token_requests()
    );
}

#[tokio::test]
async fn mimecast_faults_fail_truthfully_within_budget() {
    let auth = SimAuth::demo_hmac();
    let sim = mimecast::start(
        Arc::new(Population::generate(8, 120)),
        MimecastOptions {
            auth: auth.clone(),
            ..MimecastOptions::default()
        },
    )
    .await
    .unwrap();
    let config = fix_timeout(parse(&format!(
        "[poll]\ntimeout = \"1s\"\nmax_pages = 20\nmax_body_bytes = 1048576\n{}page_size = 100\nendpoints = [\"watchlist-details\"]\n",
        mimecast::account_block(&sim, "m", &auth)
    )));
    let cases = vec![
        (
            Fault::Status {
                code: 502,
                times: 1000,
            },
            FailureReason::Http,
            ATTEMPTS,
        ),
        (
            Fault::RateLimit {
                times: 1000,
                reset_ms: 20,
            },
            FailureReason::RateLimited,
            ATTEMPTS,
        ),
        (
            Fault::Slow(Duration::from_millis(1500)),
            FailureReason::Timeout,
            ATTEMPTS,
        ),
        (Fault::Truncated, FailureReason::Decode, 1),
        (Fault::Malformed, FailureReason::Decode, 1),
        (Fault::HugeBody(3 * 1024 * 1024), FailureReason::Decode, 1),
        (Fault::ErrorIn200, FailureReason::ApiError, 1),
        (Fault::EndlessPaging, FailureReason::Decode, 21),
    ];
    for (fault, reason, budget) in cases {
        sim.control.clear_faults();
        sim.control.reset_counters();
        sim.control.set_fault(fault.clone());
        let (outcome, stats) = poll_once(&config).await;
        assert!(!outcome.ok(), "{fault:?}");
        assert!(
            stats.failures(reason) >= 1,
            "{fault:?}: {:?}",
            stats.snapshot().failures
        );
        let requests = sim.control.requests("company/get-watchlist-details");
        assert!(requests <= budget, "{fault:?}: {requests} > {budget}");
    }
}

#[tokio::test]
async fn metrics_keep_answering_while_a_vendor_hangs() {
    let sim = cyberpilot::start(
        Arc::new(Population::generate(8, 30)),
        CyberPilotOptions::default(),
    )
    .await
    .unwrap();
    let config = fix_timeout(parse(&cp_config(&sim, false, "")));
    let server_config = config.server.clone();
    let exporter = Exporter::start_with(config, None, |p| {
        p.with_failure_backoff(Duration::from_millis(50))
    });
    let handle = app::serve(exporter.clone(), "127.0.0.1:0", &server_config)
        .await
        .unwrap();
    assert!(eventually(10, || exporter.store.ready()).await);
    sim.control.set_fault(Fault::Slow(Duration::from_secs(5)));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    for _ in 0..50 {
        let r = client
            .get(format!("http://{}/metrics", handle.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("awareness_cyberpilot_users{"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    exporter.poller.stop();
}
