//! Simulated Mimecast Awareness Training API: OAuth2 client credentials (API 2.0) or HMAC-SHA1
//! signed requests (API 1.0), the `{"meta","data","fail"}` envelope with opaque page tokens,
//! `X-RateLimit-*` headers and a sliding-window quota.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::header::{HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::{Form, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::control::{is_garbage_row, Control};
use super::population::{Population, SimUser};
use super::{
    data_response, delay, json_response, malformed_response, respond, SimServer, Tenant, TokenStore,
};

/// The exporter's `platform` label and `[[table]]` for this vendor.
pub const PLATFORM: &str = "mimecast";

pub use super::hmac::{mc_date_now, sign, verify};

/// Population index of the user the API credentials belong to (user/get-training-details).
pub const API_USER: usize = 0;

/// Prefix of every data endpoint.
pub const API_PREFIX: &str = "/api/awareness-training/";

/// How HMAC `x-mc-date` may differ from the server clock, and how long request ids are remembered.
const HMAC_WINDOW_SECS: i64 = 15 * 60;

/// Default page size when the request has none.
pub const DEFAULT_PAGE_SIZE: usize = 25;

/// The tenant's authentication mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimAuth {
    /// API 2.0: `POST /oauth/token` client credentials, then `Authorization: Bearer`.
    OAuth2 {
        client_id: String,
        client_secret: String,
    },
    /// API 1.0: signed requests (`Authorization: MC {access_key}:{signature}`).
    Hmac {
        app_id: String,
        app_key: String,
        access_key: String,
        secret_key_b64: String,
    },
}

/// A `[[mimecast]]` block of the exporter's config polling `server` as `account` with `auth`;
/// more keys of the account may follow it.
pub fn account_block(server: &SimServer, account: &str, auth: &SimAuth) -> String {
    format!(
        "[[mimecast]]\naccount = {}\nbase_url = {}\n{}",
        super::toml_str(account),
        super::toml_str(&server.base_url()),
        auth.config_keys()
    )
}

impl SimAuth {
    /// The config keys that authenticate against a tenant using these credentials.
    pub fn config_keys(&self) -> String {
        use super::toml_str as q;
        match self {
            SimAuth::OAuth2 {
                client_id,
                client_secret,
            } => format!(
                "auth = \"oauth2\"\nclient_id = {}\nclient_secret = {}\n",
                q(client_id),
                q(client_secret)
            ),
            SimAuth::Hmac {
                app_id,
                app_key,
                access_key,
                secret_key_b64,
            } => format!(
                "auth = \"hmac\"\napp_id = {}\napp_key = {}\naccess_key = {}\nsecret_key = {}\n",
                q(app_id),
                q(app_key),
                q(access_key),
                q(secret_key_b64)
            ),
        }
    }

    pub fn demo_oauth2() -> Self {
        SimAuth::OAuth2 {
            client_id: "demo-mimecast-client".to_string(),
            client_secret: "demo-mimecast-secret".to_string(),
        }
    }

    pub fn demo_hmac() -> Self {
        SimAuth::Hmac {
            app_id: "5f9c2a7e-1d3b-4c8a-9e6f-0b1a2c3d4e5f".to_string(),
            app_key: "8d2e4f6a-3b5c-4d7e-9f1a-2b3c4d5e6f70".to_string(),
            access_key: "mYtOL3XZCOwG96BOiFTZRmLDWlvLJzGcDx8L0jk0eXhDLzz5IvMlzR3Uu3SLRWOOqMpLUkCrjVbXzwQ5yHdnZg".to_string(),
            secret_key_b64: "rIRMu7yrCHabPxnQt5krXT8PZ6cBeJma1M1r7L/TfhyEvY7BdG9N2xzAD6jPuTDU4akeO1wflKZqBasIeX+4vg==".to_string(),
        }
    }

    /// Fresh HMAC headers (`x-mc-date`, `x-mc-req-id`, `x-mc-app-id`, `Authorization`) for a
    /// request to `path`; empty for OAuth2 or an undecodable secret.
    pub fn hmac_headers(&self, path: &str) -> Vec<(&'static str, String)> {
        let SimAuth::Hmac {
            app_id,
            app_key,
            access_key,
            secret_key_b64,
        } = self
        else {
            return Vec::new();
        };
        let date = mc_date_now();
        let req_id = uuid::Uuid::new_v4().to_string();
        let Some(sig) = sign(secret_key_b64, &date, &req_id, path, app_key) else {
            return Vec::new();
        };
        vec![
            ("x-mc-date", date),
            ("x-mc-req-id", req_id),
            ("x-mc-app-id", app_id.clone()),
            ("authorization", format!("MC {access_key}:{sig}")),
        ]
    }
}

/// Configuration of a simulated Mimecast tenant.
#[derive(Debug, Clone)]
pub struct MimecastOptions {
    pub auth: SimAuth,
    /// Page sizes above this are capped.
    pub max_page_size: usize,
    /// Calls allowed per `rate_window_ms` (sliding window: each call is added back
    /// `rate_window_ms` after it was made).
    pub rate_limit: u32,
    pub rate_window_ms: u64,
    pub token_lifetime_secs: u64,
}

impl Default for MimecastOptions {
    fn default() -> Self {
        Self {
            auth: SimAuth::demo_oauth2(),
            max_page_size: 500,
            rate_limit: 800,
            rate_window_ms: 3700,
            token_lifetime_secs: 1800,
        }
    }
}

struct RateInfo {
    allowed: bool,
    limit: u32,
    remaining: u32,
    reset_ms: u64,
}

