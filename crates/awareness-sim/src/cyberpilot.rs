//! Simulated CyberPilot API: `POST /oauth/token` (OAuth2 password grant) and
//! `GET /accounts/{account_id}/reports/users-summary?take=N&skip=M` (vendor seed 002).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequest, Query, Request, State};
use axum::http::header::{HeaderValue, RETRY_AFTER};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::{Form, Router};
use serde_json::{json, Map, Value};

use super::control::{is_garbage_row, Control, Fault};
use super::population::{LastAction, Population, SimUser};
use super::{
    after_latency, data_response, json_response, malformed_response, respond, status_of, SimServer,
    Tenant, TokenStore,
};

/// The exporter's `platform` label and `[[table]]` for this vendor.
pub const PLATFORM: &str = "cyberpilot";

/// Configuration of a simulated CyberPilot tenant.
#[derive(Debug, Clone)]
pub struct CyberPilotOptions {
    pub account_id: String,
    /// A static access token accepted besides issued ones (`None`: only issued tokens).
    pub static_token: Option<String>,
    pub client_id: String,
    pub username: String,
    pub password: String,
    pub token_lifetime_secs: u64,
    /// The server caps `take` at this.
    pub max_take: usize,
    pub seed: u64,
}

impl CyberPilotOptions {
    /// A `[[cyberpilot]]` block of the exporter's config for `account` on `server`, without
    /// credentials: add [`token_key`](Self::token_key) or [`login_table`](Self::login_table)
    /// (last: it opens a sub-table).
    pub fn account_block(&self, server: &SimServer, account: &str) -> String {
        format!(
            "[[cyberpilot]]\naccount = {}\naccount_id = {}\nbase_url = {}\n",
            super::toml_str(account),
            super::toml_str(&self.account_id),
            super::toml_str(&server.base_url())
        )
    }

    /// `token = ...` with the static token (empty when the tenant has none).
    pub fn token_key(&self) -> String {
        self.static_token
            .as_deref()
            .map(|t| format!("token = {}\n", super::toml_str(t)))
            .unwrap_or_default()
    }

    /// The `[cyberpilot.login]` table for the password grant against `server`.
    pub fn login_table(&self, server: &SimServer) -> String {
        format!(
            "[cyberpilot.login]\ntoken_url = {}\nclient_id = {}\nusername = {}\npassword = {}\n",
            super::toml_str(&format!("{}/oauth/token", server.base_url())),
            super::toml_str(&self.client_id),
            super::toml_str(&self.username),
            super::toml_str(&self.password)
        )
    }
}

impl Default for CyberPilotOptions {
    fn default() -> Self {
        Self {
            account_id: "c36a9951-a630-4f5a-b874-160d4fe00d6f".to_string(),
            static_token: Some("demo-static-token".to_string()),
            client_id: "demo-client".to_string(),
            username: "admin@example.com".to_string(),
            password: "demo-password".to_string(),
            token_lifetime_secs: 3600,
            max_take: 100,
            seed: 42,
        }
    }
}

/// The state of a simulated CyberPilot tenant.
pub struct CyberPilotSim {
    population: Arc<Population>,
    options: CyberPilotOptions,
    control: Arc<Control>,
    tokens: TokenStore,
    /// Every user's row, serialised once: a real vendor's CPU is not on our machine, so the
    /// simulator should spend as little of the shared CPU as it can (benchmarks).
    rows_json: Vec<String>,
}

