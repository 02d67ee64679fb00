//! The Mimecast source against answers in the vendor's documented and recorded forms, replayed
//! exactly: errors as Mimecast sends them (HTTP 200 `err_developer_key`, HTTP 418, API 2.0
//! `fail[{code,message}]`), no invented figures, phishing results by department, and garbage.

use crate::common;
use crate::common::harness::Counted as _;

use std::sync::Arc;

use awareness_exporter::model::{FailureReason, PollError, PollOutcome, Retry};
use awareness_exporter::testing::stats::ApiStats;
use awareness_sim::mimecast::{self, SimAuth};
use awareness_sim::replay::{self, Recorded, Replay};
use awareness_sim::SimServer;
use serde_json::{json, Value};

use common::*;

const API: &str = "/api/awareness-training/";

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/mimecast/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn path(endpoint: &str) -> String {
    format!("{API}{endpoint}")
}

fn ok_page(rows: Value) -> Recorded {
    Recorded::json(
        200,
        json!({"meta": {"status": 200, "pagination": {"pageSize": 500, "totalCount": 3}}, "data": rows, "fail": []})
            .to_string(),
    )
}

fn watchlist_rows() -> Value {
    json!([
        {"email": "a@x.example", "department": "IT", "watchlistCount": 2, "userState": "ACTIVE"},
        {"email": "b@x.example", "department": "IT", "watchlistCount": 0, "userState": "ACTIVE"},
    ])
}

async fn replay_server(routes: &[(&str, Vec<Recorded>)]) -> (SimServer, Arc<Replay>) {
    let replay = Arc::new(Replay::default());
    for (endpoint, answers) in routes {
        let p = if endpoint.starts_with('/') {
            endpoint.to_string()
        } else {
            path(endpoint)
        };
        replay.route(&p, answers.clone());
    }
    let server = replay::start(replay.clone()).await.unwrap();
    (server, replay)
}

fn config_for(server: &SimServer, auth: &SimAuth, endpoints: &str, extra: &str) -> String {
    format!(
        "{extra}{}endpoints = [{endpoints}]\n",
        mimecast::account_block(server, "m", auth)
    )
}

/// Polls an HMAC account asking for watchlist-details only, once, against `answers` replayed in
/// turn.
async fn poll_watchlist(answers: Vec<Recorded>) -> (PollOutcome, Arc<ApiStats>, Arc<Replay>) {
    let (server, replay) = replay_server(&[("company/get-watchlist-details", answers)]).await;
    let config = parse(&watchlist_config(&server));
    let (outcome, stats) = poll_once(&config).await;
    (outcome, stats, replay)
}

/// The config of an HMAC account asking `server` for watchlist-details only.
fn watchlist_config(server: &SimServer) -> String {
    config_for(server, &SimAuth::demo_hmac(), "\"watchlist-details\"", "")
}

fn requests_to(replay: &Replay, endpoint: &str) -> Vec<Value> {
    let p = path(endpoint);
    replay
        .requests()
        .into_iter()
        .filter(|(q, _)| *q == p)
        .map(|(_, b)| b)
        .collect()
}

fn error_of(outcome: &PollOutcome) -> String {
    outcome.first_error().unwrap_or_default()
}

// ---------------------------------------------------------------- errors (issue 10.5)

#[tokio::test]
async fn an_intermittent_err_developer_key_is_retried_and_then_succeeds() {
    let (outcome, stats, replay) = poll_watchlist(vec![
        Recorded::json(200, fixture("err-developer-key-http200.json")),
        ok_page(watchlist_rows()),
    ])
    .await;
    assert!(outcome.ok(), "{}", error_of(&outcome));
    assert_eq!(
        requests_to(&replay, "company/get-watchlist-details").len(),
        2
    );
    let got = samples(&text_of(&outcome));
    assert_eq!(
        got[&series(
            "awareness_mimecast_watchlist_users",
            &[("account", "m"), ("department", "IT")]
        )],
        1.0
    );
    assert_eq!(
        stats.failures(FailureReason::Auth),
        1,
        "the refused attempt is counted"
    );
}

