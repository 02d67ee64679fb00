//! Hostile clients on loopback (issue 12, clients): connections that say nothing, HTTP/2
//! prefaces and silence, request bodies that never come, TLS handshakes and silence, streams
//! that never read, answers never read, wrong-password floods. None may lock out `/metrics`,
//! `/-/healthy` or `/-/ready`, pin memory, or hold a connection for ever. No timing is asserted
//! beyond "answered (or closed) within a generous deadline".

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use awareness_exporter::app::{self, Exporter, ServerHandle};
use awareness_exporter::config::Config;
use awareness_sim::cyberpilot::{self, CyberPilotOptions};
use awareness_sim::{Population, SimServer};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous: a loaded 2-core CI machine still answers well within it.
const DEADLINE: Duration = Duration::from_secs(30);
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const H2_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

struct Target {
    _sim: SimServer,
    _exporter: Arc<Exporter>,
    handle: ServerHandle,
    _dir: tempfile::TempDir,
    tls: Option<rcgen::CertifiedKey>,
}

impl Target {
    fn addr(&self) -> String {
        self.handle.addr.to_string()
    }

    fn base(&self) -> String {
        match self.tls {
            Some(_) => format!("https://localhost:{}", self.handle.addr.port()),
            None => format!("http://{}", self.handle.addr),
        }
    }

    fn client(&self) -> reqwest::Client {
        self.client_at([127, 0, 0, 1])
    }

    /// A client connecting from another address of the loopback range.
    fn client_at(&self, local: [u8; 4]) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .timeout(DEADLINE)
            .local_address(std::net::IpAddr::from(local))
            .pool_max_idle_per_host(0);
        if let Some(cert) = &self.tls {
            b = b.add_root_certificate(
                reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap(),
            );
        }
        b.build().unwrap()
    }

    /// `/metrics`, `/-/healthy` and `/-/ready` all answer 200 within the deadline.
    async fn assert_answering(&self, what: &str) {
        let client = self.client();
        for path in ["/metrics", "/-/healthy", "/-/ready"] {
            let r = client
                .get(format!("{}{path}", self.base()))
                .basic_auth("prometheus", Some("scrape-pass"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{path} with {what}: {e}"));
            assert_eq!(r.status(), 200, "{path} with {what}");
            r.bytes().await.unwrap();
        }
    }
}

struct Options {
    tls: bool,
    users: usize,
    tune: fn(&mut Config),
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tls: false,
            users: 10,
            tune: |_| {},
        }
    }
}

async fn target(o: Options) -> Target {
    let sim = cyberpilot::start(
        Arc::new(Population::generate(5, o.users)),
        CyberPilotOptions::default(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = CyberPilotOptions::default();
    let mut text = format!(
        "[metrics]\nper_user = true\n{}{}",
        opts.account_block(&sim, "acme"),
        opts.token_key()
    );
    let mut tls = None;
    if o.tls {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(dir.path().join("tls.crt"), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join("tls.key"), cert.key_pair.serialize_pem()).unwrap();
        let hash = bcrypt::hash("scrape-pass", 6).unwrap();
        let web = dir.path().join("web.yml");
        std::fs::write(
            &web,
            format!("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth_users:\n  prometheus: '{hash}'\n"),
        )
        .unwrap();
        text = format!("[server]\nweb_config_file = \"{}\"\n{text}", web.display());
        tls = Some(cert);
    }
    let mut config = parse(&text);
    // Long enough that only shedding (not a timeout) can free a slot, unless a test tunes it.
    config.server.header_read_timeout = Duration::from_secs(120);
    config.server.idle_timeout = Duration::from_secs(120);
    config.server.send_timeout = Duration::from_secs(120);
    config.server.enable_lifecycle = true;
    (o.tune)(&mut config);
    let server_config = config.server.clone();
    let exporter = Exporter::start(config, None);
    assert!(eventually(30, || exporter.store.ready()).await);
    let handle = app::serve(exporter.clone(), "127.0.0.1:0", &server_config)
        .await
        .unwrap();
    Target {
        _sim: sim,
        _exporter: exporter,
        handle,
        _dir: dir,
        tls,
    }
}

async fn hold(addr: &str, n: usize, opening: &[u8]) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).await.unwrap();
        if !opening.is_empty() {
            s.write_all(opening).await.unwrap();
        }
        held.push(s);
    }
    held
}

#[tokio::test]
async fn idle_tcp_connections_cannot_lock_out_scrapes() {
    let t = target(Options::default()).await;
    let held = hold(&t.addr(), 512, b"").await;
    t.assert_answering("512 idle TCP connections").await;
    drop(held);
}

