//! Configuration: a TOML file plus `AWARENESS_*` environment overrides, read key by key (see
//! [`reader`]), then validated with secrets resolved.
//!
//! Every problem is collected in one pass, so a user fixes them all at once; each names the key
//! the user wrote and its line, and never shows a value that could be a secret. The raw file is
//! only ever seen by the reader; [`Config`] is what the rest of the program sees: durations
//! parsed, secrets resolved into [`Secret`], relative paths resolved against the config file's
//! folder, every source validated.

mod reader;

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::model::{Platform, SourceInfo, SourceKey};
use crate::sources::registry::{self, AccountConfig, Vendor};
use reader::{at_line, Ctx, Findings, Origin, Section};

/// A secret value, zeroized when dropped (`secrecy`). It can be compared and used, never
/// printed: `Debug` is redacted and there is deliberately no `Display` or `Serialize`.
#[derive(Clone)]
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

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A configuration problem, always naming the key the user wrote (and its line when known).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error(
        "config file {path} does not exist: copy config.example.toml to {path} and edit it, \
         or run with --demo to try the exporter on simulated tenants"
    )]
    Missing { path: String },
    #[error(
        "config file {path} is empty; a config that names no account is refused outside --demo"
    )]
    Empty { path: String },
    #[error(
        "config file {path} names no account: add a {tables} block \
         (see config.example.toml), or run with --demo"
    )]
    NoSources {
        path: String,
        /// Every registered platform's table: `[[cyberpilot]] or [[mimecast]]`.
        tables: String,
    },
    #[error(
        "config file {path} changed while it was read; it was not used. Replace it atomically \
         (write a new file beside it, then rename it over the old one)"
    )]
    Changing { path: String },
    #[error("config file {path}, line {line}, column {column}: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
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
    #[error("{} problems in the config:\n{}", .0.len(), list(.0))]
    Many(Vec<ConfigError>),
}

fn list(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// Every single problem (a [`ConfigError::Many`] unpacked).
    pub fn problems(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Many(all) => all.iter().flat_map(|e| e.problems()).collect(),
            one => vec![one],
        }
    }

    fn from_list(mut errors: Vec<ConfigError>) -> ConfigError {
        if errors.len() == 1 {
            errors.remove(0)
        } else {
            ConfigError::Many(errors)
        }
    }
}

/// A problem with `key`, for checks outside the reader.
pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        line: None,
        message: message.into(),
    }
}

pub const DEFAULT_LISTEN: &str = "0.0.0.0:10019";

/// Every registered vendor's secret keys (each also accepted as `<name>_file` and
/// `<name>_env`): their values are never shown in a message.
pub fn secret_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = registry::VENDORS
        .iter()
        .flat_map(|v| v.secret_keys().iter().copied())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// `[[a]], [[b]] or [[c]]`: every registered platform's table, for messages.
fn vendor_tables() -> String {
    let tables: Vec<String> = registry::platforms().map(|p| format!("[[{p}]]")).collect();
    match tables.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

// ---------------------------------------------------------------- validated configuration

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    pub poll: PollConfig,
    pub metrics: MetricsConfig,
    pub sources: Vec<SourceConfig>,
    /// True when secrets are written inline in the file (used for the permission warning).
    pub has_inline_secrets: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: String,
    pub web_config_file: Option<PathBuf>,
    /// Where the exporter keeps what it must remember across restarts (resolved against the
    /// config file's folder); `None`: nothing is kept.
    pub state_dir: Option<PathBuf>,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// A connection with no request in flight is closed after this long.
    pub idle_timeout: Duration,
    /// A connection with a request in flight that makes no progress (reading the request body
    /// or sending the answer) for this long is dropped.
    pub send_timeout: Duration,
    /// `--web.enable-lifecycle`: allow `POST`/`PUT /-/reload` over HTTP. Set from the command
    /// line only, never from the file.
    pub enable_lifecycle: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PollConfig {
    pub interval: Duration,
    pub timeout: Duration,
    pub max_age: Duration,
    /// Longest a whole poll may run (all its requests, retries and pauses); a source's
    /// interval caps it.
    pub deadline: Duration,
    /// Attempts per request before a poll gives up (the first try included).
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt (with jitter), capped at 30s.
    pub retry_backoff: Duration,
    /// Requests in flight at once per account.
    pub concurrency: usize,
    /// Requests in flight at once across all accounts (many tenants often share one vendor host).
    pub max_requests_in_flight: usize,
    /// Pages per endpoint before paging is declared runaway.
    pub max_pages: usize,
    /// Largest response body read, in bytes.
    pub max_body_bytes: usize,
    /// Rows a source may read in one poll (all its pages and sections); more fails the poll
    /// with reason `decode` and keeps the last good data.
    pub max_rows: usize,
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            interval: Duration::from_secs(30 * 60),
            timeout: Duration::from_secs(60),
            max_age: Duration::from_secs(6 * 3600),
            deadline: Duration::from_secs(10 * 60),
            max_attempts: 4,
            retry_backoff: Duration::from_secs(1),
            concurrency: 4,
            max_requests_in_flight: 64,
            max_pages: 10_000,
            max_body_bytes: 64 * 1024 * 1024,
            max_rows: 2_000_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    pub per_user: bool,
    pub max_users: usize,
    /// Distinct values per vendor-controlled label (branch, department) per source; the rest
    /// are folded into `__other__`.
    pub max_label_values: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            per_user: false,
            max_users: 20_000,
            max_label_values: 1_000,
        }
    }
}

