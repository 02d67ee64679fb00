//! The Mimecast source against the simulated Mimecast server, both auth modes: signatures the
//! simulator verifies, token paging, errors inside HTTP 200, rate limits, and every metric
//! checked against figures computed here from the simulated population.

use crate::common;
use crate::common::harness::Counted as _;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use awareness_exporter::app::Exporter;
use awareness_exporter::model::FailureReason;
use awareness_sim::mimecast::{self, MimecastOptions, SimAuth};
use awareness_sim::{Fault, Population, SimServer};
use common::*;

async fn sim(users: usize, auth: SimAuth) -> (SimServer, Arc<Population>) {
    let pop = Arc::new(Population::generate(5, users));
    let server = mimecast::start(
        pop.clone(),
        MimecastOptions {
            auth,
            ..MimecastOptions::default()
        },
    )
    .await
    .unwrap();
    (server, pop)
}

fn config_text(server: &SimServer, auth: &SimAuth, extra: &str, page_size: usize) -> String {
    format!(
        "{}page_size = {page_size}\n{extra}",
        mimecast::account_block(server, "corp", auth)
    )
}

fn dept(u: &awareness_sim::SimUser) -> String {
    u.department.clone().unwrap_or_default()
}

/// Every contract metric computed from the population, as `series → value`.
fn expected(pop: &Population) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    let mut add = |name: &str, labels: &[(&str, &str)], v: f64| {
        *out.entry(series(name, labels)).or_default() += v;
    };
    let a = ("account", "corp");
    for u in &pop.users {
        let d = dept(u);
        let l = [a, ("department", d.as_str())];
        add("awareness_mimecast_users", &l, 1.0);
        add(
            "awareness_mimecast_modules_not_watched",
            &l,
            u.num_not_watched as f64,
        );
        add(
            "awareness_mimecast_answers_correct",
            &l,
            u.num_correct as f64,
        );
        add(
            "awareness_mimecast_answers_incorrect",
            &l,
            u.num_incorrect as f64,
        );
        add(
            "awareness_mimecast_watchlist_users",
            &l,
            (u.watchlist_count > 0) as u8 as f64,
        );
        add(
            "awareness_mimecast_watchlist_entries",
            &l,
            u.watchlist_count as f64,
        );
        add(
            "awareness_mimecast_safe_score_users",
            &[a, ("grade", &u.risk.to_string())],
            1.0,
        );
    }
    // company/get-performance-summary: company totals; a video sent is answered correctly,
    // incorrectly, or not watched.
    for u in &pop.users {
        let (correct, incorrect, not_watched) = (u.num_correct, u.num_incorrect, u.num_not_watched);
        add("awareness_mimecast_participating_users", &[a], 1.0);
        let sent = f64::from(correct + incorrect + not_watched);
        add("awareness_mimecast_videos_sent", &[a], sent);
        add(
            "awareness_mimecast_videos_not_watched",
            &[a],
            f64::from(not_watched),
        );
        let bucket = ["0", "1", "2", "3", "4+"][incorrect.min(4) as usize];
        let l = [a, ("incorrect", bucket)];
        add("awareness_mimecast_users_by_incorrect_answers", &l, 1.0);
    }
    // user/get-training-details: the API user's own record only.
    let me = &pop.users[mimecast::API_USER];
    let count = |f: &dyn Fn(&awareness_sim::population::ModuleProgress) -> bool| {
        me.training.iter().filter(|t| f(t)).count() as f64
    };
    add(
        "awareness_mimecast_users_need_engagement",
        &[a],
        me.need_engagement as u8 as f64,
    );
    add(
        "awareness_mimecast_api_user_modules_assigned",
        &[a],
        count(&|_| true),
    );
    add(
        "awareness_mimecast_api_user_modules_watched",
        &[a],
        count(&|t| t.watched),
    );
    add(
        "awareness_mimecast_api_user_modules_on_watchlist",
        &[a],
        count(&|t| t.on_watchlist),
    );
    for (ci, c) in pop.campaigns.iter().enumerate() {
        let l = [
            a,
            ("campaign_id", c.id.as_str()),
            ("campaign", c.name.as_str()),
        ];
        let (mut correct, mut incorrect, mut users, mut ack) = (0.0, 0.0, 0.0, 0.0);
        for u in &pop.users {
            for r in u.campaign_results.iter().filter(|r| r.campaign == ci) {
                users += 1.0;
                ack += r.acknowledgement as u8 as f64;
                for (q, res) in r.results.iter().enumerate() {
                    let res = res.to_ascii_lowercase();
                    correct += (res == "correct") as u8 as f64;
                    incorrect += (res == "incorrect") as u8 as f64;
                    let q = (q + 1).to_string();
                    add(
                        "awareness_mimecast_campaign_answers",
                        &[
                            a,
                            ("campaign_id", c.id.as_str()),
                            ("campaign", c.name.as_str()),
                            ("question", &q),
                            ("result", &res),
                        ],
                        1.0,
                    );
                }
            }
        }
        add("awareness_mimecast_campaign_users", &l, users);
        let completed = pop
            .users
            .iter()
            .flat_map(|u| u.campaign_results.iter().filter(|r| r.campaign == ci))
            .filter(|r| r.results.iter().all(|x| x != "SENT"))
            .count() as f64;
        add("awareness_mimecast_campaign_completed_users", &l, completed);
        let m = [a, ("module", pop.modules[c.module].title.as_str())];
        add("awareness_mimecast_module_assigned", &m, users);
        add("awareness_mimecast_module_watched", &m, completed);
        let launched =
            chrono::DateTime::parse_from_str(&c.launch_date, "%Y-%m-%dT%H:%M:%S%z").unwrap();
        add(
            "awareness_mimecast_campaign_launch_timestamp_seconds",
            &l,
            launched.timestamp() as f64,
        );
        add("awareness_mimecast_campaign_acknowledged_users", &l, ack);
        if correct + incorrect > 0.0 {
            add(
                "awareness_mimecast_campaign_correct_ratio",
                &l,
                correct / (correct + incorrect),
            );
        }
    }
    for u in &pop.users {
        let d = dept(u);
        for r in &u.phishing_results {
            for (outcome, hit) in [
                ("sent", true),
                ("opened", r.opened),
                ("clicked", r.clicked),
                ("submitted", r.submitted),
                ("reported", r.reported),
            ] {
                add(
                    "awareness_mimecast_phishing_department_recipients",
                    &[a, ("department", d.as_str()), ("outcome", outcome)],
                    hit as u8 as f64,
                );
            }
        }
    }
    for p in &pop.phishing {
        let l = [
            a,
            ("campaign_id", p.id.as_str()),
            ("campaign", p.name.as_str()),
        ];
        add("awareness_mimecast_phishing_emails_sent", &l, p.sent as f64);
        add(
            "awareness_mimecast_phishing_reported_recipients",
            &l,
            p.reported as f64,
        );
        let launched =
            chrono::DateTime::parse_from_str(&p.launch_date, "%Y-%m-%dT%H:%M:%S%z").unwrap();
        add(
            "awareness_mimecast_phishing_launch_timestamp_seconds",
            &l,
            launched.timestamp() as f64,
        );
        add(
            "awareness_mimecast_phishing_emails_opened",
            &l,
            p.opened as f64,
        );
        add(
            "awareness_mimecast_phishing_links_clicked",
            &l,
            p.clicked as f64,
        );
        add(
            "awareness_mimecast_phishing_data_submitted",
            &l,
            p.submitted as f64,
        );
    }
    out
}

