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
use reqwest::{RequestBuilder, StatusCode};
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

/// A successful (2xx) answer with its body read in full (a vendor reads nothing else of it).
#[derive(Debug)]
pub struct Reply {
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

/// A client with `redirects` as its redirect policy (rustls, connection pooling).
fn client_with(redirects: reqwest::redirect::Policy) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("awareness-exporter/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        // No Referer to leak a path (with its query) to wherever a redirect points.
        .referer(false)
        .redirect(redirects)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// The shared HTTP client. It follows a redirect only within the same origin (scheme, host,
/// port) and at most [`MAX_REDIRECTS`] times; why it refused one reaches logs, so the text
/// names no URL.
pub fn client() -> reqwest::Client {
    client_with(reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(|u| u.origin());
        if first != Some(attempt.url().origin()) {
            let why =
                "redirect to another host refused (credentials never leave the vendor's host)";
            attempt.error(why)
        } else if attempt.previous().len() > MAX_REDIRECTS {
            let why = format!("redirect loop (more than {MAX_REDIRECTS} redirects)");
            attempt.error(why)
        } else {
            attempt.follow()
        }
    }))
}

/// The client for token requests: it follows no redirect at all, since the request body holds
/// the password or client secret. Shared by every account.
fn token_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| client_with(reqwest::redirect::Policy::none()))
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
/// plain HTTP: no quota headers, error bodies not read, a 429 without `Retry-After` waits the
/// transport's own backoff. 401 and 403 always mean the credentials were refused (reason
/// `auth`), unless an error body says otherwise; token requests treat every other 4xx but 429
/// as `auth` too.
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

impl Scrub {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
        let mut needles = Vec::new();
        // Too short to be a secret worth a search (and would blank ordinary words).
        for s in secrets.into_iter().filter(|s| s.len() >= 4) {
            for encoded in [STANDARD.encode(s), URL_SAFE.encode(s)] {
                needles.push(encoded.trim_end_matches('=').to_string());
                needles.push(encoded);
            }
            // A form's encoding, and an encoder's that escapes every byte but letters and digits.
            needles.push(url::form_urlencoded::byte_serialize(s.as_bytes()).collect());
            needles.push(utf8_percent_encode(s, NON_ALPHANUMERIC).to_string());
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
        let redact = |out: String, n: &Zeroizing<String>| out.replace(n.as_str(), "[redacted]");
        self.needles.iter().fold(text.to_string(), redact)
    }
}

/// What a failed attempt leads to: nothing more, the transport's backoff, or a pause the
/// vendor asked for (which every request of the account keeps).
enum Next {
    Final,
    Backoff,
    Pause(Duration),
}

