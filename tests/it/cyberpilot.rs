//! The CyberPilot source against the simulated CyberPilot server: paging, auth, retries,
//! malformed answers, and aggregates checked against sums computed here from the wire rows.

use crate::common;
use crate::common::harness::Counted as _;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use awareness_exporter::model::FailureReason;
use awareness_sim::cyberpilot::{self, CyberPilotOptions};
use awareness_sim::{Fault, Population, SimServer};
use common::*;
use serde_json::Value;

async fn sim(users: usize, options: CyberPilotOptions) -> (SimServer, Arc<Population>) {
    let pop = Arc::new(Population::generate(11, users));
    let server = cyberpilot::start(pop.clone(), options).await.unwrap();
    (server, pop)
}

fn static_config(server: &SimServer, page_size: usize, extra: &str) -> String {
    let o = CyberPilotOptions::default();
    format!(
        "{extra}\n{}{}page_size = {page_size}\n",
        o.account_block(server, "acme"),
        o.token_key()
    )
}

fn login_config(server: &SimServer, password: &str) -> String {
    let o = CyberPilotOptions {
        password: password.to_string(),
        ..CyberPilotOptions::default()
    };
    format!(
        "{}page_size = 100\n{}",
        o.account_block(server, "acme"),
        o.login_table(server)
    )
}

