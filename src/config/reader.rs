//! Reads the TOML document key by key, collecting every problem instead of stopping at the
//! first, and naming each key with its line.
//!
//! serde's derive stops at the first error and its messages speak Rust ("expected usize") and
//! quote the value ("invalid type: string \"…\""), which could be a secret pasted into the
//! wrong field. Here each key is read on its own: a wrong type is reported in the user's terms
//! and a value is never part of a message.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml_edit::{Item, TableLike, Value};

use super::ConfigError;

/// The errors and warnings found in one pass over a config.
#[derive(Debug, Default)]
pub(super) struct Findings {
    pub(super) errors: Vec<ConfigError>,
    pub(super) warnings: Vec<String>,
}

/// What every section reader shares: the text (for line numbers), the environment overrides
/// and the findings so far.
pub(super) struct Ctx<'a> {
    text: &'a str,
    /// `poll.interval` → (`AWARENESS_POLL__INTERVAL`, value).
    overrides: BTreeMap<String, (String, String)>,
    found: RefCell<Findings>,
}

/// The sections whose keys `AWARENESS_<SECTION>__<KEY>` may set.
pub(super) const OVERRIDABLE: [&str; 3] = ["server", "poll", "metrics"];

/// The variable that sets `key` (`poll.interval` → `AWARENESS_POLL__INTERVAL`), as messages
/// name it.
fn env_var_name(key: &str) -> String {
    format!("AWARENESS_{}", key.replace('.', "__").to_ascii_uppercase())
}

impl<'a> Ctx<'a> {
    /// `overrides` are the environment's `(dotted key, value)` pairs as figment's `Env`
    /// provider gives them (`("poll.interval", "15m")`); keys outside [`OVERRIDABLE`] are left
    /// out.
    pub(super) fn new(
        text: &'a str,
        overrides: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let overrides = overrides
            .into_iter()
            .map(|(key, value)| (key.to_ascii_lowercase(), value))
            .filter(|(key, _)| {
                OVERRIDABLE
                    .iter()
                    .any(|s| key.strip_prefix(s).is_some_and(|k| k.starts_with('.')))
            })
            .map(|(key, value)| {
                let var = env_var_name(&key);
                (key, (var, value))
            })
            .collect();
        Ctx {
            text,
            overrides,
            found: RefCell::new(Findings::default()),
        }
    }

    pub(super) fn into_findings(self) -> Findings {
        self.found.into_inner()
    }

    pub(super) fn line_of(&self, span: Option<Range<usize>>) -> Option<usize> {
        span.map(|s| line_col(self.text, s.start).0)
    }

    /// Records a problem with `key`; `line` is where the user wrote it.
    pub(super) fn error(&self, key: &str, line: Option<usize>, message: impl Into<String>) {
        self.found.borrow_mut().errors.push(ConfigError::Invalid {
            key: key.to_string(),
            line,
            message: message.into(),
        });
    }

    pub(super) fn warn(&self, message: impl Into<String>) {
        self.found.borrow_mut().warnings.push(message.into());
    }
}

/// Where a value came from, for messages: the line of the file or an environment variable.
#[derive(Debug, Clone)]
pub(super) struct Origin {
    pub(super) key: String,
    pub(super) line: Option<usize>,
    pub(super) env_var: Option<String>,
}

impl Origin {
    /// A key as the user sees it: `poll.interval`, `mimecast[1].client_secret_file`.
    pub(super) fn error(&self, ctx: &Ctx<'_>, message: impl Into<String>) {
        let mut message = message.into();
        if let Some(var) = &self.env_var {
            message.push_str(&format!(" (set by environment variable {var})"));
        }
        ctx.error(&self.key, self.line, message);
    }
}

/// One table of the document (or an absent one, read as empty), read key by key.
pub(super) struct Section<'a> {
    ctx: &'a Ctx<'a>,
    path: String,
    table: Option<&'a dyn TableLike>,
    pub(super) line: Option<usize>,
    used: Vec<&'a str>,
}

impl<'a> Section<'a> {
    pub(super) fn root(ctx: &'a Ctx<'a>, table: &'a dyn TableLike) -> Self {
        Section {
            ctx,
            path: String::new(),
            table: Some(table),
            line: None,
            used: Vec::new(),
        }
    }

    pub(super) fn ctx(&self) -> &'a Ctx<'a> {
        self.ctx
    }

    /// The full name of `key` in this section.
    pub(super) fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Reports a problem with the section as a whole (a missing key, two keys that clash).
    pub(super) fn error(&self, key: &str, message: impl Into<String>) {
        let line = self.key_line(key).or(self.line);
        self.ctx.error(&self.key(key), line, message);
    }

    fn key_line(&self, key: &str) -> Option<usize> {
        let (k, _) = self.table?.get_key_value(key)?;
        self.ctx.line_of(k.span())
    }

    /// Marks `key` as known without reading it (it belongs to another mode and is reported on
    /// its own).
    pub(super) fn mark_read(&mut self, key: &'static str) {
        self.used.push(key);
    }

