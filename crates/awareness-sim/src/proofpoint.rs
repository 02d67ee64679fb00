//! Simulated Proofpoint Security Awareness (ZenGuide) Results API
//! (`/api/reporting/v0.3.0/{users,phishing,phishalarm,trainingenrollments,cyberstrength}`),
//! answering in the shapes of the vendor's documented examples (tests/fixtures/proofpoint) with
//! their quirks:
//! - the key in header `x-apikey-token` (else 401); JSON:API pages `{data, links, meta, jsonapi}`;
//!   `page[number]` from 1, `page[size]` (default 20) of which at most `max_page_size` rows are
//!   sent: a client must follow `links.next` (relative, percent-encoded, carrying the request's
//!   filters, `page[size]` first in phishing), absent on the last page; a one-page answer has only
//!   `self`;
//! - `meta.count` a number, `page_number`/`page_size` strings (cyberstrength,
//!   trainingenrollments), numbers (users, phishalarm) or absent (phishing);
//! - row `id`s are positions within the page: neither unique nor stable;
//! - phishing is one row per event: a click comes with its view, some rows are sent twice, and
//!   some repeat the user's e-mail in upper case; recipients without an event have a `No Action`
//!   row unless `filter[_includenoaction]=FALSE`;
//! - `useractiveflag` a boolean, but 1/0 in trainingenrollments; `secondsinattempt`,
//!   `questionlatency` and `elapsedhours` strings; timestamps without offset; `usertags` `null`
//!   unless `user_tag_enable=TRUE`, then `{"Department": ["Finance"]}`; not-started assessment
//!   rows say `"correct": false` without a selected answer;
//! - deleted users only with `filter[_includedeletedusers]=TRUE`, platform notifications only with
//!   `filter[_includeplatformnotifications]=TRUE`;
//! - a spent budget is HTTP 402 with the documented body (which is not valid JSON); a
//!   [`Fault::RateLimit`](crate::Fault::RateLimit) is 429 with `Retry-After`.
//!
//! The reports are built from a [`Population`] by [`ProofpointTenant::from_population`]: tests
//! build the same rows from the same population to check the exporter's figures.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::header::{HeaderValue, RETRY_AFTER};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Router;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::control::{is_garbage_row, Control};
use crate::population::Population;
use crate::{after_latency, respond, SimServer, Tenant};

/// The exporter's platform name and `[[table]]`.
pub const PLATFORM: &str = "proofpoint";

/// The path every report lives under.
pub const ROOT: &str = "/api/reporting/v0.3.0";

/// The documented answer of an empty budget, verbatim: the vendor's example lacks two commas.
pub const BUDGET_EMPTY_BODY: &str = "{\n    \"errors\": [\n        {\n            \"detail\": \"No API requests remaining in budget.\"\n            \"source\": {},\n            \"status\": 402\n            \"title\": \"API Budget Empty\"\n        }\n    ],\n    \"jsonapi\": {\n        \"version\": \"1.0\"\n    }\n}";

const ASSIGNMENTS: &[(&str, &[&str])] = &[
    (
        "Annual Security Awareness 2025",
        &["Avoiding Dangerous Links", "Email Security", "Passwords"],
    ),
    (
        "New Hire Onboarding",
        &["Security Essentials", "Data Protection"],
    ),
    ("Phishing Remediation", &["Avoiding Dangerous Links"]),
    (
        "Q3 Privacy Refresher",
        &["GDPR Overview", "Safer Web Browsing"],
    ),
];
const ASSESSMENTS: &[(&str, &str, u32)] = &[
    ("Phishing", "2025 Baseline Assessment", 5),
    ("Safe Social Networking", "Social Media Check", 4),
    ("Passwords and Authentication", "MFA Readiness", 3),
];