#[tokio::test]
async fn a_persistent_err_developer_key_is_auth_after_the_request_budget() {
    let (outcome, stats, replay) = poll_watchlist(vec![Recorded::json(
        200,
        fixture("err-developer-key-http200.json"),
    )])
    .await;
    assert!(!outcome.ok());
    let e = error_of(&outcome);
    assert!(
        e.contains("err_developer_key") && e.contains("App ID is invalid"),
        "{e}"
    );
    assert!(e.contains("after 3 attempts"), "{e}");
    assert_eq!(
        requests_to(&replay, "company/get-watchlist-details").len() as u32,
        MAX_ATTEMPTS
    );
    assert_eq!(stats.failures(FailureReason::Auth), 3);
}

#[tokio::test]
async fn a_retryable_error_in_http_200_is_retried() {
    let retryable = json!({"meta": {"status": 500}, "data": [], "fail": [{"errors": [{"code": "err_internal", "message": "try again", "retryable": true}]}]});
    let (outcome, stats, _) = poll_watchlist(vec![
        Recorded::json(200, retryable.to_string()),
        ok_page(watchlist_rows()),
    ])
    .await;
    assert!(outcome.ok(), "{}", error_of(&outcome));
    assert_eq!(stats.failures(FailureReason::ApiError), 1);
}

/// Rows are folded as pages arrive: the rows of an answer that carries an error are not, so
/// the retried page is counted once.
#[tokio::test]
async fn rows_of_a_refused_answer_are_not_counted() {
    let refused = json!({"meta": {"status": 500}, "data": watchlist_rows(), "fail": [{"errors": [{"code": "err_internal", "message": "try again", "retryable": true}]}]});
    let (outcome, _, _) = poll_watchlist(vec![
        Recorded::json(200, refused.to_string()),
        ok_page(watchlist_rows()),
    ])
    .await;
    assert!(outcome.ok(), "{}", error_of(&outcome));
    let got = samples(&text_of(&outcome));
    assert_eq!(
        got[&series(
            "awareness_mimecast_watchlist_entries",
            &[("account", "m"), ("department", "IT")]
        )],
        2.0
    );
}

#[tokio::test]
async fn http_418_means_the_key_binding_expired() {
    let body = json!({"meta": {"status": 418}, "data": [], "fail": [{"errors": [{"code": "err_xdk_binding_expired", "message": "Binding expired", "retryable": false}]}]});
    let (outcome, stats, replay) =
        poll_watchlist(vec![Recorded::json(418, body.to_string())]).await;
    assert!(!outcome.ok());
    let e = error_of(&outcome);
    assert!(e.contains("key binding expired"), "{e}");
    assert!(e.contains("err_xdk_binding_expired"), "{e}");
    assert_eq!(stats.failures(FailureReason::Auth), 1);
    assert_eq!(stats.failures(FailureReason::Http), 0);
    assert_eq!(
        requests_to(&replay, "company/get-watchlist-details").len(),
        1
    );
}

#[tokio::test]
async fn the_recorded_invalid_signature_reaches_the_message() {
    let (outcome, stats, _) = poll_watchlist(vec![Recorded::json(
        401,
        fixture("err-xdk-invalid-signature-http401.json"),
    )])
    .await;
    let e = error_of(&outcome);
    assert!(
        e.contains("err_xdk_invalid_signature 0004 Invalid Signature"),
        "{e}"
    );
    assert_eq!(stats.failures(FailureReason::Auth), 1);
}

