//! Configuration: TOML file (strict, line-numbered errors) plus `AWARENESS_*` environment
//! overrides through figment, then validation and secret resolution.
//!
//! The raw structs mirror the file; [`Config`] is what the rest of the program sees: durations
//! parsed, secrets resolved into [`Secret`], every source validated.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

use crate::snapshot::{Platform, SourceKey};

/// A secret value. It can be compared and used, never printed: `Debug` is redacted and there
/// is deliberately no `Display` or `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for building a request. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A configuration problem, always naming the key (and the line, for file syntax errors).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("config file {path}, line {line}, column {column}: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("config: {0}")]
    Environment(String),
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
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

// ---------------------------------------------------------------- raw file structure

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    poll: RawPoll,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    cyberpilot: Vec<RawCyberPilot>,
    #[serde(default)]
    mimecast: Vec<RawMimecast>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    web_config_file: Option<PathBuf>,
    max_connections: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    header_read_timeout: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPoll {
    #[serde(default, with = "humantime_serde")]
    interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    max_age: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    deadline: Option<Duration>,
    max_attempts: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    retry_backoff: Option<Duration>,
    concurrency: Option<usize>,
    max_requests_in_flight: Option<usize>,
    max_pages: Option<usize>,
    max_body_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    per_user: Option<bool>,
    max_users: Option<usize>,
}

/// A secret given inline, as a file or as an environment variable name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecretTriple {
    value: Option<String>,
    file: Option<PathBuf>,
    env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCyberPilot {
    account: Option<String>,
    account_id: Option<String>,
    base_url: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    token_env: Option<String>,
    login: Option<RawCyberPilotLogin>,
    page_size: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    interval: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCyberPilotLogin {
    token_url: Option<String>,
    client_id: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMimecast {
    account: Option<String>,
    base_url: Option<String>,
    region: Option<String>,
    auth: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_file: Option<PathBuf>,
    client_secret_env: Option<String>,
    app_id: Option<String>,
    app_key: Option<String>,
    app_key_file: Option<PathBuf>,
    app_key_env: Option<String>,
    access_key: Option<String>,
    access_key_file: Option<PathBuf>,
    access_key_env: Option<String>,
    secret_key: Option<String>,
    secret_key_file: Option<PathBuf>,
    secret_key_env: Option<String>,
    page_size: Option<usize>,
    endpoints: Option<Vec<String>>,
    #[serde(default, with = "humantime_serde")]
    interval: Option<Duration>,
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
    pub max_connections: usize,
    pub header_read_timeout: Duration,
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
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    pub per_user: bool,
    pub max_users: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            per_user: false,
            max_users: 20_000,
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

/// Loads, validates and resolves the config file at `path`, with environment overrides.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.display().to_string(),
        reason: e.kind().to_string(),
    })?;
    let config = parse(&text, &path.display().to_string())?;
    if config.has_inline_secrets {
        warn_if_world_readable(path);
    }
    Ok(config)
}

/// Parses config text; `origin` names it in errors. `AWARENESS_*` environment variables
/// override scalar keys: `AWARENESS_POLL__INTERVAL=10m` sets `poll.interval`.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    // First pass with the toml crate alone: its errors carry a position, figment's do not.
    toml::from_str::<RawConfig>(text).map_err(|e| syntax_error(text, origin, &e))?;

    // Second pass merges the environment. Only the scalar sections are overridable, so an
    // unrelated AWARENESS_* variable can never break start-up.
    let env_provider = Env::prefixed("AWARENESS_").split("__").filter(|k| {
        // Depending on figment's order of map and filter the key may still hold `__`.
        let k = k.as_str().to_ascii_lowercase().replace("__", ".");
        k.starts_with("server.") || k.starts_with("poll.") || k.starts_with("metrics.")
    });
    let raw: RawConfig = Figment::new()
        .merge(Toml::string(text))
        .merge(env_provider)
        .extract()
        .map_err(|e| ConfigError::Environment(redact_figment(&e)))?;
    resolve(raw, &|name| std::env::var(name).ok())
}