impl crate::Simulator for CyberPilotSim {
    const PLATFORM: &'static str = PLATFORM;
    type Options = CyberPilotOptions;
    const FAULTS: &'static [(Fault, &'static str)] = &[
        (
            Fault::Status {
                code: 500,
                times: 1000,
            },
            "http",
        ),
        (
            Fault::Status {
                code: 404,
                times: 1000,
            },
            "http",
        ),
        (
            Fault::RateLimit {
                times: 1000,
                reset_ms: 20,
            },
            "rate_limited",
        ),
        // `{"error": ...}` with no `result`.
        (Fault::ErrorIn200, "decode"),
        (Fault::HugeBody(1 << 19), "decode"),
    ];

    fn router(
        population: Arc<Population>,
        options: CyberPilotOptions,
        control: Arc<Control>,
    ) -> Router {
        let rows_json = population
            .users
            .iter()
            .map(|u| users_summary_row(u).to_string())
            .collect();
        let sim = Arc::new(CyberPilotSim {
            population,
            options,
            control,
            tokens: TokenStore::default(),
            rows_json,
        });
        Router::new().fallback(handle).with_state(sim)
    }

    /// Polled with the static token of `options` (`token = ...`).
    fn account_keys(options: &CyberPilotOptions, server: &SimServer, account: &str) -> String {
        options.account_block(server, account) + &options.token_key()
    }
}

/// Start a simulated CyberPilot tenant on `127.0.0.1:<random port>`.
pub async fn start(
    population: Arc<Population>,
    options: CyberPilotOptions,
) -> std::io::Result<SimServer> {
    crate::start::<CyberPilotSim>(population, options).await
}

/// A tenant polled with the static token of `options` (`token = ...`).
pub async fn tenant(
    population: Arc<Population>,
    options: CyberPilotOptions,
    account: &str,
) -> std::io::Result<Tenant> {
    Tenant::start::<CyberPilotSim>(population, options, account).await
}

/// A tenant polled through the OAuth2 password grant (`[cyberpilot.login]`).
pub async fn login_tenant(
    population: Arc<Population>,
    options: CyberPilotOptions,
    account: &str,
) -> std::io::Result<Tenant> {
    let server = start(Arc::clone(&population), options.clone()).await?;
    let head = options.account_block(&server, account);
    let login = options.login_table(&server);
    Ok(Tenant::new(
        PLATFORM, account, server, population, head, login,
    ))
}

/// The fault matrix's CyberPilot tenant: 250 users, static token.
pub async fn fault_tenant() -> std::io::Result<Tenant> {
    let population = Arc::new(Population::generate(8, 250));
    let tenant = tenant(population, CyberPilotOptions::default(), "faulty").await?;
    Ok(tenant.with_keys(crate::demo::PAGE_SIZE))
}

/// The demo's CyberPilot tenant: 1,200 users, logging in with the password grant.
pub async fn demo_tenant(account: &str, size: crate::demo::Size) -> std::io::Result<Tenant> {
    let population = Arc::new(Population::generate(42, size.people(1200)));
    let tenant = login_tenant(population, CyberPilotOptions::default(), account).await?;
    Ok(tenant.with_keys(crate::demo::PAGE_SIZE))
}

fn message(status: StatusCode, text: &str) -> Response {
    json_response(status, &json!({ "message": text }))
}

