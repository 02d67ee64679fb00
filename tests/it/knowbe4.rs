//! The KnowBe4 source against the simulated KnowBe4 API: aggregates checked against figures
//! computed here from the simulator's wire rows, paging edge cases, the quota, errors.

use crate::common;
use crate::common::harness::Counted as _;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use awareness_exporter::config::{MetricsConfig, PollConfig, SourceConfig};
use awareness_exporter::model::{FailureReason, PollOutcome};
use awareness_exporter::testing::sources::knowbe4::config::KnowBe4Config;
use awareness_exporter::testing::sources::knowbe4::PLATFORM;
use awareness_exporter::testing::sources::Source;
use awareness_exporter::testing::stats::ApiStats;
use awareness_sim::knowbe4::{self, KnowBe4Options, KnowBe4Tenant};
use awareness_sim::{Fault, Population, SimServer};
use common::*;
use serde_json::Value;

/// A sim without the vendor's pace limits (the exporter is told to go fast too).
fn fast() -> KnowBe4Options {
    KnowBe4Options {
        per_second: None,
        per_minute: None,
        ..KnowBe4Options::default()
    }
}

/// The account's wire rows, as the simulator builds them from a population.
fn account(users: usize, options: &KnowBe4Options) -> Arc<KnowBe4Tenant> {
    let population = Population::generate(5, users);
    Arc::new(KnowBe4Tenant::from_population(&population, options.seed))
}

async fn sim(users: usize, options: KnowBe4Options) -> (SimServer, Arc<KnowBe4Tenant>) {
    let population = Arc::new(Population::generate(5, users));
    let tenant = account(users, &options);
    let server = knowbe4::start(population, options).await.unwrap();
    (server, tenant)
}

fn config(server: &SimServer, page_size: usize) -> KnowBe4Config {
    let mut c = knowbe4_config(&server.base_url(), &KnowBe4Options::default().api_key);
    c.page_size = page_size;
    c.requests_per_second = 10_000;
    c.requests_per_minute = 100_000;
    c
}

fn poll_config() -> PollConfig {
    PollConfig {
        timeout: Duration::from_secs(5),
        retry_backoff: Duration::from_millis(10),
        max_attempts: 3,
        ..PollConfig::default()
    }
}

