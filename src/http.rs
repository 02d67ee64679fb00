//! The HTTP transport every source uses: request counting, retries with backoff, rate-limit
//! handling, a body size cap and a per-account concurrency limit.
//!
//! Errors carry a [`FailureReason`] and a message that never contains a URL, a header or a
//! body, so nothing secret can leak through them. Credentials never leave the vendor's host:
//! redirects are followed only within one origin (scheme, host and port), and token requests,
//! which carry a password or client secret in their body, follow none at all.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use crate::config::PollConfig;
use crate::model::FailureReason;
use crate::stats::ApiStats;

/// Longest we wait for a rate-limit window to reopen before giving the attempt up.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(120);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

use crate::model::{FetchError, Retry};

/// A successful (2xx) answer with its body read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug, Clone)]
pub struct TransportSettings {
    pub timeout: Duration,
    pub max_attempts: u32,
    pub retry_backoff: Duration,
    pub max_body_bytes: usize,
    pub concurrency: usize,
}

impl From<&PollConfig> for TransportSettings {
    fn from(p: &PollConfig) -> Self {
        TransportSettings {
            timeout: p.timeout,
            max_attempts: p.max_attempts,
            retry_backoff: p.retry_backoff,
            max_body_bytes: p.max_body_bytes,
            concurrency: p.concurrency,
        }
    }
}

/// Redirects followed within one origin before calling it a loop.
const MAX_REDIRECTS: usize = 5;

/// Why a redirect was not followed; the text reaches logs, so it names no URL.
#[derive(Debug, thiserror::Error)]
enum RedirectRefused {
    #[error("redirect to another host refused (credentials never leave the vendor's host)")]
    CrossHost,
    #[error("redirect loop (more than {MAX_REDIRECTS} redirects)")]
    Loop,
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("awareness-exporter/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        // No Referer to leak a path (with its query) to wherever a redirect points.
        .referer(false)
}

/// Builds the shared HTTP client (rustls, connection pooling). It follows a redirect only
/// within the same origin (scheme, host, port) and at most [`MAX_REDIRECTS`] times.
pub fn client() -> reqwest::Client {
    builder()
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if !same_origin {
                attempt.error(RedirectRefused::CrossHost)
            } else if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error(RedirectRefused::Loop)
            } else {
                attempt.follow()
            }
        }))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// The client for token requests: it follows no redirect at all, since the request body holds
/// the password or client secret. Shared by every account.
fn token_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new())
    })
}

/// What a vendor says in the body of an error answer (4xx or 5xx but 429): a short detail
/// for the message (codes and the vendor's text, never a URL or a header) and, optionally,
/// the reason it really means (Mimecast's HTTP 418 is an expired key binding: `auth`).
#[derive(Debug, Clone, PartialEq)]
pub struct VendorError {
    pub detail: String,
    pub reason: Option<FailureReason>,
}

/// A vendor's HTTP semantics, as hooks the transport calls on every answer. A vendor
/// registration (`crate::sources::registry::Vendor::http`) supplies them; the defaults are plain
/// HTTP: no quota headers, error bodies not read, 401 and 403 mean the credentials were refused.
pub trait VendorHttp: Send + Sync + std::fmt::Debug {
    /// How long until the vendor's quota window reopens, from an answer's headers (a 429 waits
    /// this long when it has no `Retry-After`).
    fn rate_limit_reset(&self, _headers: &HeaderMap) -> Option<Duration> {
        None
    }
    /// Whether an answer's headers say the quota is used up, so the transport pauses (for
    /// [`rate_limit_reset`](Self::rate_limit_reset)) before the vendor has to answer 429.
    fn quota_exhausted(&self, _headers: &HeaderMap) -> bool {
        false
    }
    /// Reads the body of an error answer (every 4xx and 5xx but 429): `None` when it says
    /// nothing the vendor documents.
    fn read_error(&self, _status: u16, _body: &[u8]) -> Option<VendorError> {
        None
    }
    /// Whether `status` means the credentials were refused (reason `auth`). Token requests
    /// also treat every other 4xx but 429 as `auth`.
    fn is_auth(&self, status: StatusCode) -> bool {
        status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN
    }
    /// Whether the transport retries a 429 that says nothing of when to come back (no
    /// `Retry-After`, no [`rate_limit_reset`](Self::rate_limit_reset)) after its own short
    /// backoff. A vendor whose documented limits imply a longer wait says `false`: such a 429
    /// then comes back at once (reason `rate_limited`, status 429) for the vendor to wait.
    fn retries_unexplained_429(&self) -> bool {
        true
    }
}

