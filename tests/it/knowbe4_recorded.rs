//! KnowBe4 parsing and figures anchored in real and documented bodies (tests/fixtures/knowbe4,
//! provenance in its README): what each body means is checked against the vendor's own
//! numbers, not against our simulator.

use crate::common;

use std::time::Duration;

use awareness_exporter::config::MetricsConfig;
use awareness_exporter::model::SourceKey;
use awareness_exporter::snapshot::MetricsBuilder;
use awareness_exporter::sources::aggregate::SeenKeys;
use awareness_exporter::sources::decode::RowBudget;
use awareness_exporter::sources::knowbe4;
use awareness_exporter::sources::knowbe4::budget::{daily_quota, Plan};
use awareness_exporter::sources::knowbe4::metrics::{self, QuotaState};
use awareness_exporter::sources::knowbe4::models::*;
use awareness_exporter::sources::knowbe4::page::{decode, DecodedPage};
use common::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/knowbe4/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn page<T: Row>(name: &str) -> DecodedPage<T> {
    decode(&fixture(name), &RowBudget::new(10_000)).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

fn rows<T: Row>(name: &str) -> Vec<T> {
    let p = page::<T>(name);
    assert_eq!(p.skipped, 0, "{name}: every row parses");
    p.rows
}

fn account_of(name: &str) -> Account {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn render(f: impl FnOnce(&mut MetricsBuilder)) -> std::collections::BTreeMap<String, f64> {
    let mut b = MetricsBuilder::new();
    f(&mut b);
    let r = b.finish();
    samples(&awareness_exporter::snapshot::try_merge([&r]).unwrap())
}

fn enrollments(rows: Vec<Enrollment>) -> metrics::Enrollments {
    let mut acc = metrics::Enrollments::default();
    for r in rows {
        acc.add(r);
    }
    acc
}

/// The key of account `acme`'s enrollment count for `campaign` and `status`.
fn enrollment_series(campaign: &str, status: &str) -> String {
    series(
        "awareness_knowbe4_enrollments",
        &[
            ("account", "acme"),
            ("campaign", campaign),
            ("status", status),
        ],
    )
}

fn key() -> SourceKey {
    SourceKey::new(knowbe4::PLATFORM, "acme")
}

fn quota(seats: Option<u64>) -> QuotaState {
    QuotaState {
        plan: Plan::new(daily_quota(seats), 10, Duration::from_secs(3600)),
        used: 7,
        poll_requests: 7,
    }
}

#[test]
fn the_recorded_trial_account_has_no_seats_and_a_risk_score() {
    let a = account_of("rec_eu_account_trial.json");
    assert_eq!(a.name.as_deref(), Some("JupiterOne, Inc"));
    assert_eq!(a.account_type.as_deref(), Some("trial"));
    assert_eq!(a.number_of_seats, None, "trial accounts send no seats");
    let got = render(|b| metrics::account(b, "acme", &a, &quota(None)));
    let l = [("account", "acme")];
    assert_eq!(got[&series("awareness_knowbe4_risk_score", &l)], 25.3);
    assert_eq!(
        got[&series("awareness_knowbe4_api_quota_limit", &l)],
        2000.0
    );
    assert_eq!(
        got[&series("awareness_knowbe4_api_quota_remaining", &l)],
        1993.0
    );
    assert!(!got.contains_key(&series("awareness_knowbe4_licensed_users", &l)));
}

#[test]
fn documented_accounts_give_seats_and_a_null_risk_score_is_no_sample() {
    let doc = account_of("doc_account.json");
    assert_eq!(
        (doc.number_of_seats, doc.current_risk_score),
        (Some(25.0), Some(45.742))
    );
    let xsoar = account_of("xsoar_account.json");
    assert_eq!(
        (xsoar.number_of_seats, xsoar.current_risk_score),
        (Some(1200.0), None)
    );
    let got = render(|b| metrics::account(b, "acme", &xsoar, &quota(Some(1200))));
    let l = [("account", "acme")];
    assert_eq!(
        got[&series("awareness_knowbe4_api_quota_limit", &l)],
        3200.0
    );
    assert_eq!(got[&series("awareness_knowbe4_licensed_users", &l)], 1200.0);
    assert!(!got.contains_key(&series("awareness_knowbe4_risk_score", &l)));
}

#[test]
fn recorded_security_tests_keep_the_vendors_counts_and_fraction() {
    let t: Vec<SecurityTest> = rows("rec_eu_campaign_229584_security_tests.json");
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].pst_id.as_deref(), Some("509579"));
    assert_eq!(
        t[0].outcomes(),
        vec![
            ("scheduled", 2.0),
            ("delivered", 2.0),
            ("opened", 1.0),
            ("clicked", 0.0),
            ("replied", 0.0),
            ("attachment_opened", 0.0),
            ("macro_enabled", 0.0),
            ("data_entered", 0.0),
            ("reported", 0.0),
            ("bounced", 0.0),
        ],
        "2021 wire: no qr_code_scanned_count, so no such outcome"
    );
    // A test in status Error: scheduled_count null is "not reported", not 0.
    let err: Vec<SecurityTest> = rows("rec_eu_campaign_229823_security_tests_error.json");
    assert_eq!(err[0].status.as_deref(), Some("Error"));
    assert_eq!(err[0].started_at, None);
    assert!(!err[0].outcomes().iter().any(|(o, _)| *o == "scheduled"));
    let got = render(|b| metrics::phishing(b, "acme", &err, 100));
    assert!(!got.keys().any(|k| k.contains("outcome=\"scheduled\"")));
    assert_eq!(
        got[&series(
            "awareness_knowbe4_security_tests",
            &[("account", "acme"), ("status", "error")]
        )],
        1.0
    );
}