async fn handle(State(sim): State<Arc<CyberPilotSim>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let is_token = path == "/oauth/token";
    let control = Arc::clone(&sim.control);
    let _in_flight = control.begin(&path, is_token);
    // The answer borrows the control; the request moves in (it is not `Sync`).
    let control = &*control;
    let answer = async move {
        if control.is_down() {
            return respond(StatusCode::SERVICE_UNAVAILABLE, "", Vec::new());
        }
        if is_token {
            if req.method() != Method::POST {
                return message(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
            }
            return token(&sim, req).await;
        }
        let account = path
            .strip_prefix("/accounts/")
            .and_then(|rest| rest.strip_suffix("/reports/users-summary"));
        let Some(account) = account.filter(|a| !a.is_empty() && !a.contains('/')) else {
            return message(StatusCode::NOT_FOUND, "Not Found");
        };
        if req.method() != Method::GET {
            return message(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        }
        if let Some(code) = control.take_status() {
            return message(status_of(code), "Simulated failure");
        }
        if let Some(reset_ms) = control.take_rate_limit() {
            let mut resp = message(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            let secs = reset_ms.div_ceil(1000);
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
            return resp;
        }
        if !authorized(&sim, req.headers()) {
            return message(StatusCode::UNAUTHORIZED, "Unauthorized");
        }
        if account != sim.options.account_id {
            return message(StatusCode::NOT_FOUND, "Account not found");
        }
        users_summary(&sim, &path, &req)
    };
    after_latency(control, !is_token, answer).await
}

fn authorized(sim: &CyberPilotSim, headers: &axum::http::HeaderMap) -> bool {
    let Some(token) = super::bearer(headers) else {
        return false;
    };
    if sim.options.static_token.as_deref() == Some(token) {
        return true;
    }
    sim.tokens.valid(token, sim.control.token_generation())
}

async fn token(sim: &CyberPilotSim, req: Request) -> Response {
    if sim.control.token_failure() {
        return json_response(StatusCode::BAD_REQUEST, &json!({"error": "invalid_client"}));
    }
    let form = match Form::<HashMap<String, String>>::from_request(req, &()).await {
        Ok(Form(form)) => form,
        Err(_) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": "invalid_request", "error_description": "expected a form-encoded body"}),
            )
        }
    };
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if get("grant_type") != "password" {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "unsupported_grant_type"}),
        );
    }
    let o = &sim.options;
    if get("client_id") != o.client_id {
        return json_response(StatusCode::BAD_REQUEST, &json!({"error": "invalid_client"}));
    }
    if get("username") != o.username || get("password") != o.password {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_grant", "error_description": "Invalid username or password"}),
        );
    }
    let now = chrono::Utc::now().timestamp();
    let lifetime = i64::try_from(o.token_lifetime_secs).unwrap_or(i64::MAX / 4);
    let token = super::jwt_like(&o.username, now.saturating_add(lifetime), now);
    sim.tokens.grant(
        &sim.control,
        token,
        o.token_lifetime_secs,
        &[("scope", "reports")],
    )
}

fn users_summary(sim: &CyberPilotSim, path: &str, req: &Request) -> Response {
    let control = &sim.control;
    let query = match Query::<HashMap<String, String>>::try_from_uri(req.uri()) {
        Ok(Query(q)) => q,
        Err(_) => return message(StatusCode::BAD_REQUEST, "Invalid query string"),
    };
    let parse = |key: &str, default: usize| -> Option<usize> {
        match query.get(key) {
            None => Some(default),
            Some(v) => v.trim().parse::<usize>().ok(),
        }
    };
    let Some(take) = parse("take", 20).map(|t| t.min(sim.options.max_take)) else {
        return message(
            StatusCode::BAD_REQUEST,
            "'take' must be a non-negative integer",
        );
    };
    let Some(skip) = parse("skip", 0) else {
        return message(
            StatusCode::BAD_REQUEST,
            "'skip' must be a non-negative integer",
        );
    };
    let page = u32::try_from(skip / take.max(1) + 1).unwrap_or(u32::MAX);
    if control.fails_page(path, page) {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    }
    if control.error_in_200() {
        return json_response(
            StatusCode::OK,
            &json!({"error": "An unexpected error occurred while generating the report"}),
        );
    }
    if control.malformed() {
        return malformed_response();
    }
    let users = &sim.population.users;
    let total = users.len();
    let endless = control.endless_paging();
    let garbage = control.wrong_types();
    let positions: Vec<usize> = if endless {
        if total == 0 {
            Vec::new()
        } else {
            (skip..skip.saturating_add(take)).collect()
        }
    } else {
        (skip.min(total)..skip.saturating_add(take).min(total)).collect()
    };
    if !garbage && !endless && control.huge_body().is_none() {
        // Fast path: splice the pre-serialised rows.
        let mut body = format!(
            "{{\"count\":{total},\"fetched\":{},\"result\":[",
            positions.len()
        );
        for (i, &p) in positions.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&sim.rows_json[p]);
        }
        body.push_str("]}");
        let mut bytes = body.into_bytes();
        if control.truncated() {
            bytes.truncate(bytes.len() / 2);
        }
        return super::respond(StatusCode::OK, "application/json", bytes);
    }
    let rows: Vec<Value> = positions
        .iter()
        .map(|&p| {
            let mut row = users_summary_row(&users[p % total.max(1)]);
            if garbage && is_garbage_row(p) {
                garble(&mut row);
            }
            row
        })
        .collect();
    let count = if endless {
        skip.saturating_add(rows.len()).saturating_add(take.max(1))
    } else {
        total
    };
    data_response(
        control,
        json!({ "count": count, "fetched": rows.len(), "result": rows }),
    )
}

