//! Reading declared tables. The sections and each vendor's block are types with
//! `#[derive(Deserialize)] #[serde(deny_unknown_fields)]`, deserialized from the figment tree;
//! on an error the problem is recorded — the key's full name and line, in the user's words,
//! never its value — the key is taken out and the rest read again, so one pass reports them
//! all. serde's own messages quote values ("invalid type: string \"…\""), which could be a
//! secret pasted into the wrong key: they are never shown, only figment's error kinds are.
//!
//! Keys are dotted paths from the top of the file: `mimecast.1.login.password`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;
use std::time::Duration;

use figment::error::Kind;
use figment::value::{Dict, Value};
use serde::de::DeserializeOwned;
use toml_edit::ImDocument;
use zeroize::{Zeroize, Zeroizing};

use super::document::{key_name, line, overridden_key};
use super::values::{plain_http_to_another_host, HttpUrl};
use super::ConfigError;

/// What the reading of one config shares: the document (for lines), the folder of relative
/// paths, the environment, `poll.interval` once read, and the problems found so far.
pub(super) struct Checks<'a> {
    pub(super) doc: &'a ImDocument<&'a str>,
    pub(super) base: &'a Path,
    pub(super) env: &'a BTreeMap<String, Zeroizing<String>>,
    pub(super) poll_interval: Cell<Duration>,
    /// Set once any secret is written inline in the file (the permission warning).
    pub(super) inline: Cell<bool>,
    pub(super) errors: RefCell<Vec<ConfigError>>,
    pub(super) warnings: RefCell<Vec<String>>,
}

/// One table as a vendor reads it ([`VendorConfig::read_account`](super::VendorConfig)): a
/// `[[<platform>]]` block (or the sections at the top of the file), its secrets already
/// resolved (`<name>_file` and `<name>_env` became `<name>`), [`read`](Self::read) into the
/// vendor's declared type, then checked with [`required`](Self::required) and
/// [`error`](Self::error), which name the key as the user wrote it and its line.
pub struct Block<'a> {
    checks: &'a Checks<'a>,
    /// The block's key: `mimecast.1`; empty for the top of the file.
    path: String,
    value: Value,
    secret_keys: &'static [&'static str],
    /// `login.password` → `login.password_file`: the key each secret was written as.
    written_as: BTreeMap<String, String>,
    /// The problems reported before this block: the ones after are its own.
    errors_before: usize,
}

