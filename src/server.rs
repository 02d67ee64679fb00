//! The HTTP server: `/metrics`, the landing page, health, readiness and reload.
//!
//! Every answer is built from the store; nothing here talks to a vendor. hyper and hyper-util
//! do HTTP/1.1 and HTTP/2: the HTTP/1.1 header-read timeout (which also ends idle keep-alive
//! waits), HTTP/2 keep-alive pings and the stream cap. What they cannot do is hand-written in
//! [`crate::connections`] (see there, and the tests that keep each rule): timing every
//! connection from accept, progress per request, and shedding when the server is full.
//! `/metrics` bodies are shared buffers ([`crate::scrape_body`]); basic auth never queues
//! bcrypt work ([`crate::web::Access`]).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::connections::{
    Connections, InFlight, Metered, Order, Registration, Timeouts, CHUNK, STALLED,
};
use crate::exposition::Format;
use crate::model::ReloadError;
use crate::scrape_body::ScrapeBodies;
use crate::store::Store;
use crate::web::{Access, Verdict, WebSettings};

pub use crate::exposition::OPENMETRICS;

/// Reloads the configuration; `Err` says why the new one was refused (its text is the answer).
pub type ReloadFn = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<String, ReloadError>> + Send>> + Send + Sync,
>;

/// New connections that may wait for a slot when every connection is busy.
pub const WAITING_ROOM: usize = 64;

/// Concurrent HTTP/2 streams per connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 32;

/// How often a failing `accept` is logged.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);

/// What a connection ordered to close (or the server shutting down) gives its requests.
const GRACE: Duration = Duration::from_secs(10);

pub struct ServerSettings {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub send_timeout: Duration,
    pub web: Arc<WebSettings>,
}

#[derive(Clone)]
pub struct App {
    pub store: Arc<Store>,
    pub reload: ReloadFn,
    /// Shared `/metrics` bodies; [`App::new`] makes them from the store.
    pub(crate) bodies: Arc<ScrapeBodies>,
    /// `--web.enable-lifecycle`: `/-/reload` over HTTP.
    pub lifecycle: bool,
    /// How long a request body (of `/-/reload`) may take to arrive.
    pub body_timeout: Duration,
}

impl App {
    pub fn new(store: Arc<Store>, reload: ReloadFn, lifecycle: bool) -> App {
        App {
            bodies: Arc::new(ScrapeBodies::new(store.clone())),
            store,
            reload,
            lifecycle,
            body_timeout: Duration::from_secs(10),
        }
    }
}

/// A response body made of shared buffers (see [`crate::scrape_body`]): sending it never copies
/// them. Handed to hyper in pieces of at most [`CHUNK`] bytes (slices of the same buffers), so
/// that its request sees progress as the client reads.
#[derive(Debug, Default)]
pub struct Body {
    chunks: VecDeque<Bytes>,
    /// Marks the request in flight until the answer is sent (or dropped).
    in_flight: Option<InFlight>,
}

impl Body {
    fn new(chunks: impl IntoIterator<Item = Bytes>) -> Body {
        Body {
            chunks: chunks.into_iter().filter(|c| !c.is_empty()).collect(),
            in_flight: None,
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(f) = &self.in_flight {
            f.touch();
        }
        let Some(mut chunk) = self.chunks.pop_front() else {
            self.in_flight = None;
            return Poll::Ready(None);
        };
        if chunk.len() > CHUNK {
            let rest = chunk.split_off(CHUNK);
            self.chunks.push_front(rest);
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum())
    }
}

fn answer(status: StatusCode, kind: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Body::new([body.into()]));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    answer(status, "text/plain; charset=utf-8", body)
}

fn with(mut r: Response<Body>, name: header::HeaderName, value: &'static str) -> Response<Body> {
    r.headers_mut()
        .insert(name, HeaderValue::from_static(value));
    r
}

fn accepts_gzip(req: &Request<Incoming>) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.trim().split(';');
            let name = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !q_zero
        })
}