/// Turns a toml error into a line/column message without the source snippet, which could
/// contain a secret.
fn syntax_error(text: &str, origin: &str, e: &toml::de::Error) -> ConfigError {
    let (line, column) = match e.span() {
        Some(span) => line_col(text, span.start),
        None => (0, 0),
    };
    let mut message = strip_values(e.message());
    if let Some(key) = key_at_line(text, line) {
        if !message.contains(&key) {
            message = format!("key `{key}`: {message}");
        }
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

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// serde's "invalid type: string `abc`, expected …" quotes the value; drop quoted values so a
/// misplaced secret never reaches an error message. Key names stay.
fn strip_values(message: &str) -> String {
    if message.starts_with("invalid type") || message.starts_with("invalid value") {
        let mut out = String::new();
        let mut in_quote = false;
        for c in message.chars() {
            match c {
                '`' if !in_quote => {
                    in_quote = true;
                    out.push_str("`…");
                }
                '`' => {
                    in_quote = false;
                    out.push('`');
                }
                _ if in_quote => {}
                _ => out.push(c),
            }
        }
        out
    } else {
        message.to_string()
    }
}

fn redact_figment(e: &figment::Error) -> String {
    e.clone()
        .into_iter()
        .map(|err| {
            let mut msg = strip_values(&err.kind.to_string());
            if !err.path.is_empty() {
                msg = format!("key `{}`: {msg}", err.path.join("."));
            }
            if let Some(meta) = &err.metadata {
                msg.push_str(&format!(" (from {})", meta.name));
            }
            msg
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn warn_if_world_readable(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o004 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "config file holds inline secrets and is world-readable; chmod 600 it or use *_file / *_env keys"
                );
            }
        }
    }
}

// ---------------------------------------------------------------- validation

fn resolve(raw: RawConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let defaults = PollConfig::default();
    let poll = PollConfig {
        interval: raw.poll.interval.unwrap_or(defaults.interval),
        timeout: raw.poll.timeout.unwrap_or(defaults.timeout),
        max_age: raw.poll.max_age.unwrap_or(defaults.max_age),
        deadline: raw.poll.deadline.unwrap_or(defaults.deadline),
        max_attempts: raw.poll.max_attempts.unwrap_or(defaults.max_attempts),
        retry_backoff: raw.poll.retry_backoff.unwrap_or(defaults.retry_backoff),
        concurrency: raw.poll.concurrency.unwrap_or(defaults.concurrency),
        max_requests_in_flight: raw
            .poll
            .max_requests_in_flight
            .unwrap_or(defaults.max_requests_in_flight),
        max_pages: raw.poll.max_pages.unwrap_or(defaults.max_pages),
        max_body_bytes: raw.poll.max_body_bytes.unwrap_or(defaults.max_body_bytes),
    };
    check_duration("poll.interval", poll.interval)?;
    check_duration("poll.timeout", poll.timeout)?;
    check_duration("poll.max_age", poll.max_age)?;
    check_duration("poll.deadline", poll.deadline)?;
    // Upper bounds catch unit slips ("30d" for "30m") before they silence a source for weeks.
    check_at_most("poll.interval", poll.interval, DAY * 7)?;
    check_at_most("poll.timeout", poll.timeout, Duration::from_secs(600))?;
    check_at_most("poll.max_age", poll.max_age, DAY * 90)?;
    check_at_most("poll.deadline", poll.deadline, DAY * 7)?;
    check_range("poll.max_attempts", poll.max_attempts as usize, 1, 20)?;
    if poll.retry_backoff < Duration::from_millis(1)
        || poll.retry_backoff > Duration::from_secs(300)
    {
        return Err(invalid("poll.retry_backoff", "must be between 1ms and 5m"));
    }
    check_range("poll.concurrency", poll.concurrency, 1, 64)?;
    check_range(
        "poll.max_requests_in_flight",
        poll.max_requests_in_flight,
        1,
        4096,
    )?;
    check_range("poll.max_pages", poll.max_pages, 1, 1_000_000)?;
    check_range("poll.max_body_bytes", poll.max_body_bytes, 1024, 1 << 32)?;
    if poll.interval < Duration::from_secs(300) {
        tracing::warn!(
            interval = %humantime::format_duration(poll.interval),
            "poll.interval under 5m spends vendor API quota quickly"
        );
    }

    let metrics = MetricsConfig {
        per_user: raw.metrics.per_user.unwrap_or(false),
        max_users: raw.metrics.max_users.unwrap_or(20_000),
    };
    check_range("metrics.max_users", metrics.max_users, 0, 10_000_000)?;

    let listen = raw
        .server
        .listen
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    check_listen("server.listen", &listen)?;
    let server = ServerConfig {
        listen,
        web_config_file: raw.server.web_config_file,
        max_connections: raw.server.max_connections.unwrap_or(512),
        header_read_timeout: raw
            .server
            .header_read_timeout
            .unwrap_or(Duration::from_secs(10)),
    };
    check_range("server.max_connections", server.max_connections, 1, 100_000)?;
    check_duration("server.header_read_timeout", server.header_read_timeout)?;

    let mut sources = Vec::new();
    let mut inline = false;
    for (i, c) in raw.cyberpilot.into_iter().enumerate() {
        let (cfg, has_inline) = resolve_cyberpilot(i, c, env)?;
        inline |= has_inline;
        sources.push(SourceConfig::CyberPilot(cfg));
    }
    for (i, m) in raw.mimecast.into_iter().enumerate() {
        let (cfg, has_inline) = resolve_mimecast(i, m, env)?;
        inline |= has_inline;
        sources.push(SourceConfig::Mimecast(cfg));
    }
    let mut seen = BTreeSet::new();
    for s in &sources {
        let key = s.key();
        if !seen.insert(key.clone()) {
            return Err(invalid(
                format!("{}.account", key.platform.as_str()),
                format!("account `{}` is configured twice", key.account),
            ));
        }
    }
    Ok(Config {
        server,
        poll,
        metrics,
        sources,
        has_inline_secrets: inline,
    })
}

const DAY: Duration = Duration::from_secs(86_400);

fn check_at_most(key: &str, d: Duration, max: Duration) -> Result<(), ConfigError> {
    if d > max {
        return Err(invalid(
            key,
            format!("must be at most {}", humantime::format_duration(max)),
        ));
    }
    Ok(())
}

fn check_duration(key: &str, d: Duration) -> Result<(), ConfigError> {
    if d < Duration::from_secs(1) {
        return Err(invalid(key, "must be at least 1s"));
    }
    Ok(())
}

fn check_range(key: &str, v: usize, min: usize, max: usize) -> Result<(), ConfigError> {
    if v < min || v > max {
        return Err(invalid(key, format!("must be between {min} and {max}")));
    }
    Ok(())
}

fn check_listen(key: &str, listen: &str) -> Result<(), ConfigError> {
    let ok = listen
        .rsplit_once(':')
        .is_some_and(|(host, port)| port.parse::<u16>().is_ok() && !host.contains(' '));
    if !ok {
        return Err(invalid(key, "must be host:port, e.g. 0.0.0.0:10019"));
    }
    Ok(())
}

fn check_url(key: &str, value: &str) -> Result<String, ConfigError> {
    match url::Url::parse(value) {
        Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => {
            if !u.username().is_empty() || u.password().is_some() {
                return Err(invalid(key, "must not contain credentials"));
            }
            Ok(value.trim_end_matches('/').to_string())
        }
        Ok(_) => Err(invalid(
            key,
            "must be an http:// or https:// URL with a host",
        )),
        Err(e) => Err(invalid(key, format!("is not a URL: {e}"))),
    }
}

fn required(key: String, value: Option<String>) -> Result<String, ConfigError> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        Some(_) => Err(invalid(key, "must not be empty")),
        None => Err(invalid(key, "is required")),
    }
}

