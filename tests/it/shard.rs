//! Sharding (`--shard` / `--total-shards`): every replica reads the same config and polls only
//! the accounts of its shard, at start and after every reload; together the replicas poll each
//! account exactly once. The vendor here is a loopback listener that records which account each
//! request was for, so "never polled" means no request ever arrived.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use awareness_exporter::app::Exporter;
use awareness_exporter::model::{Platform, SourceKey};
use awareness_exporter::registry;
use awareness_exporter::Shard;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common;

/// A CyberPilot stand-in: answers every request with an empty users-summary page and records
/// the account id in its path.
async fn recording_vendor() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let path = head.split_whitespace().nth(1).unwrap_or_default();
                if let Some(id) = path
                    .strip_prefix("/accounts/")
                    .and_then(|p| p.split('/').next())
                {
                    log.lock().unwrap().push(id.to_string());
                }
                let body = r#"{"count":0,"fetched":0,"result":[]}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    (base, seen)
}

/// Accounts `acct-{i}` for `i` in `range`, each with its own account id `id-{i}`.
fn config_text(base: &str, range: std::ops::Range<usize>) -> String {
    range
        .map(|i| {
            format!(
                "[[cyberpilot]]\naccount = \"acct-{i}\"\naccount_id = \"id-{i}\"\nbase_url = \"{base}\"\ntoken = \"t\"\n"
            )
        })
        .collect()
}

fn key(i: usize) -> SourceKey {
    SourceKey::new(Platform::new("cyberpilot"), &format!("acct-{i}"))
}

fn polled(seen: &Mutex<Vec<String>>) -> BTreeSet<usize> {
    seen.lock()
        .unwrap()
        .iter()
        .filter_map(|id| id.strip_prefix("id-")?.parse().ok())
        .collect()
}

fn owned(shard: Shard, range: std::ops::Range<usize>) -> BTreeSet<usize> {
    range.filter(|i| shard.owns(&key(*i))).collect()
}

#[tokio::test]
async fn each_replica_polls_only_its_accounts_at_start_and_after_reloads() {
    let total = 3;
    let dir = tempfile::tempdir().unwrap();
    let mut replicas = Vec::new();
    for ordinal in 0..total {
        // One vendor per replica, so each one's requests are told apart.
        let (base, seen) = recording_vendor().await;
        let replica_path = dir.path().join(format!("exporter-{ordinal}.toml"));
        std::fs::write(&replica_path, config_text(&base, 0..12)).unwrap();
        let shard = Shard::new(ordinal, total).unwrap();
        let exporter = Exporter::start_with(
            registry::loader().load(&replica_path).unwrap(),
            Some(replica_path.clone()),
            shard,
            |p| p,
        );
        replicas.push((shard, exporter, seen, base, replica_path));
    }

    let mut union = BTreeSet::new();
    for (shard, exporter, seen, _, _) in &replicas {
        let want = owned(*shard, 0..12);
        assert!(
            common::eventually(20, || polled(seen) == want).await,
            "{shard:?}: polled {:?}, owns {want:?}",
            polled(seen)
        );
        let shown: BTreeSet<SourceKey> = exporter
            .store
            .statuses(SystemTime::now())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(shown, want.iter().map(|i| key(*i)).collect());
        assert!(union.is_disjoint(&want), "an account on two shards");
        union.extend(want);
    }
    assert_eq!(union, (0..12).collect(), "every account has a shard");

    // Reload with accounts 6..20: the removed ones stop, the new ones start, and still only
    // this shard's.
    for (shard, exporter, seen, base, path) in &replicas {
        std::fs::write(path, config_text(base, 6..20)).unwrap();
        exporter.reload().await.unwrap();
        let want_now = owned(*shard, 6..20);
        assert!(
            common::eventually(20, || want_now.is_subset(&polled(seen))).await,
            "{shard:?}: polled {:?} after the reload, owns {want_now:?}",
            polled(seen)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ever = polled(seen);
        let allowed: BTreeSet<usize> = owned(*shard, 0..20);
        assert!(
            ever.is_subset(&allowed),
            "{shard:?} polled another shard's account: {:?}",
            ever.difference(&allowed).collect::<Vec<_>>()
        );
        let shown: BTreeSet<SourceKey> = exporter
            .store
            .statuses(SystemTime::now())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(shown, want_now.iter().map(|i| key(*i)).collect());
    }
}

#[tokio::test]
async fn the_shard_shows_in_metrics_and_on_the_landing_page() {
    let (base, _seen) = recording_vendor().await;
    let config = registry::loader()
        .parse(&config_text(&base, 0..4), "shard.toml")
        .unwrap();
    let exporter = Exporter::start_with(config, None, Shard::new(1, 2).unwrap(), |p| p);
    let health = awareness_exporter::testing::snapshot::merge([&exporter.store.render_health()]);
    assert!(
        health.contains("awareness_shard_ordinal{shard=\"1\"} 1.0"),
        "{health}"
    );
    assert!(
        health.contains("awareness_total_shards{shard=\"1\"} 2.0"),
        "{health}"
    );
    let page = awareness_exporter::testing::landing::render(&exporter.store, SystemTime::now());
    assert!(page.contains("Shard 1 of 2"), "{page}");

    // Not sharded: no shard series, no note (the golden body is unchanged).
    let (base, _seen) = recording_vendor().await;
    let config = registry::loader()
        .parse(&config_text(&base, 0..1), "one.toml")
        .unwrap();
    let exporter = Exporter::start(config, None);
    let health = awareness_exporter::testing::snapshot::merge([&exporter.store.render_health()]);
    assert!(!health.contains("shard"), "{health}");
}

/// `--check-config` shows which shard polls each account, and bad shard flags are refused with
/// the flag named.
#[test]
fn check_config_shows_the_shards_and_refuses_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exporter.toml");
    std::fs::write(&path, config_text("http://127.0.0.1:9", 0..6)).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_awareness-exporter"))
            .arg("--config.file")
            .arg(&path)
            .arg("--check-config")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (ok, text) = run(&["--pod", "awareness-exporter-1", "--total-shards", "3"]);
    assert!(ok, "{text}");
    for i in 0..6 {
        let of = Shard::of(&key(i), 3);
        let mine = if of == 1 { ", polled here" } else { "" };
        assert!(
            text.contains(&format!("cyberpilot/acct-{i} "))
                && text.contains(&format!("(shard {of}{mine})")),
            "{text}"
        );
    }
    let (ok, text) = run(&["--shard", "3", "--total-shards", "3"]);
    assert!(!ok);
    assert!(
        text.contains("flag --shard: shard 3 does not exist"),
        "{text}"
    );
    let (ok, text) = run(&["--pod", "exporter", "--total-shards", "2"]);
    assert!(!ok);
    assert!(
        text.contains("flag --pod: cannot read a StatefulSet ordinal"),
        "{text}"
    );
}