struct Limiter {
    calls: Mutex<VecDeque<Instant>>,
    limit: u32,
    window: Duration,
}

impl Limiter {
    fn check(&self, consume: bool) -> RateInfo {
        let now = Instant::now();
        let mut calls = lock(&self.calls);
        while calls
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            calls.pop_front();
        }
        let used = u32::try_from(calls.len()).unwrap_or(u32::MAX);
        let allowed = used < self.limit;
        if consume && allowed {
            calls.push_back(now);
        }
        let used = u32::try_from(calls.len()).unwrap_or(u32::MAX);
        let reset_ms = calls
            .front()
            .map(|t| {
                let left = self.window.saturating_sub(now.duration_since(*t));
                u64::try_from(left.as_micros().div_ceil(1000)).unwrap_or(u64::MAX)
            })
            .unwrap_or(0);
        RateInfo {
            allowed,
            limit: self.limit,
            remaining: self.limit.saturating_sub(used),
            reset_ms,
        }
    }
}

#[derive(Default)]
struct SeenRequestIds {
    ids: HashSet<String>,
    order: VecDeque<(Instant, String)>,
}

/// The state of a simulated Mimecast tenant.
pub struct MimecastSim {
    population: Arc<Population>,
    options: MimecastOptions,
    control: Arc<Control>,
    tokens: TokenStore,
    limiter: Limiter,
    seen_req_ids: Mutex<SeenRequestIds>,
    /// Per training campaign: `(user index, result index)` of the users it was sent to.
    members: Vec<Vec<(usize, usize)>>,
    /// Rows serialised once per endpoint (performance, watchlist, safe score, training) and
    /// per campaign member, on first use: the simulator should spend as little of the CPU it
    /// shares with the exporter as it can (benchmarks).
    rows_json: [std::sync::OnceLock<Vec<String>>; 4],
    items_json: Vec<std::sync::OnceLock<Vec<String>>>,
}

/// A response body: a JSON value, or JSON text already assembled from cached rows.
enum Payload {
    Value(Value),
    Raw(String),
}

impl MimecastSim {
    /// Start the simulated tenant on `127.0.0.1:<random port>`.
    pub async fn start(
        population: Arc<Population>,
        options: MimecastOptions,
    ) -> std::io::Result<SimServer> {
        start(population, options).await
    }
}

/// Start a simulated Mimecast tenant on `127.0.0.1:<random port>`.
pub async fn start(
    population: Arc<Population>,
    options: MimecastOptions,
) -> std::io::Result<SimServer> {
    let control = Arc::new(Control::new());
    let members: Vec<Vec<(usize, usize)>> = (0..population.campaigns.len())
        .map(|c| population.campaign_members(c))
        .collect();
    let items_json = members.iter().map(|_| std::sync::OnceLock::new()).collect();
    let limiter = Limiter {
        calls: Mutex::new(VecDeque::new()),
        limit: options.rate_limit,
        window: Duration::from_millis(options.rate_window_ms),
    };
    let sim = Arc::new(MimecastSim {
        population,
        options,
        control: Arc::clone(&control),
        tokens: TokenStore::default(),
        limiter,
        seen_req_ids: Mutex::new(SeenRequestIds::default()),
        members,
        rows_json: Default::default(),
        items_json,
    });
    let router = Router::new().fallback(handle).with_state(sim);
    super::spawn(router, control).await
}

/// A tenant polled with the credentials of `options.auth`.
pub async fn tenant(
    population: Arc<Population>,
    options: MimecastOptions,
    account: &str,
) -> std::io::Result<Tenant> {
    let auth = options.auth.clone();
    let server = start(Arc::clone(&population), options).await?;
    let head = account_block(&server, account, &auth);
    Ok(Tenant::new(
        PLATFORM,
        account,
        server,
        population,
        head,
        String::new(),
    ))
}

/// The demo's Mimecast API 2.0 tenant (OAuth2), 800 users.
pub async fn demo_tenant_oauth2(account: &str) -> std::io::Result<Tenant> {
    demo_tenant(account, SimAuth::demo_oauth2(), 7, 800).await
}

/// The demo's Mimecast API 1.0 tenant (HMAC), 300 users. It sends some rows of the wrong types
/// (skipped and counted), so the decode counters show in the demo.
pub async fn demo_tenant_hmac(account: &str) -> std::io::Result<Tenant> {
    let tenant = demo_tenant(account, SimAuth::demo_hmac(), 1337, 300).await?;
    tenant.control().push_fault(super::Fault::WrongTypes);
    Ok(tenant)
}

