//! Reading declared tables. A section or a vendor's block is a type with
//! `#[derive(Deserialize)] #[serde(deny_unknown_fields)]`, deserialized from the figment tree;
//! on an error the problem is recorded — the key's full name and line, in the user's words,
//! never its value — the key is taken out and the rest read again, so one pass reports them
//! all. serde's own messages quote values ("invalid type: string \"…\""), which could be a
//! secret pasted into the wrong key: they are never shown, only figment's error kinds are.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use figment::error::{Actual, Kind};
use figment::value::{Dict, Value};
use serde::de::DeserializeOwned;
use zeroize::{Zeroize, Zeroizing};

use super::document::{key_name, Document};
use super::values::HttpUrl;
use super::ConfigError;

/// What the reading of one config shares: the document (for lines), the folder of relative
/// paths, the environment, and the problems found so far.
pub(super) struct Checks<'a> {
    pub(super) doc: &'a Document<'a>,
    pub(super) base: &'a Path,
    pub(super) env: &'a BTreeMap<String, Zeroizing<String>>,
    /// Set once any secret is written inline in the file (the permission warning).
    pub(super) inline: Cell<bool>,
    pub(super) errors: RefCell<Vec<ConfigError>>,
    pub(super) warnings: RefCell<Vec<String>>,
}

fn join(path: &[String], key: &str) -> Vec<String> {
    path.iter()
        .cloned()
        .chain(key.split('.').map(String::from))
        .collect()
}

