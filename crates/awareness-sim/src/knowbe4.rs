//! Simulated KnowBe4 Reporting API (`/v1/...`), answering in the shapes recorded from
//! `eu.api.knowbe4.com` (tests/fixtures/knowbe4): bare JSON arrays, `page` / `per_page`
//! (default 100, at most 500), `[]` past the end, no total and no rate-limit headers. A
//! static Reporting API key as `Authorization: Bearer`; a key of another region's account is
//! refused with 401, as a wrong key is. Training campaigns come 10 a page unless
//! `exclude_percentages=true`. Over 4 requests a second, 50 a minute or the daily quota (2,000
//! plus the seats) the answer is 429; [`Fault::Down`](crate::Fault::Down) is the documented
//! 503 maintenance.
//!
//! The account's lists are built from a [`Population`] by [`KnowBe4Tenant::from_population`]:
//! tests build the same rows from the same population to check the exporter's figures.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::header::{HeaderValue, CONTENT_TYPE};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Router;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::control::{is_garbage_row, Control};
use crate::population::Population;
use crate::{after_latency, respond, SimServer, Tenant};

/// The exporter's platform name and `[[table]]`.
pub const PLATFORM: &str = "knowbe4";

/// Statuses an enrollment can have (the vendor's five).
pub const ENROLLMENT_STATUSES: [&str; 5] = [
    "Not Started",
    "In Progress",
    "Completed",
    "Passed",
    "Past Due",
];

const GROUP_NAMES: &[&str] = &[
    "Customer Service",
    "Executives",
    "IT",
    "Finance",
    "New Hires",
    "Clickers in the past 90 days",
];
const TRAINING: &[(&str, &str)] = &[
    (
        "Annual Security Awareness 2025",
        "2025 Kevin Mitnick Security Awareness Training",
    ),
    ("New Employee Policies", "Acceptable Use Policy"),
    ("Phishing Remedial", "Phishing Foundations"),
    (
        "GDPR Refresher",
        "An Introduction to the General Data Protection Regulation (GDPR)",
    ),
    ("Compliance Policy Agreement", "Data Protection Policy"),
    ("Monthly Training - February", "Phishing Gameshow Trivia"),
    ("Monthly Training - March", "Social Engineering Red Flags"),
    ("Monthly Training - April", "Mobile Device Security"),
    ("Executive Briefing", "CEO Fraud"),
    ("Finance Wire Fraud", "Business Email Compromise"),
    ("Remote Work", "Working Remotely Securely"),
    (
        "Annual Security Awareness 2026",
        "2026 Kevin Mitnick Security Awareness Training",
    ),
];
const TEMPLATES: &[&str] = &[
    "Google Calendar",
    "Your Amazon Order",
    "CNN Breaking News",
    "Microsoft 365: Password Expiry",
    "DocuSign: Please review",
];

/// A simulated KnowBe4 account: every list as the rows the wire carries.
#[derive(Debug, Clone)]
pub struct KnowBe4Tenant {
    pub account: Value,
    /// Active and a few archived users (the server filters on `status`).
    pub users: Vec<Value>,
    pub groups: Vec<Value>,
    /// Enrollments with `campaign_id`; the server drops it unless `include_campaign_id=true`.
    pub enrollments: Vec<Value>,
    /// Training campaigns without `completion_percentage` (added unless excluded).
    pub training_campaigns: Vec<Value>,
    pub security_tests: Vec<Value>,
}

fn timestamp(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S.000Z").to_string())
        .unwrap_or_default()
}

