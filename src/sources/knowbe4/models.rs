//! KnowBe4 Reporting API rows as the vendor really sends them, read leniently: only the fields
//! the metrics read.
//!
//! The wire shape is a bare JSON array per page (recorded from `eu.api.knowbe4.com`); the
//! vendor's documentation shows several list endpoints as one lone object, and one client's
//! test data wraps rows in `{"data": [...]}`. All three are accepted (see [`super::pager`]).
//! Every field is optional, unknown fields are ignored, numbers may be text, ids may be
//! numbers or text. Units are the vendor's: a user's `phish_prone_percentage` is a percent, a
//! security test's is a fraction (the conversion to ratios happens in [`super::metrics`]).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use crate::sources::lenient;

/// A row type read from a list page, and its identity (to drop the duplicates that shifting
/// pages produce); `None` when the row is unusable.
pub(crate) trait Row: serde::de::DeserializeOwned + Send + Sync + 'static {
    fn key(&self) -> Option<Cow<'_, str>>;
}

/// `GET /v1/account`: one object.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub(crate) struct Account {
    /// Licensed seats; absent for trial accounts. The daily quota is 2,000 plus these.
    #[serde(default, deserialize_with = "lenient::number")]
    pub(crate) number_of_seats: Option<f64>,
    /// 1 (least risky) to 100; may be null.
    #[serde(default, deserialize_with = "lenient::number")]
    pub(crate) current_risk_score: Option<f64>,
}

impl Account {
    pub(crate) fn seats(&self) -> Option<f64> {
        self.number_of_seats.filter(|s| *s >= 0.0)
    }
}

/// `GET /v1/users?status=active`: one user.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub(crate) struct User {
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) id: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) email: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) department: Option<String>,
    /// A **percent** (0–100): 14.235 documented, 76 in the old samples.
    #[serde(default, deserialize_with = "lenient::number")]
    pub(crate) phish_prone_percentage: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub(crate) current_risk_score: Option<f64>,
    /// Ids of the groups the user is in.
    #[serde(default, deserialize_with = "ids")]
    pub(crate) groups: Vec<String>,
    /// `active` or `archived`; `None` when not sent.
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) status: Option<String>,
}

impl User {
    /// The user's phish-prone figure as a ratio 0..1 (the vendor sends a percent); `None` when
    /// not sent or outside 0–100.
    pub(crate) fn phish_prone_ratio(&self) -> Option<f64> {
        self.phish_prone_percentage
            .filter(|p| (0.0..=100.0).contains(p))
            .map(|p| p / 100.0)
    }
}

/// Users and groups are asked for `status=active`; archived ones are left out even if the
/// server ignores that. No status is active.
pub(crate) fn is_active(status: &Option<String>) -> bool {
    status
        .as_deref()
        .is_none_or(|s| s.trim().eq_ignore_ascii_case("active"))
}

/// `GET /v1/groups?status=active`: one group.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub(crate) struct Group {
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) id: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) name: Option<String>,
    /// Absent in the vendor's older samples.
    #[serde(default, deserialize_with = "lenient::number")]
    pub(crate) current_risk_score: Option<f64>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) status: Option<String>,
}

/// `GET /v1/training/enrollments`: one enrollment, kept compact (tens of thousands per poll).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub(crate) struct Enrollment {
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) enrollment_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) module_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) campaign_name: Option<String>,
    /// Only with `include_campaign_id=true`.
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) campaign_id: Option<String>,
    /// `Not Started`, `In Progress`, `Completed`, `Passed`, `Past Due`.
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) status: Option<String>,
    #[serde(default)]
    pub(crate) user: Option<EnrollmentUser>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub(crate) struct EnrollmentUser {
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) id: Option<String>,
}

/// A vendor status as a label value: lower case, runs of other characters as one `_`
/// (`Past Due` → `past_due`); unknown statuses keep their own value, never dropped; none →
/// `unknown`.
pub(crate) fn status_label(status: Option<&str>) -> String {
    let mut out = String::new();
    for c in status.unwrap_or("").trim().chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    let out = out.trim_end_matches('_');
    if out.is_empty() { "unknown" } else { out }.to_string()
}

/// `GET /v1/training/campaigns?exclude_percentages=true`: one campaign (only what we count).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub(crate) struct TrainingCampaign {
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) campaign_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) status: Option<String>,
}

