//! Mimecast requests: authentication per request (OAuth2 bearer or an HMAC signature), the
//! JSON envelope `{meta, data[], fail[]}` with its errors inside HTTP 200 bodies, and
//! `pageToken` paging, on the paging engine.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde_json::json;
use serde_json::value::RawValue;

use super::auth::{decode_secret_key, mc_date, sign};
use super::config::{MimecastAuth, MimecastConfig};
use super::errors::{describe, errors_of, reason_of, should_retry};
use super::models::{Identified, Items, UserLike};
use super::page::MetaFail;
use crate::http::{Refusal, Reply};
use crate::model::{FailureReason, FetchError, Retry};
use crate::sources::decode::{decode_page, Page, PageError, RowBudget};
use crate::sources::paging::{Engine, Format, Pager};
use crate::sources::token::{request_token, TokenCache};

pub const API_PREFIX: &str = "/api/awareness-training/";
pub const ENDPOINT_TOKEN: &str = "oauth/token";

pub struct MimecastClient {
    config: MimecastConfig,
    pub engine: Engine,
    token: TokenCache,
    /// The decoded HMAC key (API 1.0), zeroized when the client is dropped.
    secret_key: Option<zeroize::Zeroizing<Vec<u8>>>,
}

/// Rows of `data[]`, or with `NESTED` the `items[]` of each `data[]` entry
/// (campaign/get-user-data): an entry without `items` is no row, unless it is itself a user
/// row with an email (the seed's example), never a phantom user. A row counts once by its key.
pub struct Rows<T, const NESTED: bool>(PhantomData<T>);

impl<T, const NESTED: bool> Format for Rows<T, NESTED>
where
    T: DeserializeOwned + Identified + Send + 'static,
{
    type Envelope = MetaFail;
    type Row = T;

    fn read(
        body: &[u8],
        budget: &RowBudget,
        element: &mut dyn FnMut(&RawValue) -> u64,
    ) -> Result<Page<MetaFail>, PageError> {
        decode_page::<MetaFail, _>(body, budget, element)
    }

    fn rows(element: &RawValue, rows: &mut Vec<T>) -> (u64, u64) {
        let mut push = |raw: &RawValue| match serde_json::from_str::<T>(raw.get()) {
            Ok(row) if row.has_identity() => {
                rows.push(row);
                0
            }
            _ => 1,
        };
        if !NESTED {
            return (1, push(element));
        }
        match serde_json::from_str::<Items>(element.get()) {
            Ok(items) => (
                items.items.len() as u64,
                items.items.iter().map(|i| push(i)).sum(),
            ),
            Err(_) => match serde_json::from_str::<UserLike>(element.get()) {
                Ok(u) if u.email.is_some() => (1, push(element)),
                _ => (0, 0),
            },
        }
    }

    fn key(row: &T) -> Option<std::borrow::Cow<'_, str>> {
        row.key().map(std::borrow::Cow::Borrowed)
    }

    /// Errors arrive inside HTTP 200: a non-empty `fail[]` (API 1.0 or 2.0 shape) or a
    /// `meta.status` other than 200. `err_developer_key` and `retryable` errors are asked
    /// again before they count as what they say.
    fn refusal(page: &Page<MetaFail>) -> Option<Refusal> {
        let fail = page.envelope.fail.as_deref().unwrap_or_default();
        if !fail.is_empty() {
            let errors = errors_of(fail);
            let detail = Some(describe(&errors))
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "fail[] without details".into());
            return Some(Refusal {
                error: FetchError::new(reason_of(&errors), format!("API error: {detail}")),
                again: should_retry(&errors),
            });
        }
        let status = page.envelope.meta.as_ref().and_then(|m| m.status)?;
        (status != 200.0).then(|| {
            Refusal::fatal(FetchError::new(
                FailureReason::ApiError,
                format!("API answered meta.status {status}"),
            ))
        })
    }
}

/// `pageToken` paging of one endpoint for one request item: tokens are sequential, each
/// page's `meta.pagination.next` names the next (absent or empty: the last page).
pub struct TokenPager<'a, T, const NESTED: bool> {
    client: &'a MimecastClient,
    endpoint: &'static str,
    item: Option<serde_json::Value>,
    /// `None` before the first page; then the next token, if any.
    next: Option<Option<String>>,
    rows: PhantomData<T>,
}

impl<'a, T, const NESTED: bool> TokenPager<'a, T, NESTED> {
    pub fn new(
        client: &'a MimecastClient,
        endpoint: &'static str,
        item: Option<serde_json::Value>,
    ) -> Self {
        TokenPager {
            client,
            endpoint,
            item,
            next: None,
            rows: PhantomData,
        }
    }
}