#[tokio::test]
async fn api_2_error_bodies_are_read_whatever_the_status() {
    let token = Recorded::json(
        200,
        json!({"access_token": "t0k", "token_type": "Bearer", "expires_in": 1800}).to_string(),
    );
    let refused = json!({"fail": [{"code": "unauthorized", "message": "The access token is not valid for this resource"}]});
    let in_200 = json!({"meta": {"status": 200}, "data": [], "fail": [{"code": "err_feature_not_enabled", "message": "Awareness Training is not enabled"}]});
    let (server, replay) = replay_server(&[
        ("/oauth/token", vec![token]),
        (
            "company/get-watchlist-details",
            vec![Recorded::json(401, refused.to_string())],
        ),
        (
            "company/get-safe-score-details",
            vec![Recorded::json(200, in_200.to_string())],
        ),
    ])
    .await;
    let auth = SimAuth::demo_oauth2();
    let config = parse(&config_for(
        &server,
        &auth,
        "\"watchlist-details\", \"safe-score-details\"",
        "",
    ));
    let (outcome, stats) = poll_once(&config).await;
    let errors: Vec<String> = outcome
        .sections
        .iter()
        .filter_map(|s| s.result.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("HTTP 401")
                && e.contains("unauthorized The access token is not valid")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("err_feature_not_enabled Awareness Training is not enabled")),
        "{errors:?}"
    );
    // A refused token is replaced once, then the refusal stands.
    assert_eq!(
        requests_to(&replay, "company/get-watchlist-details").len(),
        2
    );
    assert!(stats.failures(FailureReason::Auth) >= 2);
}

/// How each failed section of `outcome` is to be tried again, by section name.
fn retries(outcome: &PollOutcome) -> Vec<(&'static str, Retry)> {
    outcome
        .sections
        .iter()
        .filter_map(|s| match &s.result {
            Err(PollError::Fetch(e)) => Some((s.name, e.retry)),
            _ => None,
        })
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect()
}

/// 404 ("the request URL does not exist") and 403 ("access is denied to the requested
/// resource") of a data endpoint are endpoints not offered (issue 25); a 401, a 403 whose code
/// refuses the credential, and any refusal of the token are not.
#[tokio::test]
async fn endpoints_not_offered_are_told_apart_from_refused_credentials() {
    let token = Recorded::json(
        200,
        json!({"access_token": "t0k", "expires_in": 1800}).to_string(),
    );
    let refused = json!({"fail": [{"code": "unauthorized", "message": "not valid"}]}).to_string();
    let (server, _) = replay_server(&[
        ("/oauth/token", vec![token]),
        // No route for watchlist-details: the replay answers 404.
        (
            "company/get-safe-score-details",
            vec![Recorded::json(403, "")],
        ),
        (
            "company/get-performance-details",
            vec![Recorded::json(401, refused)],
        ),
    ])
    .await;
    let endpoints = "\"watchlist-details\", \"safe-score-details\", \"performance-details\"";
    let config = parse(&config_for(&server, &SimAuth::demo_oauth2(), endpoints, ""));
    let (outcome, _) = poll_once(&config).await;
    assert_eq!(
        retries(&outcome),
        vec![
            ("performance-details", Retry::Backoff),
            ("safe-score-details", Retry::NotOffered),
            ("watchlist-details", Retry::NotOffered),
        ]
    );

    let xdk = json!({"meta": {"status": 403}, "fail": [{"errors": [{"code": "err_xdk_invalid_access_key", "message": "x"}]}]});
    let (outcome, _, _) = poll_watchlist(vec![Recorded::json(403, xdk.to_string())]).await;
    assert_eq!(
        retries(&outcome),
        vec![("watchlist-details", Retry::Backoff)]
    );

    // A token endpoint that answers 404 (a wrong base_url) fails the account, not an endpoint.
    let (server, _) = replay_server(&[]).await;
    let config = parse(&config_for(&server, &SimAuth::demo_oauth2(), endpoints, ""));
    let (outcome, stats) = poll_once(&config).await;
    assert_eq!(retries(&outcome).len(), 3);
    assert!(retries(&outcome).iter().all(|(_, r)| *r == Retry::Backoff));
    assert_eq!(stats.failures(FailureReason::Auth), 1);
}

