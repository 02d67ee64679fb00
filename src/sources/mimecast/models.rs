//! Mimecast Awareness Training answers, read leniently. Field spellings that differ between the
//! vendor's docs and examples are all accepted (`email`/`emailAddress`, `onWatchlist`/
//! `onWatchList`, `watchedDate`/`watchedData`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::sources::lenient;

/// The response envelope: `{meta: {status, pagination: {next}}, data: [...], fail: [...]}`.
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    #[serde(default)]
    pub meta: Option<Meta>,
    #[serde(borrow, default)]
    pub data: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    pub fail: Option<Vec<Fail>>,
}

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

#[derive(Debug, Deserialize)]
pub struct Fail {
    #[serde(default)]
    pub errors: Vec<FailError>,
}

#[derive(Debug, Deserialize)]
pub struct FailError {
    #[serde(default, deserialize_with = "lenient::text")]
    pub code: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub message: Option<String>,
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
    #[serde(default, alias = "emailAddress", deserialize_with = "lenient::text")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub department: Option<String>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub num_correct: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub num_incorrect: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub num_not_watched: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct WatchlistRow {
    #[serde(default, alias = "emailAddress", deserialize_with = "lenient::text")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub department: Option<String>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub watchlist_count: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SafeScoreRow {
    #[serde(default, alias = "email", deserialize_with = "lenient::text")]
    pub email_address: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub department: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
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
    #[serde(default, deserialize_with = "lenient::text")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub title_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub watched: Option<bool>,
    #[serde(default, alias = "onWatchList", deserialize_with = "lenient::flag")]
    pub on_watchlist: Option<bool>,
}

/// One training campaign of campaign/get-campaigns.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Campaign {
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
    #[serde(default)]
    pub title: Option<CampaignTitle>,
    #[serde(default, rename = "launchDate", deserialize_with = "lenient::text")]
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
    #[serde(default, deserialize_with = "lenient::text")]
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
    #[serde(default, alias = "emailAddress", deserialize_with = "lenient::text")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub acknowledgement: Option<bool>,
    #[serde(default)]
    pub results: Option<BTreeMap<String, Option<String>>>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PhishingCampaign {
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
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