/// Resolves `<name>`, `<name>_file` or `<name>_env`: exactly one must be set. Returns the
/// secret (if any was set) and whether it was inline.
fn resolve_secret(
    prefix: &str,
    name: &str,
    triple: RawSecretTriple,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(Secret, bool)>, ConfigError> {
    let key = |suffix: &str| format!("{prefix}.{name}{suffix}");
    let set = [
        triple.value.is_some(),
        triple.file.is_some(),
        triple.env.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set > 1 {
        return Err(invalid(
            key(""),
            format!("give only one of `{name}`, `{name}_file`, `{name}_env`"),
        ));
    }
    let (value, inline, which) = if let Some(v) = triple.value {
        (v, true, key(""))
    } else if let Some(path) = triple.file {
        let content = std::fs::read_to_string(&path).map_err(|e| {
            invalid(
                key("_file"),
                format!("cannot read {}: {}", path.display(), e.kind()),
            )
        })?;
        (content.trim().to_string(), false, key("_file"))
    } else if let Some(var) = triple.env {
        let content = env(&var).ok_or_else(|| {
            invalid(
                key("_env"),
                format!("environment variable {var} is not set"),
            )
        })?;
        (content.trim().to_string(), false, key("_env"))
    } else {
        return Ok(None);
    };
    if value.is_empty() {
        return Err(invalid(which, "the secret is empty"));
    }
    Ok(Some((Secret::new(value), inline)))
}

fn require_secret(
    prefix: &str,
    name: &str,
    triple: RawSecretTriple,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Secret, bool), ConfigError> {
    resolve_secret(prefix, name, triple, env)?.ok_or_else(|| {
        invalid(
            format!("{prefix}.{name}"),
            format!("is required (or `{name}_file` / `{name}_env`)"),
        )
    })
}

fn check_account(key: String, account: Option<String>) -> Result<String, ConfigError> {
    let account = required(key.clone(), account)?;
    if account.len() > 128 || account.chars().any(char::is_control) {
        return Err(invalid(
            key,
            "must be at most 128 characters with no control characters",
        ));
    }
    Ok(account)
}

fn resolve_cyberpilot(
    index: usize,
    c: RawCyberPilot,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(CyberPilotConfig, bool), ConfigError> {
    let prefix = format!("cyberpilot[{index}]");
    let account = check_account(format!("{prefix}.account"), c.account)?;
    let account_id = required(format!("{prefix}.account_id"), c.account_id)?;
    if account_id.contains(['/', '?', '#']) {
        return Err(invalid(
            format!("{prefix}.account_id"),
            "must not contain '/', '?' or '#'",
        ));
    }
    let base_url = check_url(
        &format!("{prefix}.base_url"),
        c.base_url.as_deref().unwrap_or(DEFAULT_CYBERPILOT_URL),
    )?;
    let page_size = c.page_size.unwrap_or(100);
    check_range(&format!("{prefix}.page_size"), page_size, 1, 10_000)?;
    let token = resolve_secret(
        &prefix,
        "token",
        RawSecretTriple {
            value: c.token,
            file: c.token_file,
            env: c.token_env,
        },
        env,
    )?;
    let (auth, inline) = match (token, c.login) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                format!("{prefix}.login"),
                "give either a token or a [login] section, not both",
            ))
        }
        (Some((t, inline)), None) => (CyberPilotAuth::Token(t), inline),
        (None, Some(login)) => {
            let lp = format!("{prefix}.login");
            let token_url = check_url(
                &format!("{lp}.token_url"),
                &required(format!("{lp}.token_url"), login.token_url)?,
            )?;
            let client_id = required(format!("{lp}.client_id"), login.client_id)?;
            let username = required(format!("{lp}.username"), login.username)?;
            let (password, inline) = require_secret(
                &lp,
                "password",
                RawSecretTriple {
                    value: login.password,
                    file: login.password_file,
                    env: login.password_env,
                },
                env,
            )?;
            (
                CyberPilotAuth::Login {
                    token_url,
                    client_id,
                    username,
                    password,
                },
                inline,
            )
        }
        (None, None) => {
            return Err(invalid(
                format!("{prefix}.token"),
                "is required (or `token_file`, `token_env`, or a [cyberpilot.login] section)",
            ))
        }
    };
    if let Some(i) = c.interval {
        check_duration(&format!("{prefix}.interval"), i)?;
        check_at_most(&format!("{prefix}.interval"), i, DAY * 7)?;
    }
    Ok((
        CyberPilotConfig {
            account,
            account_id,
            base_url,
            auth,
            page_size,
            interval: c.interval,
        },
        inline,
    ))
}

