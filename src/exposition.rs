//! The two exposition formats `/metrics` speaks, and which one (and whether gzip) a client gets.
//!
//! Sections are encoded once, in OpenMetrics 1.0 (by prometheus-client). The sample lines of
//! gauges and counters are the same in the Prometheus text format 0.0.4; only the family
//! headers differ (0.0.4 names a counter family by its `_total` sample name and has no
//! `# EOF`), and those are written from the family's name, type and help
//! ([`crate::snapshot`]).

pub(crate) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub(crate) const TEXT_004: &str = "text/plain; version=0.0.4; charset=utf-8";

/// An exposition format; `format as usize` indexes what is kept per format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Format {
    OpenMetrics = 0,
    Text004 = 1,
}

impl Format {
    pub(crate) const ALL: [Format; 2] = [Format::OpenMetrics, Format::Text004];

    pub(crate) fn content_type(self) -> &'static str {
        [OPENMETRICS, TEXT_004][self as usize]
    }

    /// What ends a body.
    pub(crate) fn trailer(self) -> &'static str {
        ["# EOF\n", ""][self as usize]
    }

    /// Picks the format as client_golang's `expfmt.NegotiateIncludingOpenMetrics` does: the
    /// first acceptable media range by quality that we speak; text 0.0.4 otherwise.
    pub(crate) fn negotiate(accept: &str) -> Format {
        let mut ranges = ranges(accept);
        // Stable: equal qualities keep the client's order.
        ranges.sort_by(|a, b| b.2.total_cmp(&a.2));
        let speak = |(media, version, _): (String, String, f32)| match (&*media, &*version) {
            ("text/plain", "" | "0.0.4") => Some(Format::Text004),
            ("application/openmetrics-text", "" | "0.0.1" | "1.0.0") => Some(Format::OpenMetrics),
            _ => None,
        };
        let best = ranges.into_iter().find_map(speak);
        best.unwrap_or(Format::Text004)
    }
}

/// Whether an `Accept-Encoding` value accepts gzip (with a quality above 0).
pub(crate) fn accepts_gzip(accept_encoding: &str) -> bool {
    ranges(accept_encoding).iter().any(|r| r.0 == "gzip")
}

/// The ranges of an `Accept` or `Accept-Encoding` value with a quality above 0, in the
/// client's order: (media or coding in lower case, its `version` parameter, its quality).
fn ranges(header: &str) -> Vec<(String, String, f32)> {
    let range = |range: &str| {
        let mut parts = range.split(';').map(str::trim);
        let name = parts.next().unwrap_or("").to_ascii_lowercase();
        let (mut version, mut q) = (String::new(), 1.0f32);
        for (key, value) in parts.filter_map(|p| p.split_once('=')) {
            let value = value.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "version" => version = value.to_string(),
                "q" => q = value.parse().unwrap_or(0.0),
                _ => {}
            }
        }
        (name, version, q)
    };
    header.split(',').map(range).filter(|r| r.2 > 0.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_like_client_golang() {
        use Format::*;
        assert_eq!(Format::negotiate(""), Text004);
        assert_eq!(Format::negotiate("*/*"), Text004);
        assert_eq!(Format::negotiate("text/plain"), Text004);
        assert_eq!(
            Format::negotiate("application/openmetrics-text"),
            OpenMetrics
        );
        // What Prometheus sends.
        assert_eq!(
            Format::negotiate("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            OpenMetrics
        );
        // Prometheus with scrape_protocols preferring the classic text format.
        assert_eq!(
            Format::negotiate(
                "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5"
            ),
            Text004
        );
        assert_eq!(
            Format::negotiate("application/openmetrics-text; version=2.0.0"),
            Text004
        );
        assert_eq!(
            Format::negotiate("application/openmetrics-text;q=0, text/plain"),
            Text004
        );
        assert_eq!(
            Format::negotiate("application/json, application/openmetrics-text;q=0.2"),
            OpenMetrics
        );
    }

    #[test]
    fn gzip_is_accepted_unless_its_quality_is_zero() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("br, GZIP;q=0.5, deflate"));
        assert!(!accepts_gzip(""));
        assert!(!accepts_gzip("identity, deflate"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("gzip; q=0.000"));
        assert!(!accepts_gzip("x-gzip"));
    }
}
