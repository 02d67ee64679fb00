//! The identity and outcome types every layer shares: which source ([`Platform`], [`SourceKey`]),
//! why a request or a poll failed ([`FailureReason`]), and what a poll produced
//! ([`PollOutcome`]). Config, sources, store and server all import them from here, so no layer
//! reaches into another for a type, and none of them names a vendor.

use std::fmt;
use std::time::Duration;

use crate::snapshot::Rendered;

/// The vendor platform a source talks to: the value of the `platform` label and the name of
/// its `[[table]]` in the config. A name owned by the vendor's registration
/// (`crate::sources::registry`), not a closed list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform(&'static str);

impl Platform {
    /// A platform name: lower case, as it appears in the `platform` label.
    pub const fn new(name: &'static str) -> Self {
        Platform(name)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
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

/// Where a source polls and how it authenticates, for the landing page: no credentials, no
/// query string (`crate::sources::public_url`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceInfo {
    pub url: String,
    pub auth: &'static str,
}

/// Why a request to a vendor failed; the value of the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureReason {
    /// 401/403, a rejected signature or a failed token request.
    Auth,
    /// 429 or an exhausted quota.
    RateLimited,
    /// No answer within `poll.timeout`.
    Timeout,
    /// The connection could not be made or broke.
    Connect,
    /// Any other non-success HTTP status.
    Http,
    /// The body was not what the API documents (bad JSON, too large, wrong shape).
    Decode,
    /// The API reported an error inside a successful HTTP answer.
    ApiError,
    /// A redirect that was refused: to another host, any redirect of a token request, or a
    /// redirect loop. Never followed, never retried: credentials stay with the vendor's host.
    Redirect,
    /// The vendor's TLS certificate was refused (expired, wrong host, unknown issuer): an
    /// interception proxy or a misconfigured host, not a passing fault, so never retried.
    Tls,
    /// The account's API budget is spent (Proofpoint's HTTP 402 "API Budget Empty"): nothing
    /// more is asked before the next interval.
    Quota,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Auth => "auth",
            FailureReason::RateLimited => "rate_limited",
            FailureReason::Timeout => "timeout",
            FailureReason::Connect => "connect",
            FailureReason::Http => "http",
            FailureReason::Decode => "decode",
            FailureReason::ApiError => "api_error",
            FailureReason::Redirect => "redirect",
            FailureReason::Tls => "tls",
            FailureReason::Quota => "quota",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a section that failed is tried again, and whether it counts as down. The vendor folder
/// that reads an answer decides; the poller schedules and the store reports by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retry {
    /// On the poller's failure backoff: a passing fault.
    #[default]
    Backoff,
    /// Not before the source's next interval: the vendor said asking sooner is useless (an
    /// empty API budget, a spent daily quota) and would only spend quota.
    NextInterval,
    /// The tenant does not offer this endpoint (404, or 403 for an endpoint outside its
    /// licence): the section is unavailable, not down, and is checked again at the next
    /// interval.
    NotOffered,
}

/// A failed request to a vendor (after retries), or a vendor answer refused: the reason and a
/// message that never holds a URL, a header or a body, so nothing secret leaks through it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct FetchError {
    pub reason: FailureReason,
    pub message: String,
    pub status: Option<u16>,
    /// When the section is tried again.
    pub retry: Retry,
}

impl FetchError {
    pub fn new(reason: FailureReason, message: impl Into<String>) -> Self {
        FetchError {
            reason,
            message: message.into(),
            status: None,
            retry: Retry::Backoff,
        }
    }
}

/// Why a section of a poll failed, as the poller, the store and the landing page see it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PollError {
    /// A vendor request failed or its answer was refused.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The poll panicked (caught; the source keeps its schedule).
    #[error("poll panicked: {0}")]
    Panicked(String),
    /// The whole poll ran longer than `poll.deadline`.
    #[error("poll deadline of {} exceeded (poll.deadline)", humantime::format_duration(*.0))]
    Deadline(Duration),
    /// The poll's task ended without an answer (cancelled at shutdown or reload).
    #[error("poll task ended: {0}")]
    Ended(String),
}

impl PollError {
    /// The request failure reason behind it, when a vendor request is the cause.
    pub fn reason(&self) -> Option<FailureReason> {
        match self {
            PollError::Fetch(e) => Some(e.reason),
            _ => None,
        }
    }

    /// When the section is tried again: only a vendor's answer can say other than backoff.
    pub fn retry(&self) -> Retry {
        match self {
            PollError::Fetch(e) => e.retry,
            _ => Retry::Backoff,
        }
    }

    /// What the landing page shows: our own words and the vendor's status code, never the
    /// vendor's prose (`FetchError::message` may quote it).
    pub fn summary(&self) -> String {
        match self {
            PollError::Fetch(e) if e.retry == Retry::NotOffered => {
                "not offered by this tenant".to_string()
            }
            PollError::Fetch(FetchError {
                reason,
                status: Some(code),
                ..
            }) => format!("HTTP {code} ({reason})"),
            PollError::Fetch(e) => e.reason.to_string(),
            other => other.to_string(),
        }
    }
}

/// The result of one section (an endpoint group) of a poll.
#[derive(Debug)]
pub struct SectionOutcome {
    pub name: &'static str,
    pub result: Result<Rendered, PollError>,
}

/// Everything one poll of one source produced. A section is published whole or not at all.
#[derive(Debug, Default)]
pub struct PollOutcome {
    pub sections: Vec<SectionOutcome>,
}

impl PollOutcome {
    /// An outcome in which every section of `names` failed with the same `error`.
    pub fn all_failed(names: &[&'static str], error: impl Into<PollError>) -> Self {
        let error = error.into();
        let result = |name| SectionOutcome {
            name,
            result: Err(error.clone()),
        };
        let sections = names.iter().copied().map(result).collect();
        PollOutcome { sections }
    }
    /// The first failed section and why.
    pub fn first_failure(&self) -> Option<SectionError> {
        self.sections.iter().find_map(|s| {
            let error = s.result.as_ref().err()?.clone();
            Some(SectionError {
                section: s.name,
                error,
            })
        })
    }
}

/// A section's failure, named: what the landing page shows as a source's last error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{section}: {error}")]
pub struct SectionError {
    pub section: &'static str,
    pub error: PollError,
}

/// Why a reload was refused; the running config is kept. It keeps the loader's own typed error
/// (`crate::config::ConfigError`, reachable by `downcast_ref`: every problem, each naming its
/// key; or the reading task's panic) without this module depending on the config.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ReloadError(pub Box<dyn std::error::Error + Send + Sync>);
