//! Simulated Microsoft Defender Attack Simulation Training through Microsoft Graph v1.0, in the
//! documented shapes (tests/fixtures/defender): `{"value": [...]}` pages with an absolute
//! `@odata.nextLink` whose `$skiptoken` is opaque (`+RID%3A…`, not a valid escape, so a client
//! that decodes or rebuilds it is refused), the Graph error envelope, and OAuth2 client
//! credentials at `/{tenant}/oauth2/v2.0/token` on the same server (the exporter's `login_url`).
//!
//! The traps the issue lists: `compromisedRate` is a percent; the delivered event is spelled
//! `SuccessfullyDeliveredEmail` or `SuccessfullyDeliveredMail`; statuses drift (`running`,
//! `succeeded`, older `inProgress`, `completed`); `oAuthConsentGrant` reads
//! `unknownFutureValue` without `Prefer: include-unknown-enum-members`; coverage counts and
//! names can be null; training coverage lists deleted users; a scheduled simulation's overview
//! is empty but 200; the report functions refuse `$top`. [`Fault::NotLicensed`] answers 403
//! `accessDenied` (a tenant without the licence or the permission), [`Fault::RateLimit`] 429
//! with a fractional `Retry-After`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Form, FromRequest, Request, State};
use axum::http::header::{HeaderValue, RETRY_AFTER};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Router;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::control::{is_garbage_row, Control, Fault};
use crate::population::Population;
use crate::{after_latency, data_response, json_response, SimServer, Tenant, TokenStore};

/// The exporter's platform name and `[[table]]`.
pub const PLATFORM: &str = "defender";

const SIMULATIONS: &str = "/v1.0/security/attackSimulation/simulations";
const REPORTS: &str = "/v1.0/reports/security/";
const REPEAT_OFFENDERS: &str = "getAttackSimulationRepeatOffenders";
const SIMULATION_COVERAGE: &str = "getAttackSimulationSimulationUserCoverage";
const TRAINING_COVERAGE: &str = "getAttackSimulationTrainingUserCoverage";

/// Trainings the product assigns after a compromise (its catalogue's names).
const TRAININGS: &[&str] = &[
    "Mass Market Phishing",
    "Spear Phishing",
    "Malware",
    "Business Email Compromise",
    "",
];

/// A simulated tenant's Graph data: every list as the rows the wire carries.
#[derive(Debug, Clone, PartialEq)]
pub struct DefenderTenant {
    pub simulations: Vec<Value>,
    /// Report overview by simulation id (every simulation has one, empty until launched).
    pub overviews: HashMap<String, Value>,
    pub repeat_offenders: Vec<Value>,
    pub simulation_coverage: Vec<Value>,
    pub training_coverage: Vec<Value>,
}

