//! Immutable per-source data, rendered to OpenMetrics text once per poll.
//!
//! A source's poll produces [`Rendered`] sections (one per endpoint group). Each section is
//! encoded with prometheus-client at poll time (which escapes label values) and split into
//! families, so a scrape only concatenates prepared bytes: it never re-encodes data and never
//! calls a vendor.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::exposition::Format;

/// The vendor platform a source talks to; the value of the `platform` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Platform {
    CyberPilot,
    Mimecast,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::CyberPilot => "cyberpilot",
            Platform::Mimecast => "mimecast",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies one configured account of one platform.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceKey {
    pub platform: Platform,
    pub account: String,
}

impl SourceKey {
    pub fn new(platform: Platform, account: &str) -> Self {
        SourceKey {
            platform,
            account: account.to_string(),
        }
    }
}

impl fmt::Display for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.platform, self.account)
    }
}

type Labels = Vec<(String, String)>;
type GaugeFamily = Family<Labels, Gauge<f64, AtomicU64>>;
type CounterFamily = Family<Labels, Counter<f64, AtomicU64>>;

/// One metric family's encoded text: its `# HELP`/`# TYPE` header and its sample lines.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedFamily {
    pub name: String,
    pub header: String,
    pub samples: String,
    pub series: usize,
}

/// Encoded families of one section, sorted by name, samples sorted within each family so the
/// output is deterministic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    pub families: Vec<RenderedFamily>,
}

impl Rendered {
    pub fn series(&self) -> usize {
        self.families.iter().map(|f| f.series).sum()
    }
}

enum Metric {
    Gauge(GaugeFamily),
    Counter(CounterFamily),
}

/// Collects metric values of one section, then encodes them once.
#[derive(Default)]
pub struct MetricsBuilder {
    metrics: BTreeMap<&'static str, (&'static str, Metric)>,
}

fn to_labels(labels: &[(&str, &str)]) -> Labels {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl MetricsBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a gauge sample. `help` must not end with a period (the encoder adds one).
    pub fn gauge(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        v: f64,
    ) {
        let entry = self
            .metrics
            .entry(name)
            .or_insert_with(|| (help, Metric::Gauge(GaugeFamily::default())));
        if let Metric::Gauge(f) = &entry.1 {
            f.get_or_create(&to_labels(labels)).set(v);
        }
    }

    /// Adds to a counter sample. `name` is given without `_total`; the encoder appends it.
    pub fn counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        v: f64,
    ) {
        let entry = self
            .metrics
            .entry(name)
            .or_insert_with(|| (help, Metric::Counter(CounterFamily::default())));
        if let Metric::Counter(f) = &entry.1 {
            f.get_or_create(&to_labels(labels)).inc_by(v);
        }
    }

    /// Encodes every family. Families without samples are left out.
    pub fn finish(self) -> Rendered {
        let mut registry = Registry::default();
        for (name, (help, metric)) in self.metrics {
            match metric {
                Metric::Gauge(f) => registry.register(name, help, f),
                Metric::Counter(f) => registry.register(name, help, f),
            }
        }
        let mut text = String::new();
        if encode(&mut text, &registry).is_err() {
            // Encoding into a String cannot fail; an empty section is the safe answer anyway.
            return Rendered::default();
        }
        split_families(&text)
    }
}

/// Splits an OpenMetrics exposition into families. Header lines are the `#` lines before a
/// family's samples; `# EOF` is dropped.
pub fn split_families(text: &str) -> Rendered {
    let mut families: Vec<RenderedFamily> = Vec::new();
    let mut current: Option<(String, String, Vec<&str>)> = None;
    let flush = |cur: Option<(String, String, Vec<&str>)>, out: &mut Vec<RenderedFamily>| {
        if let Some((name, header, mut samples)) = cur {
            if samples.is_empty() {
                return;
            }
            samples.sort_unstable();
            let mut joined = String::with_capacity(samples.iter().map(|s| s.len() + 1).sum());
            for s in &samples {
                joined.push_str(s);
                joined.push('\n');
            }
            out.push(RenderedFamily {
                name,
                header,
                series: samples.len(),
                samples: joined,
            });
        }
    };
    for line in text.lines() {
        if line == "# EOF" || line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            flush(current.take(), &mut families);
            let name = rest.split(' ').next().unwrap_or_default().to_string();
            current = Some((name, format!("{line}\n"), Vec::new()));
        } else if line.starts_with('#') {
            if let Some((_, header, _)) = current.as_mut() {
                header.push_str(line);
                header.push('\n');
            }
        } else if let Some((_, _, samples)) = current.as_mut() {
            samples.push(line);
        }
    }
    flush(current.take(), &mut families);
    families.sort_by(|a, b| a.name.cmp(&b.name));
    Rendered { families }
}

/// Merges rendered parts into one OpenMetrics body: each family's header once, then the samples
/// of every part in the order given, then `# EOF`.
pub fn merge<'a>(parts: impl IntoIterator<Item = &'a Rendered>) -> String {
    let mut out = merge_families(parts, Format::OpenMetrics);
    out.push_str(Format::OpenMetrics.trailer());
    out
}

/// The families of `parts` in `format`, without the trailer: each family's header once (families
/// sorted by name), then its samples from every part in the order given.
pub fn merge_families<'a>(parts: impl IntoIterator<Item = &'a Rendered>, format: Format) -> String {
    let mut by_name: BTreeMap<&str, (&str, Vec<&str>)> = BTreeMap::new();
    let mut size = 0;
    for part in parts {
        for f in &part.families {
            let e = by_name
                .entry(f.name.as_str())
                .or_insert_with(|| (f.header.as_str(), Vec::new()));
            e.1.push(f.samples.as_str());
            size += f.samples.len();
        }
    }
    size += by_name.values().map(|(h, _)| h.len() + 8).sum::<usize>();
    let mut out = String::with_capacity(size + 8);
    for (header, samples) in by_name.values() {
        out.push_str(&format.header(header));
        for s in samples {
            out.push_str(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_escapes_and_sorts() {
        let mut b = MetricsBuilder::new();
        b.gauge("x_b", "B", &[("account", "z")], 2.0);
        b.gauge("x_b", "B", &[("account", "a\"q\\\n")], 1.0);
        b.counter("x_a", "A", &[("k", "v")], 3.0);
        let r = b.finish();
        assert_eq!(r.families.len(), 2);
        assert_eq!(r.families[0].name, "x_a");
        assert!(r.families[0].header.contains("# TYPE x_a counter"));
        assert_eq!(r.families[0].samples, "x_a_total{k=\"v\"} 3.0\n");
        assert_eq!(
            r.families[1].samples,
            "x_b{account=\"a\\\"q\\\\\\n\"} 1.0\nx_b{account=\"z\"} 2.0\n"
        );
        assert_eq!(r.series(), 3);
    }

    #[test]
    fn merge_writes_each_header_once() {
        let mut a = MetricsBuilder::new();
        a.gauge("m", "M", &[("account", "a")], 1.0);
        let mut b = MetricsBuilder::new();
        b.gauge("m", "M", &[("account", "b")], 2.0);
        b.gauge("n", "N", &[], 3.0);
        let (a, b) = (a.finish(), b.finish());
        let body = merge([&a, &b]);
        assert_eq!(body.matches("# TYPE m gauge").count(), 1);
        assert!(body.contains("m{account=\"a\"} 1.0\nm{account=\"b\"} 2.0\n"));
        assert!(body.ends_with("n{} 3.0\n# EOF\n"), "{body}");
    }
}
