//! KnowBe4 Reporting API rows as the vendor really sends them, read leniently.
//!
//! The wire shape is a bare JSON array per page (recorded from `eu.api.knowbe4.com`); the
//! vendor's documentation shows several list endpoints as one lone object, and one client's
//! test data wraps rows in `{"data": [...]}`. All three are accepted (see [`super::page`]).
//! Every field is optional, unknown fields are ignored, numbers may be text, ids may be
//! numbers or text. Units are the vendor's: a user's `phish_prone_percentage` is a percent, a
//! security test's is a fraction (the conversion to ratios happens in [`super::metrics`]).

use std::borrow::Cow;

use serde::Deserialize;

use crate::sources::lenient;

/// `GET /v1/account`: one object.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Account {
    #[serde(default, deserialize_with = "lenient::label")]
    pub name: Option<String>,
    /// `paid`, `trial`, `free`.
    #[serde(default, rename = "type", deserialize_with = "lenient::label")]
    pub account_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub subscription_level: Option<String>,
    /// Licensed seats; absent for trial accounts. The daily quota is 2,000 plus these.
    #[serde(default, deserialize_with = "lenient::number")]
    pub number_of_seats: Option<f64>,
    /// 1 (least risky) to 100; may be null.
    #[serde(default, deserialize_with = "lenient::number")]
    pub current_risk_score: Option<f64>,
}

/// `GET /v1/users?status=active`: one user.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct User {
    #[serde(default, deserialize_with = "lenient::label")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub department: Option<String>,
    /// A **percent** (0–100): 14.235 documented, 76 in the old samples.
    #[serde(default, deserialize_with = "lenient::number")]
    pub phish_prone_percentage: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub current_risk_score: Option<f64>,
    /// Ids of the groups the user is in.
    #[serde(default, deserialize_with = "ids")]
    pub groups: Vec<String>,
    /// `active` or `archived`; `None` when not sent.
    #[serde(default, deserialize_with = "lenient::label")]
    pub status: Option<String>,
}

impl User {
    /// The user's phish-prone figure as a ratio 0..1 (the vendor sends a percent); `None` when
    /// not sent or outside 0–100.
    pub fn phish_prone_ratio(&self) -> Option<f64> {
        self.phish_prone_percentage
            .filter(|p| (0.0..=100.0).contains(p))
            .map(|p| p / 100.0)
    }

    /// Archived users are left out even if the server ignores `status=active`.
    pub fn is_active(&self) -> bool {
        self.status
            .as_deref()
            .is_none_or(|s| s.trim().eq_ignore_ascii_case("active"))
    }
}

/// `GET /v1/groups?status=active`: one group.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Group {
    #[serde(default, deserialize_with = "lenient::label")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub member_count: Option<f64>,
    /// Absent in the vendor's older samples.
    #[serde(default, deserialize_with = "lenient::number")]
    pub current_risk_score: Option<f64>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub status: Option<String>,
}

/// `GET /v1/training/enrollments`: one enrollment, kept compact (tens of thousands per poll).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Enrollment {
    #[serde(default, deserialize_with = "lenient::label")]
    pub enrollment_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub module_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub campaign_name: Option<String>,
    /// Only with `include_campaign_id=true`.
    #[serde(default, deserialize_with = "lenient::label")]
    pub campaign_id: Option<String>,
    /// `Not Started`, `In Progress`, `Completed`, `Passed`, `Past Due`.
    #[serde(default, deserialize_with = "lenient::label")]
    pub status: Option<String>,
    #[serde(default)]
    pub user: Option<EnrollmentUser>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct EnrollmentUser {
    #[serde(default, deserialize_with = "lenient::label")]
    pub id: Option<String>,
}

