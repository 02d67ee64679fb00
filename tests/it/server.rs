//! The HTTP side, end to end: a real exporter polling a simulated CyberPilot account, scraped
//! over HTTP. Covers OpenMetrics and gzip, readiness, the landing page, reload, basic auth,
//! slow clients, and that a scrape never reaches the vendor.

use crate::common;

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use awareness_exporter::app::{self, Exporter, ServerHandle};
use awareness_exporter::config;
use awareness_sim::cyberpilot::{self, CyberPilotOptions};
use awareness_sim::{Fault, Population, SimServer};
use common::*;
use tokio::io::AsyncWriteExt;

const SENTINEL: &str = "SENTINEL-SECRET-5b2e8d";

async fn cyberpilot_sim(users: usize) -> SimServer {
    cyberpilot::start(
        Arc::new(Population::generate(3, users)),
        CyberPilotOptions::default(),
    )
    .await
    .unwrap()
}

fn cp_block(server: &SimServer, account: &str, token: &str) -> String {
    format!(
        "{}token = {}\n",
        CyberPilotOptions::default().account_block(server, account),
        awareness_sim::toml_str(token)
    )
}

fn good_token() -> String {
    CyberPilotOptions::default()
        .static_token
        .unwrap_or_default()
}

async fn start(
    text: &str,
    path: Option<std::path::PathBuf>,
) -> (Arc<Exporter>, ServerHandle, String) {
    start_tuned(text, path, |_| {}).await
}

async fn start_tuned(
    text: &str,
    path: Option<std::path::PathBuf>,
    tune: fn(&mut config::Config),
) -> (Arc<Exporter>, ServerHandle, String) {
    let mut config = parse(text);
    config.server.header_read_timeout = Duration::from_secs(1);
    tune(&mut config);
    let server_config = config.server.clone();
    let exporter = Exporter::start_with(config, path, awareness_exporter::Shard::ALL, |p| {
        p.with_failure_backoff(Duration::from_secs(60))
    });
    let handle = app::serve(exporter.clone(), "127.0.0.1:0", &server_config)
        .await
        .unwrap();
    let base = format!("http://{}", handle.addr);
    (exporter, handle, base)
}