impl App {
    /// Answers one request from `peer`, checked against `access` (the users in force).
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        access: &Arc<Access>,
        peer: IpAddr,
    ) -> Response<Body> {
        match access.check(req.headers(), peer).await {
            Verdict::Allowed => {}
            Verdict::Denied => {
                let r = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
                let realm = "Basic realm=\"awareness-exporter\"";
                return with(r, header::WWW_AUTHENTICATE, realm);
            }
            Verdict::Busy => {
                let msg = "Too many password checks at once; retry\n";
                let r = text(StatusCode::TOO_MANY_REQUESTS, msg);
                return with(r, header::RETRY_AFTER, "1");
            }
        }
        let get = matches!(*req.method(), Method::GET | Method::HEAD);
        let post = matches!(*req.method(), Method::POST | Method::PUT);
        match req.uri().path() {
            "/metrics" if get => self.metrics(&req).await,
            "/" if get => {
                let html = crate::landing::render(&self.store, SystemTime::now());
                answer(StatusCode::OK, "text/html; charset=utf-8", html)
            }
            "/-/healthy" if get => text(StatusCode::OK, "Healthy\n"),
            "/-/ready" if get && self.store.ready() => text(StatusCode::OK, "Ready\n"),
            "/-/ready" if get => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not ready: first polls still running\n",
            ),
            "/-/reload" if post && !self.lifecycle => text(
                StatusCode::FORBIDDEN,
                "Lifecycle API is not enabled (start with --web.enable-lifecycle, or send SIGHUP)\n",
            ),
            "/-/reload" if post => self.reload(req).await,
            "/metrics" | "/" | "/-/healthy" | "/-/ready" => {
                let r = text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed\n");
                with(r, header::ALLOW, "GET, HEAD")
            }
            "/-/reload" => {
                let r = text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed\n");
                with(r, header::ALLOW, "POST, PUT")
            }
            _ => text(StatusCode::NOT_FOUND, "Not found\n"),
        }
    }

    async fn reload(&self, req: Request<Incoming>) -> Response<Body> {
        // The body is ignored, but read (bounded in size and time) so keep-alive stays healthy.
        let body = Limited::new(req.into_body(), 64 * 1024).collect();
        if tokio::time::timeout(self.body_timeout, body).await.is_err() {
            return text(StatusCode::REQUEST_TIMEOUT, "Request body too slow\n");
        }
        match (self.reload)().await {
            Ok(msg) => text(StatusCode::OK, format!("{msg}\n")),
            Err(reason) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to reload config: {reason}\n"),
            ),
        }
    }

    /// The shared body in the negotiated format, gzip if the client accepts it.
    async fn metrics(&self, req: &Request<Incoming>) -> Response<Body> {
        let accept = req.headers().get(header::ACCEPT);
        let format = Format::negotiate(accept.and_then(|v| v.to_str().ok()));
        let now = SystemTime::now();
        let body = self.bodies.body(format, accepts_gzip(req), now).await;
        let r = Response::new(Body::new(body.chunks));
        let r = with(r, header::CONTENT_TYPE, format.content_type());
        let r = with(r, header::VARY, "Accept, Accept-Encoding");
        match body.gzip {
            true => with(r, header::CONTENT_ENCODING, "gzip"),
            false => r,
        }
    }
}