#[tokio::test]
async fn h2c_prefaces_then_silence_cannot_lock_out_scrapes() {
    let t = target(Options::default()).await;
    let opening = [H2_PREFACE, H2_SETTINGS].concat();
    let held = hold(&t.addr(), 512, &opening).await;
    t.assert_answering("512 h2c prefaces and silence").await;
    drop(held);
}

#[tokio::test]
async fn partial_h2_prefaces_cannot_lock_out_scrapes() {
    let t = target(Options::default()).await;
    let held = hold(&t.addr(), 512, &H2_PREFACE[..10]).await;
    t.assert_answering("512 partial HTTP/2 prefaces").await;
    drop(held);
}

#[tokio::test]
async fn reload_bodies_that_never_arrive_cannot_lock_out_scrapes() {
    let t = target(Options::default()).await;
    let held = hold(
        &t.addr(),
        512,
        b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n",
    )
    .await;
    t.assert_answering("512 reload bodies that never arrive")
        .await;
    drop(held);
}

async fn tls_handshakes(t: &Target, n: usize) -> Vec<tokio_rustls::client::TlsStream<TcpStream>> {
    use tokio_rustls::rustls;
    let cert = t.tls.as_ref().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let tcp = TcpStream::connect(t.addr()).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        held.push(connector.connect(name, tcp).await.unwrap());
    }
    held
}

#[tokio::test]
async fn tls_handshakes_then_silence_cannot_lock_out_authenticated_scrapes() {
    // The cap lowered from its default 512: the same shedding at an eighth of the handshakes.
    let t = target(Options {
        tls: true,
        tune: |c| c.server.max_connections = 64,
        ..Options::default()
    })
    .await;
    let held = tls_handshakes(&t, 64).await;
    t.assert_answering("64 TLS handshakes (the cap) and silence")
        .await;
    drop(held);
}

/// Reads until the server closes the connection (EOF or reset), or the deadline passes.
async fn closed_by_server<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(until, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn connections_are_timed_from_accept() {
    let t = target(Options {
        tls: true,
        tune: |c| c.server.header_read_timeout = Duration::from_secs(1),
        ..Options::default()
    })
    .await;
    let opening = [H2_PREFACE, H2_SETTINGS].concat();
    let mut plain = Vec::new();
    for bytes in [&b""[..], &opening, &H2_PREFACE[..10]] {
        plain.push(hold(&t.addr(), 1, bytes).await.remove(0));
    }
    let mut tls = tls_handshakes(&t, 1).await;
    for (i, s) in plain.iter_mut().enumerate() {
        assert!(
            closed_by_server(s).await,
            "silent connection {i} was closed"
        );
    }
    assert!(
        closed_by_server(&mut tls[0]).await,
        "TLS handshake then silence"
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let t = target(Options {
        tune: |c| c.server.idle_timeout = Duration::from_secs(1),
        ..Options::default()
    })
    .await;
    let mut s = TcpStream::connect(t.addr()).await.unwrap();
    s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_by_server(&mut s).await);
}

#[tokio::test]
async fn a_reload_body_that_never_arrives_is_timed_out() {
    let t = target(Options {
        tune: |c| c.server.header_read_timeout = Duration::from_secs(1),
        ..Options::default()
    })
    .await;
    let mut s = TcpStream::connect(t.addr()).await.unwrap();
    s.write_all(b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, s.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn http2_streams_are_capped_per_connection() {
    let t = target(Options::default()).await;
    let mut s = TcpStream::connect(t.addr()).await.unwrap();
    s.write_all(&[H2_PREFACE, H2_SETTINGS].concat())
        .await
        .unwrap();
    // The server's first frame is its SETTINGS: look for MAX_CONCURRENT_STREAMS (0x3).
    let mut header = [0u8; 9];
    tokio::time::timeout(DEADLINE, s.read_exact(&mut header))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(header[3], 4, "a SETTINGS frame");
    let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.unwrap();
    let max_streams = payload
        .chunks(6)
        .find(|p| u16::from_be_bytes([p[0], p[1]]) == 3)
        .map(|p| u32::from_be_bytes([p[2], p[3], p[4], p[5]]));
    assert_eq!(
        max_streams,
        Some(awareness_exporter::testing::server::MAX_CONCURRENT_STREAMS)
    );
}

#[tokio::test]
async fn http2_streams_that_never_read_are_dropped_and_do_not_block_scrapes() {
    let t = target(Options {
        users: 2000,
        tune: |c| c.server.send_timeout = Duration::from_millis(300),
        ..Options::default()
    })
    .await;
    // Window 0: the server can send headers but no body byte.
    let stuck = reqwest::Client::builder()
        .http2_prior_knowledge()
        .http2_initial_stream_window_size(0)
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    // As many streams as one connection may open at once, all started together.
    let streams = awareness_exporter::testing::server::MAX_CONCURRENT_STREAMS as usize;
    let sends = (0..streams).map(|_| stuck.get(format!("{}/metrics", t.base())).send());
    let mut responses = Vec::new();
    for r in tokio::time::timeout(DEADLINE, futures::future::join_all(sends))
        .await
        .expect("headers arrive")
    {
        let r = r.unwrap();
        assert_eq!(r.status(), 200);
        responses.push(r);
    }
    t.assert_answering("HTTP/2 streams at window 0").await;
    // No write progress for send_timeout: the connection goes, and the bodies with it.
    let body = tokio::time::timeout(DEADLINE, responses.pop().unwrap().bytes()).await;
    assert!(
        matches!(body, Ok(Err(_))),
        "a stream that never reads ends in an error"
    );
}

#[tokio::test]
async fn http1_answers_never_read_are_dropped() {
    let t = target(Options {
        users: 2000,
        tune: |c| c.server.send_timeout = Duration::from_millis(300),
        ..Options::default()
    })
    .await;
    let mut s = TcpStream::connect(t.addr()).await.unwrap();
    let requests = 100;
    let one = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    s.write_all(&one.repeat(requests)).await.unwrap();
    // Without reading a byte, wait for the server to close its end: its FIN waits behind the
    // answers we never read, so only the kernel's table shows it.
    let (server, client) = (s.peer_addr().unwrap(), s.local_addr().unwrap());
    assert!(
        eventually(DEADLINE.as_secs(), || !established(server, client)).await,
        "the server kept a connection that reads nothing"
    );
    let mut answers = Vec::new();
    let done = tokio::time::timeout(DEADLINE, s.read_to_end(&mut answers)).await;
    let complete = String::from_utf8_lossy(&answers)
        .matches("HTTP/1.1 200 OK")
        .count();
    assert!(
        done.is_ok() && complete < requests,
        "the server dropped the connection that did not read ({complete} answers started)"
    );
}

/// Whether the TCP connection `local` -> `remote` (IPv4) is in the kernel's table as
/// ESTABLISHED: a socket its owner closed is in FIN_WAIT1 or gone.
fn established(local: std::net::SocketAddr, remote: std::net::SocketAddr) -> bool {
    let hex = |a: std::net::SocketAddr| match a {
        std::net::SocketAddr::V4(a) => {
            format!(
                "{:08X}:{:04X}",
                u32::from_le_bytes(a.ip().octets()),
                a.port()
            )
        }
        std::net::SocketAddr::V6(_) => panic!("IPv4 only"),
    };
    let (local, remote) = (hex(local), hex(remote));
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1] == local && f[2] == remote && f[3] == "01"
    })
}