/// Three decimals, as the vendor sends its figures.
fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl KnowBe4Tenant {
    /// The account of `pop`'s people (names, emails, departments), its KnowBe4 figures drawn
    /// from `seed`: the same population and seed give the same rows.
    pub fn from_population(pop: &Population, seed: u64) -> KnowBe4Tenant {
        let users = pop.users.len();
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6b62_3400);
        const T0: i64 = 1_735_689_600; // 2025-01-01
        let group_ids: Vec<u64> = (0..GROUP_NAMES.len())
            .map(|i| 640_840 + 17 * i as u64)
            .collect();
        let mut members = vec![0u64; GROUP_NAMES.len()];
        let mut user_rows = Vec::with_capacity(users);
        let mut active_users = Vec::new();
        for (n, u) in pop.users.iter().enumerate() {
            let id = 81_394_383 + n as u64 * 7;
            let archived = rng.gen_bool(0.04);
            let mut groups: Vec<u64> = Vec::new();
            for (g, gid) in group_ids.iter().enumerate() {
                if rng.gen_bool(if g == 0 { 0.5 } else { 0.2 }) {
                    groups.push(*gid);
                    if !archived {
                        members[g] += 1;
                    }
                }
            }
            // A percent with three decimals; the occasional user never tested sends 0.
            let ppp = round3(rng.gen_range(0.0..45.0f64));
            let risk = round3(rng.gen_range(5.0..80.0f64));
            let joined = T0 - rng.gen_range(30..900) * 86_400;
            user_rows.push(json!({
                "id": id,
                "employee_number": format!("{}", 19_000 + n),
                "first_name": u.first_name,
                "last_name": u.last_name,
                "job_title": null,
                "email": u.email,
                "phish_prone_percentage": ppp,
                "phone_number": null,
                "extension": null,
                "mobile_phone_number": null,
                "location": null,
                "division": null,
                "manager_name": null,
                "manager_email": null,
                "provisioning_managed": false,
                "provisioning_guid": null,
                "groups": groups,
                "current_risk_score": risk,
                "aliases": [],
                "joined_on": timestamp(joined),
                "last_sign_in": if rng.gen_bool(0.7) { Value::from(timestamp(joined + 86_400 * 20)) } else { Value::Null },
                "status": if archived { "archived" } else { "active" },
                "organization": "Simulated Org",
                "department": u.department,
                "language": "English - United States",
                "comment": null,
                "employee_start_date": timestamp(joined),
                "archived_at": if archived { Value::from(timestamp(T0)) } else { Value::Null },
                "custom_field_1": null,
                "custom_field_2": null,
                "custom_field_3": null,
                "custom_field_4": null,
                "custom_date_1": null,
                "custom_date_2": null
            }));
            if !archived {
                active_users.push((id, u));
            }
        }
        let groups: Vec<Value> = GROUP_NAMES
            .iter()
            .enumerate()
            .map(|(g, name)| {
                json!({
                    "id": group_ids[g],
                    "name": name,
                    "group_type": if g == 5 { "smart_group" } else { "console_group" },
                    "provisioning_guid": null,
                    "member_count": members[g],
                    // Older accounts send no risk score for some groups.
                    "current_risk_score": if g == 4 { Value::Null } else { Value::from(round3(rng.gen_range(10.0..70.0f64))) },
                    "status": "active"
                })
            })
            .collect();

        let mut training_campaigns = Vec::new();
        let mut enrollments = Vec::new();
        let mut enrollment_id = 1_425_526u64;
        for (c, (name, module)) in TRAINING.iter().enumerate() {
            let campaign_id = 4_261 + c as u64 * 3;
            let start = T0 + c as i64 * 30 * 86_400;
            let closed = c == 0;
            training_campaigns.push(json!({
                "campaign_id": campaign_id,
                "name": name,
                "groups": [{"group_id": 0, "name": "All Users"}],
                "status": if closed { "Completed" } else if c == TRAINING.len() - 1 { "Created" } else { "In Progress" },
                "content": [{
                    "store_purchase_id": 7 + c as u64,
                    "content_type": if module.contains("Policy") { "Uploaded Policy" } else { "Store Purchase" },
                    "name": module,
                    "type": "Training Module",
                    "duration": 15 + 5 * c as u64,
                    "retired": false,
                    "retirement_date": null,
                    "publish_date": timestamp(start - 86_400 * 200),
                    "publisher": "KnowBe4",
                    "purchase_date": timestamp(start - 86_400 * 10)
                }],
                "duration_type": "Specific End Date",
                "start_date": timestamp(start),
                "end_date": timestamp(start + 28 * 86_400),
                "relative_duration": null,
                "auto_enroll": true,
                "allow_multiple_enrollments": false
            }));
            if c == TRAINING.len() - 1 {
                continue; // created, nobody enrolled yet
            }
            let inclusion = rng.gen_range(0.1..0.6);
            for (uid, u) in &active_users {
                if !rng.gen_bool(inclusion) {
                    continue;
                }
                let status = if closed {
                    ["Completed", "Passed", "Past Due"][rng.gen_range(0..3)]
                } else {
                    ENROLLMENT_STATUSES[rng.gen_range(0..5)]
                };
                let started = status != "Not Started";
                let done = matches!(status, "Completed" | "Passed");
                enrollments.push(json!({
                    "enrollment_id": enrollment_id,
                    "content_type": if module.contains("Policy") { "Uploaded Policy" } else { "Store Purchase" },
                    "module_name": module,
                    "user": {"id": uid, "first_name": u.first_name, "last_name": u.last_name, "email": u.email},
                    "campaign_name": name,
                    "campaign_id": campaign_id,
                    "enrollment_date": timestamp(start),
                    "start_date": if started { Value::from(timestamp(start + 86_400)) } else { Value::Null },
                    "completion_date": if done { Value::from(timestamp(start + 5 * 86_400)) } else { Value::Null },
                    "status": status,
                    "time_spent": if started { rng.gen_range(60..3600u64) } else { 0 },
                    "policy_acknowledged": done && module.contains("Policy")
                }));
                enrollment_id += 1;
            }
        }

        let delivered_base = active_users.len() as u64;
        let mut security_tests = Vec::new();
        let test_count = 7;
        for t in 0..test_count {
            let campaign_id = 229_584 + (t as u64 % 3) * 239;
            let pst_id = 509_579 + t as u64 * 922;
            let group = t % GROUP_NAMES.len();
            let (gid, gname) = if t % 3 == 0 {
                (0, "All Users")
            } else {
                (group_ids[group], GROUP_NAMES[group])
            };
            let template = TEMPLATES[t % TEMPLATES.len()];
            let started = T0 + 86_400 * (20 + 30 * t as i64);
            let name = ["Monthly Baseline", "Quarterly Spear Phish", "Callback Test"][t % 3];
            if t == test_count - 1 {
                // A test in status Error, as recorded: no start, scheduled_count null.
                security_tests.push(json!({
                    "campaign_id": campaign_id, "pst_id": pst_id, "status": "Error", "name": name,
                    "groups": [{"group_id": gid, "name": gname}], "phish_prone_percentage": 0.0,
                    "started_at": null, "duration": 4,
                    "categories": [{"category_id": 11244, "name": "Baseline Templates"}],
                    "template": {"id": null, "name": null}, "landing_page": {"id": 4072, "name": "Verify Java"},
                    "scheduled_count": null, "delivered_count": 0, "opened_count": 0, "clicked_count": 0,
                    "replied_count": 0, "attachment_open_count": 0, "macro_enabled_count": 0,
                    "data_entered_count": 0, "qr_code_scanned_count": 0, "reported_count": 0, "bounced_count": 0
                }));
                continue;
            }
            let scheduled = if gid == 0 {
                delivered_base
            } else {
                members[group]
            };
            let bounced = (scheduled as f64 * rng.gen_range(0.0..0.02)) as u64;
            let delivered = scheduled - bounced;
            let opened = (delivered as f64 * rng.gen_range(0.3..0.7)) as u64;
            let clicked = (opened as f64 * rng.gen_range(0.1..0.5)) as u64;
            let replied = (delivered as f64 * rng.gen_range(0.0..0.02)) as u64;
            let attachment = (opened as f64 * rng.gen_range(0.0..0.1)) as u64;
            let macro_enabled = attachment / 2;
            let data = (clicked as f64 * rng.gen_range(0.1..0.5)) as u64;
            let qr = (opened as f64 * rng.gen_range(0.0..0.05)) as u64;
            let reported = (delivered as f64 * rng.gen_range(0.05..0.4)) as u64;
            let failed = clicked + replied + attachment + data + qr;
            let ppp = if delivered == 0 {
                0.0
            } else {
                round3((failed.min(delivered)) as f64 / delivered as f64)
            };
            security_tests.push(json!({
                "campaign_id": campaign_id,
                "pst_id": pst_id,
                "status": if t + 2 >= test_count { "Active" } else { "Closed" },
                "name": name,
                "groups": [{"group_id": gid, "name": gname}],
                "phish_prone_percentage": ppp,
                "started_at": timestamp(started),
                "duration": 3 + t as u64,
                "categories": [{"category_id": 5013, "name": "My Templates"}],
                "template": {"id": 4_813_400 + t as u64, "name": template, "difficulty": 1 + (t as u64 % 5), "type": "USER"},
                "landing_page": {"id": 183_506, "name": "Default"},
                "scheduled_count": scheduled,
                "delivered_count": delivered,
                "opened_count": opened,
                "clicked_count": clicked,
                "replied_count": replied,
                "attachment_open_count": attachment,
                "macro_enabled_count": macro_enabled,
                "data_entered_count": data,
                "qr_code_scanned_count": qr,
                "reported_count": reported,
                "bounced_count": bounced
            }));
        }

        let account = json!({
            "name": "Simulated Org",
            "type": "paid",
            "domains": ["sim.example"],
            "admins": [{"id": 974_278, "first_name": "Grace", "last_name": "Admin", "email": "admin@sim.example"}],
            "subscription_level": "Diamond",
            "subscription_end_date": "2027-03-06",
            "number_of_seats": users as u64 + users as u64 / 10,
            "current_risk_score": round3(rng.gen_range(20.0..60.0f64))
        });
        KnowBe4Tenant {
            account,
            users: user_rows,
            groups,
            enrollments,
            training_campaigns,
            security_tests,
        }
    }

    /// Seats of the account (the daily quota is 2,000 plus these).
    pub fn seats(&self) -> u64 {
        self.account["number_of_seats"].as_u64().unwrap_or(0)
    }
}