/// The rows of one simulated account's reports: the attributes of each row as sent.
#[derive(Debug, Clone)]
pub struct ProofpointTenant {
    /// Current and a few deleted users (`useractiveflag: false`, `userdeleteddate` set).
    pub users: Vec<Value>,
    /// Phishing events, `No Action` rows included, duplicates included.
    pub phishing: Vec<Value>,
    /// Reported e-mails, platform notifications included.
    pub phishalarm: Vec<Value>,
    pub enrollments: Vec<Value>,
    pub cyberstrength: Vec<Value>,
}

fn timestamp(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default()
}

const T0: i64 = 1_735_689_600; // 2025-01-01

impl ProofpointTenant {
    /// The account of `pop`'s people (names, e-mails, departments, phishing results), its
    /// training and assessment records drawn from `seed`: the same population and seed give the
    /// same rows.
    pub fn from_population(pop: &Population, seed: u64) -> ProofpointTenant {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7070_7361);
        let mut t = ProofpointTenant {
            users: Vec::new(),
            phishing: Vec::new(),
            phishalarm: Vec::new(),
            enrollments: Vec::new(),
            cyberstrength: Vec::new(),
        };
        for (n, u) in pop.users.iter().enumerate() {
            let deleted = rng.gen_bool(0.03);
            let tags = match &u.department {
                Some(d) => json!({ "Department": [d], "Region": ["EMEA"] }),
                None => json!({ "Region": ["EMEA"] }),
            };
            let person = |email: &str| {
                json!({
                    "userfirstname": u.first_name, "userlastname": u.last_name,
                    "useremailaddress": email, "useractiveflag": !deleted,
                    "userdeleteddate": if deleted { Value::from(timestamp(T0)) } else { Value::Null },
                    "usertags": tags, "sso_id": null,
                })
            };
            let mut user = person(&u.email);
            extend(
                &mut user,
                json!({
                    "userlocale": "en-US", "usertimezone": "Europe/Copenhagen",
                    "datalastupdated": format!("{}-04:00", timestamp(T0 + 90 * 86_400)),
                }),
            );
            t.users.push(user);
            if deleted {
                continue;
            }
            // Phishing: every event of every campaign the user was sent.
            for r in &u.phishing_results {
                let Some(c) = pop.phishing.get(r.campaign) else {
                    continue;
                };
                let start = T0 + 86_400 * (10 + 40 * r.campaign as i64);
                let shout = n % 7 == 3; // this user's e-mail sometimes arrives upper-cased
                let event = |kind: &str, at: i64, upper: bool| {
                    let email = if upper {
                        u.email.to_uppercase()
                    } else {
                        u.email.clone()
                    };
                    let mut row = person(&email);
                    extend(
                        &mut row,
                        json!({
                            "senttimestamp": timestamp(start + 3600), "eventtimestamp": timestamp(at),
                            "eventtype": kind, "campaignname": c.name, "autoenrollment": true,
                            "campaignstartdate": timestamp(start),
                            "campaignenddate": timestamp(start + 7 * 86_400),
                            "campaigntype": "Phishing", "campaignstatus": "Sent",
                            "templatename": "Shared Document", "templatesubject": "A document was shared with you",
                            "assessmentisarchived": false,
                        }),
                    );
                    row
                };
                let clicked = r.clicked || r.submitted;
                let mut events = Vec::new();
                if r.opened || clicked {
                    events.push(event("Email View", start + 7200, false));
                }
                if clicked {
                    events.push(event("Email Click", start + 7300, shout));
                    events.push(event("TM Sent", start + 7301, false));
                    if n % 11 == 0 {
                        events.push(event("Email Click", start + 7300, false)); // sent twice
                    }
                }
                if r.submitted {
                    events.push(event("Data Submission", start + 7400, false));
                }
                if r.opened && n % 23 == 5 {
                    events.push(event("Attachment Open", start + 7500, false));
                }
                if r.reported {
                    events.push(event("Reported", start + 7600, shout));
                    let mut report = person(&u.email);
                    extend(
                        &mut report,
                        alarm(&c.name, "Simulated Phish", start + 3600, start + 7600),
                    );
                    t.phishalarm.push(report);
                }
                if events.is_empty() {
                    events.push(event("No Action", start + 3600, false));
                }
                t.phishing.extend(events);
            }
            for (kind, p) in [("Potential Phish", 0.08), ("Platform Notification", 0.05)] {
                if rng.gen_bool(p) {
                    let at = T0 + rng.gen_range(0..200) * 86_400;
                    let mut report = person(&u.email);
                    extend(
                        &mut report,
                        alarm("", kind, at, at + rng.gen_range(60..90_000)),
                    );
                    report["campaignname"] = Value::Null;
                    t.phishalarm.push(report);
                }
            }
            // Training: user × module of each assignment the user is in.
            for (a, (assignment, modules)) in ASSIGNMENTS.iter().enumerate() {
                if !rng.gen_bool([0.9, 0.2, 0.15, 0.6][a]) {
                    continue;
                }
                let start = T0 + 86_400 * (30 * a as i64);
                for (m, module) in modules.iter().enumerate() {
                    let status = [
                        "Completed",
                        "Completed",
                        "Completed",
                        "In Progress",
                        "Not Started",
                        "Overdue - Not Started",
                        "Overdue - In Progress",
                    ][rng.gen_range(0..7)];
                    let done = status == "Completed";
                    let mut row = person(&u.email);
                    extend(
                        &mut row,
                        json!({
                            "module_id": format!("{:032x}", (a * 31 + m + 1) as u128 * 0x9e37_79b9_7f4a_7c15),
                            "user_id": format!("{}", 59_137_434 + n), "assignment_id": format!("{:032x}", (a + 1) as u128 * 0x5851_f42d_4c95_7f2d),
                            "assignmentname": assignment, "assignmentstartdate": timestamp(start),
                            "module_enrollment_date": timestamp(start), "module_due_date": timestamp(start + 30 * 86_400),
                            "userassignment_completion_date_time": null, "userassignmentstatus": status,
                            "assignmentduedate": timestamp(start + 30 * 86_400), "assignment_type": "Duration",
                            "assignment_creation": timestamp(start - 86_400), "manageremailaddress": null,
                            "is_auto_enroll": a == 2, "useractiveflag": 1,
                            "modulename_admin": format!("{module} 25.1.0"), "modulename_user": module,
                            "module_attempt_status": status,
                            "usermodule_completion_date_time": if done { Value::from(timestamp(start + 9 * 86_400)) } else { Value::Null },
                        }),
                    );
                    t.enrollments.push(row);
                }
            }
            // Assessments: user × question; not started ones say `correct: false` unanswered.
            for (s, (assessment, assignment, questions)) in ASSESSMENTS.iter().enumerate() {
                if !rng.gen_bool(0.7) {
                    continue;
                }
                let started = rng.gen_bool(0.75);
                let skill = rng.gen_range(0.4..0.95);
                for q in 0..*questions {
                    let correct = started && rng.gen_bool(skill);
                    let mut row = person(&u.email);
                    extend(
                        &mut row,
                        json!({
                            "assignmentname": assignment, "assessmentname": assessment,
                            "assignmentstatus": "In Progress", "assessmentstatus": "Published",
                            "assessmenttype": "Predefined", "assignmentstartdate": timestamp(T0 + 86_400 * 60 * s as i64),
                            "assignmentduedate": timestamp(T0 + 86_400 * (60 * s as i64 + 21)),
                            "assignmentdeleteddate": "9999-01-01T00:00:00", "userremovedfromassignment": false,
                            "category": assessment, "categorybenchmarkall": 71.5, "categorybenchmarkindustry": 69.0,
                            "questionsincategory": questions, "isaeenabled": true,
                            "attemptdate": if started { Value::from(timestamp(T0 + 86_400 * (60 * s as i64 + 3))) } else { Value::Null },
                            "userassignmentstatus": if started { "Completed" } else { "Not Started" },
                            "questionid": format!("q-{s}-{q}"), "questiontype": "Multiple Choice",
                            "iscustomquestion": false, "questiontext": format!("Question {}", q + 1),
                            "selectedanswer": if started { Value::from(if correct { "A" } else { "C" }) } else { Value::Null },
                            "correct": correct,
                            "secondsinattempt": if started { format!("{}", 60 + q * 17) } else { "0".to_string() },
                            "usercorrectonassignment": null, "useransweredonassignment": null,
                            "userscoreonassignment": null, "questionlatency": format!("{}", 4000 + q * 300),
                            "questiondate": if started { Value::from(timestamp(T0 + 86_400 * (60 * s as i64 + 3))) } else { Value::Null },
                            "assignmentaveragescore": null, "companyaveragescore": null,
                        }),
                    );
                    t.cyberstrength.push(row);
                }
            }
        }
        t
    }
}