/// One configured account of one registered vendor: its registration and its validated
/// config (see [`crate::sources::registry`]).
#[derive(Clone)]
pub struct SourceConfig {
    vendor: &'static dyn Vendor,
    account: Arc<dyn AccountConfig>,
}

impl SourceConfig {
    pub fn new(vendor: &'static dyn Vendor, account: Arc<dyn AccountConfig>) -> Self {
        SourceConfig { vendor, account }
    }
    pub fn key(&self) -> SourceKey {
        SourceKey::new(self.vendor.platform(), self.account.account())
    }
    pub fn platform(&self) -> Platform {
        self.vendor.platform()
    }
    pub fn interval(&self) -> Option<Duration> {
        self.account.interval()
    }
    /// The vendor's registration.
    pub fn vendor(&self) -> &'static dyn Vendor {
        self.vendor
    }
    /// The vendor's own config of this account.
    pub fn account(&self) -> &dyn AccountConfig {
        self.account.as_ref()
    }
    /// The vendor's own config type, when it is `T`.
    pub fn get<T: AccountConfig>(&self) -> Option<&T> {
        self.account.as_ref().as_any().downcast_ref::<T>()
    }
    /// What `--check-config` says of the source after its key.
    pub fn describe(&self) -> String {
        self.account.describe()
    }
    /// What the landing page shows of the source.
    pub fn info(&self) -> SourceInfo {
        self.account.info()
    }
}

impl PartialEq for SourceConfig {
    fn eq(&self, other: &Self) -> bool {
        self.platform() == other.platform() && self.account.dyn_eq(other.account.as_ref().as_any())
    }
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceConfig")
            .field("platform", &self.platform())
            .field("account", &self.account)
            .finish()
    }
}

// ---------------------------------------------------------------- loading

/// The outcome of checking a config: the config when it is valid, every error and every
/// warning otherwise. `--check-config` prints all of it; [`load`] and [`parse`] turn it into a
/// `Result` and log the warnings.
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
        Report {
            errors: vec![e],
            ..Report::default()
        }
    }

    fn into_result(self) -> Result<Config, ConfigError> {
        for w in &self.warnings {
            tracing::warn!("{w}");
        }
        match self.config {
            Some(c) if self.errors.is_empty() => Ok(c),
            _ => Err(ConfigError::from_list(self.errors)),
        }
    }
}

/// Loads, validates and resolves the config file at `path`, with environment overrides. A file
/// that is empty, names no account, or changes while it is read is refused.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    check_file(path).into_result()
}

/// Everything [`load`] checks, with every error and warning collected.
pub fn check_file(path: &Path) -> Report {
    let origin = path.display().to_string();
    let text = match read_stable(path) {
        Ok(t) => t,
        Err(e) => return Report::failed(e),
    };
    if text.trim().is_empty() {
        return Report::failed(ConfigError::Empty { path: origin });
    }
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut report = check_text(&text, &origin, base);
    if let Some(c) = &report.config {
        if c.sources.is_empty() {
            report.errors.push(ConfigError::NoSources {
                path: origin,
                tables: vendor_tables(),
            });
            report.config = None;
        } else if c.has_inline_secrets && world_readable(path) {
            report.warnings.push(format!(
                "config file {} holds inline secrets and is world-readable; chmod 600 it or use *_file / *_env keys",
                path.display()
            ));
        }
    }
    report
}