#[test]
fn a_real_production_test_gives_a_fraction_of_delivered() {
    let t: Vec<SecurityTest> = rows("sumo_security_tests_row_2023.json");
    let got = render(|b| metrics::phishing(b, "acme", &t, 100));
    let l = |o| {
        series(
            "awareness_knowbe4_security_test_recipients",
            &[
                ("account", "acme"),
                ("test_id", "8805725"),
                ("test", "Mar2023_NA_SUMOs"),
                ("outcome", o),
            ],
        )
    };
    assert_eq!(got[&l("delivered")], 625.0);
    assert_eq!(got[&l("opened")], 328.0);
    assert_eq!(got[&l("clicked")], 171.0);
    assert_eq!(got[&l("replied")], 2.0);
    assert_eq!(got[&l("qr_code_scanned")], 0.0);
    let ratio = got[&series(
        "awareness_knowbe4_security_test_phish_prone_ratio",
        &[
            ("account", "acme"),
            ("test_id", "8805725"),
            ("test", "Mar2023_NA_SUMOs"),
        ],
    )];
    // Exported as sent: already a fraction (173 failures / 625 delivered = 0.2768).
    assert_eq!(ratio, 0.277);
    assert!((ratio - 173.0 / 625.0).abs() < 0.001);
    // Per target group.
    assert_eq!(
        got[&series(
            "awareness_knowbe4_group_security_test_recipients",
            &[
                ("account", "acme"),
                ("group", "Monthly Campaign - NA"),
                ("outcome", "clicked")
            ]
        )],
        171.0
    );
}

#[test]
fn the_documented_test_sample_with_its_hyphenated_landing_page_parses() {
    let t: Vec<SecurityTest> = rows("doc_phishing_security_tests.json");
    assert_eq!(t[0].phish_prone_ratio(), Some(0.5));
    // The sample has delivered 4 < opened 24: figures are published as sent, not "fixed".
    assert_eq!(
        (t[0].delivered_count, t[0].opened_count),
        (Some(4.0), Some(24.0))
    );
}

