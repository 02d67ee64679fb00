//! Configuration: a TOML file with `AWARENESS_*` environment overrides, layered by figment and
//! read into declared types (serde derive, unknown keys refused) by [`Loader`], which is handed
//! the vendors it reads blocks for.
//!
//! Every problem is collected in one pass, so a user fixes them all at once; each names the key
//! the user wrote and its line, and never shows a value that could be a secret ([`block`]).
//! [`Config`] is what the rest of the program sees: durations parsed, secrets resolved into
//! [`Secret`], relative paths resolved against the config file's folder, every source
//! validated.

mod block;
mod document;
pub(crate) mod values;

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::value::Value;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use smart_default::SmartDefault;
use zeroize::Zeroizing;

use crate::files::FileError;
use crate::model::{Platform, SourceInfo, SourceKey};
pub use block::Block;
use block::{at_line, unknown_key, Checks};
use values::{duration, int, DAY, HOUR, MINUTE, MS, SEC, WEEK};

/// A secret value, zeroized when dropped (`secrecy`). It can be compared and used, never
/// printed: `Debug` is secrecy's redacted one, and there is no `Display` or `Serialize`.
#[derive(Clone, Debug, Default)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
    }
    /// The secret itself, for building a request. Never log the result.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

/// A configuration problem, always naming the key the user wrote (and its line when known).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file as a whole: missing, unreadable, changing while it is read, or not TOML.
    #[error("config file {path}: {problem}")]
    File { path: String, problem: String },
    #[error("config file {path} is empty: name an account in it, or run with --demo")]
    Empty { path: String },
    /// `tables`: every registered platform's table, `[[cyberpilot]] or [[mimecast]]`.
    #[error("config file {path} names no account: add a {tables} block, or run with --demo")]
    NoSources { path: String, tables: String },
    #[error("config key `{key}`{}: {message}", at_line(*.line))]
    Invalid {
        key: String,
        line: Option<usize>,
        message: String,
    },
    #[error("flag {flag}: {message}")]
    Flag { flag: String, message: String },
    #[error("web config file {path} (server.web_config_file): {message}")]
    WebConfig { path: String, message: String },
    /// Several problems found in one pass; each names its key.
    #[error("{} problems in the config:\n  - {}", .0.len(), list(.0))]
    Many(Vec<ConfigError>),
}

fn list(errors: &[ConfigError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n  - ")
}

pub const DEFAULT_LISTEN: &str = "0.0.0.0:10019";

// ---------------------------------------------------------------- validated configuration

/// The whole config: its sections as declared, its accounts as each vendor read them.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    pub server: ServerConfig,
    pub poll: PollConfig,
    pub metrics: MetricsConfig,
    #[serde(skip)]
    pub sources: Vec<SourceConfig>,
    /// True when secrets are written inline in the file (used for the permission warning).
    #[serde(skip)]
    pub has_inline_secrets: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, SmartDefault)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(deserialize_with = "listen")]
    #[default(DEFAULT_LISTEN.into())]
    pub listen: String,
    pub web_config_file: Option<PathBuf>,
    /// Where the exporter keeps what it must remember across restarts (resolved against the
    /// config file's folder); `None`: nothing is kept.
    pub state_dir: Option<PathBuf>,
    #[serde(deserialize_with = "int::<_, _, 1, 100_000>")]
    #[default(512)]
    pub max_connections: usize,
    #[serde(deserialize_with = "duration::<_, _, SEC, HOUR>")]
    #[default(Duration::from_secs(10))]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight is closed after this long.
    #[serde(deserialize_with = "duration::<_, _, SEC, DAY>")]
    #[default(Duration::from_secs(120))]
    pub idle_timeout: Duration,
    /// A connection with a request in flight that makes no progress (reading the request body
    /// or sending the answer) for this long is dropped.
    #[serde(deserialize_with = "duration::<_, _, SEC, HOUR>")]
    #[default(Duration::from_secs(30))]
    pub send_timeout: Duration,
    /// `--web.enable-lifecycle`: allow `POST`/`PUT /-/reload` over HTTP. Set from the command
    /// line only, never from the file.
    #[serde(skip)]
    pub enable_lifecycle: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, SmartDefault)]