/// Reads the file, refusing one that changes while it is read (an in-place rewrite would
/// otherwise hand us half a file): size and modification time before and after, and two
/// reads that must agree.
fn read_stable(path: &Path) -> Result<String, ConfigError> {
    let origin = || path.display().to_string();
    let read_err = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ConfigError::Missing { path: origin() }
        } else {
            ConfigError::Read {
                path: origin(),
                reason: io_reason(&e),
            }
        }
    };
    let stamp = |m: &std::fs::Metadata| (m.len(), m.modified().ok());
    let before = std::fs::metadata(path).map_err(read_err)?;
    if before.is_dir() {
        return Err(ConfigError::Read {
            path: origin(),
            reason: "it is a folder, not a file".into(),
        });
    }
    let first = std::fs::read(path).map_err(read_err)?;
    let second = std::fs::read(path).map_err(read_err)?;
    let after = std::fs::metadata(path).map_err(read_err)?;
    if stamp(&before) != stamp(&after) || first != second || first.len() as u64 != after.len() {
        return Err(ConfigError::Changing { path: origin() });
    }
    String::from_utf8(first).map_err(|_| ConfigError::Read {
        path: origin(),
        reason: "it is not UTF-8 text".into(),
    })
}

/// An I/O error in plain words (not Rust's "entity not found", "invalid data").
fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        NotFound => "no such file".into(),
        PermissionDenied => "permission denied (check the file's owner and mode)".into(),
        InvalidData => "it is not UTF-8 text".into(),
        IsADirectory => "it is a folder, not a file".into(),
        _ => match e.raw_os_error() {
            // The OS message without Rust's "(os error N)".
            Some(_) => e
                .to_string()
                .split(" (os error")
                .next()
                .unwrap_or("cannot be read")
                .to_lowercase(),
            None => "cannot be read".into(),
        },
    }
}

/// Parses config text; `origin` names it in errors. Relative paths are read from the working
/// directory. `AWARENESS_*` environment variables override keys of [server], [poll] and
/// [metrics]: `AWARENESS_POLL__INTERVAL=10m` sets `poll.interval`.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    check_text(text, origin, Path::new(".")).into_result()
}

/// Checks config text; relative paths (secret files, the web config file) resolve against
/// `base`, the config file's folder.
pub fn check_text(text: &str, origin: &str, base: &Path) -> Report {
    // figment's Env provider reads the process environment: the prefix matched without
    // regard to case, `__` splitting section from key, keys lower-cased, a variable with an
    // empty part dropped. Its dotted keys (`poll.interval`) go to the reader as they are, the
    // one parse of the names. Values stay text; the key-by-key reader types them and names
    // the variable when one is wrong.
    let overrides = figment::providers::Env::prefixed("AWARENESS_").split("__");
    let keys = overrides
        .iter()
        .map(|(key, value)| (key.as_str().to_string(), value));
    check_with_env(
        text,
        origin,
        base,
        keys,
        &|name| std::env::var(name).ok(),
        registry::VENDORS,
    )
}

/// [`check_text`] with the overrides given as figment's `(dotted key, value)` pairs.
fn check_with_env(
    text: &str,
    origin: &str,
    base: &Path,
    overrides: impl IntoIterator<Item = (String, String)>,
    env: &dyn Fn(&str) -> Option<String>,
    vendors: &[&'static dyn Vendor],
) -> Report {
    let doc = match toml_edit::ImDocument::parse(text) {
        Ok(d) => d,
        Err(e) => return Report::failed(syntax_error(text, origin, &e)),
    };
    let ctx = Ctx::new(text, overrides);
    let resolved = resolve(&ctx, doc.as_table(), base, env, vendors);
    let mut found: Findings = ctx.into_findings();
    // In the order of the file, so they read top to bottom; problems without a line last.
    found.errors.sort_by_key(|e| match e {
        ConfigError::Invalid { line: Some(l), .. } => *l,
        _ => usize::MAX,
    });
    let (config, web_config_file) = match resolved {
        Some((c, web)) => (Some(c), web),
        None => (None, None),
    };
    Report {
        config: if found.errors.is_empty() {
            config
        } else {
            None
        },
        web_config_file,
        errors: found.errors,
        warnings: found.warnings,
    }
}

/// A TOML syntax error as line/column and a message without the source snippet, which could
/// contain a secret.
fn syntax_error(text: &str, origin: &str, e: &toml_edit::TomlError) -> ConfigError {
    let (line, column) = match e.span() {
        Some(span) => reader::line_col(text, span.start),
        None => (0, 0),
    };
    // The first line is the problem; the rest lists what the parser expected.
    let mut message = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if let Some(key) = key_at_line(text, line) {
        message = format!("key `{key}`: {message}");
    }
    ConfigError::Syntax {
        path: origin.to_string(),
        line,
        column,
        message,
    }
}

/// The dotted key defined on `line` (1-based), with its table: `poll.interval`. Only the key
/// is read, never the value.
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let mut table = String::new();
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('[') {
            table = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        }
        if i + 1 == line {
            let (key, _) = t.split_once('=')?;
            let key = key.trim();
            if key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            {
                return None;
            }
            return Some(if table.is_empty() {
                key.to_string()
            } else {
                format!("{table}.{key}")
            });
        }
    }
    None
}