impl Checks<'_> {
    /// A problem with the key at `path`: its line, or the variable that set it.
    pub(super) fn error(&self, path: &[String], message: impl Into<String>) {
        let (var, mut message) = (self.doc.env_var(path), message.into());
        if let Some(var) = var {
            message.push_str(&format!(" (set by environment variable {var})"));
        }
        let line = if var.is_some() {
            None
        } else {
            self.doc.line(path)
        };
        let key = key_name(path);
        self.errors
            .borrow_mut()
            .push(ConfigError::Invalid { key, line, message });
    }

    pub(super) fn warn(&self, message: impl Into<String>) {
        self.warnings.borrow_mut().push(message.into());
    }

    /// "key `mimecast[0].base_url` (line 12)", for warnings.
    fn key(&self, path: &[String]) -> String {
        format!("key `{}`{}", key_name(path), at_line(self.doc.line(path)))
    }

    /// Warns about texts that still hold the example's placeholder "..." and about plain
    /// http:// URLs (`*_url` keys) to another host, which would send credentials unencrypted.
    pub(super) fn warn_about_values(&self, path: &[String], value: &Value) {
        match value {
            Value::Dict(_, d) => d
                .iter()
                .for_each(|(k, v)| self.warn_about_values(&join(path, k), v)),
            Value::Array(_, a) => a
                .iter()
                .enumerate()
                .for_each(|(i, v)| self.warn_about_values(&join(path, &i.to_string()), v)),
            Value::String(_, s) if s.trim() == "..." => self.warn(format!(
                "{}: still holds the example's placeholder \"...\"",
                self.key(path)
            )),
            Value::String(_, s)
                if path.last().is_some_and(|k| k.ends_with("url"))
                    && super::values::plain_http_to_another_host(s) =>
            {
                self.warn(format!(
                    "{}: plain http:// to a host other than this machine sends credentials \
                     unencrypted; use https://",
                    self.key(path)
                ))
            }
            _ => {}
        }
    }

    /// Deserializes the table at `path` as `T`, as the module says. The keys taken out are
    /// added to `failed` (relative to `path`, dotted); `secrets` are the secret keys, whose
    /// `_file`/`_env` forms are suggested for an unknown key.
    pub(super) fn declared<T: DeserializeOwned>(
        &self,
        path: &[String],
        mut value: Value,
        secrets: &[&str],
        failed: &mut BTreeSet<String>,
    ) -> Option<T> {
        let read = loop {
            let e = match value.deserialize::<T>() {
                Ok(t) => break Some(t),
                Err(e) => e,
            };
            // A list's item is reported as the list (`endpoints`), which is taken out whole.
            let mut key: Vec<String> = e
                .path
                .iter()
                .take_while(|p| p.parse::<usize>().is_err())
                .cloned()
                .collect();
            if let Kind::MissingField(name) = &e.kind {
                key.push(name.to_string());
            }
            self.error(&[path, &key].concat(), message(&e.kind, secrets));
            failed.insert(key.join("."));
            if key.is_empty() || !remove(&mut value, &key) {
                break None;
            }
        };
        zeroize_tree(&mut value);
        read
    }

    /// Replaces `<name>_file` and `<name>_env` by `<name>` holding what they point at, in
    /// `table` and the tables in it.
    fn resolve_secrets(&self, path: &[String], table: &mut Dict, names: &[&str], r: &mut Resolved) {
        for (key, value) in table.iter_mut() {
            if let Value::Dict(_, inner) = value {
                self.resolve_secrets(&join(path, key), inner, names, r);
            }
        }
        for &name in names {
            let forms = [
                name.to_string(),
                format!("{name}_file"),
                format!("{name}_env"),
            ];
            let given: Vec<&String> = forms.iter().filter(|f| table.contains_key(*f)).collect();
            let relative = |k: &str| join(path, k)[r.depth..].join(".");
            let form = match given.as_slice() {
                [] => continue,
                [_, second, ..] => {
                    let message = format!(
                        "give only one of `{}`, `{}`, `{}`",
                        forms[0], forms[1], forms[2]
                    );
                    self.error(&join(path, second), message);
                    forms.iter().for_each(|f| drop(table.remove(f)));
                    r.failed.insert(relative(name));
                    continue;
                }
                [form] => form.as_str(),
            };
            if form == name {
                self.inline.set(true);
                continue;
            }
            let raw = table.remove(form).unwrap_or_else(|| Value::from(false));
            match self.secret_from(&join(path, form), raw) {
                Ok(secret) => {
                    r.written_as.insert(relative(name), relative(form));
                    table.insert(name.to_string(), Value::from(secret.to_string()));
                }
                Err(message) => {
                    self.error(&join(path, form), message);
                    r.failed.insert(relative(name));
                }
            }
        }
    }

    /// The trimmed secret a `*_file` or `*_env` key (`at`) points at. The path or the
    /// variable's name is shown when it looks like one: a secret pasted there must not be.
    fn secret_from(&self, at: &[String], raw: Value) -> Result<Zeroizing<String>, String> {
        let key = at.last().map_or("", String::as_str);
        let file = key.ends_with("_file");
        let Value::String(_, name) = raw else {
            let what = [" an environment variable's name", " a file path"][usize::from(file)];
            return Err(format!(
                "must be{what} in quotes, not {}",
                what_was(&raw.to_actual())
            ));
        };
        let name = Zeroizing::new(name.trim().to_string());
        let value = if file {
            let full = self.base.join(name.as_str());
            let path_like = name.contains('/')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
            let shown = match path_like {
                true => format!(" {}", full.display()),
                false => String::new(),
            };
            let relative = Path::new(name.as_str()).is_relative().then(|| {
                format!(
                    " (a relative path is read from the config file's folder, {})",
                    self.base.display()
                )
            });
            let value = crate::files::read_text(&full).map_err(|reason| {
                format!(
                    "cannot read the file it names{shown}: {reason}{}",
                    relative.unwrap_or_default()
                )
            })?;
            if let Some(who) = super::readable_by_others(&full) {
                self.warn(format!(
                    "{}: the secret file {} is open to {who}; chmod 600 it (or 640 with the \
                     exporter's own group)",
                    self.key(at),
                    full.display()
                ));
            }
            value
        } else {
            let is_name = !name.is_empty()
                && name.len() <= 255
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !is_name {
                let secret = key.trim_end_matches("_env");
                return Err(format!(
                    "is not an environment variable name (letters, digits and _); if you pasted \
                     the secret itself here, use `{secret}` or `{secret}_file` instead"
                ));
            }
            // Variables are named in capitals; a name in other letters may be a pasted secret.
            let capitals = !name.chars().any(|c| c.is_ascii_lowercase());
            let shown = match capitals {
                true => format!(" {}", name.as_str()),
                false => String::new(),
            };
            let value = self
                .env
                .get(name.as_str())
                .map(|v| Zeroizing::new(v.to_string()));
            value.ok_or_else(|| format!("the environment variable{shown} it names is not set"))?
        };
        match Zeroizing::new(value.trim().to_string()) {
            empty if empty.is_empty() => Err("the secret is empty".into()),
            value => Ok(value),
        }
    }
}