#[serde(default, deny_unknown_fields)]
pub struct PollConfig {
    #[serde(deserialize_with = "duration::<_, _, SEC, WEEK>")]
    #[default(Duration::from_secs(30 * 60))]
    pub interval: Duration,
    #[serde(deserialize_with = "duration::<_, _, SEC, { 10 * MINUTE }>")]
    #[default(Duration::from_secs(60))]
    pub timeout: Duration,
    #[serde(deserialize_with = "duration::<_, _, SEC, { 90 * DAY }>")]
    #[default(Duration::from_secs(6 * 3600))]
    pub max_age: Duration,
    /// Longest a whole poll may run (all its requests, retries and pauses); a source's
    /// interval caps it.
    #[serde(deserialize_with = "duration::<_, _, SEC, WEEK>")]
    #[default(Duration::from_secs(10 * 60))]
    pub deadline: Duration,
    /// Attempts per request before a poll gives up (the first try included).
    #[serde(deserialize_with = "int::<_, _, 1, 20>")]
    #[default(4)]
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt (with jitter), capped at 30s.
    #[serde(deserialize_with = "duration::<_, _, MS, { 5 * MINUTE }>")]
    #[default(Duration::from_secs(1))]
    pub retry_backoff: Duration,
    /// Requests in flight at once per account.
    #[serde(deserialize_with = "int::<_, _, 1, 64>")]
    #[default(4)]
    pub concurrency: usize,
    /// Requests in flight at once across all accounts (many tenants often share one vendor host).
    #[serde(deserialize_with = "int::<_, _, 1, 4096>")]
    #[default(64)]
    pub max_requests_in_flight: usize,
    /// Pages per endpoint before paging is declared runaway.
    #[serde(deserialize_with = "int::<_, _, 1, 1_000_000>")]
    #[default(10_000)]
    pub max_pages: usize,
    /// Largest response body read, in bytes.
    #[serde(deserialize_with = "int::<_, _, 1024, { 1 << 32 }>")]
    #[default(64 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Rows a source may read in one poll (all its pages and sections); more fails the poll
    /// with reason `decode` and keeps the last good data.
    #[serde(deserialize_with = "int::<_, _, 1, 1_000_000_000>")]
    #[default(2_000_000)]
    pub max_rows: usize,
}

#[derive(Debug, Clone, PartialEq, Deserialize, SmartDefault)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub per_user: bool,
    #[serde(deserialize_with = "int::<_, _, 0, 10_000_000>")]
    #[default(20_000)]
    pub max_users: usize,
    /// Distinct values per vendor-controlled label (branch, department) per source; the rest
    /// are folded into `__other__`.
    #[serde(deserialize_with = "int::<_, _, 1, 1_000_000>")]
    #[default(1_000)]
    pub max_label_values: usize,
}