/// One account's view of the network.
pub struct Transport {
    client: reqwest::Client,
    stats: Arc<ApiStats>,
    poll: PollConfig,
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

impl Transport {
    /// The transport of one account: `poll`'s timeout, attempts, backoff, body cap and
    /// concurrency; `vendor`'s HTTP semantics; `scrub`'s secrets removed from every error.
    pub fn new(
        client: reqwest::Client,
        stats: Arc<ApiStats>,
        poll: PollConfig,
        global: Arc<Semaphore>,
        vendor: Arc<dyn VendorHttp>,
        scrub: Scrub,
    ) -> Self {
        Transport {
            permits: Semaphore::new(poll.concurrency.max(1)),
            client,
            stats,
            poll,
            global,
            paused_until: Mutex::new(None),
            deadline: Mutex::new(None),
            vendor,
            scrub,
            log_gate: Mutex::new((Instant::now(), 0, 0)),
        }
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn stats(&self) -> &Arc<ApiStats> {
        &self.stats
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
    /// `max_attempts` attempts, with every successful answer handed to `accept` (which may
    /// decode it): a [`Refusal`] that may pass (`again`) is retried like a 5xx, within the
    /// same attempts and deadline, so errors inside an HTTP 200 have the same one retry loop.
    /// `build` is called for every attempt, so per-request signatures and ids are fresh.
    pub async fn fetch<T, AF>(
        &self,
        endpoint: &'static str,
        build: impl Fn() -> RequestBuilder,
        accept: impl Fn(Reply) -> AF,
    ) -> Result<T, FetchError>
    where
        AF: Future<Output = Result<T, Refusal>>,
    {
        self.send(endpoint, false, &build, accept).await
    }

    /// [`fetch`](Self::fetch), and for a token request (`token_request`) every 4xx but 429 is
    /// an auth failure (OAuth2 servers answer a bad credential with 400 `invalid_grant` or
    /// `invalid_client`) and no redirect is followed.
    pub async fn send<T, AF>(
        &self,
        endpoint: &'static str,
        token_request: bool,
        build: &impl Fn() -> RequestBuilder,
        accept: impl Fn(Reply) -> AF,
    ) -> Result<T, FetchError>
    where
        AF: Future<Output = Result<T, Refusal>>,
    {
        let attempts = self.poll.max_attempts.max(1);
        let (mut attempt, mut refused_429) = (0, 0);
        loop {
            attempt += 1;
            let attempted = self.attempt(endpoint, token_request, build, &mut refused_429);
            let (mut e, next) = match attempted.await {
                Ok(reply) => match accept(reply).await {
                    Ok(t) => return Ok(t),
                    Err(r) if r.again => (r.error, Next::Backoff),
                    Err(r) => (r.error, Next::Final),
                },
                Err(failed) => failed,
            };
            e.message = self.scrub.text(&e.message);
            self.stats.failure(endpoint, e.reason);
            let plural = if attempt == 1 { "" } else { "s" };
            let giving_up = format!("giving up after {attempt} attempt{plural}");
            let wait = match next {
                Next::Final => {
                    self.log_attempt(endpoint, &e, &giving_up);
                    return Err(e);
                }
                Next::Backoff => self.backoff(attempt),
                Next::Pause(wait) => wait,
            };
            let shown = humantime::format_duration(Duration::from_millis(wait.as_millis() as u64));
            let deadline = *lock(&self.deadline);
            if attempt >= attempts || deadline.is_some_and(|d| Instant::now() + wait >= d) {
                let why = match attempt < attempts {
                    true => format!("not retried: waiting {shown} would outlast the poll's deadline (poll.deadline); "),
                    false => String::new(),
                };
                e.message = format!("{} ({why}after {attempt} attempt{plural})", e.message);
                self.log_attempt(endpoint, &e, &giving_up);
                return Err(e);
            }
            let retrying = format!("retrying in {shown}, attempt {} of {attempts}", attempt + 1);
            self.log_attempt(endpoint, &e, &retrying);
            match next {
                Next::Pause(_) => self.pause(wait),
                _ => tokio::time::sleep(wait).await,
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
        let base = self.poll.retry_backoff.as_secs_f64() * 2f64.powi(attempt as i32 - 1);
        let jitter = rand::thread_rng().gen_range(0.8..1.2);
        Duration::from_secs_f64((base * jitter).min(MAX_BACKOFF.as_secs_f64()))
    }

    fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut guard = lock(&self.paused_until);
        if guard.is_none_or(|u| u < until) {
            *guard = Some(until);
        }
    }

    /// One attempt, after any pause the vendor asked for, its own pacing and a request slot:
    /// the answer, or the error and what it leads to.
    async fn attempt(
        &self,
        endpoint: &'static str,
        token_request: bool,
        build: &impl Fn() -> RequestBuilder,
        refused_429: &mut u32,
    ) -> Result<Reply, (FetchError, Next)> {
        let paused_until = *lock(&self.paused_until);
        if let Some(until) = paused_until {
            tokio::time::sleep_until(until).await;
        }
        self.vendor
            .before_send()
            .await
            .map_err(|e| (e, Next::Final))?;
        let _permits = (self.permits.acquire().await, self.global.acquire().await);
        self.stats.request(endpoint);
        let (client, request) = build().build_split();
        // Token requests go through the client that follows no redirect.
        let client = token_request.then(token_client).unwrap_or(&client);
        let exchange = async {
            let response = client.execute(request.map_err(classify)?).await;
            let response = response.map_err(classify)?;
            let (status, headers) = (response.status(), response.headers().clone());
            let body = read_capped(response, self.poll.max_body_bytes).await?;
            Ok((status, headers, body))
        };
        // One deadline for the whole exchange: connecting, the headers and the body.
        let timeout = self.poll.timeout;
        let exchanged = tokio::time::timeout(timeout, exchange).await;
        let exchanged = exchanged.unwrap_or_else(|_| {
            let shown = humantime::format_duration(timeout);
            let message = format!("no answer within {shown} (poll.timeout)");
            Err(FetchError::new(FailureReason::Timeout, message))
        });
        let (status, headers, body) = exchanged.map_err(|e| {
            let retried = matches!(e.reason, FailureReason::Timeout | FailureReason::Connect);
            (e, if retried { Next::Backoff } else { Next::Final })
        })?;

        // Quota headers on every answer: stop before the vendor has to say 429.
        let reset = self.vendor.rate_limit_reset(&headers);
        let reset = reset.map(|d| d.min(MAX_RATE_LIMIT_WAIT));
        if let Some(reset) = reset.filter(|_| self.vendor.quota_exhausted(&headers)) {
            self.pause(reset);
        }
        if status.is_success() {
            return Ok(Reply { body });
        }
        let code = status.as_u16();
        let text = format!("HTTP {code} {}", status.canonical_reason().unwrap_or(""));
        let mut e = FetchError {
            status: Some(code),
            ..FetchError::new(FailureReason::Http, text.trim_end())
        };
        if code == 401 || code == 403 || (token_request && status.is_client_error()) {
            e.reason = FailureReason::Auth;
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            *refused_429 += 1;
            e.reason = FailureReason::RateLimited;
            e.message.push_str(": the vendor's rate limit was hit");
            let wait = retry_after(&headers).or(reset);
            let wait = wait.or_else(|| self.vendor.rate_limited_wait(*refused_429));
            return Err((e, wait.map_or(Next::Backoff, Next::Pause)));
        }
        // A vendor error with a reason of its own is final.
        let mut own_reason = false;
        if let Some(v) = self.vendor.read_error(code, &body) {
            e.message = format!("{}: {}", e.message, v.detail);
            e.retry = v.retry;
            own_reason = v.reason.is_some();
            e.reason = v.reason.unwrap_or(e.reason);
        } else if status.is_redirection() {
            // Only a redirect the client refused to follow gets here (a token request's, or
            // one without a usable Location).
            e.reason = FailureReason::Redirect;
            e.message.push_str(": redirect not followed");
            if token_request {
                e.message
                    .push_str(" (token requests never follow redirects)");
            }
        }
        let retried = status.is_server_error() && !own_reason;
        Err((e, if retried { Next::Backoff } else { Next::Final }))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Maps a reqwest error to a reason and a short, URL-free message in plain words: the
/// innermost cause ("connection refused", "invalid peer certificate: UnknownIssuer") rather
/// than the library's chain ("error sending request: client error (Connect): tcp connect
/// error: Connection refused (os error 111)").
fn classify(e: reqwest::Error) -> FetchError {
    let e = e.without_url();
    let chain: Vec<String> =
        std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .map(|e| e.to_string())
            .collect();
    // The innermost cause, without Rust's " (os error 111)", starting in lower case.
    let last = chain
        .last()
        .map_or("", |m| m.split(" (os error").next().unwrap_or(m));
    let mut chars = last.trim().chars();
    let cause: String = chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default();
    let (reason, message) = if e.is_redirect() {
        (FailureReason::Redirect, cause)
    } else if is_tls_failure(&e) {
        (FailureReason::Tls, format!("TLS handshake failed: {cause}"))
    } else if e.is_timeout() {
        (FailureReason::Timeout, format!("timed out: {cause}"))
    } else if chain.iter().any(|m| m.contains("dns error")) {
        let message = format!("cannot resolve the host name: {cause}");
        (FailureReason::Connect, message)
    } else if e.is_connect() {
        (FailureReason::Connect, format!("cannot connect: {cause}"))
    } else {
        (FailureReason::Connect, format!("request failed: {cause}"))
    };
    FetchError::new(reason, message)
}

/// Whether a rustls error (a refused certificate, a failed handshake) is in the error's cause
/// chain. rustls errors travel inside `io::Error`s, whose `source()` skips the wrapped error,
/// so both links are looked at.
fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let wrapped = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref());
    e.is::<tokio_rustls::rustls::Error>()
        || wrapped.is_some_and(|inner| is_tls_failure(inner))
        || e.source().is_some_and(is_tls_failure)
}

/// The body, refused (reason `decode`) once it is larger than `cap`: at once when its announced
/// length is, and never buffered past `cap` when it announces none.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Bytes, FetchError> {
    let too_large = || {
        let message = format!("response body larger than the {cap}-byte limit");
        FetchError::new(FailureReason::Decode, message)
    };
    let announced = response.content_length().unwrap_or(0);
    if announced > cap as u64 {
        return Err(too_large());
    }
    // Announced lengths are capped above, so reserving them is bounded.
    let mut buf = BytesMut::with_capacity(announced as usize);
    while let Some(chunk) = response.chunk().await.map_err(classify)? {
        if buf.len() + chunk.len() > cap {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs; treated as absent).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = value.trim().parse().ok()?;
    let max = MAX_RATE_LIMIT_WAIT.as_secs_f64();
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(max)))
}