async fn demo_tenant(
    account: &str,
    auth: SimAuth,
    seed: u64,
    users: usize,
) -> std::io::Result<Tenant> {
    let options = MimecastOptions {
        auth,
        ..MimecastOptions::default()
    };
    tenant(
        Arc::new(Population::generate(seed, users)),
        options,
        account,
    )
    .await
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `{"meta":{"status":N},"data":[],"fail":[{"errors":[{code,message,retryable}]}]}`
pub fn fail_envelope(status: u16, code: &str, message: &str, retryable: bool) -> Value {
    json!({
        "meta": {"status": status},
        "data": [],
        "fail": [{"errors": [{"code": code, "message": message, "retryable": retryable}]}],
    })
}

fn fail<R: From<Response>>(
    http: StatusCode,
    meta_status: u16,
    code: &str,
    message: &str,
    retryable: bool,
) -> R {
    R::from(json_response(
        http,
        &fail_envelope(meta_status, code, message, retryable),
    ))
}

/// An early answer (boxed: a `Response` is large).
type Rejection = Box<Response>;

fn unauthorized(code: &str, message: &str) -> Rejection {
    fail(StatusCode::UNAUTHORIZED, 401, code, message, false)
}

/// A validation error, delivered the Mimecast way: HTTP 200 with `fail[]`.
fn validation(code: &str, message: &str) -> Rejection {
    fail(StatusCode::OK, 400, code, message, false)
}

fn with_rate_headers(mut resp: Response, info: &RateInfo) -> Response {
    let h = resp.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(info.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(info.remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(info.reset_ms));
    resp
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Performance,
    Watchlist,
    SafeScore,
    SafeScoreSummary,
    Training,
    Campaigns,
    CampaignUserData,
    Phishing,
    PhishingUserData,
}

impl Endpoint {
    fn from_path(path: &str) -> Option<Endpoint> {
        Some(match path.strip_prefix(API_PREFIX)? {
            "company/get-performance-details" => Endpoint::Performance,
            "company/get-watchlist-details" => Endpoint::Watchlist,
            "company/get-safe-score-details" => Endpoint::SafeScore,
            "company/get-safe-score-summary" => Endpoint::SafeScoreSummary,
            "user/get-training-details" => Endpoint::Training,
            "campaign/get-campaigns" => Endpoint::Campaigns,
            "campaign/get-user-data" => Endpoint::CampaignUserData,
            "phishing/campaign/get-campaign" => Endpoint::Phishing,
            "phishing/campaign/get-user-data" => Endpoint::PhishingUserData,
            _ => return None,
        })
    }

    fn tag(self) -> &'static str {
        match self {
            Endpoint::Performance => "perf",
            Endpoint::Watchlist => "watch",
            Endpoint::SafeScore => "safe",
            Endpoint::SafeScoreSummary => "safesum",
            Endpoint::Training => "train",
            Endpoint::Campaigns => "camps",
            Endpoint::CampaignUserData => "cud",
            Endpoint::Phishing => "phish",
            Endpoint::PhishingUserData => "pud",
        }
    }
}

async fn handle(State(sim): State<Arc<MimecastSim>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let is_token = path == "/oauth/token";
    let is_api = path.starts_with("/api/");
    let control = Arc::clone(&sim.control);
    let _in_flight = control.begin(&path, is_token);
    delay(&control, is_api).await;
    let info = sim.limiter.check(is_api);
    if control.is_down() {
        return with_rate_headers(
            respond(StatusCode::SERVICE_UNAVAILABLE, "", Vec::new()),
            &info,
        );
    }
    if is_api && !info.allowed {
        let resp = fail(
            StatusCode::TOO_MANY_REQUESTS,
            429,
            "err_xdk_rate_limit_exceeded",
            "Rate limit exceeded",
            true,
        );
        return with_rate_headers(resp, &info);
    }
    let resp = if is_token {
        token(&sim, req).await
    } else if is_api {
        match api(&sim, &path, req).await {
            Ok(resp) => resp,
            Err(resp) => *resp,
        }
    } else {
        fail(
            StatusCode::NOT_FOUND,
            404,
            "err_not_found",
            "Not Found",
            false,
        )
    };
    if resp.status() == StatusCode::TOO_MANY_REQUESTS {
        // Only Fault::RateLimit gets here, and it already set its own headers.
        return resp;
    }
    with_rate_headers(resp, &info)
}

async fn token(sim: &MimecastSim, req: Request) -> Response {
    let invalid_client =
        || json_response(StatusCode::BAD_REQUEST, &json!({"error": "invalid_client"}));
    if req.method() != Method::POST {
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": "invalid_request"}),
        );
    }
    if sim.control.token_failure() {
        return invalid_client();
    }
    let form = match Form::<HashMap<String, String>>::from_request(req, &()).await {
        Ok(Form(form)) => form,
        Err(_) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": "invalid_request"}),
            )
        }
    };
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let SimAuth::OAuth2 {
        client_id,
        client_secret,
    } = &sim.options.auth
    else {
        return invalid_client();
    };
    if get("grant_type") != "client_credentials" {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "unsupported_grant_type"}),
        );
    }
    if get("client_id") != client_id || get("client_secret") != client_secret {
        return invalid_client();
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    sim.tokens.insert(
        token.clone(),
        Duration::from_secs(sim.options.token_lifetime_secs),
        sim.control.token_generation(),
    );
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": sim.options.token_lifetime_secs,
        }),
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn authenticate(sim: &MimecastSim, headers: &HeaderMap, path: &str) -> Result<(), Rejection> {
    match &sim.options.auth {
        SimAuth::OAuth2 { .. } => match super::bearer(headers) {
            Some(t) if sim.tokens.valid(t, sim.control.token_generation()) => Ok(()),
            _ => Err(unauthorized("err_xdk_client_unauthorized", "Unauthorized")),
        },
        SimAuth::Hmac {
            app_id,
            app_key,
            access_key,
            secret_key_b64,
        } => {
            let (Some(auth), Some(date), Some(req_id)) = (
                header(headers, "authorization"),
                header(headers, "x-mc-date"),
                header(headers, "x-mc-req-id"),
            ) else {
                return Err(unauthorized(
                    "err_xdk_client_unauthorized",
                    "Missing Authorization, x-mc-date or x-mc-req-id header",
                ));
            };
            if header(headers, "x-mc-app-id") != Some(app_id.as_str()) {
                // As recorded from Mimecast: HTTP 200 and meta.status 200.
                let got = header(headers, "x-mc-app-id").unwrap_or("");
                return Err(fail(
                    StatusCode::OK,
                    200,
                    "err_developer_key",
                    &format!("App ID is invalid: {got}"),
                    false,
                ));
            }
            let Some(at) = super::hmac::parse_mc_date(date) else {
                return Err(unauthorized(
                    "err_xdk_invalid_date",
                    "x-mc-date is not a valid date (expected e.g. Tue, 24 Nov 2015 12:50:11 UTC)",
                ));
            };
            let now = chrono::Utc::now().timestamp();
            if (now - at).abs() > HMAC_WINDOW_SECS {
                return Err(unauthorized(
                    "err_xdk_date_out_of_range",
                    "x-mc-date is more than 15 minutes from the server time",
                ));
            }
            let invalid = || unauthorized("err_xdk_invalid_signature", "0004 Invalid Signature");
            if sim.control.token_failure() {
                return Err(invalid());
            }
            let Some((key, sig)) = auth
                .strip_prefix("MC ")
                .and_then(|rest| rest.trim().split_once(':'))
            else {
                return Err(invalid());
            };
            if key != access_key || !verify(secret_key_b64, date, req_id, path, app_key, sig) {
                return Err(invalid());
            }
            let mut seen = lock(&sim.seen_req_ids);
            let window = Duration::from_secs(HMAC_WINDOW_SECS.unsigned_abs());
            while seen
                .order
                .front()
                .is_some_and(|(t, _)| t.elapsed() > window)
            {
                if let Some((_, id)) = seen.order.pop_front() {
                    seen.ids.remove(&id);
                }
            }
            if !seen.ids.insert(req_id.to_string()) {
                return Err(unauthorized(
                    "err_xdk_duplicate_request_id",
                    "x-mc-req-id was already used",
                ));
            }
            seen.order.push_back((Instant::now(), req_id.to_string()));
            Ok(())
        }
    }
}

