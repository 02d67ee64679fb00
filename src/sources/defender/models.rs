//! Microsoft Graph attack simulation rows as the documentation shows them, read leniently.
//!
//! Every field is optional and unknown fields are ignored (Graph adds properties and
//! `@odata.type` annotations freely); counts may be null (the coverage reports send a user with
//! every count null); nested lists skip an element that is not an object rather than losing the
//! row. Units are the vendor's: `compromisedRate` is a **percent** (100.0 for one compromised
//! user of one). Vendor strings (statuses, event names, training names) are kept as sent. The
//! example bodies and their sources are in tests/fixtures/defender/.

use serde::{Deserialize, Deserializer};

use crate::sources::lenient;

/// `GET /v1.0/security/attackSimulation/simulations`: one simulation (only what we use).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Simulation {
    pub id: Option<String>,
    pub display_name: Option<String>,
    /// `running`, `succeeded`, `scheduled`, `draft`, … and on older tenants `inProgress`,
    /// `completed`: a label value as sent.
    pub status: Option<String>,
    pub launch_date_time: Option<String>,
}

impl Simulation {
    /// Drafts and scheduled simulations have no report worth a request (the product's FAQ: a
    /// scheduled simulation's reports are "mostly empty").
    pub(crate) fn not_launched(&self) -> bool {
        self.status
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("draft") || s.eq_ignore_ascii_case("scheduled"))
    }

    /// The launch time as Unix seconds; `None` when absent or not a timestamp.
    pub(crate) fn launched_at(&self) -> Option<i64> {
        let t = self.launch_date_time.as_deref()?.trim();
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.timestamp())
    }
}

/// `GET …/simulations/{id}/report/overview`: one object.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Overview {
    #[serde(default, deserialize_with = "lenient::number")]
    pub resolved_targets_count: Option<f64>,
    #[serde(default, deserialize_with = "object")]
    pub simulation_events_content: Option<EventsContent>,
    #[serde(default, deserialize_with = "object")]
    pub training_events_content: Option<TrainingEventsContent>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventsContent {
    /// A **percent** (0–100) of the targeted users.
    #[serde(default, deserialize_with = "lenient::number")]
    pub compromised_rate: Option<f64>,
    #[serde(default = "Vec::new", deserialize_with = "list")]
    pub events: Vec<Event>,
}

/// `{"eventName": "EmailLinkClicked", "count": 1}`: free text, spelled differently even within
/// Microsoft's docs (`SuccessfullyDeliveredMail` / `…Email`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Event {
    pub event_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub count: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TrainingEventsContent {
    #[serde(default = "Vec::new", deserialize_with = "list")]
    pub assigned_trainings_infos: Vec<AssignedTrainings>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AssignedTrainings {
    pub display_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub assigned_user_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub completed_user_count: Option<f64>,
}

/// The `attackSimulationUser` of every report row. Two users can share a display name and an
/// e-mail (the repeat-offenders example): `userId` tells them apart.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SimulationUser {
    pub user_id: Option<String>,
    pub email: Option<String>,
}

impl SimulationUser {
    /// What identifies the user: the Entra object id, else the e-mail.
    pub(crate) fn key(&self) -> Option<&str> {
        non_empty(self.user_id.as_deref()).or_else(|| non_empty(self.email.as_deref()))
    }

    /// The per-user series' `email` label: the e-mail, or the user id where it is missing.
    pub(crate) fn label(&self) -> Option<&str> {
        non_empty(self.email.as_deref()).or_else(|| non_empty(self.user_id.as_deref()))
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// `getAttackSimulationRepeatOffenders`: one user.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RepeatOffender {
    #[serde(default, deserialize_with = "lenient::number")]
    pub repeat_offence_count: Option<f64>,
    #[serde(default, deserialize_with = "object")]
    pub attack_simulation_user: Option<SimulationUser>,
}

/// `getAttackSimulationSimulationUserCoverage`: one user; every count may be null.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SimulationCoverage {
    #[serde(default, deserialize_with = "lenient::number")]
    pub simulation_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub click_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::number")]
    pub compromised_count: Option<f64>,
    #[serde(default, deserialize_with = "object")]
    pub attack_simulation_user: Option<SimulationUser>,
}