/// The source of `c`, built as the exporter builds it (with KnowBe4's HTTP semantics).
fn source(
    c: KnowBe4Config,
    metrics: MetricsConfig,
    poll: PollConfig,
) -> (Arc<dyn Source>, Arc<ApiStats>) {
    harness::build_account(&SourceConfig::new(PLATFORM, Arc::new(c)), poll, metrics)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn active(t: &KnowBe4Tenant) -> Vec<&Value> {
    t.users.iter().filter(|u| u["status"] == "active").collect()
}

fn status_label(s: &str) -> String {
    s.to_lowercase().replace(' ', "_")
}

/// Every figure, computed from the wire rows.
fn expected(t: &KnowBe4Tenant) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let acc = [("account", "acme")];
    out.insert(
        series("awareness_knowbe4_risk_score", &acc),
        f(&t.account["current_risk_score"]),
    );
    out.insert(
        series("awareness_knowbe4_licensed_users", &acc),
        t.seats() as f64,
    );
    out.insert(
        series("awareness_knowbe4_api_quota_limit", &acc),
        2000.0 + t.seats() as f64,
    );
    let users = active(t);
    let mut by_dept: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut by_group: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for u in &users {
        let e = by_dept.entry(s(&u["department"])).or_default();
        e.0 += 1.0;
        e.1 += f(&u["phish_prone_percentage"]) / 100.0;
        for g in u["groups"].as_array().unwrap() {
            let e = by_group.entry(g.to_string()).or_default();
            e.0 += 1.0;
            e.1 += f(&u["phish_prone_percentage"]) / 100.0;
        }
    }
    for (d, (n, sum)) in &by_dept {
        let l = [("account", "acme"), ("department", d.as_str())];
        out.insert(series("awareness_knowbe4_users", &l), *n);
        out.insert(series("awareness_knowbe4_phish_prone_ratio", &l), sum / n);
    }
    let all: f64 = users
        .iter()
        .map(|u| f(&u["phish_prone_percentage"]) / 100.0)
        .sum();
    out.insert(
        series("awareness_knowbe4_account_phish_prone_ratio", &acc),
        all / users.len() as f64,
    );
    for g in &t.groups {
        let name = s(&g["name"]);
        let l = [("account", "acme"), ("group", name.as_str())];
        if !g["current_risk_score"].is_null() {
            out.insert(
                series("awareness_knowbe4_group_risk_score", &l),
                f(&g["current_risk_score"]),
            );
        }
        let (n, sum) = by_group
            .get(&g["id"].to_string())
            .copied()
            .unwrap_or_default();
        out.insert(series("awareness_knowbe4_group_users", &l), n);
        assert_eq!(
            n,
            f(&g["member_count"]),
            "the simulator's member_count agrees"
        );
        if n > 0.0 {
            out.insert(
                series("awareness_knowbe4_group_phish_prone_ratio", &l),
                sum / n,
            );
        }
    }
    for e in &t.enrollments {
        let k = series(
            "awareness_knowbe4_enrollments",
            &[
                ("account", "acme"),
                ("campaign", &s(&e["campaign_name"])),
                ("status", &status_label(&s(&e["status"]))),
            ],
        );
        *out.entry(k).or_default() += 1.0;
        let k = series(
            "awareness_knowbe4_module_enrollments",
            &[
                ("account", "acme"),
                ("module", &s(&e["module_name"])),
                ("status", &status_label(&s(&e["status"]))),
            ],
        );
        *out.entry(k).or_default() += 1.0;
    }
    let overdue: std::collections::BTreeSet<String> = t
        .enrollments
        .iter()
        .filter(|e| e["status"] == "Past Due")
        .map(|e| e["user"]["id"].to_string())
        .collect();
    assert!(!overdue.is_empty());
    out.insert(
        series("awareness_knowbe4_users_overdue", &acc),
        overdue.len() as f64,
    );
    for c in &t.training_campaigns {
        let k = series(
            "awareness_knowbe4_training_campaigns",
            &[
                ("account", "acme"),
                ("status", &status_label(&s(&c["status"]))),
            ],
        );
        *out.entry(k).or_default() += 1.0;
    }
    let outcomes = [
        ("scheduled_count", "scheduled"),
        ("delivered_count", "delivered"),
        ("opened_count", "opened"),
        ("clicked_count", "clicked"),
        ("replied_count", "replied"),
        ("attachment_open_count", "attachment_opened"),
        ("macro_enabled_count", "macro_enabled"),
        ("data_entered_count", "data_entered"),
        ("qr_code_scanned_count", "qr_code_scanned"),
        ("reported_count", "reported"),
        ("bounced_count", "bounced"),
    ];
    for test in &t.security_tests {
        let (id, name) = (s(&test["pst_id"]), s(&test["name"]));
        let k = series(
            "awareness_knowbe4_security_tests",
            &[
                ("account", "acme"),
                ("status", &status_label(&s(&test["status"]))),
            ],
        );
        *out.entry(k).or_default() += 1.0;
        out.insert(
            series(
                "awareness_knowbe4_security_test_phish_prone_ratio",
                &[("account", "acme"), ("test_id", &id), ("test", &name)],
            ),
            f(&test["phish_prone_percentage"]),
        );
        for (field, outcome) in outcomes {
            if test[field].is_null() {
                continue;
            }
            out.insert(
                series(
                    "awareness_knowbe4_security_test_recipients",
                    &[
                        ("account", "acme"),
                        ("test_id", &id),
                        ("test", &name),
                        ("outcome", outcome),
                    ],
                ),
                f(&test[field]),
            );
            let group = s(&test["groups"][0]["name"]);
            let k = series(
                "awareness_knowbe4_group_security_test_recipients",
                &[("account", "acme"), ("group", &group), ("outcome", outcome)],
            );
            *out.entry(k).or_default() += f(&test[field]);
        }
    }
    out
}