fn num(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

/// Per-branch sums computed straight from the simulator's wire rows.
fn expected(pop: &Population) -> BTreeMap<String, BTreeMap<&'static str, f64>> {
    let mut out: BTreeMap<String, BTreeMap<&'static str, f64>> = BTreeMap::new();
    let mut scores: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for u in &pop.users {
        let row = cyberpilot::users_summary_row(u);
        let branch = row["user"]
            .get("branch")
            .and_then(|b| b.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let e = out.entry(branch.clone()).or_default();
        *e.entry("users").or_default() += 1.0;
        *e.entry("courses_enrolled").or_default() += num(&row, "enrolledCourses");
        *e.entry("courses_not_completed").or_default() += num(&row, "notCompletedCourses");
        *e.entry("courses_overdue").or_default() += num(&row, "overdueCourses");
        *e.entry("users_overdue").or_default() += (num(&row, "overdueCourses") > 0.0) as u8 as f64;
        *e.entry("materials_enrolled").or_default() += num(&row, "enrolledMaterials");
        *e.entry("materials_not_completed").or_default() += num(&row, "notCompletedMaterials");
        *e.entry("phishing_campaigns_active").or_default() += num(&row, "phishingCampaigns");
        *e.entry("phishing_emails_sent").or_default() += num(&row, "emailsSent");
        *e.entry("phishing_links_clicked").or_default() += num(&row, "linksClicked");
        *e.entry("phishing_data_submitted").or_default() += num(&row, "dataSubmitted");
        *e.entry("users_clicked").or_default() += (num(&row, "linksClicked") > 0.0) as u8 as f64;
        // Users with no completed course send averageScore 0: not a score.
        let trained = num(&row, "enrolledCourses") - num(&row, "notCompletedCourses") > 0.0;
        if let Some(s) = row
            .get("averageScore")
            .and_then(Value::as_f64)
            .filter(|s| *s > 0.0 || trained)
        {
            let acc = scores.entry(branch).or_default();
            acc.0 += s;
            acc.1 += 1.0;
        }
    }
    for (branch, (sum, n)) in scores {
        out.entry(branch)
            .or_default()
            .insert("average_score", sum / n);
    }
    out
}

#[tokio::test]
async fn aggregates_match_sums_of_the_wire_rows_with_take_capped() {
    // The server caps take at 100; we ask for 500 and must still read every row.
    let (server, pop) = sim(730, CyberPilotOptions::default()).await;
    let config = parse(&static_config(&server, 500, ""));
    let (outcome, stats) = poll_once(&config).await;
    let got = samples(&text_of(&outcome));
    let want = expected(&pop);
    assert!(want.len() > 3, "population has several branches");
    for (branch, metrics) in &want {
        for (metric, value) in metrics {
            let key = series(
                &format!("awareness_cyberpilot_{metric}"),
                &[("account", "acme"), ("branch", branch)],
            );
            let v = got.get(&key).unwrap_or_else(|| panic!("missing {key}"));
            assert!((v - value).abs() < 1e-9, "{key}: got {v}, want {value}");
        }
    }
    let total = sum_of(&got, "awareness_cyberpilot_users{");
    assert_eq!(total, 730.0);
    // 730 rows at 100 per page: 8 pages, no more.
    assert_eq!(server.control.requests("users-summary"), 8);
    assert_eq!(stats.requests("users-summary"), 8);
    assert!(
        !got.keys().any(|k| k.contains("email=")),
        "no per-user series by default"
    );
}

#[tokio::test]
async fn per_user_series_are_capped() {
    let (server, _pop) = sim(120, CyberPilotOptions::default()).await;
    let config = parse(&static_config(
        &server,
        100,
        "[metrics]\nper_user = true\nmax_users = 50\n",
    ));
    let (outcome, _) = poll_once(&config).await;
    let got = samples(&text_of(&outcome));
    let per_user = got
        .keys()
        .filter(|k| k.starts_with("awareness_cyberpilot_user_courses_overdue{"))
        .count();
    assert_eq!(per_user, 50);
}

#[tokio::test]
async fn paging_stops_on_an_empty_page_and_handles_small_pages() {
    let options = CyberPilotOptions {
        max_take: 7,
        ..CyberPilotOptions::default()
    };
    let (server, _pop) = sim(50, options).await;
    let config = parse(&static_config(&server, 20, ""));
    let (outcome, _) = poll_once(&config).await;
    let got = samples(&text_of(&outcome));
    let total = sum_of(&got, "awareness_cyberpilot_users{");
    assert_eq!(total, 50.0);
    assert_eq!(server.control.requests("users-summary"), 8); // ceil(50 / 7)

    let (empty, _) = sim(0, CyberPilotOptions::default()).await;
    let config = parse(&static_config(&empty, 100, ""));
    let (outcome, _) = poll_once(&config).await;
    assert!(outcome.ok());
    assert_eq!(empty.control.requests("users-summary"), 1);
}

#[tokio::test]
async fn runaway_paging_is_stopped_by_max_pages() {
    let (server, _pop) = sim(40, CyberPilotOptions::default()).await;
    server.control.set_fault(Fault::EndlessPaging);
    let config = parse(&static_config(&server, 10, "[poll]\nmax_pages = 25\n"));
    let (outcome, _) = poll_once(&config).await;
    let err = outcome.first_error().expect("must fail");
    assert!(err.contains("max_pages"), "{err}");
    assert!(server.control.requests("users-summary") <= 26);
}

#[tokio::test]
async fn wrong_static_token_is_an_auth_failure() {
    let (server, _pop) = sim(10, CyberPilotOptions::default()).await;
    let mut text = static_config(&server, 100, "");
    text = text.replace("demo-static-token", "wrong-token");
    let config = parse(&text);
    let (outcome, stats) = poll_once(&config).await;
    assert!(!outcome.ok());
    assert_eq!(stats.failures(FailureReason::Auth), 1);
    // No retry storm on a refused credential.
    assert_eq!(server.control.requests("users-summary"), 1);
}

#[tokio::test]
async fn login_token_is_cached_and_renewed_once_after_401() {
    let (server, _pop) = sim(250, CyberPilotOptions::default()).await;
    let config = parse(&login_config(
        &server,
        &CyberPilotOptions::default().password,
    ));
    let (source, stats) = harness::build(&config, 0);
    assert!(source.poll().await.ok());
    assert!(source.poll().await.ok());
    assert_eq!(
        server.control.token_requests(),
        1,
        "token cached across pages and polls"
    );
    server.control.expire_tokens();
    assert!(source.poll().await.ok());
    assert_eq!(
        server.control.token_requests(),
        2,
        "one re-login after the 401"
    );
    assert_eq!(stats.failures(FailureReason::Auth), 1);

    let bad = parse(&login_config(&server, "wrong-password"));
    let (outcome, stats) = poll_once(&bad).await;
    let err = outcome.first_error().unwrap();
    assert!(err.contains("login failed"), "{err}");
    assert!(!err.contains("wrong-password"));
    assert_eq!(stats.failures(FailureReason::Auth), 1);
}

/// Paused time: the Retry-After wait is measured on tokio's clock and costs no real time.
#[tokio::test(start_paused = true)]
async fn rate_limit_and_server_errors_are_retried_within_budget() {
    let (server, _pop) = sim(30, CyberPilotOptions::default()).await;
    let config = parse(&static_config(&server, 100, ""));

    server.control.set_fault(Fault::RateLimit {
        times: 1,
        reset_ms: 300,
    });
    let started = tokio::time::Instant::now();
    let (outcome, stats) = poll_once(&config).await;
    assert!(outcome.ok(), "{:?}", outcome.first_error());
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After (1 s) honoured"
    );
    assert_eq!(stats.failures(FailureReason::RateLimited), 1);

    server.control.reset_counters();
    server.control.set_fault(Fault::Status {
        code: 502,
        times: 2,
    });
    let (outcome, stats) = poll_once(&config).await;
    assert!(outcome.ok());
    assert_eq!(stats.failures(FailureReason::Http), 2);
    assert_eq!(server.control.requests("users-summary"), 3);

    server.control.reset_counters();
    server.control.set_fault(Fault::Status {
        code: 500,
        times: 10,
    });
    let (outcome, _) = poll_once(&config).await;
    assert!(!outcome.ok());
    assert_eq!(
        server.control.requests("users-summary"),
        3,
        "max_attempts = 3"
    );
}