fn world_readable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            return meta.permissions().mode() & 0o004 != 0;
        }
    }
    let _ = path;
    false
}

/// Who besides the exporter may read the secret file at `path`, in words with its mode
/// ("other users (mode 0644)"), or `None` when nobody may. Group bits count unless the file's
/// group is the exporter's own (effective) group: Kubernetes mounts secrets `0440` with the
/// pod's `fsGroup`, and a service account's own group is how a unit file shares a key with it.
/// Only the metadata is read, never the content.
#[cfg(unix)]
fn readable_by_others(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    let mode = meta.mode() & 0o7777;
    let own_group = meta.gid() == rustix::process::getegid().as_raw();
    let who = if mode & 0o007 != 0 {
        "other users"
    } else if mode & 0o070 != 0 && !own_group {
        "its group, which is not the exporter's own"
    } else {
        return None;
    };
    Some(format!("{who} (mode {mode:04o})"))
}

#[cfg(not(unix))]
fn readable_by_others(_: &Path) -> Option<String> {
    None
}

/// Checks a listen address (`server.listen`, `--web.listen-address`) without binding it:
/// `host:port` with an IP address, `[v6]:port` or a host name.
pub fn check_listen_address(listen: &str) -> Result<(), String> {
    const HINT: &str =
        "must be host:port, such as 0.0.0.0:10019 (every interface) or 127.0.0.1:10019";
    if listen.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let Some((host, port)) = listen.rsplit_once(':') else {
        return Err(HINT.into());
    };
    if port.parse::<u16>().is_err() {
        return Err(format!("{HINT}; the port must be a number from 0 to 65535"));
    }
    let hostname = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if hostname {
        Ok(())
    } else {
        Err(HINT.into())
    }
}

// ---------------------------------------------------------------- validation

