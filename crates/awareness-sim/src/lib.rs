//! Simulated vendor servers, one module per platform awareness-exporter supports, speaking the
//! vendors' wire protocols, backed by a seeded [`Population`]. Used by awareness-exporter's `--demo`
//! (feature `demo`), its tests and its benchmarks. Every server listens on
//! `127.0.0.1:<random port>` and stops when its [`SimServer`] is dropped.
//!
//! A vendor is one module here (`pub mod <vendor>;` below) implementing [`Simulator`] (its
//! routes and its config keys), which gives it [`start`] (the server) and [`Tenant::start`]
//! (the server and its exporter config table), with a `demo_tenant`, plus one line in
//! [`demo::Demo::start_sized`]. The shared machinery: the
//! listener with connection refusal ([`spawn`]), responses, bearer tokens, fault control
//! ([`control`], its injection API behind the `faults` feature) and recorded answers
//! ([`replay`]).

mod answer_cache;
pub mod control;
pub mod demo;
pub mod population;
pub mod replay;
pub mod tenant;

// The vendors.
pub mod cyberpilot;
pub mod defender;
pub mod knowbe4;
pub mod mimecast;
pub mod proofpoint;

pub use control::{Control, Fault};
pub use cyberpilot::{CyberPilotOptions, CyberPilotSim};
pub use mimecast::{MimecastOptions, MimecastSim, SimAuth};
pub use population::{Population, SimUser};
pub use tenant::Tenant;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{HeaderValue, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running simulated server on `127.0.0.1:<random port>`; stops when dropped.
#[derive(Debug)]
pub struct SimServer {
    pub addr: SocketAddr,
    pub control: Arc<Control>,
    stopped: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl SimServer {
    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A TOML basic string (its escapes are JSON's), for config text pointing at a simulator.
pub fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.task.abort();
    }
}

/// Bind `127.0.0.1:0` and serve `router` until the returned [`SimServer`] is dropped.
pub(crate) async fn spawn(router: Router, control: Arc<Control>) -> io::Result<SimServer> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    control.attach(addr);
    let stopped = Arc::new(AtomicBool::new(false));
    let guarded = GuardedListener {
        inner: Some(listener),
        addr,
        control: Arc::clone(&control),
        stopped: Arc::clone(&stopped),
    };
    let router = router.layer(axum::middleware::from_fn_with_state(
        Arc::clone(&control),
        answer_cache::replay,
    ));
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(guarded, router).await {
            tracing::warn!(error = %e, "simulated server stopped");
        }
    });
    Ok(SimServer {
        addr,
        control,
        stopped,
        task,
    })
}

/// A vendor's simulator as the shared start-up sees it. A vendor implements this (its routes and
/// its config keys) and gets [`start`] and [`Tenant::start`].
pub trait Simulator {
    /// The exporter's `platform` label and `[[table]]` for this vendor.
    const PLATFORM: &'static str;
    type Options: Clone;
    /// The routes of a server for `population`, counting and faulting its requests through
    /// `control`.
    fn router(population: Arc<Population>, options: Self::Options, control: Arc<Control>)
        -> Router;
    /// The `[[<platform>]]` table head polling `account` on `server`: the account, its URL and
    /// the credentials of `options`, every line ending in a newline.
    fn account_keys(options: &Self::Options, server: &SimServer, account: &str) -> String;
    /// The faults ([`Fault`]) this simulator answers besides [`COMMON_FAULTS`], each with the
    /// failure `reason` label the exporter must report for it: the fault matrix
    /// (tests/it/faults.rs) runs both against every vendor's [`fault_tenants`] entry without
    /// naming the vendor.
    const FAULTS: &'static [(Fault, &'static str)];
}

/// The faults every simulator answers, and the same way: 5xx bursts, slow answers, cut and
/// malformed bodies, pages that never end.
pub const COMMON_FAULTS: [(Fault, &str); 5] = [
    (
        Fault::Status {
            code: 503,
            times: 1000,
        },
        "http",
    ),
    (Fault::Slow(Duration::from_millis(1200)), "timeout"),
    (Fault::Truncated, "decode"),
    (Fault::Malformed, "decode"),
    (Fault::EndlessPaging, "decode"),
];

