//! The shared transport against hostile vendors: credentials never follow a redirect to another
//! host (token requests follow none at all), redirect loops and refused TLS certificates fail
//! at once with their own reasons (tests/transport_logs.rs: how failures are logged).
//!
//! "Another host" is another origin: a different port on loopback is a different host:port.

use crate::common;
use crate::common::harness::Counted as _;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use awareness_exporter::model::FailureReason;
use awareness_exporter::testing::http::{self, Transport};
use awareness_exporter::testing::stats::ApiStats;
use awareness_sim::toml_str;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};

const SENTINEL: &str = "SENTINEL-SECRET-4c1d0e";

/// Every request a server received: method, path, headers and body as text.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Serves `answer` for every request on a fresh loopback port, recording what arrives.
async fn server(
    answer: impl Fn(&str) -> Response + Clone + Send + Sync + 'static,
) -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |req: Request| {
        let record = record.clone();
        let answer = answer.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            record.0.lock().unwrap().push(format!(
                "{} {} {:?} {}",
                parts.method,
                parts.uri,
                parts.headers,
                String::from_utf8_lossy(&body)
            ));
            answer(parts.uri.path())
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, seen)
}

fn redirect(status: u16, location: String) -> Response {
    (
        axum::http::StatusCode::from_u16(status).unwrap(),
        [(axum::http::header::LOCATION, location)],
    )
        .into_response()
}

/// A vendor that redirects every request to `target` with `status`.
async fn redirecting_to(status: u16, target: SocketAddr) -> (SocketAddr, Seen) {
    server(move |path: &str| redirect(status, format!("http://{target}{path}"))).await
}

/// A host that must never be reached, and answers as a vendor would.
async fn thief() -> (SocketAddr, Seen) {
    server(|_: &str| {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            r#"{"access_token":"stolen","expires_in":3600,"token_type":"Bearer"}"#,
        )
            .into_response()
    })
    .await
}

fn transport(stats: Arc<ApiStats>) -> Transport {
    common::transport(stats, 4, Arc::new(http::PlainHttp), http::Scrub::default())
}

#[tokio::test]
async fn the_cyberpilot_password_never_follows_a_redirect() {
    for status in [307, 308] {
        let (thief, stolen) = thief().await;
        let (vendor, asked) = redirecting_to(status, thief).await;
        let config = common::parse(&format!(
            "[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\nbase_url = \"http://{vendor}\"\n\
             [cyberpilot.login]\ntoken_url = \"http://{vendor}/oauth/token\"\nclient_id = \"c\"\n\
             username = \"u\"\npassword = {}\n",
            toml_str(SENTINEL)
        ));
        let (outcome, stats) = common::poll_once(&config).await;
        assert!(
            stolen.all().is_empty(),
            "{status}: the thief got {:?}",
            stolen.all()
        );
        assert_eq!(asked.all().len(), 1, "{status}: asked once, not retried");
        assert!(
            stats.failures(FailureReason::Redirect) >= 1,
            "{status}: counted as redirect"
        );
        let error = format!("{:?}", outcome.sections);
        assert!(error.contains("redirect"), "{error}");
        assert!(
            !error.contains(SENTINEL) && !error.contains(&thief.to_string()),
            "{error}"
        );
    }
}

#[tokio::test]
async fn the_mimecast_client_secret_never_follows_a_redirect() {
    for status in [307, 308] {
        let (thief, stolen) = thief().await;
        let (vendor, _) = redirecting_to(status, thief).await;
        let config = common::parse(&format!(
            "[[mimecast]]\naccount = \"m\"\nbase_url = \"http://{vendor}\"\nclient_id = \"c\"\nclient_secret = {}\n",
            toml_str(SENTINEL)
        ));
        let (_, stats) = common::poll_once(&config).await;
        assert!(
            stolen.all().is_empty(),
            "{status}: the thief got {:?}",
            stolen.all()
        );
        assert!(stats.failures(FailureReason::Redirect) >= 1, "{status}");
    }
}