/// Plain HTTP semantics (every [`VendorHttp`] default).
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainHttp;

impl VendorHttp for PlainHttp {}

/// One account's view of the network.
#[derive(Debug)]
pub struct Transport {
    client: reqwest::Client,
    stats: Arc<ApiStats>,
    settings: TransportSettings,
    permits: Semaphore,
    /// Shared by every account's transport: the process-wide request limit.
    global: Arc<Semaphore>,
    /// Set when the vendor said the quota is exhausted: nothing is sent before it.
    paused_until: Mutex<Option<Instant>>,
    /// The vendor's HTTP semantics (quota headers, error bodies, auth statuses).
    vendor: &'static dyn VendorHttp,
}

enum Attempt {
    Done(Reply),
    Fail(FetchError),
    Retry(FetchError, Option<Duration>),
}

impl Transport {
    pub fn new(
        client: reqwest::Client,
        stats: Arc<ApiStats>,
        settings: TransportSettings,
        global: Arc<Semaphore>,
    ) -> Self {
        let permits = Semaphore::new(settings.concurrency.max(1));
        Transport {
            global,
            client,
            stats,
            settings,
            permits,
            paused_until: Mutex::new(None),
            vendor: &PlainHttp,
        }
    }

    /// Uses the vendor's HTTP semantics instead of plain HTTP's.
    pub fn with_vendor(mut self, vendor: &'static dyn VendorHttp) -> Self {
        self.vendor = vendor;
        self
    }