/// One small tenant of every vendor for the fault matrix, polled with the keys that make it
/// fast (no real-time pacing) and carrying its simulator's [`Simulator::FAULTS`]. A new vendor
/// adds one line.
pub async fn fault_tenants() -> io::Result<Vec<Tenant>> {
    Ok(vec![
        cyberpilot::fault_tenant().await?,
        mimecast::fault_tenant().await?,
        knowbe4::fault_tenant().await?,
        defender::fault_tenant().await?,
        proofpoint::fault_tenant().await?,
    ])
}

/// Starts vendor `S`'s simulator for `population` on `127.0.0.1:<random port>`.
pub async fn start<S: Simulator>(
    population: Arc<Population>,
    options: S::Options,
) -> io::Result<SimServer> {
    serve(|control| S::router(population, options, control)).await
}

/// Serves the router `routes` builds around a fresh [`Control`] (see [`spawn`]).
pub(crate) async fn serve(routes: impl FnOnce(Arc<Control>) -> Router) -> io::Result<SimServer> {
    let control = Arc::new(Control::new());
    spawn(routes(Arc::clone(&control)), control).await
}

/// How often a refusing listener and idle connections look at the refuse flag again.
const REFUSE_CHECK: Duration = Duration::from_millis(20);

/// Accepts connections. While the control refuses, the listening socket is closed (new
/// connections get "connection refused") and bound again to the same port afterwards.
struct GuardedListener {
    inner: Option<TcpListener>,
    addr: SocketAddr,
    control: Arc<Control>,
    stopped: Arc<AtomicBool>,
}

