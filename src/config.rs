//! Configuration: a TOML file plus `AWARENESS_*` environment overrides, read key by key (see
//! [`reader`]), then validated with secrets resolved.
//!
//! Every problem is collected in one pass, so a user fixes them all at once; each names the key
//! the user wrote and its line, and never shows a value that could be a secret. The raw file is
//! only ever seen by the reader; [`Config`] is what the rest of the program sees: durations
//! parsed, secrets resolved into [`Secret`], relative paths resolved against the config file's
//! folder, every source validated.

mod reader;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::snapshot::{Platform, SourceKey};
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
        "config file {path} names no account: add a [[cyberpilot]] or [[mimecast]] block \
         (see config.example.toml), or run with --demo"
    )]
    NoSources { path: String },
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
pub const DEFAULT_CYBERPILOT_URL: &str = "https://api.app.cyberpilot.io";
pub const DEFAULT_MIMECAST_URL: &str = "https://api.services.mimecast.com";

/// API 1.0 regional hosts (`region` key). Offshore is `je-api` in Mimecast's API 1.0 samples
/// (its SSO pages say `jer-api`; set `base_url` if your tenant differs).
pub const MIMECAST_REGIONS: [(&str, &str); 10] = [
    ("eu", "https://eu-api.mimecast.com"),
    ("de", "https://de-api.mimecast.com"),
    ("us", "https://us-api.mimecast.com"),
    ("usb", "https://usb-api.mimecast.com"),
    ("ca", "https://ca-api.mimecast.com"),
    ("za", "https://za-api.mimecast.com"),
    ("au", "https://au-api.mimecast.com"),
    ("jer", "https://je-api.mimecast.com"),
    ("je", "https://je-api.mimecast.com"),
    ("offshore", "https://je-api.mimecast.com"),
];

/// The keys whose values are secrets, with their `_file` and `_env` forms: their values are
/// never shown in a message.
pub const SECRET_KEYS: [&str; 6] = [
    "token",
    "password",
    "client_secret",
    "app_key",
    "access_key",
    "secret_key",
];

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

#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    CyberPilot(CyberPilotConfig),
    Mimecast(MimecastConfig),
}

