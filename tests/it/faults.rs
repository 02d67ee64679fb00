//! Hostile vendors: every fault the simulators can inject, against every vendor. For each, the
//! poll fails (or succeeds) truthfully, the failure counters say why, the last good data is
//! kept, and the number of requests stays within the retry budget.

use crate::common;
use crate::common::harness::Counted as _;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use awareness_exporter::app::{self, Exporter};
use awareness_exporter::model::FailureReason;
use awareness_sim::cyberpilot::{self, CyberPilotOptions};
use awareness_sim::mimecast::{self, MimecastOptions, SimAuth};
use awareness_sim::{Fault, Population, SimServer};
use common::harness;
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

fn fix_timeout(mut c: awareness_exporter::config::Config) -> awareness_exporter::config::Config {
    c.poll.timeout = Duration::from_secs(1);
    c
}

/// Every fault each vendor's simulator can inject (the faults all answer, and its own), against
/// one small tenant of every vendor (`awareness_sim::fault_tenants`, one line per vendor):
/// the poll fails with the reason the simulator names, the data requests stay within the
/// retry and paging budgets, our request count matches the server's, and the last good data
/// is kept. Connections refused are `connect`; rows of the wrong types are skipped and counted.
/// Paused time: the slow answers, timeouts and backoffs take no real time.
#[tokio::test(start_paused = true)]
async fn every_vendor_fails_truthfully_within_budget_and_keeps_its_last_good_data() {
    const SETTINGS: &str = "[poll]\ndeadline = \"30s\"\nmax_attempts = 3\nretry_backoff = \"10ms\"\nmax_pages = 8\nmax_body_bytes = 262144\n";
    for tenant in awareness_sim::fault_tenants().await.unwrap() {
        // Each fault tenant carries the keys its vendor takes (page_size where it has one).
        let mut config = harness::load(&harness::config_text(SETTINGS, &tenant, ""));
        config.poll.timeout = Duration::from_millis(600);
        let key = config.sources[0].key();
        let prefix = format!("awareness_{}_", tenant.platform);
        let data_series = |text: &str| -> BTreeMap<String, f64> {
            samples(text)
                .into_iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .collect()
        };
        let store = store_with(&config);
        let good = harness::poll(&config).await;
        assert!(
            good.outcome.ok(),
            "{}: {:?}",
            tenant.platform,
            good.outcome.first_error()
        );
        let t0 = SystemTime::now();
        store.publish(&key, good.outcome, Duration::ZERO, t0);
        let baseline: Vec<String> = data_series(&store.render(t0)).into_keys().collect();
        assert!(!baseline.is_empty(), "{}", tenant.platform);
        let control = tenant.control();
        let up = format!(
            "awareness_up{{platform=\"{}\",account=\"faulty\"}} 0.0",
            tenant.platform
        );

        for (fault, reason) in awareness_sim::COMMON_FAULTS.iter().chain(tenant.faults) {
            let what = format!("{} {fault:?}", tenant.platform);
            control.clear_faults();
            control.reset_counters();
            control.set_fault(fault.clone());
            let bad = harness::poll(&config).await;
            assert!(!bad.outcome.ok(), "{what} must fail the poll");
            let failures = bad.stats.snapshot().failures;
            assert!(
                failures.keys().any(|(_, r)| r.as_str() == *reason),
                "{what}: expected {reason}, got {failures:?}"
            );
            // At most `max_attempts` a listing (a final answer is not retried, but on a loaded
            // machine its slow answer may time out first), and one listing per campaign ends at
            // poll.max_pages however many campaigns there are.
            let per_listing = match fault {
                Fault::EndlessPaging => u64::MAX,
                _ => ATTEMPTS,
            };
            if *fault == Fault::EndlessPaging {
                let e = bad.outcome.first_error().unwrap_or_default();
                assert!(e.contains("poll.max_pages"), "{what}: {e}");
            }
            // Every listing the source reads has its counter from the start, a token
            // endpoint's too once asked (the server's own count may hold stragglers of the case
            // before).
            let listings = bad.stats.snapshot().requests.len() as u64;
            let data = bad.stats.total_requests();
            assert!(
                data <= per_listing.saturating_mul(listings),
                "{what}: {data} requests, {failures:?}"
            );
            store.publish(
                &key,
                bad.outcome,
                Duration::ZERO,
                t0 + Duration::from_secs(1),
            );
            let body = store.render(t0 + Duration::from_secs(1));
            // Kept: every series is still there (a section the fault did not reach, such as an
            // account object, may have been refreshed).
            let kept: Vec<String> = data_series(&body).into_keys().collect();
            assert!(kept == baseline, "{what}: last good data kept");
            assert!(body.contains(&up), "{what}");
        }

        control.clear_faults();
        control.set_refuse(true);
        let refused = harness::poll(&config).await;
        assert!(!refused.outcome.ok());
        assert!(
            refused.stats.failures(FailureReason::Connect) >= ATTEMPTS,
            "{}",
            tenant.platform
        );
        control.set_refuse(false);

        control.set_fault(Fault::WrongTypes);
        let skipped = harness::poll(&config).await;
        assert!(
            skipped.outcome.ok(),
            "{}: {:?}",
            tenant.platform,
            skipped.outcome.first_error()
        );
        assert!(skipped.stats.snapshot().rows_skipped.values().sum::<u64>() > 0);
        control.clear_faults();
    }
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

/// Paused time: a scrape that waited on the 5 s vendor would meet the client's 2 s timeout
/// first, and the pauses between scrapes cost no real time.
#[tokio::test(start_paused = true)]
async fn metrics_keep_answering_while_a_vendor_hangs() {
    let sim = cyberpilot::start(
        Arc::new(Population::generate(8, 30)),
        CyberPilotOptions::default(),
    )
    .await
    .unwrap();
    let config = fix_timeout(parse(&cp_config(&sim, false, "")));
    let server_config = config.server.clone();
    let exporter = Exporter::start_with(config, None, awareness_exporter::Shard::ALL, |p| {
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
