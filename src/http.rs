//! The HTTP transport every source uses, and the one owner of retries: request counting,
//! retries with backoff, rate-limit pauses, a body size cap, a per-account concurrency limit,
//! the poll's deadline, and a WARN line for every failed attempt (rate-limited per source).
//! A vendor only says what an answer means ([`VendorHttp`], and the `accept` step of
//! [`Transport::fetch`] for errors inside an HTTP 200); it never loops itself.
//!
//! Errors carry a [`FailureReason`] and a message that never contains a URL, a header or a
//! body, and every configured secret is scrubbed from vendor text ([`Scrub`]). Credentials
//! never leave the vendor's host: redirects are followed only within one origin (scheme, host
//! and port), and token requests, which carry a password or client secret, follow none at all.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::config::PollConfig;
use crate::model::{FailureReason, FetchError, Retry};
use crate::stats::ApiStats;

/// Longest wait a vendor's `Retry-After` or quota headers can impose on one attempt.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(120);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Redirects followed within one origin before calling it a loop.
const MAX_REDIRECTS: usize = 5;
/// WARN lines about failed attempts per source and minute; the rest are counted and the count
/// rides on the next line logged.
const LOG_LINES_PER_MINUTE: u32 = 6;

/// A successful (2xx) answer with its body read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why an answer that arrived whole was refused by the caller's `accept` step (an error inside
/// an HTTP 200, a page that does not decode): `again` when another attempt may succeed.
#[derive(Debug)]
pub struct Refusal {
    pub error: FetchError,
    pub again: bool,
}

impl Refusal {
    pub fn fatal(error: FetchError) -> Self {
        Refusal {
            error,
            again: false,
        }
    }
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
/// (codes and the vendor's text, never a URL or a header), optionally the reason it really
/// means (Mimecast's HTTP 418 is an expired key binding: `auth`; Proofpoint's 402 an empty
/// budget: `quota`) and when the section is tried again. An answer with a reason of its own
/// is final: it is not retried within the poll.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorError {
    pub detail: String,
    pub reason: Option<FailureReason>,
    pub retry: Retry,
}

/// A vendor's HTTP semantics, as hooks the transport calls on every answer; the defaults are
/// plain HTTP: no quota headers, error bodies not read, 401 and 403 mean the credentials were
/// refused, a 429 without `Retry-After` waits the transport's own backoff.
pub trait VendorHttp: Send + Sync {
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
    /// How long the `refused`-th 429 of one request waits when it says nothing of when to come
    /// back (no `Retry-After`, no quota headers): `None` is the transport's own backoff. A
    /// vendor whose documented limits imply a longer window says so here.
    fn rate_limited_wait(&self, _refused: u32) -> Option<Duration> {
        None
    }
    /// Runs before every attempt: the vendor's own pacing and quota ledger. An error is final.
    fn before_send(&self) -> BoxFuture<'_, Result<(), FetchError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Plain HTTP semantics (every [`VendorHttp`] default).
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainHttp;

impl VendorHttp for PlainHttp {}

/// Every configured secret of an account, with its base64 and percent-encoded forms: removed
/// from any vendor text (an error body, a proxy page that repeats the request) before it is
/// kept, logged or shown.
#[derive(Default, Clone)]
pub struct Scrub {
    needles: Arc<Vec<Zeroizing<String>>>,
}

impl std::fmt::Debug for Scrub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrub({} forms)", self.needles.len())
    }
}

impl Scrub {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut needles = Vec::new();
        // Too short to be a secret worth a search (and would blank ordinary words).
        for s in secrets.into_iter().filter(|s| s.len() >= 4) {
            let b = s.as_bytes();
            let engines = [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::URL_SAFE,
            ];
            for e in engines {
                let encoded = e.encode(b);
                needles.push(encoded.trim_end_matches('=').to_string());
                needles.push(encoded);
            }
            needles.push(url::form_urlencoded::byte_serialize(b).collect());
            needles.push(b.iter().fold(String::new(), |mut out, c| {
                if c.is_ascii_alphanumeric() {
                    out.push(char::from(*c));
                } else {
                    out.push_str(&format!("%{c:02X}"));
                }
                out
            }));
            needles.push(s.to_string());
        }
        // Longest first, so a secret's encoded form goes whole before its plain part.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Scrub {
            needles: Arc::new(needles.into_iter().map(Zeroizing::new).collect()),
        }
    }

    /// `text` with every form of every secret replaced by `[redacted]`.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for n in self.needles.iter().filter(|n| !n.is_empty()) {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), "[redacted]");
            }
        }
        out
    }

    pub fn error(&self, e: FetchError) -> FetchError {
        FetchError {
            message: self.text(&e.message),
            ..e
        }
    }
}