impl SourceConfig {
    pub fn key(&self) -> SourceKey {
        match self {
            SourceConfig::CyberPilot(c) => SourceKey::new(Platform::CyberPilot, &c.account),
            SourceConfig::Mimecast(c) => SourceKey::new(Platform::Mimecast, &c.account),
        }
    }
    pub fn interval(&self) -> Option<Duration> {
        match self {
            SourceConfig::CyberPilot(c) => c.interval,
            SourceConfig::Mimecast(c) => c.interval,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CyberPilotConfig {
    pub account: String,
    pub account_id: String,
    pub base_url: String,
    pub auth: CyberPilotAuth,
    pub page_size: usize,
    pub interval: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CyberPilotAuth {
    Token(Secret),
    Login {
        token_url: String,
        client_id: String,
        username: String,
        password: Secret,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct MimecastConfig {
    pub account: String,
    pub base_url: String,
    pub auth: MimecastAuth,
    pub page_size: usize,
    pub endpoints: Vec<MimecastEndpoint>,
    pub interval: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MimecastAuth {
    OAuth2 {
        client_id: String,
        client_secret: Secret,
    },
    Hmac {
        app_id: String,
        app_key: Secret,
        access_key: Secret,
        secret_key: Secret,
    },
}

/// The Mimecast endpoint groups that can be switched on or off per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MimecastEndpoint {
    PerformanceDetails,
    WatchlistDetails,
    SafeScoreDetails,
    TrainingDetails,
    Campaigns,
    PhishingCampaigns,
}

impl MimecastEndpoint {
    pub const ALL: [MimecastEndpoint; 6] = [
        MimecastEndpoint::PerformanceDetails,
        MimecastEndpoint::WatchlistDetails,
        MimecastEndpoint::SafeScoreDetails,
        MimecastEndpoint::TrainingDetails,
        MimecastEndpoint::Campaigns,
        MimecastEndpoint::PhishingCampaigns,
    ];

    /// The name used in the config file and in the `endpoint` label's group.
    pub fn name(self) -> &'static str {
        match self {
            MimecastEndpoint::PerformanceDetails => "performance-details",
            MimecastEndpoint::WatchlistDetails => "watchlist-details",
            MimecastEndpoint::SafeScoreDetails => "safe-score-details",
            MimecastEndpoint::TrainingDetails => "training-details",
            MimecastEndpoint::Campaigns => "campaigns",
            MimecastEndpoint::PhishingCampaigns => "phishing-campaigns",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
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
            report.errors.push(ConfigError::NoSources { path: origin });
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
    let vars = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    check_with_env(text, origin, base, vars, &|name| std::env::var(name).ok())
}

fn check_with_env(
    text: &str,
    origin: &str,
    base: &Path,
    vars: impl IntoIterator<Item = (String, String)>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Report {
    let doc = match toml_edit::ImDocument::parse(text) {
        Ok(d) => d,
        Err(e) => return Report::failed(syntax_error(text, origin, &e)),
    };
    let ctx = Ctx::new(text, vars);
    let resolved = resolve(&ctx, doc.as_table(), base, env);
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
) -> Option<(Config, Option<PathBuf>)> {
    let mut root = Section::root(ctx, root);
    let poll = resolve_poll(root.optional_table("poll"));
    let metrics = resolve_metrics(root.optional_table("metrics"));
    let server = resolve_server(root.optional_table("server"), base);
    let secrets = Secrets { ctx, base, env };

    let mut sources = Vec::new();
    let mut inline = false;
    for s in root.tables("cyberpilot") {
        if let Some((cfg, has_inline)) = resolve_cyberpilot(s, &secrets) {
            inline |= has_inline;
            sources.push(SourceConfig::CyberPilot(cfg));
        }
    }
    for s in root.tables("mimecast") {
        if let Some((cfg, has_inline)) = resolve_mimecast(s, &secrets) {
            inline |= has_inline;
            sources.push(SourceConfig::Mimecast(cfg));
        }
    }
    root.finish();

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
}

/// A resolved secret, whether it was written inline, and the key the user wrote it with.
struct Resolved {
    secret: Secret,
    inline: bool,
    key: &'static str,
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
        Some(Resolved {
            secret: Secret::new(value.as_str()),
            inline,
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

fn resolve_cyberpilot(
    mut s: Section<'_>,
    secrets: &Secrets<'_>,
) -> Option<(CyberPilotConfig, bool)> {
    let account = check_account(&mut s);
    let account_id = required(&mut s, "account_id");
    if account_id
        .as_ref()
        .is_some_and(|a| a.contains(['/', '?', '#']))
    {
        s.error("account_id", "must not contain '/', '?' or '#'");
    }
    let base_url = check_url(&mut s, "base_url", Some(DEFAULT_CYBERPILOT_URL));
    let page_size = match s.uint("page_size") {
        Some(p) if !(1..=10_000).contains(&p) => {
            s.error("page_size", "must be between 1 and 10000");
            None
        }
        Some(p) => Some(p),
        // Asked for, not assumed: the server's own cap (seen in `fetched`) sets the paging.
        None => Some(1000),
    };
    let token = secrets.resolve(&mut s, ["token", "token_file", "token_env"]);
    let token_given = ["token", "token_file", "token_env"]
        .iter()
        .any(|k| s.has(k));
    let login = s.table("login");
    let auth = match (token_given, login) {
        (true, Some(_)) => {
            s.error(
                "login",
                "give either a token or a [login] section, not both",
            );
            None
        }
        (true, None) => token.map(|t| (CyberPilotAuth::Token(t.secret), t.inline)),
        (false, Some(mut login)) => {
            let token_url = check_url(&mut login, "token_url", None);
            let client_id = required(&mut login, "client_id");
            let username = required(&mut login, "username");
            let password =
                secrets.require(&mut login, ["password", "password_file", "password_env"]);
            login.finish();
            match (token_url, client_id, username, password) {
                (Some(token_url), Some(client_id), Some(username), Some(p)) => Some((
                    CyberPilotAuth::Login {
                        token_url,
                        client_id,
                        username,
                        password: p.secret,
                    },
                    p.inline,
                )),
                _ => None,
            }
        }
        (false, None) => {
            s.error(
                "token",
                "is required (or `token_file`, `token_env`, or a [cyberpilot.login] section)",
            );
            None
        }
    };
    let interval = source_interval(&mut s);
    s.finish();
    let (auth, inline) = auth?;
    Some((
        CyberPilotConfig {
            account: account?,
            account_id: account_id?,
            base_url: base_url?,
            auth,
            page_size: page_size?,
            interval,
        },
        inline,
    ))
}

/// `base_url`, or the API 1.0 host of `region`. API 1.0 (hmac) has no global host, so it needs
/// one of the two; API 2.0 (oauth2) defaults to its global gateway.
fn mimecast_base_url(s: &mut Section<'_>, hmac: bool) -> Option<String> {
    let region = s.string("region");
    match (s.has("base_url"), region) {
        (true, Some(_)) => {
            s.error("region", "give either base_url or region, not both");
            s.mark_read("base_url");
            None
        }
        (true, None) => check_url(s, "base_url", None),
        (false, Some(region)) if hmac => {
            let host = MIMECAST_REGIONS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(region.trim()))
                .map(|(_, host)| host.to_string());
            if host.is_none() {
                s.error(
                    "region",
                    format!(
                        "unknown region {region:?}; known: eu, de, us, usb, ca, za, au, jer (offshore)"
                    ),
                );
            }
            host
        }
        (false, Some(_)) => {
            s.error(
                "region",
                "selects an API 1.0 host and needs auth = \"hmac\"; API 2.0 (oauth2) uses base_url \
                 (default https://api.services.mimecast.com)",
            );
            None
        }
        (false, None) if hmac && !s.has("region") => {
            s.error(
                "region",
                "auth = \"hmac\" (API 1.0) needs region (eu, de, us, usb, ca, za, au, jer) or base_url; \
                 the default host is the API 2.0 gateway, which does not accept API 1.0 signatures",
            );
            None
        }
        (false, None) if s.has("region") => None,
        (false, None) => Some(DEFAULT_MIMECAST_URL.to_string()),
    }
}

fn resolve_mimecast(mut s: Section<'_>, secrets: &Secrets<'_>) -> Option<(MimecastConfig, bool)> {
    let account = check_account(&mut s);
    // 500 is both the default and the most any public client asks for (Azure Sentinel's
    // MAX_PAGE_SIZE); larger Mimecast pages are unconfirmed.
    let page_size = match s.uint("page_size") {
        Some(p) if !(1..=500).contains(&p) => {
            s.error("page_size", "must be between 1 and 500");
            None
        }
        Some(p) => Some(p),
        None => Some(500),
    };
    let mut inline = false;
    let auth_mode = if s.has("auth") {
        s.string("auth")
    } else {
        Some("oauth2".to_string())
    };
    let auth = match auth_mode.as_deref() {
        Some("oauth2") => {
            let client_id = required(&mut s, "client_id");
            let secret = secrets.require(
                &mut s,
                ["client_secret", "client_secret_file", "client_secret_env"],
            );
            match (client_id, secret) {
                (Some(client_id), Some(r)) => {
                    inline |= r.inline;
                    Some(MimecastAuth::OAuth2 {
                        client_id,
                        client_secret: r.secret,
                    })
                }
                _ => None,
            }
        }
        Some("hmac") => {
            let app_id = required(&mut s, "app_id");
            let app_key = secrets.require(&mut s, ["app_key", "app_key_file", "app_key_env"]);
            let access_key =
                secrets.require(&mut s, ["access_key", "access_key_file", "access_key_env"]);
            let secret_key =
                secrets.require(&mut s, ["secret_key", "secret_key_file", "secret_key_env"]);
            let secret_key = secret_key.filter(|r| {
                use base64::Engine as _;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(r.secret.expose())
                    .map(Zeroizing::new);
                if decoded.is_err() {
                    // Name the key the user wrote: `secret_key_file`, not `secret_key`.
                    s.error(
                        r.key,
                        "does not hold valid base64 (Mimecast issues secret keys in base64)",
                    );
                }
                decoded.is_ok()
            });
            match (app_id, app_key, access_key, secret_key) {
                (Some(app_id), Some(app_key), Some(access_key), Some(secret_key)) => {
                    inline |= app_key.inline || access_key.inline || secret_key.inline;
                    Some(MimecastAuth::Hmac {
                        app_id,
                        app_key: app_key.secret,
                        access_key: access_key.secret,
                        secret_key: secret_key.secret,
                    })
                }
                _ => None,
            }
        }
        Some(_) => {
            s.error("auth", "must be \"oauth2\" or \"hmac\"");
            // Read the other keys so they are not also reported as unknown.
            for k in [
                "client_id",
                "client_secret",
                "client_secret_file",
                "client_secret_env",
                "app_id",
                "app_key",
                "app_key_file",
                "app_key_env",
                "access_key",
                "access_key_file",
                "access_key_env",
                "secret_key",
                "secret_key_file",
                "secret_key_env",
            ] {
                s.mark_read(k);
            }
            None
        }
        None => None,
    };
    if auth_mode.as_deref() == Some("oauth2") {
        for k in [
            "app_id",
            "app_key",
            "app_key_file",
            "app_key_env",
            "access_key",
            "access_key_file",
            "access_key_env",
            "secret_key",
            "secret_key_file",
            "secret_key_env",
        ] {
            if s.has(k) {
                s.mark_read(k);
                s.error(
                    k,
                    "belongs to auth = \"hmac\" (API 1.0); this account uses auth = \"oauth2\"",
                );
            }
        }
    } else if auth_mode.as_deref() == Some("hmac") {
        for k in [
            "client_id",
            "client_secret",
            "client_secret_file",
            "client_secret_env",
        ] {
            if s.has(k) {
                s.mark_read(k);
                s.error(
                    k,
                    "belongs to auth = \"oauth2\" (API 2.0); this account uses auth = \"hmac\"",
                );
            }
        }
    }
    let base_url = mimecast_base_url(&mut s, auth_mode.as_deref() == Some("hmac"));
    let endpoints = match s.strings("endpoints") {
        None if s.has("endpoints") => None,
        None => Some(MimecastEndpoint::ALL.to_vec()),
        Some(names) => {
            let mut out = Vec::new();
            let mut ok = true;
            for name in names {
                match MimecastEndpoint::parse(&name) {
                    Some(e) => {
                        if !out.contains(&e) {
                            out.push(e);
                        }
                    }
                    None => {
                        ok = false;
                        s.error(
                            "endpoints",
                            format!(
                                "unknown endpoint {name:?}; known: {}",
                                MimecastEndpoint::ALL.map(|e| e.name()).join(", ")
                            ),
                        );
                    }
                }
            }
            if ok && out.is_empty() {
                s.error("endpoints", "must name at least one endpoint");
                ok = false;
            }
            out.sort();
            ok.then_some(out)
        }
    };
    let interval = source_interval(&mut s);
    s.finish();
    Some((
        MimecastConfig {
            account: account?,
            base_url: base_url?,
            auth: auth?,
            page_size: page_size?,
            endpoints: endpoints?,
            interval,
        },
        inline,
    ))
}
