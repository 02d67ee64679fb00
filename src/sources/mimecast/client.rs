//! Mimecast requests: authentication per request, the JSON envelope, errors inside HTTP 200
//! bodies, and `pageToken` paging.

use serde::de::DeserializeOwned;
use serde_json::json;
use serde_json::value::RawValue;

use super::auth::{decode_secret_key, mc_date, sign};
use super::models::{Envelope, Items};
use crate::config::{MimecastAuth, MimecastConfig};
use crate::http::{FetchError, Transport};
use crate::snapshot::SourceKey;
use crate::sources::token::{parse_token_response, TokenCache};
use crate::stats::{ApiStats, FailureReason};

/// The rows of a page: `data[]`, or with `nested` the `items[]` of each `data[]` entry
/// (campaign/get-user-data; rows directly in `data[]`, as the seed's example shows, also work).
fn rows_of<'a>(data: &[&'a RawValue], nested: bool) -> Vec<&'a RawValue> {
    if !nested {
        return data.to_vec();
    }
    let mut v = Vec::new();
    for d in data {
        match serde_json::from_str::<Items>(d.get()) {
            Ok(items) => v.extend(items.items),
            Err(_) => v.push(*d),
        }
    }
    v
}

pub const API_PREFIX: &str = "/api/awareness-training/";
pub const ENDPOINT_TOKEN: &str = "oauth/token";

/// Vendor error codes that mean the credentials (not the request) are wrong.
fn is_auth_code(code: &str) -> bool {
    code.starts_with("err_xdk_")
        || code == "err_developer_key"
        || code.contains("unauthorized")
        || code.contains("authentication")
}

pub struct MimecastClient {
    pub key: SourceKey,
    config: MimecastConfig,
    transport: Transport,
    stats: std::sync::Arc<ApiStats>,
    token: TokenCache,
    secret_key: Option<Vec<u8>>,
    max_pages: usize,
}

/// Rows of every page of one endpoint, parsed; `skipped` counts rows that did not parse.
pub struct Rows<T> {
    pub rows: Vec<T>,
    pub skipped: u64,
}

impl MimecastClient {
    pub fn new(
        key: SourceKey,
        config: MimecastConfig,
        transport: Transport,
        stats: std::sync::Arc<ApiStats>,
        max_pages: usize,
    ) -> Self {
        let secret_key = match &config.auth {
            MimecastAuth::Hmac { secret_key, .. } => decode_secret_key(secret_key.expose()),
            MimecastAuth::OAuth2 { .. } => None,
        };
        MimecastClient {
            key,
            config,
            transport,
            stats,
            token: TokenCache::default(),
            secret_key,
            max_pages,
        }
    }

    async fn bearer(&self) -> Result<String, FetchError> {
        let MimecastAuth::OAuth2 {
            client_id,
            client_secret,
        } = &self.config.auth
        else {
            return Err(FetchError::new(
                FailureReason::Auth,
                "not an OAuth2 account",
            ));
        };
        let url = format!("{}/oauth/token", self.config.base_url);
        self.token
            .get(|| async {
                let reply = self
                    .transport
                    .send_token_request(ENDPOINT_TOKEN, || {
                        self.transport.client().post(&url).form(&[
                            ("grant_type", "client_credentials"),
                            ("client_id", client_id.as_str()),
                            ("client_secret", client_secret.expose()),
                        ])
                    })
                    .await
                    .map_err(|e| FetchError {
                        message: format!("token request failed: {}", e.message),
                        ..e
                    })?;
                parse_token_response(ENDPOINT_TOKEN, &self.transport, &reply)
            })
            .await
    }

    /// Starts a poll: for OAuth2, forgets the last poll's token failure and acquires the token
    /// the poll's sections share, so a failed token fails the whole poll at once.
    pub async fn authenticate(&self) -> Result<(), FetchError> {
        if let MimecastAuth::OAuth2 { .. } = &self.config.auth {
            self.token.begin_poll().await;
            self.bearer().await?;
        }
        Ok(())
    }

    /// One POST, authenticated; for OAuth2 a refused token is replaced once.
    async fn post_once(
        &self,
        endpoint: &'static str,
        body: &serde_json::Value,
    ) -> Result<bytes::Bytes, FetchError> {
        let path = format!("{API_PREFIX}{endpoint}");
        let url = format!("{}{path}", self.config.base_url);
        let body = serde_json::to_vec(body).unwrap_or_default();
        match &self.config.auth {
            MimecastAuth::Hmac {
                app_id,
                app_key,
                access_key,
                ..
            } => {
                let Some(secret) = &self.secret_key else {
                    self.stats.failure(endpoint, FailureReason::Auth);
                    return Err(FetchError::new(
                        FailureReason::Auth,
                        "secret_key is not valid base64; cannot sign requests",
                    ));
                };
                let reply = self
                    .transport
                    .send(endpoint, || {
                        // Fresh date and request id per attempt: the signature covers both.
                        let date = mc_date(chrono::Utc::now());
                        let req_id = uuid::Uuid::new_v4().to_string();
                        let signature = sign(secret, &date, &req_id, &path, app_key.expose());
                        self.transport
                            .client()
                            .post(&url)
                            .header("x-mc-date", &date)
                            .header("x-mc-req-id", &req_id)
                            .header("x-mc-app-id", app_id)
                            .header(
                                "authorization",
                                format!("MC {}:{signature}", access_key.expose()),
                            )
                            .header("content-type", "application/json")
                            .header("accept", "application/json")
                            .body(body.clone())
                    })
                    .await?;
                Ok(reply.body)
            }
            MimecastAuth::OAuth2 { .. } => {
                let mut renewed = false;
                loop {
                    let token = self.bearer().await?;
                    let result = self
                        .transport
                        .send(endpoint, || {
                            self.transport
                                .client()
                                .post(&url)
                                .bearer_auth(&token)
                                .header("content-type", "application/json")
                                .header("accept", "application/json")
                                .body(body.clone())
                        })
                        .await;
                    match result {
                        Err(e) if e.reason == FailureReason::Auth && !renewed => {
                            renewed = true;
                            self.token.invalidate(&token).await;
                        }
                        other => return other.map(|r| r.body),
                    }
                }
            }
        }
    }

