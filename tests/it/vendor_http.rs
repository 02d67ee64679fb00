//! The transport's vendor hooks (`http::VendorHttp`): which statuses mean auth, how an error
//! body is read, and the quota headers, come from the vendor's registration and nowhere else.

use std::net::SocketAddr;
use std::sync::Arc;

use awareness_exporter::model::{FailureReason, FetchError};
use awareness_exporter::testing::http::{self, Transport, VendorError, VendorHttp};
use awareness_exporter::testing::sources::knowbe4::http::KnowBe4Http;
use awareness_exporter::testing::sources::mimecast::http::MimecastHttp;
use awareness_exporter::testing::stats::ApiStats;
use axum::response::{IntoResponse, Response};

/// Answers every request with `status`, a Mimecast-shaped error body and exhausted-quota headers.
async fn vendor(status: u16) -> SocketAddr {
    let app = axum::Router::new().fallback(move || async move {
        let r: Response = (
            axum::http::StatusCode::from_u16(status).unwrap(),
            [("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1")],
            r#"{"fail":[{"errors":[{"code":"err_toy","message":"toy says no"}]}]}"#,
        )
            .into_response();
        r
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn transport(hooks: Option<Arc<dyn VendorHttp>>) -> Transport {
    transport_scrubbing(hooks, http::Scrub::default())
}

fn transport_scrubbing(hooks: Option<Arc<dyn VendorHttp>>, scrub: http::Scrub) -> Transport {
    let hooks = hooks.unwrap_or_else(|| Arc::new(http::PlainHttp));
    crate::common::transport(Arc::new(ApiStats::default()), 2, hooks, scrub)
}

/// A vendor whose bodies say why, and for which a 409 body means "your key was revoked".
#[derive(Debug)]
struct Toy;

impl VendorHttp for Toy {
    fn read_error(&self, status: u16, body: &[u8]) -> Option<VendorError> {
        let text = String::from_utf8_lossy(body);
        text.contains("toy says no").then(|| VendorError {
            detail: "toy says no".into(),
            reason: (status == 409).then_some(FailureReason::Auth),
            retry: Default::default(),
        })
    }
}

async fn fetch(t: &Transport, addr: SocketAddr) -> FetchError {
    let url = format!("http://{addr}/x");
    crate::common::send(t, "x", || t.client().get(&url))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn statuses_and_error_bodies_mean_what_the_vendor_says() {
    let addr = vendor(409).await;
    let plain = fetch(&transport(None), addr).await;
    assert_eq!(plain.reason, FailureReason::Http);
    assert_eq!(
        plain.message, "HTTP 409 Conflict",
        "plain HTTP reads no body"
    );

    let toy = fetch(&transport(Some(Arc::new(Toy))), addr).await;
    assert_eq!(toy.reason, FailureReason::Auth);
    assert_eq!(toy.message, "HTTP 409 Conflict: toy says no");
}

#[tokio::test]
async fn each_registered_vendor_reads_only_its_own_error_format() {
    let addr = vendor(400).await;
    let knowbe4 = crate::common::knowbe4_config("http://127.0.0.1:9", "key");
    let hooks: [(&str, Arc<dyn VendorHttp>); 3] = [
        ("plain", Arc::new(http::PlainHttp)),
        ("knowbe4", Arc::new(KnowBe4Http::new(&knowbe4))),
        ("mimecast", Arc::new(MimecastHttp)),
    ];
    for (name, h) in hooks {
        let e = fetch(&transport(Some(h)), addr).await;
        assert_eq!(e.reason, FailureReason::Http, "{name}");
        // Mimecast's fail[].errors[] shape is read by Mimecast's hooks only.
        assert_eq!(
            e.message.contains("err_toy"),
            name == "mimecast",
            "{name}: {}",
            e.message
        );
    }
}

/// Repeats the vendor's whole error body in its detail, as a careless proxy page would.
struct Echo;

impl VendorHttp for Echo {
    fn read_error(&self, _status: u16, body: &[u8]) -> Option<VendorError> {
        Some(VendorError {
            detail: String::from_utf8_lossy(body).into_owned(),
            reason: None,
            retry: Default::default(),
        })
    }
}

/// Issue 24 (4): a vendor (or a proxy before it) that repeats the request in its error: every
/// configured secret, plain, base64 or percent-encoded, is gone from the error before it is
/// kept, logged or shown.
#[tokio::test]
async fn secrets_echoed_by_a_vendor_are_scrubbed() {
    use base64::Engine as _;
    const SECRET: &str = "s3cr3t/value+with=signs";
    let b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);
    let pct: String = url::form_urlencoded::byte_serialize(SECRET.as_bytes()).collect();
    let body = format!(
        "bad request: client_secret={pct}&x=1; Authorization: Basic {b64}; MC {SECRET}:sig"
    );
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move { (axum::http::StatusCode::BAD_REQUEST, body).into_response() }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let t = transport_scrubbing(Some(Arc::new(Echo)), http::Scrub::new([SECRET]));
    let e = fetch(&t, addr).await;
    assert!(
        e.message.contains("client_secret=[redacted]"),
        "{}",
        e.message
    );
    for form in [
        SECRET,
        b64.as_str(),
        pct.as_str(),
        b64.trim_end_matches('='),
    ] {
        assert!(!e.message.contains(form), "{form} in {}", e.message);
    }
}