/// The parsed request envelope.
struct McRequest {
    page_size: usize,
    page_token: Option<String>,
    data0: Map<String, Value>,
}

fn parse_request(body: &Bytes, max_page_size: usize) -> Result<McRequest, Rejection> {
    let invalid_json = || -> Rejection {
        fail(
            StatusCode::BAD_REQUEST,
            400,
            "err_validation_invalid_json",
            "The request body is not valid JSON",
            false,
        )
    };
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|_| invalid_json())?
    };
    let Some(obj) = value.as_object() else {
        return Err(invalid_json());
    };
    let pagination = obj.get("meta").and_then(|m| m.get("pagination"));
    let page_size = match pagination.and_then(|p| p.get("pageSize")) {
        None | Some(Value::Null) => DEFAULT_PAGE_SIZE,
        Some(v) => match v.as_u64().filter(|n| *n >= 1) {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => {
                return Err(validation(
                    "err_validation_page_size",
                    "pageSize must be a positive integer",
                ))
            }
        },
    };
    let page_token = pagination
        .and_then(|p| p.get("pageToken"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let data0 = obj
        .get("data")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    Ok(McRequest {
        page_size: page_size.min(max_page_size.max(1)),
        page_token,
        data0,
    })
}

fn encode_page_token(tag: &str, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("mcsim|{tag}|{offset}"))
}

fn decode_page_token(token: &str, tag: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let rest = text.strip_prefix("mcsim|")?;
    let (t, offset) = rest.rsplit_once('|')?;
    (t == tag).then(|| offset.parse().ok()).flatten()
}

/// One page of a listing: absolute positions (wrapping past the end under EndlessPaging).
struct Window {
    positions: Vec<usize>,
    pagination: Value,
}

impl MimecastSim {
    fn window(
        &self,
        path: &str,
        req: &McRequest,
        tag: &str,
        total: usize,
    ) -> Result<Window, Rejection> {
        let offset = match &req.page_token {
            None => 0,
            Some(t) => decode_page_token(t, tag).ok_or_else(|| {
                validation(
                    "err_validation_invalid_page_token",
                    "The pageToken is invalid or belongs to another request",
                )
            })?,
        };
        let size = req.page_size;
        let page = u32::try_from(offset / size + 1).unwrap_or(u32::MAX);
        if self.control.fails_page(path, page) {
            return Err(fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                500,
                "err_internal",
                "Internal Server Error",
                true,
            ));
        }
        let endless = self.control.endless_paging() && total > 0;
        let end = if endless {
            offset.saturating_add(size)
        } else {
            offset.saturating_add(size).min(total)
        };
        let positions: Vec<usize> = (offset.min(end)..end).collect();
        let mut pagination = Map::new();
        pagination.insert("pageSize".into(), json!(size));
        pagination.insert("totalCount".into(), json!(total));
        if endless || end < total {
            pagination.insert("next".into(), json!(encode_page_token(tag, end)));
        }
        if offset > 0 {
            pagination.insert(
                "previous".into(),
                json!(encode_page_token(tag, offset.saturating_sub(size))),
            );
        }
        Ok(Window {
            positions,
            pagination: Value::Object(pagination),
        })
    }
}

fn ok_envelope(data: Value, pagination: Option<Value>) -> Value {
    let mut meta = Map::new();
    meta.insert("status".into(), json!(200));
    if let Some(p) = pagination {
        meta.insert("pagination".into(), p);
    }
    json!({"meta": Value::Object(meta), "data": data, "fail": []})
}