/// What secret resolution learns of a block.
#[derive(Default)]
struct Resolved {
    /// How many parts of a path are the block's own (`mimecast`, `1`).
    depth: usize,
    /// `secret_key` → `secret_key_file`: the key each resolved secret was written as.
    written_as: BTreeMap<String, String>,
    failed: BTreeSet<String>,
}

/// One `[[<platform>]]` block as a vendor reads it
/// ([`VendorConfig::read_account`](super::VendorConfig::read_account)): its secrets already
/// resolved (`<name>_file` and `<name>_env` became `<name>`), [`read`](Self::read) into the
/// vendor's declared type, then checked with [`required`](Self::required) and
/// [`error`](Self::error), which name the key as the user wrote it and its line.
pub struct Block<'a> {
    checks: &'a Checks<'a>,
    path: Vec<String>,
    value: Value,
    secret_keys: &'static [&'static str],
    resolved: Resolved,
    poll_interval: Duration,
}

impl<'a> Block<'a> {
    /// The block at `path`, its secrets resolved.
    pub(super) fn new(
        checks: &'a Checks<'a>,
        path: Vec<String>,
        mut value: Value,
        secret_keys: &'static [&'static str],
        poll_interval: Duration,
    ) -> Self {
        let mut resolved = Resolved {
            depth: path.len(),
            ..Resolved::default()
        };
        if let Value::Dict(_, table) = &mut value {
            checks.resolve_secrets(&path, table, secret_keys, &mut resolved);
        }
        Block {
            checks,
            path,
            value,
            secret_keys,
            resolved,
            poll_interval,
        }
    }

    /// The block as the vendor's declared type: the keys the user got wrong are reported and
    /// read as absent (`None` only when nothing could be read).
    pub(crate) fn read<T: DeserializeOwned>(&mut self) -> Option<T> {
        let value = std::mem::replace(&mut self.value, Value::from(Dict::new()));
        self.checks.declared(
            &self.path,
            value,
            self.secret_keys,
            &mut self.resolved.failed,
        )
    }

    /// `value`, or a problem "is required" (unless the key was written and found wrong).
    pub(crate) fn required<T>(&self, key: &str, value: Option<T>) -> Option<T> {
        if value.is_none() && !self.failed(key) {
            let name = key.rsplit('.').next().unwrap_or(key);
            match self.secret_keys.contains(&name) {
                true => self.error(
                    key,
                    format!("is required (or `{name}_file` / `{name}_env`)"),
                ),
                false => self.error(key, "is required"),
            }
        }
        value
    }

    /// Whether `key` was written but could not be read (already reported).
    pub(crate) fn failed(&self, key: &str) -> bool {
        self.resolved.failed.contains(key)
    }

    /// Reports a problem with `key` (dotted inside the block: `login.token_url`) as the user
    /// wrote it (`secret_key_file`), with its line. Never put a value in `message`.
    pub(crate) fn error(&self, key: &str, message: impl Into<String>) {
        let key = self
            .resolved
            .written_as
            .get(key)
            .map_or(key, String::as_str);
        self.checks.error(&join(&self.path, key), message);
    }

    /// A warning about `key` (printed by `--check-config`, logged at start-up); never put a
    /// value in it.
    pub(crate) fn warn(&self, key: &str, message: impl Into<String>) {
        let at = self.checks.key(&join(&self.path, key));
        self.checks.warn(format!("{at}: {}", message.into()))
    }

    /// `base_url`, or the host `regions` gives `region` (case-insensitive) with the region's
    /// name: at most one of the two. `None` when neither is set (the vendor says what then),
    /// or when one is wrong (reported).
    pub(crate) fn host(
        &self,
        url: Option<HttpUrl>,
        region: Option<String>,
        regions: &[(&'static str, &'static str)],
    ) -> Option<(String, Option<String>)> {
        match (url, region) {
            (Some(_), Some(_)) => self.error("region", "give either base_url or region, not both"),
            (Some(url), None) => return Some((url.into(), None)),
            (None, Some(r)) => match regions
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(r.trim()))
            {
                Some((name, host)) => return Some((host.to_string(), Some(name.to_string()))),
                None => {
                    let known: Vec<&str> = regions.iter().map(|(n, _)| *n).collect();
                    let message = format!("is not a known region; known: {}", known.join(", "));
                    self.error("region", message);
                }
            },
            (None, None) => {}
        }
        None
    }

    /// `poll.interval`: how often the account is polled when it sets no `interval` of its own
    /// (a vendor with a request quota checks that its polls fit).
    pub(crate) fn poll_interval(&self) -> Duration {
        self.poll_interval
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        zeroize_tree(&mut self.value);
    }
}

