//! Immutable per-source data, encoded once per poll.
//!
//! A source's poll produces [`Rendered`] sections (one per endpoint group). Each section's
//! gauges and counters are encoded by prometheus-client (OpenMetrics text) when the section is
//! finished, one family at a time, so a scrape only concatenates prepared bytes: it never
//! re-encodes data and never calls a vendor. A [`Rendered`] is plain data (serde), so the last
//! good sections can be kept across a restart. A family must be declared alike everywhere
//! (same type, same help); the tests' strict readings check that, and a served body keeps the
//! first declaration of a name whatever happens.

use std::collections::{BTreeMap, HashMap};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use serde::{Deserialize, Serialize};

use crate::exposition::Format;

/// The metric types a section can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    Gauge,
    Counter,
}

/// One metric family as encoded: its name, type and help, prometheus-client's OpenMetrics
/// `# HELP`/`# TYPE` header, and its sample lines sorted as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedFamily {
    pub name: String,
    pub metric_type: MetricType,
    /// The help text as written after the name on the `# HELP` line.
    pub help: String,
    pub header: String,
    pub samples: String,
    pub series: usize,
}

/// Encoded families of one section, sorted by name, samples sorted within each family so the
/// output is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rendered {
    pub families: Vec<RenderedFamily>,
}

impl Rendered {
    pub fn series(&self) -> usize {
        self.families.iter().map(|f| f.series).sum()
    }
}

type Labels = Vec<(String, String)>;

/// A family as declared: name, type, help. Declared twice differently, a name gives two
/// families, which the merge does not serve twice (see [`merge_families`]).
type Declaration = (&'static str, MetricType, &'static str);

/// One family's values, handed to prometheus-client to encode.
#[derive(Debug)]
struct Family {
    declaration: Declaration,
    /// Gauges keep the last value set, counters the sum of what was added.
    values: HashMap<Labels, f64>,
}

impl Collector for Family {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (name, metric_type, help) = self.declaration;
        let kind = match metric_type {
            MetricType::Gauge => prometheus_client::metrics::MetricType::Gauge,
            MetricType::Counter => prometheus_client::metrics::MetricType::Counter,
        };
        let mut family = encoder.encode_descriptor(name, &format!("{help}."), None, kind)?;
        for (labels, v) in &self.values {
            let mut sample = family.encode_family(labels)?;
            match metric_type {
                MetricType::Gauge => sample.encode_gauge(v)?,
                MetricType::Counter => sample.encode_counter::<Labels, _, f64>(v, None)?,
            }
        }
        Ok(())
    }
}

/// Collects metric values of one section, then encodes them once.
#[derive(Default)]
pub struct MetricsBuilder {
    families: BTreeMap<Declaration, HashMap<Labels, f64>>,
}

fn to_labels(labels: &[(&str, &str)]) -> Labels {
    labels.iter().map(|&(k, v)| (k.into(), v.into())).collect()
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
        let family = self.families.entry((name, MetricType::Gauge, help));
        family.or_default().insert(to_labels(labels), v);
    }

    /// Adds to a counter sample. `name` is given without `_total`; the encoder appends it.
    pub fn counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        v: f64,
    ) {
        let family = self.families.entry((name, MetricType::Counter, help));
        *family.or_default().entry(to_labels(labels)).or_insert(0.0) += v;
    }

    /// Encodes every family, sorted by name (a family is made with its first sample).
    pub fn finish(self) -> Rendered {
        let families = self.families.into_iter();
        Rendered {
            families: families.map(|(d, values)| encode(d, values)).collect(),
        }
    }
}

/// prometheus-client's OpenMetrics text of one family, its sample lines sorted as text so that
/// equal data always gives equal bytes (label values escape newlines, so a line is a sample).
fn encode(declaration: Declaration, values: HashMap<Labels, f64>) -> RenderedFamily {
    let (name, metric_type, help) = declaration;
    let mut text = String::new();
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(Family {
        declaration,
        values,
    }));
    // Writing to a String cannot fail, and our collector returns no error of its own.
    let _ = prometheus_client::encoding::text::encode_registry(&mut text, &registry);
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut samples = lines.split_off(2.min(lines.len()));
    samples.sort_unstable();
    RenderedFamily {
        name: name.to_string(),
        metric_type,
        help: format!("{help}."),
        header: lines.concat(),
        series: samples.len(),
        samples: samples.concat(),
    }
}

/// Merges rendered parts into one OpenMetrics body, `# EOF` included (see [`merge_families`]).
pub fn merge<'a>(parts: impl IntoIterator<Item = &'a Rendered>) -> String {
    merge_families(parts, Format::OpenMetrics) + Format::OpenMetrics.trailer()
}