async fn api(sim: &MimecastSim, path: &str, req: Request) -> Result<Response, Rejection> {
    let control = &sim.control;
    if let Some(code) = control.take_status() {
        return Err(fail(
            super::status_of(code),
            code,
            "err_server_error",
            "Simulated failure",
            true,
        ));
    }
    if let Some(reset_ms) = control.take_rate_limit() {
        let resp = fail(
            StatusCode::TOO_MANY_REQUESTS,
            429,
            "err_xdk_rate_limit_exceeded",
            "Rate limit exceeded",
            true,
        );
        let info = RateInfo {
            allowed: false,
            limit: sim.options.rate_limit,
            remaining: 0,
            reset_ms,
        };
        return Err(Box::new(with_rate_headers(resp, &info)));
    }
    let Some(endpoint) = Endpoint::from_path(path) else {
        return Err(fail(
            StatusCode::NOT_FOUND,
            404,
            "err_not_found",
            "Not Found",
            false,
        ));
    };
    if req.method() != Method::POST {
        return Err(fail(
            StatusCode::METHOD_NOT_ALLOWED,
            405,
            "err_method_not_allowed",
            "Use POST",
            false,
        ));
    }
    authenticate(sim, req.headers(), path)?;
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map_err(|_| -> Rejection {
            fail(
                StatusCode::PAYLOAD_TOO_LARGE,
                413,
                "err_request_too_large",
                "Request body too large",
                false,
            )
        })?;
    let request = parse_request(&body, sim.options.max_page_size)?;
    if control.not_licensed(path) {
        return Err(fail(
            StatusCode::OK,
            403,
            "err_feature_not_enabled",
            "This feature is not enabled for your account",
            false,
        ));
    }
    if control.error_in_200() {
        return Err(fail(
            StatusCode::OK,
            500,
            "err_internal",
            "An internal error occurred while processing the request",
            false,
        ));
    }
    let payload = match endpoint {
        Endpoint::Performance | Endpoint::Watchlist | Endpoint::SafeScore => {
            per_user(sim, path, endpoint, &request)?
        }
        // The request selects no user: the answer is the calling (API) user's own record.
        Endpoint::Training => Payload::Value(ok_envelope(
            json!([training_row(&sim.population, API_USER)]),
            None,
        )),
        Endpoint::SafeScoreSummary => Payload::Value(ok_envelope(
            json!([safe_score_summary(&sim.population)]),
            None,
        )),
        Endpoint::Campaigns => Payload::Value(ok_envelope(
            json!([{"campaigns": campaigns(&sim.population)}]),
            None,
        )),
        Endpoint::CampaignUserData => campaign_user_data(sim, path, &request)?,
        Endpoint::Phishing => Payload::Value(phishing(&sim.population, &request)?),
        Endpoint::PhishingUserData => phishing_user_data(sim, path, &request)?,
    };
    if control.malformed() {
        return Ok(malformed_response());
    }
    match payload {
        Payload::Value(value) => Ok(data_response(control, value)),
        Payload::Raw(text) if control.huge_body().is_some() => {
            let value = serde_json::from_str(&text).unwrap_or(Value::Null);
            Ok(data_response(control, value))
        }
        Payload::Raw(text) => {
            let mut bytes = text.into_bytes();
            if control.truncated() {
                bytes.truncate(bytes.len() / 2);
            }
            Ok(super::respond(StatusCode::OK, "application/json", bytes))
        }
    }
}

/// `{"meta":{"status":200,"pagination":...},"data":[<rows>],"fail":[]}` from cached rows;
/// with `nested`, the rows go into `data[0].items`.
fn raw_envelope(rows: &[String], positions: &[usize], pagination: &Value, nested: bool) -> String {
    let total = rows.len().max(1);
    let mut out = String::with_capacity(positions.len() * 200 + 256);
    out.push_str("{\"meta\":{\"status\":200,\"pagination\":");
    out.push_str(&pagination.to_string());
    out.push_str(if nested {
        "},\"data\":[{\"items\":["
    } else {
        "},\"data\":["
    });
    for (i, &p) in positions.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if let Some(row) = rows.get(p % total) {
            out.push_str(row);
        }
    }
    out.push_str(if nested {
        "]}],\"fail\":[]}"
    } else {
        "],\"fail\":[]}"
    });
    out
}

fn per_user(
    sim: &MimecastSim,
    path: &str,
    endpoint: Endpoint,
    req: &McRequest,
) -> Result<Payload, Rejection> {
    let users = &sim.population.users;
    let total = users.len();
    let w = sim.window(path, req, endpoint.tag(), total)?;
    let garbage = sim.control.wrong_types();
    if !garbage && total > 0 {
        let slot = match endpoint {
            Endpoint::Performance => 0,
            Endpoint::Watchlist => 1,
            Endpoint::SafeScore => 2,
            _ => 3,
        };
        let rows = sim.rows_json[slot].get_or_init(|| {
            (0..total)
                .map(|i| {
                    let u = &users[i];
                    match endpoint {
                        Endpoint::Performance => performance_row(u, i),
                        Endpoint::Watchlist => watchlist_row(u, i),
                        Endpoint::SafeScore => safe_score_row(u, i),
                        _ => training_row(&sim.population, i),
                    }
                    .to_string()
                })
                .collect()
        });
        return Ok(Payload::Raw(raw_envelope(
            rows,
            &w.positions,
            &w.pagination,
            false,
        )));
    }
    let rows: Vec<Value> = w
        .positions
        .iter()
        .map(|&p| {
            let i = p % total.max(1);
            let u = &users[i];
            let mut row = match endpoint {
                Endpoint::Performance => performance_row(u, i),
                Endpoint::Watchlist => watchlist_row(u, i),
                Endpoint::SafeScore => safe_score_row(u, i),
                _ => training_row(&sim.population, i),
            };
            if garbage && is_garbage_row(p) {
                garble(endpoint, &mut row);
            }
            row
        })
        .collect();
    Ok(Payload::Value(ok_envelope(
        Value::Array(rows),
        Some(w.pagination),
    )))
}

