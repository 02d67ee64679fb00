//! Mimecast requests: authentication per request, the JSON envelope, errors inside HTTP 200
//! bodies, and `pageToken` paging.

use serde::de::DeserializeOwned;
use serde_json::json;

use super::auth::{decode_secret_key, mc_date, sign};
use super::config::{MimecastAuth, MimecastConfig};
use super::errors::{describe, errors_of, reason_of, should_retry};
use super::models::{Envelope, Identified};
use super::page::{self, PageError};
use crate::config::PollConfig;
use crate::http::Transport;
use crate::model::{FailureReason, FetchError, SourceKey};
use crate::sources::aggregate;
use crate::sources::decode::{too_many_rows, Decoder, RowBudget};
use crate::sources::lenient;
use crate::sources::token::{parse_token_response, TokenCache};
use crate::stats::ApiStats;

pub const API_PREFIX: &str = "/api/awareness-training/";
pub const ENDPOINT_TOKEN: &str = "oauth/token";

pub struct MimecastClient {
    pub key: SourceKey,
    config: MimecastConfig,
    transport: Transport,
    stats: std::sync::Arc<ApiStats>,
    token: TokenCache,
    /// The decoded HMAC key (API 1.0), zeroized when the client is dropped.
    secret_key: Option<zeroize::Zeroizing<Vec<u8>>>,
    max_pages: usize,
    decoder: Decoder,
    /// `poll.max_rows`, counted over the poll (all sections).
    rows: std::sync::Arc<RowBudget>,
}

/// Rows of every page of one endpoint, parsed; `skipped` counts rows that did not parse.
pub struct Rows<T> {
    pub rows: Vec<T>,
    pub skipped: u64,
}

/// What folding every page of one endpoint saw: rows that parsed and rows that did not.
#[derive(Debug, Default, Clone, Copy)]
pub struct Folded {
    pub good: u64,
    pub skipped: u64,
}

impl MimecastClient {
    pub fn new(
        key: SourceKey,
        config: MimecastConfig,
        transport: Transport,
        stats: std::sync::Arc<ApiStats>,
        poll: &PollConfig,
    ) -> Self {
        let secret_key = match &config.auth {
            MimecastAuth::Hmac { secret_key, .. } => {
                decode_secret_key(secret_key.expose()).map(zeroize::Zeroizing::new)
            }
            MimecastAuth::OAuth2 { .. } => None,
        };
        MimecastClient {
            key,
            config,
            transport,
            stats,
            token: TokenCache::default(),
            secret_key,
            max_pages: poll.max_pages,
            decoder: Decoder::new(poll.concurrency),
            rows: RowBudget::new(poll.max_rows as u64),
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

    /// Starts a poll: counts `poll.max_rows` afresh and, for OAuth2, forgets the last poll's token failure and acquires the token
    /// the poll's sections share, so a failed token fails the whole poll at once.
    pub async fn authenticate(&self) -> Result<(), FetchError> {
        self.rows.reset();
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
                // A refused token is replaced once.
                let reply = self
                    .transport
                    .send_with_bearer(
                        endpoint,
                        || self.bearer(),
                        |token| async move {
                            self.token.invalidate(&token).await;
                            true
                        },
                        || {
                            self.transport
                                .client()
                                .post(&url)
                                .header("content-type", "application/json")
                                .header("accept", "application/json")
                                .body(body.clone())
                        },
                    )
                    .await?;
                Ok(reply.body)
            }
        }
    }

    fn decode_error(&self, endpoint: &'static str, message: String) -> FetchError {
        self.stats.failure(endpoint, FailureReason::Decode);
        FetchError::new(FailureReason::Decode, message)
    }