/// The families of `parts` in `format`, without the trailer: each family's header once (families
/// sorted by name), then its samples from every part in the order given. A name declared again
/// with another type or help (a bug, which the tests' strict readings find) is left out, so the
/// body stays valid.
pub(crate) fn merge_families<'a>(
    parts: impl IntoIterator<Item = &'a Rendered>,
    format: Format,
) -> String {
    let mut by_name: BTreeMap<&str, (&RenderedFamily, Vec<&str>)> = BTreeMap::new();
    for f in parts.into_iter().flat_map(|part| &part.families) {
        let (first, samples) = by_name.entry(&f.name).or_insert((f, Vec::new()));
        if (first.metric_type, &first.help) == (f.metric_type, &f.help) {
            samples.push(&f.samples);
        }
    }
    // Sized at once: a body with per-user series is megabytes, and a growing String copies it.
    let text = |(f, samples): &(&RenderedFamily, Vec<&str>)| {
        f.header.len() + samples.iter().map(|s| s.len()).sum::<usize>()
    };
    let size: usize = by_name.values().map(text).sum();
    let mut out = String::with_capacity(size + format.trailer().len());
    for (f, samples) in by_name.values() {
        // Text 0.0.4 names a counter family by its `_total` samples.
        match (format, f.metric_type) {
            (Format::Text004, MetricType::Counter) => {
                let (name, help) = (&f.name, &f.help);
                out += &format!("# HELP {name}_total {help}\n# TYPE {name}_total counter\n");
            }
            _ => out.push_str(&f.header),
        }
        out.extend(samples.iter().copied());
    }
    out
}