fn garble(endpoint: Endpoint, row: &mut Value) {
    let Some(obj) = row.as_object_mut() else {
        return;
    };
    match endpoint {
        Endpoint::Performance => {
            obj.insert("numCorrect".into(), json!(true));
            obj.insert("numNotWatched".into(), json!({"x": 1}));
        }
        Endpoint::Watchlist => {
            obj.insert("watchlistCount".into(), json!({"x": 1}));
        }
        Endpoint::SafeScore => {
            obj.insert("risk".into(), json!({"x": 1}));
        }
        Endpoint::Training => {
            obj.insert("training".into(), json!({"x": 1}));
            obj.insert("needEngagement".into(), json!("maybe"));
        }
        Endpoint::CampaignUserData => {
            obj.insert("acknowledgement".into(), json!(3));
            obj.insert("results".into(), json!([true]));
        }
        _ => {}
    }
}

/// Users without a department: `"department": ""` at even population indexes, no key at odd ones.
fn put_department(obj: &mut Map<String, Value>, u: &SimUser, index: usize) {
    match &u.department {
        Some(d) => {
            obj.insert("department".into(), json!(d));
        }
        None if index.is_multiple_of(2) => {
            obj.insert("department".into(), json!(""));
        }
        None => {}
    }
}

/// `company/get-performance-details` row of the user at population index `index`.
pub fn performance_row(u: &SimUser, index: usize) -> Value {
    let mut o = Map::new();
    o.insert("email".into(), json!(u.email));
    o.insert("name".into(), json!(u.name));
    put_department(&mut o, u, index);
    o.insert("numCorrect".into(), json!(u.num_correct));
    o.insert("numIncorrect".into(), json!(u.num_incorrect));
    o.insert("numNotWatched".into(), json!(u.num_not_watched));
    o.insert("userState".into(), json!(u.user_state));
    o.insert("userId".into(), json!(u.id));
    Value::Object(o)
}

/// `company/get-watchlist-details` row.
pub fn watchlist_row(u: &SimUser, index: usize) -> Value {
    let mut o = Map::new();
    o.insert("email".into(), json!(u.email));
    o.insert("name".into(), json!(u.name));
    put_department(&mut o, u, index);
    o.insert("watchlistCount".into(), json!(u.watchlist_count));
    o.insert("userState".into(), json!(u.user_state));
    o.insert("userId".into(), json!(u.id));
    Value::Object(o)
}

/// `company/get-safe-score-details` row (note `emailAddress`).
pub fn safe_score_row(u: &SimUser, index: usize) -> Value {
    let mut o = Map::new();
    o.insert("emailAddress".into(), json!(u.email));
    o.insert("name".into(), json!(u.name));
    put_department(&mut o, u, index);
    o.insert("risk".into(), json!(u.risk.to_string()));
    o.insert("humanError".into(), json!(u.human_error.to_string()));
    o.insert("sentiment".into(), json!(u.sentiment.to_string()));
    o.insert("engagement".into(), json!(u.engagement.to_string()));
    o.insert("knowledge".into(), json!(u.knowledge.to_string()));
    o.insert("userState".into(), json!(u.user_state));
    Value::Object(o)
}

/// `user/get-training-details` row of the user at population index `index`. Odd indexes spell
/// `watchedData` (as the vendor doc does) instead of `watchedDate`; indexes divisible by 3 spell
/// `onWatchList` instead of `onWatchlist`.
pub fn training_row(pop: &Population, index: usize) -> Value {
    let Some(u) = pop.users.get(index) else {
        return Value::Null;
    };
    let watched_key = if index % 2 == 1 {
        "watchedData"
    } else {
        "watchedDate"
    };
    let watchlist_key = if index.is_multiple_of(3) {
        "onWatchList"
    } else {
        "onWatchlist"
    };
    let training: Vec<Value> = u
        .training
        .iter()
        .map(|t| {
            let mut o = Map::new();
            if let Some(m) = pop.modules.get(t.module) {
                o.insert("title".into(), json!(m.title));
                o.insert("titleId".into(), json!(m.id));
            }
            o.insert("assignedTimeStamp".into(), json!(t.assigned));
            o.insert("watched".into(), json!(t.watched));
            if let Some(d) = &t.watched_date {
                o.insert(watched_key.into(), json!(d));
            }
            if let Some(a) = t.my_answer {
                o.insert("myAnswer".into(), json!(a));
            }
            o.insert(watchlist_key.into(), json!(t.on_watchlist));
            Value::Object(o)
        })
        .collect();
    json!({"training": training, "needEngagement": u.need_engagement, "meritBadge": {}})
}

/// `company/get-safe-score-summary` `data[0]`.
pub fn safe_score_summary(pop: &Population) -> Value {
    let count = |g: char| pop.users.iter().filter(|u| u.risk == g).count();
    json!({"scoreCounts": {"a": count('A'), "b": count('B'), "c": count('C'), "d": count('D'), "f": count('F')}})
}

