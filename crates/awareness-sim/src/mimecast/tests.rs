//! The simulated Mimecast tenant over HTTP: auth, paging, quota, faults and answer shapes.

use super::*;
use crate::Fault;
use serde_json::{json, Value};
use std::time::Instant;

const PERF: &str = "/api/awareness-training/company/get-performance-details";

async fn server(users: usize, options: MimecastOptions) -> (SimServer, Arc<Population>) {
    let pop = Arc::new(Population::generate(5, users));
    let s = start(Arc::clone(&pop), options).await.unwrap();
    (s, pop)
}

/// A client-credentials token request to `s`.
async fn token_request(
    c: &reqwest::Client,
    s: &SimServer,
    client_id: &str,
    client_secret: &str,
) -> reqwest::Response {
    c.post(format!("{}/oauth/token", s.base_url()))
        .form(&[
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap()
}

async fn oauth_token(c: &reqwest::Client, s: &SimServer) -> String {
    let resp = token_request(c, s, "demo-mimecast-client", "demo-mimecast-secret").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], 1800);
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().unwrap().to_string()
}

async fn post(
    c: &reqwest::Client,
    s: &SimServer,
    path: &str,
    token: &str,
    body: Value,
) -> reqwest::Response {
    c.post(format!("{}{path}", s.base_url()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn page(size: usize, token: Option<&str>) -> Value {
    match token {
        Some(t) => {
            json!({"meta": {"pagination": {"pageSize": size, "pageToken": t}}, "data": []})
        }
        None => json!({"meta": {"pagination": {"pageSize": size}}, "data": []}),
    }
}

fn first_error(v: &Value) -> &str {
    v["fail"][0]["errors"][0]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn oauth_token_and_bearer() {
    let (s, _) = server(10, MimecastOptions::default()).await;
    let c = reqwest::Client::new();
    let bad = token_request(&c, &s, "demo-mimecast-client", "x").await;
    assert_eq!(bad.status(), 400);
    assert_eq!(
        bad.json::<Value>().await.unwrap(),
        json!({"error": "invalid_client"})
    );

    let r = post(&c, &s, PERF, "nope", json!({"data": []})).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("x-ratelimit-remaining"));
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"meta":{"status":401},"data":[],"fail":[{"errors":[{"code":"err_xdk_client_unauthorized","message":"Unauthorized","retryable":false}]}]})
    );

    let token = oauth_token(&c, &s).await;
    let r = post(&c, &s, PERF, &token, json!({"data": []})).await;
    assert_eq!(r.status(), 200);
    s.control.expire_tokens();
    assert_eq!(
        post(&c, &s, PERF, &token, json!({"data": []}))
            .await
            .status(),
        401
    );

    s.control.set_fault(Fault::TokenFailure);
    let r = token_request(&c, &s, "demo-mimecast-client", "demo-mimecast-secret").await;
    assert_eq!(r.status(), 400);
    assert_eq!(s.control.token_requests(), 3);
    assert_eq!(s.control.requests("get-performance-details"), 3);
}