/// Adds the fields of `more` to the object `row`.
fn extend(row: &mut Value, more: Value) {
    if let (Some(row), Value::Object(more)) = (row.as_object_mut(), more) {
        row.extend(more);
    }
}

fn alarm(campaign: &str, kind: &str, received: i64, reported: i64) -> Value {
    json!({
        "campaignname": campaign, "action": "Opened", "emailtype": kind,
        "receiveddate": timestamp(received), "reporteddate": timestamp(reported),
        "elapsedhours": format!("{:.1}", (reported - received) as f64 / 3600.0),
        "os": "Windows 10", "emailclientversion": "Outlook 16.0",
    })
}

/// How a simulated Proofpoint account behaves.
#[derive(Debug, Clone)]
pub struct ProofpointOptions {
    /// Draws the account's training and assessment records.
    pub seed: u64,
    /// The account's Results API key (`x-apikey-token`).
    pub api_key: String,
    /// At most this many rows a page, whatever `page[size]` asks.
    pub max_page_size: usize,
    /// Requests answered before the budget is empty (HTTP 402); `None`: no limit.
    pub budget: Option<u64>,
}

impl Default for ProofpointOptions {
    fn default() -> Self {
        ProofpointOptions {
            seed: 26,
            api_key: "demo-proofpoint-results-key".to_string(),
            max_page_size: 1000,
            budget: None,
        }
    }
}