#[tokio::test]
async fn malformed_answers_fail_the_poll_and_bad_rows_are_skipped() {
    let (server, pop) = sim(60, CyberPilotOptions::default()).await;
    let config = parse(&static_config(&server, 100, ""));
    for fault in [Fault::Malformed, Fault::Truncated, Fault::ErrorIn200] {
        server.control.set_fault(fault.clone());
        let (outcome, stats) = poll_once(&config).await;
        assert!(!outcome.ok(), "{fault:?} must fail the poll");
        assert_eq!(stats.failures(FailureReason::Decode), 1, "{fault:?}");
    }
    server.control.set_fault(Fault::WrongTypes);
    let (outcome, stats) = poll_once(&config).await;
    assert!(outcome.ok());
    let skipped = stats
        .snapshot()
        .rows_skipped
        .get("users-summary")
        .copied()
        .unwrap_or(0);
    let garbage = (0..pop.users.len())
        .filter(|i| awareness_sim::control::is_garbage_row(*i))
        .count() as u64;
    assert!(
        skipped > 0 && skipped == garbage,
        "skipped {skipped}, garbage {garbage}"
    );
    let got = samples(&text_of(&outcome));
    let total = sum_of(&got, "awareness_cyberpilot_users{");
    assert_eq!(total as u64, 60 - skipped);
}

#[tokio::test]
async fn a_failed_page_publishes_nothing_and_keeps_the_last_good_data() {
    let (server, _pop) = sim(500, CyberPilotOptions::default()).await;
    let config = parse(&static_config(&server, 100, ""));
    let (good, _) = poll_once(&config).await;
    server.control.set_fault(Fault::FailPage {
        endpoint: "users-summary".into(),
        page: 3,
    });
    let (bad, _) = poll_once(&config).await;
    assert!(!bad.ok());
    let key = config.sources[0].key();
    let published = publish_good_then_bad(&key, good, bad);
    assert_last_good_data_kept(&key, &published);
    // Past max_age the data series go; up and last success stay.
    let late = samples(
        &published
            .store
            .render(published.t0 + Duration::from_secs(3601)),
    );
    assert!(platform_samples(&late, "cyberpilot").is_empty());
    assert!(late.contains_key(&series(
        "awareness_last_success_timestamp_seconds",
        &[("platform", "cyberpilot"), ("account", "acme")]
    )));
}