#[tokio::test]
async fn hmac_tenant() {
    let auth = SimAuth::demo_hmac();
    let options = MimecastOptions {
        auth: auth.clone(),
        ..Default::default()
    };
    let (s, pop) = server(12, options).await;
    let c = reqwest::Client::new();
    let send = |headers: Vec<(&'static str, String)>| {
        let mut rb = c
            .post(format!("{}{PERF}", s.base_url()))
            .json(&json!({"data": []}));
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        rb.send()
    };
    let r = send(auth.hmac_headers(PERF)).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 12);
    assert_eq!(body["data"][0], performance_row(&pop.users[0], 0));

    // Replayed request id.
    let headers = auth.hmac_headers(PERF);
    assert_eq!(send(headers.clone()).await.unwrap().status(), 200);
    let r = send(headers).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        first_error(&r.json().await.unwrap()),
        "err_xdk_duplicate_request_id"
    );

    // Signature made for another path.
    let r = send(auth.hmac_headers("/api/awareness-training/company/get-watchlist-details"))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(first_error(&body), "err_xdk_invalid_signature");
    assert_eq!(
        body["fail"][0]["errors"][0]["message"],
        "0004 Invalid Signature"
    );

    // Wrong access key.
    let mut headers = auth.hmac_headers(PERF);
    let (_, a) = headers
        .iter_mut()
        .find(|(k, _)| *k == "authorization")
        .unwrap();
    *a = a.replacen("MC mYt", "MC xYt", 1);
    assert_eq!(send(headers).await.unwrap().status(), 401);

    // Wrong app id: HTTP 200 with fail.
    let mut headers = auth.hmac_headers(PERF);
    let (_, a) = headers
        .iter_mut()
        .find(|(k, _)| *k == "x-mc-app-id")
        .unwrap();
    *a = "other".into();
    let r = send(headers).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(first_error(&r.json().await.unwrap()), "err_developer_key");

    // Old date, correctly signed.
    let SimAuth::Hmac {
        app_id,
        app_key,
        access_key,
        secret_key_b64,
    } = &auth
    else {
        unreachable!()
    };
    let date = "Tue, 24 Nov 2015 12:50:11 UTC";
    let sig = sign(secret_key_b64, date, "req-1", PERF, app_key).unwrap();
    let r = send(vec![
        ("x-mc-date", date.to_string()),
        ("x-mc-req-id", "req-1".to_string()),
        ("x-mc-app-id", app_id.clone()),
        ("authorization", format!("MC {access_key}:{sig}")),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        first_error(&r.json().await.unwrap()),
        "err_xdk_date_out_of_range"
    );

    // Missing headers.
    assert_eq!(send(Vec::new()).await.unwrap().status(), 401);

    // Revoked keys.
    s.control.set_fault(Fault::TokenFailure);
    assert_eq!(send(auth.hmac_headers(PERF)).await.unwrap().status(), 401);
    s.control.clear_faults();
    // No token endpoint for an HMAC tenant.
    let r = token_request(&c, &s, "a", "b").await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn paging_walks_every_endpoint() {
    let options = MimecastOptions {
        max_page_size: 40,
        ..Default::default()
    };
    let (s, pop) = server(203, options).await;
    let c = reqwest::Client::new();
    let token = oauth_token(&c, &s).await;
    for ep in [
        "company/get-performance-details",
        "company/get-watchlist-details",
        "company/get-safe-score-details",
    ] {
        let path = format!("{API_PREFIX}{ep}");
        let mut next: Option<String> = None;
        let mut rows = Vec::new();
        let mut pages = 0;
        loop {
            let r = post(&c, &s, &path, &token, page(500, next.as_deref())).await;
            assert_eq!(r.status(), 200);
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["meta"]["status"], 200);
            assert_eq!(body["fail"], json!([]));
            assert_eq!(body["meta"]["pagination"]["pageSize"], 40);
            assert_eq!(body["meta"]["pagination"]["totalCount"], 203);
            rows.extend(body["data"].as_array().unwrap().iter().cloned());
            pages += 1;
            match body["meta"]["pagination"]["next"].as_str() {
                Some(t) => next = Some(t.to_string()),
                None => break,
            }
        }
        assert_eq!(pages, 6, "{ep}");
        assert_eq!(rows.len(), pop.users.len(), "{ep}");
        if ep.ends_with("performance-details") {
            for (i, r) in rows.iter().enumerate() {
                assert_eq!(r, &performance_row(&pop.users[i], i));
            }
        }
    }
    // Training details: the API user's own record, one entry, not paged.
    let path = format!("{API_PREFIX}user/get-training-details");
    let body: Value = post(&c, &s, &path, &token, page(500, None))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"], json!([training_row(&pop, API_USER)]));
    assert!(body["meta"].get("pagination").is_none());
    // A page token of another endpoint is refused.
    let r = post(&c, &s, PERF, &token, page(40, None)).await;
    let t = r.json::<Value>().await.unwrap()["meta"]["pagination"]["next"]
        .as_str()
        .unwrap()
        .to_string();
    let other = format!("{API_PREFIX}company/get-watchlist-details");
    let r = post(&c, &s, &other, &token, page(40, Some(&t))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        first_error(&r.json().await.unwrap()),
        "err_validation_invalid_page_token"
    );
    let r = post(&c, &s, PERF, &token, page(40, Some("garbage!"))).await;
    assert_eq!(
        first_error(&r.json().await.unwrap()),
        "err_validation_invalid_page_token"
    );
    // Invalid JSON.
    let r = c
        .post(format!("{}{PERF}", s.base_url()))
        .bearer_auth(&token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Unknown path.
    let r = post(&c, &s, "/api/awareness-training/nope", &token, json!({})).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn campaigns_and_phishing() {
    let (s, pop) = server(120, MimecastOptions::default()).await;
    let c = reqwest::Client::new();
    let token = oauth_token(&c, &s).await;
    let r = post(
        &c,
        &s,
        "/api/awareness-training/campaign/get-campaigns",
        &token,
        json!({"data": []}),
    )
    .await;
    let body: Value = r.json().await.unwrap();
    let list = body["data"][0]["campaigns"].as_array().unwrap();
    assert_eq!(list.len(), pop.campaigns.len());
    assert_eq!(list.last().unwrap()["numCompleted"], 0);

    let path = "/api/awareness-training/campaign/get-user-data";
    for (ci, camp) in pop.campaigns.iter().enumerate() {
        let mut next: Option<String> = None;
        let mut items = Vec::new();
        loop {
            let mut req = page(25, next.as_deref());
            req["data"] = json!([{"id": camp.id}]);
            let body: Value = post(&c, &s, path, &token, req).await.json().await.unwrap();
            assert_eq!(body["fail"], json!([]), "{body}");
            items.extend(body["data"][0]["items"].as_array().unwrap().iter().cloned());
            match body["meta"]["pagination"]["next"].as_str() {
                Some(t) => next = Some(t.to_string()),
                None => break,
            }
        }
        let members = pop.campaign_members(ci);
        assert_eq!(items.len(), members.len());
        assert_eq!(list[ci]["numSent"], members.len());
        if ci == pop.campaigns.len() - 1 {
            assert!(items.iter().all(|i| i["results"]["forQuestion1"] == "SENT"));
        }
    }
    // Status filter.
    let mut req = page(500, None);
    req["data"] = json!([{"id": pop.campaigns[0].id, "filterBy": [{"fieldName": "status", "value": "correct"}]}]);
    let body: Value = post(&c, &s, path, &token, req).await.json().await.unwrap();
    let items = body["data"][0]["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|i| i["results"]
        .as_object()
        .unwrap()
        .values()
        .any(|v| v == "CORRECT")));

    let body: Value = post(&c, &s, path, &token, json!({"data": []}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first_error(&body), "err_validation_null");
    let body: Value = post(&c, &s, path, &token, json!({"data": [{"id": "nope"}]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first_error(&body), "err_campaign_not_found");

    let ph = "/api/awareness-training/phishing/campaign/get-campaign";
    let body: Value = post(&c, &s, ph, &token, json!({"data": []}))
        .await
        .json()
        .await
        .unwrap();
    let rows = body["data"].as_array().unwrap();
    assert_eq!(rows.len(), pop.phishing.len());
    assert_eq!(rows[0], phishing_row(&pop.phishing[0]));
    let body: Value = post(
        &c,
        &s,
        ph,
        &token,
        json!({"data": [{"id": pop.phishing[1].id}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 1);

    let body: Value = post(
        &c,
        &s,
        "/api/awareness-training/company/get-safe-score-summary",
        &token,
        json!({"data": []}),
    )
    .await
    .json()
    .await
    .unwrap();
    let counts = &body["data"][0]["scoreCounts"];
    let sum: u64 = ["a", "b", "c", "d", "f"]
        .iter()
        .map(|k| counts[k].as_u64().unwrap())
        .sum();
    assert_eq!(sum, 120);
}

#[tokio::test]
async fn rate_limit_quota() {
    let options = MimecastOptions {
        rate_limit: 5,
        rate_window_ms: 400,
        ..Default::default()
    };
    let (s, _) = server(10, options).await;
    let c = reqwest::Client::new();
    let token = oauth_token(&c, &s).await;
    for i in 0..5 {
        let r = post(&c, &s, PERF, &token, json!({"data": []})).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-ratelimit-limit"], "5");
        assert_eq!(
            r.headers()["x-ratelimit-remaining"],
            (4 - i).to_string().as_str()
        );
    }
    let r = post(&c, &s, PERF, &token, json!({"data": []})).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    let reset: u64 = r.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset > 0 && reset <= 400, "{reset}");
    tokio::time::sleep(Duration::from_millis(reset + 20)).await;
    assert_eq!(
        post(&c, &s, PERF, &token, json!({"data": []}))
            .await
            .status(),
        200
    );
    assert_eq!(s.control.requests("get-performance-details"), 7);
}

#[tokio::test]
async fn faults_have_visible_effects() {
    let (s, _) = server(30, MimecastOptions::default()).await;
    let c = reqwest::Client::new();
    let token = oauth_token(&c, &s).await;
    let body = || page(10, None);

    s.control.set_fault(Fault::Down);
    assert_eq!(post(&c, &s, PERF, &token, body()).await.status(), 503);

    s.control.set_fault(Fault::Status {
        code: 500,
        times: 1,
    });
    assert_eq!(post(&c, &s, PERF, &token, body()).await.status(), 500);
    assert_eq!(post(&c, &s, PERF, &token, body()).await.status(), 200);

    s.control.set_fault(Fault::RateLimit {
        times: 2,
        reset_ms: 2500,
    });
    for _ in 0..2 {
        let r = post(&c, &s, PERF, &token, body()).await;
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["x-ratelimit-reset"], "2500");
        assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    }
    assert_eq!(post(&c, &s, PERF, &token, body()).await.status(), 200);

    s.control.set_fault(Fault::Truncated);
    let bytes = post(&c, &s, PERF, &token, body())
        .await
        .bytes()
        .await
        .unwrap();
    assert!(serde_json::from_slice::<Value>(&bytes).is_err());

    s.control.set_fault(Fault::Malformed);
    let r = post(&c, &s, PERF, &token, body()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "<html>oops</html>");

    s.control.set_fault(Fault::WrongTypes);
    let v: Value = post(&c, &s, PERF, &token, page(30, None))
        .await
        .json()
        .await
        .unwrap();
    let bad: Vec<usize> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, r)| r["numCorrect"].is_boolean())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(bad, vec![9, 19, 29]);

    s.control.set_fault(Fault::HugeBody(300_000));
    let bytes = post(&c, &s, PERF, &token, body())
        .await
        .bytes()
        .await
        .unwrap();
    assert!(bytes.len() >= 300_000);
    assert!(serde_json::from_slice::<Value>(&bytes).is_ok());

    s.control.set_fault(Fault::EndlessPaging);
    let mut next: Option<String> = None;
    for _ in 0..10 {
        let v: Value = post(&c, &s, PERF, &token, page(10, next.as_deref()))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 10);
        next = Some(
            v["meta"]["pagination"]["next"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }

    s.control.set_fault(Fault::FailPage {
        endpoint: "company/get-performance-details".into(),
        page: 2,
    });
    let v: Value = post(&c, &s, PERF, &token, page(10, None))
        .await
        .json()
        .await
        .unwrap();
    let t = v["meta"]["pagination"]["next"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        post(&c, &s, PERF, &token, page(10, Some(&t)))
            .await
            .status(),
        500
    );
    assert_eq!(
        post(&c, &s, PERF, &token, page(10, Some(&t)))
            .await
            .status(),
        500
    );

    s.control.set_fault(Fault::ErrorIn200);
    let r = post(&c, &s, PERF, &token, body()).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(first_error(&v), "err_internal");
    assert_eq!(v["meta"]["status"], 500);
    assert_eq!(v["data"], json!([]));

    s.control.set_fault(Fault::NotLicensed {
        endpoint: "company/get-safe-score-details".into(),
    });
    let r = post(
        &c,
        &s,
        "/api/awareness-training/company/get-safe-score-details",
        &token,
        body(),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        first_error(&r.json().await.unwrap()),
        "err_feature_not_enabled"
    );
    assert_eq!(post(&c, &s, PERF, &token, body()).await.status(), 200);

    s.control.set_fault(Fault::Slow(Duration::from_millis(150)));
    let started = Instant::now();
    assert_eq!(post(&c, &s, PERF, &token, body()).await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn deterministic_answers() {
    let (a, _) = server(80, MimecastOptions::default()).await;
    let (b, _) = server(80, MimecastOptions::default()).await;
    let c = reqwest::Client::new();
    let ta = oauth_token(&c, &a).await;
    let tb = oauth_token(&c, &b).await;
    for ep in [
        "user/get-training-details",
        "campaign/get-campaigns",
        "phishing/campaign/get-campaign",
    ] {
        let path = format!("{API_PREFIX}{ep}");
        let x = post(&c, &a, &path, &ta, page(500, None))
            .await
            .bytes()
            .await
            .unwrap();
        let y = post(&c, &b, &path, &tb, page(500, None))
            .await
            .bytes()
            .await
            .unwrap();
        assert_eq!(x, y, "{ep}");
    }
}
