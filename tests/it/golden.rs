//! Golden `/metrics`: the whole body for the demo's own tenants (every registered platform, the
//! demo at its small size, per-user series on), snapshotted with insta after a strict reading of
//! every section's families. Values that depend on the clock are masked.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use awareness_exporter::app::Exporter;
use awareness_exporter::registry;
use awareness_exporter::testing::snapshot;
use awareness_sim::demo::{Demo, Size};
use common::{eventually, samples, Render};

/// Series whose value is a time of the run, or a duration: different on every run.
const CLOCK_VALUES: [&str; 4] = [
    "awareness_last_success_timestamp_seconds{",
    "awareness_section_last_success_timestamp_seconds{",
    "awareness_poll_duration_seconds{",
    "awareness_config_last_reload_success_timestamp_seconds{",
];

/// Series whose value is a date the simulator sets a whole number of days before the day it
/// starts (so that the exporter's lookback keeps it): shown as those days.
const DAY_RELATIVE: [&str; 1] = ["awareness_defender_simulation_launch_timestamp_seconds{"];

fn mask(body: &str, today: f64) -> String {
    let masked = body.lines().map(|l| {
        let Some((series, value)) = l.rsplit_once(' ') else {
            return l.to_string();
        };
        if CLOCK_VALUES.iter().any(|p| l.starts_with(p)) {
            format!("{series} <masked>")
        } else if DAY_RELATIVE.iter().any(|p| l.starts_with(p)) {
            let days = (today - value.parse::<f64>().unwrap()) / 86_400.0;
            format!("{series} <today-{days}d>")
        } else if l.starts_with("awareness_build_info{") {
            "awareness_build_info{version=\"<masked>\"} 1.0".to_string()
        } else {
            l.to_string()
        }
    });
    masked.collect::<Vec<_>>().join("\n")
}

#[tokio::test(start_paused = true)]
async fn whole_metrics_body_of_the_demo() {
    let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let today = (unix.as_secs() / 86_400 * 86_400) as f64;
    let demo = Demo::start_sized(Size::Small).await.unwrap();
    let platforms: BTreeSet<&str> = demo.tenants().iter().map(|t| t.platform).collect();
    assert_eq!(
        platforms,
        registry::platforms().collect(),
        "a platform without a demo tenant"
    );
    let config = registry::loader().parse(&demo.config_text(), "<demo>");
    let exporter = Exporter::start(config.unwrap_or_else(|e| panic!("{e}")), None);
    assert!(eventually(30, || exporter.store.ready()).await);
    let now = SystemTime::now();
    let health = exporter.store.render_health();
    let sections = exporter.store.data_sections(now);
    let body = exporter.store.render(now);
    exporter.poller.stop();

    // Every source and every section up.
    let s = samples(&body);
    let ups = s
        .iter()
        .filter(|(k, _)| k.starts_with("awareness_up{") || k.starts_with("awareness_section_up{"));
    let down: Vec<_> = ups.filter(|(_, v)| **v != 1.0).collect();
    assert!(down.is_empty(), "{down:?}");

    // Each family declared alike in every part, health and data never sharing one (so a scrape
    // serves health's families, then data's, each merged on its own: src/scrape_body.rs), and
    // every data family named for its platform.
    let all: Vec<_> = std::iter::once(&health)
        .chain(sections.iter().map(|p| p.as_ref()))
        .collect();
    common::harness::declared_alike(&all).unwrap_or_else(|e| panic!("{e}"));
    let health_families: BTreeSet<&str> = health.families.iter().map(|f| &*f.name).collect();
    for f in sections.iter().flat_map(|s| &s.families) {
        assert!(
            !health_families.contains(&*f.name),
            "{} is health and data",
            f.name
        );
        let named = |p: &str| f.name.starts_with(&format!("awareness_{p}_"));
        assert!(
            registry::platforms().any(named),
            "{} names no platform",
            f.name
        );
    }

    // Each section strictly, then all of them together, then the body as served.
    let parts: Vec<(String, String)> = std::iter::once(&health)
        .chain(sections.iter().map(|p| p.as_ref()))
        .map(|part| {
            let text = snapshot::merge([part]);
            (part_name(&text), text)
        })
        .collect();
    if let Err(e) = check(&parts) {
        panic!("{e}");
    }
    if let Err(e) = read(&body) {
        panic!("the body: {e}");
    }
    insta::assert_snapshot!("metrics_body", mask(&body, today));
}

