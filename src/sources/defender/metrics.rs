//! Defender rows turned into the contract's metrics. Vendor strings (statuses, event names,
//! training names) are label values as sent; a count the vendor sends as 0 is published as 0,
//! one it sends as null is left out. Figures about users count distinct users (by Entra user
//! id, else e-mail), never rows.

use std::collections::{BTreeMap, HashSet};

use super::models::{
    GraphRow, Overview, RepeatOffender, Simulation, SimulationCoverage, TrainingCoverage,
};
use crate::config::MetricsConfig;
use crate::model::SourceKey;
use crate::snapshot::MetricsBuilder;
use crate::sources::aggregate::ByLabel;
use crate::sources::cap_users;
use crate::stats::ApiStats;

/// How a report function's rows become a section.
pub(crate) type Render<T> = fn(&mut MetricsBuilder, &SourceKey, &[T], &MetricsConfig, &ApiStats);

/// The simulations whose reports are read: launched (not a draft or scheduled, with a launch
/// date) at or after `since` (Unix seconds), the newest `max` of them (by launch, then id), so a
/// tenant's automations cannot grow the series or the requests without bound.
pub(crate) fn reported(sims: &[Simulation], since: i64, max: usize) -> Vec<&Simulation> {
    let mut v: Vec<(i64, &Simulation)> = sims
        .iter()
        .filter(|s| !s.not_launched() && s.id.is_some())
        .filter_map(|s| Some((s.launched_at()?, s)))
        .filter(|(t, _)| *t >= since)
        .collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    v.truncate(max);
    v.into_iter().map(|(_, s)| s).collect()
}

/// The `simulations` section: every simulation by status, and the reports of the launched
/// ones (each with its overview).
pub(crate) fn simulations(
    b: &mut MetricsBuilder,
    account: &str,
    all: &[Simulation],
    reports: &[(&Simulation, Overview)],
) {
    let mut by_status: BTreeMap<&str, f64> = BTreeMap::new();
    for s in all {
        *by_status
            .entry(s.status.as_deref().unwrap_or("unknown"))
            .or_default() += 1.0;
    }
    for (status, n) in by_status {
        b.gauge(
            "awareness_defender_simulations",
            "Attack simulations of the tenant by status, as Graph sends it (running, succeeded, \
             scheduled, draft, …; older tenants: inProgress, completed)",
            &[("account", account), ("status", status)],
            n,
        );
    }
    for (s, o) in reports {
        let id = s.id.as_deref().unwrap_or("");
        let name = s.display_name.as_deref().unwrap_or("");
        let l = [
            ("account", account),
            ("simulation_id", id),
            ("simulation", name),
        ];
        if let Some(t) = s.launched_at() {
            b.gauge(
                "awareness_defender_simulation_launch_timestamp_seconds",
                "When the simulation was launched (launchDateTime), Unix seconds",
                &l,
                t as f64,
            );
        }
        if let Some(n) = o.resolved_targets_count.filter(|n| *n >= 0.0) {
            b.gauge(
                "awareness_defender_simulation_targeted_users",
                "Users the simulation targeted (report overview resolvedTargetsCount)",
                &l,
                n,
            );
        }
        let events = o.simulation_events_content.as_ref();
        for e in events.map(|e| e.events.as_slice()).unwrap_or_default() {
            let (Some(event), Some(n)) = (e.event_name.as_deref(), e.count) else {
                continue;
            };
            b.gauge(
                "awareness_defender_simulation_events",
                "Simulation events by name as Graph sends it (SuccessfullyDeliveredEmail, \
                 EmailLinkClicked, CredSupplied, ReportedEmail, …): users with that event",
                &[
                    ("account", account),
                    ("simulation_id", id),
                    ("simulation", name),
                    ("event", event),
                ],
                n,
            );
        }
        let targeted = o.resolved_targets_count.is_some_and(|n| n > 0.0);
        let rate = events.and_then(|e| e.compromised_rate);
        if let Some(r) = rate.filter(|r| targeted && (0.0..=100.0).contains(r)) {
            b.gauge(
                "awareness_defender_simulation_compromised_ratio",
                "Share (0..1) of the targeted users who were compromised (compromisedRate / 100)",
                &l,
                r / 100.0,
            );
        }
        let trainings = o.training_events_content.as_ref();
        for t in trainings
            .map(|t| t.assigned_trainings_infos.as_slice())
            .unwrap_or_default()
        {
            let training = t.display_name.as_deref().unwrap_or("");
            for (state, n) in [
                ("assigned", t.assigned_user_count),
                ("completed", t.completed_user_count),
            ] {
                let Some(n) = n.filter(|n| *n >= 0.0) else {
                    continue;
                };
                b.gauge(
                    "awareness_defender_simulation_training_users",
                    "Users the simulation assigned a training to (state assigned) and who \
                     completed it (state completed)",
                    &[
                        ("account", account),
                        ("simulation_id", id),
                        ("simulation", name),
                        ("training", training),
                        ("state", state),
                    ],
                    n,
                );
            }
        }
    }
}

