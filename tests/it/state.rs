//! Restart state (`[server] state_dir`): a restart serves the last good data at once and asks
//! the vendor nothing before the interval; bad state files are ignored with a reason; nothing
//! secret is kept.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use awareness_exporter::app::Exporter;
use awareness_exporter::registry;
use awareness_sim::cyberpilot::{self, CyberPilotOptions};
use awareness_sim::{toml_str, Population, SimServer};
use common::{eventually, Captured, Render};

const TOKEN: &str = "state-test-SECRET-token";

/// A CyberPilot simulator and a config file polling it with a state dir: (server, config path,
/// state dir, the temporary directory holding both).
async fn setup() -> (SimServer, PathBuf, PathBuf, tempfile::TempDir) {
    let options = CyberPilotOptions {
        static_token: Some(TOKEN.into()),
        ..CyberPilotOptions::default()
    };
    let sim = cyberpilot::start(Arc::new(Population::generate(7, 30)), options.clone())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let text = format!(
        "[server]\nstate_dir = {}\n\n{}token = {}\n",
        toml_str(&state.display().to_string()),
        options.account_block(&sim, "acme"),
        toml_str(TOKEN)
    );
    let path = dir.path().join("exporter.toml");
    std::fs::write(&path, text).unwrap();
    (sim, path, state, dir)
}

/// The state files in `dir` (not the temporary file of a save under way).
fn files(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect());
    let mut files: Vec<PathBuf> = entries.unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files
}

/// The data series of a body, and the success times: what a restart must serve unchanged.
fn data_series(body: &str) -> Vec<String> {
    body.lines()
        .filter(|l| {
            l.starts_with("awareness_cyberpilot_")
                || l.starts_with("awareness_last_success_timestamp_seconds{")
                || l.starts_with("awareness_section_last_success_timestamp_seconds{")
        })
        .map(str::to_string)
        .collect()
}

/// Runs an exporter until its first poll is published and saved: (body, state file).
async fn first_run(path: &Path, state: &Path) -> (String, PathBuf) {
    let exporter = Exporter::start(
        registry::loader().load(path).unwrap(),
        Some(path.to_path_buf()),
    );
    assert!(eventually(20, || files(state).len() == 1).await);
    exporter.poller.stop();
    let body = exporter.store.render(SystemTime::now());
    (body, files(state).remove(0))
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The real binary, killed with SIGKILL after its first poll and started again: the same data
/// series at once, and no request to the vendor.
#[tokio::test]
async fn after_kill_9_the_same_data_is_served_at_once_and_the_vendor_is_not_asked() {
    let (sim, path, state, _dir) = setup().await;
    let address = format!("127.0.0.1:{}", free_port());
    let start = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_awareness-exporter"))
            .arg("--config.file")
            .arg(&path)
            .args(["--web.listen-address", &address, "--log.level", "warn"])
            .spawn()
            .unwrap()
    };
    let client = reqwest::Client::new();
    let metrics = || async {
        let r = client.get(format!("http://{address}/metrics")).send().await;
        match r {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    };
    let mut first = start();
    let mut body = String::new();
    for _ in 0..200 {
        body = metrics().await;
        if body.contains("awareness_cyberpilot_users{") && files(&state).len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = data_series(&body);
    assert!(
        before
            .iter()
            .any(|l| l.starts_with("awareness_cyberpilot_users{")),
        "{body}"
    );
    let requests = sim.control.total_requests();
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    let mut second = start();
    let mut after = Vec::new();
    for _ in 0..200 {
        after = data_series(&metrics().await);
        if !after.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(after, before);
    assert_eq!(
        sim.control.total_requests(),
        requests,
        "no request before the interval"
    );
}

/// Ten restarts in a row cost no more than the one poll before them; the state file is 0600 in
/// a 0700 directory and holds no secret.
#[tokio::test]
async fn ten_restarts_cost_one_poll_and_the_file_keeps_no_secret() {
    let (sim, path, state, _dir) = setup().await;
    let (body, file) = first_run(&path, &state).await;
    let one_poll = sim.control.total_requests();
    assert!(one_poll > 0);
    for _ in 0..10 {
        let exporter = Exporter::start(registry::loader().load(&path).unwrap(), Some(path.clone()));
        assert!(eventually(10, || exporter.store.ready()).await);
        let now = SystemTime::now();
        assert_eq!(data_series(&exporter.store.render(now)), data_series(&body));
        exporter.poller.stop();
    }
    assert_eq!(sim.control.total_requests(), one_poll);

    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&file), mode(&state)), (0o600, 0o700));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(TOKEN) && !text.contains("SECRET"), "{text}");
}

/// Each bad file is logged with its reason and ignored: the account polls at once, as without
/// state. A file of another vendor URL or account is removed; so is an account no longer
/// configured.
#[tokio::test]
async fn bad_state_files_are_logged_and_ignored() {
    let (sim, path, state, _dir) = setup().await;
    let (_, file) = first_run(&path, &state).await;
    let good = std::fs::read_to_string(&file).unwrap();
    let other_url = good.replacen("\"identity\":\"", "\"identity\":\"0", 1);
    assert_ne!(other_url, good);
    let write = |text: &[u8]| std::fs::write(&file, text).unwrap();
    for case in [
        "truncated",
        "corrupt",
        "foreign version",
        "unreadable",
        "another URL",
    ] {
        let reason = match case {
            "truncated" => {
                write(&good.as_bytes()[..good.len() / 2]);
                "truncated or corrupt"
            }
            "corrupt" => {
                write(b"\x00\xffnot json");
                "truncated or corrupt"
            }
            "foreign version" => {
                write(
                    good.replacen("\"version\":2", "\"version\":99", 1)
                        .as_bytes(),
                );
                "format version 99"
            }
            "unreadable" => {
                std::fs::remove_file(&file).unwrap();
                std::fs::create_dir(&file).unwrap();
                "not a regular file"
            }
            _ => {
                std::fs::remove_dir(&file).unwrap();
                write(other_url.as_bytes());
                "saved for another"
            }
        };
        let log = Captured::default();
        let guard = log.install();
        let requests = sim.control.total_requests();
        let bad = std::fs::read(&file).ok();
        let exporter = Exporter::start(registry::loader().load(&path).unwrap(), Some(path.clone()));
        // Polled, published and saved afresh (or failed to save over the directory in the
        // way), so no save of this run can land on the next case's file.
        let saved = || match file.is_dir() {
            true => log.text().contains("cannot save the state"),
            false => std::fs::read(&file).is_ok_and(|t| Some(&t) != bad.as_ref()),
        };
        assert!(
            eventually(20, || exporter.store.ready() && saved()).await,
            "{case}"
        );
        exporter.poller.stop();
        drop(guard);
        assert!(
            sim.control.total_requests() > requests,
            "{case}: polled at once"
        );
        let warned: Vec<String> = log
            .text()
            .lines()
            .filter(|l| l.contains("saved state ignored"))
            .map(str::to_string)
            .collect();
        assert_eq!(warned.len(), 1, "{case}: {warned:?}");
        assert!(warned[0].contains(reason), "{case}: {warned:?}");
    }
    let _ = std::fs::remove_dir(&file);

    // The account renamed: the old file goes at start.
    std::fs::write(&file, &good).unwrap();
    let renamed = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"acme\"", "\"acme2\"");
    std::fs::write(&path, renamed).unwrap();
    let exporter = Exporter::start(registry::loader().load(&path).unwrap(), Some(path.clone()));
    assert!(eventually(20, || files(&state).len() == 1 && !file.exists()).await);
    exporter.poller.stop();
}