impl ProofpointOptions {
    /// A `[[proofpoint]]` block of the exporter's config for `account` on `server`.
    pub fn account_block(&self, server: &SimServer, account: &str) -> String {
        format!(
            "[[proofpoint]]\naccount = {}\nbase_url = {}\napi_key = {}\n",
            crate::toml_str(account),
            crate::toml_str(&server.base_url()),
            crate::toml_str(&self.api_key)
        )
    }
}

/// One report's rows, serialised once with and once without their tags, and what filters see.
struct Report {
    tagged: Vec<String>,
    untagged: Vec<String>,
    /// Per row: left out unless the filter `.0` is TRUE (`.1`: the filter's default).
    hidden: Vec<bool>,
    filter: Option<(&'static str, bool)>,
}

impl Report {
    fn new(
        rows: &[Value],
        filter: Option<(&'static str, bool)>,
        hidden: impl Fn(&Value) -> bool,
    ) -> Report {
        let untagged = rows
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r["usertags"] = Value::Null;
                r.to_string()
            })
            .collect();
        Report {
            tagged: rows.iter().map(Value::to_string).collect(),
            untagged,
            hidden: rows.iter().map(hidden).collect(),
            filter,
        }
    }
}

/// A running simulated Proofpoint account.
pub struct ProofpointSim {
    options: ProofpointOptions,
    control: Arc<Control>,
    reports: HashMap<&'static str, Report>,
    answered: AtomicU64,
}

impl crate::Simulator for ProofpointSim {
    const PLATFORM: &'static str = PLATFORM;
    type Options = ProofpointOptions;
    /// The documented statuses: an empty budget is final until the next interval, a refused
    /// key is auth, a 429 (with `Retry-After`) keeps coming.
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
                code: 402,
                times: 1000,
            },
            "quota",
        ),
        (
            crate::Fault::Status {
                code: 422,
                times: 1000,
            },
            "auth",
        ),
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
        options: ProofpointOptions,
        control: Arc<Control>,
    ) -> Router {
        let tenant = Arc::new(ProofpointTenant::from_population(&population, options.seed));
        account_router(&tenant, options, control)
    }

    fn account_keys(options: &ProofpointOptions, server: &SimServer, account: &str) -> String {
        options.account_block(server, account)
    }
}