#[test]
fn user_phish_prone_percent_becomes_a_ratio_by_department_and_group() {
    let users: Vec<User> = rows("j1_users_trimmed.json");
    let groups: Vec<Group> = rows("j1_groups.json");
    assert_eq!(users.len(), 2);
    assert_eq!(groups.len(), 8);
    assert!(
        groups.iter().all(|g| g.current_risk_score.is_none()),
        "old samples have none"
    );
    let m = MetricsConfig {
        per_user: true,
        ..MetricsConfig::default()
    };
    let got = render(|b| metrics::users(b, &key(), &users, &groups, &m));
    let d = |name, dept| series(name, &[("account", "acme"), ("department", dept)]);
    assert_eq!(got[&d("awareness_knowbe4_users", "Sales")], 1.0);
    assert_eq!(got[&d("awareness_knowbe4_users", "Production")], 1.0);
    // 13.235 % and the integer 76 %.
    assert!((got[&d("awareness_knowbe4_phish_prone_ratio", "Sales")] - 0.13235).abs() < 1e-12);
    assert_eq!(
        got[&d("awareness_knowbe4_phish_prone_ratio", "Production")],
        0.76
    );
    let account = got[&series(
        "awareness_knowbe4_account_phish_prone_ratio",
        &[("account", "acme")],
    )];
    assert!((account - (0.13235 + 0.76) / 2.0).abs() < 1e-12);
    // William is in 6276 and 1759; Linda's group 3264 is not among the active groups.
    let g = |name, group| series(name, &[("account", "acme"), ("group", group)]);
    assert_eq!(
        got[&g("awareness_knowbe4_group_users", "Customer Service")],
        1.0
    );
    assert_eq!(
        got[&g(
            "awareness_knowbe4_group_users",
            "Clickers in the past 90 days"
        )],
        1.0
    );
    assert_eq!(got[&g("awareness_knowbe4_group_users", "Sales")], 0.0);
    assert!(
        (got[&g(
            "awareness_knowbe4_group_phish_prone_ratio",
            "Customer Service"
        )] - 0.13235)
            .abs()
            < 1e-12
    );
    assert!(!got.keys().any(|k| k.contains("group=\"3264")));
    let e = |name, email| series(name, &[("account", "acme"), ("email", email)]);
    assert_eq!(
        got[&e(
            "awareness_knowbe4_user_phish_prone_ratio",
            "LStephens@kb4-demo.com"
        )],
        0.76
    );
    assert!(!got
        .keys()
        .any(|k| k.starts_with("awareness_knowbe4_user_risk_score")));
}

#[test]
fn documented_lone_objects_read_as_one_row() {
    let users: Vec<User> = rows("doc_users.json");
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].groups, ["3264"]);
    assert!((users[0].phish_prone_ratio().unwrap() - 0.14235).abs() < 1e-12);
    let groups: Vec<Group> = rows("doc_groups.json");
    let got = render(|b| metrics::users(b, &key(), &users, &groups, &MetricsConfig::default()));
    assert_eq!(
        got[&series(
            "awareness_knowbe4_group_risk_score",
            &[("account", "acme"), ("group", "Customer Service")]
        )],
        45.742
    );
    assert!(
        !got.keys().any(|k| k.contains("email=")),
        "no per-user series by default"
    );
    let e: Vec<Enrollment> = rows("doc_training_enrollments.json");
    assert_eq!(e[0].status_label(), "passed");
    // `content` is an array of arrays in this sample: ignored, the row still parses.
    let c: Vec<TrainingCampaign> = rows("doc_training_campaigns.json");
    assert_eq!(c[0].status.as_deref(), Some("Completed"));
}