    pub fn settings(&self) -> &TransportSettings {
        &self.settings
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Counts a failure found after the transport succeeded (bad JSON, an API error in a 200).
    pub fn record_failure(&self, endpoint: &'static str, reason: FailureReason) {
        self.stats.failure(endpoint, reason);
        tracing::warn!(endpoint, reason = %reason, "vendor answer refused");
    }

    /// Sends a request, retrying 5xx, timeouts, connection errors and 429s up to
    /// `max_attempts` attempts. `build` is called for every attempt, so per-request signatures
    /// and ids are fresh. 401/403 come back at once as [`FailureReason::Auth`] for the caller to
    /// re-authenticate.
    pub async fn send<F>(&self, endpoint: &'static str, build: F) -> Result<Reply, FetchError>
    where
        F: Fn() -> reqwest::RequestBuilder,
    {
        self.send_inner(endpoint, false, build).await
    }

    /// Sends a request with `Authorization: Bearer <token>`, the token from `token` (cached or
    /// fetched). When the vendor refuses it (reason `auth`), `refused` is told which token
    /// failed; if it can get another (it forgot the cached one: `true`), the request is sent
    /// once more with a fresh token. A static token cannot be renewed (`false`): the refusal
    /// stands. `build` makes the request without the header, for every attempt.
    pub async fn send_with_bearer<T, TF, R, RF, B>(
        &self,
        endpoint: &'static str,
        token: T,
        refused: R,
        build: B,
    ) -> Result<Reply, FetchError>
    where
        T: Fn() -> TF,
        TF: std::future::Future<Output = Result<String, FetchError>>,
        R: FnOnce(String) -> RF,
        RF: std::future::Future<Output = bool>,
        B: Fn() -> reqwest::RequestBuilder,
    {
        let first = token().await?;
        match self.send(endpoint, || build().bearer_auth(&first)).await {
            Err(e) if e.reason == FailureReason::Auth => {
                if !refused(first).await {
                    return Err(e);
                }
                let fresh = token().await?;
                self.send(endpoint, || build().bearer_auth(&fresh)).await
            }
            other => other,
        }
    }

    /// Like [`send`](Self::send) for a token endpoint: every 4xx but 429 is an auth failure
    /// (OAuth2 servers answer a bad credential with 400 `invalid_grant`/`invalid_client`).
    pub async fn send_token_request<F>(
        &self,
        endpoint: &'static str,
        build: F,
    ) -> Result<Reply, FetchError>
    where
        F: Fn() -> reqwest::RequestBuilder,
    {
        self.send_inner(endpoint, true, build).await
    }

    async fn send_inner<F>(
        &self,
        endpoint: &'static str,
        token_request: bool,
        build: F,
    ) -> Result<Reply, FetchError>
    where
        F: Fn() -> reqwest::RequestBuilder,
    {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.wait_for_quota().await;
            let result = {
                let _permit = self.permits.acquire().await;
                let _global = self.global.acquire().await;
                self.attempt(endpoint, token_request, build()).await
            };
            match result {
                Attempt::Done(reply) => return Ok(reply),
                Attempt::Fail(e) => {
                    self.stats.failure(endpoint, e.reason);
                    log_failure(endpoint, &e);
                    return Err(e);
                }
                Attempt::Retry(e, wait) => {
                    self.stats.failure(endpoint, e.reason);
                    if attempt >= self.settings.max_attempts {
                        let e = FetchError {
                            message: format!(
                                "{} (after {attempt} attempt{})",
                                e.message,
                                if attempt == 1 { "" } else { "s" }
                            ),
                            ..e
                        };
                        log_failure(endpoint, &e);
                        return Err(e);
                    }
                    let wait = wait.unwrap_or_else(|| self.backoff(attempt));
                    tracing::debug!(endpoint, attempt, reason = %e.reason, wait_ms = wait.as_millis() as u64, "retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.settings.retry_backoff.as_secs_f64() * 2f64.powi(attempt as i32 - 1);
        let jitter = rand::thread_rng().gen_range(0.8..1.2);
        Duration::from_secs_f64((base * jitter).min(MAX_BACKOFF.as_secs_f64()))
    }

    async fn wait_for_quota(&self) {
        let until = *self.paused_until.lock().await;
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }

    async fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait.min(MAX_RATE_LIMIT_WAIT);
        let mut guard = self.paused_until.lock().await;
        if guard.is_none_or(|u| u < until) {
            *guard = Some(until);
        }
    }

    async fn attempt(
        &self,
        endpoint: &'static str,
        token_request: bool,
        request: reqwest::RequestBuilder,
    ) -> Attempt {
        self.stats.request(endpoint);
        let timeout = self.settings.timeout;
        let fut = async {
            let (client, request) = request.timeout(timeout).build_split();
            let request = request.map_err(classify)?;
            // Token requests go through the client that follows no redirect.
            let client = if token_request {
                token_client()
            } else {
                &client
            };
            let response = client.execute(request).await.map_err(classify)?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = read_capped(response, self.settings.max_body_bytes).await?;
            Ok::<_, FetchError>((status, headers, body))
        };
        let (status, headers, body) = match tokio::time::timeout(timeout, fut).await {
            Err(_) => {
                return Attempt::Retry(
                    FetchError::new(
                        FailureReason::Timeout,
                        format!(
                            "no answer within {} (poll.timeout)",
                            humantime::format_duration(timeout)
                        ),
                    ),
                    None,
                )
            }
            Ok(Err(e)) if matches!(e.reason, FailureReason::Timeout | FailureReason::Connect) => {
                return Attempt::Retry(e, None)
            }
            Ok(Err(e)) => return Attempt::Fail(e),
            Ok(Ok(parts)) => parts,
        };

        // Quota headers on every answer: stop before the vendor has to say 429.
        let reset = self.vendor.rate_limit_reset(&headers);
        if self.vendor.quota_exhausted(&headers) {
            if let Some(reset) = reset {
                self.pause(reset).await;
            }
        }

        let code = status.as_u16();
        let http_error = |reason| FetchError {
            reason,
            message: format!("HTTP {code} {}", status.canonical_reason().unwrap_or(""))
                .trim_end()
                .to_string(),
            status: Some(code),
            retry: Retry::Backoff,
        };
        let is_auth = self.vendor.is_auth(status)
            || (token_request
                && status.is_client_error()
                && status != StatusCode::TOO_MANY_REQUESTS);
        let vendor = if (status.is_client_error() || status.is_server_error())
            && status != StatusCode::TOO_MANY_REQUESTS
        {
            self.vendor.read_error(code, &body)
        } else {
            None
        };
        if let Some(v) = vendor {
            let reason = v.reason.unwrap_or(if is_auth {
                FailureReason::Auth
            } else {
                FailureReason::Http
            });
            let mut e = http_error(reason);
            e.message = format!("{}: {}", e.message, v.detail);
            return if status.is_server_error() && v.reason.is_none() {
                Attempt::Retry(e, None)
            } else {
                Attempt::Fail(e)
            };
        }
        if status.is_success() {
            Attempt::Done(Reply {
                status,
                headers,
                body,
            })
        } else if status.is_redirection() {
            // Only a redirect the client refused to follow gets here (a token request's, or
            // one without a usable Location).
            let mut e = http_error(FailureReason::Redirect);
            e.message = format!("{}: redirect not followed", e.message);
            if token_request {
                e.message
                    .push_str(" (token requests never follow redirects)");
            }
            Attempt::Fail(e)
        } else if status == StatusCode::TOO_MANY_REQUESTS {
            let told = retry_after(&headers).or(reset);
            if told.is_none() && !self.vendor.retries_unexplained_429() {
                return Attempt::Fail(http_error(FailureReason::RateLimited));
            }
            let wait = told.unwrap_or_else(|| self.backoff(1));
            self.pause(wait).await;
            Attempt::Retry(http_error(FailureReason::RateLimited), Some(Duration::ZERO))
        } else if is_auth {
            Attempt::Fail(http_error(FailureReason::Auth))
        } else if status.is_server_error() {
            Attempt::Retry(http_error(FailureReason::Http), None)
        } else {
            Attempt::Fail(http_error(FailureReason::Http))
        }
    }
}

/// Logs a request that failed for good, at warn: the poll's span adds platform and account.
/// Endpoint, reason, status and the URL-free message only; never a URL, header or body.
fn log_failure(endpoint: &'static str, e: &FetchError) {
    tracing::warn!(
        endpoint,
        reason = %e.reason,
        status = e.status,
        error = %e.message,
        "vendor request failed"
    );
}

/// Maps a reqwest error to a reason and a short, URL-free message in plain words: the
/// innermost cause ("connection refused", "invalid peer certificate: UnknownIssuer") rather
/// than the library's chain ("error sending request: client error (Connect): tcp connect
/// error: Connection refused (os error 111)").
fn classify(e: reqwest::Error) -> FetchError {
    let e = e.without_url();
    let reason = if e.is_redirect() {
        FailureReason::Redirect
    } else if is_tls_failure(&e) {
        FailureReason::Tls
    } else if e.is_timeout() {
        FailureReason::Timeout
    } else {
        FailureReason::Connect
    };
    let mut chain = vec![e.to_string()];
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        chain.push(s.to_string());
        source = s.source();
    }
    let innermost = chain.last().map(|m| plain(m)).unwrap_or_default();
    let dns = chain.iter().any(|m| m.contains("dns error"));
    let message = match reason {
        FailureReason::Redirect => innermost,
        FailureReason::Tls => format!("TLS handshake failed: {innermost}"),
        FailureReason::Timeout => format!("timed out: {innermost}"),
        _ if dns => format!("cannot resolve the host name: {innermost}"),
        _ if e.is_connect() => format!("cannot connect: {innermost}"),
        _ => format!("request failed: {innermost}"),
    };
    FetchError::new(reason, message)
}

/// An error text without Rust's " (os error 111)" and with a lower-case start.
fn plain(message: &str) -> String {
    let m = message.split(" (os error").next().unwrap_or(message).trim();
    let mut chars = m.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Whether a rustls error (a refused certificate, a failed handshake) is in the error's cause
/// chain. rustls errors travel inside `io::Error`s, whose `source()` skips the wrapped error,
/// so both links are looked at.
fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if err.is::<tokio_rustls::rustls::Error>() {
            return true;
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if is_tls_failure(inner) {
                return true;
            }
        }
        next = err.source();
    }
    false
}

async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Bytes, FetchError> {
    if response.content_length().is_some_and(|n| n as usize > cap) {
        return Err(FetchError::new(
            FailureReason::Decode,
            format!("response body larger than the {cap}-byte limit"),
        ));
    }
    // Announced lengths are capped above, so reserving them is bounded.
    let mut buf = BytesMut::with_capacity(response.content_length().unwrap_or(0) as usize);
    while let Some(chunk) = response.chunk().await.map_err(classify)? {
        if buf.len() + chunk.len() > cap {
            return Err(FetchError::new(
                FailureReason::Decode,
                format!("response body larger than the {cap}-byte limit"),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs; treated as absent).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(MAX_RATE_LIMIT_WAIT.as_secs_f64())))
}
