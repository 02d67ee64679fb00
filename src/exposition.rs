//! The two exposition formats `/metrics` speaks, and which one a client gets.
//!
//! Sections are encoded once, in OpenMetrics 1.0 (by prometheus-client). The sample lines of
//! gauges and counters are the same in the Prometheus text format 0.0.4; only the family
//! headers differ (0.0.4 names a counter family by its `_total` sample name and has no
//! `# EOF`), and those are written from the family's name, type and help
//! ([`crate::snapshot`]).

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const TEXT_004: &str = "text/plain; version=0.0.4; charset=utf-8";

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    OpenMetrics,
    Text004,
}

impl Format {
    pub const ALL: [Format; 2] = [Format::OpenMetrics, Format::Text004];

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::Text004 => TEXT_004,
        }
    }

    pub fn index(self) -> usize {
        match self {
            Format::OpenMetrics => 0,
            Format::Text004 => 1,
        }
    }

    /// What ends a body.
    pub fn trailer(self) -> &'static str {
        match self {
            Format::OpenMetrics => "# EOF\n",
            Format::Text004 => "",
        }
    }

    /// Picks the format as client_golang's `expfmt.NegotiateIncludingOpenMetrics` does: the
    /// first acceptable media range by quality that we speak; text 0.0.4 otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text004;
        };
        let mut ranges: Vec<(f32, Option<Format>)> = accept
            .split(',')
            .map(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or("").to_ascii_lowercase();
                let mut version = "";
                let mut q = 1.0f32;
                for p in parts {
                    let Some((k, v)) = p.split_once('=') else {
                        continue;
                    };
                    let v = v.trim().trim_matches('"');
                    match k.trim().to_ascii_lowercase().as_str() {
                        "version" => version = v,
                        "q" => q = v.parse().unwrap_or(0.0),
                        _ => {}
                    }
                }
                let format = match (media.as_str(), version) {
                    ("text/plain", "" | "0.0.4") => Some(Format::Text004),
                    ("application/openmetrics-text", "" | "0.0.1" | "1.0.0") => {
                        Some(Format::OpenMetrics)
                    }
                    _ => None,
                };
                (q, format)
            })
            .filter(|(q, _)| *q > 0.0)
            .collect();
        // Stable: equal qualities keep the client's order.
        ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranges
            .into_iter()
            .find_map(|(_, f)| f)
            .unwrap_or(Format::Text004)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_like_client_golang() {
        use Format::*;
        assert_eq!(Format::negotiate(None), Text004);
        assert_eq!(Format::negotiate(Some("*/*")), Text004);
        assert_eq!(Format::negotiate(Some("text/plain")), Text004);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text")),
            OpenMetrics
        );
        // What Prometheus sends.
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            )),
            OpenMetrics
        );
        // Prometheus with scrape_protocols preferring the classic text format.
        assert_eq!(
            Format::negotiate(Some(
                "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5"
            )),
            Text004
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; version=2.0.0")),
            Text004
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0, text/plain")),
            Text004
        );
        assert_eq!(
            Format::negotiate(Some("application/json, application/openmetrics-text;q=0.2")),
            OpenMetrics
        );
    }
}
