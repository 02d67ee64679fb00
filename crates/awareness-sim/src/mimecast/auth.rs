//! Authentication: API 2.0 OAuth2 client credentials (the token endpoint and bearer tokens) and
//! API 1.0 HMAC-signed requests, with the error codes Mimecast answers for each failure.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use axum::extract::{FromRequest, Request};
use axum::http::header::HeaderMap;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Form;
use serde_json::json;

use super::envelope::{fail, unauthorized, Rejection};
use super::signing::{mc_date_now, parse_mc_date, sign, verify};
use super::{lock, MimecastSim};
use crate::json_response;

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

impl SimAuth {
    /// The config keys that authenticate against a tenant using these credentials.
    pub fn config_keys(&self) -> String {
        use crate::toml_str as q;
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

/// How HMAC `x-mc-date` may differ from the server clock, and how long request ids are remembered.
const HMAC_WINDOW_SECS: i64 = 15 * 60;

/// Request ids seen within the HMAC window (a replayed id is refused).
#[derive(Default)]
pub(super) struct SeenRequestIds {
    ids: HashSet<String>,
    order: VecDeque<(Instant, String)>,
}

/// `POST /oauth/token`: API 2.0 client credentials.
pub(super) async fn token(sim: &MimecastSim, req: Request) -> Response {
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
    sim.tokens
        .grant(&sim.control, token, sim.options.token_lifetime_secs, &[])
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Checks a data request: the bearer token (API 2.0), or the HMAC signature, date window, app
/// id and unused request id (API 1.0).
pub(super) fn authenticate(
    sim: &MimecastSim,
    headers: &HeaderMap,
    path: &str,
) -> Result<(), Rejection> {
    match &sim.options.auth {
        SimAuth::OAuth2 { .. } => match crate::bearer(headers) {
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
            let Some(at) = parse_mc_date(date) else {
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