fn timestamp(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

fn user(id: &str, name: Option<&str>, email: Option<&str>) -> Value {
    json!({"userId": id, "displayName": name, "email": email})
}

/// A simulation of the tenant: `(name, status, technique, launched days before now)`.
type Plan = (&'static str, &'static str, &'static str, Option<i64>);

const PLANS: &[Plan] = &[
    (
        "Q1 Credential Harvest",
        "succeeded",
        "credentialHarvesting",
        Some(170),
    ),
    (
        "Invoice Attachment",
        "completed",
        "attachmentMalware",
        Some(150),
    ),
    (
        "Shared Document Link",
        "succeeded",
        "linkToMalwareFile",
        Some(120),
    ),
    (
        "Payroll Update",
        "succeeded",
        "credentialHarvesting",
        Some(90),
    ),
    ("Teams Chat Lure", "cancelled", "driveByUrl", Some(75)),
    ("Consent Phish", "succeeded", "oAuthConsentGrant", Some(60)),
    (
        "MFA Reset Notice",
        "inProgress",
        "credentialHarvesting",
        Some(20),
    ),
    ("Parcel Delivery", "running", "linkInAttachment", Some(3)),
    (
        "Last Year Baseline",
        "succeeded",
        "credentialHarvesting",
        Some(400),
    ),
    (
        "Next Quarter",
        "scheduled",
        "credentialHarvesting",
        Some(-14),
    ),
    ("Draft: CEO Fraud", "draft", "credentialHarvesting", None),
];

impl DefenderTenant {
    /// The tenant of `pop`'s people, its figures drawn from `seed`, its simulations launched
    /// relative to `now` (Unix seconds): the same population, seed and day give the same rows.
    pub fn from_population(pop: &Population, seed: u64, now: i64) -> DefenderTenant {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6d64_6f00);
        let people = &pop.users;
        let n = people.len();
        // Per user: simulations, clicks, compromises, trainings (name, compromise's launch).
        let mut sims_of = vec![0u64; n];
        let mut clicks_of = vec![0u64; n];
        let mut compromised_of = vec![0u64; n];
        let mut trainings_of: Vec<Vec<(&str, i64, bool)>> = vec![Vec::new(); n];
        let mut simulations = Vec::new();
        let mut overviews = HashMap::new();
        for (k, (name, status, technique, days)) in PLANS.iter().enumerate() {
            let id = uuid::Uuid::from_u64_pair(seed, 0x5157_0000 + k as u64).to_string();
            let launch = days.map(|d| now - d * 86_400);
            let launched = !matches!(*status, "scheduled" | "draft");
            simulations.push(json!({
                "id": id,
                "displayName": name,
                "description": format!("{name} ({technique})"),
                "attackType": "social",
                "attackTechnique": technique,
                "status": status,
                "createdDateTime": timestamp(launch.unwrap_or(now) - 7 * 86_400),
                "createdBy": {"id": "99af58b9-ef1a-412b-a581-cb42fe8c8e21", "displayName": "Security Admin", "email": "secadmin@sim.example"},
                "lastModifiedDateTime": timestamp(launch.unwrap_or(now) - 86_400),
                "launchDateTime": launch.map(timestamp),
                "completionDateTime": launch.filter(|_| *status == "succeeded" || *status == "completed").map(|l| timestamp(l + 14 * 86_400)),
                "isAutomated": k % 4 == 3,
                "durationInDays": 14,
                "payloadDeliveryPlatform": if *technique == "driveByUrl" { "teams" } else { "email" }
            }));
            if !launched {
                // Empty but 200, as a scheduled simulation's reports are.
                overviews.insert(
                    id,
                    json!({
                        "resolvedTargetsCount": 0,
                        "simulationEventsContent": {"compromisedRate": 0.0, "events": []},
                        "trainingEventsContent": {"trainingsAssignedUserCount": 0, "assignedTrainingsInfos": []},
                        "recommendedActions": []
                    }),
                );
                continue;
            }
            let share = rng.gen_range(0.4..1.0);
            // One user in 25 joined after every simulation: never targeted, null counts.
            let targets: Vec<usize> = (0..n)
                .filter(|u| u % 25 != 24 && rng.gen_bool(share))
                .collect();
            let (mut delivered, mut clicked, mut compromised, mut reported) = (0u64, 0, 0, 0);
            let training = TRAININGS[k % TRAININGS.len()];
            let (mut assigned, mut completed) = (0u64, 0u64);
            for &u in &targets {
                sims_of[u] += 1;
                if rng.gen_bool(0.97) {
                    delivered += 1;
                }
                if rng.gen_bool(0.15) {
                    reported += 1;
                    continue;
                }
                if rng.gen_bool(0.2) {
                    clicked += 1;
                    clicks_of[u] += 1;
                    if rng.gen_bool(0.5) {
                        compromised += 1;
                        compromised_of[u] += 1;
                        assigned += 1;
                        let done = rng.gen_bool(0.6);
                        completed += u64::from(done);
                        trainings_of[u].push((training, launch.unwrap_or(now), done));
                    }
                }
            }
            let targeted = targets.len() as u64;
            let delivered_name = if k % 2 == 0 {
                "SuccessfullyDeliveredEmail"
            } else {
                "SuccessfullyDeliveredMail"
            };
            let mut events = vec![
                json!({"eventName": delivered_name, "count": delivered}),
                json!({"eventName": "EmailLinkClicked", "count": clicked}),
            ];
            let compromise_event = match *technique {
                "attachmentMalware" => "AttachmentOpened",
                "oAuthConsentGrant" => "OAuthConsentGranted",
                _ => "CredSupplied",
            };
            events.push(json!({"eventName": compromise_event, "count": compromised}));
            events.push(json!({"eventName": "ReportedEmail", "count": reported}));
            let rate = if targeted == 0 {
                0.0
            } else {
                (compromised as f64 * 10_000.0 / targeted as f64).round() / 100.0
            };
            overviews.insert(
                id,
                json!({
                    "resolvedTargetsCount": targeted,
                    "simulationEventsContent": {"compromisedRate": rate, "events": events},
                    "trainingEventsContent": {
                        "trainingsAssignedUserCount": assigned,
                        "assignedTrainingsInfos": [{"assignedUserCount": assigned, "completedUserCount": completed, "displayName": training}]
                    },
                    "recommendedActions": [{"actionWebUrl": "https://security.microsoft.com/securescore", "title": "Enable Safe Links", "potentialScoreImpact": 5.0}]
                }),
            );
        }
        let email = |u: usize| -> Option<&str> {
            // One user in 40 has no e-mail on record (`""`), as documented.
            (u % 40 != 39).then_some(people[u].email.as_str())
        };
        let mut simulation_coverage = Vec::with_capacity(n);
        let mut repeat_offenders = Vec::new();
        let mut training_coverage = Vec::new();
        for u in 0..n {
            let p = &people[u];
            let who = user(&p.id, Some(&p.name), Some(email(u).unwrap_or("")));
            // Users never simulated: every count null.
            let count = |v: u64| {
                if sims_of[u] == 0 {
                    Value::Null
                } else {
                    json!(v)
                }
            };
            simulation_coverage.push(json!({
                "simulationCount": count(sims_of[u]),
                "latestSimulationDateTime": if sims_of[u] == 0 { Value::Null } else { json!(timestamp(now - 3 * 86_400)) },
                "clickCount": count(clicks_of[u]),
                "compromisedCount": count(compromised_of[u]),
                "attackSimulationUser": who.clone(),
            }));
            if compromised_of[u] > 1 {
                repeat_offenders.push(json!({"repeatOffenceCount": compromised_of[u], "attackSimulationUser": who.clone()}));
            }
            if trainings_of[u].is_empty() {
                continue;
            }
            let trainings: Vec<Value> = trainings_of[u]
                .iter()
                .map(|&(name, assigned, done)| {
                    let status = if done {
                        "completed"
                    } else if assigned < now - 30 * 86_400 {
                        "overdue"
                    } else if u % 2 == 0 {
                        "inProgress"
                    } else {
                        "assigned"
                    };
                    json!({
                        "assignedDateTime": timestamp(assigned + 86_400),
                        "completionDateTime": if done { json!(timestamp(assigned + 5 * 86_400)) } else { Value::Null },
                        "trainingStatus": status,
                        "displayName": name,
                    })
                })
                .collect();
            training_coverage
                .push(json!({"userTrainings": trainings, "attackSimulationUser": who}));
        }
        // Deleted users stay in the training report: id only.
        for d in 0..2u64 {
            training_coverage.push(json!({
                "userTrainings": [{"assignedDateTime": timestamp(now - 200 * 86_400), "completionDateTime": null, "trainingStatus": "overdue", "displayName": TRAININGS[0]}],
                "attackSimulationUser": user(&uuid::Uuid::from_u64_pair(seed, 0xde1e_7e00 + d).to_string(), None, None),
            }));
        }
        DefenderTenant {
            simulations,
            overviews,
            repeat_offenders,
            simulation_coverage,
            training_coverage,
        }
    }
}

/// How a simulated tenant behaves.
#[derive(Debug, Clone)]
pub struct DefenderOptions {
    pub seed: u64,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// Rows per page (Graph chooses; the client cannot).
    pub page_size: usize,
    pub token_lifetime_secs: u64,
}

impl Default for DefenderOptions {
    fn default() -> Self {
        DefenderOptions {
            seed: 27,
            tenant_id: "8f2a6d31-4c1b-4e3a-9d7e-1f0c2b3a4d5e".to_string(),
            client_id: "535fb089-9ff3-47b6-9bfb-4f1264799865".to_string(),
            client_secret: "demo-defender-client-secret".to_string(),
            page_size: 100,
            token_lifetime_secs: 3599,
        }
    }
}

impl DefenderOptions {
    /// A `[[defender]]` block of the exporter's config for `account` on `server` (Graph and the
    /// login endpoint on the same server).
    pub fn account_block(&self, server: &SimServer, account: &str) -> String {
        let url = crate::toml_str(&server.base_url());
        format!(
            "[[defender]]\naccount = {}\ntenant_id = {}\nclient_id = {}\nclient_secret = {}\nbase_url = {url}\nlogin_url = {url}\n",
            crate::toml_str(account),
            crate::toml_str(&self.tenant_id),
            crate::toml_str(&self.client_id),
            crate::toml_str(&self.client_secret),
        )
    }
}

/// A running simulated tenant's state.
pub struct DefenderSim {
    tenant: Arc<DefenderTenant>,
    options: DefenderOptions,
    control: Arc<Control>,
    tokens: TokenStore,
}

impl crate::Simulator for DefenderSim {
    const PLATFORM: &'static str = PLATFORM;
    type Options = DefenderOptions;
    const FAULTS: &'static [(Fault, &'static str)] = &[
        (
            Fault::Status {
                code: 500,
                times: 1000,
            },
            "http",
        ),
        // Fractional Retry-After, as Graph sends it.
        (
            Fault::RateLimit {
                times: 1000,
                reset_ms: 20,
            },
            "rate_limited",
        ),
        // 403: no licence or no AttackSimulation.Read.All; not retried.
        (
            Fault::NotLicensed {
                endpoint: String::new(),
            },
            "auth",
        ),
        (Fault::TokenFailure, "auth"),
    ];

    fn router(
        population: Arc<Population>,
        options: DefenderOptions,
        control: Arc<Control>,
    ) -> Router {
        // Launch dates are relative to the day the server starts, so the lookback keeps them.
        let today = chrono::Utc::now().timestamp() / 86_400 * 86_400;
        let tenant = Arc::new(DefenderTenant::from_population(
            &population,
            options.seed,
            today,
        ));
        account_router(tenant, options, control)
    }

    fn account_keys(options: &DefenderOptions, server: &SimServer, account: &str) -> String {
        options.account_block(server, account)
    }
}