/// Pages a list needs at `per_page`: every full page, then the short or empty one.
fn pages(rows: usize, per_page: usize) -> u64 {
    (rows / per_page + 1) as u64
}

#[tokio::test]
async fn aggregates_match_the_wire_rows() {
    let (server, tenant) = sim(730, fast()).await;
    let (src, stats) = source(
        config(&server, 100),
        MetricsConfig::default(),
        poll_config(),
    );
    let outcome = src.poll().await;
    let got = samples(&text_of(&outcome));
    let want = expected(&tenant);
    assert!(want.len() > 100);
    for (k, v) in &want {
        let g = got.get(k).unwrap_or_else(|| panic!("missing {k}"));
        assert!((g - v).abs() < 1e-9, "{k}: got {g}, want {v}");
    }
    // Nothing published that the wire rows do not give (the quota figures aside).
    for k in got.keys() {
        assert!(
            want.contains_key(k) || k.starts_with("awareness_knowbe4_api_"),
            "unexpected {k}"
        );
    }
    assert!(
        !got.keys().any(|k| k.contains("email=")),
        "no per-user series by default"
    );
    // Requests: each list pages at 100 until a short page.
    let active = active(&tenant).len();
    assert_eq!(server.control.requests("/v1/users"), pages(active, 100));
    assert_eq!(server.control.requests("/v1/groups"), 1);
    assert_eq!(
        server.control.requests("/v1/training/enrollments"),
        pages(tenant.enrollments.len(), 100)
    );
    assert_eq!(server.control.requests("/v1/training/campaigns"), 1);
    assert_eq!(server.control.requests("/v1/phishing/security_tests"), 1);
    assert_eq!(server.control.requests("/v1/account"), 1);
    let total = server.control.total_requests();
    assert_eq!(stats.total_requests(), total);
    let l = [("account", "acme")];
    assert_eq!(
        got[&series("awareness_knowbe4_api_poll_requests", &l)],
        total as f64
    );
    assert_eq!(
        got[&series("awareness_knowbe4_api_quota_remaining", &l)],
        2000.0 + tenant.seats() as f64 - total as f64
    );
}

#[tokio::test]
async fn per_user_series_only_with_per_user_and_capped() {
    let (server, tenant) = sim(120, fast()).await;
    let m = MetricsConfig {
        per_user: true,
        max_users: 50,
        ..MetricsConfig::default()
    };
    let (src, _) = source(config(&server, 500), m, poll_config());
    let got = samples(&text_of(&src.poll().await));
    let ratios: Vec<(&String, &f64)> = got
        .iter()
        .filter(|(k, _)| k.starts_with("awareness_knowbe4_user_phish_prone_ratio{"))
        .collect();
    assert_eq!(ratios.len(), 50);
    let risk = got
        .keys()
        .filter(|k| k.starts_with("awareness_knowbe4_user_risk_score{"))
        .count();
    assert_eq!(risk, 50);
    // A user's percent becomes a ratio.
    let first = active(&tenant)
        .into_iter()
        .map(|u| (s(&u["email"]), f(&u["phish_prone_percentage"])))
        .min_by(|a, b| a.0.cmp(&b.0))
        .unwrap();
    let k = series(
        "awareness_knowbe4_user_phish_prone_ratio",
        &[("account", "acme"), ("email", &first.0)],
    );
    assert!((got[&k] - first.1 / 100.0).abs() < 1e-12);
}