fn assert_matches_population(text: &str, pop: &Population) {
    let got = samples(text);
    let want = expected(pop);
    for (k, v) in &want {
        let g = got.get(k).unwrap_or_else(|| panic!("missing {k}"));
        assert!((g - v).abs() < 1e-9, "{k}: got {g}, want {v}");
    }
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(extra.is_empty(), "unexpected series: {extra:?}");
}

#[tokio::test]
async fn hmac_tenant_every_metric_matches_the_population() {
    let auth = SimAuth::demo_hmac();
    let (server, pop) = sim(260, auth.clone()).await;
    let config = parse(&config_text(&server, &auth, "", 100));
    let (outcome, stats) = poll_once(&config).await;
    assert!(outcome.ok(), "{:?}", outcome.first_error());
    assert_matches_population(&text_of(&outcome), &pop);
    // 260 users at 100 per page: 3 pages for each paginated company/user endpoint.
    assert_eq!(
        server.control.requests("company/get-performance-details"),
        3
    );
    assert_eq!(stats.requests("company/get-performance-details"), 3);
    assert_eq!(stats.failures(FailureReason::Auth), 0);
    // A campaign nobody answered has no ratio series.
    assert!(pop.campaigns.iter().enumerate().any(|(ci, _)| pop
        .users
        .iter()
        .flat_map(|u| &u.campaign_results)
        .filter(|r| r.campaign == ci)
        .all(|r| r.results.iter().all(|x| x.eq_ignore_ascii_case("sent")))));
}