/// Starts a simulated tenant for the rows as given.
pub async fn start_account(
    tenant: Arc<DefenderTenant>,
    options: DefenderOptions,
) -> std::io::Result<SimServer> {
    crate::serve(|control| account_router(tenant, options, control)).await
}

fn account_router(
    tenant: Arc<DefenderTenant>,
    options: DefenderOptions,
    control: Arc<Control>,
) -> Router {
    let sim = Arc::new(DefenderSim {
        tenant,
        options,
        control,
        tokens: TokenStore::default(),
    });
    Router::new().fallback(handle).with_state(sim)
}

/// A simulated tenant of `population` and the `[[defender]]` table that polls it.
pub async fn tenant(
    population: Arc<Population>,
    options: DefenderOptions,
    account: &str,
) -> std::io::Result<Tenant> {
    Tenant::start::<DefenderSim>(population, options, account).await
}

/// The demo's Defender tenant: 400 people, eleven simulations (a draft and a scheduled one
/// without a report, one launched before the lookback).
pub async fn demo_tenant(account: &str, size: crate::demo::Size) -> std::io::Result<Tenant> {
    let population = Arc::new(Population::generate(2027, size.people(400)));
    tenant(population, DefenderOptions::default(), account).await
}

/// The fault matrix's Defender tenant: 120 people on 50-row pages.
pub async fn fault_tenant() -> std::io::Result<Tenant> {
    let options = DefenderOptions {
        page_size: 50,
        ..DefenderOptions::default()
    };
    tenant(Arc::new(Population::generate(8, 120)), options, "faulty").await
}

