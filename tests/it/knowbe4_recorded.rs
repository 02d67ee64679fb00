//! The KnowBe4 client against recorded bodies replayed as KnowBe4 sends them (the bodies'
//! meaning is checked in `sources::knowbe4::metrics::tests`; provenance in
//! tests/fixtures/knowbe4/README.md).

use crate::common;
use crate::common::harness::Counted as _;

use common::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/knowbe4/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A recorded body as KnowBe4 sends it: JSON, no rate-limit headers.
fn recorded(name: &str) -> awareness_sim::replay::Recorded {
    awareness_sim::replay::Recorded {
        status: 200,
        body: String::from_utf8(fixture(name)).unwrap(),
        headers: vec![(
            "content-type".into(),
            "application/json; charset=utf-8".into(),
        )],
    }
}

#[tokio::test]
async fn the_real_client_polls_the_recorded_bodies() {
    use awareness_sim::replay::{self, Replay};
    let replay = std::sync::Arc::new(Replay::default());
    // Pages of 2: a page of 2 or more asks for the next one, which is the recorded `[]`.
    replay
        .route("/v1/account", vec![recorded("rec_eu_account_trial.json")])
        .route(
            "/v1/users",
            vec![
                recorded("j1_users_trimmed.json"),
                recorded("rec_eu_empty_page.json"),
            ],
        )
        .route(
            "/v1/groups",
            vec![
                recorded("j1_groups.json"),
                recorded("rec_eu_empty_page.json"),
            ],
        )
        .route(
            "/v1/training/enrollments",
            vec![
                recorded("j1_training_enrollments.json"),
                recorded("xsoar_training_enrollments.json"),
                recorded("rec_eu_empty_page.json"),
            ],
        )
        .route(
            "/v1/training/campaigns",
            vec![
                recorded("j1_training_campaigns.json"),
                recorded("rec_eu_empty_page.json"),
            ],
        )
        .route(
            "/v1/phishing/security_tests",
            vec![recorded("sumo_security_tests_row_2023.json")],
        );
    let server = replay::start(replay.clone()).await.unwrap();
    let config = parse(&format!(
        "[[knowbe4]]\naccount = \"acme\"\nbase_url = \"{}\"\ntoken = \"k\"\npage_size = 2\n\
         requests_per_second = 1000\nrequests_per_minute = 60000\n",
        server.base_url()
    ));
    let (outcome, stats) = poll_once(&config).await;
    let got = samples(&text_of(&outcome));
    let acc = [("account", "acme")];
    assert_eq!(got[&series("awareness_knowbe4_risk_score", &acc)], 25.3);
    assert_eq!(
        got[&series("awareness_knowbe4_api_quota_limit", &acc)],
        2000.0,
        "a trial account has no seats"
    );
    let users: f64 = got
        .iter()
        .filter(|(k, _)| k.starts_with("awareness_knowbe4_users{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(users, 2.0);
    let enrollments: f64 = got
        .iter()
        .filter(|(k, _)| k.starts_with("awareness_knowbe4_enrollments{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(enrollments, 8.0, "the duplicate enrollment counts once");
    assert_eq!(
        got[&series(
            "awareness_knowbe4_security_test_phish_prone_ratio",
            &[
                ("account", "acme"),
                ("test_id", "8805725"),
                ("test", "Mar2023_NA_SUMOs")
            ]
        )],
        0.277
    );
    // 1 + 2 + 2 + 3 + 2 + 1 requests, and the exporter counts them against its quota.
    assert_eq!(stats.total_requests(), 11);
    assert_eq!(
        got[&series("awareness_knowbe4_api_poll_requests", &acc)],
        11.0
    );
    assert_eq!(
        got[&series("awareness_knowbe4_api_quota_remaining", &acc)],
        1989.0
    );
    // The client asked as the vendor documents.
    let paths: Vec<String> = replay.requests().into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths.iter().filter(|p| *p == "/v1/users").count(), 2);
}