#[tokio::test]
async fn oauth2_tenant_every_metric_matches_and_token_is_renewed_once() {
    let auth = SimAuth::demo_oauth2();
    let (server, pop) = sim(140, auth.clone()).await;
    let config = parse(&config_text(&server, &auth, "", 50));
    let (source, _stats) = harness::build(&config, 0);
    let outcome = source.poll().await;
    assert!(outcome.ok(), "{:?}", outcome.first_error());
    assert_matches_population(&text_of(&outcome), &pop);
    assert_eq!(server.control.token_requests(), 1);
    server.control.expire_tokens();
    assert!(source.poll().await.ok());
    assert_eq!(server.control.token_requests(), 2);
}

/// A tenant onboarded on API 2.0 has only the catalogue's endpoints (issue 25): the two campaign
/// sections are not offered, the account is up, and the company summary is there.
#[tokio::test]
async fn a_catalogue_only_tenant_is_up_without_the_campaign_endpoints() {
    let auth = SimAuth::demo_oauth2();
    let server = mimecast::start(
        Arc::new(Population::generate(5, 40)),
        MimecastOptions {
            auth: auth.clone(),
            catalogue_only: true,
            ..MimecastOptions::default()
        },
    )
    .await
    .unwrap();
    let config = parse(&config_text(&server, &auth, "", 100));
    let exporter = Exporter::start_with(config, None, awareness_exporter::Shard::ALL, |p| {
        p.with_failure_backoff(Duration::from_millis(20))
    });
    assert!(eventually(10, || exporter.store.ready()).await);
    let got = samples(&exporter.store.render(SystemTime::now()));
    let source = |name: &str, extra: &[(&str, &str)]| {
        let mut l = vec![("platform", "mimecast"), ("account", "corp")];
        l.extend_from_slice(extra);
        got.get(&series(name, &l)).copied()
    };
    assert_eq!(source("awareness_up", &[]), Some(1.0));
    assert_eq!(
        source("awareness_section_up", &[("section", "campaigns")]),
        Some(0.0)
    );
    assert_eq!(
        source(
            "awareness_section_up",
            &[("section", "performance-summary")]
        ),
        Some(1.0)
    );
    let a = [("account", "corp")];
    assert_eq!(
        got.get(&series("awareness_mimecast_participating_users", &a)),
        Some(&40.0)
    );
    assert!(!got
        .keys()
        .any(|k| k.starts_with("awareness_mimecast_campaign_users{")));
    let html = awareness_exporter::testing::landing::render(&exporter.store, SystemTime::now());
    assert!(
        html.contains("not offered by this tenant: campaigns"),
        "{html}"
    );
    exporter.poller.stop();
}

#[tokio::test]
async fn a_wrong_signature_is_rejected_by_the_simulator() {
    let auth = SimAuth::demo_hmac();
    let (server, _pop) = sim(20, auth.clone()).await;
    let SimAuth::Hmac {
        app_id,
        app_key,
        access_key,
        ..
    } = &auth
    else {
        panic!()
    };
    // Right shape, wrong key: every request is refused with err_xdk_invalid_signature.
    let wrong = SimAuth::Hmac {
        app_id: app_id.clone(),
        app_key: app_key.clone(),
        access_key: access_key.clone(),
        secret_key_b64: "d3Jvbmcta2V5LXdyb25nLWtleQ==".into(),
    };
    let config = parse(&config_text(
        &server,
        &wrong,
        "endpoints = [\"performance-details\"]\n",
        100,
    ));
    let (outcome, stats) = poll_once(&config).await;
    let err = outcome.first_error().unwrap();
    assert!(err.contains("err_xdk_invalid_signature"), "{err}");
    assert_eq!(stats.failures(FailureReason::Auth), 1);
    assert_eq!(
        server.control.requests("company/get-performance-details"),
        1,
        "no retries on auth errors"
    );

    let bad_app = SimAuth::Hmac {
        app_id: "not-the-app".into(),
        app_key: app_key.clone(),
        access_key: access_key.clone(),
        secret_key_b64: match &auth {
            SimAuth::Hmac { secret_key_b64, .. } => secret_key_b64.clone(),
            _ => unreachable!(),
        },
    };
    let config = parse(&config_text(
        &server,
        &bad_app,
        "endpoints = [\"performance-details\"]\n",
        100,
    ));
    let (outcome, _) = poll_once(&config).await;
    assert!(outcome.first_error().unwrap().contains("err_developer_key"));
}

