//! A failed vendor request is logged at warn, inside the poll's span (platform, account), with
//! endpoint, reason and status, and never with its URL. A binary of its own: tracing caches
//! per-callsite interest process-wide, so tests running beside it without a subscriber could
//! switch the event off.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use awareness_exporter::http::{self, Transport, TransportSettings};
use awareness_exporter::stats::ApiStats;
use axum::response::IntoResponse;
use tokio::sync::Semaphore;

const SENTINEL: &str = "SENTINEL-SECRET-4c1d0e";

async fn unavailable() -> SocketAddr {
    let app = axum::Router::new().fallback(|| async {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down").into_response()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn a_failed_request_is_logged_at_warn_without_its_url() {
    let logs = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    // current-thread runtime: the thread-local subscriber sees every event of the test.
    let _guard = tracing::subscriber::set_default(subscriber);
    let vendor = unavailable().await;
    let t = Transport::new(
        http::client(),
        Arc::new(ApiStats::default()),
        TransportSettings {
            timeout: Duration::from_secs(5),
            max_attempts: 2,
            retry_backoff: Duration::from_millis(1),
            max_body_bytes: 1 << 20,
            concurrency: 2,
        },
        Arc::new(Semaphore::new(8)),
    );
    let span = tracing::warn_span!("poll", platform = "cyberpilot", account = "acme");
    let _ = tracing::Instrument::instrument(
        t.send("users-summary", || {
            t.client()
                .get(format!("http://{vendor}/v1/users?secret={SENTINEL}"))
        }),
        span,
    )
    .await
    .unwrap_err();
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("vendor request failed"))
        .unwrap_or_else(|| panic!("no warn line in {text:?}"));
    assert!(line.contains("WARN"), "{line}");
    for part in [
        "endpoint=\"users-summary\"",
        "reason=http",
        "status=503",
        "platform",
        "acme",
    ] {
        assert!(line.contains(part), "{part} missing: {line}");
    }
    assert!(
        !text.contains(SENTINEL) && !text.contains(&vendor.to_string()),
        "{text}"
    );
}