/// A section as its first series names it (the health part starts with `awareness_build_info`).
fn part_name(text: &str) -> String {
    let first = text.lines().find(|l| !l.starts_with('#'));
    let series = first.and_then(|l| l.split_once('}')).map(|(s, _)| s);
    format!("the section of {}}}", series.unwrap_or("no series {"))
}

/// A family as an exposition declares it.
#[derive(Debug, Clone, Default, PartialEq)]
struct Declared {
    kind: Option<String>,
    help: Option<String>,
    unit: Option<String>,
}

/// What a strict reading of one exposition found.
#[derive(Debug, Default)]
struct Exposition {
    families: BTreeMap<String, Declared>,
    /// Each series as its name and sorted labels.
    series: BTreeSet<String>,
}

/// Reads OpenMetrics text strictly: each family's metadata once and before its samples, with a
/// known TYPE; each sample named as the type of the family above it allows; no series twice; no
/// family whose name another family's samples also use; `# EOF` last.
fn read(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    let mut current: Option<&str> = None;
    let mut sampled = false;
    let mut eof = false;
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if eof {
            return Err(at("text after # EOF".into()));
        }
        if line == "# EOF" {
            eof = true;
        } else if let Some(meta) = line.strip_prefix("# ") {
            let (keyword, rest) = meta
                .split_once(' ')
                .ok_or_else(|| at("a bare comment".into()))?;
            let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
            if !valid_name(name, true) {
                return Err(at(format!("bad family name {name:?}")));
            }
            if current != Some(name) {
                if out.families.contains_key(name) {
                    return Err(at(format!("family {name} declared again")));
                }
                out.families.insert(name.to_string(), Declared::default());
                (current, sampled) = (Some(name), false);
            } else if sampled {
                return Err(at(format!("metadata after the samples of {name}")));
            }
            let family = out.families.get_mut(name).unwrap();
            let slot = match keyword {
                "TYPE" if sample_names(name, value).is_some() => &mut family.kind,
                "HELP" => &mut family.help,
                "UNIT" if value.is_empty() || name.ends_with(&format!("_{value}")) => {
                    &mut family.unit
                }
                _ => return Err(at(format!("bad {keyword} line"))),
            };
            if slot.replace(value.to_string()).is_some() {
                return Err(at(format!("{keyword} twice for {name}")));
            }
        } else {
            let family = current.ok_or_else(|| at("a sample before any family".into()))?;
            let kind = out.families[family].kind.as_deref();
            let kind = kind.ok_or_else(|| at(format!("family {family} has no TYPE")))?;
            let (name, labels, value) = sample(line).map_err(at)?;
            if !sample_names(family, kind)
                .unwrap_or_default()
                .contains(&name)
            {
                return Err(at(format!("{name} is not a sample of {kind} {family}")));
            }
            value
                .parse::<f64>()
                .map_err(|_| at(format!("bad value {value:?}")))?;
            let series = format!("{name}{labels:?}");
            if !out.series.insert(series) {
                return Err(at("the same series twice".into()));
            }
            sampled = true;
        }
    }
    if !eof {
        return Err("no # EOF".into());
    }
    if let Some((name, _)) = out.families.iter().find(|(_, d)| d.kind.is_none()) {
        return Err(format!("family {name} has no TYPE"));
    }
    collisions(out.families.iter())?;
    Ok(out)
}

/// Reads every part strictly, then all of them together as the store merges them: each family
/// declared alike wherever it is (TYPE, HELP, UNIT), no series in two parts, and no family name
/// that another part's family uses for its samples.
fn check<S: AsRef<str>>(parts: &[(S, S)]) -> Result<(), String> {
    let mut families: BTreeMap<String, (Declared, &str)> = BTreeMap::new();
    let mut series: BTreeMap<String, &str> = BTreeMap::new();
    for (part, text) in parts {
        let part = part.as_ref();
        let read = read(text.as_ref()).map_err(|e| format!("{part}: {e}"))?;
        for (name, declared) in read.families {
            match families.get(&name) {
                Some((first, by)) if *first != declared => {
                    return Err(format!(
                        "family {name} declared as {first:?} in {by} and as {declared:?} in {part}"
                    ))
                }
                Some(_) => {}
                None => {
                    families.insert(name, (declared, part));
                }
            }
        }
        for s in read.series {
            if let Some(by) = series.insert(s.clone(), part) {
                return Err(format!("the same series twice, in {by} and {part}: {s}"));
            }
        }
    }
    collisions(families.iter().map(|(name, (d, _))| (name, d)))
}

