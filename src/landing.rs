//! The HTML landing page: what this is, a link to `/metrics`, and every source's state.
//! Everything shown comes from the store (no secrets live there) and is HTML-escaped.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::snapshot::SourceKey;
use crate::store::SourceStatus;

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

pub fn render(sources: &[(SourceKey, SourceStatus)], now: SystemTime) -> String {
    let mut rows = String::new();
    for (key, s) in sources {
        let state = if !s.first_poll_done() {
            "polling"
        } else if s.up {
            "up"
        } else {
            "down"
        };
        let _ = writeln!(
            rows,
            "<tr class=\"{state}\"><td>{}</td><td>{}</td><td>{state}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(key.platform.as_str()),
            escape(&key.account),
            escape(&when(s.last_success, now)),
            s.last_duration
                .map(|d| format!("{:.2}s", d.as_secs_f64()))
                .unwrap_or_else(|| "-".into()),
            s.series,
            escape(s.last_error.as_deref().unwrap_or("")),
        );
    }
    if sources.is_empty() {
        rows.push_str("<tr><td colspan=\"7\">No sources configured.</td></tr>\n");
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>awareness-exporter</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
tr.up td:nth-child(3) {{ color: #1a7f37; }}
tr.down td:nth-child(3) {{ color: #cf222e; font-weight: bold; }}
</style></head>
<body>
<h1>awareness-exporter</h1>
<p>Prometheus exporter for security awareness training platforms, version {version}.</p>
<p><a href="/metrics">Metrics</a> · <a href="/-/healthy">Health</a> · <a href="/-/ready">Readiness</a></p>
<h2>Sources</h2>
<table>
<tr><th>Platform</th><th>Account</th><th>State</th><th>Last success</th><th>Last poll took</th><th>Series</th><th>Last error</th></tr>
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
    use crate::snapshot::Platform;

    #[test]
    fn escapes_everything_shown() {
        let key = SourceKey::new(Platform::Mimecast, "<script>alert(1)</script>");
        let status = SourceStatus {
            last_error: Some("bad \"thing\" & <b>".into()),
            polls_failed: 1,
            ..Default::default()
        };
        let html = render(&[(key, status)], SystemTime::now());
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("bad &quot;thing&quot; &amp; &lt;b&gt;"));
        assert!(html.contains("<td>down</td>"));
    }
}