fn account_router(
    t: &ProofpointTenant,
    options: ProofpointOptions,
    control: Arc<Control>,
) -> Router {
    let is = |field: &'static str, value: &'static str| move |r: &Value| r[field] == value;
    let reports = HashMap::from([
        (
            "users",
            Report::new(
                &t.users,
                Some(("filter[_includedeletedusers]", false)),
                |r| r["useractiveflag"] == false,
            ),
        ),
        (
            "phishing",
            Report::new(
                &t.phishing,
                Some(("filter[_includenoaction]", true)),
                is("eventtype", "No Action"),
            ),
        ),
        (
            "phishalarm",
            Report::new(
                &t.phishalarm,
                Some(("filter[_includeplatformnotifications]", false)),
                is("emailtype", "Platform Notification"),
            ),
        ),
        (
            "trainingenrollments",
            Report::new(&t.enrollments, None, |_| false),
        ),
        (
            "cyberstrength",
            Report::new(&t.cyberstrength, None, |_| false),
        ),
    ]);
    let sim = Arc::new(ProofpointSim {
        options,
        control,
        reports,
        answered: AtomicU64::new(0),
    });
    Router::new().fallback(handle).with_state(sim)
}

/// A simulated account of `population` and the `[[proofpoint]]` table that polls it.
pub async fn tenant(
    population: Arc<Population>,
    options: ProofpointOptions,
    account: &str,
) -> std::io::Result<Tenant> {
    Tenant::start::<ProofpointSim>(population, options, account).await
}

/// The fault matrix's Proofpoint account: 60 people (every report within 8 pages of 100).
pub async fn fault_tenant() -> std::io::Result<Tenant> {
    let population = Arc::new(Population::generate(9, 60));
    let tenant = tenant(population, ProofpointOptions::default(), "faulty").await?;
    Ok(tenant.with_keys("page_size = 100\n"))
}

/// The demo's Proofpoint account: 200 people, departments from the `Department` user tag.
pub async fn demo_tenant(account: &str, size: crate::demo::Size) -> std::io::Result<Tenant> {
    let population = Arc::new(Population::generate(26, size.people(200)));
    let tenant = tenant(population, ProofpointOptions::default(), account).await?;
    Ok(tenant.with_keys("user_tag = \"Department\"\n"))
}

/// An answer with no body: the vendor documents none but the budget's.
fn status_only(status: StatusCode) -> Response {
    respond(status, "", Vec::new())
}

/// `TRUE`/`FALSE` of filter `name`, or `default`.
fn flag(q: &HashMap<String, String>, name: &str, default: bool) -> bool {
    q.get(name)
        .map_or(default, |v| v.trim().eq_ignore_ascii_case("true"))
}

async fn handle(State(sim): State<Arc<ProofpointSim>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let control = Arc::clone(&sim.control);
    let _in_flight = control.begin(&path, false);
    let control = &*control;
    let answer = async move {
        if control.is_down() {
            return status_only(StatusCode::SERVICE_UNAVAILABLE);
        }
        let report = path
            .strip_prefix(ROOT)
            .and_then(|p| p.strip_prefix('/'))
            .unwrap_or("");
        let Some(rows) = sim
            .reports
            .get(report)
            .filter(|_| req.method() == Method::GET)
        else {
            return status_only(StatusCode::NOT_FOUND);
        };
        let key = req
            .headers()
            .get("x-apikey-token")
            .and_then(|v| v.to_str().ok());
        if key != Some(sim.options.api_key.as_str()) {
            return status_only(StatusCode::UNAUTHORIZED);
        }
        let spent = sim.answered.fetch_add(1, Ordering::SeqCst);
        let status = control.take_status();
        if sim.options.budget.is_some_and(|b| spent >= b) || status == Some(402) {
            return respond(
                StatusCode::PAYMENT_REQUIRED,
                "application/json",
                BUDGET_EMPTY_BODY.into(),
            );
        }
        if let Some(code) = status {
            return status_only(crate::status_of(code));
        }
        if let Some(reset_ms) = control.take_rate_limit() {
            let mut r = status_only(StatusCode::TOO_MANY_REQUESTS);
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(reset_ms.div_ceil(1000)));
            return r;
        }
        if control.malformed() {
            return crate::malformed_response();
        }
        let q: Vec<(String, String)> = Query::<Vec<(String, String)>>::try_from_uri(req.uri())
            .map(|Query(q)| q)
            .unwrap_or_default();
        page(&sim, report, rows, &q)
    };
    after_latency(control, true, answer).await
}