/// `campaign/get-campaigns` `data[0].campaigns`, with the keys of the real recorded answer
/// (tests/fixtures/mimecast/campaign-get-campaigns.json); percentages are whole numbers as there.
pub fn campaigns(pop: &Population) -> Vec<Value> {
    pop.campaigns
        .iter()
        .enumerate()
        .map(|(ci, c)| {
            let mut sent = 0u64;
            let mut completed = 0u64;
            let mut correct = 0u64;
            let mut answered = 0u64;
            let mut correct_per_question = vec![0u64; usize::from(c.questions)];
            for u in &pop.users {
                for r in u.campaign_results.iter().filter(|r| r.campaign == ci) {
                    sent += 1;
                    if r.results.iter().all(|x| x != "SENT") {
                        completed += 1;
                    }
                    for (q, x) in r.results.iter().enumerate() {
                        if x == "CORRECT" {
                            correct += 1;
                            if let Some(n) = correct_per_question.get_mut(q) {
                                *n += 1;
                            }
                        }
                        if x != "SENT" {
                            answered += 1;
                        }
                    }
                }
            }
            let pct = |a: u64, b: u64| (a * 100 + b / 2).checked_div(b).unwrap_or(0);
            let per_question = |f: &dyn Fn(usize) -> u64| -> Value {
                (0..usize::from(c.questions))
                    .map(|q| (format!("forQuestion{}", q + 1), json!(f(q))))
                    .collect::<Map<String, Value>>()
                    .into()
            };
            let title = pop
                .modules
                .get(c.module)
                .map(|m| {
                    json!({
                        "id": m.id,
                        "title": m.title,
                        "titleForCustomModule": false,
                        "correctAnswers": per_question(&|q| (q as u64 + c.module as u64) % 4 + 1),
                    })
                })
                .unwrap_or(Value::Null);
            json!({
                "id": c.id,
                "name": c.name,
                "title": title,
                "launchDate": c.launch_date,
                "createDate": c.launch_date,
                "emailCustomized": false,
                "numSent": sent,
                "numCompleted": completed,
                "allOtherCampaigns": {},
                "locked": false,
                "percentComplete": pct(completed, sent),
                "percentCorrect": pct(correct, answered),
                "numCorrectAnswers": per_question(&|q| correct_per_question.get(q).copied().unwrap_or(0)),
            })
        })
        .collect()
}

/// `campaign/get-user-data` item for a user's result in a campaign.
pub fn campaign_user_item(
    u: &SimUser,
    index: usize,
    result: &super::population::CampaignResult,
) -> Value {
    let mut results = Map::new();
    for (q, r) in result.results.iter().enumerate() {
        results.insert(format!("forQuestion{}", q + 1), json!(r));
    }
    let mut o = Map::new();
    o.insert("name".into(), json!(u.name));
    o.insert("email".into(), json!(u.email));
    put_department(&mut o, u, index);
    o.insert("acknowledgement".into(), json!(result.acknowledgement));
    o.insert("results".into(), Value::Object(results));
    o.insert("userState".into(), json!(u.user_state));
    Value::Object(o)
}

fn campaign_user_data(
    sim: &MimecastSim,
    path: &str,
    req: &McRequest,
) -> Result<Payload, Rejection> {
    let pop = &sim.population;
    let Some(id) = req
        .data0
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return Err(validation("err_validation_null", "id must not be null"));
    };
    let Some(ci) = pop.campaigns.iter().position(|c| c.id == id) else {
        return Err(validation("err_campaign_not_found", "Campaign not found"));
    };
    let status_filter: Option<String> = req
        .data0
        .get("filterBy")
        .and_then(Value::as_array)
        .and_then(|filters| {
            filters.iter().find_map(|f| {
                (f.get("fieldName").and_then(Value::as_str) == Some("status"))
                    .then(|| f.get("value").and_then(Value::as_str))
                    .flatten()
                    .map(str::to_ascii_uppercase)
            })
        });
    let empty = Vec::new();
    let all = sim.members.get(ci).unwrap_or(&empty);
    let members: std::borrow::Cow<'_, [(usize, usize)]> = match &status_filter {
        None => std::borrow::Cow::Borrowed(all.as_slice()),
        Some(s) => all
            .iter()
            .copied()
            .filter(|(ui, ri)| {
                pop.users[*ui].campaign_results[*ri]
                    .results
                    .iter()
                    .any(|r| r == s)
            })
            .collect(),
    };
    let tag = format!("cud-{ci}-{}", status_filter.as_deref().unwrap_or(""));
    let total = members.len();
    let w = sim.window(path, req, &tag, total)?;
    let garbage = sim.control.wrong_types();
    if !garbage && status_filter.is_none() && total > 0 {
        if let Some(cache) = sim.items_json.get(ci) {
            let items = cache.get_or_init(|| {
                members
                    .iter()
                    .map(|&(ui, ri)| {
                        let u = &pop.users[ui];
                        campaign_user_item(u, ui, &u.campaign_results[ri]).to_string()
                    })
                    .collect()
            });
            return Ok(Payload::Raw(raw_envelope(
                items,
                &w.positions,
                &w.pagination,
                true,
            )));
        }
    }
    let items: Vec<Value> = w
        .positions
        .iter()
        .map(|&p| {
            let (ui, ri) = members[p % total.max(1)];
            let u = &pop.users[ui];
            let mut item = campaign_user_item(u, ui, &u.campaign_results[ri]);
            if garbage && is_garbage_row(p) {
                garble(Endpoint::CampaignUserData, &mut item);
            }
            item
        })
        .collect();
    Ok(Payload::Value(ok_envelope(
        json!([{"items": items}]),
        Some(w.pagination),
    )))
}