    /// Every row of `endpoint` for the request item `item`, collected (for the short lists:
    /// campaigns, the API user's training record). See [`fetch_fold`](Self::fetch_fold).
    pub async fn fetch_rows<T: DeserializeOwned + Identified + Send + 'static>(
        &self,
        endpoint: &'static str,
        item: Option<serde_json::Value>,
        nested: bool,
    ) -> Result<Rows<T>, FetchError> {
        let rows = aggregate::shared(Vec::new());
        let sink = rows.clone();
        let folded = self
            .fetch_fold(endpoint, item, nested, move |page: Vec<T>| {
                aggregate::lock(&sink).extend(page)
            })
            .await?;
        Ok(Rows {
            rows: aggregate::take(&rows),
            skipped: folded.skipped,
        })
    }

    /// Every page of `endpoint` for the request item `item`, each page's rows handed to `fold`
    /// on the blocking pool as soon as it is parsed and then dropped. With `nested`, rows are
    /// read from `data[0].items[]` (campaign/get-user-data), else from `data[]`. Rows that do
    /// not parse or carry no identity are skipped and counted; when most rows are, the endpoint
    /// fails with reason `decode`. A page that carries an error is never folded, so a retried
    /// page is not counted twice.
    pub async fn fetch_fold<T, F>(
        &self,
        endpoint: &'static str,
        item: Option<serde_json::Value>,
        nested: bool,
        fold: F,
    ) -> Result<Folded, FetchError>
    where
        T: DeserializeOwned + Identified + Send + 'static,
        F: Fn(Vec<T>) + Send + Sync + 'static,
    {
        let fold = std::sync::Arc::new(fold);
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
        let mut out = Folded::default();
        // The page token of the request that `bytes` answers.
        let mut token: Option<String> = None;
        let mut attempt = 1u32;
        let mut page = 1usize;
        let mut bytes = self.post_once(endpoint, &body_for(None)).await?;
        loop {
            // Page tokens are sequential, so the next request waits for this page's token. It
            // is read from the `meta` that opens the answer, and the next request leaves while
            // this page is decoded; the full decode confirms the token, and the early answer is
            // thrown away (one request spent) when this page turns out refused or says another
            // token. Not past poll.max_pages, never the same token twice.
            let ahead = page::peek_next_token(&bytes)
                .filter(|n| page < self.max_pages && Some(n) != token.as_ref());
            // Decoded on the blocking pool, the raw page dropped as soon as it is read.
            let budget = self.rows.clone();
            let body = std::mem::take(&mut bytes);
            let fold_page = fold.clone();
            let decoding = self.decoder.run(move || {
                let mut page = page::decode::<T>(&body, nested, &budget)?;
                drop(body);
                let good = page.rows.len() as u64;
                if answered(&page.meta, &page.fail) {
                    fold_page(std::mem::take(&mut page.rows));
                }
                Ok((page, good))
            });
            let asking = async {
                match &ahead {
                    Some(n) => Some(self.post_once(endpoint, &body_for(Some(n))).await),
                    None => None,
                }
            };
            let (decoded, mut early) = tokio::join!(decoding, asking);
            let (decoded, good) = match decoded? {
                Ok(p) => p,
                Err(PageError::TooManyRows) => {
                    self.stats.failure(endpoint, FailureReason::Decode);
                    return Err(too_many_rows(endpoint, &self.rows));
                }
                Err(PageError::Json(e)) => {
                    return Err(self.decode_error(
                        endpoint,
                        format!("{endpoint}: page {page} is not valid JSON: {e}"),
                    ))
                }
            };
            let envelope = Envelope {
                meta: decoded.meta,
                data: None,
                fail: decoded.fail,
            };
            if let Err(refused) = self.check_envelope(endpoint, &envelope) {
                // err_developer_key and `retryable` errors get the request budget before
                // they count as what they say.
                if refused.retry && attempt < self.transport.settings().max_attempts {
                    tokio::time::sleep(self.retry_wait(attempt)).await;
                    attempt += 1;
                    tracing::debug!(source = %self.key, endpoint, attempt, "retrying a retryable Mimecast error");
                    bytes = self
                        .post_once(endpoint, &body_for(token.as_deref()))
                        .await?;
                    continue;
                }
                let mut e = refused.error;
                if attempt > 1 {
                    e.message = format!("{} (after {attempt} attempts)", e.message);
                }
                return Err(e);
            }
            attempt = 1;
            out.good += good;
            out.skipped += decoded.skipped;
            let next = envelope
                .meta
                .and_then(|m| m.pagination)
                .and_then(|p| p.next)
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
            let Some(n) = next else { break };
            bytes = match early.take() {
                Some(answer) if ahead.as_ref() == Some(&n) => answer?,
                _ => self.post_once(endpoint, &body_for(Some(&n))).await?,
            };
            token = Some(n);
            page += 1;
        }
        if out.skipped > 0 {
            self.stats.rows_skipped(endpoint, out.skipped);
            tracing::warn!(source = %self.key, endpoint, skipped = out.skipped, "skipped malformed rows");
        }
        if lenient::mostly_skipped(out.good, out.skipped) {
            return Err(self.decode_error(
                endpoint,
                format!(
                    "{endpoint}: {} of {} rows are malformed or have no identity; refusing to \
                     publish the rest",
                    out.skipped,
                    out.skipped + out.good
                ),
            ));
        }
        Ok(out)
    }

    /// Rows read so far in this poll, over all sections.
    pub fn rows_read(&self) -> u64 {
        self.rows.used()
    }

    /// Backoff before retrying a retryable vendor error: `poll.retry_backoff`, doubling, ≤ 30 s.
    fn retry_wait(&self, attempt: u32) -> std::time::Duration {
        let base = self.transport.settings().retry_backoff;
        base.saturating_mul(1 << attempt.saturating_sub(1).min(8))
            .min(std::time::Duration::from_secs(30))
    }

    /// Errors can arrive inside HTTP 200: a non-empty `fail[]` (API 1.0 or 2.0 shape) or a
    /// `meta.status` other than 200.
    fn check_envelope(&self, endpoint: &'static str, env: &Envelope) -> Result<(), Refused> {
        let fail = env.fail.as_deref().unwrap_or_default();
        if !fail.is_empty() {
            let errors = errors_of(fail);
            let reason = reason_of(&errors);
            self.stats.failure(endpoint, reason);
            let detail = describe(&errors);
            let detail = if detail.is_empty() {
                "fail[] without details".to_string()
            } else {
                detail
            };
            return Err(Refused {
                error: FetchError::new(reason, format!("{endpoint}: API error: {detail}")),
                retry: should_retry(&errors),
            });
        }
        if let Some(status) = env.meta.as_ref().and_then(|m| m.status) {
            if status != 200.0 {
                self.stats.failure(endpoint, FailureReason::ApiError);
                return Err(Refused {
                    error: FetchError::new(
                        FailureReason::ApiError,
                        format!("{endpoint}: API answered meta.status {status}"),
                    ),
                    retry: false,
                });
            }
        }
        Ok(())
    }
}

/// True when an answer carries no error (no `fail[]` entry, `meta.status` 200 or absent): its
/// rows can be folded. [`MimecastClient::check_envelope`] says why when not.
fn answered(meta: &Option<super::models::Meta>, fail: &Option<Vec<super::models::Fail>>) -> bool {
    fail.as_deref().unwrap_or_default().is_empty()
        && meta
            .as_ref()
            .and_then(|m| m.status)
            .is_none_or(|s| s == 200.0)
}

/// An answer that carried an error, and whether the vendor lets us try again.
struct Refused {
    error: FetchError,
    retry: bool,
}
