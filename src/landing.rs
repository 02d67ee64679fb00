//! The HTML landing page: what this is, a link to `/metrics`, and every source's state.
//! Everything shown comes from the store (no secrets live there) and is HTML-escaped.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::model::SourceKey;
use crate::store::{SourceStatus, Store};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A time as a person reads it, and how long ago it was; escaped.
fn when(t: SystemTime, now: SystemTime) -> String {
    let stamp = chrono::DateTime::<chrono::Utc>::from(t).format("%Y-%m-%d %H:%M:%S UTC");
    let ago = now.duration_since(t).unwrap_or_default().as_secs();
    format!("{stamp} ({ago}s ago)")
}

/// The page for everything the store holds now.
pub fn render(store: &Store, now: SystemTime) -> String {
    let mut notes = String::new();
    if store.demo {
        notes.push_str("<p class=\"demo\"><strong>Demo mode</strong>: every source is a built-in simulator on loopback, not a vendor. Run with <code>--config.file</code> to poll real accounts.</p>\n");
    }
    if let Some((at, reason)) = store.config_status().refused {
        let _ = writeln!(
            notes,
            "<p class=\"refused\"><strong>Config reload refused</strong> at {}; the running \
             config is kept:<br><pre>{}</pre></p>",
            when(at, now),
            escape(&reason)
        );
    }
    if let Some((ordinal, total)) = store.shard {
        let _ = writeln!(
            notes,
            "<p class=\"shard\">Shard {ordinal} of {total}: this replica polls only the accounts \
             whose hash of (platform, account) falls on its shard; the other replicas poll the \
             rest.</p>"
        );
    }
    page(&store.statuses(now), &notes, now)
}

/// The state column: the last result, the sections down or not offered, and the poll running
/// now with its latest error.
fn state_of(s: &SourceStatus, now: SystemTime) -> (&'static str, String) {
    let (class, mut text) = match (s.first_poll_done(), s.up()) {
        (false, _) => ("polling", String::from("first poll running")),
        (true, true) => ("up", String::from("up")),
        (true, false) => ("down", String::from("down")),
    };
    let names = |offered: bool| -> Vec<&str> {
        let down = s.sections.iter().filter(|(_, h)| h.up() == Some(false));
        let down = down.filter(|(_, h)| h.not_offered() != offered);
        down.map(|(name, _)| *name).collect()
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
        let _ = write!(text, "<br>polling since {}", when(since, now));
        if let Some((endpoint, reason)) = s.current_error() {
            let _ = write!(text, "<br>latest error: {}: {reason}", escape(endpoint));
        }
    }
    (class, text)
}

fn page(sources: &[(SourceKey, SourceStatus)], notes: &str, now: SystemTime) -> String {
    let mut rows = String::new();
    for (key, s) in sources {
        let (class, state) = state_of(s, now);
        let error = s.last_error.as_ref();
        let cells = [
            escape(key.platform.as_str()),
            escape(&key.account),
            escape(&s.info.url),
            escape(s.info.auth),
            state,
            s.last_success.map_or("never".into(), |t| when(t, now)),
            s.last_duration
                .map_or("-".into(), |d| format!("{:.2}s", d.as_secs_f64())),
            s.series().to_string(),
            error.map_or(String::new(), |e| {
                escape(&format!("{}: {}", e.section, e.error.summary()))
            }),
            error
                .and_then(|e| e.error.reason())
                .map_or(String::new(), |r| r.to_string()),
        ];
        let cells: String = cells.iter().map(|c| format!("<td>{c}</td>")).collect();
        let _ = writeln!(rows, "<tr class=\"{class}\">{cells}</tr>");
    }
    if sources.is_empty() {
        rows.push_str("<tr><td colspan=\"10\">No sources configured.</td></tr>\n");
    }
    // The page's HTML and style (src/landing.html), with {0} the version, {1} the notes and
    // {2} the rows filled in.
    let version = env!("CARGO_PKG_VERSION");
    format!(include_str!("landing.html"), version, notes, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FailureReason, FetchError, Platform, SectionError, SourceInfo};
    use std::time::Duration;

    #[test]
    fn escapes_everything_shown() {
        let key = SourceKey::new(Platform::new("mimecast"), "<script>alert(1)</script>");
        let error = FetchError::new(FailureReason::Auth, "bad \"thing\" & <b>");
        let status = SourceStatus {
            last_error: Some(SectionError {
                section: "s",
                error: error.into(),
            }),
            last_duration: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        let html = page(&[(key, status)], "", SystemTime::now());
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("<td>s: auth</td><td>auth</td>"), "{html}");
        assert!(
            !html.contains("thing"),
            "the vendor's prose is not shown: {html}"
        );
        assert!(html.contains("<td>down</td>"));
        assert_eq!(escape("&<>\"'"), "&amp;&lt;&gt;&quot;&#39;");
    }

    #[test]
    fn shows_the_vendor_its_auth_and_the_running_poll() {
        let key = SourceKey::new(Platform::new("mimecast"), "acme");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100_000);
        let status = SourceStatus {
            info: SourceInfo {
                url: crate::sources::public_url(
                    "https://user:pw@api.services.mimecast.com/?k=SECRET#x",
                ),
                auth: "OAuth2 client credentials (API 2.0)",
            },
            polling_since: Some(now - Duration::from_secs(42)),
            ..Default::default()
        };
        // A failure of the poll running now is shown; one from before it is not.
        status.stats.failure("oauth/token", FailureReason::Timeout);
        let html = page(&[(key, status)], "", now);
        assert!(
            html.contains("<td>https://api.services.mimecast.com</td>"),
            "{html}"
        );
        assert!(!html.contains("SECRET") && !html.contains("pw@"));
        assert!(html.contains("OAuth2 client credentials (API 2.0)"));
        assert!(
            html.contains("polling since 1970-01-02 03:45:58 UTC"),
            "{html}"
        );
        assert!(html.contains("(42s ago)"));
        assert!(html.contains("latest error: oauth/token: timeout"));
    }
}
