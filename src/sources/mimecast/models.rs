//! Mimecast Awareness Training answers, read leniently. Field spellings that differ between the
//! vendor's docs and examples are all accepted (`email`/`emailAddress`, `onWatchlist`/
//! `onWatchList`, `watchedDate`/`watchedData`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::sources::lenient;

#[derive(Debug, Deserialize)]
pub struct Meta {
    #[serde(default, deserialize_with = "lenient::number")]
    pub status: Option<f64>,
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

#[derive(Debug, Deserialize)]
pub struct Pagination {
    #[serde(default, deserialize_with = "lenient::text")]
    pub next: Option<String>,
}

/// One `fail[]` entry: API 1.0 wraps its errors in `errors[]`, API 2.0 puts `code` and
/// `message` directly in the entry.
#[derive(Debug, Deserialize)]
pub struct Fail {
    #[serde(default)]
    pub errors: Vec<FailError>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub code: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub retryable: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct FailError {
    #[serde(default, deserialize_with = "lenient::text")]
    pub code: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub retryable: Option<bool>,
}

/// A row is only a row when it says whose it is: rows without one are skipped and counted
/// (10 M `{}` rows must not become 10 M users).
pub trait Identified {
    fn has_identity(&self) -> bool;
    /// What the row is counted once by (a user's email); `None`: every row counts.
    fn key(&self) -> Option<&str> {
        None
    }
}

fn present(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|s| !s.trim().is_empty())
}

/// Just enough of a row to tell a user row (with an email) from anything else.
#[derive(Debug, Deserialize)]
pub struct UserLike {
    #[serde(default, alias = "emailAddress", deserialize_with = "lenient::label")]
    pub email: Option<String>,
}

/// `data[0].items[]` as campaign/get-user-data documents it.
#[derive(Debug, Deserialize)]
pub struct Items<'a> {
    #[serde(borrow)]
    pub items: Vec<&'a RawValue>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceRow {
    #[serde(default, alias = "emailAddress", deserialize_with = "lenient::label")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub department: Option<String>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub num_correct: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub num_incorrect: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub num_not_watched: Option<f64>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub user_state: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct WatchlistRow {
    #[serde(default, alias = "emailAddress", deserialize_with = "lenient::label")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub department: Option<String>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub watchlist_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub user_state: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SafeScoreRow {
    #[serde(default, alias = "email", deserialize_with = "lenient::label")]
    pub email_address: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub department: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub risk: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub user_state: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TrainingRow {
    #[serde(default)]
    pub training: Option<Vec<TrainingEntry>>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub need_engagement: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TrainingEntry {
    #[serde(default, deserialize_with = "lenient::label")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub title_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub watched: Option<bool>,
    #[serde(default, alias = "onWatchList", deserialize_with = "lenient::flag")]
    pub on_watchlist: Option<bool>,
}

/// One `data[]` entry of company/get-performance-summary: completion figures per department,
/// which the API 2.0 catalogue documents without a department name, as int32 counts (a count of
/// another type makes the entry malformed).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct PerformanceSummaryRow {
    pub department_completion_stats: Option<Vec<DepartmentCompletion>>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct DepartmentCompletion {
    pub num_participating: Option<f64>,
    pub num_videos_sent: Option<f64>,
    pub num_videos_not_watched: Option<f64>,
    pub num_zero_incorrect: Option<f64>,
    pub num_one_incorrect: Option<f64>,
    pub num_two_incorrect: Option<f64>,
    pub num_three_incorrect: Option<f64>,
    pub num_four_or_more_incorrect: Option<f64>,
}

/// One training campaign of campaign/get-campaigns.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Campaign {
    #[serde(default, deserialize_with = "lenient::label")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub name: Option<String>,
    #[serde(default)]
    pub title: Option<CampaignTitle>,
    #[serde(default, rename = "launchDate", deserialize_with = "lenient::label")]
    pub launch_date: Option<String>,
    /// Users the campaign was sent to.
    #[serde(default, rename = "numSent", deserialize_with = "lenient::number")]
    pub num_sent: Option<f64>,
    /// Users who completed it (answered every question).
    #[serde(default, rename = "numCompleted", deserialize_with = "lenient::number")]
    pub num_completed: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct CampaignTitle {
    #[serde(default, deserialize_with = "lenient::label")]
    pub title: Option<String>,
}

impl Campaign {
    /// The training module the campaign sends (`title.title`).
    pub fn module(&self) -> Option<&str> {
        self.title
            .as_ref()
            .and_then(|t| t.title.as_deref())
            .filter(|t| !t.is_empty())
    }

    pub fn label(&self) -> String {
        self.name
            .clone()
            .or_else(|| self.title.as_ref().and_then(|t| t.title.clone()))
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CampaignUserRow {
    #[serde(default, alias = "emailAddress", deserialize_with = "lenient::label")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub acknowledgement: Option<bool>,
    #[serde(default)]
    pub results: Option<BTreeMap<String, Option<String>>>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PhishingCampaign {
    #[serde(default, deserialize_with = "lenient::label")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub launch_date: Option<String>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub num_sent: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub num_opened: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub num_clicked: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub num_submitted: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub num_reported: Option<f64>,
}

impl Identified for PerformanceRow {
    fn has_identity(&self) -> bool {
        present(&self.email)
    }
    fn key(&self) -> Option<&str> {
        self.email.as_deref()
    }
}

impl Identified for WatchlistRow {
    fn has_identity(&self) -> bool {
        present(&self.email)
    }
    fn key(&self) -> Option<&str> {
        self.email.as_deref()
    }
}

impl Identified for SafeScoreRow {
    fn has_identity(&self) -> bool {
        present(&self.email_address)
    }
    fn key(&self) -> Option<&str> {
        self.email_address.as_deref()
    }
}

impl Identified for CampaignUserRow {
    fn has_identity(&self) -> bool {
        present(&self.email)
    }
    fn key(&self) -> Option<&str> {
        self.email.as_deref()
    }
}

impl Identified for PhishingCampaign {
    fn has_identity(&self) -> bool {
        present(&self.id)
    }
    fn key(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

/// A summary entry is one when it carries the department list (the catalogue's only field).
impl Identified for PerformanceSummaryRow {
    fn has_identity(&self) -> bool {
        self.department_completion_stats.is_some()
    }
}

/// The training record carries no user (it is the API user's own): it must at least be one.
impl Identified for TrainingRow {
    fn has_identity(&self) -> bool {
        self.training.is_some() || self.need_engagement.is_some()
    }
}

/// campaign/get-campaigns entries: `{campaigns: [...]}`, or a campaign with an id.
impl Identified for serde_json::Value {
    fn has_identity(&self) -> bool {
        self.get("campaigns").is_some_and(|c| c.is_array())
            || self
                .get("id")
                .is_some_and(|id| id.as_str().is_some_and(|s| !s.is_empty()) || id.is_number())
    }
}

/// `userState` values that count toward the user totals: `ACTIVE` (as recorded), in any
/// case, or no state at all. Every other state is counted apart.
pub fn counts_as_user(state: &Option<String>) -> bool {
    match state.as_deref().map(str::trim) {
        None | Some("") => true,
        Some(s) => s.eq_ignore_ascii_case("active"),
    }
}

/// One recipient of one phishing campaign (phishing/campaign/get-user-data `data[0].items[]`;
/// field names as Azure Sentinel's Awareness_User_Data table stores them, plus the documented
/// `timeSubmitted`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PhishingUserRow {
    #[serde(default, alias = "emailAddress", deserialize_with = "lenient::label")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub department: Option<String>,
    /// How far the recipient went: sent, opened, clicked or submitted (any case).
    #[serde(default, deserialize_with = "lenient::label")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub time_opened: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub time_clicked: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub time_submitted: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub time_reported: Option<String>,
}

impl Identified for PhishingUserRow {
    fn has_identity(&self) -> bool {
        present(&self.email)
    }
    fn key(&self) -> Option<&str> {
        self.email.as_deref()
    }
}

/// How far a phishing recipient went; each step implies the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PhishingStep {
    Sent,
    Opened,
    Clicked,
    Submitted,
}

impl PhishingUserRow {
    /// The furthest step, from `status` and the time stamps (whichever says more).
    pub fn step(&self) -> PhishingStep {
        let by_status = match self
            .status
            .as_deref()
            .map(|s| s.trim().to_ascii_lowercase())
            .as_deref()
        {
            Some("submitted") => PhishingStep::Submitted,
            Some("clicked") => PhishingStep::Clicked,
            Some("opened") => PhishingStep::Opened,
            _ => PhishingStep::Sent,
        };
        let by_time = if present(&self.time_submitted) {
            PhishingStep::Submitted
        } else if present(&self.time_clicked) {
            PhishingStep::Clicked
        } else if present(&self.time_opened) {
            PhishingStep::Opened
        } else {
            PhishingStep::Sent
        };
        by_status.max(by_time)
    }

    pub fn reported(&self) -> bool {
        present(&self.time_reported)
            || self
                .status
                .as_deref()
                .is_some_and(|s| s.trim().eq_ignore_ascii_case("reported"))
    }
}

/// Mimecast timestamps look like `2022-01-11T23:32:00+0000` (no colon in the offset).
pub fn parse_timestamp(s: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let s = s.trim();
    chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z")
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(s))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_with_plus_0000() {
        let t = parse_timestamp("2022-01-11T23:32:00+0000").unwrap();
        assert_eq!(t.timestamp(), 1641943920);
        assert!(parse_timestamp("2022-01-11T23:32:00+00:00").is_some());
        assert!(parse_timestamp("2022-01-11T23:32:00.123+0000").is_some());
        assert!(parse_timestamp("yesterday").is_none());
    }

    #[test]
    fn field_spelling_variants() {
        let a: TrainingEntry =
            serde_json::from_str(r#"{"title":"T","onWatchList":true,"watchedData":"x"}"#).unwrap();
        let b: TrainingEntry =
            serde_json::from_str(r#"{"title":"T","onWatchlist":"true","watchedDate":"x"}"#)
                .unwrap();
        assert_eq!(a.on_watchlist, Some(true));
        assert_eq!(b.on_watchlist, Some(true));
        let c: CampaignUserRow =
            serde_json::from_str(r#"{"emailAddress":"a@x","watchlistCount":3}"#).unwrap();
        assert_eq!(c.email.as_deref(), Some("a@x"));
        let d: SafeScoreRow = serde_json::from_str(r#"{"email":"a@x","risk":"b"}"#).unwrap();
        assert_eq!(d.email_address.as_deref(), Some("a@x"));
    }
}