/// `base_url`, or the API 1.0 host of `region`. API 1.0 (hmac) has no global host, so it needs
/// one of the two; API 2.0 (oauth2) defaults to its global gateway.
fn mimecast_base_url(
    prefix: &str,
    auth: &MimecastAuth,
    base_url: Option<String>,
    region: Option<String>,
) -> Result<String, ConfigError> {
    let hmac = matches!(auth, MimecastAuth::Hmac { .. });
    match (base_url, region) {
        (Some(_), Some(_)) => Err(invalid(
            format!("{prefix}.region"),
            "give either base_url or region, not both",
        )),
        (Some(url), None) => check_url(&format!("{prefix}.base_url"), &url),
        (None, Some(region)) if hmac => MIMECAST_REGIONS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(region.trim()))
            .map(|(_, host)| host.to_string())
            .ok_or_else(|| {
                invalid(
                    format!("{prefix}.region"),
                    format!(
                        "unknown region {region:?}; known: eu, de, us, usb, ca, za, au, jer (offshore)"
                    ),
                )
            }),
        (None, Some(_)) => Err(invalid(
            format!("{prefix}.region"),
            "selects an API 1.0 host and needs auth = \"hmac\"; API 2.0 (oauth2) uses base_url \
             (default https://api.services.mimecast.com)",
        )),
        (None, None) if hmac => Err(invalid(
            format!("{prefix}.region"),
            "auth = \"hmac\" (API 1.0) needs region (eu, de, us, usb, ca, za, au, jer) or base_url; \
             the default host is the API 2.0 gateway, which does not accept API 1.0 signatures",
        )),
        (None, None) => Ok(DEFAULT_MIMECAST_URL.to_string()),
    }
}

