//! Mimecast Awareness Training answers, read leniently. Field spellings that differ between the
//! vendor's docs and examples are all accepted (`email`/`emailAddress`, `onWatchlist`/
//! `onWatchList`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::sources::lenient;

#[derive(Debug, Deserialize)]
pub(crate) struct Meta {
    #[serde(default, deserialize_with = "lenient::number")]
    pub status: Option<f64>,
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Pagination {
    #[serde(default, deserialize_with = "lenient::text")]
    pub next: Option<String>,
}

/// One `fail[]` entry: API 1.0 wraps its errors in `errors[]` (entries of the same shape),
/// API 2.0 puts `code` and `message` directly in the entry.
#[derive(Debug, Deserialize)]
pub(crate) struct Fail {
    #[serde(default)]
    pub errors: Vec<Fail>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub code: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub retryable: Option<bool>,
}

/// A row is only a row when it says whose it is: rows without one are skipped and counted
/// (10 M `{}` rows must not become 10 M users).
pub(crate) trait Identified {
    /// The rows are the lists inside the `data[]` entries (see [`Items`]).
    const NESTED: bool = false;
    /// What the row is counted once by (a user's email, a campaign's id); `None`: every row
    /// counts.
    fn key(&self) -> Option<&str> {
        None
    }
    fn has_identity(&self) -> bool {
        present(&self.key())
    }
}

fn present(s: &Option<impl AsRef<str>>) -> bool {
    s.as_ref().is_some_and(|s| !s.as_ref().trim().is_empty())
}

/// The list inside a `data[]` entry: `items[]` as campaign/get-user-data documents it,
/// `campaigns[]` as campaign/get-campaigns answers.
#[derive(Debug, Deserialize)]
pub struct Items<'a> {
    #[serde(borrow, alias = "campaigns")]
    pub items: Vec<&'a RawValue>,
}

/// One user of company/get-performance-details, get-watchlist-details or
/// get-safe-score-details: each endpoint sends the fields of its own figures.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct UserRow {
    #[serde(default, alias = "emailAddress", deserialize_with = "lenient::label")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub department: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub user_state: Option<String>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub num_correct: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub num_incorrect: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub num_not_watched: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub watchlist_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub risk: Option<String>,
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
pub(crate) struct PerformanceSummaryRow {
    pub department_completion_stats: Option<Vec<DepartmentCompletion>>,
}

/// The catalogue's counts, in its order: participating, videos sent, videos not watched, users
/// with 0, 1, 2, 3 and 4 or more incorrect answers.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct DepartmentCompletion {
    pub num_participating: Option<f64>,
    pub num_videos_sent: Option<f64>,
    pub num_videos_not_watched: Option<f64>,
    pub num_zero_incorrect: Option<f64>,
    pub num_one_incorrect: Option<f64>,
    pub num_two_incorrect: Option<f64>,
    pub num_three_incorrect: Option<f64>,
    pub num_four_or_more_incorrect: Option<f64>,
}

impl DepartmentCompletion {
    pub(crate) fn counts(&self) -> [Option<f64>; 8] {
        [
            self.num_participating,
            self.num_videos_sent,
            self.num_videos_not_watched,
            self.num_zero_incorrect,
            self.num_one_incorrect,
            self.num_two_incorrect,
            self.num_three_incorrect,
            self.num_four_or_more_incorrect,
        ]
    }
}

/// One training campaign of campaign/get-campaigns.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Campaign {
    #[serde(default, deserialize_with = "lenient::label")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub name: Option<String>,
    #[serde(default)]
    pub title: Option<CampaignTitle>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub launch_date: Option<String>,
    /// Users the campaign was sent to.
    #[serde(default, deserialize_with = "lenient::number")]
    pub num_sent: Option<f64>,
    /// Users who completed it (answered every question).
    #[serde(default, deserialize_with = "lenient::number")]
    pub num_completed: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct CampaignTitle {
    #[serde(default, deserialize_with = "lenient::label")]
    pub title: Option<String>,
}

