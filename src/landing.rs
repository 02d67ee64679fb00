//! The HTML landing page: what this is, a link to `/metrics`, and every source's state.
//! Everything shown comes from the store (no secrets live there) and is HTML-escaped.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::model::SourceKey;
use crate::store::{SourceStatus, Store};

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn when(t: Option<SystemTime>, now: SystemTime) -> String {
    match t {
        None => "never".to_string(),
        Some(t) => {
            let stamp = chrono::DateTime::<chrono::Utc>::from(t).format("%Y-%m-%d %H:%M:%S UTC");
            let ago = now.duration_since(t).map(|d| d.as_secs()).unwrap_or(0);
            format!("{stamp} ({ago}s ago)")
        }
    }
}

/// The page for everything the store holds now.
pub fn render(store: &Store, now: SystemTime) -> String {
    let mut notes = String::new();
    if let Some((at, reason)) = store.config_status().refused {
        let _ = writeln!(
            notes,
            "<p class=\"refused\"><strong>Config reload refused</strong> at {}; the running \
             config is kept:<br><pre>{}</pre></p>",
            escape(&when(Some(at), now)),
            escape(&reason)
        );
    }
    if let Some((ordinal, total)) = store.shard() {
        let _ = writeln!(
            notes,
            "<p class=\"shard\">Shard {ordinal} of {total}: this replica polls only the accounts \
             whose hash of (platform, account) falls on its shard; the other replicas poll the \
             rest.</p>"
        );
    }
    page(&store.statuses(now), store.demo_mode(), &notes, now)
}

/// The state column: the last result, the sections down or not offered, and the poll running
/// now with its latest error.
fn state_of(s: &SourceStatus, now: SystemTime) -> (&'static str, String) {
    let class = match (s.first_poll_done(), s.up) {
        (false, _) => "polling",
        (true, true) => "up",
        (true, false) => "down",
    };
    let mut text = String::from(if class == "polling" {
        "first poll running"
    } else {
        class
    });
    let names = |offered: bool| -> Vec<&str> {
        let down = s.sections.iter().filter(|h| h.up == Some(false));
        down.filter(|h| h.not_offered() != offered)
            .map(|h| h.name)
            .collect()
    };
    let (down, not_offered) = (names(true), names(false));
    if !down.is_empty() && down.len() < s.sections.len() {
        let _ = write!(text, " (sections down: {})", escape(&down.join(", ")));
    }
    if !not_offered.is_empty() {
        let _ = write!(
            text,
            "<br>not offered by this tenant: {} (leave it out of this account's \
             <code>endpoints</code> to stop asking)",
            escape(&not_offered.join(", "))
        );
    }
    if let Some(since) = s.polling_since {
        let _ = write!(
            text,
            "<br>polling since {}",
            escape(&when(Some(since), now))
        );
        if let Some((endpoint, reason)) = &s.current_error {
            let _ = write!(
                text,
                "<br>latest error: {}: {}",
                escape(endpoint),
                escape(reason.as_str())
            );
        }
    }
    (class, text)
}

pub fn page(
    sources: &[(SourceKey, SourceStatus)],
    demo: bool,
    notes: &str,
    now: SystemTime,
) -> String {
    let mut rows = String::new();
    for (key, s) in sources {
        let (class, state) = state_of(s, now);
        let error = s.last_error.as_ref();
        let _ = writeln!(
            rows,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{state}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(key.platform.as_str()),
            escape(&key.account),
            escape(&s.info.url),
            escape(s.info.auth),
            escape(&when(s.last_success, now)),
            s.last_duration
                .map(|d| format!("{:.2}s", d.as_secs_f64()))
                .unwrap_or_else(|| "-".into()),
            s.series,
            escape(&error.map_or(String::new(), |e| format!("{}: {}", e.section, e.error.summary()))),
            escape(error.and_then(|e| e.reason()).map_or("", |r| r.as_str())),
        );
    }
    if sources.is_empty() {
        rows.push_str("<tr><td colspan=\"10\">No sources configured.</td></tr>\n");
    }
    let mode = if demo {
        "<p class=\"demo\"><strong>Demo mode</strong>: every source is a built-in simulator on loopback, not a vendor. Run with <code>--config.file</code> to poll real accounts.</p>\n"
    } else {
        ""
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>awareness-exporter</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
tr.up td:nth-child(5) {{ color: #1a7f37; }}
tr.down td:nth-child(5) {{ color: #cf222e; font-weight: bold; }}
p.demo {{ background: #fff8c5; padding: 4px 8px; }}
p.refused {{ background: #ffebe9; padding: 4px 8px; }}
</style></head>
<body>
<h1>awareness-exporter</h1>
<p>Prometheus exporter for security awareness training platforms, version {version}.</p>
{mode}<p><a href="/metrics">Metrics</a> · <a href="/-/healthy">Health</a> · <a href="/-/ready">Readiness</a></p>
{notes}<h2>Sources</h2>
<table>
<tr><th>Platform</th><th>Account</th><th>Vendor URL</th><th>Auth</th><th>State</th><th>Last success</th><th>Last poll took</th><th>Series</th><th>Last error</th><th>Reason</th></tr>
{rows}</table>
</body>
</html>
"#,
        version = env!("CARGO_PKG_VERSION"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Platform;

    #[test]
    fn escapes_everything_shown() {
        let key = SourceKey::new(Platform::new("mimecast"), "<script>alert(1)</script>");
        let status = SourceStatus {
            last_error: Some(crate::model::SectionError {
                section: "s",
                error: crate::model::FetchError::new(
                    crate::model::FailureReason::Auth,
                    "bad \"thing\" & <b>",
                )
                .into(),
            }),
            last_poll_end: Some(SystemTime::now()),
            ..Default::default()
        };
        let html = page(&[(key, status)], false, "", SystemTime::now());
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("<td>s: auth</td><td>auth</td>"), "{html}");
        assert!(
            !html.contains("thing"),
            "the vendor's prose is not shown: {html}"
        );
        assert!(html.contains("<td>down</td>"));
        assert!(!html.contains("Demo mode"));
    }

    #[test]
    fn shows_vendor_auth_demo_mode_and_the_running_poll() {
        let key = SourceKey::new(Platform::new("mimecast"), "acme");
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(100_000);
        let status = SourceStatus {
            info: crate::model::SourceInfo {
                url: crate::sources::public_url(
                    "https://user:pw@api.services.mimecast.com/?k=SECRET#x",
                ),
                auth: "OAuth2 client credentials (API 2.0)",
            },
            polling_since: Some(now - std::time::Duration::from_secs(42)),
            current_error: Some(("oauth/token", crate::model::FailureReason::Timeout)),
            ..Default::default()
        };
        let html = page(&[(key, status)], true, "", now);
        assert!(
            html.contains("<td>https://api.services.mimecast.com</td>"),
            "{html}"
        );
        assert!(!html.contains("SECRET") && !html.contains("pw@"));
        assert!(html.contains("OAuth2 client credentials (API 2.0)"));
        assert!(html.contains("Demo mode"));
        assert!(
            html.contains("polling since 1970-01-02 03:45:58 UTC"),
            "{html}"
        );
        assert!(html.contains("(42s ago)"));
        assert!(html.contains("latest error: oauth/token: timeout"));
    }
}
