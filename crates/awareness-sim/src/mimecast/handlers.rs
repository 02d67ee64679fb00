//! The request handlers: routing, the order of checks (quota, faults, authentication, the
//! request envelope) and each endpoint's answer.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::auth::{authenticate, token};
use super::endpoint::Endpoint;
use super::envelope::{fail, ok_envelope, raw_envelope, validation, Payload, Rejection};
use super::paging::{parse_request, McRequest};
use super::rate_limit::{with_rate_headers, RateInfo};
use super::rows::{
    campaign_user_item, campaigns, garble, performance_row, performance_summary, phishing_row,
    phishing_user_item, safe_score_row, safe_score_summary, training_row, watchlist_row,
};
use super::{MimecastSim, API_USER};
use crate::control::is_garbage_row;
use crate::population::Population;
use crate::{after_latency, data_response, malformed_response, respond};

/// Mimecast's 429: `err_xdk_rate_limit_exceeded`, retryable.
fn rate_limit_exceeded() -> Response {
    fail(
        StatusCode::TOO_MANY_REQUESTS,
        429,
        "err_xdk_rate_limit_exceeded",
        "Rate limit exceeded",
        true,
    )
}

/// Every request: accounting, latency, quota, faults, then the token endpoint or the API.
pub(super) async fn handle(State(sim): State<Arc<MimecastSim>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let is_token = path == "/oauth/token";
    let is_api = path.starts_with("/api/");
    let control = Arc::clone(&sim.control);
    let _in_flight = control.begin(&path, is_token);
    // The answer borrows the control; the request moves in (it is not `Sync`).
    let control = &*control;
    let answer = async move {
        let info = sim.limiter.check(is_api);
        if control.is_down() {
            return with_rate_headers(
                respond(StatusCode::SERVICE_UNAVAILABLE, "", Vec::new()),
                &info,
            );
        }
        if is_api && !info.allowed {
            let resp = rate_limit_exceeded();
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
    };
    after_latency(control, is_api, answer).await
}

/// A data request: injected failures, routing, authentication, the request envelope, the
/// answer.
async fn api(sim: &MimecastSim, path: &str, req: Request) -> Result<Response, Rejection> {
    let control = &sim.control;
    if let Some(code) = control.take_status() {
        return Err(fail(
            crate::status_of(code),
            code,
            "err_server_error",
            "Simulated failure",
            true,
        ));
    }
    if let Some(reset_ms) = control.take_rate_limit() {
        let resp = rate_limit_exceeded();
        let info = RateInfo {
            allowed: false,
            limit: sim.options.rate_limit,
            remaining: 0,
            reset_ms,
        };
        return Err(Box::new(with_rate_headers(resp, &info)));
    }
    let catalogue = sim.options.catalogue_only;
    let endpoint = Endpoint::from_path(path).filter(|e| !catalogue || e.in_catalogue());
    let Some(endpoint) = endpoint else {
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
        Endpoint::PerformanceSummary => Payload::Value(ok_envelope(
            json!([performance_summary(&sim.population)]),
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
            Ok(respond(StatusCode::OK, "application/json", bytes))
        }
    }
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

fn campaign_user_data(
    sim: &MimecastSim,
    path: &str,
    req: &McRequest,
) -> Result<Payload, Rejection> {
    let pop = &sim.population;
    let ci = requested_campaign(req, pop.campaigns.iter().map(|c| c.id.as_str()))?;
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

fn phishing_user_data(
    sim: &MimecastSim,
    path: &str,
    req: &McRequest,
) -> Result<Payload, Rejection> {
    let pop = &sim.population;
    let ci = requested_campaign(req, pop.phishing.iter().map(|c| c.id.as_str()))?;
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
    let rows: Vec<Value> = match req.id() {
        None => pop.phishing.iter().map(phishing_row).collect(),
        Some(_) => {
            let ci = requested_campaign(req, pop.phishing.iter().map(|c| c.id.as_str()))?;
            pop.phishing.get(ci).map(phishing_row).into_iter().collect()
        }
    };
    Ok(ok_envelope(Value::Array(rows), None))
}

/// The position (in `ids`) of the campaign `data[0].id` names, or the validation error Mimecast
/// answers when the id is missing or unknown.
fn requested_campaign<'a>(
    req: &McRequest,
    mut ids: impl Iterator<Item = &'a str>,
) -> Result<usize, Rejection> {
    let Some(id) = req.id() else {
        return Err(validation("err_validation_null", "id must not be null"));
    };
    ids.position(|c| c == id)
        .ok_or_else(|| validation("err_campaign_not_found", "Campaign not found"))
}