/// Reads and checks every key; problems go to `ctx`. Returns the config (meaningful only when
/// `ctx` has no errors) and the resolved web config file.
fn resolve(
    ctx: &Ctx<'_>,
    root: &dyn toml_edit::TableLike,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    vendors: &[&'static dyn Vendor],
) -> Option<(Config, Option<PathBuf>)> {
    let mut root = Section::root(ctx, root);
    let poll = resolve_poll(root.optional_table("poll"));
    let metrics = resolve_metrics(root.optional_table("metrics"));
    let server = resolve_server(root.optional_table("server"), base);
    let secrets = Secrets {
        ctx,
        base,
        env,
        inline: Cell::new(false),
    };

    let poll_interval = poll
        .as_ref()
        .map_or(PollConfig::default().interval, |p| p.interval);
    let mut sources = Vec::new();
    for vendor in vendors.iter().copied() {
        for section in root.tables(vendor.platform().as_str()) {
            let block = Block {
                section,
                secrets: &secrets,
                poll_interval,
            };
            if let Some(account) = vendor.read_account(block) {
                sources.push(SourceConfig::new(vendor, account));
            }
        }
    }
    root.finish();
    let inline = secrets.inline.get();

    let mut seen = BTreeSet::new();
    for s in &sources {
        let key = s.key();
        if !seen.insert(key.clone()) {
            ctx.error(
                &format!("{}.account", key.platform.as_str()),
                None,
                format!("account `{}` is configured twice", key.account),
            );
        }
    }
    let poll = poll?;
    let metrics = metrics?;
    let server = server?;
    warn_about_durations(ctx, &poll, &sources);
    let web = server.web_config_file.clone();
    Some((
        Config {
            server,
            poll,
            metrics,
            sources,
            has_inline_secrets: inline,
        },
        web,
    ))
}

fn warn_about_durations(ctx: &Ctx<'_>, poll: &PollConfig, sources: &[SourceConfig]) {
    let show = |d: Duration| humantime::format_duration(d).to_string();
    if poll.interval < Duration::from_secs(300) {
        ctx.warn(format!(
            "poll.interval {} is under 5m and spends vendor API quota quickly",
            show(poll.interval)
        ));
    }
    if poll.max_age < poll.interval {
        ctx.warn(format!(
            "poll.max_age {} is shorter than poll.interval {}: every source's series disappear between two polls",
            show(poll.max_age),
            show(poll.interval)
        ));
    }
    for s in sources {
        if let Some(i) = s
            .interval()
            .filter(|i| *i > poll.max_age && poll.max_age >= poll.interval)
        {
            ctx.warn(format!(
                "{}: interval {} is longer than poll.max_age {}: its series disappear between two polls",
                s.key(),
                show(i),
                show(poll.max_age)
            ));
        }
    }
}

const DAY: Duration = Duration::from_secs(86_400);

fn resolve_poll(mut s: Section<'_>) -> Option<PollConfig> {
    let d = PollConfig::default();
    let interval = duration_in(&mut s, "interval", DAY * 7).unwrap_or(d.interval);
    let timeout = duration_in(&mut s, "timeout", Duration::from_secs(600)).unwrap_or(d.timeout);
    let max_age = duration_in(&mut s, "max_age", DAY * 90).unwrap_or(d.max_age);
    let deadline = duration_in(&mut s, "deadline", DAY * 7).unwrap_or(d.deadline);
    let max_attempts = uint_in(&mut s, "max_attempts", 1, 20).map_or(d.max_attempts, |v| v as u32);
    let retry_backoff = match s.duration("retry_backoff") {
        Some(v) if v < Duration::from_millis(1) || v > Duration::from_secs(300) => {
            s.error("retry_backoff", "must be between 1ms and 5m");
            d.retry_backoff
        }
        Some(v) => v,
        None => d.retry_backoff,
    };
    let concurrency = uint_in(&mut s, "concurrency", 1, 64).unwrap_or(d.concurrency);
    let max_requests_in_flight =
        uint_in(&mut s, "max_requests_in_flight", 1, 4096).unwrap_or(d.max_requests_in_flight);
    let max_pages = uint_in(&mut s, "max_pages", 1, 1_000_000).unwrap_or(d.max_pages);
    let max_body_bytes =
        uint_in(&mut s, "max_body_bytes", 1024, 1 << 32).unwrap_or(d.max_body_bytes);
    let max_rows = uint_in(&mut s, "max_rows", 1, 1_000_000_000).unwrap_or(d.max_rows);
    s.finish();
    Some(PollConfig {
        interval,
        timeout,
        max_age,
        deadline,
        max_attempts,
        retry_backoff,
        concurrency,
        max_requests_in_flight,
        max_pages,
        max_body_bytes,
        max_rows,
    })
}

/// A duration from 1s to `max`; out of range is reported and read as absent. The upper bounds
/// catch unit slips ("30d" for "30m") before they silence a source for weeks.
fn duration_in(s: &mut Section<'_>, key: &'static str, max: Duration) -> Option<Duration> {
    let v = s.duration(key)?;
    if v < Duration::from_secs(1) {
        s.error(key, "must be at least 1s");
        None
    } else if v > max {
        s.error(
            key,
            format!("must be at most {}", humantime::format_duration(max)),
        );
        None
    } else {
        Some(v)
    }
}

/// A whole number in `min..=max`; out of range is reported and read as absent.
fn uint_in(s: &mut Section<'_>, key: &'static str, min: usize, max: usize) -> Option<usize> {
    let v = s.uint(key)?;
    if v < min || v > max {
        s.error(key, format!("must be between {min} and {max}"));
        return None;
    }
    Some(v)
}

fn resolve_metrics(mut s: Section<'_>) -> Option<MetricsConfig> {
    let d = MetricsConfig::default();
    let per_user = s.boolean("per_user").unwrap_or(d.per_user);
    let max_users = uint_in(&mut s, "max_users", 0, 10_000_000).unwrap_or(d.max_users);
    let max_label_values =
        uint_in(&mut s, "max_label_values", 1, 1_000_000).unwrap_or(d.max_label_values);
    s.finish();
    Some(MetricsConfig {
        per_user,
        max_users,
        max_label_values,
    })
}

fn resolve_server(mut s: Section<'_>, base: &Path) -> Option<ServerConfig> {
    let listen = match s.string("listen") {
        Some(l) => {
            if let Err(e) = check_listen_address(&l) {
                s.error("listen", e);
            }
            l
        }
        None => DEFAULT_LISTEN.to_string(),
    };
    let web_config_file = s.path_value("web_config_file").map(|(p, _)| base.join(p));
    let state_dir = s.path_value("state_dir").map(|(p, _)| base.join(p));
    let max_connections = uint_in(&mut s, "max_connections", 1, 100_000).unwrap_or(512);
    let header_read_timeout = duration_in(&mut s, "header_read_timeout", Duration::from_secs(3600))
        .unwrap_or(Duration::from_secs(10));
    let idle_timeout = duration_in(&mut s, "idle_timeout", Duration::from_secs(24 * 3600))
        .unwrap_or(Duration::from_secs(120));
    let send_timeout = duration_in(&mut s, "send_timeout", Duration::from_secs(3600))
        .unwrap_or(Duration::from_secs(30));
    s.finish();
    Some(ServerConfig {
        listen,
        web_config_file,
        state_dir,
        max_connections,
        header_read_timeout,
        idle_timeout,
        send_timeout,
        enable_lifecycle: false,
    })
}

/// Checks a vendor URL; plain http:// to another machine is warned about (credentials would
/// cross the network unencrypted).
fn check_url(s: &mut Section<'_>, key: &'static str, default: Option<&str>) -> Option<String> {
    let (value, origin) = match s.string_at(key) {
        Some(v) => v,
        None if s.has(key) => return None,
        None => match default {
            Some(d) => return Some(d.to_string()),
            None => {
                s.error(key, "is required");
                return None;
            }
        },
    };
    let hint = "must be an absolute URL starting with https://, such as https://api.example.com";
    match url::Url::parse(value.trim()) {
        Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => {
            if !u.username().is_empty() || u.password().is_some() {
                origin.error(s.ctx(), "must not contain a user name or password");
                return None;
            }
            if u.scheme() == "http" && !is_loopback(&u) {
                s.ctx().warn(format!(
                    "key `{}`{}: plain http:// to a host other than this machine sends credentials unencrypted; use https://",
                    origin.key,
                    at_line(origin.line)
                ));
            }
            Some(value.trim().trim_end_matches('/').to_string())
        }
        _ => {
            origin.error(s.ctx(), hint);
            None
        }
    }
}

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// A required non-empty text.
fn required(s: &mut Section<'_>, key: &'static str) -> Option<String> {
    match s.string(key) {
        Some(v) if !v.trim().is_empty() => Some(v),
        Some(_) => {
            s.error(key, "must not be empty");
            None
        }
        None if s.has(key) => None,
        None => {
            s.error(key, "is required");
            None
        }
    }
}

fn check_account(s: &mut Section<'_>) -> Option<String> {
    let account = required(s, "account")?;
    if account.len() > 128 || account.chars().any(char::is_control) {
        s.error(
            "account",
            "must be at most 128 characters with no control characters",
        );
        return None;
    }
    Some(account)
}

fn source_interval(s: &mut Section<'_>) -> Option<Duration> {
    duration_in(s, "interval", DAY * 7)
}

/// Where secrets are read from: files relative to the config file's folder, the environment.
struct Secrets<'a> {
    ctx: &'a Ctx<'a>,
    base: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// Set once any secret is written inline in the file (the permission warning).
    inline: Cell<bool>,
}