impl Campaign {
    /// The training module the campaign sends (`title.title`).
    pub(crate) fn module(&self) -> Option<&str> {
        self.title
            .as_ref()?
            .title
            .as_deref()
            .filter(|t| !t.is_empty())
    }

    /// Its name, else its module's.
    pub(crate) fn label(&self) -> &str {
        let title = self.title.as_ref().and_then(|t| t.title.as_deref());
        self.name.as_deref().or(title).unwrap_or_default()
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

/// One recipient of one phishing campaign (phishing/campaign/get-user-data `data[0].items[]`;
/// field names as Azure Sentinel's Awareness_User_Data table stores them, plus the documented
/// `timeSubmitted`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PhishingUserRow {
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

/// A row counted once by one of its fields (a user's email, a campaign's id), listed in
/// `data[]` or, `nested`, inside its entries.
macro_rules! keyed {
    ($row:ty, $field:ident, $nested:literal) => {
        impl Identified for $row {
            const NESTED: bool = $nested;
            fn key(&self) -> Option<&str> {
                self.$field.as_deref()
            }
        }
    };
}

keyed!(UserRow, email, false);
keyed!(CampaignUserRow, email, true);
keyed!(PhishingUserRow, email, true);
keyed!(Campaign, id, true);
keyed!(PhishingCampaign, id, false);

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

/// `userState` values that count toward the user totals: `ACTIVE` (as recorded), in any
/// case, or no state at all. Every other state is counted apart.
pub(crate) fn counts_as_user(state: &Option<String>) -> bool {
    !present(state)
        || state
            .as_deref()
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("active"))
}

/// How far a phishing recipient went, in order; each step implies the ones before it.
pub(crate) const PHISHING_STEPS: [&str; 4] = ["sent", "opened", "clicked", "submitted"];

impl PhishingUserRow {
    /// The furthest step (an index of [`PHISHING_STEPS`]), from `status` and the time stamps
    /// (whichever says more).
    pub(crate) fn step(&self) -> usize {
        let status = self.status.as_deref().map(str::trim).unwrap_or_default();
        let by_status = PHISHING_STEPS
            .iter()
            .position(|s| status.eq_ignore_ascii_case(s));
        let times = [&self.time_opened, &self.time_clicked, &self.time_submitted];
        let by_time = times.iter().rposition(|t| present(t)).map_or(0, |i| i + 1);
        by_status.unwrap_or(0).max(by_time)
    }

    pub(crate) fn reported(&self) -> bool {
        let status = self.status.as_deref().map(str::trim).unwrap_or_default();
        present(&self.time_reported) || status.eq_ignore_ascii_case("reported")
    }
}

/// Mimecast timestamps look like `2022-01-11T23:32:00+0000` (no colon in the offset); the
/// Unix time.
pub fn parse_timestamp(s: &str) -> Option<f64> {
    let s = s.trim();
    let t = chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z")
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(s));
    t.ok().map(|t| t.timestamp() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_with_plus_0000() {
        assert_eq!(
            parse_timestamp("2022-01-11T23:32:00+0000"),
            Some(1641943920.0)
        );
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
        let d: UserRow = serde_json::from_str(r#"{"email":"a@x","risk":"b"}"#).unwrap();
        assert_eq!(d.email.as_deref(), Some("a@x"));
    }

    #[test]
    fn phishing_steps_from_status_and_times() {
        let row = |status: &str, clicked: &str| PhishingUserRow {
            status: Some(status.into()),
            time_clicked: Some(clicked.into()),
            ..Default::default()
        };
        assert_eq!(row("Submitted", "").step(), 3);
        assert_eq!(row("opened", "2022-01-11T23:32:00+0000").step(), 2);
        assert_eq!(row("whatever", " ").step(), 0);
        assert!(row("REPORTED", "").reported());
        assert!(!row("clicked", "").reported());
    }
}
