//! A failed vendor request is logged at WARN, inside the poll's span (platform, account), with
//! endpoint, reason, status and what happens next, never with its URL, and a flapping vendor
//! cannot flood the log. Each test logs into a subscriber of its own on its current-thread
//! runtime; tracing caches per-callsite interest process-wide, so it is recomputed with the
//! subscriber in place.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use awareness_exporter::testing::http::{self, Transport, VendorHttp};

use crate::common;
use awareness_exporter::model::{FailureReason, FetchError};
use awareness_exporter::testing::stats::ApiStats;
use axum::response::IntoResponse;
use futures::future::BoxFuture;

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

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// WARN and above of this thread into a buffer, until the guard drops.
fn capture() -> (Buffer, tracing::subscriber::DefaultGuard) {
    let logs = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    (logs, guard)
}

fn transport(max_attempts: u32, vendor: Arc<dyn VendorHttp>) -> Transport {
    let stats = Arc::new(ApiStats::default());
    common::transport(stats, max_attempts, vendor, http::Scrub::default())
}

#[tokio::test]
async fn every_failed_attempt_is_logged_at_warn_with_what_comes_next_and_without_its_url() {
    let (logs, _guard) = capture();
    let vendor = unavailable().await;
    let t = transport(2, Arc::new(http::PlainHttp));
    let span = tracing::warn_span!("poll", platform = "cyberpilot", account = "acme");
    let _ = tracing::Instrument::instrument(
        common::send(&t, "users-summary", || {
            t.client()
                .get(format!("http://{vendor}/v1/users?secret={SENTINEL}"))
        }),
        span,
    )
    .await
    .unwrap_err();
    let text = logs.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("vendor request failed"))
        .collect();
    assert_eq!(lines.len(), 2, "one line an attempt: {text}");
    assert!(lines[0].contains("attempt 2 of 2"), "{}", lines[0]);
    assert!(
        lines[1].contains("giving up after 2 attempts"),
        "{}",
        lines[1]
    );
    for line in lines {
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
    }
    assert!(
        !text.contains(SENTINEL) && !text.contains(&vendor.to_string()),
        "{text}"
    );
}

/// Refuses every attempt before it is sent: a failure without a network.
struct Refusing;

impl VendorHttp for Refusing {
    fn before_send(&self) -> BoxFuture<'_, Result<(), FetchError>> {
        Box::pin(async { Err(FetchError::new(FailureReason::Connect, "refused here")) })
    }
}

#[tokio::test(start_paused = true)]
async fn a_flapping_vendor_cannot_flood_the_log() {
    let (logs, _guard) = capture();
    let t = transport(1, Arc::new(Refusing));
    let url = "http://127.0.0.1:9/x";
    for _ in 0..50 {
        common::send(&t, "x", || t.client().get(url))
            .await
            .unwrap_err();
    }
    let count = |text: &str| text.matches("vendor request failed").count();
    assert_eq!(count(&logs.text()), 6, "six lines a minute");
    tokio::time::advance(Duration::from_secs(61)).await;
    common::send(&t, "x", || t.client().get(url))
        .await
        .unwrap_err();
    let text = logs.text();
    assert_eq!(count(&text), 7);
    let last = text.lines().last().unwrap();
    assert!(
        last.contains("left_out=44"),
        "says how many were left out: {last}"
    );
}