impl GuardedListener {
    fn refusing(&self) -> bool {
        self.control.refusing() || self.stopped.load(Ordering::SeqCst)
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = GuardedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if self.refusing() {
                self.inner = None;
                tokio::time::sleep(REFUSE_CHECK).await;
                continue;
            }
            if let Some(std_listener) = self.control.take_rebound() {
                if let Ok(l) = TcpListener::from_std(std_listener) {
                    self.inner = Some(l);
                }
            }
            let Some(listener) = &self.inner else {
                match TcpListener::bind(self.addr).await {
                    Ok(l) => self.inner = Some(l),
                    Err(_) => tokio::time::sleep(REFUSE_CHECK).await,
                }
                continue;
            };
            // accept() is cancel safe: time out regularly to notice the refuse flag.
            match tokio::time::timeout(REFUSE_CHECK, listener.accept()).await {
                Err(_elapsed) => {}
                Ok(Ok((stream, addr))) => {
                    if self.refusing() {
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let io = GuardedIo {
                        inner: stream,
                        control: Arc::clone(&self.control),
                        stopped: Arc::clone(&self.stopped),
                        tick: Box::pin(tokio::time::sleep(REFUSE_CHECK)),
                    };
                    return (io, addr);
                }
                Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// A connection that fails (and so is closed without an answer) as soon as the control
/// refuses or the server stopped, including kept-alive connections waiting for a request.
struct GuardedIo {
    inner: TcpStream,
    control: Arc<Control>,
    stopped: Arc<AtomicBool>,
    tick: Pin<Box<tokio::time::Sleep>>,
}

impl GuardedIo {
    fn refusing(&self) -> bool {
        self.control.refusing() || self.stopped.load(Ordering::SeqCst)
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.refusing() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "simulated server refuses connections",
                )));
            }
            if let Poll::Ready(r) = Pin::new(&mut this.inner).poll_read(cx, buf) {
                return Poll::Ready(r);
            }
            // Waiting for data: wake up regularly to look at the flags again.
            match this.tick.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let next = tokio::time::Instant::now() + REFUSE_CHECK;
                    this.tick.as_mut().reset(next);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A response with a body and a content type.
pub(crate) fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    if !content_type.is_empty() {
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    resp
}

pub(crate) fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    respond(status, "application/json", body)
}

pub(crate) fn status_of(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The HTML answer of [`Fault::Malformed`].
pub(crate) fn malformed_response() -> Response {
    respond(StatusCode::OK, "text/html", b"<html>oops</html>".to_vec())
}

/// Serialize a successful data answer, applying [`Fault::HugeBody`] and [`Fault::Truncated`].
pub(crate) fn data_response(control: &Control, mut value: serde_json::Value) -> Response {
    let mut body = serde_json::to_vec(&value).unwrap_or_else(|_| b"{}".to_vec());
    if let Some(min) = control.huge_body() {
        if body.len() < min {
            if let Some(obj) = value.as_object_mut() {
                let pad = "x".repeat(min - body.len());
                obj.insert("_padding".to_string(), serde_json::Value::String(pad));
                body = serde_json::to_vec(&value).unwrap_or(body);
            }
        }
    }
    if control.truncated() {
        body.truncate(body.len() / 2);
    }
    respond(StatusCode::OK, "application/json", body)
}

/// Answers with `answer`, no sooner than the configured latency (every request) plus
/// [`Fault::Slow`] (data requests) after the request arrived. The answer is built inside that
/// time, as on a real server, where building it is part of the latency a client sees: the
/// simulator's own JSON work then does not stretch a benchmark's latency bound. Timed by tokio's
/// clock, so that a test with paused time waits for none of it.
pub(crate) async fn after_latency(
    control: &Control,
    data_request: bool,
    answer: impl Future<Output = Response>,
) -> Response {
    let arrived = tokio::time::Instant::now();
    let mut d = control.latency();
    if data_request {
        d += control.slow_delay();
    }
    let response = answer.await;
    if !d.is_zero() {
        sleep_until_precisely(arrived + d).await;
    }
    response
}

/// Sleeps until `deadline` within tens of microseconds. tokio's timer ticks once a millisecond
/// and rounds a deadline up to the next tick (a 5 ms latency became 5–6 ms), so the last
/// millisecond is slept by a thread of the blocking pool, whose sleep is precise.
async fn sleep_until_precisely(deadline: tokio::time::Instant) {
    if let Some(coarse) = deadline.checked_sub(Duration::from_millis(1)) {
        if coarse > tokio::time::Instant::now() {
            tokio::time::sleep_until(coarse).await;
        }
    }
    let rest = deadline.saturating_duration_since(tokio::time::Instant::now());
    if !rest.is_zero() {
        // A failed blocking task only ends the wait early.
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

/// A JWT-looking token (`header.payload.signature`, base64url) with `sub` and `exp`.
pub(crate) fn jwt_like(sub: &str, exp: i64, iat: i64) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "sim-1"});
    let payload = serde_json::json!({
        "sub": sub,
        "exp": exp,
        "iat": iat,
        "iss": "https://auth.sim.invalid/",
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    let mut sig = Vec::with_capacity(64);
    sig.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    sig.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    sig.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    sig.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

/// Issued bearer tokens with their expiry and the control's token generation.
#[derive(Default)]
pub(crate) struct TokenStore {
    tokens: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, u64)>>,
}

impl TokenStore {
    pub(crate) fn insert(&self, token: String, lifetime: Duration, generation: u64) {
        let now = std::time::Instant::now();
        let mut map = self
            .tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (exp, g)| *exp > now && *g == generation);
        }
        map.insert(token, (now + lifetime, generation));
    }

    /// Issues `token` for `lifetime_secs` and answers as an OAuth2 token endpoint does:
    /// `access_token`, `token_type` and `expires_in`, plus the vendor's `extra` fields.
    pub(crate) fn grant(
        &self,
        control: &Control,
        token: String,
        lifetime_secs: u64,
        extra: &[(&str, &str)],
    ) -> Response {
        self.insert(
            token.clone(),
            Duration::from_secs(lifetime_secs),
            control.token_generation(),
        );
        let mut body = serde_json::json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": lifetime_secs,
        });
        for (key, value) in extra {
            body[*key] = serde_json::Value::from(*value);
        }
        json_response(StatusCode::OK, &body)
    }

    pub(crate) fn valid(&self, token: &str, generation: u64) -> bool {
        let map = self
            .tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        matches!(map.get(token), Some((exp, g)) if *g == generation && std::time::Instant::now() < *exp)
    }
}

/// The bearer token of an `Authorization` header (scheme matched case-insensitively).
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}