/// `getAttackSimulationTrainingUserCoverage`: one user and the trainings assigned to them.
/// Deleted users are listed too (with `displayName` and `email` null); nothing marks them.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TrainingCoverage {
    #[serde(default = "Vec::new", deserialize_with = "list")]
    pub user_trainings: Vec<UserTraining>,
    #[serde(default, deserialize_with = "object")]
    pub attack_simulation_user: Option<SimulationUser>,
}

/// One assigned training: `trainingStatus` is `assigned`, `inProgress`, `completed`,
/// `overdue`, … as sent; `displayName` may be `""`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserTraining {
    pub display_name: Option<String>,
    pub training_status: Option<String>,
}

impl UserTraining {
    pub(crate) fn is_overdue(&self) -> bool {
        self.training_status
            .as_deref()
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("overdue"))
    }
}

/// A row of a Graph collection and what identifies it (to drop the repeats of shifting pages
/// and to count users once); a row without one is skipped and counted.
pub(crate) trait GraphRow: serde::de::DeserializeOwned + Send + Sync + 'static {
    fn key(&self) -> Option<&str>;
}

impl GraphRow for Simulation {
    fn key(&self) -> Option<&str> {
        non_empty(self.id.as_deref())
    }
}

/// The report rows are users: the `attackSimulationUser`'s id, else its e-mail.
macro_rules! user_rows {
    ($($t:ty),*) => {$(
        impl GraphRow for $t {
            fn key(&self) -> Option<&str> {
                self.attack_simulation_user.as_ref()?.key()
            }
        }
    )*};
}

user_rows!(RepeatOffender, SimulationCoverage, TrainingCoverage);

/// A list whose elements that do not read as `T` are skipped (not fatal to the row); null or
/// absent is empty.
fn list<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    let v: Option<Vec<serde_json::Value>> = Option::deserialize(d)?;
    Ok(v.unwrap_or_default()
        .into_iter()
        .filter_map(|e| serde_json::from_value(e).ok())
        .collect())
}