/// How a simulated KnowBe4 account behaves.
#[derive(Debug, Clone)]
pub struct KnowBe4Options {
    /// Draws the account's KnowBe4 figures (see [`KnowBe4Tenant::from_population`]).
    pub seed: u64,
    /// The account's Reporting API key.
    pub api_key: String,
    /// The region this host plays (for the config's `region`; any region's key is checked the
    /// same way: only this account's key is accepted).
    pub region: String,
    /// Requests allowed per second and per minute (the vendor: 4 and 50); `None`: no limit.
    pub per_second: Option<u32>,
    pub per_minute: Option<u32>,
    /// Requests allowed per 24 hours; `None`: 2,000 plus the seats.
    pub daily_quota: Option<u64>,
}

impl Default for KnowBe4Options {
    fn default() -> Self {
        KnowBe4Options {
            seed: 5,
            api_key: "demo-knowbe4-reporting-key".to_string(),
            region: "eu".to_string(),
            per_second: Some(4),
            per_minute: Some(50),
            daily_quota: None,
        }
    }
}

impl KnowBe4Options {
    /// A `[[knowbe4]]` block of the exporter's config for `account` on `server`, with the key.
    pub fn account_block(&self, server: &SimServer, account: &str) -> String {
        format!(
            "[[knowbe4]]\naccount = {}\nbase_url = {}\ntoken = {}\n",
            crate::toml_str(account),
            crate::toml_str(&server.base_url()),
            crate::toml_str(&self.api_key)
        )
    }
}