// ---------------------------------------------------------------- no invented figures (10.6)

#[tokio::test]
async fn a_user_data_answer_without_items_is_zero_rows() {
    let campaigns = json!({"meta": {"status": 200}, "data": [{"campaigns": [
        {"id": "c1", "name": "Empty", "title": {"id": "t1", "title": "Nobody_Yet"}, "numSent": 0, "numCompleted": 0}
    ]}], "fail": []});
    let (server, _replay) = replay_server(&[
        (
            "campaign/get-campaigns",
            vec![Recorded::json(200, campaigns.to_string())],
        ),
        (
            "campaign/get-user-data",
            vec![Recorded::json(
                200,
                json!({"meta": {"status": 200, "pagination": {"pageSize": 500, "totalCount": 0}}, "data": [{}], "fail": []}).to_string(),
            )],
        ),
    ])
    .await;
    let auth = SimAuth::demo_hmac();
    let config = parse(&config_for(&server, &auth, "\"campaigns\"", ""));
    let (outcome, stats) = poll_once(&config).await;
    assert!(outcome.ok(), "{}", error_of(&outcome));
    let got = samples(&text_of(&outcome));
    let l = [
        ("account", "m"),
        ("campaign_id", "c1"),
        ("campaign", "Empty"),
    ];
    assert_eq!(got[&series("awareness_mimecast_campaign_users", &l)], 0.0);
    assert_eq!(stats.snapshot().rows_skipped.values().sum::<u64>(), 0);
}

#[tokio::test]
async fn performance_details_asks_for_user_details_with_pages_of_500() {
    let rows = json!([
        {"email": "a@x.example", "department": "IT", "numCorrect": 3, "numIncorrect": 1, "numNotWatched": 2, "userState": "ACTIVE"},
        {"email": "b@x.example", "department": "IT", "numCorrect": 1, "numIncorrect": 0, "numNotWatched": 0, "userState": "active"},
        {"email": "c@x.example", "department": "IT", "numCorrect": 1, "numIncorrect": 1, "numNotWatched": 1},
        {"email": "d@x.example", "department": "IT", "numCorrect": 9, "numIncorrect": 9, "numNotWatched": 9, "userState": "INACTIVE"},
        {"email": "e@x.example", "department": "", "numCorrect": 9, "numIncorrect": 9, "numNotWatched": 9, "userState": "Suspended"},
    ]);
    let (server, replay) =
        replay_server(&[("company/get-performance-details", vec![ok_page(rows)])]).await;
    let auth = SimAuth::demo_hmac();
    let text = format!(
        "[[mimecast]]\naccount = \"m\"\nbase_url = \"{}\"\n{}endpoints = [\"performance-details\"]\n",
        server.base_url(),
        auth.config_keys()
    );
    let config = parse(&text);
    let Some(m) =
        config.sources[0].get::<awareness_exporter::testing::sources::mimecast::MimecastConfig>()
    else {
        unreachable!()
    };
    assert_eq!(m.page_size, 500, "default page size");
    let (outcome, _) = poll_once(&config).await;
    let sent = requests_to(&replay, "company/get-performance-details");
    assert_eq!(sent[0]["data"], json!([{"includeUserDetails": true}]));
    assert_eq!(sent[0]["meta"]["pagination"]["pageSize"], 500);

    // userState: ACTIVE (any case) or none count toward the user figures, the rest apart.
    let got = samples(&text_of(&outcome));
    let it = [("account", "m"), ("department", "IT")];
    assert_eq!(got[&series("awareness_mimecast_users", &it)], 3.0);
    assert_eq!(got[&series("awareness_mimecast_answers_correct", &it)], 5.0);
    assert_eq!(
        got[&series("awareness_mimecast_modules_not_watched", &it)],
        3.0
    );
    assert_eq!(
        got[&series(
            "awareness_mimecast_users_excluded",
            &[
                ("account", "m"),
                ("department", "IT"),
                ("state", "inactive")
            ]
        )],
        1.0
    );
    assert_eq!(
        got[&series(
            "awareness_mimecast_users_excluded",
            &[("account", "m"), ("department", ""), ("state", "suspended")]
        )],
        1.0
    );
    assert!(!got.contains_key(&series(
        "awareness_mimecast_users",
        &[("account", "m"), ("department", "")]
    )));

    let e = awareness_exporter::registry::loader()
        .parse(
            &text.replace("endpoints", "page_size = 501\nendpoints"),
            "t.toml",
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("mimecast[0].page_size"), "{e}");
}