async fn wait_ready(base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..250 {
        if let Ok(r) = client.get(format!("{base}/-/ready")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never ready");
}

#[tokio::test]
async fn metrics_are_openmetrics_gzip_when_asked_and_never_call_the_vendor() {
    let sim = cyberpilot_sim(150).await;
    let (_exporter, _handle, base) = start(&cp_block(&sim, "acme", &good_token()), None).await;
    wait_ready(&base).await;
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{base}/metrics"))
        .header("accept", "application/openmetrics-text")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let plain = r.text().await.unwrap();
    assert!(plain.ends_with("# EOF\n"));
    assert!(plain.contains("awareness_up{platform=\"cyberpilot\",account=\"acme\"} 1"));
    assert!(plain.contains("awareness_build_info{version=\""));
    assert!(plain.contains("awareness_cyberpilot_users{account=\"acme\",branch="));
    assert_eq!(
        plain
            .matches("# TYPE awareness_cyberpilot_users gauge")
            .count(),
        1
    );

    let r = client
        .get(format!("{base}/metrics"))
        .header("accept", "application/openmetrics-text")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let zipped = r.bytes().await.unwrap();
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&zipped[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    assert_eq!(samples(&unzipped).len(), samples(&plain).len());

    let before = sim.control.total_requests();
    for _ in 0..50 {
        client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        client
            .get(format!("{base}/"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    assert_eq!(
        sim.control.total_requests(),
        before,
        "scrapes must not reach the vendor"
    );

    assert_eq!(
        client
            .get(format!("{base}/-/healthy"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(format!("{base}/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let r = client.get(format!("{base}/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST, PUT");
    let r = client
        .delete(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
}

#[tokio::test]
async fn ready_only_after_the_first_poll() {
    let sim = cyberpilot_sim(20).await;
    sim.control
        .set_fault(Fault::Slow(Duration::from_millis(700)));
    let (_exporter, _handle, base) = start(&cp_block(&sim, "acme", &good_token()), None).await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{base}/-/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    assert_eq!(
        client
            .get(format!("{base}/-/healthy"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    wait_ready(&base).await;
}

#[tokio::test]
async fn landing_page_shows_state_but_never_secrets() {
    let sim = cyberpilot_sim(20).await;
    let text = format!(
        "{}{}",
        cp_block(&sim, "good", &good_token()),
        cp_block(&sim, "<b>bad</b>", SENTINEL)
    );
    let (_exporter, _handle, base) = start(&text, None).await;
    wait_ready(&base).await;
    let client = reqwest::Client::new();
    let html = client
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<td>good</td>"));
    assert!(html.contains("&lt;b&gt;bad&lt;/b&gt;"));
    assert!(html.contains("HTTP 401"), "the last error is shown");
    assert!(html.contains("href=\"/metrics\""));
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for body in [&html, &metrics] {
        assert!(!body.contains(SENTINEL));
    }
    assert!(metrics.contains(
        "awareness_api_request_failures_total{platform=\"cyberpilot\",account=\"<b>bad</b>\",endpoint=\"users-summary\",reason=\"auth\"} 1"
    ));
}

#[tokio::test]
async fn reload_adds_and_removes_accounts_and_refuses_bad_configs() {
    let sim = cyberpilot_sim(30).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, cp_block(&sim, "first", &good_token())).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let (_exporter, _handle, base) = start_tuned(&text, Some(path.clone()), |c| {
        c.server.enable_lifecycle = true
    })
    .await;
    wait_ready(&base).await;
    let client = reqwest::Client::new();
    let scrape = || async {
        client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert!(scrape().await.contains("account=\"first\""));

    std::fs::write(&path, cp_block(&sim, "second", &good_token())).unwrap();
    let r = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // Readiness stays 200 across a reload: wait for the added account's first poll instead.
    let mut body = scrape().await;
    for _ in 0..100 {
        if body.contains("awareness_cyberpilot_users{account=\"second\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        body = scrape().await;
    }
    assert!(
        !body.contains("account=\"first\""),
        "removed account's series are gone"
    );
    assert!(body.contains("awareness_cyberpilot_users{account=\"second\""));

    std::fs::write(
        &path,
        format!(
            "{}\nbogus_key = 1\n",
            cp_block(&sim, "third", &good_token())
        ),
    )
    .unwrap();
    let r = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let reason = r.text().await.unwrap();
    assert!(reason.contains("bogus_key"), "{reason}");
    let body = scrape().await;
    assert!(body.contains("account=\"second\"") && !body.contains("account=\"third\""));
}

#[tokio::test]
async fn reload_over_http_only_with_the_lifecycle_flag() {
    let sim = cyberpilot_sim(10).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, cp_block(&sim, "first", &good_token())).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let (_exporter, _handle, base) = start(&text, Some(path.clone())).await;
    wait_ready(&base).await;
    std::fs::write(&path, cp_block(&sim, "second", &good_token())).unwrap();
    let client = reqwest::Client::new();
    for method in [reqwest::Method::POST, reqwest::Method::PUT] {
        let r = client
            .request(method, format!("{base}/-/reload"))
            .header("origin", "https://elsewhere.example")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("x=1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.text().await.unwrap().contains("--web.enable-lifecycle"));
    }
    let body = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("account=\"first\"") && !body.contains("account=\"second\""));
    // The flag exists on the command line, as in Prometheus.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_awareness-exporter"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--web.enable-lifecycle"));
}

#[tokio::test]
async fn basic_auth_from_the_web_config() {
    let sim = cyberpilot_sim(10).await;
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    let hash = bcrypt::hash("scrape-pass", 4).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: '{hash}'\n")).unwrap();
    let text = format!(
        "[server]\nweb_config_file = \"{}\"\n{}",
        web.display(),
        cp_block(&sim, "acme", &good_token())
    );
    let (_exporter, _handle, base) = start(&text, None).await;
    let client = reqwest::Client::new();
    let r = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = client
        .get(format!("{base}/metrics"))
        .basic_auth("prometheus", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .get(format!("{base}/metrics"))
        .basic_auth("prometheus", Some("scrape-pass"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// One answer on a kept-alive HTTP/1.1 connection: its status.
async fn status_on(s: &mut tokio::net::TcpStream, password: &str) -> u16 {
    use base64::Engine;
    use tokio::io::AsyncReadExt;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("prometheus:{password}"));
    let request =
        format!("GET /-/healthy HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk));
        let n = read.await.unwrap().unwrap();
        assert!(n > 0, "the connection stays open");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                return head[9..12].parse().unwrap();
            }
        }
    }
}

/// Issue 24 item 5: a changed password takes effect on connections opened before the change.
#[tokio::test]
async fn a_changed_password_applies_to_open_connections() {
    let sim = cyberpilot_sim(10).await;
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    let write = |password: &str| {
        let hash = bcrypt::hash(password, 4).unwrap();
        std::fs::write(&web, format!("basic_auth_users:\n  prometheus: '{hash}'\n")).unwrap();
    };
    write("old-pass");
    let text = format!(
        "[server]\nweb_config_file = \"{}\"\n{}",
        web.display(),
        cp_block(&sim, "acme", &good_token())
    );
    let (_exporter, handle, _) = start(&text, None).await;
    let mut kept = tokio::net::TcpStream::connect(handle.addr).await.unwrap();
    assert_eq!(status_on(&mut kept, "old-pass").await, 200);
    write("new-pass");
    handle.web.reload().await.unwrap();
    assert_eq!(status_on(&mut kept, "old-pass").await, 401);
    assert_eq!(status_on(&mut kept, "new-pass").await, 200);
}

/// Issue 24 item 6: `--check-config` compares `max_connections` with the open-files limit.
#[test]
fn check_config_warns_when_max_connections_exceeds_the_open_files_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let text = "[server]\nmax_connections = 2000\n[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken = \"t\"\n";
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            "ulimit -n 1024 && exec \"$0\" --check-config --config.file \"$1\"",
        ])
        .arg(env!("CARGO_BIN_EXE_awareness-exporter"))
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("server.max_connections (2000)")
            && stderr.contains("open-files limit (1024)"),
        "{stderr}"
    );
}

#[tokio::test]
async fn slow_clients_cannot_starve_scrapes() {
    let sim = cyberpilot_sim(10).await;
    let mut text = cp_block(&sim, "acme", &good_token());
    text = format!("[server]\nmax_connections = 4\n{text}");
    let (_exporter, _handle, base) = start(&text, None).await;
    let addr = base.trim_start_matches("http://").to_string();
    // Fill every connection slot with clients that never finish their headers.
    let mut hogs = Vec::new();
    for _ in 0..4 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        hogs.push(s);
    }
    // header_read_timeout is 1 s: the hogs are dropped and the scrape gets through.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    drop(hogs);
}

fn check_config(path: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_awareness-exporter"))
        .args(["--check-config", "--config.file"])
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn check_config_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!("[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken = \"{SENTINEL}\"\n"),
    )
    .unwrap();
    let out = check_config(&good);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("is valid") && stdout.contains("cyberpilot/a"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stdout.contains(SENTINEL) && !stderr.contains(SENTINEL));
    // Written with the default umask: readable by everyone, with an inline secret.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = check_config(&good);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is open to other users"));
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = check_config(&good);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("is open to"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!("[poll]\nintervall = \"1m\"\n[[cyberpilot]]\ntoken = \"{SENTINEL}\"\n"),
    )
    .unwrap();
    let out = check_config(&bad);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.contains("intervall") && stdout.contains("line 2"),
        "{stdout}"
    );
    assert!(!stdout.contains(SENTINEL));
    let _ = config::DEFAULT_LISTEN;
}

#[tokio::test]
async fn tls_from_the_web_config() {
    let sim = cyberpilot_sim(10).await;
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("tls.crt"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), cert.key_pair.serialize_pem()).unwrap();
    let web = dir.path().join("web.yml");
    // Relative paths resolve against the web config's directory.
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n",
    )
    .unwrap();
    let text = format!(
        "[server]\nweb_config_file = \"{}\"\n{}",
        web.display(),
        cp_block(&sim, "acme", &good_token())
    );
    let (_exporter, handle, _) = start(&text, None).await;
    let port = handle.addr.port();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = client
        .get(format!("https://localhost:{port}/-/healthy"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Plain HTTP gets nowhere.
    assert!(reqwest::get(format!("http://127.0.0.1:{port}/-/healthy"))
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true));
}

fn tls_client(cert: &rcgen::CertifiedKey) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn write_web(dir: &std::path::Path, cert: &rcgen::CertifiedKey, password: &str) {
    // Written elsewhere and renamed into place, as cert-manager and careful operators do.
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("tls.crt"), cert.cert.pem()).unwrap();
    std::fs::write(tmp.join("tls.key"), cert.key_pair.serialize_pem()).unwrap();
    let hash = bcrypt::hash(password, 4).unwrap();
    std::fs::write(
        tmp.join("web.yml"),
        format!("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth_users:\n  prometheus: '{hash}'\n"),
    )
    .unwrap();
    for f in ["tls.crt", "tls.key", "web.yml"] {
        std::fs::rename(tmp.join(f), dir.join(f)).unwrap();
    }
}

async fn status_with(client: &reqwest::Client, port: u16, password: &str) -> Option<u16> {
    client
        .get(format!("https://localhost:{port}/-/healthy"))
        .basic_auth("prometheus", Some(password))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test]
async fn web_config_changes_apply_to_new_connections_and_bad_ones_are_refused() {
    let sim = cyberpilot_sim(10).await;
    let dir = tempfile::tempdir().unwrap();
    let first = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    write_web(dir.path(), &first, "first-pass");
    let text = format!(
        "[server]\nweb_config_file = \"{}\"\n{}",
        dir.path().join("web.yml").display(),
        cp_block(&sim, "acme", &good_token())
    );
    let (_exporter, handle, _) = start(&text, None).await;
    let port = handle.addr.port();
    assert_eq!(
        status_with(&tls_client(&first), port, "first-pass").await,
        Some(200)
    );

    // A rotated certificate and a new password: new connections get both, without a restart.
    let second = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    write_web(dir.path(), &second, "second-pass");
    let mut switched = false;
    for _ in 0..100 {
        if status_with(&tls_client(&second), port, "second-pass").await == Some(200) {
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(switched, "the new certificate and users are served");
    assert_eq!(
        status_with(&tls_client(&first), port, "first-pass").await,
        None,
        "old certificate gone"
    );
    assert_eq!(
        status_with(&tls_client(&second), port, "first-pass").await,
        Some(401),
        "old password gone"
    );

    // A broken file is refused (SIGHUP's reload says so; the watcher reads it the same way);
    // the one in force stays.
    std::fs::write(dir.path().join("web.yml"), "tls_server_config: [broken\n").unwrap();
    let refused = handle.web.reload().await.unwrap_err();
    assert!(refused.contains("web config"), "{refused}");
    for _ in 0..3 {
        assert_eq!(
            status_with(&tls_client(&second), port, "second-pass").await,
            Some(200)
        );
    }
}

#[tokio::test]
async fn logs_never_contain_secrets() {
    let sim = cyberpilot_sim(10).await;
    let mc = awareness_sim::mimecast::start(
        Arc::new(Population::generate(3, 10)),
        awareness_sim::mimecast::MimecastOptions::default(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    // Every secret is the sentinel; every request fails, so errors get logged.
    let cp = format!(
        "[[cyberpilot]]\naccount = \"cp\"\naccount_id = \"{}\"\nbase_url = \"{}\"\n",
        CyberPilotOptions::default().account_id,
        sim.base_url()
    );
    let login = format!(
        "[cyberpilot.login]\ntoken_url = \"{}/oauth/token\"\nclient_id = \"c\"\nusername = \"u\"\npassword = \"{SENTINEL}\"\n",
        sim.base_url()
    );
    let mimecast = format!(
        "[[mimecast]]\naccount = \"m\"\nbase_url = \"{url}\"\nclient_id = \"c\"\nclient_secret = \"{SENTINEL}\"\n\
         [[mimecast]]\naccount = \"h\"\nbase_url = \"{url}\"\nauth = \"hmac\"\napp_id = \"a\"\napp_key = \"{SENTINEL}\"\naccess_key = \"{SENTINEL}\"\nsecret_key = \"U0VOVElORUw=\"\n",
        url = mc.base_url()
    );
    std::fs::write(&path, format!("{cp}{login}{mimecast}")).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_awareness-exporter"))
        .arg("--config.file")
        .arg(&path)
        .args([
            "--web.listen-address",
            "127.0.0.1:0",
            "--log.level",
            "debug",
            "--log.format",
            "json",
        ])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Every line is kept; SIGTERM once every account has logged its failed poll.
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut logs = String::new();
    let mut failed = std::collections::BTreeSet::new();
    let all_failed = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let message = v["fields"]["message"].as_str().unwrap_or_default();
            if message.starts_with("poll failed") {
                failed.insert(
                    v["span"]["account"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
            logs.push_str(&line);
            logs.push('\n');
            if failed.len() == 3 {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        all_failed,
        Ok(true),
        "poll failed for cp, m and h: {failed:?} {logs}"
    );
    let pid = child.id().unwrap().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    while let Ok(Some(line)) = lines.next_line().await {
        logs.push_str(&line);
        logs.push('\n');
    }
    let status = child.wait().await.unwrap();
    assert_eq!(
        failed,
        ["cp", "h", "m"].map(String::from).into_iter().collect(),
        "errors were logged for every account"
    );
    assert!(!logs.contains(SENTINEL), "a secret reached the logs");
    assert!(status.success(), "SIGTERM is a clean shutdown");
}

#[tokio::test]
async fn sighup_reloads_the_config_file() {
    let sim = cyberpilot_sim(10).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, cp_block(&sim, "before", &good_token())).unwrap();
    let (mut child, addr) =
        common::start_binary(&path, &["--web.listen-address", "127.0.0.1:0"]).await;
    let base = format!("http://{addr}");
    wait_ready(&base).await;
    // Core dumps are off: a dump would hold every secret in plain memory.
    let pid = child.id().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "{core}");
    assert_eq!(core.split_whitespace().nth(5), Some("0"), "{core}");
    std::fs::write(&path, cp_block(&sim, "after", &good_token())).unwrap();
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let client = reqwest::Client::new();
    let mut body = String::new();
    for _ in 0..200 {
        body = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if body.contains("awareness_cyberpilot_users{account=\"after\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(body.contains("awareness_cyberpilot_users{account=\"after\""));
    assert!(!body.contains("account=\"before\""));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert!(child.wait().await.unwrap().success());
}