/// Accepted requests: the last minute's instants, and the day's count with its start. On tokio's
/// clock, which the exporter's pacing uses too: tests can pace both in paused time.
type Sent = (VecDeque<Instant>, Option<(Instant, u64)>);

/// A running simulated KnowBe4 account's state.
pub struct KnowBe4Sim {
    tenant: Arc<KnowBe4Tenant>,
    options: KnowBe4Options,
    control: Arc<Control>,
    /// Each list's rows serialised once (the simulator should spend little of the shared CPU).
    users_active: Vec<String>,
    users_archived: Vec<String>,
    groups: Vec<String>,
    enrollments: Vec<String>,
    enrollments_without_campaign_id: Vec<String>,
    campaigns_excluded: Vec<String>,
    campaigns_with_percentages: Vec<String>,
    tests: Vec<String>,
    sent: Mutex<Sent>,
}

impl crate::Simulator for KnowBe4Sim {
    const PLATFORM: &'static str = PLATFORM;
    type Options = KnowBe4Options;
    const FAULTS: &'static [(crate::Fault, &'static str)] = &[
        (
            crate::Fault::Status {
                code: 500,
                times: 1000,
            },
            "http",
        ),
        (
            crate::Fault::Status {
                code: 404,
                times: 1000,
            },
            "http",
        ),
        // No Retry-After: the exporter's wait for the minute window outlasts the deadline.
        (
            crate::Fault::RateLimit {
                times: 1000,
                reset_ms: 0,
            },
            "rate_limited",
        ),
    ];

    fn router(
        population: Arc<Population>,
        options: KnowBe4Options,
        control: Arc<Control>,
    ) -> Router {
        let tenant = Arc::new(KnowBe4Tenant::from_population(&population, options.seed));
        account_router(tenant, options, control)
    }

    fn account_keys(options: &KnowBe4Options, server: &SimServer, account: &str) -> String {
        options.account_block(server, account)
    }
}