/// A users-summary server whose total changes after the first page: `first` users are
/// announced by page one, `later` exist (and are announced) from then on.
async fn shifting_server(
    first: usize,
    later: usize,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::extract::Query;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().route(
        "/accounts/{id}/reports/users-summary",
        axum::routing::get(move |Query(q): Query<BTreeMap<String, usize>>| {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let total = if n == 0 { first } else { later };
                let (take, skip) = (q.get("take").copied().unwrap_or(20).min(50), q.get("skip").copied().unwrap_or(0));
                let rows: Vec<Value> = (skip..(skip + take).min(total))
                    .map(|i| serde_json::json!({"overdueCourses": 1, "user": {"id": format!("u{i}"), "email": format!("u{i}@x")}}))
                    .collect();
                axum::Json(serde_json::json!({"count": total, "fetched": rows.len(), "result": rows}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, calls)
}

fn overdue_total(outcome: &awareness_exporter::model::PollOutcome) -> f64 {
    samples(&text_of(outcome))
        .iter()
        .filter(|(k, _)| k.starts_with("awareness_cyberpilot_courses_overdue{"))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test]
async fn count_changes_mid_poll() {
    // Grows from 120 to 260: the tail is followed until the latest count.
    let (url, calls) = shifting_server(120, 260).await;
    let config = parse(&format!(
        "[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\nbase_url = \"{url}\"\ntoken = \"t\"\npage_size = 100\n"
    ));
    let (outcome, _) = poll_once(&config).await;
    assert_eq!(overdue_total(&outcome), 260.0);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 6); // 50 per page

    // Shrinks from 300 to 130: pages past the end come back empty and are not an error.
    let (url, _) = shifting_server(300, 130).await;
    let config = parse(&format!(
        "[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\nbase_url = \"{url}\"\ntoken = \"t\"\npage_size = 100\n"
    ));
    let (outcome, _) = poll_once(&config).await;
    assert!(outcome.ok());
    assert_eq!(overdue_total(&outcome), 130.0);
}

#[tokio::test]
async fn requests_in_flight_are_bounded_per_account_and_in_total() {
    let (server, _pop) = sim(900, CyberPilotOptions::default()).await;
    server.control.set_latency(Duration::from_millis(20));
    let o = CyberPilotOptions::default();
    let block = |account: &str| format!("{}{}", o.account_block(&server, account), o.token_key());
    // One account: at most poll.concurrency (3) at once.
    let config = parse(&format!("[poll]\nconcurrency = 3\n{}", block("one")));
    let exporter = awareness_exporter::app::Exporter::start(config, None);
    assert!(eventually(20, || exporter.store.ready()).await);
    exporter.poller.stop();
    assert_eq!(server.control.max_in_flight(), 3);

    // Three accounts of 3 each, but 4 in flight in the whole process.
    server.control.reset_counters();
    let config = parse(&format!(
        "[poll]\nconcurrency = 3\nmax_requests_in_flight = 4\n{}{}{}",
        block("a"),
        block("b"),
        block("c")
    ));
    let exporter = awareness_exporter::app::Exporter::start(config, None);
    assert!(eventually(20, || exporter.store.ready()).await);
    exporter.poller.stop();
    assert_eq!(server.control.max_in_flight(), 4);
    assert_eq!(server.control.requests("users-summary"), 27);
}

// ---------------------------------------------------------------- answers replayed exactly

use awareness_sim::replay::{self, Recorded, Replay};

/// A tenant that answers users-summary with `result` (once per request, repeated).
async fn replayed(result: Vec<Value>) -> (SimServer, String) {
    let replay = Arc::new(Replay::default());
    let n = result.len();
    let body = serde_json::json!({"count": n, "fetched": n, "result": result});
    replay.route(
        "/accounts/acme-id/reports/users-summary",
        vec![Recorded::json(200, body.to_string())],
    );
    let server = replay::start(replay).await.unwrap();
    let text = format!(
        "[[cyberpilot]]\naccount = \"acme\"\naccount_id = \"acme-id\"\nbase_url = \"{}\"\ntoken = \"t\"\npage_size = 100\n",
        server.base_url()
    );
    (server, text)
}

#[tokio::test]
async fn users_without_training_do_not_drag_the_branch_average_down() {
    let user = |id: &str, enrolled: u32, open: u32, score: u32| {
        serde_json::json!({
            "enrolledCourses": enrolled, "notCompletedCourses": open, "overdueCourses": open,
            "averageScore": score, "enrolledMaterials": 0, "notCompletedMaterials": 0,
            "user": {"id": id, "email": format!("{id}@x.example"), "branch": {"id": "b", "name": "Sales"}}
        })
    };
    let (_server, text) = replayed(vec![
        user("trained", 4, 1, 80),
        user("new", 0, 0, 0),
        user("enrolled-not-started", 2, 2, 0),
    ])
    .await;
    let config = parse(&format!("[metrics]\nper_user = true\n{text}"));
    let (outcome, _) = poll_once(&config).await;
    let body = text_of(&outcome);
    let got = samples(&body);
    let l = [("account", "acme"), ("branch", "Sales")];
    assert_eq!(got[&series("awareness_cyberpilot_average_score", &l)], 80.0);
    assert_eq!(got[&series("awareness_cyberpilot_users", &l)], 3.0);
    assert!(!got.contains_key(&series(
        "awareness_cyberpilot_user_average_score",
        &[("account", "acme"), ("email", "new@x.example")]
    )));
    // The vendor's definition of overdueCourses, in the help text.
    assert!(body.contains(
        "# HELP awareness_cyberpilot_courses_overdue Overdue or incomplete courses or materials"
    ));
}

#[tokio::test]
async fn ten_thousand_empty_rows_are_a_decode_failure_not_an_empty_report() {
    let (_server, text) = replayed((0..10_000).map(|_| serde_json::json!({})).collect()).await;
    let config = parse(&text);
    let (outcome, stats) = poll_once(&config).await;
    assert!(!outcome.ok(), "garbage must not be a success");
    assert!(
        outcome
            .first_error()
            .unwrap_or_default()
            .contains("10000 of 10000 rows"),
        "{:?}",
        outcome.first_error()
    );
    assert_eq!(stats.failures(FailureReason::Decode), 1);
    assert_eq!(stats.snapshot().rows_skipped.values().sum::<u64>(), 10_000);
}