/// A listen address (`server.listen`), checked, as [`listen_address`] gives it.
fn listen<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    listen_address(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// The address to bind for a listen address (`server.listen`, `--web.listen-address`),
/// checked without binding it: `host:port` with an IP address, `[v6]:port` or a host name, or
/// `:port`, every interface (`0.0.0.0:port`) as in Prometheus.
pub fn listen_address(listen: &str) -> Result<String, String> {
    const HINT: &str = "must be host:port with a port from 0 to 65535, such as 0.0.0.0:10019 \
                        (every interface) or 127.0.0.1:10019";
    let (host, port) = listen.rsplit_once(':').unwrap_or_default();
    let host_ok = host.is_empty() || url::Host::parse(host).is_ok();
    match host_ok && port.parse::<u16>().is_ok() {
        true if host.is_empty() => Ok(format!("0.0.0.0:{port}")),
        true => Ok(listen.to_string()),
        false => Err(HINT.into()),
    }
}

// ---------------------------------------------------------------- vendors

/// What the config needs of a platform: the name of its `[[table]]`, its secret keys, and how
/// it reads one block. Registrations implement it (`crate::sources::registry`); the
/// [`Loader`] is handed the list.
pub trait VendorConfig: Sync {
    /// The platform name: the `platform` label's value and the config's `[[table]]` name.
    fn platform(&self) -> Platform;

    /// The block's secret keys, in any table of it. Each is also accepted as `<name>_file`
    /// (the trimmed content of a file) and `<name>_env` (an environment variable); the block
    /// is read with them resolved into `<name>`, and no message shows their values.
    fn secret_keys(&self) -> &'static [&'static str];

    /// Reads one `[[<platform>]]` block: [`Block::read`] into the vendor's declared type, then
    /// its own checks on `block`. `None` when the block is not usable (every problem reported).
    fn read_account(&self, block: Block<'_>) -> Option<Arc<dyn AccountConfig>>;
}

/// One configured account of a vendor: validated, secrets resolved. Derive `Debug` (secrets
/// are redacted by [`Secret`]), `Clone` and `PartialEq`: a reload restarts a source only when
/// its config is not equal to the running one.
pub trait AccountConfig: Any + DynEq + fmt::Debug + Send + Sync {
    /// The value of the `account` label.
    fn account(&self) -> &str;
    /// The account's own `interval`, if it sets one.
    fn interval(&self) -> Option<Duration>;
    /// What `--check-config` prints after the source's key: the URL and the settings that
    /// matter, never a secret.
    fn describe(&self) -> String;
    /// What the landing page shows: the vendor URL (no credentials, no query) and auth mode.
    fn info(&self) -> SourceInfo;
    /// Every secret of the account (tokens, passwords, keys), which its transport scrubs from
    /// any vendor text before it is kept, logged or shown.
    fn secrets(&self) -> Vec<&str>;
}

/// [`AccountConfig::account`] and [`AccountConfig::interval`] from the `account` and
/// `interval` fields every vendor's config has (`interval` an `Option<Duration>`, or a
/// `Duration` where the vendor has a default of its own): `account_and_interval!();` in the
/// vendor's `impl AccountConfig`.
macro_rules! account_and_interval {
    () => {
        fn account(&self) -> &str {
            &self.account
        }
        fn interval(&self) -> Option<std::time::Duration> {
            self.interval.into()
        }
    };
}
pub(crate) use account_and_interval;

/// Equality across `dyn AccountConfig`, implemented for every `PartialEq` type: vendors derive
/// `PartialEq` and get it for free.
pub trait DynEq {
    fn dyn_eq(&self, other: &dyn Any) -> bool;
}

impl<T: PartialEq + Any> DynEq for T {
    fn dyn_eq(&self, other: &dyn Any) -> bool {
        other.downcast_ref::<T>().is_some_and(|o| o == self)
    }
}

/// One configured account of one platform: the vendor's own validated config.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    platform: Platform,
    account: Arc<dyn AccountConfig>,
}

impl SourceConfig {
    pub fn new(platform: Platform, account: Arc<dyn AccountConfig>) -> Self {
        SourceConfig { platform, account }
    }
    pub fn key(&self) -> SourceKey {
        SourceKey::new(self.platform, self.account.account())
    }
    pub fn platform(&self) -> Platform {
        self.platform
    }
    pub fn interval(&self) -> Option<Duration> {
        self.account.interval()
    }
    /// The vendor's own config of this account.
    pub fn account(&self) -> &dyn AccountConfig {
        self.account.as_ref()
    }
    /// The vendor's own config type, when it is `T`.
    pub fn get<T: AccountConfig>(&self) -> Option<&T> {
        (self.account.as_ref() as &dyn Any).downcast_ref::<T>()
    }
}

impl PartialEq for SourceConfig {
    fn eq(&self, other: &Self) -> bool {
        self.platform == other.platform && self.account.dyn_eq(other.account.as_ref() as &dyn Any)
    }
}

// ---------------------------------------------------------------- loading