/// A problem in the user's words, without the value.
fn message(kind: &Kind, secrets: &[&str]) -> String {
    const WHOLE: [&str; 5] = ["u32", "u64", "usize", "i64", "a whole number"];
    let words = |expected: &str| match expected {
        "a string" | "a borrowed string" => "text in quotes".to_string(),
        "a boolean" => "true or false without quotes".into(),
        "path string" => "a path in quotes".into(),
        "a sequence" => "a list".into(),
        e if e.starts_with("struct ") || e == "a map" => "a table".into(),
        e if WHOLE.contains(&e) => "a whole number without quotes".into(),
        e => e.to_string(),
    };
    match kind {
        Kind::InvalidType(was, expected) => {
            format!("must be {}, not {}", words(expected), what_was(was))
        }
        Kind::InvalidValue(_, expected) => format!("must be {}", words(expected)),
        Kind::UnknownVariant(_, known) => format!("must be one of {}", known.join(", ")),
        Kind::UnknownField(name, known) => {
            let forms = |k: &&str| [k.to_string(), format!("{k}_file"), format!("{k}_env")];
            let known: Vec<String> = known
                .iter()
                .flat_map(|k| {
                    if secrets.contains(k) {
                        forms(k).to_vec()
                    } else {
                        vec![k.to_string()]
                    }
                })
                .collect();
            unknown_key(name, &known)
        }
        Kind::MissingField(_) => "is required".into(),
        // Only our own value types write messages, and never with a value.
        Kind::Message(m) => m.clone(),
        _ => "cannot take a value of this kind".into(),
    }
}

/// What kind of value the user wrote, without the value itself.
fn what_was(actual: &Actual) -> &'static str {
    match actual {
        Actual::Bool(_) => "true/false",
        Actual::Unsigned(_) | Actual::Signed(_) => "a number",
        Actual::Float(_) => "a decimal number",
        Actual::Str(_) | Actual::Char(_) => "text",
        Actual::Seq => "a list",
        Actual::Map => "a table",
        _ => "another kind of value",
    }
}

/// "unknown key", with the closest known key or the list of them.
pub(super) fn unknown_key(name: &str, known: &[String]) -> String {
    match known.iter().find(|k| strsim::levenshtein(k, name) <= 2) {
        Some(close) => format!("unknown key; did you mean `{close}`?"),
        None => format!("unknown key; known keys here: {}", known.join(", ")),
    }
}

/// Takes the key at `key` out of `value`; false when it is not there.
fn remove(value: &mut Value, key: &[String]) -> bool {
    match (value, key) {
        (Value::Dict(_, d), [last]) => d.remove(last).is_some(),
        (Value::Dict(_, d), [first, rest @ ..]) => {
            d.get_mut(first).is_some_and(|v| remove(v, rest))
        }
        _ => false,
    }
}

/// Overwrites every text in the tree (it held the secrets) before it is dropped.
pub(super) fn zeroize_tree(value: &mut Value) {
    match value {
        Value::String(_, s) => s.zeroize(),
        Value::Dict(_, d) => d.values_mut().for_each(zeroize_tree),
        Value::Array(_, a) => a.iter_mut().for_each(zeroize_tree),
        _ => {}
    }
}

pub(super) fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}