/// A nested object that is `None` when null, absent or not readable as `T`.
fn object<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    let v: Option<serde_json::Value> = Option::deserialize(d)?;
    Ok(v.and_then(|v| serde_json::from_value(v).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/defender/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap()
    }

    /// A documented collection's `value` and `@odata.nextLink`.
    #[derive(Deserialize)]
    #[serde(bound = "T: serde::de::DeserializeOwned")]
    struct Page<T> {
        value: Vec<T>,
        #[serde(rename = "@odata.nextLink")]
        next_link: Option<String>,
    }

    #[test]
    fn the_documented_simulation_list_reads() {
        let page: Page<Simulation> =
            serde_json::from_str(&fixture("doc_list_simulations.json")).unwrap();
        assert_eq!(page.next_link, None);
        let s = &page.value[0];
        assert_eq!(
            s.id.as_deref(),
            Some("f1b13829-3829-f1b1-2938-b1f12938b1f1")
        );
        assert_eq!(s.display_name.as_deref(), Some("Sample Simulation"));
        assert_eq!(s.status.as_deref(), Some("scheduled"));
        assert!(s.not_launched());
        // 2021-01-01T02:01:01.01Z
        assert_eq!(s.launched_at(), Some(1_609_466_461));
    }

    #[test]
    fn the_documented_overview_reads_with_its_percent() {
        let o: Overview = serde_json::from_str(&fixture("doc_report_overview.json")).unwrap();
        assert_eq!(o.resolved_targets_count, Some(1.0));
        let events = o.simulation_events_content.unwrap();
        assert_eq!(
            events.compromised_rate,
            Some(100.0),
            "a percent, not a ratio"
        );
        let names: Vec<(&str, f64)> = events
            .events
            .iter()
            .map(|e| (e.event_name.as_deref().unwrap(), e.count.unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                ("SuccessfullyDeliveredMail", 1.0),
                ("ReportedEmail", 0.0),
                ("EmailLinkClicked", 1.0)
            ]
        );
        let t = &o.training_events_content.unwrap().assigned_trainings_infos[0];
        assert_eq!(t.display_name.as_deref(), Some("Sample Training"));
        assert_eq!(
            (t.assigned_user_count, t.completed_user_count),
            (Some(1.0), Some(0.0))
        );
    }

    #[test]
    fn the_documented_reports_read_with_their_next_links_and_nulls() {
        let r: Page<RepeatOffender> =
            serde_json::from_str(&fixture("doc_repeat_offenders.json")).unwrap();
        assert_eq!(
            r.next_link.as_deref(),
            Some("https://graph.microsoft.com/v1.0/reports/security/getAttackSimulationRepeatOffenders?$skiptoken=+RID%3")
        );
        let keys: Vec<&str> = r.value.iter().filter_map(GraphRow::key).collect();
        assert_eq!(
            keys,
            [
                "6fcdab00-385b-46f2-a329-b843b49e9147",
                "478a22cd-aecc-41df-b995-88c8de17aaf5"
            ],
            "same name and e-mail, two users"
        );
        assert_eq!(r.value[1].repeat_offence_count, Some(638.0));

        let c: Page<SimulationCoverage> =
            serde_json::from_str(&fixture("doc_simulation_user_coverage.json")).unwrap();
        assert!(c.next_link.unwrap().contains("$skiptoken="));
        assert_eq!(c.value[0].simulation_count, Some(1063.0));
        let nulls = &c.value[1];
        assert_eq!(
            (
                nulls.simulation_count,
                nulls.click_count,
                nulls.compromised_count
            ),
            (None, None, None)
        );
        let user = nulls.attack_simulation_user.as_ref().unwrap();
        assert_eq!(
            user.label(),
            Some("e911a813-d360-4b1a-b3df-375dde934f2b"),
            "email is \"\""
        );

        let t: Page<TrainingCoverage> =
            serde_json::from_str(&fixture("doc_training_user_coverage.json")).unwrap();
        let row = &t.value[0];
        assert_eq!(row.key(), Some("c5e40ca7-4c09-4801-a140-5ef733d1de0e"));
        let statuses: Vec<(&str, &str)> = row
            .user_trainings
            .iter()
            .map(|u| {
                (
                    u.display_name.as_deref().unwrap(),
                    u.training_status.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(statuses, [("Phishing", "assigned"), ("", "completed")]);
        assert!(!row.user_trainings.iter().any(UserTraining::is_overdue));
    }

    #[test]
    fn odd_elements_do_not_sink_a_row_or_a_page() {
        let o: Overview = serde_json::from_str(
            r#"{"resolvedTargetsCount":"12","simulationEventsContent":{"compromisedRate":null,
                "events":[{"eventName":"CredSupplied","count":"3"},7,null,{"count":2}]},
                "trainingEventsContent":"n/a","extra":[1]}"#,
        )
        .unwrap();
        assert_eq!(o.resolved_targets_count, Some(12.0));
        let e = o.simulation_events_content.unwrap();
        assert_eq!(e.compromised_rate, None);
        assert_eq!(e.events.len(), 2);
        assert_eq!(e.events[0].count, Some(3.0));
        assert_eq!(o.training_events_content, None);
        let t: TrainingCoverage = serde_json::from_str(r#"{"userTrainings":null}"#).unwrap();
        assert!(t.user_trainings.is_empty());
        let s: Simulation =
            serde_json::from_str(r#"{"id":"1","status":"inProgress","launchDateTime":"soon"}"#)
                .unwrap();
        assert_eq!((s.id.as_deref(), s.launched_at()), (Some("1"), None));
        // Graph's strings are strings: a number there makes the row malformed (skipped, counted).
        assert!(serde_json::from_str::<Simulation>(r#"{"id":1}"#).is_err());
        assert!(!s.not_launched(), "an older status is a launched one");
        let t: UserTraining = serde_json::from_str(r#"{"trainingStatus":" Overdue "}"#).unwrap();
        assert!(t.is_overdue());
    }
}