#[tokio::test]
async fn token_requests_follow_no_redirect_even_on_the_same_host() {
    let seen_target = Arc::new(Mutex::new(0usize));
    let count = seen_target.clone();
    let (vendor, seen) = server(move |path: &str| {
        if path == "/final" {
            *count.lock().unwrap() += 1;
            "{}".into_response()
        } else {
            redirect(307, "/final".into())
        }
    })
    .await;
    let stats = Arc::new(ApiStats::default());
    let t = transport(stats.clone());
    let e = t
        .send(
            "login",
            true,
            &|| {
                t.client()
                    .post(format!("http://{vendor}/oauth/token"))
                    .form(&[("password", SENTINEL)])
            },
            |r| async { Ok(r) },
        )
        .await
        .unwrap_err();
    assert_eq!(e.reason, FailureReason::Redirect, "{e}");
    assert_eq!(
        *seen_target.lock().unwrap(),
        0,
        "the redirect was not followed"
    );
    assert_eq!(seen.all().len(), 1);
    assert_eq!(stats.failures(FailureReason::Redirect), 1);
}

#[tokio::test]
async fn data_requests_follow_same_host_redirects_only() {
    // Same origin: followed.
    let (vendor, _) = server(|path: &str| {
        if path == "/v2/final" {
            "ok".into_response()
        } else {
            redirect(308, "/v2/final".into())
        }
    })
    .await;
    let stats = Arc::new(ApiStats::default());
    let t = transport(stats.clone());
    let reply = common::send(&t, "users", || {
        t.client().get(format!("http://{vendor}/v1/users"))
    })
    .await
    .unwrap();
    assert_eq!(&reply.body[..], b"ok");

    // Another port: refused, the bearer token never reaches it, not retried.
    let (thief, stolen) = thief().await;
    let (vendor, asked) = redirecting_to(307, thief).await;
    let e = common::send(&t, "users", || {
        t.client()
            .get(format!("http://{vendor}/v1/users"))
            .bearer_auth(SENTINEL)
    })
    .await
    .unwrap_err();
    assert_eq!(e.reason, FailureReason::Redirect, "{e}");
    assert!(e.message.contains("another host"), "{e}");
    assert!(
        !e.message.contains(&thief.to_string()),
        "no URL in errors: {e}"
    );
    assert!(stolen.all().is_empty(), "{:?}", stolen.all());
    assert_eq!(asked.all().len(), 1, "not retried");
}

#[tokio::test]
async fn a_redirect_loop_fails_at_once() {
    let (vendor, asked) = server(|path: &str| {
        let n: u32 = path.trim_start_matches("/loop").parse().unwrap_or(0);
        redirect(302, format!("/loop{}", n + 1))
    })
    .await;
    let stats = Arc::new(ApiStats::default());
    let t = transport(stats.clone());
    let e = common::send(&t, "users", || {
        t.client().get(format!("http://{vendor}/loop0"))
    })
    .await
    .unwrap_err();
    assert_eq!(e.reason, FailureReason::Redirect, "{e}");
    assert!(e.message.contains("loop"), "{e}");
    assert_eq!(stats.total_requests(), 1, "one attempt, not retried");
    assert!(
        asked.all().len() <= 7,
        "a bounded number of hops: {}",
        asked.all().len()
    );
}

#[tokio::test]
async fn a_refused_certificate_is_a_tls_failure_and_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("tls.crt"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), cert.key_pair.serialize_pem()).unwrap();
    let web = dir.path().join("web.yml");
    let tls = "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n";
    std::fs::write(&web, tls).unwrap();
    let web = awareness_exporter::WebSettings::load(Some(web)).unwrap();
    let acceptor = web.current().config.tls.clone().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handshakes = Arc::new(Mutex::new(0usize));
    let counted = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            *counted.lock().unwrap() += 1;
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    let stats = Arc::new(ApiStats::default());
    let t = transport(stats.clone());
    let port = addr.port();
    let e = common::send(&t, "users", || {
        t.client().get(format!("https://localhost:{port}/v1/users"))
    })
    .await
    .unwrap_err();
    assert_eq!(e.reason, FailureReason::Tls, "{e}");
    assert_eq!(stats.total_requests(), 1, "not retried");
    assert_eq!(stats.failures(FailureReason::Tls), 1);
}

#[tokio::test]
async fn network_errors_are_told_in_plain_words() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let stats = Arc::new(ApiStats::default());
    let t = common::transport(stats, 1, Arc::new(http::PlainHttp), http::Scrub::default());
    let e = common::send(&t, "users", || {
        t.client().get(format!("http://127.0.0.1:{port}/"))
    })
    .await
    .unwrap_err();
    assert_eq!(e.reason, FailureReason::Connect);
    assert_eq!(
        e.message,
        "cannot connect: connection refused (after 1 attempt)"
    );
}