/// The outcome of checking a config: the config when it is valid, every error and every
/// warning otherwise. `--check-config` prints all of it; [`Loader::load`] and
/// [`Loader::parse`] turn it into a `Result` and log the warnings.
#[derive(Debug, Default)]
pub struct Report {
    pub config: Option<Config>,
    /// `server.web_config_file` (resolved), even when other keys are wrong, so `--check-config`
    /// can check it too.
    pub web_config_file: Option<PathBuf>,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<String>,
}

impl Report {
    fn failed(e: ConfigError) -> Report {
        let mut report = Report::default();
        report.errors.push(e);
        report
    }

    /// The config when it is valid (the warnings logged), else its problems.
    pub fn into_result(mut self) -> Result<Config, ConfigError> {
        for w in &self.warnings {
            tracing::warn!("{w}");
        }
        match self.config {
            Some(c) if self.errors.is_empty() => Ok(c),
            _ if self.errors.len() == 1 => Err(self.errors.remove(0)),
            _ => Err(ConfigError::Many(self.errors)),
        }
    }
}

/// Reads configs for the vendors it is handed, with an environment for `*_env` secrets and
/// `AWARENESS_<SECTION>__<KEY>` overrides of [server], [poll] and [metrics]
/// (`AWARENESS_POLL__INTERVAL=10m` sets `poll.interval`): the process's, unless one is given.
pub struct Loader {
    vendors: Vec<&'static dyn VendorConfig>,
    env: BTreeMap<String, Zeroizing<String>>,
}

impl Loader {
    pub fn new(vendors: impl IntoIterator<Item = &'static dyn VendorConfig>) -> Self {
        let vars = std::env::vars_os();
        let vars = vars.filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        let (vendors, env) = (vendors.into_iter().collect(), BTreeMap::new());
        Loader { vendors, env }.with_env(vars)
    }

