//! The HTTP server: `/metrics`, the landing page, health, readiness and reload.
//!
//! Every answer is built from the store; nothing here talks to a vendor. Connections are timed
//! from accept and shed when the server is full ([`crate::connections`]); `/metrics` bodies are
//! shared buffers ([`crate::scrape_body`]); basic auth never queues bcrypt work
//! ([`crate::web::Access`]).

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

use crate::app::ReloadError;
use crate::connections::{
    Connections, InFlight, Metered, Order, Registration, Timeouts, CHUNK, STALLED,
};
use crate::exposition::Format;
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

/// How often a failing `accept` is logged.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);

/// Concurrent HTTP/2 streams per connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 32;

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
    pub bodies: Arc<ScrapeBodies>,
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
/// them.
/// Handed to hyper in pieces of at most [`CHUNK`] bytes (slices of the same buffers), so that
/// the connection sees progress as the client reads.
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

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Body::new([body.into()]));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// 405 with the `Allow` header RFC 9110 requires.
fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed\n");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
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
                let mut r = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"awareness-exporter\""),
                );
                return r;
            }
            Verdict::Busy => {
                let mut r = text(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many password checks at once; retry\n",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return r;
            }
        }
        let path = req.uri().path().to_string();
        match (req.method(), path.as_str()) {
            (&Method::GET | &Method::HEAD, "/metrics") => self.metrics(&req).await,
            (&Method::GET | &Method::HEAD, "/") => self.landing(),
            (&Method::GET | &Method::HEAD, "/-/healthy") => text(StatusCode::OK, "Healthy\n"),
            (&Method::GET | &Method::HEAD, "/-/ready") => {
                if self.store.ready() {
                    text(StatusCode::OK, "Ready\n")
                } else {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Not ready: first polls still running\n",
                    )
                }
            }
            (&Method::POST | &Method::PUT, "/-/reload") if !self.lifecycle => text(
                StatusCode::FORBIDDEN,
                "Lifecycle API is not enabled (start with --web.enable-lifecycle, or send SIGHUP)\n",
            ),
            (&Method::POST | &Method::PUT, "/-/reload") => {
                // The body is ignored, but read (bounded in size and time) so keep-alive stays
                // healthy.
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
            (_, "/metrics" | "/" | "/-/healthy" | "/-/ready") => method_not_allowed("GET, HEAD"),
            (_, "/-/reload") => method_not_allowed("POST, PUT"),
            _ => text(StatusCode::NOT_FOUND, "Not found\n"),
        }
    }

    /// The shared body in the negotiated format, gzip if the client accepts it.
    async fn metrics(&self, req: &Request<Incoming>) -> Response<Body> {
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        let format = Format::negotiate(accept);
        let body = self
            .bodies
            .body(format, accepts_gzip(req), SystemTime::now())
            .await;
        let gzipped = body.gzip;
        let mut r = Response::new(Body::new(body.chunks));
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        h.insert(
            header::VARY,
            HeaderValue::from_static("Accept, Accept-Encoding"),
        );
        if gzipped {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        r
    }

    fn landing(&self) -> Response<Body> {
        let now = SystemTime::now();
        let html = crate::landing::render(&self.store, now);
        let mut r = Response::new(Body::new([Bytes::from(html)]));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        r
    }
}

/// Serves until `shutdown` resolves, then lets open requests finish (up to 10 s).
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
        let registration = match conns.admit() {
            Some(r) => Some(r),
            None if waiting.load(Ordering::Relaxed) < WAITING_ROOM => None,
            None => {
                tracing::debug!(peer = %peer, "connection limit reached and every connection busy; closing the new one");
                continue;
            }
        };
        let app = app.clone();
        let builder = builder.clone();
        let web = settings.web.clone();
        let conns = conns.clone();
        let waiting = waiting.clone();
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
                    match admitted {
                        Some(r) => r,
                        None => {
                            tracing::debug!(peer = %peer, "connection limit reached; closing the new one");
                            return;
                        }
                    }
                }
            };
            connection(stream, peer.ip(), registration, app, builder, web).await;
            tracing::trace!(peer = %peer, "connection closed");
        });
    }
    drop(listener);
    conns.close_all(Order::Close);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
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

/// One connection, from accept to close: TLS handshake (if configured), then HTTP/1.1 or
/// HTTP/2, until it ends or is ordered to close.
async fn connection(
    stream: TcpStream,
    peer: IpAddr,
    registration: Registration,
    app: App,
    builder: Arc<auto::Builder<TokioExecutor>>,
    web: Arc<WebSettings>,
) {
    let conn = registration.conn.clone();
    let tls = web.current().tls.clone();
    match tls {
        None => drive(stream, peer, &registration, app, &builder, web).await,
        Some(acceptor) => {
            let handshake = acceptor.accept(stream);
            let tls = tokio::select! {
                r = handshake => match r {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                },
                // The sweeper's "no request since accept" rule covers the handshake.
                _ = conn.ordered() => return,
            };
            drive(tls, peer, &registration, app, &builder, web).await
        }
    }
}

async fn drive<I>(
    io: I,
    peer: IpAddr,
    registration: &Registration,
    app: App,
    builder: &auto::Builder<TokioExecutor>,
    web: Arc<WebSettings>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = registration.conn.clone();
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
    let mut hard_stop: Option<tokio::time::Instant> = None;
    loop {
        if conn.order() == Order::Drop {
            return;
        }
        let grace = async {
            match hard_stop {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = http.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = conn.ordered() => {
                if conn.order() == Order::Close && hard_stop.is_none() {
                    http.as_mut().graceful_shutdown();
                    // What is in flight gets the send timeout's worth of time to finish.
                    hard_stop = Some(tokio::time::Instant::now() + Duration::from_secs(10));
                }
            }
            _ = grace => return,
        }
    }
}