#[tokio::test]
async fn errors_in_http_200_and_unlicensed_endpoints_fail_only_their_section() {
    let auth = SimAuth::demo_oauth2();
    let (server, _pop) = sim(50, auth.clone()).await;
    let config = parse(&config_text(&server, &auth, "", 100));
    server.control.set_fault(Fault::NotLicensed {
        endpoint: "company/get-safe-score-details".into(),
    });
    let (outcome, stats) = poll_once(&config).await;
    let failed: Vec<_> = outcome
        .sections
        .iter()
        .filter(|s| s.result.is_err())
        .map(|s| s.name)
        .collect();
    assert_eq!(failed, vec!["safe-score-details"]);
    assert_eq!(stats.failures(FailureReason::ApiError), 1);

    server.control.set_fault(Fault::ErrorIn200);
    let (outcome, _) = poll_once(&config).await;
    assert!(outcome.sections.iter().all(|s| s.result.is_err()));
}

#[tokio::test]
async fn a_failing_third_page_publishes_nothing_of_that_endpoint() {
    let auth = SimAuth::demo_hmac();
    let (server, _pop) = sim(300, auth.clone()).await;
    let config = parse(&config_text(&server, &auth, "", 100));
    let (good, _) = poll_once(&config).await;
    assert!(good.ok());
    server.control.set_fault(Fault::FailPage {
        endpoint: "company/get-performance-details".into(),
        page: 3,
    });
    let (bad, _) = poll_once(&config).await;
    let failed: Vec<_> = bad
        .sections
        .iter()
        .filter(|s| s.result.is_err())
        .map(|s| s.name)
        .collect();
    assert_eq!(failed, vec!["performance-details"]);
    let published = publish_good_then_bad(&config.sources[0].key(), good, bad);
    for (k, v) in &platform_samples(&published.before, "mimecast") {
        let kept = published.after.get(k);
        assert_eq!(kept, Some(v), "{k} kept from the last good poll");
    }
}

#[tokio::test]
async fn rate_limit_reset_is_honoured() {
    let auth = SimAuth::demo_oauth2();
    let (server, _pop) = sim(30, auth.clone()).await;
    let config = parse(&config_text(
        &server,
        &auth,
        "endpoints = [\"phishing-campaigns\"]\n",
        100,
    ));
    server.control.set_fault(Fault::RateLimit {
        times: 1,
        reset_ms: 400,
    });
    let started = std::time::Instant::now();
    let (outcome, stats) = poll_once(&config).await;
    assert!(outcome.ok(), "{:?}", outcome.first_error());
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(stats.failures(FailureReason::RateLimited), 1);
}

#[tokio::test]
async fn quota_exhaustion_pauses_before_the_vendor_says_429() {
    let auth = SimAuth::demo_oauth2();
    let pop = Arc::new(Population::generate(5, 400));
    let server = mimecast::start(
        pop,
        MimecastOptions {
            auth: auth.clone(),
            rate_limit: 3,
            rate_window_ms: 500,
            ..MimecastOptions::default()
        },
    )
    .await
    .unwrap();
    let config = parse(&config_text(
        &server,
        &auth,
        "endpoints = [\"performance-details\"]\n",
        100,
    ));
    let (outcome, stats) = poll_once(&config).await;
    assert!(outcome.ok(), "{:?}", outcome.first_error());
    // 4 pages with a quota of 3 per 500 ms: the Remaining: 0 header makes us wait instead of
    // provoking a 429.
    assert_eq!(stats.failures(FailureReason::RateLimited), 0);
}

/// A 200 without `data[]` (and without `fail[]`) is no page of Mimecast's: the engine refuses
/// it as undecodable instead of reading it as an empty listing that would publish zeros.
#[tokio::test]
async fn an_answer_without_data_is_refused_not_read_as_empty() {
    let app = axum::Router::new().fallback(|| async {
        axum::Json(serde_json::json!({"meta": {"status": 200}, "fail": []}))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let auth = SimAuth::demo_hmac();
    let text = format!(
        "[[mimecast]]\naccount = \"no-data\"\nbase_url = \"{base_url}\"\n{}",
        auth.config_keys()
    );
    let (outcome, stats) = poll_once(&parse(&text)).await;
    assert!(!outcome.sections.is_empty());
    for s in &outcome.sections {
        let e = s.result.as_ref().expect_err("refused");
        assert_eq!(e.reason(), Some(FailureReason::Decode), "{}: {e:?}", s.name);
    }
    assert!(stats.failures(FailureReason::Decode) >= 1);
}