#[test]
fn enrollments_by_campaign_and_status_with_duplicates_dropped() {
    let p = page::<Enrollment>("j1_training_enrollments.json");
    assert_eq!(p.len, 5);
    let mut seen = SeenKeys::default();
    let mut first_time = |r: &Enrollment| r.key().is_some_and(|k| seen.first_time(&k));
    let e: Vec<Enrollment> = p.rows.into_iter().filter(|r| first_time(r)).collect();
    // enrollment 2525523 appears three times: twice identical, once in another campaign.
    assert_eq!(e.len(), 4);
    let mut more: Vec<Enrollment> = rows("xsoar_training_enrollments.json");
    more.retain(|r| first_time(r));
    assert_eq!(more.len(), 4, "64-bit user ids are fine");
    let all: Vec<Enrollment> = e.into_iter().chain(more).collect();
    let campaigns: Vec<TrainingCampaign> = rows("j1_training_campaigns.json");
    let got = render(|b| metrics::training(b, "acme", &enrollments(all), &campaigns));
    let c = enrollment_series;
    assert_eq!(got[&c("New Employee Policies 2", "not_started")], 1.0);
    // One from JupiterOne's data, one from XSOAR's (another user).
    assert_eq!(got[&c("New Employee Policies", "passed")], 2.0);
    assert_eq!(got[&c("Monthly Training", "in_progress")], 1.0);
    assert_eq!(got[&c("Sales Ongoing Campaign", "passed")], 1.0);
    assert_eq!(got[&c("Sales Ongoing Campaign", "in_progress")], 1.0);
    let total: f64 = got
        .iter()
        .filter(|(k, _)| k.starts_with("awareness_knowbe4_enrollments{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(total, 8.0);
    let m = |module, status| {
        series(
            "awareness_knowbe4_module_enrollments",
            &[("account", "acme"), ("module", module), ("status", status)],
        )
    };
    assert_eq!(got[&m("Acceptable Use Policy", "passed")], 2.0);
    let campaigns_total: f64 = got
        .iter()
        .filter(|(k, _)| k.starts_with("awareness_knowbe4_training_campaigns{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(campaigns_total, campaigns.len() as f64);
}

#[test]
fn past_due_is_its_own_status_and_unknown_statuses_are_kept() {
    let rows: Vec<Enrollment> = serde_json::from_str(
        r#"[{"enrollment_id":1,"campaign_name":"C","status":"Past Due","user":{"id":1}},
            {"enrollment_id":2,"campaign_name":"C","status":"Something New","user":{"id":1}},
            {"enrollment_id":3,"campaign_name":"C","status":null,"user":{"id":1}}]"#,
    )
    .unwrap();
    let got = render(|b| metrics::training(b, "acme", &enrollments(rows), &[]));
    assert_eq!(
        got[&series("awareness_knowbe4_users_overdue", &[("account", "acme")])],
        1.0
    );
    for status in ["past_due", "something_new", "unknown"] {
        let k = series(
            "awareness_knowbe4_enrollments",
            &[("account", "acme"), ("campaign", "C"), ("status", status)],
        );
        assert_eq!(got.get(&k), Some(&1.0), "{k}");
    }
}

#[test]
fn the_empty_page_past_the_end_is_an_empty_array() {
    let p = page::<SecurityTest>("rec_eu_empty_page.json");
    assert_eq!((p.len, p.rows.len()), (0, 0));
}

#[test]
fn rare_campaign_names_fold_into_other_beyond_max_label_values() {
    let rows: Vec<Enrollment> = serde_json::from_str(
        r#"[{"enrollment_id":1,"campaign_name":"A","module_name":"M","status":"Passed","user":{"id":1}},
            {"enrollment_id":2,"campaign_name":"A","module_name":"M","status":"Past Due","user":{"id":2}},
            {"enrollment_id":3,"campaign_name":"B","module_name":"M","status":"Passed","user":{"id":3}},
            {"enrollment_id":4,"campaign_name":"B","module_name":"N","status":"Passed","user":{"id":4}},
            {"enrollment_id":5,"campaign_name":"C","module_name":"O","status":"Passed","user":{"id":5}}]"#,
    )
    .unwrap();
    let mut acc = enrollments(rows);
    let stats = awareness_exporter::stats::ApiStats::default();
    acc.fold_rare(&key(), 1, &stats);
    let got = render(|b| metrics::training(b, "acme", &acc, &[]));
    let c = enrollment_series;
    // A and B have two each: A wins the tie by name; B and C fold.
    assert_eq!(got[&c("A", "passed")], 1.0);
    assert_eq!(got[&c("A", "past_due")], 1.0);
    assert_eq!(got[&c("__other__", "passed")], 3.0);
    assert_eq!(got.keys().filter(|k| k.contains("campaign=")).count(), 3);
    let snap = stats.snapshot();
    assert_eq!(snap.labels_folded.get("campaign"), Some(&2));
    assert_eq!(snap.labels_folded.get("module"), Some(&2));
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