    fn decode_error(&self, endpoint: &'static str, message: String) -> FetchError {
        self.stats.failure(endpoint, FailureReason::Decode);
        FetchError::new(FailureReason::Decode, message)
    }

    /// Every page of `endpoint` for the request item `item`. With `nested`, rows are read from
    /// `data[0].items[]` (campaign/get-user-data), else from `data[]`.
    pub async fn fetch_rows<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        item: Option<serde_json::Value>,
        nested: bool,
    ) -> Result<Rows<T>, FetchError> {
        let body_for = |token: Option<&str>| {
            let mut pagination = json!({ "pageSize": self.config.page_size });
            if let Some(t) = token {
                pagination["pageToken"] = json!(t);
            }
            json!({
                "meta": { "pagination": pagination },
                "data": item.iter().collect::<Vec<_>>(),
            })
        };
        let mut out = Rows {
            rows: Vec::new(),
            skipped: 0,
        };
        let mut token: Option<String> = None;
        let mut bytes = self.post_once(endpoint, &body_for(None)).await?;
        for page in 1.. {
            let envelope: Envelope = serde_json::from_slice(&bytes).map_err(|e| {
                self.decode_error(
                    endpoint,
                    format!("{endpoint}: page {page} is not valid JSON: {e}"),
                )
            })?;
            self.check_envelope(endpoint, &envelope)?;
            let next = envelope
                .meta
                .as_ref()
                .and_then(|m| m.pagination.as_ref())
                .and_then(|p| p.next.clone())
                .filter(|n| !n.is_empty());
            if next.is_some() && next == token {
                return Err(self.decode_error(
                    endpoint,
                    format!("{endpoint}: the server returned the same page token twice"),
                ));
            }
            if next.is_some() && page >= self.max_pages {
                return Err(self.decode_error(
                    endpoint,
                    format!(
                        "{endpoint}: paging exceeded poll.max_pages ({}); refusing to continue",
                        self.max_pages
                    ),
                ));
            }
            let data = envelope.data.unwrap_or_default();
            let parse_rows = |out: &mut Rows<T>| {
                for raw in rows_of(&data, nested) {
                    match serde_json::from_str::<T>(raw.get()) {
                        Ok(row) => out.rows.push(row),
                        Err(_) => out.skipped += 1,
                    }
                }
            };
            match next {
                None => {
                    parse_rows(&mut out);
                    break;
                }
                Some(n) => {
                    // Ask for the next page first, and parse this one while it is on its way:
                    // token paging is sequential, so this takes the parsing off the chain.
                    let body = body_for(Some(&n));
                    let (reply, ()) = futures::join!(self.post_once(endpoint, &body), async {
                        parse_rows(&mut out)
                    });
                    token = Some(n);
                    let reply = reply?;
                    drop(data);
                    bytes = reply;
                }
            }
        }
        if out.skipped > 0 {
            self.stats.rows_skipped(endpoint, out.skipped);
            tracing::warn!(source = %self.key, endpoint, skipped = out.skipped, "skipped malformed rows");
        }
        Ok(out)
    }

    /// Errors can arrive inside HTTP 200: a non-empty `fail[]` or a `meta.status` other than 200.
    fn check_envelope(&self, endpoint: &'static str, env: &Envelope) -> Result<(), FetchError> {
        let errors: Vec<(String, String)> = env
            .fail
            .iter()
            .flatten()
            .flat_map(|f| f.errors.iter())
            .map(|e| {
                (
                    e.code.clone().unwrap_or_default(),
                    e.message.clone().unwrap_or_default(),
                )
            })
            .collect();
        let has_fail = env.fail.as_ref().is_some_and(|f| !f.is_empty());
        if has_fail {
            let reason = if errors.iter().any(|(c, _)| is_auth_code(c)) {
                FailureReason::Auth
            } else {
                FailureReason::ApiError
            };
            self.stats.failure(endpoint, reason);
            let detail = errors
                .iter()
                .map(|(c, m)| format!("{c} {m}").trim().to_string())
                .collect::<Vec<_>>()
                .join("; ");
            let detail: String = detail.chars().take(300).collect();
            return Err(FetchError::new(
                reason,
                format!("{endpoint}: API error: {detail}"),
            ));
        }
        if let Some(status) = env.meta.as_ref().and_then(|m| m.status) {
            if status != 200.0 {
                self.stats.failure(endpoint, FailureReason::ApiError);
                return Err(FetchError::new(
                    FailureReason::ApiError,
                    format!("{endpoint}: API answered meta.status {status}"),
                ));
            }
        }
        Ok(())
    }
}