fn resolve_mimecast(
    index: usize,
    m: RawMimecast,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(MimecastConfig, bool), ConfigError> {
    let prefix = format!("mimecast[{index}]");
    let account = check_account(format!("{prefix}.account"), m.account)?;
    let page_size = m.page_size.unwrap_or(500);
    check_range(&format!("{prefix}.page_size"), page_size, 1, 10_000)?;
    let mut inline = false;
    let auth = match m.auth.as_deref().unwrap_or("oauth2") {
        "oauth2" => {
            let client_id = required(format!("{prefix}.client_id"), m.client_id)?;
            let (client_secret, i) = require_secret(
                &prefix,
                "client_secret",
                RawSecretTriple {
                    value: m.client_secret,
                    file: m.client_secret_file,
                    env: m.client_secret_env,
                },
                env,
            )?;
            inline |= i;
            MimecastAuth::OAuth2 {
                client_id,
                client_secret,
            }
        }
        "hmac" => {
            let app_id = required(format!("{prefix}.app_id"), m.app_id)?;
            let mut take = |name: &str, value, file, env_name| {
                let (s, i) = require_secret(
                    &prefix,
                    name,
                    RawSecretTriple {
                        value,
                        file,
                        env: env_name,
                    },
                    env,
                )?;
                inline |= i;
                Ok::<Secret, ConfigError>(s)
            };
            let app_key = take("app_key", m.app_key, m.app_key_file, m.app_key_env)?;
            let access_key = take(
                "access_key",
                m.access_key,
                m.access_key_file,
                m.access_key_env,
            )?;
            let secret_key = take(
                "secret_key",
                m.secret_key,
                m.secret_key_file,
                m.secret_key_env,
            )?;
            use base64::Engine as _;
            if base64::engine::general_purpose::STANDARD
                .decode(secret_key.expose())
                .is_err()
            {
                return Err(invalid(
                    format!("{prefix}.secret_key"),
                    "is not valid base64 (Mimecast secret keys are base64)",
                ));
            }
            MimecastAuth::Hmac {
                app_id,
                app_key,
                access_key,
                secret_key,
            }
        }
        other => {
            return Err(invalid(
                format!("{prefix}.auth"),
                format!("must be \"oauth2\" or \"hmac\", not {other:?}"),
            ))
        }
    };
    let base_url = mimecast_base_url(&prefix, &auth, m.base_url, m.region)?;
    let endpoints = match m.endpoints {
        None => MimecastEndpoint::ALL.to_vec(),
        Some(names) => {
            let mut out = Vec::new();
            for name in names {
                let e = MimecastEndpoint::parse(&name).ok_or_else(|| {
                    invalid(
                        format!("{prefix}.endpoints"),
                        format!(
                            "unknown endpoint {name:?}; known: {}",
                            MimecastEndpoint::ALL.map(|e| e.name()).join(", ")
                        ),
                    )
                })?;
                if !out.contains(&e) {
                    out.push(e);
                }
            }
            if out.is_empty() {
                return Err(invalid(
                    format!("{prefix}.endpoints"),
                    "must name at least one endpoint",
                ));
            }
            out.sort();
            out
        }
    };
    if let Some(i) = m.interval {
        check_duration(&format!("{prefix}.interval"), i)?;
        check_at_most(&format!("{prefix}.interval"), i, DAY * 7)?;
    }
    Ok((
        MimecastConfig {
            account,
            base_url,
            auth,
            page_size,
            endpoints,
            interval: m.interval,
        },
        inline,
    ))
}