    /// The same vendors with `vars` as the whole environment.
    pub fn with_env<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let var = |(k, v): (K, V)| (k.into(), Zeroizing::new(v.into()));
        self.env = vars.into_iter().map(var).collect();
        self
    }

    /// Loads, validates and resolves the config file at `path`. A file that is empty, names
    /// no account, or changes while it is read is refused.
    pub fn load(&self, path: &Path) -> Result<Config, ConfigError> {
        self.check_file(path).into_result()
    }

    /// Everything [`load`](Self::load) checks, with every error and warning collected.
    pub fn check_file(&self, file: &Path) -> Report {
        let path = file.display().to_string();
        let text = match read_stable(file) {
            Ok(text) if !text.trim().is_empty() => text,
            Ok(_) => return Report::failed(ConfigError::Empty { path }),
            Err(e) => return Report::failed(e),
        };
        let base = file.parent().filter(|p| !p.as_os_str().is_empty());
        let mut report = self.check_text(&text, &path, base.unwrap_or(Path::new(".")));
        let Some(config) = &report.config else {
            return report;
        };
        let open_to = crate::files::open_to_others(file).filter(|_| config.has_inline_secrets);
        if config.sources.is_empty() {
            let tables: Vec<String> = (self.vendors.iter())
                .map(|v| format!("[[{}]]", v.platform()))
                .collect();
            let tables = tables.join(" or ");
            report.errors.push(ConfigError::NoSources { path, tables });
            report.config = None;
        } else if let Some(who) = open_to {
            let warning = format!("config file {path} holds inline secrets and is open to {who}");
            report
                .warnings
                .push(warning + "; chmod 600 it or use *_file / *_env keys");
        }
        report
    }

    /// Parses config text; `origin` names it in errors. Relative paths are read from the
    /// working directory.
    pub fn parse(&self, text: &str, origin: &str) -> Result<Config, ConfigError> {
        self.check_text(text, origin, Path::new(".")).into_result()
    }

    /// Checks config text: the sections, then every vendor's blocks. Relative paths (secret
    /// files, the web config file, the state folder) resolve against `base`, the config file's
    /// folder.
    pub fn check_text(&self, text: &str, origin: &str, base: &Path) -> Report {
        let (doc, mut tree) = match document::read(text, origin, &self.env) {
            Ok(read) => read,
            Err(e) => return Report::failed(e),
        };
        let checks = Checks {
            doc: &doc,
            base,
            env: &self.env,
            poll_interval: Cell::default(),
            inline: Cell::default(),
            errors: RefCell::default(),
            warnings: RefCell::default(),
        };
        let tables: Vec<_> = (self.vendors.iter())
            .filter_map(|&v| Some((v, tree.remove(v.platform().as_str())?)))
            .collect();
        let mut known: Vec<String> = ["server", "poll", "metrics"].map(String::from).to_vec();
        known.extend(self.vendors.iter().map(|v| v.platform().to_string()));
        let mut unknown: Vec<String> = tree.keys().cloned().collect();
        unknown.retain(|k| !known.contains(k));
        // The top of the file, read as the sections; keys outside any block are reported on it.
        let mut top = Block::new(&checks, String::new(), Value::from(tree), &[]);
        for key in unknown {
            top.error(&key, unknown_key(&key, &known));
        }
        let mut config: Config = top.read().unwrap_or_default();
        let server = &mut config.server;
        server.web_config_file = server.web_config_file.take().map(|p| base.join(p));
        server.state_dir = server.state_dir.take().map(|p| base.join(p));
        let (max_age, interval) = (config.poll.max_age, config.poll.interval);
        checks.poll_interval.set(interval);
        if interval < Duration::from_secs(300) {
            let warning = "is under 5m and spends vendor API quota quickly";
            top.warn("poll.interval", warning);
        }
        if max_age < interval {
            let warning = "is shorter than poll.interval: every series disappears between polls";
            top.warn("poll.max_age", warning);
        }
        let mut first = BTreeMap::new();
        for (vendor, value) in tables {
            let platform = vendor.platform();
            let Value::Array(_, blocks) = value else {
                let message = format!("must be written as [[{platform}]] blocks, one per account");
                top.error(platform.as_str(), message);
                continue;
            };
            for (i, value) in blocks.into_iter().enumerate() {
                let path = format!("{platform}.{i}");
                let block = Block::new(&checks, path.clone(), value, vendor.secret_keys());
                let Some(account) = vendor.read_account(block) else {
                    continue;
                };
                let source = SourceConfig::new(platform, account);
                if let Some(other) = first.insert(source.key(), document::key_name(&path)) {
                    let message = format!("is configured twice (also in {other})");
                    top.error(&format!("{path}.account"), message);
                }
                let outlives = source.interval().is_some_and(|i| i > max_age);
                if outlives && max_age >= interval {
                    let warning = "is longer than poll.max_age: its series disappear between polls";
                    top.warn(&format!("{path}.interval"), warning);
                }
                config.sources.push(source);
            }
        }
        drop(top);
        config.has_inline_secrets = checks.inline.get();
        let mut errors = checks.errors.into_inner();
        // In the order of the file, so they read top to bottom; problems without a line last.
        errors.sort_by_key(|e| match e {
            ConfigError::Invalid { line: Some(l), .. } => *l,
            _ => usize::MAX,
        });
        Report {
            web_config_file: config.server.web_config_file.clone(),
            config: errors.is_empty().then_some(config),
            errors,
            warnings: checks.warnings.into_inner(),
        }
    }
}

/// Reads the file (through [`crate::files`]: a regular file, a bounded read with a deadline),
/// refusing one that changes while it is read (an in-place rewrite would otherwise hand us
/// half a file): its size and modification time before and after must agree with each other
/// and with what was read.
fn read_stable(path: &Path) -> Result<Zeroizing<String>, ConfigError> {
    let stamp = || {
        let m = std::fs::metadata(path).ok()?;
        Some((m.len(), m.modified().ok()))
    };
    let before = stamp();
    let problem = match crate::files::read_text(path) {
        Ok(text) if before == stamp() && before.map(|b| b.0) == Some(text.len() as u64) => {
            return Ok(text)
        }
        Ok(_) => "changed while it was read: write a new file, then rename it over".to_string(),
        Err(FileError::Missing) => {
            "does not exist: copy and edit config.example.toml, or try --demo".to_string()
        }
        Err(e) => format!("cannot be read: {e}"),
    };
    let path = path.display().to_string();
    Err(ConfigError::File { path, problem })
}