impl Enrollment {
    /// What makes two rows the same enrollment: the vendor's enrollment ids repeat across
    /// campaigns (the older samples have one id three times), so the id alone is not enough.
    pub fn identity(&self) -> Option<(String, String, String, String)> {
        Some((
            self.enrollment_id.clone()?,
            self.user
                .as_ref()
                .and_then(|u| u.id.clone())
                .unwrap_or_default(),
            self.campaign_id
                .clone()
                .or_else(|| self.campaign_name.clone())
                .unwrap_or_default(),
            self.module_name.clone().unwrap_or_default(),
        ))
    }

    /// The status as a label value: `Past Due` → `past_due`; unknown statuses keep their own
    /// (normalised) value, never dropped; none → `unknown`.
    pub fn status_label(&self) -> String {
        status_label(self.status.as_deref())
    }
}

/// A vendor status as a label value: lower case, runs of other characters as one `_`.
pub fn status_label(status: Option<&str>) -> String {
    let mut out = String::new();
    for c in status.unwrap_or("").trim().chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    let out = out.trim_end_matches('_').to_string();
    if out.is_empty() {
        "unknown".to_string()
    } else {
        out
    }
}

/// `GET /v1/training/campaigns?exclude_percentages=true`: one campaign (only what we count).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct TrainingCampaign {
    #[serde(default, deserialize_with = "lenient::label")]
    pub campaign_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub status: Option<String>,
}

/// A group a campaign or test targets: `group_id: 0` is "All Users", a pseudo-group.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct TargetGroup {
    #[serde(default, deserialize_with = "lenient::label")]
    pub group_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub name: Option<String>,
}

/// `GET /v1/phishing/security_tests`: one phishing security test (PST) with its counts. A
/// count sent as null is "not reported" (a test in status `Error` has `scheduled_count: null`),
/// not 0.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct SecurityTest {
    #[serde(default, deserialize_with = "lenient::label")]
    pub pst_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub campaign_id: Option<String>,
    /// Repeats the campaign's name for recurring tests: not unique.
    #[serde(default, deserialize_with = "lenient::label")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub started_at: Option<String>,
    #[serde(default, deserialize_with = "target_groups")]
    pub groups: Vec<TargetGroup>,
    /// A **fraction** (0–1, three decimals): 0.277 for 173 failures of 625 delivered.
    #[serde(default, deserialize_with = "lenient::number")]
    pub phish_prone_percentage: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub scheduled_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub delivered_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub opened_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub clicked_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub replied_count: Option<f64>,
    /// `attachment_open_count` (sic: "open", not "opened").
    #[serde(default, deserialize_with = "lenient::number")]
    pub attachment_open_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub macro_enabled_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub data_entered_count: Option<f64>,
    /// Absent on the 2021 wire, present since 2022.
    #[serde(default, deserialize_with = "lenient::number")]
    pub qr_code_scanned_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub reported_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub bounced_count: Option<f64>,
}

impl SecurityTest {
    /// `(outcome label, count)` for every count the vendor reported (null counts left out).
    pub fn outcomes(&self) -> Vec<(&'static str, f64)> {
        [
            ("scheduled", self.scheduled_count),
            ("delivered", self.delivered_count),
            ("opened", self.opened_count),
            ("clicked", self.clicked_count),
            ("replied", self.replied_count),
            ("attachment_opened", self.attachment_open_count),
            ("macro_enabled", self.macro_enabled_count),
            ("data_entered", self.data_entered_count),
            ("qr_code_scanned", self.qr_code_scanned_count),
            ("reported", self.reported_count),
            ("bounced", self.bounced_count),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.filter(|v| *v >= 0.0)?)))
        .collect()
    }

    /// The test's phish-prone figure, already a fraction; `None` outside 0..1.
    pub fn phish_prone_ratio(&self) -> Option<f64> {
        self.phish_prone_percentage
            .filter(|p| (0.0..=1.0).contains(p))
    }
}

/// A list of ids given as numbers or text; nulls and other values are skipped.
fn ids<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v: Option<Vec<serde_json::Value>> = Option::deserialize(d)?;
    Ok(v.unwrap_or_default()
        .into_iter()
        .filter_map(|v| match v {
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::String(s) if !s.trim().is_empty() => {
                Some(lenient::cut(s.trim().to_string()))
            }
            _ => None,
        })
        .collect())
}