// ---------------------------------------------------------------- phishing (10.6, 10.7)

fn phishing_routes() -> Vec<(&'static str, Vec<Recorded>)> {
    // Campaign rows as the vendor documents them (no numReported), and one that has it.
    let campaigns = json!({"fail": [], "meta": {"status": 200}, "data": [
        {"id": "p1", "name": "Invoice", "launchDate": "2022-03-01T10:00:00+0000", "numSent": 4, "numOpened": 3, "numClicked": 2, "numSubmitted": 1},
        {"id": "p2", "name": "Parcel", "launchDate": "2022-04-01T10:00:00+0000", "numSent": 1, "numOpened": 1, "numClicked": 0, "numSubmitted": 0, "numReported": 1}
    ]});
    let users_p1 = json!([{"items": [
        {"name": "A", "email": "a@x.example", "department": "Sales", "status": "SUBMITTED", "timeOpened": "2022-03-01T10:05:00+0000", "timeClicked": "2022-03-01T10:06:00+0000", "timeReported": null, "userState": "ACTIVE"},
        {"name": "B", "email": "b@x.example", "department": "Sales", "status": "clicked", "timeClicked": "2022-03-01T11:00:00+0000"},
        {"name": "C", "email": "c@x.example", "department": "IT", "status": "OPENED", "timeReported": "2022-03-01T12:00:00+0000"},
        {"name": "D", "email": "d@x.example", "department": "", "status": "SENT"}
    ]}]);
    let users_p2 = json!([{"items": [
        {"name": "C", "email": "c@x.example", "department": "IT", "status": "OPENED", "timeReported": "2022-04-01T12:00:00+0000"}
    ]}]);
    vec![
        (
            "phishing/campaign/get-campaign",
            vec![Recorded::json(200, campaigns.to_string())],
        ),
        (
            "phishing/campaign/get-user-data",
            vec![ok_page(users_p1), ok_page(users_p2)],
        ),
    ]
}