/// Fails when a name (a family's, or one its samples may take) belongs to two families: a
/// counter `x` (samples `x_total`) beside a gauge `x_total`, a histogram `h` beside a gauge
/// `h_count`.
fn collisions<'a>(
    families: impl Iterator<Item = (&'a String, &'a Declared)>,
) -> Result<(), String> {
    let mut owners: BTreeMap<String, &str> = BTreeMap::new();
    for (family, declared) in families {
        let kind = declared.kind.as_deref().unwrap_or("unknown");
        let mut names = sample_names(family, kind).unwrap_or_default();
        names.push(family.clone());
        for name in BTreeSet::from_iter(names) {
            if let Some(other) = owners.insert(name.clone(), family) {
                return Err(format!("families {other} and {family} both claim {name}"));
            }
        }
    }
    Ok(())
}

/// The sample names a family of type `kind` has; `None` for an unknown type.
fn sample_names(family: &str, kind: &str) -> Option<Vec<String>> {
    let suffixes: &[&str] = match kind {
        "gauge" | "unknown" | "stateset" => &[""],
        "counter" => &["_total", "_created"],
        "info" => &["_info"],
        "histogram" => &["_bucket", "_count", "_sum", "_created"],
        "gaugehistogram" => &["_bucket", "_gcount", "_gsum"],
        "summary" => &["", "_count", "_sum", "_created"],
        _ => return None,
    };
    Some(suffixes.iter().map(|s| format!("{family}{s}")).collect())
}

fn valid_name(name: &str, colons: bool) -> bool {
    let ok = |c: char, first: bool| {
        c.is_ascii_alphabetic()
            || c == '_'
            || (colons && c == ':')
            || (!first && c.is_ascii_digit())
    };
    let mut chars = name.chars();
    chars.next().is_some_and(|c| ok(c, true)) && chars.all(|c| ok(c, false))
}

/// A sample's labels: (name, value) pairs.
type Labels = Vec<(String, String)>;

/// A sample line's name, its labels sorted (each name once, values unescaped) and its value.
fn sample(line: &str) -> Result<(String, Labels, &str), String> {
    let end = line.find(['{', ' ']).ok_or("no value")?;
    let (name, mut rest) = line.split_at(end);
    if !valid_name(name, true) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut labels = Vec::new();
    if let Some(mut inner) = rest.strip_prefix('{') {
        while !labels.is_empty() || !inner.starts_with('}') {
            let (label, value) = inner.split_once("=\"").ok_or("a label without =\"")?;
            if !valid_name(label, false) || labels.iter().any(|(l, _)| l == label) {
                return Err(format!("bad or repeated label {label:?}"));
            }
            let (value, tail) = label_value(value)?;
            labels.push((label.to_string(), value));
            match tail.strip_prefix(',') {
                Some(next) => inner = next,
                None => {
                    inner = tail;
                    break;
                }
            }
        }
        rest = inner
            .strip_prefix('}')
            .ok_or("labels not closed, or not separated by commas")?;
    }
    let value = rest.strip_prefix(' ').ok_or("no value")?;
    if value.contains(' ') {
        return Err("more than a value after the series".into());
    }
    labels.sort();
    Ok((name.to_string(), labels, value))
}

/// A quoted label value (after its opening quote), unescaped, and the text after its closing
/// quote.
fn label_value(text: &str) -> Result<(String, &str), String> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                _ => return Err("a bad escape in a label value".into()),
            },
            c => value.push(c),
        }
    }
    Err("an unclosed label value".into())
}