/// Target groups; an element that is not a group object is skipped, not fatal to the row.
fn target_groups<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<TargetGroup>, D::Error> {
    let v: Option<Vec<serde_json::Value>> = Option::deserialize(d)?;
    Ok(v.unwrap_or_default()
        .into_iter()
        .filter_map(|g| serde_json::from_value(g).ok())
        .collect())
}

/// A row type read from a list page: how to tell a usable row and its identity (to drop the
/// duplicates that shifting pages produce).
pub trait Row: serde::de::DeserializeOwned + Send + 'static {
    /// What tells two rows apart; `None` when the row is unusable.
    fn key(&self) -> Option<Cow<'_, str>>;
}

impl Row for User {
    fn key(&self) -> Option<Cow<'_, str>> {
        self.id
            .as_deref()
            .or(self.email.as_deref())
            .map(Cow::Borrowed)
    }
}

impl Row for Group {
    fn key(&self) -> Option<Cow<'_, str>> {
        self.id.as_deref().map(Cow::Borrowed)
    }
}

impl Row for Enrollment {
    fn key(&self) -> Option<Cow<'_, str>> {
        let (e, u, c, m) = self.identity()?;
        Some(Cow::Owned(format!("{e}\u{1f}{u}\u{1f}{c}\u{1f}{m}")))
    }
}

impl Row for TrainingCampaign {
    fn key(&self) -> Option<Cow<'_, str>> {
        self.campaign_id.as_deref().map(Cow::Borrowed)
    }
}

impl Row for SecurityTest {
    fn key(&self) -> Option<Cow<'_, str>> {
        self.pst_id.as_deref().map(Cow::Borrowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_become_label_values() {
        assert_eq!(status_label(Some("Past Due")), "past_due");
        assert_eq!(status_label(Some("Not Started")), "not_started");
        assert_eq!(status_label(Some("  In  Progress ")), "in_progress");
        assert_eq!(status_label(Some("Passed")), "passed");
        assert_eq!(status_label(Some("Overdue-Soon!")), "overdue_soon");
        assert_eq!(status_label(Some("")), "unknown");
        assert_eq!(status_label(None), "unknown");
    }

    #[test]
    fn units_differ_by_endpoint() {
        let u: User = serde_json::from_str(r#"{"id":1,"phish_prone_percentage":14.235}"#).unwrap();
        assert!((u.phish_prone_ratio().unwrap() - 0.14235).abs() < 1e-12);
        let u: User = serde_json::from_str(r#"{"id":1,"phish_prone_percentage":0.5}"#).unwrap();
        assert!(
            (u.phish_prone_ratio().unwrap() - 0.005).abs() < 1e-12,
            "0.5 is a legal percent"
        );
        let u: User = serde_json::from_str(r#"{"id":1,"phish_prone_percentage":140}"#).unwrap();
        assert_eq!(u.phish_prone_ratio(), None);
        let t: SecurityTest =
            serde_json::from_str(r#"{"pst_id":1,"phish_prone_percentage":0.277}"#).unwrap();
        assert_eq!(t.phish_prone_ratio(), Some(0.277));
    }

    #[test]
    fn odd_fields_do_not_sink_a_row() {
        let u: User = serde_json::from_str(
            r#"{"id":"667542","groups":[1,"2",null,{}],"status":null,"extra":[1]}"#,
        )
        .unwrap();
        assert_eq!(u.groups, ["1", "2"]);
        assert!(u.is_active());
        let t: SecurityTest =
            serde_json::from_str(r#"{"pst_id":1,"groups":[{"group_id":0,"name":"All Users"},3],"scheduled_count":null,"clicked_count":"4"}"#)
                .unwrap();
        assert_eq!(t.groups.len(), 1);
        assert_eq!(t.outcomes(), vec![("clicked", 4.0)]);
    }
}
