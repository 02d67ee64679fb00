//! The HTTP server: `/metrics`, the landing page, health, readiness and reload.
//!
//! Every answer is built from the store; nothing here talks to a vendor. A header-read timeout
//! and a connection limit keep slow or greedy clients from starving scrapes.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
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
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::exposition::Format;
use crate::scrape_body::ScrapeBodies;
use crate::store::Store;
use crate::web::{Access, WebConfig};

pub use crate::exposition::OPENMETRICS;

/// Reloads the configuration; `Err` carries the reason the new one was refused.
pub type ReloadFn =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send + Sync>;

pub struct ServerSettings {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub web: WebConfig,
}

#[derive(Clone)]
pub struct App {
    pub store: Arc<Store>,
    pub reload: ReloadFn,
    pub access: Arc<Access>,
    /// Shared `/metrics` bodies; [`App::new`] makes them from the store.
    pub bodies: Arc<ScrapeBodies>,
}

impl App {
    pub fn new(store: Arc<Store>, reload: ReloadFn, access: Arc<Access>) -> App {
        App {
            bodies: Arc::new(ScrapeBodies::new(store.clone())),
            store,
            reload,
            access,
        }
    }
}

/// A response body made of shared buffers (see [`crate::scrape_body`]): sending it never copies
/// them.
#[derive(Debug, Default)]
pub struct Body {
    chunks: VecDeque<Bytes>,
}

impl Body {
    fn new(chunks: impl IntoIterator<Item = Bytes>) -> Body {
        Body {
            chunks: chunks.into_iter().filter(|c| !c.is_empty()).collect(),
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
        Poll::Ready(self.chunks.pop_front().map(|c| Ok(Frame::data(c))))
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
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        if self.access.required() && !self.authorized(&req).await {
            let mut r = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"awareness-exporter\""),
            );
            return r;
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
            (&Method::POST | &Method::PUT, "/-/reload") => {
                // The body is ignored, but read (bounded) so keep-alive stays healthy.
                let _ = Limited::new(req.into_body(), 64 * 1024).collect().await;
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

    /// bcrypt is slow by design: check off the async workers so a flood of wrong passwords
    /// cannot stall scrapes.
    async fn authorized(&self, req: &Request<Incoming>) -> bool {
        let access = self.access.clone();
        let headers = req.headers().clone();
        tokio::task::spawn_blocking(move || access.allows(&headers))
            .await
            .unwrap_or(false)
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
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let limit = Arc::new(Semaphore::new(settings.max_connections));
    let graceful = GracefulShutdown::new();
    let tls = settings.web.tls_acceptor();
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let header_timeout = settings.header_read_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(app.handle(req).await) }
            });
            match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                    }
                }
                Some(acceptor) => {
                    // The handshake is bounded by the same timeout as request headers.
                    let stream =
                        match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => s,
                            _ => {
                                tracing::debug!(peer = %peer, "TLS handshake failed or timed out");
                                return;
                            }
                        };
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                    }
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("connections still open after 10s; closing");
        }
    }
}