/// A group a campaign or test targets: `group_id: 0` is "All Users", a pseudo-group.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub(crate) struct TargetGroup {
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) group_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) name: Option<String>,
}

/// `GET /v1/phishing/security_tests`: one phishing security test (PST) with its counts. A
/// count sent as null is "not reported" (a test in status `Error` has `scheduled_count: null`),
/// not 0.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub(crate) struct SecurityTest {
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) pst_id: Option<String>,
    /// Repeats the campaign's name for recurring tests: not unique.
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) name: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) status: Option<String>,
    #[serde(default, deserialize_with = "lenient::label")]
    pub(crate) started_at: Option<String>,
    #[serde(default, deserialize_with = "target_groups")]
    pub(crate) groups: Vec<TargetGroup>,
    /// A **fraction** (0–1, three decimals): 0.277 for 173 failures of 625 delivered.
    #[serde(default, deserialize_with = "lenient::number")]
    pub(crate) phish_prone_percentage: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    scheduled_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    delivered_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    opened_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    clicked_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    replied_count: Option<f64>,
    /// `attachment_open_count` (sic: "open", not "opened").
    #[serde(default, deserialize_with = "lenient::number")]
    attachment_open_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    macro_enabled_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    data_entered_count: Option<f64>,
    /// Absent on the 2021 wire, present since 2022.
    #[serde(default, deserialize_with = "lenient::number")]
    qr_code_scanned_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    reported_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    bounced_count: Option<f64>,
}

impl SecurityTest {
    /// `(outcome label, count)` for every count the vendor reported (null counts left out).
    pub(crate) fn outcomes(&self) -> Vec<(&'static str, f64)> {
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
    pub(crate) fn phish_prone_ratio(&self) -> Option<f64> {
        self.phish_prone_percentage
            .filter(|p| (0.0..=1.0).contains(p))
    }
}

/// A list whose elements `read` cannot take are skipped, not fatal to the row.
fn each<'de, D: serde::Deserializer<'de>, T>(
    d: D,
    read: fn(Value) -> Option<T>,
) -> Result<Vec<T>, D::Error> {
    let v: Option<Vec<Value>> = Option::deserialize(d)?;
    Ok(v.unwrap_or_default().into_iter().filter_map(read).collect())
}

/// A list of ids given as numbers or text; nulls and other values are skipped.
fn ids<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    each(d, |v| match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(lenient::cut(s.trim().to_string())),
        _ => None,
    })
}

/// Target groups; an element that is not a group object is skipped.
fn target_groups<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<TargetGroup>, D::Error> {
    each(d, |g| serde_json::from_value(g).ok())
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
    /// The vendor's enrollment ids repeat across campaigns (the older samples have one id
    /// three times): the id with the user, the campaign and the module tell an enrollment.
    fn key(&self) -> Option<Cow<'_, str>> {
        let user = self.user.as_ref().and_then(|u| u.id.as_deref());
        let campaign = self.campaign_id.as_ref().or(self.campaign_name.as_ref());
        let parts = [
            user,
            campaign.map(String::as_str),
            self.module_name.as_deref(),
        ];
        let [u, c, m] = parts.map(Option::unwrap_or_default);
        Some(Cow::Owned(format!(
            "{}\u{1f}{u}\u{1f}{c}\u{1f}{m}",
            self.enrollment_id.as_ref()?
        )))
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
        assert!(is_active(&u.status));
        assert!(!is_active(&Some(" Archived".into())));
        let t: SecurityTest =
            serde_json::from_str(r#"{"pst_id":1,"groups":[{"group_id":0,"name":"All Users"},3],"scheduled_count":null,"clicked_count":"4"}"#)
                .unwrap();
        assert_eq!(t.groups.len(), 1);
        assert_eq!(t.outcomes(), vec![("clicked", 4.0)]);
    }

    #[test]
    fn an_enrollment_is_told_by_its_id_user_campaign_and_module() {
        let e = |json: &str| serde_json::from_str::<Enrollment>(json).unwrap();
        let a = e(r#"{"enrollment_id":1,"user":{"id":7},"campaign_id":3,"module_name":"M"}"#);
        assert_eq!(a.key().unwrap(), "1\u{1f}7\u{1f}3\u{1f}M");
        let b = e(r#"{"enrollment_id":1,"campaign_name":"C"}"#);
        assert_eq!(b.key().unwrap(), "1\u{1f}\u{1f}C\u{1f}");
        assert_eq!(e(r#"{"campaign_name":"C"}"#).key(), None);
    }
}