impl<T, const NESTED: bool> Pager for TokenPager<'_, T, NESTED>
where
    T: DeserializeOwned + Identified + Send + Sync + 'static,
{
    type Format = Rows<T, NESTED>;
    type Request = Option<String>;

    fn endpoint(&self) -> &'static str {
        self.endpoint
    }

    fn next(&mut self) -> Vec<Option<String>> {
        match &self.next {
            None => vec![None],
            Some(token) => token.iter().map(|t| Some(t.clone())).collect(),
        }
    }

    fn learn(&mut self, _sent: Option<String>, page: MetaFail, _rows: u64) {
        let next = page.meta.and_then(|m| m.pagination).and_then(|p| p.next);
        self.next = Some(next.filter(|n| !n.is_empty()));
    }

    async fn send<R, A, AF>(&self, token: &Option<String>, accept: A) -> Result<R, FetchError>
    where
        R: Send,
        A: Fn(Reply) -> AF + Send + Sync,
        AF: std::future::Future<Output = Result<R, Refusal>> + Send,
    {
        let mut pagination = json!({ "pageSize": self.client.config.page_size });
        if let Some(t) = token {
            pagination["pageToken"] = json!(t);
        }
        let body = json!({
            "meta": { "pagination": pagination },
            "data": self.item.iter().collect::<Vec<_>>(),
        });
        self.client.post(self.endpoint, &body, accept).await
    }
}

impl MimecastClient {
    pub fn new(config: MimecastConfig, engine: Engine) -> Self {
        let secret_key = match &config.auth {
            MimecastAuth::Hmac { secret_key, .. } => {
                decode_secret_key(secret_key.expose()).map(zeroize::Zeroizing::new)
            }
            MimecastAuth::OAuth2 { .. } => None,
        };
        MimecastClient {
            config,
            engine,
            token: TokenCache::default(),
            secret_key,
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
        let transport = &self.engine.transport;
        let issue = request_token(transport, ENDPOINT_TOKEN, "token request", || {
            transport.client().post(&url).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id.as_str()),
                ("client_secret", client_secret.expose()),
            ])
        });
        // A refused token is the account's failure, never an endpoint not offered (a 403 or
        // 404 of the token endpoint reads as one in errors.rs).
        let issue = async {
            issue.await.map_err(|e| FetchError {
                retry: Retry::Backoff,
                ..e
            })
        };
        self.token.get(|| issue).await
    }

    /// Starts a poll: the engine's count and deadline and, for OAuth2, the token the poll's
    /// sections share (the last poll's token failure forgotten), so a failed token fails the
    /// whole poll at once.
    pub async fn authenticate(&self) -> Result<(), FetchError> {
        self.engine.begin_poll();
        if let MimecastAuth::OAuth2 { .. } = &self.config.auth {
            self.token.begin_poll().await;
            self.bearer().await?;
        }
        Ok(())
    }

    /// One POST, authenticated, its answer handed to `accept`; for OAuth2 a refused token is
    /// replaced once.
    async fn post<R, A, AF>(
        &self,
        endpoint: &'static str,
        body: &serde_json::Value,
        accept: A,
    ) -> Result<R, FetchError>
    where
        A: Fn(Reply) -> AF,
        AF: std::future::Future<Output = Result<R, Refusal>>,
    {
        let path = format!("{API_PREFIX}{endpoint}");
        let url = format!("{}{path}", self.config.base_url);
        let body = serde_json::to_vec(body).unwrap_or_default();
        let transport = &self.engine.transport;
        let request = || {
            transport
                .client()
                .post(&url)
                .header("content-type", "application/json")
                .header("accept", "application/json")
                .body(body.clone())
        };
        match &self.config.auth {
            MimecastAuth::Hmac {
                app_id,
                app_key,
                access_key,
                ..
            } => {
                let Some(secret) = &self.secret_key else {
                    let e = FetchError::new(
                        FailureReason::Auth,
                        "secret_key is not valid base64; cannot sign requests",
                    );
                    transport.record_failure(endpoint, &e);
                    return Err(e);
                };
                let signed = || {
                    // Fresh date and request id per attempt: the signature covers both.
                    let date = mc_date(chrono::Utc::now());
                    let req_id = uuid::Uuid::new_v4().to_string();
                    let signature = sign(secret, &date, &req_id, &path, app_key.expose());
                    request()
                        .header("x-mc-date", &date)
                        .header("x-mc-req-id", &req_id)
                        .header("x-mc-app-id", app_id)
                        .header(
                            "authorization",
                            format!("MC {}:{signature}", access_key.expose()),
                        )
                };
                transport.fetch(endpoint, signed, accept).await
            }
            MimecastAuth::OAuth2 { .. } => {
                transport
                    .fetch_with_bearer(
                        endpoint,
                        || self.bearer(),
                        |token| async move {
                            self.token.invalidate(&token).await;
                            true
                        },
                        request,
                        accept,
                    )
                    .await
            }
        }
    }
}