/// The `training-coverage` section: assignments by training and status, and the distinct
/// users with an overdue one. Training names beyond `metrics.max_label_values` (by
/// assignments) are summed into `__other__`, as every vendor-controlled label is.
pub(crate) fn training(
    b: &mut MetricsBuilder,
    key: &SourceKey,
    rows: &[TrainingCoverage],
    m: &MetricsConfig,
    stats: &ApiStats,
) {
    let account = key.account.as_str();
    let mut by_training: ByLabel<BTreeMap<String, f64>> = ByLabel::default();
    let mut overdue: HashSet<&str> = HashSet::new();
    for row in rows {
        for t in &row.user_trainings {
            let name = t.display_name.as_deref().filter(|n| !n.is_empty());
            let status = t.training_status.as_deref().unwrap_or("unknown");
            *by_training.row(name).entry(status.to_string()).or_default() += 1.0;
            if t.is_overdue() {
                overdue.extend(row.key());
            }
        }
    }
    for (training, statuses) in by_training.finish(key, "training", m.max_label_values, stats) {
        for (status, n) in statuses {
            b.gauge(
                "awareness_defender_training_assignments",
                "Training assignments by training and status as Graph sends it (assigned, inProgress, completed, overdue, …)",
                &[("account", account), ("training", &training), ("status", &status)],
                n,
            );
        }
    }
    b.gauge(
        "awareness_defender_users_overdue",
        "Users with at least one training whose status is overdue",
        &[("account", account)],
        overdue.len() as f64,
    );
}

/// The `simulation-coverage` section: the tenant's distinct users, those ever simulated and
/// ever compromised, and per user (with `per_user`) their compromises.
pub(crate) fn simulation_coverage(
    b: &mut MetricsBuilder,
    key: &SourceKey,
    rows: &[SimulationCoverage],
    m: &MetricsConfig,
    _: &ApiStats,
) {
    let account = key.account.as_str();
    let positive = |v: Option<f64>| v.is_some_and(|v| v > 0.0);
    let distinct = |pick: &dyn Fn(&SimulationCoverage) -> bool| {
        rows.iter()
            .filter(|r| pick(r))
            .filter_map(|r| r.key())
            .collect::<HashSet<&str>>()
            .len() as f64
    };
    b.gauge(
        "awareness_defender_users",
        "Users the simulation user coverage report lists: the tenant's users, simulated or not",
        &[("account", account)],
        distinct(&|_| true),
    );
    b.gauge(
        "awareness_defender_users_simulated",
        "Users included in at least one attack simulation (simulation user coverage)",
        &[("account", account)],
        distinct(&|r| positive(r.simulation_count)),
    );
    b.gauge(
        "awareness_defender_users_compromised",
        "Users compromised in at least one attack simulation (simulation user coverage)",
        &[("account", account)],
        distinct(&|r| positive(r.compromised_count)),
    );
    if m.per_user {
        let per_user = rows.iter().filter_map(|r| {
            let email = r.attack_simulation_user.as_ref()?.label()?;
            Some((email.to_string(), r.compromised_count?))
        });
        for (email, n) in cap_users(key, per_user.collect(), m.max_users) {
            b.gauge(
                "awareness_defender_user_compromised",
                "Compromising actions of the user across attack simulations (compromisedCount)",
                &[("account", account), ("email", email.as_str())],
                n,
            );
        }
    }
}