/// Each check fails on a body that breaks it (and a sound body passes).
#[test]
fn each_strict_check_fails_on_its_clash() {
    let sound = "# HELP x X.\n# TYPE x counter\nx_total{a=\"1\",b=\"\\\"\"} 1.0\n# TYPE y gauge\ny 2\n# EOF\n";
    check(&[("sound", sound)]).unwrap();
    let gauge = |labels: &str| format!("# HELP g G.\n# TYPE g gauge\ng{labels} 1\n# EOF\n");
    let cases: [(&str, Vec<String>, &str); 11] = [
        (
            "TYPE differs",
            vec![
                gauge(""),
                "# HELP g G.\n# TYPE g counter\ng_total 1\n# EOF\n".into(),
            ],
            "declared as",
        ),
        (
            "HELP differs",
            vec![
                gauge(""),
                "# HELP g Other.\n# TYPE g gauge\ng{a=\"1\"} 1\n# EOF\n".into(),
            ],
            "declared as",
        ),
        (
            "UNIT differs",
            vec![
                "# TYPE g_seconds gauge\n# UNIT g_seconds seconds\ng_seconds 1\n# EOF\n".into(),
                "# TYPE g_seconds gauge\ng_seconds{a=\"1\"} 1\n# EOF\n".into(),
            ],
            "declared as",
        ),
        (
            "a counter's sample without _total",
            vec!["# TYPE x counter\nx 1\n# EOF\n".into()],
            "not a sample of counter x",
        ),
        (
            "a sample under another family",
            vec!["# TYPE x gauge\ny 1\n# EOF\n".into()],
            "not a sample of gauge x",
        ),
        (
            "the same series twice in a part, labels in another order",
            vec!["# TYPE g gauge\ng{a=\"1\",b=\"2\"} 1\ng{b=\"2\",a=\"1\"} 2\n# EOF\n".into()],
            "the same series twice",
        ),
        (
            "the same series in two parts",
            vec![gauge("{a=\"1\"}"), gauge("{a=\"1\"}")],
            "the same series twice",
        ),
        (
            "a gauge named as a counter's samples",
            vec![
                "# TYPE x counter\nx_total 1\n# EOF\n".into(),
                "# TYPE x_total gauge\nx_total{a=\"1\"} 1\n# EOF\n".into(),
            ],
            "both claim x_total",
        ),
        (
            "a gauge named as a histogram's count",
            vec![
                "# TYPE h histogram\nh_count 1\n# TYPE h_count gauge\nh_count{a=\"1\"} 1\n# EOF\n"
                    .into(),
            ],
            "both claim h_count",
        ),
        (
            "a family declared again further down",
            vec![
                "# TYPE g gauge\ng 1\n# TYPE y gauge\ny 1\n# TYPE g gauge\ng{a=\"1\"} 1\n# EOF\n"
                    .into(),
            ],
            "declared again",
        ),
        (
            "a family without TYPE",
            vec!["# HELP g G.\ng 1\n# EOF\n".into()],
            "has no TYPE",
        ),
    ];
    for (what, texts, expected) in cases {
        let parts: Vec<(String, String)> = texts
            .into_iter()
            .enumerate()
            .map(|(i, t)| (format!("part {i}"), t))
            .collect();
        match check(&parts) {
            Ok(()) => panic!("{what}: passed"),
            Err(e) => assert!(e.contains(expected), "{what}: {e}"),
        }
    }
}

/// Health and data can never share a family, whatever a config asks for: every family name in a
/// platform's folder starts with `awareness_<platform>_`, and no family of the store's health
/// does (src/scrape_body.rs serves health's families and data's each merged on its own).
#[test]
fn data_families_are_named_for_their_platform_and_health_for_none() {
    let src = format!("{}/src", env!("CARGO_MANIFEST_DIR"));
    let names = |text: &str| -> Vec<String> {
        let quoted = text.split('"').skip(1).step_by(2);
        let names = quoted.filter(|q| q.starts_with("awareness_"));
        names
            .map(|q| q.split(' ').next().unwrap().to_string())
            .collect()
    };
    let mut seen = 0;
    for platform in registry::platforms() {
        let prefix = format!("awareness_{platform}_");
        let mut todo = vec![std::path::PathBuf::from(format!(
            "{src}/sources/{platform}"
        ))];
        while let Some(path) = todo.pop() {
            if path.is_dir() {
                todo.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            for name in names(&std::fs::read_to_string(&path).unwrap()) {
                assert!(name.starts_with(&prefix), "{name} in {}", path.display());
                seen += 1;
            }
        }
    }
    assert!(seen > 50, "only {seen} family names found");
    let health = names(&std::fs::read_to_string(format!("{src}/store.rs")).unwrap());
    assert!(health.contains(&"awareness_up".to_string()), "{health:?}");
    for name in health {
        let platform = registry::platforms().find(|p| name.starts_with(&format!("awareness_{p}_")));
        assert!(
            platform.is_none(),
            "health family {name} is named for a platform"
        );
    }
}