/// Issue 24 item 2: wrong passwords from one address neither delay nor turn away another
/// client's scrapes, even before its password was ever checked (nothing cached).
#[tokio::test]
async fn wrong_password_floods_cannot_lock_out_a_first_scrape() {
    let t = target(Options {
        tls: true,
        ..Options::default()
    })
    .await;
    let flood: Vec<_> = (0..300)
        .map(|i| {
            let client = t.client_at([127, 0, 0, 2]);
            let url = format!("{}/metrics", t.base());
            tokio::spawn(async move {
                client
                    .get(url)
                    .basic_auth(
                        if i % 2 == 0 { "prometheus" } else { "nobody" },
                        Some("wrong"),
                    )
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .collect();
    t.assert_answering("a wrong-password flood").await;
    let mut statuses = Vec::new();
    for f in flood {
        statuses.push(f.await.unwrap());
    }
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&429),
        "password checks are rationed: the excess is told to retry at once"
    );
}

/// Issue 24 item 1: a stream stuck at window 0 is reset after `send_timeout`, although its
/// connection sends a new tiny request every 200 ms.
#[tokio::test]
async fn a_stuck_stream_is_reset_whatever_else_its_connection_sends() {
    let t = target(Options {
        tune: |c| c.server.send_timeout = Duration::from_secs(1),
        ..Options::default()
    })
    .await;
    let stuck = reqwest::Client::builder()
        .http2_prior_knowledge()
        .http2_initial_stream_window_size(0)
        .build()
        .unwrap();
    let first = stuck.get(format!("{}/metrics", t.base())).send();
    let first = tokio::time::timeout(DEADLINE, first)
        .await
        .unwrap()
        .unwrap();
    let url = format!("{}/-/healthy", t.base());
    let heartbeat = tokio::spawn(async move {
        loop {
            let tiny = stuck.get(&url).send();
            let _ = tokio::time::timeout(Duration::from_millis(200), tiny).await;
        }
    });
    let body = tokio::time::timeout(DEADLINE, first.bytes()).await;
    heartbeat.abort();
    assert!(
        matches!(body, Ok(Err(_))),
        "the stuck stream ends in an error"
    );
}