    /// Whether `key` is set at all (in the file or by an override).
    pub(super) fn has(&self, key: &str) -> bool {
        self.table.is_some_and(|t| t.get(key).is_some())
            || self.ctx.overrides.contains_key(&self.key(key))
    }

    fn origin(&self, key: &str, env_var: Option<String>) -> Origin {
        Origin {
            key: self.key(key),
            line: if env_var.is_some() {
                None
            } else {
                self.key_line(key)
            },
            env_var,
        }
    }

    /// The raw value of `key`: an environment override first, then the file.
    fn value(&mut self, key: &'static str) -> Option<(Value, Origin)> {
        self.used.push(key);
        if let Some((var, raw)) = self.ctx.overrides.get(&self.key(key)) {
            return Some((env_value(raw), self.origin(key, Some(var.clone()))));
        }
        let item = self.table?.get(key)?;
        let origin = self.origin(key, None);
        match item {
            Item::Value(v) => Some((v.clone(), origin)),
            Item::None => None,
            Item::Table(_) | Item::ArrayOfTables(_) => {
                origin.error(self.ctx, "must be a single value, not a table");
                None
            }
        }
    }

    /// Text in quotes. The example's `"..."` placeholder is warned about.
    pub(super) fn string(&mut self, key: &'static str) -> Option<String> {
        let (v, origin) = self.value(key)?;
        match v.as_str() {
            Some(s) => {
                if s.trim() == "..." {
                    self.ctx.warn(format!(
                        "key `{}`{}: still holds the example's placeholder \"...\"",
                        origin.key,
                        at_line(origin.line)
                    ));
                }
                Some(s.to_string())
            }
            None => {
                origin.error(
                    self.ctx,
                    format!("must be text in quotes, not {}", kind(&v)),
                );
                None
            }
        }
    }

    /// Like [`string`](Self::string), with the origin for later checks.
    pub(super) fn string_at(&mut self, key: &'static str) -> Option<(String, Origin)> {
        let origin = self.origin(key, None);
        let value = self.string(key)?;
        Some((value, origin))
    }

    pub(super) fn path_value(&mut self, key: &'static str) -> Option<(PathBuf, Origin)> {
        self.string_at(key).map(|(s, o)| (PathBuf::from(s), o))
    }