#[cfg(test)]
mod tests {
    //! A vendor plugs in through its registration alone: a toy vendor, unknown to the rest of
    //! the program, gets strict keys with lines, `_file`/`_env` secrets and the reload diff.

    use super::*;

    #[derive(Default, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Written {
        account: Option<values::Account>,
        token: Option<Secret>,
        #[serde(deserialize_with = "int::<_, _, 1, 100>")]
        page_size: Option<u64>,
    }

    #[derive(Debug, Clone, PartialEq)]
    struct ToyConfig {
        account: String,
        token: Secret,
        page_size: u64,
    }

    impl AccountConfig for ToyConfig {
        fn account(&self) -> &str {
            &self.account
        }
        fn interval(&self) -> Option<Duration> {
            None
        }
        fn describe(&self) -> String {
            format!("page size {}", self.page_size)
        }
        fn info(&self) -> SourceInfo {
            SourceInfo::default()
        }
        fn secrets(&self) -> Vec<&str> {
            vec![self.token.expose()]
        }
    }

    struct Toy;

    impl VendorConfig for Toy {
        fn platform(&self) -> Platform {
            Platform::new("toy")
        }
        fn secret_keys(&self) -> &'static [&'static str] {
            &["token"]
        }
        fn read_account(&self, mut b: Block<'_>) -> Option<Arc<dyn AccountConfig>> {
            let w: Written = b.read()?;
            let toy = b.valid(ToyConfig {
                token: b.required("token", w.token),
                account: b.required("account", w.account).into(),
                page_size: w.page_size.unwrap_or(10),
            });
            Some(Arc::new(toy?))
        }
    }

    static TOY: Toy = Toy;

    fn check(text: &str) -> Report {
        let loader = Loader::new([&TOY as &dyn VendorConfig]).with_env([("TOY_TOKEN", "from-env")]);
        loader.check_text(text, "t.toml", Path::new("."))
    }

    #[test]
    fn a_registered_vendor_gets_strict_keys_secrets_and_equality() {
        let r = check("[[toy]]\naccount = \"a\"\ntoken_env = \"TOY_TOKEN\"\npage_size = 5\n");
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let c = r.config.unwrap();
        let toy = c.sources[0].get::<ToyConfig>().unwrap();
        assert_eq!(toy.token.expose(), "from-env");
        assert_eq!(c.sources[0].account().secrets(), ["from-env"]);
        assert_eq!(c.sources[0].key().to_string(), "toy/a");
        assert_eq!(c.sources[0].account().describe(), "page size 5");
        assert!(!c.has_inline_secrets);

        let again = check("[[toy]]\naccount = \"a\"\ntoken_env = \"TOY_TOKEN\"\npage_size = 5\n");
        assert_eq!(again.config.unwrap().sources, c.sources);
        let other = check("[[toy]]\naccount = \"a\"\ntoken = \"inline\"\npage_size = 6\n");
        let other = other.config.unwrap();
        assert_ne!(other.sources, c.sources);
        assert!(other.has_inline_secrets);

        let bad = check(
            "[[toy]]\naccount = \"a\"\ntoken = \"SECRET-VALUE\"\ntoken_file = \"x\"\npagesize = 5\n\
             [[toy]]\ntoken_fil = \"y\"\npage_size = \"SECRET-VALUE\"\n",
        );
        let text: Vec<String> = bad.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            text,
            [
                "config key `toy[0].token_file` (line 4): give only one of `token`, `token_file`, `token_env`",
                "config key `toy[0].pagesize` (line 5): unknown key; did you mean `page_size`?",
                "config key `toy[1].token` (line 6): is required (or `token_file` / `token_env`)",
                "config key `toy[1].account` (line 6): is required",
                "config key `toy[1].token_fil` (line 7): unknown key; did you mean `token_file`?",
                "config key `toy[1].page_size` (line 8): must be a whole number without quotes",
            ]
        );
        assert!(!text.concat().contains("SECRET-VALUE"));
    }
}