/// The Graph error envelope with its `innerError`.
fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message, "innerError": {
            "date": timestamp(chrono::Utc::now().timestamp()),
            "request-id": uuid::Uuid::new_v4().to_string(),
            "client-request-id": uuid::Uuid::new_v4().to_string()
        }}}),
    )
}

async fn handle(State(sim): State<Arc<DefenderSim>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let is_token = path.ends_with("/oauth2/v2.0/token");
    let control = Arc::clone(&sim.control);
    let _in_flight = control.begin(&path, is_token);
    let control = &*control;
    let answer = async move {
        if control.is_down() {
            return graph_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "serviceNotAvailable",
                "The service is temporarily unavailable.",
            );
        }
        if is_token {
            return token(&sim, &path, req).await;
        }
        if req.method() != Method::GET {
            return graph_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalidRequest",
                "Method not allowed.",
            );
        }
        let authorized = crate::bearer(req.headers())
            .is_some_and(|t| sim.tokens.valid(t, control.token_generation()));
        if !authorized {
            return graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token is empty or invalid.",
            );
        }
        if control.not_licensed(&path) {
            return graph_error(
                StatusCode::FORBIDDEN,
                "accessDenied",
                "The caller doesn't have permission to perform the action.",
            );
        }
        if let Some(code) = control.take_status() {
            return graph_error(
                crate::status_of(code),
                "generalException",
                "An unspecified error has occurred.",
            );
        }
        if let Some(reset_ms) = control.take_rate_limit() {
            let mut r = json_response(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({"error": {"code": "TooManyRequests", "message": "Please retry again later.",
                    "innerError": {"code": "429", "message": "Please retry after", "status": "429"}}}),
            );
            let secs = format!("{}", reset_ms as f64 / 1000.0);
            if let Ok(v) = HeaderValue::from_str(&secs) {
                r.headers_mut().insert(RETRY_AFTER, v);
            }
            return r;
        }
        if control.malformed() {
            return crate::malformed_response();
        }
        route(&sim, &path, &req)
    };
    after_latency(control, !is_token, answer).await
}