/// [`merge`], but a name declared twice differently (in one part or two) is an error: the check
/// the served path leaves to the tests, for the unit tests of the vendors' metrics.
#[cfg(test)]
pub(crate) fn try_merge<'a>(
    parts: impl IntoIterator<Item = &'a Rendered> + Clone,
) -> Result<String, String> {
    let mut declared = BTreeMap::new();
    for f in parts.clone().into_iter().flat_map(|part| &part.families) {
        let first = *declared.entry(&f.name).or_insert((f.metric_type, &f.help));
        if first != (f.metric_type, &f.help) {
            let second = (f.metric_type, &f.help);
            let name = &f.name;
            return Err(format!(
                "metric family {name} declared as {first:?} and as {second:?}"
            ));
        }
    }
    Ok(merge(parts))
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

    /// What prometheus-client 0.25 writes for the same gauges and counters: our encoder must
    /// match it byte for byte (the golden snapshot was made with it).
    fn via_prometheus_client(gauges: &[(&[(&str, &str)], f64)], counter: f64) -> String {
        use prometheus_client::encoding::text::encode;
        use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};
        use std::sync::atomic::AtomicU64;
        let g = Family::<Vec<(String, String)>, Gauge<f64, AtomicU64>>::default();
        for (labels, v) in gauges {
            g.get_or_create(&to_labels(labels)).set(*v);
        }
        let c = Family::<Vec<(String, String)>, Counter<f64, AtomicU64>>::default();
        c.get_or_create(&vec![("k".to_string(), "v".to_string())])
            .inc_by(counter);
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("g", "G help", g);
        registry.register("c", "C help", c);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn escaping_and_numbers_match_prometheus_client() {
        let values = [
            "plain",
            "quote \" in",
            "back\\slash",
            "new\nline",
            "\\\"\n",
            "carriage\rreturn\ttab",
            "unicode λ ✓ 🦀 ø",
            "",
            "a\"} evil{x=\"1\\line\nnext",
        ];
        let numbers = [
            0.0,
            1.0,
            -2.5,
            0.1,
            1e20,
            1.5e-7,
            123456789.0,
            f64::NAN,
            f64::INFINITY,
        ];
        for (i, v) in values.iter().enumerate() {
            let n = numbers[i % numbers.len()];
            let labels: &[(&str, &str)] = &[("account", v), ("user", "u")];
            let empty: &[(&str, &str)] = &[];
            let expected = via_prometheus_client(&[(labels, n), (empty, -n)], n.abs());
            let mut b = MetricsBuilder::new();
            b.gauge("g", "G help", labels, n);
            b.gauge("g", "G help", empty, -n);
            b.counter("c", "C help", &[("k", "v")], n.abs());
            let ours = merge([&b.finish()]);
            // prometheus-client writes families in registration order, samples unordered: compare
            // families as sorted line sets, and our sample order separately.
            let mut a: Vec<&str> = ours.lines().collect();
            let mut e: Vec<&str> = expected.lines().collect();
            a.sort_unstable();
            e.sort_unstable();
            assert_eq!(a, e, "label value {v:?}, number {n}");
        }
    }

    #[test]
    fn text_004_headers_name_counters_by_their_samples_and_sections_survive_serde() {
        let mut b = MetricsBuilder::new();
        b.counter("x_requests", "Requests", &[("k", "v")], 2.0);
        b.gauge("x_users", "Users", &[], 3.0);
        let r = b.finish();
        assert_eq!(
            merge_families([&r], Format::Text004),
            "# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\n\
             x_requests_total{k=\"v\"} 2.0\n# HELP x_users Users.\n# TYPE x_users gauge\nx_users{} 3.0\n"
        );
        assert!(merge([&r]).starts_with("# HELP x_requests Requests.\n# TYPE x_requests counter\n"));
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Rendered>(&json).unwrap(), r);
    }

    #[test]
    fn label_values_are_escaped_exactly() {
        let mut b = MetricsBuilder::new();
        b.gauge("x", "X", &[("a", "q\"b\\s\nn\rλ🦀")], 1.0);
        let r = b.finish();
        assert_eq!(r.families[0].samples, "x{a=\"q\\\"b\\\\s\\nn\rλ🦀\"} 1.0\n");
        assert_eq!(r.families[0].header, "# HELP x X.\n# TYPE x gauge\n");
    }

    #[test]
    fn gauges_keep_the_last_value_and_counters_add_up() {
        let mut b = MetricsBuilder::new();
        b.gauge("g", "G", &[("a", "1")], 1.0);
        b.gauge("g", "G", &[("a", "1")], 4.0);
        b.counter("c", "C", &[("a", "1")], 1.5);
        b.counter("c", "C", &[("a", "1")], 2.0);
        b.gauge("empty", "E", &[], 0.0);
        let r = b.finish();
        let by_name: BTreeMap<&str, &str> = r
            .families
            .iter()
            .map(|f| (f.name.as_str(), f.samples.as_str()))
            .collect();
        assert_eq!(by_name["g"], "g{a=\"1\"} 4.0\n");
        assert_eq!(by_name["c"], "c_total{a=\"1\"} 3.5\n");
        assert_eq!(by_name["empty"], "empty{} 0.0\n");
        assert_eq!(r.series(), 3);
    }

    #[test]
    fn a_family_declared_twice_differently_in_one_section_is_an_error() {
        let mut b = MetricsBuilder::new();
        b.gauge("x", "X", &[("a", "1")], 1.0);
        b.counter("x", "X", &[("a", "2")], 1.0);
        let r = b.finish();
        let err = try_merge([&r]).unwrap_err();
        assert_eq!(
            err,
            "metric family x declared as (Gauge, \"X.\") and as (Counter, \"X.\")"
        );

        let mut b = MetricsBuilder::new();
        b.gauge("x", "X", &[("a", "1")], 1.0);
        b.gauge("x", "Other", &[("a", "2")], 1.0);
        assert!(try_merge([&b.finish()]).is_err());

        // The served path keeps the first declaration and its samples only.
        assert_eq!(
            merge([&r]),
            "# HELP x X.\n# TYPE x gauge\nx{a=\"1\"} 1.0\n# EOF\n"
        );
    }

    #[test]
    fn merging_sections_that_declare_a_family_differently_is_an_error() {
        let section = |f: fn(&mut MetricsBuilder)| {
            let mut b = MetricsBuilder::new();
            f(&mut b);
            b.finish()
        };
        let gauge = section(|b| b.gauge("m", "M", &[("account", "a")], 1.0));
        let same = section(|b| b.gauge("m", "M", &[("account", "b")], 2.0));
        let counter = section(|b| b.counter("m", "M", &[("account", "b")], 2.0));
        let other_help = section(|b| b.gauge("m", "Another text", &[("account", "b")], 2.0));

        assert!(try_merge([&gauge, &same]).is_ok());
        let err = try_merge([&gauge, &counter]).unwrap_err();
        assert_eq!(
            err,
            "metric family m declared as (Gauge, \"M.\") and as (Counter, \"M.\")"
        );
        let err = try_merge([&gauge, &other_help]).unwrap_err();
        assert!(err.ends_with("(Gauge, \"Another text.\")"), "{err}");

        // Served bodies stay valid in both formats: the first declaration wins, the clashing
        // samples are left out.
        for format in Format::ALL {
            for clash in [&counter, &other_help] {
                let body = merge_families([&gauge, clash], format);
                assert_eq!(body.matches("# TYPE m").count(), 1, "{body}");
                assert!(
                    body.ends_with("# TYPE m gauge\nm{account=\"a\"} 1.0\n"),
                    "{body}"
                );
            }
        }
    }
}