/// Serves until `shutdown` resolves, then lets open requests finish (up to [`GRACE`]).
pub async fn serve(
    listener: TcpListener,
    app: App,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        // A peer that does not answer a ping within header_read_timeout is gone.
        .keep_alive_interval(settings.header_read_timeout)
        .keep_alive_timeout(settings.header_read_timeout);
    let builder = Arc::new(builder);
    let conns = Connections::new(
        settings.max_connections,
        Timeouts {
            header_read: settings.header_read_timeout,
            idle: settings.idle_timeout,
            send: settings.send_timeout,
        },
    );
    let sweeper = tokio::spawn(conns.clone().sweep());
    let watcher = tokio::spawn(settings.web.clone().watch());
    let mut accept_warned: Option<tokio::time::Instant> = None;
    let waiting = Arc::new(AtomicUsize::new(0));
    let app = App {
        body_timeout: settings.header_read_timeout,
        ..app
    };
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors, most likely: say so (once per 10 s), and wait
                    // instead of spinning.
                    if accept_warned.is_none_or(|t| t.elapsed() >= ACCEPT_WARN_EVERY) {
                        tracing::warn!(error = %e, "cannot accept connections");
                        accept_warned = Some(tokio::time::Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let registration = conns.admit();
        if registration.is_none() && waiting.load(Ordering::Relaxed) >= WAITING_ROOM {
            tracing::debug!(%peer, "connection limit reached and every connection busy");
            continue;
        }
        let (app, builder, web) = (app.clone(), builder.clone(), settings.web.clone());
        let (conns, waiting) = (conns.clone(), waiting.clone());
        tokio::spawn(async move {
            let registration = match registration {
                Some(r) => r,
                None => {
                    // Every connection is busy and progressing: wait for one to stall or end.
                    waiting.fetch_add(1, Ordering::Relaxed);
                    let mut admitted = None;
                    for _ in 0..4 {
                        tokio::time::sleep(STALLED / 2).await;
                        admitted = conns.admit();
                        if admitted.is_some() {
                            break;
                        }
                    }
                    waiting.fetch_sub(1, Ordering::Relaxed);
                    let Some(r) = admitted else {
                        tracing::debug!(%peer, "connection limit reached; closing the new one");
                        return;
                    };
                    r
                }
            };
            connection(stream, peer.ip(), registration, app, &builder, web).await;
        });
    }
    drop(listener);
    conns.close_all(Order::Close);
    let deadline = tokio::time::Instant::now() + GRACE;
    while !conns.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !conns.is_empty() {
        tracing::warn!("connections still open after 10s; closing");
        conns.close_all(Order::Drop);
    }
    sweeper.abort();
    watcher.abort();
}

/// A connection's byte stream, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One connection, from accept to close: TLS handshake (if configured), then HTTP/1.1 or
/// HTTP/2, until it ends or is ordered to close.
async fn connection(
    stream: TcpStream,
    peer: IpAddr,
    registration: Registration,
    app: App,
    builder: &auto::Builder<TokioExecutor>,
    web: Arc<WebSettings>,
) {
    let conn = registration.conn.clone();
    let tls = web.current().tls.clone();
    let io: Box<dyn Io> = match tls {
        None => Box::new(stream),
        // The sweeper's "no request since accept" rule covers the handshake.
        Some(acceptor) => tokio::select! {
            r = acceptor.accept(stream) => match r {
                Ok(s) => Box::new(s),
                Err(e) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
            },
            _ = conn.ordered() => return,
        },
    };
    let service_conn = conn.clone();
    let service = hyper::service::service_fn(move |req| {
        let in_flight = InFlight::start(&service_conn);
        let app = app.clone();
        // The users in force now, not those of when the connection was accepted.
        let access = web.current().access.clone();
        async move {
            let mut response = app.handle(req, &access, peer).await;
            response.body_mut().in_flight = Some(in_flight);
            Ok::<_, Infallible>(response)
        }
    });
    let io = Metered::new(io, conn.clone());
    let http = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(http);
    tokio::select! {
        r = http.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            return;
        }
        _ = conn.ordered() => {}
    }
    if conn.order() == Order::Close {
        // What is in flight gets GRACE to finish (HTTP/2: after a GOAWAY), unless dropped.
        http.as_mut().graceful_shutdown();
        let dropped = async {
            while conn.order() != Order::Drop {
                conn.ordered().await;
            }
        };
        tokio::select! {
            _ = http => {}
            _ = tokio::time::sleep(GRACE) => {}
            _ = dropped => {}
        }
    }
}