#[tokio::test]
async fn paging_stops_on_a_short_page_or_the_empty_page_past_the_end() {
    let (server, tenant) = sim(200, fast()).await;
    let active = active(&tenant).len();
    // A page size that divides the list exactly: the page after the last full one is `[]`.
    let (src, _) = source(
        config(&server, active),
        MetricsConfig::default(),
        poll_config(),
    );
    let got = samples(&text_of(&src.poll().await));
    assert_eq!(
        server.control.requests("/v1/users"),
        2,
        "full page, then the empty one"
    );
    let users: f64 = got
        .iter()
        .filter(|(k, _)| k.starts_with("awareness_knowbe4_users{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(users, active as f64);
    server.control.reset_counters();
    // One more than the list: a short first page ends it.
    let (src, _) = source(
        config(&server, active + 1),
        MetricsConfig::default(),
        poll_config(),
    );
    assert!(src.poll().await.ok());
    assert_eq!(server.control.requests("/v1/users"), 1);
}

async fn get(server: &SimServer, path_and_query: &str, key: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}{path_and_query}", server.base_url()))
        .bearer_auth(key)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_simulator_caps_per_page_at_500_and_training_campaigns_at_10_without_exclude_percentages(
) {
    let (server, tenant) = sim(700, fast()).await;
    let key = KnowBe4Options::default().api_key;
    let (status, body) = get(&server, "/v1/users?status=active&per_page=1000", &key).await;
    assert_eq!(status, 200);
    assert_eq!(
        body.as_array().unwrap().len(),
        500,
        "per_page is capped at 500"
    );
    let (_, body) = get(&server, "/v1/users?status=active", &key).await;
    assert_eq!(
        body.as_array().unwrap().len(),
        100,
        "per_page defaults to 100"
    );
    let (_, body) = get(
        &server,
        "/v1/users?status=active&page=99&per_page=500",
        &key,
    )
    .await;
    assert_eq!(body, Value::Array(vec![]), "a page past the end is []");

    assert!(tenant.training_campaigns.len() > 10);
    let (_, body) = get(&server, "/v1/training/campaigns?per_page=500", &key).await;
    let rows = body.as_array().unwrap();
    assert_eq!(rows.len(), 10, "10 a page without exclude_percentages=true");
    assert!(rows[0].get("completion_percentage").is_some());
    let (_, body) = get(&server, "/v1/training/campaigns?page=2&per_page=500", &key).await;
    assert_eq!(
        body.as_array().unwrap().len(),
        tenant.training_campaigns.len() - 10
    );
    let (_, body) = get(
        &server,
        "/v1/training/campaigns?exclude_percentages=true&per_page=500",
        &key,
    )
    .await;
    let rows = body.as_array().unwrap();
    assert_eq!(rows.len(), tenant.training_campaigns.len());
    assert!(rows[0].get("completion_percentage").is_none());

    // The exporter sends exclude_percentages=true: one request gives every campaign.
    let (src, _) = source(
        config(&server, 500),
        MetricsConfig::default(),
        poll_config(),
    );
    server.control.reset_counters();
    let got = samples(&text_of(&src.poll().await));
    assert_eq!(server.control.requests("/v1/training/campaigns"), 1);
    let campaigns: f64 = got
        .iter()
        .filter(|(k, _)| k.starts_with("awareness_knowbe4_training_campaigns{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(campaigns, tenant.training_campaigns.len() as f64);
}

#[tokio::test]
async fn the_simulator_answers_in_the_recorded_shapes() {
    let (server, _) = sim(50, fast()).await;
    let key = KnowBe4Options::default().api_key;
    let fixture = |name: &str| -> Value {
        let path = format!(
            "{}/tests/fixtures/knowbe4/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    fn keys(v: &Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    }
    // The recorded wire security test (2021) plus the field added since (2023 production).
    let (_, tests) = get(&server, "/v1/phishing/security_tests", &key).await;
    assert_eq!(
        keys(&tests[0]),
        keys(&fixture("sumo_security_tests_row_2023.json")[0])
    );
    let recorded = keys(&fixture("rec_eu_campaign_229584_security_tests.json")[0]);
    assert!(recorded.iter().all(|k| keys(&tests[0]).contains(k)));
    let (_, account) = get(&server, "/v1/account", &key).await;
    assert_eq!(keys(&account), keys(&fixture("doc_account.json")));
    let (_, users) = get(&server, "/v1/users?status=active", &key).await;
    assert_eq!(keys(&users[0]), keys(&fixture("doc_users.json")));
    let (_, groups) = get(&server, "/v1/groups?status=active", &key).await;
    assert_eq!(keys(&groups[0]), keys(&fixture("doc_groups.json")));
    let (_, enrollments) = get(&server, "/v1/training/enrollments", &key).await;
    assert_eq!(
        keys(&enrollments[0]),
        keys(&fixture("doc_training_enrollments.json"))
    );
    let (_, with_ids) = get(
        &server,
        "/v1/training/enrollments?include_campaign_id=true",
        &key,
    )
    .await;
    assert!(with_ids[0]["campaign_id"].is_u64());
    // No rate-limit headers, a request id, and JSON in UTF-8.
    let r = reqwest::Client::new()
        .get(format!("{}/v1/account", server.base_url()))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("x-request-id").is_some());
    assert!(r
        .headers()
        .keys()
        .all(|h| !h.as_str().starts_with("x-ratelimit")));
    assert_eq!(
        r.headers()["content-type"],
        "application/json; charset=utf-8"
    );
}

#[tokio::test]
async fn a_wrong_region_is_an_auth_error_that_names_the_host_and_the_region_hint() {
    // The account lives in "eu"; this host (playing "us") knows another account's key only.
    let us = knowbe4::start(
        Arc::new(Population::generate(1, 10)),
        KnowBe4Options {
            api_key: "a-us-accounts-key".into(),
            region: "us".into(),
            ..fast()
        },
    )
    .await
    .unwrap();
    let mut c = config(&us, 500);
    c.region = Some("us".into());
    let (src, stats) = source(c, MetricsConfig::default(), poll_config());
    let outcome = src.poll().await;
    assert!(!outcome.ok());
    assert!(
        outcome.sections.iter().all(|s| s.result.is_err()),
        "every section fails at once"
    );
    let e = outcome.first_error().unwrap();
    assert!(e.contains("HTTP 401"), "{e}");
    assert!(e.contains("another region"), "{e}");
    assert!(e.contains("region = \"us\""), "{e}");
    assert!(e.contains(&us.base_url()), "{e}");
    assert!(
        !e.contains("demo-knowbe4-reporting-key"),
        "the key never shows"
    );
    assert_eq!(stats.failures(FailureReason::Auth), 1);
    assert_eq!(
        us.control.total_requests(),
        1,
        "one refused request, not one per endpoint"
    );
}

#[tokio::test]
async fn the_429_of_a_spent_quota_keeps_the_last_good_data() {
    let tenant = account(300, &fast());
    // A daily quota of exactly one poll's requests.
    let one_poll =
        1 + pages(active(&tenant).len(), 100) + 1 + pages(tenant.enrollments.len(), 100) + 1 + 1;
    let server = knowbe4::start_account(
        tenant.clone(),
        KnowBe4Options {
            daily_quota: Some(one_poll),
            ..fast()
        },
    )
    .await
    .unwrap();
    // A 429 without Retry-After waits a minute window or more: a 30 s deadline gives up at once.
    let poll = PollConfig {
        deadline: Duration::from_secs(30),
        ..poll_config()
    };
    let (src, stats) = source(config(&server, 100), MetricsConfig::default(), poll);
    let good = src.poll().await;
    assert!(good.ok(), "{:?}", good.first_error());
    assert_eq!(server.control.total_requests(), one_poll);

    let bad: PollOutcome = src.poll().await;
    assert!(bad.sections.iter().all(|s| s.result.is_err()));
    let e = bad.first_error().unwrap();
    assert!(e.contains("HTTP 429") && e.contains("rate limit"), "{e}");
    assert!(stats.failures(FailureReason::RateLimited) > 0);
    let published = publish_good_then_bad(src.key(), good, bad);
    assert_last_good_data_kept(src.key(), &published);
}

/// Virtual time: the simulator counts its limits on the same paused clock.
#[tokio::test(start_paused = true)]
async fn the_burst_limit_is_kept_by_pacing_not_by_429s() {
    // The vendor's real limits on the simulator, and the exporter at 4 a second: a poll of a
    // few pages never sees a 429.
    let (server, _) = sim(100, KnowBe4Options::default()).await;
    let mut c = config(&server, 50);
    c.requests_per_second = 4;
    c.requests_per_minute = 50;
    let (src, stats) = source(c, MetricsConfig::default(), poll_config());
    let start = tokio::time::Instant::now();
    let outcome = src.poll().await;
    assert!(outcome.ok(), "{:?}", outcome.first_error());
    assert!(server.control.total_requests() > 8);
    assert_eq!(stats.failures(FailureReason::RateLimited), 0);
    // More than 8 requests at 4 a (long) second take at least two of them.
    assert!(
        start.elapsed() >= Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn maintenance_503_is_retried_then_fails_with_the_vendors_meaning() {
    let (server, _) = sim(20, fast()).await;
    server.control.set_fault(Fault::Down);
    let (src, _) = source(
        config(&server, 500),
        MetricsConfig::default(),
        poll_config(),
    );
    let outcome = src.poll().await;
    let e = outcome.first_error().unwrap();
    assert!(e.contains("503") && e.contains("maintenance"), "{e}");
    assert!(e.contains("after 3 attempts"), "{e}");
    server.control.clear_faults();
    server.control.add_fault(Fault::Status {
        code: 503,
        times: 1,
    });
    assert!(src.poll().await.ok(), "one 503 is retried");
}

#[tokio::test]
async fn bad_rows_are_skipped_and_counted_and_garbage_fails_the_section() {
    let (server, tenant) = sim(200, fast()).await;
    server.control.set_fault(Fault::WrongTypes);
    let (src, stats) = source(
        config(&server, 100),
        MetricsConfig::default(),
        poll_config(),
    );
    let outcome = src.poll().await;
    assert!(outcome.ok(), "{:?}", outcome.first_error());
    let skipped = stats.snapshot().rows_skipped;
    let users_skipped = skipped.get("users").copied().unwrap_or(0);
    assert!(users_skipped > 0);
    let got = samples(&text_of(&outcome));
    let users: f64 = got
        .iter()
        .filter(|(k, _)| k.starts_with("awareness_knowbe4_users{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(users as u64 + users_skipped, active(&tenant).len() as u64);

    server.control.set_fault(Fault::Malformed);
    let outcome = src.poll().await;
    assert!(outcome.sections.iter().any(|s| s.result.is_err()));
    server.control.set_fault(Fault::EndlessPaging);
    let poll = PollConfig {
        max_pages: 5,
        ..poll_config()
    };
    let (src, _) = source(config(&server, 10), MetricsConfig::default(), poll);
    let outcome = src.poll().await;
    let e = outcome.first_error().unwrap();
    assert!(e.contains("poll.max_pages"), "{e}");
}

#[tokio::test]
async fn a_403_on_the_account_fails_only_the_account_section() {
    let (server, _) = sim(30, fast()).await;
    server.control.set_fault(Fault::Status {
        code: 403,
        times: 1,
    });
    let (src, _) = source(
        config(&server, 500),
        MetricsConfig::default(),
        poll_config(),
    );
    let outcome = src.poll().await;
    let failed: Vec<&str> = outcome
        .sections
        .iter()
        .filter(|s| s.result.is_err())
        .map(|s| s.name)
        .collect();
    assert_eq!(failed, ["account"]);
    let e = outcome.first_error().unwrap();
    assert!(
        e.contains("403") && e.contains("Platinum or Diamond"),
        "{e}"
    );
}

/// A small tenant whose next answer is one 429 without `Retry-After`.
async fn answers_one_429() -> SimServer {
    let (server, _) = sim(20, fast()).await;
    server.control.add_fault(Fault::RateLimit {
        times: 1,
        reset_ms: 0,
    });
    server
}

/// A 429 without `Retry-After` is not retried after the transport's short backoff (10 ms
/// here, 1 s by default): KnowBe4's limits imply a minute window, which does not fit a 30 s
/// poll deadline, so the request is not sent again and the 429 stands, in the vendor's terms.
#[tokio::test]
async fn a_429_without_retry_after_is_not_retried_within_the_minute_window() {
    let server = answers_one_429().await;
    let poll = PollConfig {
        deadline: Duration::from_secs(30),
        ..poll_config()
    };
    let (src, stats) = source(config(&server, 500), MetricsConfig::default(), poll);
    let start = std::time::Instant::now();
    let outcome = src.poll().await;
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "no wait was started"
    );
    let account = outcome
        .sections
        .iter()
        .find(|s| s.name == "account")
        .unwrap();
    let e = account.result.as_ref().unwrap_err().to_string();
    assert!(e.contains("HTTP 429"), "{e}");
    assert!(e.contains("poll.deadline"), "{e}");
    assert!(e.contains("rate limit"), "{e}");
    assert_eq!(server.control.requests("/v1/account"), 1, "not retried");
    assert_eq!(stats.failures(FailureReason::RateLimited), 1);
    // The other sections came after the 429 and are unaffected.
    assert!(outcome
        .sections
        .iter()
        .filter(|s| s.name != "account")
        .all(|s| s.result.is_ok()));
}

/// With time for it, the 429 closes the account's gate for a whole minute window (and a
/// little jitter), then the request is sent again and the poll succeeds. Virtual time.
#[tokio::test(start_paused = true)]
async fn a_429_without_retry_after_waits_a_minute_window_then_retries() {
    let server = answers_one_429().await;
    let poll = PollConfig {
        timeout: Duration::from_secs(3600),
        ..poll_config()
    };
    let (src, stats) = source(config(&server, 500), MetricsConfig::default(), poll);
    let start = tokio::time::Instant::now();
    let outcome = src.poll().await;
    let took = start.elapsed();
    assert!(outcome.ok(), "{:?}", outcome.first_error());
    assert_eq!(server.control.requests("/v1/account"), 2);
    assert_eq!(stats.failures(FailureReason::RateLimited), 1);
    // KnowBe4's minute, counted a little longer for latency.
    let window = Duration::from_secs(61);
    assert!(took >= window, "{took:?}");
    assert!(took < window.mul_f64(1.25), "{took:?}");
}

/// When we were sending at the per-second limit (here 1 a second), a 429 most likely means
/// latency bunched our requests into one of the vendor's seconds: it waits two long seconds,
/// not a minute. Virtual time.
#[tokio::test(start_paused = true)]
async fn a_429_at_our_per_second_pace_waits_for_the_second_window() {
    let server = answers_one_429().await;
    let mut c = config(&server, 500);
    c.requests_per_second = 1;
    let poll = PollConfig {
        timeout: Duration::from_secs(3600),
        ..poll_config()
    };
    let (src, stats) = source(c, MetricsConfig::default(), poll);
    let start = tokio::time::Instant::now();
    let outcome = src.poll().await;
    let took = start.elapsed();
    assert!(outcome.ok(), "{:?}", outcome.first_error());
    assert_eq!(server.control.requests("/v1/account"), 2);
    assert_eq!(stats.failures(FailureReason::RateLimited), 1);
    // KnowBe4's second and minute, counted a little longer for latency.
    let (second, minute) = (Duration::from_millis(1250), Duration::from_secs(61));
    assert!(took >= second * 2, "{took:?}");
    assert!(took < minute, "{took:?}");
}