/// One account's view of the network.
pub struct Transport {
    client: reqwest::Client,
    stats: Arc<ApiStats>,
    settings: TransportSettings,
    permits: Semaphore,
    /// Shared by every account's transport: the process-wide request limit.
    global: Arc<Semaphore>,
    /// Set when the vendor said the quota is exhausted: nothing is sent before it.
    paused_until: Mutex<Option<Instant>>,
    /// When the running poll ends: no wait may outlast it.
    deadline: Mutex<Option<Instant>>,
    vendor: Arc<dyn VendorHttp>,
    scrub: Scrub,
    /// Window start, lines logged in it, lines left out since the last one logged.
    log_gate: Mutex<(Instant, u32, u64)>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("settings", &self.settings)
            .finish()
    }
}

/// How one attempt went.
enum Attempt {
    Done(Reply),
    Fail(FetchError),
    /// Try again after the transport's backoff (`None`) or a pause the vendor asked for.
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
            deadline: Mutex::new(None),
            vendor: Arc::new(PlainHttp),
            scrub: Scrub::default(),
            log_gate: Mutex::new((Instant::now(), 0, 0)),
        }
    }

    /// Uses the vendor's HTTP semantics instead of plain HTTP's.
    pub fn with_vendor(mut self, vendor: Arc<dyn VendorHttp>) -> Self {
        self.vendor = vendor;
        self
    }

    /// Scrubs these secrets from every error and log line.
    pub fn with_scrub(mut self, scrub: Scrub) -> Self {
        self.scrub = scrub;
        self
    }

    pub fn settings(&self) -> &TransportSettings {
        &self.settings
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn stats(&self) -> &Arc<ApiStats> {
        &self.stats
    }

    pub fn scrub(&self) -> &Scrub {
        &self.scrub
    }

    /// A poll begins that must end within `within`: no retry wait may outlast it.
    pub fn begin_poll(&self, within: Duration) {
        *lock(&self.deadline) = Instant::now().checked_add(within);
    }

    /// Counts a failure found after the transport succeeded (bad JSON, an API error in a 200).
    pub fn record_failure(&self, endpoint: &'static str, e: &FetchError) {
        self.stats.failure(endpoint, e.reason);
        self.log_attempt(endpoint, e, "giving up");
    }

    /// Sends a request, retrying 5xx, timeouts, connection errors and 429s up to
    /// `max_attempts` attempts. `build` is called for every attempt, so per-request signatures
    /// and ids are fresh. 401/403 come back at once as [`FailureReason::Auth`].
    pub async fn send<F>(&self, endpoint: &'static str, build: F) -> Result<Reply, FetchError>
    where
        F: Fn() -> reqwest::RequestBuilder,
    {
        self.fetch(endpoint, build, |r| async { Ok(r) }).await
    }

    /// Like [`send`](Self::send), with every successful answer handed to `accept` (which may
    /// decode it): a [`Refusal`] that may pass (`again`) is retried like a 5xx, within the same
    /// attempts and deadline, so errors inside an HTTP 200 have the same one retry loop.
    pub async fn fetch<T, B, A, AF>(
        &self,
        endpoint: &'static str,
        build: B,
        accept: A,
    ) -> Result<T, FetchError>
    where
        B: Fn() -> reqwest::RequestBuilder,
        A: Fn(Reply) -> AF,
        AF: Future<Output = Result<T, Refusal>>,
    {
        self.run(endpoint, false, build, accept).await
    }

    /// Sends a request with `Authorization: Bearer <token>`, the token from `token` (cached or
    /// fetched). When the vendor refuses it (reason `auth`), `refused` is told which token
    /// failed; if it can get another (it forgot the cached one: `true`), the request is sent
    /// once more with a fresh token. A static token cannot be renewed (`false`).
    pub async fn fetch_with_bearer<T, TF, TFut, R, RF, B, A, AF>(
        &self,
        endpoint: &'static str,
        token: TF,
        refused: R,
        build: B,
        accept: A,
    ) -> Result<T, FetchError>
    where
        TF: Fn() -> TFut,
        TFut: Future<Output = Result<String, FetchError>>,
        R: FnOnce(String) -> RF,
        RF: Future<Output = bool>,
        B: Fn() -> reqwest::RequestBuilder,
        A: Fn(Reply) -> AF,
        AF: Future<Output = Result<T, Refusal>>,
    {
        let first = token().await?;
        match self
            .fetch(endpoint, || build().bearer_auth(&first), &accept)
            .await
        {
            Err(e) if e.reason == FailureReason::Auth => {
                if !refused(first).await {
                    return Err(e);
                }
                let fresh = token().await?;
                self.fetch(endpoint, || build().bearer_auth(&fresh), &accept)
                    .await
            }
            other => other,
        }
    }

    /// Like [`fetch`](Self::fetch) for a token endpoint: every 4xx but 429 is an auth failure
    /// (OAuth2 servers answer a bad credential with 400 `invalid_grant`/`invalid_client`), and
    /// no redirect is followed.
    pub async fn token_request<T, B, A, AF>(
        &self,
        endpoint: &'static str,
        build: B,
        accept: A,
    ) -> Result<T, FetchError>
    where
        B: Fn() -> reqwest::RequestBuilder,
        A: Fn(Reply) -> AF,
        AF: Future<Output = Result<T, Refusal>>,
    {
        self.run(endpoint, true, build, accept).await
    }

    async fn run<T, B, A, AF>(
        &self,
        endpoint: &'static str,
        token_request: bool,
        build: B,
        accept: A,
    ) -> Result<T, FetchError>
    where
        B: Fn() -> reqwest::RequestBuilder,
        A: Fn(Reply) -> AF,
        AF: Future<Output = Result<T, Refusal>>,
    {
        let attempts = self.settings.max_attempts.max(1);
        let mut refused_429 = 0;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.wait_for_quota().await;
            let result = match self.vendor.before_send().await {
                Err(e) => Attempt::Fail(e),
                Ok(()) => {
                    let _permit = self.permits.acquire().await;
                    let _global = self.global.acquire().await;
                    self.attempt(endpoint, token_request, build(), &mut refused_429)
                        .await
                }
            };
            // The wait before another attempt (`None`: final), and whether the vendor asked
            // for it (a pause every request of the account keeps).
            let (e, wait, pause) = match result {
                Attempt::Done(reply) => match accept(reply).await {
                    Ok(t) => return Ok(t),
                    Err(r) if r.again => (r.error, Some(self.backoff(attempt)), false),
                    Err(r) => (r.error, None, false),
                },
                Attempt::Fail(e) => (e, None, false),
                Attempt::Retry(e, None) => (e, Some(self.backoff(attempt)), false),
                Attempt::Retry(e, Some(p)) => (e, Some(p), true),
            };
            let e = self.scrub.error(e);
            self.stats.failure(endpoint, e.reason);
            let plural = if attempt == 1 { "" } else { "s" };
            let late = wait.filter(|w| {
                let deadline = *lock(&self.deadline);
                deadline.is_some_and(|d| Instant::now() + *w >= d)
            });
            let wait = match wait {
                Some(w) if attempt < attempts && late.is_none() => w,
                _ => {
                    let why = match late {
                        Some(w) if attempt < attempts => format!(
                            "not retried: waiting {} would outlast the poll's deadline (poll.deadline); ",
                            humantime::format_duration(round_ms(w))
                        ),
                        _ => String::new(),
                    };
                    let e = FetchError {
                        message: if wait.is_some() {
                            format!("{} ({why}after {attempt} attempt{plural})", e.message)
                        } else {
                            e.message
                        },
                        ..e
                    };
                    self.log_attempt(
                        endpoint,
                        &e,
                        &format!("giving up after {attempt} attempt{plural}"),
                    );
                    return Err(e);
                }
            };
            self.log_attempt(
                endpoint,
                &e,
                &format!(
                    "retrying in {}, attempt {} of {attempts}",
                    humantime::format_duration(round_ms(wait)),
                    attempt + 1
                ),
            );
            if pause {
                self.pause(wait);
            } else {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// Logs a failed attempt at WARN (the poll's span adds platform and account): endpoint,
    /// reason, status, the URL-free message and what happens next. At most
    /// [`LOG_LINES_PER_MINUTE`] a minute per source, so a flapping vendor cannot flood the
    /// log; the next line says how many were left out.
    fn log_attempt(&self, endpoint: &'static str, e: &FetchError, next: &str) {
        let left_out = {
            let mut gate = lock(&self.log_gate);
            if gate.0.elapsed() >= Duration::from_secs(60) {
                *gate = (Instant::now(), 0, gate.2);
            }
            if gate.1 >= LOG_LINES_PER_MINUTE {
                gate.2 += 1;
                return;
            }
            gate.1 += 1;
            std::mem::take(&mut gate.2)
        };
        tracing::warn!(
            endpoint,
            reason = %e.reason,
            status = e.status,
            error = %e.message,
            left_out,
            "vendor request failed; {next}"
        );
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.settings.retry_backoff.as_secs_f64() * 2f64.powi(attempt as i32 - 1);
        let jitter = rand::thread_rng().gen_range(0.8..1.2);
        Duration::from_secs_f64((base * jitter).min(MAX_BACKOFF.as_secs_f64()))
    }

    async fn wait_for_quota(&self) {
        let until = *lock(&self.paused_until);
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }

    fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut guard = lock(&self.paused_until);
        if guard.is_none_or(|u| u < until) {
            *guard = Some(until);
        }
    }

    async fn attempt(
        &self,
        endpoint: &'static str,
        token_request: bool,
        request: reqwest::RequestBuilder,
        refused_429: &mut u32,
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
                let message = format!(
                    "no answer within {} (poll.timeout)",
                    humantime::format_duration(timeout)
                );
                return Attempt::Retry(FetchError::new(FailureReason::Timeout, message), None);
            }
            Ok(Err(e)) if matches!(e.reason, FailureReason::Timeout | FailureReason::Connect) => {
                return Attempt::Retry(e, None)
            }
            Ok(Err(e)) => return Attempt::Fail(e),
            Ok(Ok(parts)) => parts,
        };

        // Quota headers on every answer: stop before the vendor has to say 429.
        let reset = self
            .vendor
            .rate_limit_reset(&headers)
            .map(|d| d.min(MAX_RATE_LIMIT_WAIT));
        if self.vendor.quota_exhausted(&headers) {
            if let Some(reset) = reset {
                self.pause(reset);
            }
        }
        if status.is_success() {
            return Attempt::Done(Reply {
                status,
                headers,
                body,
            });
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
        if status == StatusCode::TOO_MANY_REQUESTS {
            *refused_429 += 1;
            let wait = retry_after(&headers)
                .or(reset)
                .or_else(|| self.vendor.rate_limited_wait(*refused_429));
            let mut e = http_error(FailureReason::RateLimited);
            e.message.push_str(": the vendor's rate limit was hit");
            return Attempt::Retry(e, wait);
        }
        let is_auth = self.vendor.is_auth(status) || (token_request && status.is_client_error());
        if let Some(v) = self.vendor.read_error(code, &body) {
            let reason = v.reason.unwrap_or(if is_auth {
                FailureReason::Auth
            } else {
                FailureReason::Http
            });
            let e = FetchError {
                message: format!("{}: {}", http_error(reason).message, v.detail),
                retry: v.retry,
                ..http_error(reason)
            };
            return if status.is_server_error() && v.reason.is_none() {
                Attempt::Retry(e, None)
            } else {
                Attempt::Fail(e)
            };
        }
        if status.is_redirection() {
            // Only a redirect the client refused to follow gets here (a token request's, or
            // one without a usable Location).
            let mut e = http_error(FailureReason::Redirect);
            e.message.push_str(": redirect not followed");
            if token_request {
                e.message
                    .push_str(" (token requests never follow redirects)");
            }
            Attempt::Fail(e)
        } else if is_auth {
            Attempt::Fail(http_error(FailureReason::Auth))
        } else if status.is_server_error() {
            Attempt::Retry(http_error(FailureReason::Http), None)
        } else {
            Attempt::Fail(http_error(FailureReason::Http))
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A wait as people read it: whole milliseconds.
fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
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