/// Starts a simulated KnowBe4 account of `population` on `127.0.0.1:<random port>`.
pub async fn start(
    population: Arc<Population>,
    options: KnowBe4Options,
) -> std::io::Result<SimServer> {
    crate::start::<KnowBe4Sim>(population, options).await
}

/// Starts a simulated KnowBe4 server for an account's rows as given.
pub async fn start_account(
    tenant: Arc<KnowBe4Tenant>,
    options: KnowBe4Options,
) -> std::io::Result<SimServer> {
    crate::serve(|control| account_router(tenant, options, control)).await
}

/// The routes of a server answering with an account's rows as given.
fn account_router(
    tenant: Arc<KnowBe4Tenant>,
    options: KnowBe4Options,
    control: Arc<Control>,
) -> Router {
    let ser = |rows: &[Value]| rows.iter().map(|r| r.to_string()).collect::<Vec<_>>();
    let (active, archived): (Vec<Value>, Vec<Value>) = tenant
        .users
        .iter()
        .cloned()
        .partition(|u| u["status"] == "active");
    let without_id: Vec<Value> = tenant
        .enrollments
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if let Some(o) = e.as_object_mut() {
                o.remove("campaign_id");
            }
            e
        })
        .collect();
    let with_pct: Vec<Value> = tenant
        .training_campaigns
        .iter()
        .map(|c| {
            let mut c = c.clone();
            if let Some(o) = c.as_object_mut() {
                o.insert("completion_percentage".into(), json!(0));
            }
            c
        })
        .collect();
    let sim = Arc::new(KnowBe4Sim {
        users_active: ser(&active),
        users_archived: ser(&archived),
        groups: ser(&tenant.groups),
        enrollments: ser(&tenant.enrollments),
        enrollments_without_campaign_id: ser(&without_id),
        campaigns_excluded: ser(&tenant.training_campaigns),
        campaigns_with_percentages: ser(&with_pct),
        tests: ser(&tenant.security_tests),
        tenant,
        options,
        control,
        sent: Mutex::new((VecDeque::new(), None)),
    });
    Router::new().fallback(handle).with_state(sim)
}