/// A resolved secret and the key the user wrote it with (`secret_key_file`), for messages
/// about its content.
#[derive(Debug)]
pub struct Resolved {
    pub secret: Secret,
    pub key: &'static str,
}

/// Whether `name` can be an environment variable's name: letters, digits and `_`, not starting
/// with a digit. Anything else is most likely the secret itself pasted into `*_env`.
fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Secrets<'_> {
    /// Resolves `<name>`, `<name>_file` or `<name>_env`: at most one may be set. The values of
    /// these keys are never shown in a message, whatever is wrong with them.
    fn resolve(&self, s: &mut Section<'_>, keys: [&'static str; 3]) -> Option<Resolved> {
        let [name, file_key, env_key] = keys;
        let given: Vec<&str> = keys.iter().copied().filter(|k| s.has(k)).collect();
        if given.len() > 1 {
            s.error(
                given[1],
                format!("give only one of `{name}`, `{file_key}`, `{env_key}`"),
            );
            // Mark them read so they are not also called unknown.
            for k in keys {
                s.mark_read(k);
            }
            return None;
        }
        let (value, key, inline, origin): (Zeroizing<String>, _, _, Origin) = if let Some((v, o)) =
            s.string_at(name)
        {
            (Zeroizing::new(v), name, true, o)
        } else if let Some((path, o)) = s.path_value(file_key) {
            let full = self.base.join(&path);
            let bytes = match std::fs::read(&full) {
                Ok(b) => Zeroizing::new(b),
                Err(e) => {
                    let mut msg = format!("cannot read the file it names: {}", io_reason(&e));
                    if path.is_relative() {
                        msg.push_str(&format!(
                            " (a relative path is read from the config file's folder, {})",
                            self.base.display()
                        ));
                    }
                    o.error(self.ctx, msg);
                    return None;
                }
            };
            if let Some(who) = readable_by_others(&full) {
                self.ctx.warn(format!(
                    "key `{}`{}: the secret file {} is open to {who}; chmod 600 it (or 640 with \
                     the exporter's own group)",
                    o.key,
                    at_line(o.line),
                    full.display()
                ));
            }
            match std::str::from_utf8(&bytes) {
                Ok(t) => (Zeroizing::new(t.trim().to_string()), file_key, false, o),
                Err(_) => {
                    o.error(self.ctx, "the file it names is not UTF-8 text");
                    return None;
                }
            }
        } else if let Some((var, o)) = s.string_at(env_key) {
            let var = Zeroizing::new(var);
            if !is_env_name(var.trim()) {
                o.error(
                        self.ctx,
                        format!(
                            "is not an environment variable name (letters, digits and _); \
                             if you pasted the secret itself here, use `{name}` or `{file_key}` instead"
                        ),
                    );
                return None;
            }
            match (self.env)(var.trim()) {
                Some(v) => (Zeroizing::new(v.trim().to_string()), env_key, false, o),
                None => {
                    o.error(self.ctx, "the environment variable it names is not set");
                    return None;
                }
            }
        } else {
            return None;
        };
        if value.is_empty() {
            origin.error(self.ctx, "the secret is empty");
            return None;
        }
        if inline {
            self.inline.set(true);
        }
        Some(Resolved {
            secret: Secret::new(value.as_str()),
            key,
        })
    }

    fn require(&self, s: &mut Section<'_>, keys: [&'static str; 3]) -> Option<Resolved> {
        let any = keys.iter().any(|k| s.has(k));
        let r = self.resolve(s, keys);
        if r.is_none() && !any {
            let [name, file_key, env_key] = keys;
            s.error(name, format!("is required (or `{file_key}` / `{env_key}`)"));
        }
        r
    }
}