/// Row-level garbage for [`super::Fault::WrongTypes`].
fn garble(row: &mut Value) {
    if let Some(obj) = row.as_object_mut() {
        obj.insert("overdueCourses".to_string(), json!({"x": 1}));
        obj.insert("linksClicked".to_string(), json!(true));
    }
}

fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

/// One `users-summary` row exactly as the simulator serves it (without faults).
pub fn users_summary_row(u: &SimUser) -> Value {
    let mut user = Map::new();
    user.insert("id".into(), json!(u.id));
    user.insert("email".into(), json!(u.email));
    user.insert("created".into(), json!(u.created));
    user.insert("name".into(), json!(u.name));
    user.insert("firstName".into(), json!(u.first_name));
    user.insert("lastName".into(), json!(u.last_name));
    if let Some((id, name)) = &u.branch {
        user.insert("branch".into(), json!({"id": id, "name": name}));
    }
    let groups: Vec<Value> = u
        .groups
        .iter()
        .map(|(id, name)| json!({"id": id, "name": name}))
        .collect();
    user.insert("groups".into(), Value::Array(groups));

    let last_action = match &u.last_action {
        LastAction::Code(c) => json!(c),
        LastAction::Text(t) => json!(t),
    };
    let risk_level = match u.links_clicked {
        0 => "low",
        1 | 2 => "medium",
        _ => "high",
    };
    json!({
        "enrolledCourses": u.enrolled_courses,
        "notCompletedCourses": u.not_completed_courses,
        "overdueCourses": u.overdue_courses,
        // Documented as an int: a user with no training yet gets 0, not null.
        "averageScore": u.average_score.map(number).unwrap_or(json!(0)),
        "enrolledMaterials": u.enrolled_materials,
        "notCompletedMaterials": u.not_completed_materials,
        "phishingCampaigns": u.phishing_campaigns,
        "emailsSent": u.emails_sent,
        "linksClicked": u.links_clicked,
        "dataSubmitted": u.data_submitted,
        "lastAction": last_action,
        "riskLevel": risk_level,
        "user": Value::Object(user),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Fault;
    use std::time::Duration;

    const ACCOUNT: &str = "c36a9951-a630-4f5a-b874-160d4fe00d6f";

    async fn server(users: usize, options: CyberPilotOptions) -> (SimServer, Arc<Population>) {
        let pop = Arc::new(Population::generate(11, users));
        let s = start(Arc::clone(&pop), options).await.unwrap();
        (s, pop)
    }

    fn summary_url(s: &SimServer, take: usize, skip: usize) -> String {
        format!(
            "{}/accounts/{ACCOUNT}/reports/users-summary?take={take}&skip={skip}",
            s.base_url()
        )
    }

    async fn get(client: &reqwest::Client, url: &str, token: &str) -> reqwest::Response {
        client.get(url).bearer_auth(token).send().await.unwrap()
    }

    async fn login(client: &reqwest::Client, s: &SimServer) -> reqwest::Response {
        client
            .post(format!("{}/oauth/token", s.base_url()))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "demo-client"),
                ("username", "admin@example.com"),
                ("password", "demo-password"),
            ])
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_answer_cache_replays_a_given_answer_after_the_latency() {
        let (s, _) = server(30, CyberPilotOptions::default()).await;
        let c = reqwest::Client::new();
        let url = summary_url(&s, 10, 0);
        s.control.set_answer_cache(true);
        s.control.set_latency(Duration::from_millis(20));
        let first = get(&c, &url, "demo-static-token")
            .await
            .bytes()
            .await
            .unwrap();
        // A fault the simulator would answer with: a replayed answer bypasses it.
        s.control.push_fault(Fault::Status {
            code: 503,
            times: 1,
        });
        s.control.reset_counters();
        let replayed = get(&c, &url, "demo-static-token").await;
        assert_eq!(replayed.status(), 200);
        assert_eq!(replayed.bytes().await.unwrap(), first);
        assert_eq!(s.control.requests("users-summary"), 1);
        let served = s.control.mean_answer_time().unwrap();
        assert!(served >= Duration::from_millis(20), "{served:?}");
        // Off: the answers are forgotten and the simulator answers again (the fault first).
        s.control.set_answer_cache(false);
        assert_eq!(get(&c, &url, "demo-static-token").await.status(), 503);
    }

    #[tokio::test]
    async fn token_issue_and_refusal() {
        let (s, _) = server(5, CyberPilotOptions::default()).await;
        let c = reqwest::Client::new();
        let resp = login(&c, &s).await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        let token = body["access_token"].as_str().unwrap().to_string();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        use base64::Engine as _;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap();
        let payload: Value = serde_json::from_slice(&payload).unwrap();
        assert!(payload["exp"].as_i64().unwrap() > chrono::Utc::now().timestamp());
        assert_eq!(payload["sub"], "admin@example.com");

        let ok = get(&c, &summary_url(&s, 5, 0), &token).await;
        assert_eq!(ok.status(), 200);
        // lower-case scheme works too
        let lower = c
            .get(summary_url(&s, 5, 0))
            .header("authorization", format!("bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(lower.status(), 200);

        let bad = c
            .post(format!("{}/oauth/token", s.base_url()))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "demo-client"),
                ("username", "admin@example.com"),
                ("password", "nope"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
        let body: Value = bad.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant");

        let grant = c
            .post(format!("{}/oauth/token", s.base_url()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "demo-client"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(grant.status(), 400);
        let body: Value = grant.json().await.unwrap();
        assert_eq!(body["error"], "unsupported_grant_type");

        // expire_tokens invalidates issued tokens but not the static one.
        s.control.expire_tokens();
        assert_eq!(get(&c, &summary_url(&s, 5, 0), &token).await.status(), 401);
        assert_eq!(
            get(&c, &summary_url(&s, 5, 0), "demo-static-token")
                .await
                .status(),
            200
        );

        s.control.set_fault(Fault::TokenFailure);
        let resp = login(&c, &s).await;
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(s.control.token_requests(), 4);
    }

    #[tokio::test]
    async fn token_lifetime_expires() {
        let options = CyberPilotOptions {
            token_lifetime_secs: 0,
            ..Default::default()
        };
        let (s, _) = server(3, options).await;
        let c = reqwest::Client::new();
        let body: Value = login(&c, &s).await.json().await.unwrap();
        let token = body["access_token"].as_str().unwrap();
        assert_eq!(get(&c, &summary_url(&s, 5, 0), token).await.status(), 401);
    }

    #[tokio::test]
    async fn bearer_and_account_checks() {
        let (s, _) = server(5, CyberPilotOptions::default()).await;
        let c = reqwest::Client::new();
        let none = c.get(summary_url(&s, 5, 0)).send().await.unwrap();
        assert_eq!(none.status(), 401);
        let body: Value = none.json().await.unwrap();
        assert_eq!(body, json!({"message": "Unauthorized"}));
        assert_eq!(get(&c, &summary_url(&s, 5, 0), "wrong").await.status(), 401);
        let other = format!(
            "{}/accounts/00000000-0000-0000-0000-000000000000/reports/users-summary",
            s.base_url()
        );
        assert_eq!(get(&c, &other, "demo-static-token").await.status(), 404);
        let bad_take = format!(
            "{}/accounts/{ACCOUNT}/reports/users-summary?take=abc",
            s.base_url()
        );
        assert_eq!(get(&c, &bad_take, "demo-static-token").await.status(), 400);
        let bad_skip = format!(
            "{}/accounts/{ACCOUNT}/reports/users-summary?skip=-1",
            s.base_url()
        );
        assert_eq!(get(&c, &bad_skip, "demo-static-token").await.status(), 400);
        let unknown = format!("{}/accounts/{ACCOUNT}/reports/other", s.base_url());
        assert_eq!(get(&c, &unknown, "demo-static-token").await.status(), 404);
        assert_eq!(s.control.requests("users-summary"), 5);
    }

    #[tokio::test]
    async fn paging_take_cap_and_rows() {
        let (s, pop) = server(250, CyberPilotOptions::default()).await;
        let c = reqwest::Client::new();
        // default take 20
        let base = format!("{}/accounts/{ACCOUNT}/reports/users-summary", s.base_url());
        let body: Value = get(&c, &base, "demo-static-token")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["count"], 250);
        assert_eq!(body["fetched"], 20);
        assert_eq!(body["result"][0], users_summary_row(&pop.users[0]));
        assert!(body["result"][0]["riskLevel"].is_string());

        let mut skip = 0;
        let mut seen = Vec::new();
        loop {
            let body: Value = get(&c, &summary_url(&s, 1000, skip), "demo-static-token")
                .await
                .json()
                .await
                .unwrap();
            let fetched = body["fetched"].as_u64().unwrap() as usize;
            assert!(fetched <= 100, "take capped at max_take");
            assert_eq!(body["result"].as_array().unwrap().len(), fetched);
            if fetched == 0 {
                break;
            }
            for r in body["result"].as_array().unwrap() {
                seen.push(r["user"]["id"].as_str().unwrap().to_string());
            }
            skip += fetched;
            if skip >= body["count"].as_u64().unwrap() as usize {
                break;
            }
        }
        assert_eq!(seen.len(), 250);
        let expected: Vec<String> = pop.users.iter().map(|u| u.id.clone()).collect();
        assert_eq!(seen, expected);
        // Some rows without a branch; averageScore 0 (an int, as documented) when nothing is
        // enrolled.
        let rows: Vec<Value> = pop.users.iter().map(users_summary_row).collect();
        assert!(rows.iter().any(|r| r["user"].get("branch").is_none()));
        assert!(rows
            .iter()
            .any(|r| r["averageScore"] == 0 && r["enrolledCourses"] == 0));
        assert!(rows.iter().all(|r| !r["averageScore"].is_null()));
        assert!(rows.iter().any(|r| r["lastAction"].is_string()));
        assert!(rows.iter().any(|r| r["lastAction"].is_i64()));
    }

    #[tokio::test]
    async fn deterministic_answers() {
        let (a, _) = server(60, CyberPilotOptions::default()).await;
        let (b, _) = server(60, CyberPilotOptions::default()).await;
        let c = reqwest::Client::new();
        let x = get(&c, &summary_url(&a, 60, 0), "demo-static-token")
            .await
            .bytes()
            .await
            .unwrap();
        let y = get(&c, &summary_url(&b, 60, 0), "demo-static-token")
            .await
            .bytes()
            .await
            .unwrap();
        assert_eq!(x, y);
    }

    #[tokio::test]
    async fn faults_have_visible_effects() {
        let (s, _) = server(30, CyberPilotOptions::default()).await;
        let c = reqwest::Client::new();
        let t = "demo-static-token";
        let url = summary_url(&s, 10, 0);

        s.control.set_fault(Fault::Down);
        let r = get(&c, &url, t).await;
        assert_eq!(r.status(), 503);
        assert!(r.bytes().await.unwrap().is_empty());

        s.control.set_fault(Fault::Status {
            code: 502,
            times: 2,
        });
        assert_eq!(get(&c, &url, t).await.status(), 502);
        assert_eq!(get(&c, &url, t).await.status(), 502);
        assert_eq!(get(&c, &url, t).await.status(), 200);

        s.control.set_fault(Fault::RateLimit {
            times: 1,
            reset_ms: 1500,
        });
        let r = get(&c, &url, t).await;
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "2");
        assert_eq!(get(&c, &url, t).await.status(), 200);

        s.control.set_fault(Fault::Truncated);
        let r = get(&c, &url, t).await;
        assert_eq!(r.status(), 200);
        let bytes = r.bytes().await.unwrap();
        assert!(serde_json::from_slice::<Value>(&bytes).is_err());
        assert!(bytes.starts_with(b"{"));

        s.control.set_fault(Fault::Malformed);
        let r = get(&c, &url, t).await;
        assert_eq!(r.text().await.unwrap(), "<html>oops</html>");

        s.control.set_fault(Fault::WrongTypes);
        let body: Value = get(&c, &summary_url(&s, 30, 0), t)
            .await
            .json()
            .await
            .unwrap();
        let rows = body["result"].as_array().unwrap();
        let bad: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i]["overdueCourses"].is_object())
            .collect();
        assert_eq!(bad, vec![9, 19, 29]);

        s.control.set_fault(Fault::HugeBody(1_000_000));
        let r = get(&c, &url, t).await;
        let bytes = r.bytes().await.unwrap();
        assert!(bytes.len() >= 1_000_000);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["fetched"], 10);

        s.control.set_fault(Fault::EndlessPaging);
        let body: Value = get(&c, &summary_url(&s, 10, 500), t)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["fetched"], 10);
        assert!(body["count"].as_u64().unwrap() > 510);

        s.control.set_fault(Fault::FailPage {
            endpoint: "users-summary".into(),
            page: 2,
        });
        assert_eq!(get(&c, &summary_url(&s, 10, 0), t).await.status(), 200);
        assert_eq!(get(&c, &summary_url(&s, 10, 10), t).await.status(), 500);
        assert_eq!(get(&c, &summary_url(&s, 10, 10), t).await.status(), 500);
        assert_eq!(get(&c, &summary_url(&s, 10, 20), t).await.status(), 200);

        s.control.set_fault(Fault::ErrorIn200);
        let r = get(&c, &url, t).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].is_string());
        assert!(body.get("result").is_none());

        s.control.set_fault(Fault::Slow(Duration::from_millis(200)));
        let started = std::time::Instant::now();
        assert_eq!(get(&c, &url, t).await.status(), 200);
        assert!(started.elapsed() >= Duration::from_millis(200));
        s.control.clear_faults();
    }

    #[tokio::test]
    async fn refuse_and_concurrency() {
        let (s, _) = server(30, CyberPilotOptions::default()).await;
        let c = reqwest::Client::new();
        let url = summary_url(&s, 10, 0);
        assert_eq!(get(&c, &url, "demo-static-token").await.status(), 200);
        s.control.set_refuse(true);
        tokio::time::sleep(Duration::from_millis(60)).await;
        // The kept-alive connection was closed and new ones are refused.
        let err = c
            .get(&url)
            .bearer_auth("demo-static-token")
            .send()
            .await
            .unwrap_err();
        assert!(err.is_connect(), "{err:?}");
        let err = reqwest::Client::new().get(&url).send().await.unwrap_err();
        assert!(err.is_connect(), "{err:?}");
        s.control.set_refuse(false);
        // No grace period needed after turning it off.
        assert_eq!(get(&c, &url, "demo-static-token").await.status(), 200);
        s.control.set_refuse(true);
        s.control.set_refuse(false);
        assert_eq!(get(&c, &url, "demo-static-token").await.status(), 200);

        s.control.reset_counters();
        s.control.set_latency(Duration::from_millis(100));
        let futs = (0..4).map(|_| get(&c, &url, "demo-static-token"));
        for r in futures::future::join_all(futs).await {
            assert_eq!(r.status(), 200);
        }
        assert_eq!(s.control.max_in_flight(), 4);
        assert_eq!(s.control.total_requests(), 4);
    }
}