/// Percent-encodes a query part as the vendor's links do (`[` → `%5B`, space → `+`).
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// One page of `report`: the filtered rows from `page[number]`, at most `max_page_size` of them.
fn page(sim: &ProofpointSim, report: &str, rows: &Report, q: &[(String, String)]) -> Response {
    let map: HashMap<String, String> = q.iter().cloned().collect();
    let num = |k: &str, d: usize| {
        map.get(k)
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|v| *v > 0)
            .unwrap_or(d)
    };
    let number = num("page[number]", 1);
    let size = num("page[size]", 20).min(sim.options.max_page_size.max(1));
    let shown = rows
        .filter
        .is_none_or(|(name, default)| flag(&map, name, default));
    let tagged = flag(&map, "user_tag_enable", false);
    let visible: Vec<usize> = (0..rows.tagged.len())
        .filter(|i| shown || !rows.hidden[*i])
        .collect();
    let last = visible.len().div_ceil(size).max(1);
    let from = if sim.control.endless_paging() {
        0
    } else {
        (number - 1).saturating_mul(size)
    };
    let lines = if tagged { &rows.tagged } else { &rows.untagged };
    let mut data = Vec::new();
    for (n, i) in visible.iter().skip(from).take(size).enumerate() {
        let attributes = if sim.control.wrong_types() && is_garbage_row(*i) {
            r#"{"useremailaddress":["not","an","address"],"useractiveflag":{}}"#
        } else {
            lines[*i].as_str()
        };
        data.push(format!(
            r#"{{"type":"fn_{report}_v1","id":{},"attributes":{attributes}}}"#,
            n + 1
        ));
    }
    // The link to page `n`, the request's other parameters kept; phishing puts the size first.
    let others: Vec<String> = q
        .iter()
        .filter(|(k, _)| !k.starts_with("page["))
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let link = |n: usize| {
        let (num, sz) = (
            format!("page%5Bnumber%5D={n}"),
            format!("page%5Bsize%5D={size}"),
        );
        let mut parts = if report == "phishing" {
            vec![sz, num]
        } else {
            vec![num, sz]
        };
        parts.extend(others.iter().cloned());
        format!("{ROOT}/{report}?{}", parts.join("&"))
    };
    let mut links = json!({ "self": link(number) });
    if last > 1 || number > 1 {
        links["first"] = Value::from(link(1));
        links["last"] = Value::from(link(last));
    }
    if number < last || sim.control.endless_paging() {
        links["next"] = Value::from(link(number + 1));
    }
    let count = visible.len();
    let meta = match report {
        "phishing" => json!({ "count": count }),
        "users" | "phishalarm" => {
            json!({ "count": count, "page_size": size, "page_number": number })
        }
        _ => {
            json!({ "count": count, "page_size": size.to_string(), "page_number": number.to_string() })
        }
    };
    let body = format!(
        r#"{{"jsonapi":{{"version":"1.0"}},"links":{links},"meta":{meta},"data":[{}]}}"#,
        data.join(",")
    );
    let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    crate::data_response(&sim.control, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenant_has_the_documented_quirks() {
        let pop = Population::generate(3, 120);
        let t = ProofpointTenant::from_population(&pop, 1);
        assert_eq!(t.users.len(), 120);
        assert!(t.users.iter().any(|u| u["useractiveflag"] == false));
        assert!(t.enrollments.iter().all(|e| e["useractiveflag"] == 1));
        assert!(t.phishing.iter().any(|e| e["eventtype"] == "No Action"));
        assert!(t.phishing.iter().any(|e| e["eventtype"] == "Email Click"));
        assert!(t.phishing.iter().any(|e| e["useremailaddress"]
            .as_str()
            .is_some_and(|m| m.chars().any(|c| c.is_ascii_uppercase()))));
        assert!(t
            .phishalarm
            .iter()
            .any(|r| r["emailtype"] == "Platform Notification"));
        assert!(t
            .cyberstrength
            .iter()
            .any(|r| r["selectedanswer"].is_null() && r["correct"] == false));
        assert!(t
            .cyberstrength
            .iter()
            .all(|r| r["secondsinattempt"].is_string()));
        assert_eq!(t.users[0]["usertags"]["Region"], json!(["EMEA"]));
    }

    async fn get(server: &SimServer, path: &str, key: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!("{}{path}", server.base_url()))
            .header("x-apikey-token", key)
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn pages_are_followed_by_their_links_and_the_budget_ends_in_402() {
        let pop = Arc::new(Population::generate(3, 60));
        let t = ProofpointTenant::from_population(&pop, 26);
        let active = t
            .users
            .iter()
            .filter(|u| u["useractiveflag"] == true)
            .count();
        // Every page of users and one of phishing, then the budget is spent.
        let options = ProofpointOptions {
            max_page_size: 7,
            budget: Some(active.div_ceil(7) as u64 + 1),
            ..Default::default()
        };
        let key = options.api_key.clone();
        let server = crate::start::<ProofpointSim>(pop, options).await.unwrap();
        assert_eq!(
            get(&server, "/api/reporting/v0.3.0/users", "wrong")
                .await
                .status(),
            401
        );
        // Asked for 50 a page, sent 7: only `links.next` says there is more.
        let mut next = Some(format!(
            "{ROOT}/users?page[number]=1&page[size]=50&user_tag_enable=TRUE"
        ));
        let (mut rows, mut pages) = (0, 0);
        while let Some(path) = next.take() {
            let page: Value = get(&server, &path, &key).await.json().await.unwrap();
            assert_eq!(page["meta"]["page_size"], 7, "a number in users");
            let data = page["data"].as_array().unwrap();
            assert!(data.iter().all(|r| r["attributes"]["usertags"].is_object()));
            rows += data.len();
            pages += 1;
            next = page["links"]["next"].as_str().map(str::to_string);
            if let Some(n) = &next {
                assert!(
                    n.contains("page%5Bsize%5D=7") && n.contains("user_tag_enable=TRUE"),
                    "{n}"
                );
            }
        }
        let active = t
            .users
            .iter()
            .filter(|u| u["useractiveflag"] == true)
            .count();
        assert_eq!((rows, pages), (active, active.div_ceil(7)));
        let page: Value = get(&server, &format!("{ROOT}/phishing?page[size]=5"), &key)
            .await
            .json()
            .await
            .unwrap();
        assert!(
            page["meta"].get("page_number").is_none(),
            "absent in phishing"
        );
        assert!(page["links"]["next"]
            .as_str()
            .unwrap()
            .starts_with("/api/reporting/v0.3.0/phishing?page%5Bsize%5D=5&page%5Bnumber%5D=2"));
        assert!(
            page["data"][0]["attributes"]["usertags"].is_null(),
            "no tags unless asked"
        );
        let spent = get(&server, &format!("{ROOT}/users"), &key).await;
        assert_eq!(spent.status(), 402);
        assert_eq!(spent.text().await.unwrap(), BUDGET_EMPTY_BODY);
    }

    #[test]
    fn links_are_percent_encoded_as_the_vendor_writes_them() {
        assert_eq!(encode("filter[_campaignname]"), "filter%5B_campaignname%5D");
        assert_eq!(encode("test duration"), "test+duration");
    }
}