// ---------------------------------------------------------------- vendor blocks

/// One `[[<platform>]]` block (or a table inside it) as a vendor reads it
/// ([`crate::sources::registry::Vendor::read_account`]). Every getter records the key as known
/// and reports a problem with the key's full name (`mimecast[1].page_size`) and line, in the
/// user's words, never showing a value. [`finish`](Self::finish) reports every key nothing
/// read, with a "did you mean" hint.
pub struct Block<'a> {
    section: Section<'a>,
    secrets: &'a Secrets<'a>,
    /// `poll.interval`, the interval of every block that sets none of its own.
    poll_interval: Duration,
}

impl<'a> Block<'a> {
    /// Optional text in quotes.
    pub fn string(&mut self, key: &'static str) -> Option<String> {
        self.section.string(key)
    }
    /// Required, non-empty text.
    pub fn required(&mut self, key: &'static str) -> Option<String> {
        required(&mut self.section, key)
    }
    /// A whole number ≥ 0.
    pub fn uint(&mut self, key: &'static str) -> Option<usize> {
        self.section.uint(key)
    }
    pub fn boolean(&mut self, key: &'static str) -> Option<bool> {
        self.section.boolean(key)
    }
    /// A duration in quotes ("90s", "15m").
    pub fn duration(&mut self, key: &'static str) -> Option<Duration> {
        self.section.duration(key)
    }
    /// A list of texts.
    pub fn strings(&mut self, key: &'static str) -> Option<Vec<String>> {
        self.section.strings(key)
    }
    /// Whether `key` is set at all.
    pub fn has(&self, key: &str) -> bool {
        self.section.has(key)
    }
    /// Marks `key` as known without reading it (it belongs to another mode and is reported on
    /// its own).
    pub fn mark_read(&mut self, key: &'static str) {
        self.section.mark_read(key)
    }
    /// Reports a problem with `key` (its line if it is written, else the block's).
    pub fn error(&self, key: &str, message: impl Into<String>) {
        self.section.error(key, message)
    }
    /// A warning (printed by `--check-config`, logged at start-up); never show a value in it.
    pub fn warn(&self, message: impl Into<String>) {
        self.section.ctx().warn(message)
    }
    /// The `account` label's value: required, at most 128 characters, no control characters.
    pub fn account(&mut self) -> Option<String> {
        check_account(&mut self.section)
    }
    /// `poll.interval`: how often the account is polled when it sets no `interval` of its own
    /// (a vendor with a request quota checks that its polls fit).
    pub fn poll_interval(&self) -> Duration {
        self.poll_interval
    }
    /// The account's own `interval` (1s to 7 days), if set.
    pub fn interval(&mut self) -> Option<Duration> {
        source_interval(&mut self.section)
    }
    /// An absolute http(s) URL without credentials, its trailing `/` removed; `default` when
    /// the key is absent (`None`: required). Plain http:// to another host is warned about.
    pub fn url(&mut self, key: &'static str, default: Option<&str>) -> Option<String> {
        check_url(&mut self.section, key, default)
    }
    /// A secret given as `<name>`, `<name>_file` or `<name>_env` (`keys` in that order); at
    /// most one of them. `None` when none is set or it is unusable (reported).
    pub fn secret(&mut self, keys: [&'static str; 3]) -> Option<Resolved> {
        self.secrets.resolve(&mut self.section, keys)
    }
    /// Like [`secret`](Self::secret), reporting a missing one as required.
    pub fn require_secret(&mut self, keys: [&'static str; 3]) -> Option<Resolved> {
        self.secrets.require(&mut self.section, keys)
    }
    /// A table inside the block (`[cyberpilot.login]`), read the same way.
    pub fn table(&mut self, key: &'static str) -> Option<Block<'a>> {
        let section = self.section.table(key)?;
        Some(Block {
            section,
            secrets: self.secrets,
            poll_interval: self.poll_interval,
        })
    }
    /// Ends the block: every key nothing read is reported as unknown.
    pub fn finish(self) {
        self.section.finish()
    }
}

#[cfg(test)]
mod tests {
    //! A vendor plugs in through its registration alone: a toy vendor, unknown to the rest of
    //! the program, gets strict keys with lines, `_file`/`_env` secrets and the reload diff.

    use super::*;
    use crate::sources::{Source, SourceContext};

    #[derive(Debug, Clone, PartialEq)]
    struct ToyConfig {
        account: String,
        token: Secret,
        page_size: usize,
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
            Vec::new()
        }
        fn build(&self, _ctx: SourceContext) -> Arc<dyn Source> {
            unimplemented!("not polled in this test")
        }
    }

    struct Toy;

    impl Vendor for Toy {
        fn platform(&self) -> Platform {
            Platform::new("toy")
        }
        fn title(&self) -> &'static str {
            "Toy"
        }
        fn read_account(&self, mut b: Block<'_>) -> Option<Arc<dyn AccountConfig>> {
            let account = b.account();
            let token = b.require_secret(["token", "token_file", "token_env"]);
            let page_size = b.uint("page_size").unwrap_or(10);
            b.finish();
            Some(Arc::new(ToyConfig {
                account: account?,
                token: token?.secret,
                page_size,
            }))
        }
        fn secret_keys(&self) -> &'static [&'static str] {
            &["token"]
        }
    }