/// A simulated account of `population` and the `[[knowbe4]]` table that polls it.
pub async fn tenant(
    population: Arc<Population>,
    options: KnowBe4Options,
    account: &str,
) -> std::io::Result<Tenant> {
    Tenant::start::<KnowBe4Sim>(population, options, account).await
}

/// The fault matrix's KnowBe4 account: 120 people, no pacing on either side (the pacing has
/// tests of its own in paused time).
pub async fn fault_tenant() -> std::io::Result<Tenant> {
    let options = KnowBe4Options {
        per_second: None,
        per_minute: None,
        ..KnowBe4Options::default()
    };
    let tenant = tenant(Arc::new(Population::generate(8, 120)), options, "faulty").await?;
    Ok(tenant
        .with_keys("requests_per_second = 1000\nrequests_per_minute = 60000\n")
        .with_keys(crate::demo::PAGE_SIZE))
}

/// The demo's KnowBe4 account: 500 people, the vendor's pace limits and daily quota. It polls
/// every 30 minutes: at the demo's 5 minutes its polls would not fit the daily quota of 2,000
/// plus its seats (and the exporter says so). Its pace costs a test in paused time
/// (`#[tokio::test(start_paused = true)]`) no real time: both sides pace on tokio's clock.
pub async fn demo_tenant(account: &str, size: crate::demo::Size) -> std::io::Result<Tenant> {
    let population = Arc::new(Population::generate(99, size.people(500)));
    let tenant = tenant(population, KnowBe4Options::default(), account).await?;
    Ok(tenant
        .with_keys("interval = \"30m\"\n")
        .with_keys(crate::demo::PAGE_SIZE))
}

/// A JSON answer with the vendor's headers (no rate-limit headers: KnowBe4 sends none).
fn answer(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = respond(status, "", body);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        r.headers_mut().insert("x-request-id", id);
    }
    r.headers_mut().insert(
        "cache-control",
        HeaderValue::from_static("no-cache, no-store"),
    );
    r
}

/// An error answer: the vendor documents no error body, so the simulator sends none.
fn status_only(status: StatusCode) -> Response {
    respond(status, "", Vec::new())
}

impl KnowBe4Sim {
    /// Counts an accepted request; false when it is over a limit (the caller answers 429).
    fn admit(&self) -> bool {
        let now = Instant::now();
        let mut guard = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        let (minute, day) = &mut *guard;
        while minute
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            minute.pop_front();
        }
        if let Some(per_minute) = self.options.per_minute {
            if minute.len() >= per_minute as usize {
                return false;
            }
        }
        if let Some(per_second) = self.options.per_second {
            let last_second = minute
                .iter()
                .rev()
                .take_while(|t| now.duration_since(**t) < Duration::from_secs(1))
                .count();
            if last_second >= per_second as usize {
                return false;
            }
        }
        // The day starts at the first request (the vendor's window) and lasts 24 hours.
        let quota = self
            .options
            .daily_quota
            .unwrap_or(2_000 + self.tenant.seats());
        let (start, count) = day.get_or_insert((now, 0));
        if now.duration_since(*start) >= Duration::from_secs(86_400) {
            *start = now;
            *count = 0;
        }
        if *count >= quota {
            return false;
        }
        *count += 1;
        minute.push_back(now);
        true
    }
}

fn query_map(req: &Request) -> HashMap<String, String> {
    Query::<HashMap<String, String>>::try_from_uri(req.uri())
        .map(|Query(q)| q)
        .unwrap_or_default()
}