/// `phishing/campaign/get-campaign` row, with the keys the vendor documents (no `numReported`).
pub fn phishing_row(c: &super::population::PhishingCampaign) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "launchDate": c.launch_date,
        "numSent": c.sent,
        "numOpened": c.opened,
        "numClicked": c.clicked,
        "numSubmitted": c.submitted,
    })
}

/// `phishing/campaign/get-user-data` item: one recipient of one phishing campaign, with the
/// fields Azure Sentinel's Awareness_User_Data table stores (and `timeSubmitted`); times of
/// steps not taken are null.
pub fn phishing_user_item(
    pop: &Population,
    u: &SimUser,
    index: usize,
    result: &super::population::PhishingResult,
) -> Value {
    let campaign = pop.phishing.get(result.campaign);
    let launched = campaign.map(|c| c.launch_date.clone());
    let at = |done: bool| if done { json!(launched) } else { Value::Null };
    let status = if result.submitted {
        "SUBMITTED"
    } else if result.clicked {
        "CLICKED"
    } else if result.opened {
        "OPENED"
    } else {
        "SENT"
    };
    let mut o = Map::new();
    o.insert("name".into(), json!(u.name));
    o.insert("email".into(), json!(u.email));
    o.insert(
        "templateName".into(),
        json!(campaign.map(|c| format!("{} template", c.name))),
    );
    put_department(&mut o, u, index);
    o.insert("status".into(), json!(status));
    o.insert("numCampaignsSent".into(), json!(u.phishing_results.len()));
    o.insert(
        "numCampaignsClicked".into(),
        json!(u.phishing_results.iter().filter(|r| r.clicked).count()),
    );
    o.insert("numTrainingModulesAssigned".into(), json!(u.training.len()));
    o.insert("numCorrectAnswers".into(), json!(u.num_correct));
    o.insert("numIncorrectAnswers".into(), json!(u.num_incorrect));
    o.insert("userState".into(), json!(u.user_state));
    o.insert("timeScheduled".into(), json!(launched));
    o.insert("timeOpened".into(), at(result.opened));
    o.insert("timeClicked".into(), at(result.clicked));
    o.insert("timeSubmitted".into(), at(result.submitted));
    o.insert("timeReported".into(), at(result.reported));
    o.insert(
        "clickedIp".into(),
        if result.clicked {
            json!(format!("192.0.2.{}", index % 250 + 1))
        } else {
            Value::Null
        },
    );
    o.insert(
        "reactionTime".into(),
        if result.clicked {
            json!(60 + (index % 50) * 30)
        } else {
            Value::Null
        },
    );
    Value::Object(o)
}

fn phishing_user_data(
    sim: &MimecastSim,
    path: &str,
    req: &McRequest,
) -> Result<Payload, Rejection> {
    let pop = &sim.population;
    let Some(id) = req
        .data0
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return Err(validation("err_validation_null", "id must not be null"));
    };
    let Some(ci) = pop.phishing.iter().position(|c| c.id == id) else {
        return Err(validation("err_campaign_not_found", "Campaign not found"));
    };
    let members = pop.phishing_members(ci);
    let total = members.len();
    let w = sim.window(path, req, &format!("pud-{ci}"), total)?;
    let items: Vec<Value> = w
        .positions
        .iter()
        .filter_map(|&p| members.get(p % total.max(1)))
        .map(|&(ui, ri)| {
            let u = &pop.users[ui];
            phishing_user_item(pop, u, ui, &u.phishing_results[ri])
        })
        .collect();
    Ok(Payload::Value(ok_envelope(
        json!([{"items": items}]),
        Some(w.pagination),
    )))
}

fn phishing(pop: &Population, req: &McRequest) -> Result<Value, Rejection> {
    let rows: Vec<Value> = match req
        .data0
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        None => pop.phishing.iter().map(phishing_row).collect(),
        Some(id) => match pop.phishing.iter().find(|c| c.id == id) {
            Some(c) => vec![phishing_row(c)],
            None => return Err(validation("err_campaign_not_found", "Campaign not found")),
        },
    };
    Ok(ok_envelope(Value::Array(rows), None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Fault;

    const PERF: &str = "/api/awareness-training/company/get-performance-details";

    async fn server(users: usize, options: MimecastOptions) -> (SimServer, Arc<Population>) {
        let pop = Arc::new(Population::generate(5, users));
        let s = MimecastSim::start(Arc::clone(&pop), options).await.unwrap();
        (s, pop)
    }

    async fn oauth_token(c: &reqwest::Client, s: &SimServer) -> String {
        let resp = c
            .post(format!("{}/oauth/token", s.base_url()))
            .form(&[
                ("client_id", "demo-mimecast-client"),
                ("client_secret", "demo-mimecast-secret"),
                ("grant_type", "client_credentials"),
            ])
            .send()
            .await
            .unwrap();
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
        let bad = c
            .post(format!("{}/oauth/token", s.base_url()))
            .form(&[
                ("client_id", "demo-mimecast-client"),
                ("client_secret", "x"),
                ("grant_type", "client_credentials"),
            ])
            .send()
            .await
            .unwrap();
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
        let r = c
            .post(format!("{}/oauth/token", s.base_url()))
            .form(&[
                ("client_id", "demo-mimecast-client"),
                ("client_secret", "demo-mimecast-secret"),
                ("grant_type", "client_credentials"),
            ])
            .send()
            .await
            .unwrap();
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
        let r = c
            .post(format!("{}/oauth/token", s.base_url()))
            .form(&[
                ("client_id", "a"),
                ("client_secret", "b"),
                ("grant_type", "client_credentials"),
            ])
            .send()
            .await
            .unwrap();
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
}
