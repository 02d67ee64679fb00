//! Bounds on what a vendor can make us do: big pages are decoded off the serving threads,
//! rows per poll are capped (`poll.max_rows`), and CyberPilot paging follows the server's cap.

use crate::common;
use crate::common::harness::Counted as _;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use awareness_exporter::app::{self, Exporter};
use awareness_exporter::model::FailureReason;
use awareness_sim::cyberpilot::{self, CyberPilotOptions};
use awareness_sim::{Population, SimServer};
use common::*;

/// A loopback CyberPilot that answers every users-summary request with `body(skip)`, from a
/// thread of its own (never on the exporter's runtime).
struct PageServer {
    addr: SocketAddr,
}

fn page_server(body: impl Fn(u64) -> Vec<u8> + Send + Sync + 'static) -> PageServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let body = Arc::new(body);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let body = body.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let skip = head
                    .split(['?', '&', ' '])
                    .find_map(|p| p.strip_prefix("skip="))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let payload = body(skip);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    payload.len()
                );
                let _ = stream.write_all(&payload);
            });
        }
    });
    PageServer { addr }
}

/// `{count, fetched, result}` with `n` users at skip 0 (one big page), empty after.
fn big_page(n: u64, skip: u64) -> Vec<u8> {
    if skip > 0 {
        return format!("{{\"count\":{n},\"fetched\":0,\"result\":[]}}").into_bytes();
    }
    let mut out = format!("{{\"count\":{n},\"fetched\":{n},\"result\":[").into_bytes();
    for i in 0..n {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(
            format!(
                "{{\"enrolledCourses\":3,\"notCompletedCourses\":1,\"overdueCourses\":0,\
                 \"averageScore\":80,\"enrolledMaterials\":2,\"notCompletedMaterials\":0,\
                 \"phishingCampaigns\":1,\"emailsSent\":1,\"linksClicked\":0,\"dataSubmitted\":0,\
                 \"lastAction\":\"Email sent\",\"user\":{{\"id\":\"user-{i}\",\
                 \"email\":\"user-{i}@example.com\",\"branch\":{{\"name\":\"b{}\"}}}}}}",
                i % 7
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(b"]}");
    out
}

fn cp_config(url: &str, extra: &str) -> String {
    format!(
        "{extra}\n[[cyberpilot]]\naccount = \"big\"\naccount_id = \"big\"\nbase_url = \"{url}\"\ntoken = \"t\"\n"
    )
}

/// One plain HTTP/1.1 GET with a deadline on every step; the status, or `None` when it did
/// not answer in time.
fn status_of(addr: SocketAddr, path: &str, deadline: Duration) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, deadline).ok()?;
    s.set_read_timeout(Some(deadline)).ok()?;
    s.set_write_timeout(Some(deadline)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).ok()?;
    std::str::from_utf8(&buf[9..12]).ok()?.parse().ok()
}

/// The exporter runs on this test's single-threaded runtime: if a page were decoded on an async
/// thread, a `/-/healthy` asked while it decodes could not answer until the decoding was done,
/// most of the poll. The bound is relative (the slowest answer under a quarter of the poll), so
/// a small page shows it on a loaded machine as well as on an idle one.
#[tokio::test(flavor = "current_thread")]
async fn health_answers_while_huge_pages_decode() {
    const USERS: u64 = 40_000; // about 12 MB of JSON, most of the poll's time to decode
    let page = Arc::new(big_page(USERS, 0));
    let vendor = page_server(move |skip| match skip {
        0 => page.to_vec(),
        _ => big_page(USERS, skip),
    });
    let mut config = parse(&cp_config(
        &format!("http://{}", vendor.addr),
        "[poll]\nmax_body_bytes = 134217728\n",
    ));
    config.poll.timeout = Duration::from_secs(120);
    let server_config = config.server.clone();
    let started = std::time::Instant::now();
    let exporter = Exporter::start(config, None);
    let handle = app::serve(exporter.clone(), "127.0.0.1:0", &server_config)
        .await
        .unwrap();

    // Health checks from a thread of their own: how many answered, how many did not within a
    // generous deadline, and the slowest answer.
    let done = Arc::new(AtomicBool::new(false));
    let (addr, stop) = (handle.addr, done.clone());
    let checker = std::thread::spawn(move || {
        let (mut answered, mut missed, mut slowest) = (0u32, 0u32, Duration::ZERO);
        while !stop.load(Ordering::SeqCst) {
            let asked = std::time::Instant::now();
            match status_of(addr, "/-/healthy", Duration::from_secs(30)) {
                Some(200) => answered += 1,
                _ => missed += 1,
            }
            slowest = slowest.max(asked.elapsed());
            std::thread::sleep(Duration::from_millis(10));
        }
        (answered, missed, slowest)
    });

    let polled = eventually(300, || {
        exporter
            .store
            .render(std::time::SystemTime::now())
            .contains("awareness_cyberpilot_users{")
    })
    .await;
    let poll_took = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let (answered, missed, slowest) = tokio::task::spawn_blocking(move || checker.join().unwrap())
        .await
        .unwrap();
    exporter.poller.stop();
    assert!(polled, "the big report was read");
    let body = exporter.store.render(std::time::SystemTime::now());
    let users: f64 = samples(&body)
        .iter()
        .filter(|(k, _)| k.starts_with("awareness_cyberpilot_users{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(users, USERS as f64);
    assert!(answered > 0);
    assert_eq!(missed, 0, "/-/healthy did not answer {missed} times");
    assert!(
        slowest < poll_took / 4,
        "/-/healthy waited {slowest:?} while a poll of {poll_took:?} decoded its page"
    );
}

#[tokio::test]
async fn rows_beyond_max_rows_fail_the_poll_as_decode() {
    let vendor = page_server(|skip| big_page(5_000, skip));
    let url = format!("http://{}", vendor.addr);
    let config = parse(&cp_config(&url, "[poll]\nmax_rows = 1000\n"));
    let (outcome, stats) = poll_once(&config).await;
    let err = outcome.sections[0].result.as_ref().unwrap_err();
    assert_eq!(err.reason(), Some(FailureReason::Decode), "a typed reason");
    let err = err.to_string();
    assert!(err.contains("poll.max_rows (1000)"), "{err}");
    assert!(stats.failures(FailureReason::Decode) >= 1);

    // The default is generous: the same report is read whole.
    let config = parse(&cp_config(&url, ""));
    let (outcome, _) = poll_once(&config).await;
    assert!(outcome.sections[0].result.is_ok());
}

#[tokio::test]
async fn a_page_of_empty_rows_stops_at_max_rows() {
    // 100k `{}` rows in one page: reading stops at the budget, and it is a decode failure.
    let vendor = page_server(|_| {
        let mut out = b"{\"count\":100000,\"fetched\":100000,\"result\":[".to_vec();
        out.extend(std::iter::repeat_n(b"{},".as_slice(), 99_999).flatten());
        out.extend_from_slice(b"{}]}");
        out
    });
    let config = parse(&cp_config(
        &format!("http://{}", vendor.addr),
        "[poll]\nmax_rows = 10000\n",
    ));
    let (outcome, stats) = poll_once(&config).await;
    let err = outcome.sections[0].result.as_ref().unwrap_err().to_string();
    assert!(err.contains("max_rows"), "{err}");
    assert!(stats.failures(FailureReason::Decode) >= 1);
}

#[tokio::test]
async fn a_total_beyond_max_pages_is_refused_before_its_pages_are_planned() {
    // 10^15 users, one a page: the plan of every page alone would take petabytes.
    let vendor = page_server(|_| br#"{"count":1e15,"result":[{"user":{"id":"u"}}]}"#.to_vec());
    let config = parse(&cp_config(
        &format!("http://{}", vendor.addr),
        "[poll]\nmax_pages = 10\n",
    ));
    let (outcome, _) = poll_once(&config).await;
    let err = outcome.sections[0].result.as_ref().unwrap_err().to_string();
    assert!(err.contains("poll.max_pages (10)"), "{err}");
}

#[tokio::test]
async fn mimecast_rows_count_against_max_rows_across_sections() {
    use awareness_sim::mimecast::{self, MimecastOptions};
    let pop = Arc::new(Population::generate(5, 300));
    let sim = mimecast::start(pop, MimecastOptions::default())
        .await
        .unwrap();
    let block = mimecast::account_block(&sim, "mc", &MimecastOptions::default().auth);
    let text = |max_rows: usize| {
        format!(
            "[poll]\nmax_rows = {max_rows}\n{block}page_size = 100\nendpoints = [\"performance-details\", \"watchlist-details\"]\n"
        )
    };
    // Each endpoint alone fits (300 rows), both together do not.
    let (outcome, _) = poll_once(&parse(&text(450))).await;
    let failed: Vec<String> = outcome
        .sections
        .iter()
        .filter_map(|s| s.result.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert!(!failed.is_empty(), "600 rows read under max_rows = 450");
    assert!(failed.iter().all(|e| e.contains("poll.max_rows (450)")));
    let (outcome, _) = poll_once(&parse(&text(600))).await;
    assert!(outcome.sections.iter().all(|s| s.result.is_ok()));
}

async fn capped_sim(users: usize, max_take: usize) -> SimServer {
    let options = CyberPilotOptions {
        max_take,
        ..CyberPilotOptions::default()
    };
    cyberpilot::start(Arc::new(Population::generate(3, users)), options)
        .await
        .unwrap()
}

#[tokio::test]
async fn cyberpilot_pages_by_the_servers_cap() {
    let o = CyberPilotOptions::default();
    for (users, cap) in [(1_000, 250), (1_234, 1_000), (999, 5_000)] {
        let sim = capped_sim(users, cap).await;
        // No page_size: a large `take` is asked for, and the server's cap sets the paging.
        let config = parse(&format!(
            "{}{}",
            o.account_block(&sim, "acme"),
            o.token_key()
        ));
        let (outcome, _) = poll_once(&config).await;
        assert!(outcome.sections[0].result.is_ok());
        let expected = users.div_ceil(cap.min(1_000)) as u64;
        assert_eq!(
            sim.control.requests("users-summary"),
            expected,
            "{users} users, server cap {cap}"
        );
    }
    // page_size stays an upper bound the user sets.
    let sim = capped_sim(250, 1_000).await;
    let config = parse(&format!(
        "{}{}page_size = 50\n",
        o.account_block(&sim, "acme"),
        o.token_key()
    ));
    let (outcome, _) = poll_once(&config).await;
    assert!(outcome.sections[0].result.is_ok());
    assert_eq!(sim.control.requests("users-summary"), 5);
}

/// `n` users at skip 0, each in a branch of its own.
fn distinct_branches(n: u64, skip: u64) -> Vec<u8> {
    if skip > 0 {
        return format!("{{\"count\":{n},\"fetched\":0,\"result\":[]}}").into_bytes();
    }
    let rows: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{{\"overdueCourses\":1,\"user\":{{\"id\":\"u{i}\",\"email\":\"u{i}@x\",\"branch\":{{\"name\":\"branch-{i:06}\"}}}}}}"
            )
        })
        .collect();
    format!(
        "{{\"count\":{n},\"fetched\":{n},\"result\":[{}]}}",
        rows.join(",")
    )
    .into_bytes()
}

#[tokio::test]
async fn branch_names_beyond_max_label_values_fold_into_other() {
    const USERS: u64 = 5_000;
    let vendor = page_server(|skip| distinct_branches(USERS, skip));
    let config = parse(&cp_config(&format!("http://{}", vendor.addr), ""));
    assert_eq!(config.metrics.max_label_values, 1000, "the default");
    let (outcome, stats) = poll_once(&config).await;
    let text = text_of(&outcome);
    let users: Vec<(String, f64)> = samples(&text)
        .into_iter()
        .filter(|(k, _)| k.starts_with("awareness_cyberpilot_users{"))
        .collect();
    assert_eq!(users.len(), 1001, "1,000 branches and __other__");
    assert_eq!(users.iter().map(|(_, v)| v).sum::<f64>(), USERS as f64);
    let other = series(
        "awareness_cyberpilot_users",
        &[("account", "big"), ("branch", "__other__")],
    );
    assert_eq!(samples(&text).get(&other), Some(&((USERS - 1000) as f64)));
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.labels_folded.get("branch"), Some(&(USERS - 1000)));
    assert_eq!(snapshot.rows_read, Some(USERS));
}

#[tokio::test]
async fn mimecast_departments_fold_and_sums_stay() {
    use awareness_sim::mimecast::{self, MimecastOptions};
    let pop = Arc::new(Population::generate(5, 300));
    let departments = pop.departments().len() as u64;
    let sim = mimecast::start(pop, MimecastOptions::default())
        .await
        .unwrap();
    let block = mimecast::account_block(&sim, "mc", &MimecastOptions::default().auth);
    let text = |extra: &str| {
        format!(
            "[metrics]\n{extra}\n{block}page_size = 100\nendpoints = [\"performance-details\"]\n"
        )
    };
    let users = |text: &str| -> Vec<(String, f64)> {
        samples(text)
            .into_iter()
            .filter(|(k, _)| k.starts_with("awareness_mimecast_users{"))
            .collect()
    };
    let (whole, _) = poll_once(&parse(&text(""))).await;
    let whole = users(&text_of(&whole));
    assert!(departments > 3, "the simulator has several departments");
    let (capped, stats) = poll_once(&parse(&text("max_label_values = 2"))).await;
    let capped = users(&text_of(&capped));
    let named = capped
        .iter()
        .filter(|(k, _)| !k.contains("department=\"\""))
        .count();
    assert_eq!(named, 3, "two departments and __other__: {capped:?}");
    assert!(capped.iter().any(|(k, _)| k.contains("__other__")));
    let sum = |v: &[(String, f64)]| v.iter().map(|(_, n)| n).sum::<f64>();
    assert_eq!(sum(&capped), sum(&whole));
    // Every department name beyond the two kept (the rows' own spellings, "" included).
    let folded = stats.snapshot().labels_folded.get("department").copied();
    assert!(folded.is_some_and(|n| n >= departments - 2), "{folded:?}");
    assert_eq!(stats.snapshot().rows_read, Some(300));
}

/// `n` users at skip 0, each in a branch of its own with a name of `len` bytes.
fn long_branches(n: u64, len: usize, skip: u64) -> Vec<u8> {
    if skip > 0 {
        return format!("{{\"count\":{n},\"fetched\":0,\"result\":[]}}").into_bytes();
    }
    let rows: Vec<String> = (0..n)
        .map(|i| {
            let name = format!("{i:06}{}", "x".repeat(len));
            format!(
                "{{\"overdueCourses\":1,\"user\":{{\"id\":\"u{i}\",\"email\":\"u{i}@x\",\"branch\":{{\"name\":\"{name}\"}}}}}}"
            )
        })
        .collect();
    format!(
        "{{\"count\":{n},\"fetched\":{n},\"result\":[{}]}}",
        rows.join(",")
    )
    .into_bytes()
}

/// Issue 24 (3): 4,000 users in branches of their own, each name 4 KB (a 16 MB page someone
/// with access to the vendor's console, or the HR sync behind it, can make). Every label value
/// is cut to 256 bytes and counted, and the rare ones fold: the body stays a few MB, bounded by
/// `metrics.max_label_values` × 256 bytes a series, not by what the vendor sent (on main it was
/// 4,000 × 13 series × 4 KB, over 200 MB).
#[tokio::test]
async fn long_vendor_strings_are_cut_and_the_body_stays_bounded() {
    const USERS: u64 = 4_000;
    let vendor = page_server(|skip| long_branches(USERS, 4096, skip));
    let config = parse(&cp_config(
        &format!("http://{}", vendor.addr),
        "[poll]\nmax_body_bytes = 67108864\n",
    ));
    let (outcome, stats) = poll_once(&config).await;
    let text = text_of(&outcome);
    assert!(text.len() < 6 << 20, "{} bytes", text.len());
    let longest = text
        .lines()
        .filter(|l| l.starts_with("awareness_cyberpilot_users{"))
        .map(|l| l.len())
        .max()
        .unwrap();
    assert!(longest < 400, "{longest}");
    assert!(text.contains("xxx…\"}"), "cut values end in the marker");
    assert_eq!(stats.snapshot().labels_cut, USERS);
    let users: f64 = samples(&text)
        .iter()
        .filter(|(k, _)| k.starts_with("awareness_cyberpilot_users{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(users, USERS as f64, "every user still counted");
}