fn route(sim: &DefenderSim, path: &str, req: &Request) -> Response {
    let t = &sim.tenant;
    let query = req.uri().query().unwrap_or("");
    if path == SIMULATIONS {
        let with_new_members = req.headers().get_all("prefer").iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.contains("include-unknown-enum-members"))
        });
        let rows: Vec<Value> = t
            .simulations
            .iter()
            .map(|s| {
                let mut s = s.clone();
                if !with_new_members && s["attackTechnique"] == "oAuthConsentGrant" {
                    s["attackTechnique"] = json!("unknownFutureValue");
                }
                s
            })
            .collect();
        return page(sim, req, &rows, "id");
    }
    if let Some(id) = path
        .strip_prefix(SIMULATIONS)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.strip_suffix("/report/overview"))
    {
        return match t.overviews.get(id) {
            Some(o) => data_response(&sim.control, o.clone()),
            None => graph_error(
                StatusCode::NOT_FOUND,
                "itemNotFound",
                "The resource could not be found.",
            ),
        };
    }
    let rows = match path.strip_prefix(REPORTS) {
        Some(REPEAT_OFFENDERS) => &t.repeat_offenders,
        Some(SIMULATION_COVERAGE) => &t.simulation_coverage,
        Some(TRAINING_COVERAGE) => &t.training_coverage,
        _ => {
            return graph_error(
                StatusCode::NOT_FOUND,
                "itemNotFound",
                "Resource not found for the segment.",
            )
        }
    };
    if query.split('&').any(|p| {
        p.to_ascii_lowercase().starts_with("$top=") || p.to_ascii_lowercase().starts_with("%24top=")
    }) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "invalidRequest",
            "Query option 'Top' is not allowed.",
        );
    }
    page(sim, req, rows, "attackSimulationUser")
}