    static TOY: Toy = Toy;

    fn check(text: &str) -> Report {
        let env = |name: &str| (name == "TOY_TOKEN").then(|| "from-env".to_string());
        check_with_env(text, "t.toml", Path::new("."), [], &env, &[&TOY])
    }

    #[test]
    fn a_registered_vendor_gets_strict_keys_secrets_and_equality() {
        let r = check("[[toy]]\naccount = \"a\"\ntoken_env = \"TOY_TOKEN\"\npage_size = 5\n");
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let c = r.config.unwrap();
        let toy = c.sources[0].get::<ToyConfig>().unwrap();
        assert_eq!(toy.token.expose(), "from-env");
        assert_eq!(c.sources[0].key().to_string(), "toy/a");
        assert_eq!(c.sources[0].describe(), "page size 5");
        assert!(!c.has_inline_secrets);

        let again = check("[[toy]]\naccount = \"a\"\ntoken_env = \"TOY_TOKEN\"\npage_size = 5\n");
        assert_eq!(again.config.unwrap().sources, c.sources);
        let other = check("[[toy]]\naccount = \"a\"\ntoken = \"inline\"\npage_size = 6\n");
        let other = other.config.unwrap();
        assert_ne!(other.sources, c.sources);
        assert!(other.has_inline_secrets);

        let bad = check(
            "[[toy]]\naccount = \"a\"\ntoken = \"SECRET-VALUE\"\ntoken_file = \"x\"\npagesize = 5\n",
        );
        let text: Vec<String> = bad.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            text,
            [
                "config key `toy[0].token_file` (line 4): give only one of `token`, `token_file`, `token_env`",
                "config key `toy[0].pagesize` (line 5): unknown key; did you mean `page_size`?",
            ]
        );
        assert!(!text.concat().contains("SECRET-VALUE"));
    }

    #[test]
    fn no_account_names_every_registered_table() {
        let tables = vendor_tables();
        for p in registry::platforms() {
            assert!(tables.contains(&format!("[[{p}]]")), "{tables}");
        }
    }
}