/// The `repeat-offenders` section: distinct users who fell for more than one simulation, and per
/// user (with `per_user`) how often.
pub(crate) fn repeat_offenders(
    b: &mut MetricsBuilder,
    key: &SourceKey,
    rows: &[RepeatOffender],
    m: &MetricsConfig,
    _: &ApiStats,
) {
    let account = key.account.as_str();
    let users: HashSet<&str> = rows.iter().filter_map(|r| r.key()).collect();
    b.gauge(
        "awareness_defender_repeat_offenders",
        "Users who yielded to attack simulations more than once (repeat offenders report)",
        &[("account", account)],
        users.len() as f64,
    );
    if m.per_user {
        let per_user = rows.iter().filter_map(|r| {
            let email = r.attack_simulation_user.as_ref()?.label()?;
            Some((email.to_string(), r.repeat_offence_count?))
        });
        for (email, n) in cap_users(key, per_user.collect(), m.max_users) {
            b.gauge(
                "awareness_defender_user_repeat_offences",
                "Times the user yielded to attack simulations (repeatOffenceCount)",
                &[("account", account), ("email", email.as_str())],
                n,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Platform;

    fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
        let path = format!(
            "{}/tests/fixtures/defender/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// The `value` rows of a documented collection.
    fn value<T: serde::de::DeserializeOwned>(name: &str) -> Vec<T> {
        let page: serde_json::Value = fixture(name);
        serde_json::from_value(page["value"].clone()).unwrap()
    }

    fn text(b: MetricsBuilder) -> String {
        let r = b.finish();
        crate::snapshot::try_merge([&r]).unwrap()
    }

    fn key() -> SourceKey {
        SourceKey::new(Platform::new("defender"), "acme")
    }

    fn per_user() -> MetricsConfig {
        MetricsConfig {
            per_user: true,
            ..MetricsConfig::default()
        }
    }

    fn sim(id: &str, status: &str, launch: Option<&str>) -> Simulation {
        Simulation {
            id: Some(id.into()),
            display_name: Some(format!("Sim {id}")),
            status: Some(status.into()),
            launch_date_time: launch.map(Into::into),
        }
    }

    #[test]
    fn the_documented_overview_becomes_series_with_a_ratio_from_its_percent() {
        let sims: Vec<Simulation> = value("doc_list_simulations.json");
        let overview: Overview = fixture("doc_report_overview.json");
        let s = sim("f1", "succeeded", Some("2021-01-01T02:01:01.01Z"));
        let mut b = MetricsBuilder::new();
        simulations(&mut b, "acme", &sims, &[(&s, overview)]);
        let t = text(b);
        let l = r#"account="acme",simulation_id="f1",simulation="Sim f1""#;
        for line in [
            r#"awareness_defender_simulations{account="acme",status="scheduled"} 1"#.to_string(),
            format!("awareness_defender_simulation_targeted_users{{{l}}} 1"),
            format!("awareness_defender_simulation_launch_timestamp_seconds{{{l}}} 1609466461"),
            format!("awareness_defender_simulation_compromised_ratio{{{l}}} 1.0"),
            format!(
                r#"awareness_defender_simulation_events{{{l},event="SuccessfullyDeliveredMail"}} 1"#
            ),
            format!(r#"awareness_defender_simulation_events{{{l},event="ReportedEmail"}} 0"#),
            format!(r#"awareness_defender_simulation_events{{{l},event="EmailLinkClicked"}} 1"#),
            format!(
                r#"awareness_defender_simulation_training_users{{{l},training="Sample Training",state="assigned"}} 1"#
            ),
            format!(
                r#"awareness_defender_simulation_training_users{{{l},training="Sample Training",state="completed"}} 0"#
            ),
        ] {
            assert!(
                t.lines().any(|x| x.starts_with(&line)),
                "{line} missing in\n{t}"
            );
        }
    }

    #[test]
    fn an_empty_or_untargeted_report_has_no_ratio_and_no_simulations_is_zero_series() {
        let s = sim("s", "running", Some("2025-01-01T00:00:00Z"));
        let empty: Overview = serde_json::from_str(
            r#"{"resolvedTargetsCount":0,"simulationEventsContent":{"compromisedRate":0.0,"events":[]}}"#,
        )
        .unwrap();
        let mut b = MetricsBuilder::new();
        simulations(&mut b, "acme", std::slice::from_ref(&s), &[(&s, empty)]);
        let t = text(b);
        assert!(
            t.contains("awareness_defender_simulation_targeted_users{"),
            "{t}"
        );
        assert!(!t.contains("compromised_ratio{"), "{t}");
        let mut b = MetricsBuilder::new();
        simulations(&mut b, "acme", &[], &[]);
        assert!(!text(b).contains("awareness_defender_simulations{"));
    }

    #[test]
    fn only_launched_simulations_within_the_lookback_are_reported_newest_first() {
        let sims = [
            sim("old", "succeeded", Some("2024-01-01T00:00:00Z")),
            sim("a", "succeeded", Some("2025-03-01T00:00:00Z")),
            sim("b", "inProgress", Some("2025-04-01T00:00:00.5Z")),
            sim("c", "running", Some("2025-05-01T00:00:00Z")),
            sim("draft", "draft", None),
            sim("later", "scheduled", Some("2025-06-01T00:00:00Z")),
            sim("nodate", "succeeded", None),
        ];
        let since = 1_735_689_600; // 2025-01-01
        let ids = |v: Vec<&Simulation>| -> Vec<String> {
            v.iter().map(|s| s.id.clone().unwrap()).collect()
        };
        assert_eq!(ids(reported(&sims, since, 10)), ["c", "b", "a"]);
        assert_eq!(ids(reported(&sims, since, 2)), ["c", "b"]);
    }

    #[test]
    fn training_coverage_counts_assignments_as_sent_and_overdue_users_once() {
        let mut rows: Vec<TrainingCoverage> = value("doc_training_user_coverage.json");
        rows.extend(
            serde_json::from_str::<Vec<TrainingCoverage>>(
                r#"[{"attackSimulationUser":{"userId":"u2","email":"b@x"},"userTrainings":[
                      {"displayName":"Phishing","trainingStatus":"overdue"},
                      {"displayName":"Malware","trainingStatus":"overdue"},
                      {"displayName":"Malware","trainingStatus":"inProgress"}]},
                    {"attackSimulationUser":{"userId":"u3"},"userTrainings":[
                      {"displayName":"Phishing","trainingStatus":"someNewStatus"}]}]"#,
            )
            .unwrap(),
        );
        let mut b = MetricsBuilder::new();
        training(
            &mut b,
            &key(),
            &rows,
            &MetricsConfig::default(),
            &ApiStats::default(),
        );
        let t = text(b);
        for line in [
            r#"awareness_defender_training_assignments{account="acme",training="Phishing",status="assigned"} 1"#,
            r#"awareness_defender_training_assignments{account="acme",training="",status="completed"} 1"#,
            r#"awareness_defender_training_assignments{account="acme",training="Phishing",status="overdue"} 1"#,
            r#"awareness_defender_training_assignments{account="acme",training="Malware",status="inProgress"} 1"#,
            r#"awareness_defender_training_assignments{account="acme",training="Phishing",status="someNewStatus"} 1"#,
            r#"awareness_defender_users_overdue{account="acme"} 1"#,
        ] {
            assert!(
                t.lines().any(|x| x.starts_with(line)),
                "{line} missing in\n{t}"
            );
        }
        let mut b = MetricsBuilder::new();
        let one = MetricsConfig {
            max_label_values: 1,
            ..MetricsConfig::default()
        };
        let stats = ApiStats::default();
        training(&mut b, &key(), &rows, &one, &stats);
        assert_eq!(stats.snapshot().labels_folded.get("training"), Some(&1));
        let t = text(b);
        assert!(
            t.contains(r#"training="__other__",status="inProgress"} 1"#),
            "{t}"
        );
        assert!(
            t.contains(r#"training="",status="completed"} 1"#),
            "no name: never folded"
        );
        assert!(
            t.contains(r#"training="Phishing",status="overdue"} 1"#),
            "{t}"
        );
    }

    #[test]
    fn coverage_and_offenders_count_distinct_users_and_label_by_email_or_id() {
        let mut rows: Vec<SimulationCoverage> = value("doc_simulation_user_coverage.json");
        rows.extend(
            serde_json::from_str::<Vec<SimulationCoverage>>(
                r#"[{"simulationCount":2,"compromisedCount":1,"attackSimulationUser":{"userId":"u9","email":""}},
                    {"simulationCount":2,"compromisedCount":1,"attackSimulationUser":{"userId":"u9","email":""}}]"#,
            )
            .unwrap(),
        );
        let mut b = MetricsBuilder::new();
        simulation_coverage(&mut b, &key(), &rows, &per_user(), &ApiStats::default());
        let t = text(b);
        for line in [
            r#"awareness_defender_users{account="acme"} 3"#,
            r#"awareness_defender_users_simulated{account="acme"} 2"#,
            r#"awareness_defender_users_compromised{account="acme"} 1"#,
            r#"awareness_defender_user_compromised{account="acme",email="reed@contoso.com"} 0"#,
            r#"awareness_defender_user_compromised{account="acme",email="u9"} 1"#,
        ] {
            assert!(
                t.lines().any(|x| x.starts_with(line)),
                "{line} missing in\n{t}"
            );
        }
        assert!(!t.contains("e911a813"), "a null count has no series\n{t}");

        let offenders: Vec<RepeatOffender> = value("doc_repeat_offenders.json");
        let mut b = MetricsBuilder::new();
        repeat_offenders(
            &mut b,
            &key(),
            &offenders,
            &MetricsConfig::default(),
            &ApiStats::default(),
        );
        let t = text(b);
        assert!(
            t.contains(r#"awareness_defender_repeat_offenders{account="acme"} 2"#),
            "{t}"
        );
        assert!(
            !t.contains("user_repeat_offences"),
            "per-user series are off by default"
        );
        let mut b = MetricsBuilder::new();
        repeat_offenders(
            &mut b,
            &key(),
            &offenders,
            &per_user(),
            &ApiStats::default(),
        );
        let t = text(b);
        // Two users share the documented e-mail: one series, as prometheus would have it.
        assert!(t.contains(r#"awareness_defender_user_repeat_offences{account="acme",email="reed@contoso.com"}"#), "{t}");
    }
}