impl<'a> Block<'a> {
    /// The table at `path`, its secrets resolved.
    pub(super) fn new(
        checks: &'a Checks<'a>,
        path: String,
        mut value: Value,
        secret_keys: &'static [&'static str],
    ) -> Self {
        let mut block = Block {
            checks,
            path,
            value: Value::from(Dict::new()),
            secret_keys,
            written_as: BTreeMap::new(),
            errors_before: checks.errors.borrow().len(),
        };
        if let Value::Dict(_, table) = &mut value {
            block.walk("", table);
        }
        block.value = value;
        block
    }

    /// The full key of `key` (dotted inside the block), as the user wrote it.
    fn at(&self, key: &str) -> String {
        let key = self.written_as.get(key).map_or(key, String::as_str);
        match (self.path.as_str(), key) {
            ("", only) | (only, "") => only.to_string(),
            (path, key) => format!("{path}.{key}"),
        }
    }

    /// The block as the vendor's declared type: the keys the user got wrong are reported and
    /// read as absent (`None` only when nothing could be read).
    pub(crate) fn read<T: DeserializeOwned>(&mut self) -> Option<T> {
        loop {
            let e = match self.value.deserialize::<T>() {
                Ok(t) => return Some(t),
                Err(e) => e,
            };
            // A list's item is reported as the list (`endpoints`), which is taken out whole.
            let depth = e.path.iter().take_while(|p| p.parse::<usize>().is_err());
            let key = &e.path[..depth.count()];
            self.error(&key.join("."), message(&e.kind, self.secret_keys));
            if key.is_empty() || !remove(&mut self.value, key) {
                return None;
            }
        }
    }

    /// `value`, or a problem "is required" (unless the key has one already) and a stand-in
    /// that [`valid`](Self::valid) never lets out.
    pub(crate) fn required<T: Default>(&self, key: &str, value: Option<T>) -> T {
        if value.is_none() && !self.failed(key) {
            let name = key.rsplit('.').next().unwrap_or(key);
            let or = (self.secret_keys.contains(&name))
                .then(|| format!(" (or `{name}_file` / `{name}_env`)"));
            self.error(key, format!("is required{}", or.unwrap_or_default()));
        }
        value.unwrap_or_default()
    }

    /// The account read from this block, unless a problem of the block was reported.
    pub(crate) fn valid<T>(&self, account: T) -> Option<T> {
        let errors = self.checks.errors.borrow().len();
        (errors == self.errors_before).then_some(account)
    }

    /// Whether `key` has a problem reported already (it was written, but wrong).
    pub(crate) fn failed(&self, key: &str) -> bool {
        let name = key_name(&self.at(key));
        let same = |e: &ConfigError| matches!(e, ConfigError::Invalid { key, .. } if *key == name);
        self.checks.errors.borrow().iter().any(same)
    }

    /// Reports a problem with `key` (dotted inside the block: `login.token_url`) as the user
    /// wrote it (`secret_key_file`), with its line, or the variable that set it (the last one,
    /// as figment layers them). Never put a value in `message`.
    pub(crate) fn error(&self, key: &str, message: impl Display) {
        let key = self.at(key);
        let mut vars = self.checks.env.keys();
        let var = vars.rfind(|v| overridden_key(v).as_ref() == Some(&key));
        let line = var.is_none().then(|| line(self.checks.doc, &key)).flatten();
        let by = var.map(|var| format!(" (set by environment variable {var})"));
        let message = format!("{message}{}", by.unwrap_or_default());
        let key = key_name(&key);
        let problem = ConfigError::Invalid { key, line, message };
        self.checks.errors.borrow_mut().push(problem);
    }

    /// A warning about `key` (printed by `--check-config`, logged at start-up and reload);
    /// never put a value in it.
    pub(crate) fn warn(&self, key: &str, message: impl Display) {
        let key = self.at(key);
        let at = at_line(line(self.checks.doc, &key));
        let warning = format!("key `{}`{at}: {message}", key_name(&key));
        self.checks.warnings.borrow_mut().push(warning);
    }

    /// `base_url`, or the host `regions` gives `region` (case-insensitive) with the region's
    /// name: at most one of the two. With neither, `otherwise`: the default host, or the
    /// problem "region is required" in the vendor's words. `None` when one is wrong (reported).
    pub(crate) fn host(
        &self,
        url: Option<HttpUrl>,
        region: Option<String>,
        regions: &[(&'static str, &'static str)],
        otherwise: Result<&str, &str>,
    ) -> (String, Option<String>) {
        let find = |r: &str| regions.iter().find(|(n, _)| n.eq_ignore_ascii_case(r));
        let problem = match (url, region.as_deref().map(str::trim).map(find)) {
            _ if self.failed("base_url") || self.failed("region") => return Default::default(),
            (Some(_), Some(_)) => "give either base_url or region, not both".to_string(),
            (Some(url), None) => return (url.into(), None),
            (None, Some(Some(&(name, host)))) => return (host.into(), Some(name.into())),
            (None, Some(None)) => {
                let known: Vec<&str> = regions.iter().map(|(n, _)| *n).collect();
                format!("is not a known region; known: {}", known.join(", "))
            }
            (None, None) => match otherwise {
                Ok(host) => return (host.to_string(), None),
                Err(problem) => problem.to_string(),
            },
        };
        self.error("region", problem);
        Default::default()
    }

    /// `poll.interval`: how often the account is polled when it sets no `interval` of its own
    /// (a vendor with a request quota checks that its polls fit).
    pub(crate) fn poll_interval(&self) -> Duration {
        self.checks.poll_interval.get()
    }

    /// Resolves the secrets (`<name>_file` and `<name>_env` become `<name>`, holding what they
    /// point at) and warns about suspicious texts, in `table` (at `within` in the block:
    /// `login.`) and the tables in it.
    fn walk(&mut self, within: &str, table: &mut Dict) {
        for (key, value) in table.iter_mut() {
            match value {
                Value::Dict(_, inner) => self.walk(&format!("{within}{key}."), inner),
                Value::String(_, text) => self.warn_about(&format!("{within}{key}"), text),
                _ => {}
            }
        }
        for &name in self.secret_keys {
            let forms = ["", "_file", "_env"].map(|form| format!("{name}{form}"));
            let given: Vec<&String> = forms.iter().filter(|f| table.contains_key(*f)).collect();
            let secret = format!("{within}{name}");
            // Named as written: the form given, or the second of several.
            if let Some(&form) = given.get(1).or(given.first()).filter(|f| **f != name) {
                let written = format!("{within}{form}");
                self.written_as.insert(secret.clone(), written);
            }
            match given[..] {
                [] => {}
                [form] if form == name => self.checks.inline.set(true),
                [form] => match self.secret_from(&secret, form, table.remove(form)) {
                    Ok(value) => drop(table.insert(name.into(), value.to_string().into())),
                    Err(problem) => self.error(&secret, problem),
                },
                [..] => {
                    let problem = format!("give only one of `{name}`, `{name}_file`, `{name}_env`");
                    self.error(&secret, problem);
                    // The plain one is left for the reading to zeroize; the others go now.
                    for form in &forms[1..] {
                        forget(table, form);
                    }
                }
            }
        }
    }

    /// Warns about a text that still holds the example's placeholder "..." and about a plain
    /// http:// URL (`*_url` keys) to another host, which would send credentials unencrypted.
    fn warn_about(&self, key: &str, text: &str) {
        if text.trim() == "..." {
            self.warn(key, "still holds the example's placeholder \"...\"");
        }
        if key.ends_with("url") && plain_http_to_another_host(text) {
            let warning = "plain http:// to a host other than this machine sends credentials \
                           unencrypted; use https://";
            self.warn(key, warning);
        }
    }

    /// The trimmed secret the file or the environment variable `raw` names (`form`: the key
    /// it is written in, `<secret>_file` or `<secret>_env`).
    fn secret_from(
        &self,
        secret: &str,
        form: &str,
        raw: Option<Value>,
    ) -> Result<Zeroizing<String>, String> {
        let Some(Value::String(_, name)) = raw else {
            return Err("must be text in quotes".into());
        };
        let name = Zeroizing::new(name);
        let value = match form.ends_with("_file") {
            true => self.secret_file(&format!("{secret}_file"), name.trim())?,
            false => self.secret_var(secret, name.trim())?,
        };
        let value = Zeroizing::new(value.trim().to_string());
        (!value.is_empty())
            .then_some(value)
            .ok_or("the secret is empty".into())
    }

    /// The file `name` (relative to the config file's folder), whose path is shown only when it
    /// looks like one: a secret pasted here must not be.
    fn secret_file(&self, key: &str, name: &str) -> Result<Zeroizing<String>, String> {
        let path = self.checks.base.join(name);
        let path_char = |c: char| c.is_ascii_alphanumeric() || "/._-".contains(c);
        let path_like = name.contains('/') && name.chars().all(path_char);
        let shown = path_like.then(|| format!(" {}", path.display()));
        let value = crate::files::read_text(&path).map_err(|e| {
            let shown = shown.unwrap_or_default();
            format!("cannot read the file it names{shown}: {e}")
        })?;
        if let Some(who) = crate::files::open_to_others(&path) {
            let warning = format!("the secret file {} is open to {who}", path.display());
            self.warn(key, warning + "; chmod 600 it");
        }
        Ok(value)
    }

    /// The environment variable `name`, which is shown only when it is written in capitals as
    /// variables are: a name in other letters may be a pasted secret.
    fn secret_var(&self, secret: &str, name: &str) -> Result<Zeroizing<String>, String> {
        let name_like = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_like {
            let secret = secret.rsplit('.').next().unwrap_or(secret);
            return Err(format!(
                "is not an environment variable name (letters, digits and _); if you pasted the \
                 secret itself here, use `{secret}` or `{secret}_file` instead"
            ));
        }
        let capitals = !name.chars().any(|c| c.is_ascii_lowercase());
        let shown = if capitals { name } else { "it names" };
        let value = self.checks.env.get(name);
        let value = value.map(|v| Zeroizing::new(v.to_string()));
        value.ok_or_else(|| format!("the environment variable {shown} is not set"))
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        zeroize_tree(&mut self.value);
    }
}