    /// A whole number ≥ 0, without quotes.
    pub(super) fn uint(&mut self, key: &'static str) -> Option<usize> {
        let (v, origin) = self.value(key)?;
        match v.as_integer() {
            Some(i) if i >= 0 => usize::try_from(i).ok().or_else(|| {
                origin.error(self.ctx, "is too large");
                None
            }),
            Some(_) => {
                origin.error(self.ctx, "must not be negative");
                None
            }
            None => {
                origin.error(
                    self.ctx,
                    format!("must be a whole number without quotes, not {}", kind(&v)),
                );
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, key: &'static str) -> Option<bool> {
        let (v, origin) = self.value(key)?;
        match v.as_bool() {
            Some(b) => Some(b),
            None => {
                origin.error(
                    self.ctx,
                    format!("must be true or false without quotes, not {}", kind(&v)),
                );
                None
            }
        }
    }

    /// A duration in quotes: "90s", "15m", "1h 30m".
    pub(super) fn duration(&mut self, key: &'static str) -> Option<Duration> {
        let (v, origin) = self.value(key)?;
        let parsed = v
            .as_str()
            .and_then(|s| humantime::parse_duration(s.trim()).ok());
        if parsed.is_none() {
            origin.error(
                self.ctx,
                "must be a duration in quotes, such as \"90s\", \"15m\" or \"1h 30m\"",
            );
        }
        parsed
    }

    /// A list of texts: `["a", "b"]`.
    pub(super) fn strings(&mut self, key: &'static str) -> Option<Vec<String>> {
        let (v, origin) = self.value(key)?;
        let list = v.as_array().and_then(|a| {
            a.iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        });
        if list.is_none() {
            origin.error(
                self.ctx,
                "must be a list of names in quotes, such as [\"campaigns\", \"safe-score-details\"]",
            );
        }
        list
    }

    /// A sub-table: `[cyberpilot.login]` or `login = { ... }`.
    pub(super) fn table(&mut self, key: &'static str) -> Option<Section<'a>> {
        self.used.push(key);
        let (k, item) = self.table?.get_key_value(key)?;
        let line = self.ctx.line_of(k.span());
        let table: Option<&'a dyn TableLike> = match item {
            Item::Table(t) => Some(t),
            Item::Value(Value::InlineTable(t)) => Some(t),
            _ => None,
        };
        match table {
            Some(t) => Some(Section {
                ctx: self.ctx,
                path: self.key(key),
                table: Some(t),
                line,
                used: Vec::new(),
            }),
            None => {
                self.ctx.error(
                    &self.key(key),
                    line,
                    format!("must be a table: write it as a [{}] section", self.key(key)),
                );
                None
            }
        }
    }

    /// A table that may be absent (read as empty): `[poll]`.
    pub(super) fn optional_table(&mut self, key: &'static str) -> Section<'a> {
        let present = self.table.is_some_and(|t| t.get(key).is_some());
        if present {
            if let Some(s) = self.table(key) {
                return s;
            }
        } else {
            self.used.push(key);
        }
        Section {
            ctx: self.ctx,
            path: self.key(key),
            table: None,
            line: None,
            used: Vec::new(),
        }
    }

    /// An array of tables: one `[[mimecast]]` block per account.
    pub(super) fn tables(&mut self, key: &'static str) -> Vec<Section<'a>> {
        self.used.push(key);
        let Some((k, item)) = self.table.and_then(|t| t.get_key_value(key)) else {
            return Vec::new();
        };
        let section = |i: usize, t: &'a dyn TableLike, line| Section {
            ctx: self.ctx,
            path: format!("{}[{i}]", self.key(key)),
            table: Some(t),
            line,
            used: Vec::new(),
        };
        match item {
            Item::ArrayOfTables(a) => a
                .iter()
                .enumerate()
                .map(|(i, t)| section(i, t, self.ctx.line_of(t.span())))
                .collect(),
            Item::Value(Value::Array(a))
                if a.iter().all(|v| matches!(v, Value::InlineTable(_))) =>
            {
                a.iter()
                    .enumerate()
                    .filter_map(|(i, v)| match v {
                        Value::InlineTable(t) => Some(section(i, t, self.ctx.line_of(v.span()))),
                        _ => None,
                    })
                    .collect()
            }
            _ => {
                self.ctx.error(
                    &self.key(key),
                    self.ctx.line_of(k.span()),
                    format!("must be written as [[{key}]] blocks, one per account"),
                );
                Vec::new()
            }
        }
    }

    /// Reports every key of this section that nothing read (typos, keys from another section),
    /// including environment overrides that name no key.
    pub(super) fn finish(self) {
        let known = || {
            let mut k: Vec<&str> = self.used.clone();
            k.sort_unstable();
            k.dedup();
            k
        };
        if let Some(table) = self.table {
            for (name, item) in table.iter() {
                if self.used.contains(&name) || matches!(item, Item::None) {
                    continue;
                }
                let line = self.key_line(name);
                self.ctx
                    .error(&self.key(name), line, unknown_key(name, &known()));
            }
        }
        let prefix = format!("{}.", self.path);
        for (key, (var, _)) in &self.ctx.overrides {
            let Some(name) = key.strip_prefix(&prefix) else {
                continue;
            };
            if !self.used.contains(&name) {
                self.ctx.error(
                    key,
                    None,
                    format!(
                        "{} (set by environment variable {var})",
                        unknown_key(name, &known())
                    ),
                );
            }
        }
    }
}

fn unknown_key(name: &str, known: &[&str]) -> String {
    let mut message = String::from("unknown key");
    if let Some(close) = known.iter().find(|k| edit_distance(k, name) <= 2) {
        message.push_str(&format!("; did you mean `{close}`?"));
    } else if !known.is_empty() {
        message.push_str(&format!("; known keys here: {}", known.join(", ")));
    }
    message
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// What kind of value the user wrote, without the value itself.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "text",
        Value::Integer(_) => "a number",
        Value::Float(_) => "a decimal number",
        Value::Boolean(_) => "true/false",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::InlineTable(_) => "a table",
    }
}

/// An environment variable's text as a TOML value: booleans and numbers as such, anything else
/// as text (so `15m` needs no quotes).
fn env_value(raw: &str) -> Value {
    let t = raw.trim();
    if let Ok(b) = t.parse::<bool>() {
        Value::from(b)
    } else if let Ok(i) = t.parse::<i64>() {
        Value::from(i)
    } else {
        Value::from(raw)
    }
}

pub(super) fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

/// 1-based line and column of a byte offset (clamped; never splits a character).
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_taken_as_dotted_keys() {
        let ctx = Ctx::new(
            "",
            [
                ("poll.interval".to_string(), "15m".to_string()),
                ("Metrics.Per_User".to_string(), "true".to_string()),
                ("cyberpilot.token".to_string(), "secret".to_string()),
                ("pollx.interval".to_string(), "1m".to_string()),
            ],
        );
        let got: Vec<(&str, &str, &str)> = ctx
            .overrides
            .iter()
            .map(|(k, (var, v))| (k.as_str(), var.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("metrics.per_user", "AWARENESS_METRICS__PER_USER", "true"),
                ("poll.interval", "AWARENESS_POLL__INTERVAL", "15m"),
            ]
        );
    }

    #[test]
    fn edit_distance_finds_typos() {
        assert_eq!(edit_distance("interval", "intervall"), 1);
        assert_eq!(edit_distance("max_age", "maxage"), 1);
        assert!(edit_distance("timeout", "listen") > 2);
    }

    #[test]
    fn line_col_never_splits_a_character() {
        assert_eq!(line_col("ä\nb", 1), (1, 1));
        assert_eq!(line_col("a\nb", 2), (2, 1));
        assert_eq!(line_col("a", 99), (1, 2));
    }
}