/// The opaque `$skiptoken` of the page starting at `offset`: `+RID%3A` as in the documented
/// links, the offset, and a check so a rebuilt or decoded token is refused.
fn skiptoken(offset: usize) -> String {
    format!(
        "+RID%3A{offset}~{:x}",
        offset.wrapping_mul(2_654_435_761) & 0xffff
    )
}

fn offset_of(query: &str) -> Option<usize> {
    if query.is_empty() {
        return Some(0);
    }
    let token = query
        .split('&')
        .find_map(|p| p.strip_prefix("$skiptoken="))?;
    let offset: usize = token
        .strip_prefix("+RID%3A")?
        .split('~')
        .next()?
        .parse()
        .ok()?;
    (skiptoken(offset) == token).then_some(offset)
}

/// One page of `rows` from the request's `$skiptoken`, with `@odata.nextLink` while more follow.
/// [`Fault::WrongTypes`] garbles every tenth row; [`Fault::EndlessPaging`] links on forever;
/// [`Fault::FailPage`] fails the chosen page with a 500.
fn page(sim: &DefenderSim, req: &Request, rows: &[Value], garble_key: &str) -> Response {
    let control = &sim.control;
    let (path, query) = (req.uri().path(), req.uri().query().unwrap_or(""));
    let Some(offset) = offset_of(query) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "invalidRequest",
            "Invalid skip token.",
        );
    };
    let size = sim.options.page_size.max(1);
    let page_no = u32::try_from(offset / size + 1).unwrap_or(u32::MAX);
    if control.fails_page(path, page_no) {
        return graph_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "generalException",
            "An unspecified error has occurred.",
        );
    }
    let endless = control.endless_paging() && !rows.is_empty();
    let value: Vec<Value> = (offset..offset + size)
        .filter(|i| endless || *i < rows.len())
        .map(|i| {
            let mut row = rows[i % rows.len().max(1)].clone();
            if control.wrong_types() && is_garbage_row(i) {
                row[garble_key] = json!(["not", "an", "object"]);
                row["simulationCount"] = json!({"x": 1});
            }
            row
        })
        .collect();
    let mut body = json!({"@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#{}", path.rsplit('/').next().unwrap_or("")), "value": value});
    if endless || offset + size < rows.len() {
        // Absolute, on the host the client asked (Graph's own host in real life).
        let host = req
            .headers()
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        body["@odata.nextLink"] = json!(format!(
            "http://{host}{path}?$skiptoken={}",
            skiptoken(offset + size)
        ));
    }
    data_response(control, body)
}