/// A problem in the user's words, without the value.
fn message(kind: &Kind, secrets: &[&str]) -> String {
    match kind {
        Kind::InvalidType(_, expected) | Kind::InvalidValue(_, expected) => {
            format!("must be {}", words(expected))
        }
        Kind::UnknownVariant(_, known) => format!("must be one of {}", known.join(", ")),
        Kind::UnknownField(name, known) => {
            let mut keys: Vec<String> = known.iter().map(|k| k.to_string()).collect();
            let secrets = secrets.iter().filter(|k| known.contains(k));
            keys.extend(secrets.flat_map(|k| [format!("{k}_file"), format!("{k}_env")]));
            unknown_key(name, &keys)
        }
        Kind::MissingField(name) => format!("needs `{name}`"),
        // Only our own value types write messages, and never with a value.
        Kind::Message(m) => m.clone(),
        _ => "cannot take a value of this kind".into(),
    }
}

/// What a type expects, in the user's words.
fn words(expected: &str) -> &str {
    match expected {
        "a string" | "a borrowed string" => "text in quotes",
        "a boolean" => "true or false without quotes",
        "path string" => "a path in quotes",
        "a sequence" => "a list",
        "i64" => "a whole number without quotes",
        e if e.starts_with("struct ") || e == "a map" => "a table",
        e => e,
    }
}

/// "unknown key", with the closest known key (two edits at most) or the list of them.
pub(super) fn unknown_key(name: &str, known: &[String]) -> String {
    let closest = known.iter().min_by_key(|k| strsim::levenshtein(k, name));
    match closest.filter(|k| strsim::levenshtein(k, name) <= 2) {
        Some(close) => format!("unknown key; did you mean `{close}`?"),
        None => format!("unknown key; known keys here: {}", known.join(", ")),
    }
}

/// Takes the key at `key` out of `value` ([`forget`]); false when it is not there.
fn remove(value: &mut Value, key: &[String]) -> bool {
    match (value, key) {
        (Value::Dict(_, d), [last]) => forget(d, last),
        (Value::Dict(_, d), [first, rest @ ..]) => {
            d.get_mut(first).is_some_and(|v| remove(v, rest))
        }
        _ => false,
    }
}

/// Takes `key` out of `table`, its texts overwritten: a secret may be written in a wrong key.
fn forget(table: &mut Dict, key: &str) -> bool {
    let removed = table.remove(key).map(|mut v| zeroize_tree(&mut v));
    removed.is_some()
}

/// Overwrites every text in the tree (it held the secrets) before it is dropped.
fn zeroize_tree(value: &mut Value) {
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
