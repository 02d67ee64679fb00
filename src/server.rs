//! The HTTP server: `/metrics`, the landing page, health, readiness and reload.
//!
//! Every answer is built from the store; nothing here talks to a vendor. hyper and hyper-util
//! do HTTP/1.1 and HTTP/2: the HTTP/1.1 header-read timeout (which also ends idle keep-alive
//! waits), HTTP/2 keep-alive pings and the stream cap; `tokio-io-timeout` drops a connection
//! whose socket refuses writes for `send_timeout`. What they cannot do is hand-written in
//! [`crate::connections`] (see there, and the tests that keep each rule): timing every
//! connection from accept, progress per request, and shedding when the server is full.
//! `/metrics` bodies are shared buffers ([`crate::scrape_body`]); basic auth never queues
//! bcrypt work ([`crate::web::Access`]).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio_io_timeout::TimeoutStream;
use tokio_util::either::Either;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

use crate::connections::{Conn, Connections, InFlight, Order, CHUNK};
use crate::exposition::{accepts_gzip, Format};
use crate::model::ReloadError;
use crate::scrape_body::ScrapeBodies;
use crate::store::Store;
use crate::web::{Verdict, WebSettings};

/// Reloads the configuration; `Err` says why the new one was refused (its text is the answer).
pub(crate) type ReloadFn = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<String, ReloadError>> + Send>> + Send + Sync,
>;

pub(crate) use crate::connections::ServerSettings;

/// Concurrent HTTP/2 streams per connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 32;

/// How often a failing `accept` is logged.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);

/// What a connection ordered to close (or the server shutting down) gives its requests.
const GRACE: Duration = Duration::from_secs(10);

/// What serves the endpoints; cloned into every connection.
#[derive(Clone)]
pub(crate) struct App {
    store: Arc<Store>,
    reload: ReloadFn,
    bodies: Arc<ScrapeBodies>,
    config: Arc<ServerSettings>,
    web: Arc<WebSettings>,
}

impl App {
    pub(crate) fn new(
        store: Arc<Store>,
        reload: ReloadFn,
        config: ServerSettings,
        web: Arc<WebSettings>,
    ) -> App {
        App {
            bodies: Arc::new(ScrapeBodies::new(store.clone())),
            store,
            reload,
            config: Arc::new(config),
            web,
        }
    }
}

/// A response body of shared buffers (see [`crate::scrape_body`]), never copied: handed to
/// hyper in slices of at most [`CHUNK`] bytes, so that its request sees progress as the client
/// reads. It marks its request in flight until hyper drops it (sent, or the request dropped:
/// hyper drops a body once it has handed on its last slice).
struct Body {
    chunks: VecDeque<Bytes>,
    in_flight: InFlight,
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let Some(chunk) = self.chunks.front_mut() else {
            return Poll::Ready(None);
        };
        let slice = chunk.split_to(chunk.len().min(CHUNK));
        if chunk.is_empty() {
            self.chunks.pop_front();
        }
        self.in_flight.touch();
        Poll::Ready(Some(Ok(Frame::data(slice))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum())
    }
}

type Answer = Response<Vec<Bytes>>;