async fn token(sim: &DefenderSim, path: &str, req: Request) -> Response {
    let aad = |status: StatusCode, error: &str, description: &str| {
        json_response(
            status,
            &json!({"error": error, "error_description": description, "error_codes": [], "timestamp": timestamp(chrono::Utc::now().timestamp()), "trace_id": uuid::Uuid::new_v4().to_string(), "correlation_id": uuid::Uuid::new_v4().to_string()}),
        )
    };
    if req.method() != Method::POST {
        return aad(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "AADSTS900561: The endpoint only accepts POST requests.",
        );
    }
    let o = &sim.options;
    if path != format!("/{}/oauth2/v2.0/token", o.tenant_id) {
        return aad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS90002: Tenant not found.",
        );
    }
    if sim.control.token_failure() {
        return aad(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        );
    }
    let Ok(Form(form)) = Form::<HashMap<String, String>>::from_request(req, &()).await else {
        return aad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'grant_type'.",
        );
    };
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if get("grant_type") != "client_credentials" {
        return aad(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.",
        );
    }
    if get("scope") != "https://graph.microsoft.com/.default" {
        return aad(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "AADSTS70011: The provided value for the input parameter 'scope' is not valid.",
        );
    }
    if get("client_id") != o.client_id {
        return aad(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "AADSTS700016: Application not found in the directory.",
        );
    }
    if get("client_secret") != o.client_secret {
        return aad(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        );
    }
    let now = chrono::Utc::now().timestamp();
    let lifetime = i64::try_from(o.token_lifetime_secs).unwrap_or(i64::MAX / 4);
    let token = crate::jwt_like(&o.client_id, now.saturating_add(lifetime), now);
    sim.tokens
        .grant(&sim.control, token, o.token_lifetime_secs, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skiptokens_are_opaque_and_checked() {
        assert_eq!(offset_of(""), Some(0));
        let t = skiptoken(200);
        assert!(t.starts_with("+RID%3A"));
        assert_eq!(offset_of(&format!("$skiptoken={t}")), Some(200));
        assert_eq!(
            offset_of("$skiptoken=%2BRID%3A200~0"),
            None,
            "decoded or rebuilt"
        );
        assert_eq!(offset_of("$skiptoken=+RID:200"), None);
    }

    #[test]
    fn the_tenant_is_consistent_and_has_the_documented_traps() {
        let pop = Population::generate(2027, 300);
        let now = 1_767_225_600; // 2026-01-01
        let t = DefenderTenant::from_population(&pop, 27, now);
        assert_eq!(t, DefenderTenant::from_population(&pop, 27, now));
        assert_eq!(t.simulations.len(), PLANS.len());
        assert_eq!(t.simulation_coverage.len(), 300);
        // Users never simulated have null counts; some users have no e-mail.
        assert!(t
            .simulation_coverage
            .iter()
            .any(|r| r["simulationCount"].is_null()));
        assert!(t
            .simulation_coverage
            .iter()
            .any(|r| r["attackSimulationUser"]["email"] == ""));
        // Repeat offenders are the users compromised more than once.
        let repeat = t
            .simulation_coverage
            .iter()
            .filter(|r| r["compromisedCount"].as_u64().unwrap_or(0) > 1)
            .count();
        assert_eq!(repeat, t.repeat_offenders.len());
        // Deleted users in the training report; the scheduled simulation's overview is empty.
        assert!(t
            .training_coverage
            .iter()
            .any(|r| r["attackSimulationUser"]["email"].is_null()));
        let scheduled = t
            .simulations
            .iter()
            .find(|s| s["status"] == "scheduled")
            .unwrap();
        let o = &t.overviews[scheduled["id"].as_str().unwrap()];
        assert_eq!(o["resolvedTargetsCount"], 0);
        // compromisedRate is a percent of the targeted users.
        for s in t.simulations.iter().filter(|s| s["status"] == "succeeded") {
            let o = &t.overviews[s["id"].as_str().unwrap()];
            let targeted = o["resolvedTargetsCount"].as_f64().unwrap();
            let events = o["simulationEventsContent"]["events"].as_array().unwrap();
            let compromised = events[2]["count"].as_f64().unwrap();
            let rate = o["simulationEventsContent"]["compromisedRate"]
                .as_f64()
                .unwrap();
            assert!(
                (rate - compromised * 100.0 / targeted).abs() < 0.01,
                "{rate}"
            );
        }
    }
}