async fn handle(State(sim): State<Arc<KnowBe4Sim>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let control = Arc::clone(&sim.control);
    let _in_flight = control.begin(&path, false);
    // The answer borrows the control; the request moves in (it is not `Sync`).
    let control = &*control;
    let answer = async move {
        if control.is_down() {
            // "Service Unavailable -- We're temporarily offline for maintenance."
            return status_only(StatusCode::SERVICE_UNAVAILABLE);
        }
        if req.method() != Method::GET {
            return status_only(StatusCode::NOT_FOUND);
        }
        let accepts_json = req
            .headers()
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|a| a.contains("json") || a.contains("*/*"));
        if !accepts_json {
            return status_only(StatusCode::NOT_ACCEPTABLE);
        }
        if crate::bearer(req.headers()) != Some(sim.options.api_key.as_str()) {
            // A wrong key and a key of another region's account look alike.
            return status_only(StatusCode::UNAUTHORIZED);
        }
        if let Some(code) = control.take_status() {
            return status_only(crate::status_of(code));
        }
        if control.take_rate_limit().is_some() || !sim.admit() {
            return status_only(StatusCode::TOO_MANY_REQUESTS);
        }
        if control.malformed() {
            return crate::malformed_response();
        }
        let q = query_map(&req);
        let rows: &[String] = match path.as_str() {
            "/v1/account" => {
                return answer(StatusCode::OK, sim.tenant.account.to_string().into_bytes())
            }
            "/v1/users" => match q.get("status").map(String::as_str) {
                Some("active") => &sim.users_active,
                Some("archived") => &sim.users_archived,
                _ => {
                    // Both, active first.
                    let all: Vec<String> = sim
                        .users_active
                        .iter()
                        .chain(&sim.users_archived)
                        .cloned()
                        .collect();
                    return list_page(&sim, &q, &all, 500, "id");
                }
            },
            "/v1/groups" => &sim.groups,
            "/v1/training/enrollments" => {
                if q.get("include_campaign_id").map(String::as_str) == Some("true") {
                    &sim.enrollments
                } else {
                    &sim.enrollments_without_campaign_id
                }
            }
            "/v1/training/campaigns" => {
                // "If this parameter is set to anything other than true, the response limit will
                // be set to 10."
                return if q.get("exclude_percentages").map(String::as_str) == Some("true") {
                    list_page(&sim, &q, &sim.campaigns_excluded, 500, "campaign_id")
                } else {
                    list_page(&sim, &q, &sim.campaigns_with_percentages, 10, "campaign_id")
                };
            }
            "/v1/phishing/security_tests" => &sim.tests,
            _ => return status_only(StatusCode::NOT_FOUND),
        };
        let key = match path.as_str() {
            "/v1/training/enrollments" => "enrollment_id",
            "/v1/phishing/security_tests" => "pst_id",
            _ => "id",
        };
        list_page(&sim, &q, rows, 500, key)
    };
    after_latency(control, true, answer).await
}

/// One page of `rows`: `page` from 1, `per_page` default 100 and at most `cap`; past the end
/// `[]`. With [`Fault::WrongTypes`](crate::Fault::WrongTypes) every tenth row has an id of
/// the wrong type; with [`Fault::EndlessPaging`](crate::Fault::EndlessPaging) every page is a
/// full first page.
fn list_page(
    sim: &KnowBe4Sim,
    q: &HashMap<String, String>,
    rows: &[String],
    cap: usize,
    key: &str,
) -> Response {
    let num = |k: &str, d: usize| {
        q.get(k)
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|v| *v > 0)
            .unwrap_or(d)
    };
    let page = num("page", 1);
    let per_page = num("per_page", 100).min(cap);
    let from = if sim.control.endless_paging() {
        0
    } else {
        (page - 1).saturating_mul(per_page)
    };
    let mut body = Vec::with_capacity(per_page * 256);
    body.push(b'[');
    for (i, row) in rows.iter().enumerate().skip(from).take(per_page) {
        if body.len() > 1 {
            body.push(b',');
        }
        if sim.control.wrong_types() && is_garbage_row(i) {
            body.extend_from_slice(json!({ key: ["not", "an", "id"] }).to_string().as_bytes());
        } else {
            body.extend_from_slice(row.as_bytes());
        }
    }
    body.push(b']');
    if sim.control.truncated() {
        body.truncate(body.len() / 2);
    }
    answer(StatusCode::OK, body)
}