fn answer(status: StatusCode, kind: &'static str, chunks: Vec<Bytes>) -> Answer {
    let mut r = Response::new(chunks);
    *r.status_mut() = status;
    with(r, header::CONTENT_TYPE, kind)
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Answer {
    answer(status, "text/plain; charset=utf-8", vec![body.into()])
}

fn with(mut r: Answer, name: HeaderName, value: &'static str) -> Answer {
    r.headers_mut()
        .insert(name, HeaderValue::from_static(value));
    r
}

impl App {
    /// Answers one request from `peer`, checked against the users in force now (not those of
    /// when its connection was accepted).
    async fn handle(&self, req: Request<Incoming>, peer: IpAddr) -> Answer {
        let access = self.web.current().access.clone();
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
                answer(StatusCode::OK, "text/html; charset=utf-8", vec![html.into()])
            }
            "/-/healthy" if get => text(StatusCode::OK, "Healthy\n"),
            "/-/ready" if get && self.store.ready() => text(StatusCode::OK, "Ready\n"),
            "/-/ready" if get => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not ready: first polls still running\n",
            ),
            "/-/reload" if post && !self.config.enable_lifecycle => text(
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

    async fn reload(&self, req: Request<Incoming>) -> Answer {
        // The body is ignored, but read (bounded in size and time) so keep-alive stays healthy.
        let body = Limited::new(req.into_body(), 64 * 1024).collect();
        let deadline = self.config.header_read_timeout;
        if tokio::time::timeout(deadline, body).await.is_err() {
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
    async fn metrics(&self, req: &Request<Incoming>) -> Answer {
        let values = |name| {
            let all = req.headers().get_all(name).iter();
            all.filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(",")
        };
        let format = Format::negotiate(&values(header::ACCEPT));
        let gzip = accepts_gzip(&values(header::ACCEPT_ENCODING));
        let (chunks, gzipped) = self.bodies.body(format, gzip, SystemTime::now()).await;
        let r = answer(StatusCode::OK, format.content_type(), chunks);
        let r = with(r, header::VARY, "Accept, Accept-Encoding");
        match gzipped {
            true => with(r, header::CONTENT_ENCODING, "gzip"),
            false => r,
        }
    }
}

/// Serves until `shutdown` resolves, then lets open requests finish (up to [`GRACE`]).
pub(crate) async fn serve(listener: TcpListener, app: App, shutdown: impl Future<Output = ()>) {
    let header_read = app.config.header_read_timeout;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        // A peer that does not answer a ping within header_read_timeout is gone.
        .keep_alive_interval(header_read)
        .keep_alive_timeout(header_read);
    let builder = Arc::new(builder);
    let conns = Connections::new(app.config.as_ref().clone());
    let _sweeper = AbortOnDropHandle::new(tokio::spawn(conns.clone().sweep()));
    let _watcher = AbortOnDropHandle::new(tokio::spawn(app.web.clone().watch()));
    let tasks = TaskTracker::new();
    let mut accept_warned: Option<tokio::time::Instant> = None;
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
        let (app, builder, conns) = (app.clone(), builder.clone(), conns.clone());
        tasks.spawn(async move {
            match conns.admit().await {
                Some(conn) => connection(stream, peer.ip(), conn, app, &builder).await,
                None => tracing::debug!(%peer, "connection limit reached and every one busy"),
            }
        });
    }
    drop(listener);
    // Each connection finishes what is in flight within GRACE (see `connection`).
    conns.close_all();
    tasks.close();
    if tokio::time::timeout(GRACE * 2, tasks.wait()).await.is_err() {
        tracing::warn!("connections still open after the grace period");
    }
}

/// One connection, from accept to close: TLS handshake (if configured), then HTTP/1.1 or
/// HTTP/2, until it ends or is ordered to close.
async fn connection(
    stream: TcpStream,
    peer: IpAddr,
    conn: Arc<Conn>,
    app: App,
    builder: &auto::Builder<TokioExecutor>,
) {
    let stream = match app.web.current().config.tls.clone() {
        None => Either::Left(stream),
        // The sweeper's "no request since accept" rule covers the handshake.
        Some(acceptor) => tokio::select! {
            r = acceptor.accept(stream) => match r {
                Ok(s) => Either::Right(s),
                Err(e) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
            },
            _ = conn.ordered(Order::Close) => return,
        },
    };
    // hyper queues a whole HTTP/1.1 answer and goes on to the next pipelined request: when
    // the client reads nothing, only the socket shows the stall.
    let mut io = TimeoutStream::new(stream);
    io.set_write_timeout(Some(app.config.send_timeout));
    let service_conn = conn.clone();
    let service = hyper::service::service_fn(move |req| {
        let in_flight = InFlight::start(&service_conn);
        let app = app.clone();
        async move {
            let answer = app.handle(req, peer).await;
            Ok::<_, Infallible>(answer.map(|chunks| Body {
                chunks: chunks.into(),
                in_flight,
            }))
        }
    });
    let http = builder.serve_connection(TokioIo::new(Box::pin(io)), service);
    tokio::pin!(http);
    tokio::select! {
        _ = http.as_mut() => return,
        _ = conn.ordered(Order::Close) => {}
    }
    // What is in flight gets GRACE to finish (HTTP/2: after a GOAWAY), unless dropped.
    http.as_mut().graceful_shutdown();
    tokio::select! {
        _ = http => {}
        _ = tokio::time::sleep(GRACE) => {}
        _ = conn.ordered(Order::Drop) => {}
    }
}