#[tokio::test]
async fn phishing_reported_only_where_sent_and_clicks_by_department() {
    let replay = Arc::new(Replay::default());
    let routes = phishing_routes();
    replay.route(&path(routes[0].0), routes[0].1.clone());
    replay.route_id(&path(routes[1].0), "p1", vec![routes[1].1[0].clone()]);
    replay.route_id(&path(routes[1].0), "p2", vec![routes[1].1[1].clone()]);
    let server = replay::start(replay.clone()).await.unwrap();
    let auth = SimAuth::demo_hmac();
    let config = parse(&config_for(
        &server,
        &auth,
        "\"phishing-campaigns\"",
        "[metrics]\nper_user = true\n",
    ));
    let (outcome, _) = poll_once(&config).await;
    let got = samples(&text_of(&outcome));
    let p1 = [
        ("account", "m"),
        ("campaign_id", "p1"),
        ("campaign", "Invoice"),
    ];
    let p2 = [
        ("account", "m"),
        ("campaign_id", "p2"),
        ("campaign", "Parcel"),
    ];
    assert!(!got.contains_key(&series("awareness_mimecast_phishing_reported", &p1)));
    assert_eq!(
        got[&series("awareness_mimecast_phishing_reported", &p2)],
        1.0
    );
    assert_eq!(
        got[&series("awareness_mimecast_phishing_emails_sent", &p1)],
        4.0
    );
    // Reports every campaign has: its recipients' timeReported.
    for l in [&p1, &p2] {
        assert_eq!(
            got[&series("awareness_mimecast_phishing_reported_recipients", l)],
            1.0
        );
    }

    let dep = |d: &str, outcome: &str| {
        got.get(&series(
            "awareness_mimecast_phishing_department_recipients",
            &[("account", "m"), ("department", d), ("outcome", outcome)],
        ))
        .copied()
    };
    assert_eq!(dep("Sales", "sent"), Some(2.0));
    assert_eq!(
        dep("Sales", "opened"),
        Some(2.0),
        "clicking implies opening"
    );
    assert_eq!(dep("Sales", "clicked"), Some(2.0));
    assert_eq!(dep("Sales", "submitted"), Some(1.0));
    assert_eq!(dep("Sales", "reported"), Some(0.0));
    assert_eq!(
        dep("IT", "sent"),
        Some(2.0),
        "one per recipient and campaign"
    );
    assert_eq!(dep("IT", "clicked"), Some(0.0));
    assert_eq!(dep("IT", "reported"), Some(2.0));
    assert_eq!(dep("", "sent"), Some(1.0));
    // Per recipient only with per_user.
    assert_eq!(
        got[&series(
            "awareness_mimecast_user_phishing_clicked",
            &[("account", "m"), ("email", "a@x.example")]
        )],
        1.0
    );
    let asked: Vec<String> = requests_to(&replay, "phishing/campaign/get-user-data")
        .iter()
        .map(|b| b["data"][0]["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(asked.len(), 2);

    let config = parse(&config_for(&server, &auth, "\"phishing-campaigns\"", ""));
    let (outcome, _) = poll_once(&config).await;
    assert!(!text_of(&outcome).contains("awareness_mimecast_user_phishing"));
}

// ---------------------------------------------------------------- garbage (issue 12.7)

#[tokio::test]
async fn ten_thousand_empty_rows_fail_the_section_and_keep_the_last_good_data() {
    let garbage: Vec<Value> = (0..10_000).map(|_| json!({})).collect();
    let (server, _replay) = replay_server(&[(
        "company/get-watchlist-details",
        vec![ok_page(watchlist_rows()), ok_page(Value::Array(garbage))],
    )])
    .await;
    let config = parse(&watchlist_config(&server));
    let (good, _) = poll_once(&config).await;
    assert!(good.ok());
    let (bad, stats) = poll_once(&config).await;
    assert!(!bad.ok(), "garbage must not be a success");
    let e = error_of(&bad);
    assert!(e.contains("10000 of 10000 rows"), "{e}");
    assert_eq!(stats.failures(FailureReason::Decode), 1);
    assert_eq!(stats.snapshot().rows_skipped.values().sum::<u64>(), 10_000);
    let key = config.sources[0].key();
    let published = publish_good_then_bad(&key, good, bad);
    let users = series(
        "awareness_mimecast_watchlist_users",
        &[("account", "m"), ("department", "IT")],
    );
    assert_eq!(published.before.get(&users), Some(&1.0));
    assert_last_good_data_kept(&key, &published);
}

#[tokio::test]
async fn a_few_rows_without_identity_are_skipped_and_counted() {
    let mut rows = watchlist_rows().as_array().unwrap().clone();
    rows.push(json!({"department": "IT", "watchlistCount": 5}));
    let (outcome, stats, _) = poll_watchlist(vec![ok_page(Value::Array(rows))]).await;
    assert!(outcome.ok(), "{}", error_of(&outcome));
    let got = samples(&text_of(&outcome));
    assert_eq!(
        got[&series(
            "awareness_mimecast_watchlist_entries",
            &[("account", "m"), ("department", "IT")]
        )],
        2.0,
        "the row without an email is not a user"
    );
    assert_eq!(stats.snapshot().rows_skipped.values().sum::<u64>(), 1);
}
