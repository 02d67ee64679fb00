//! The Proofpoint source against the simulated Results API: every figure checked against what
//! is computed here from the simulator's rows (distinct users by e-mail where the contract says
//! so, rows elsewhere), paging by the vendor's links, the empty budget, refusals.

use crate::common;
use crate::common::harness::Counted as _;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use awareness_exporter::model::{FailureReason, PollError, Retry};
use awareness_sim::proofpoint::{self, ProofpointOptions, ProofpointTenant};
use awareness_sim::{Fault, Population, Tenant};
use common::*;
use serde_json::Value;

const SEED: u64 = 7;
const USERS: usize = 120;

/// A tenant of `USERS` people whose pages hold at most 37 rows, whatever is asked.
async fn tenant(options: ProofpointOptions) -> (Tenant, ProofpointTenant) {
    let population = Arc::new(Population::generate(SEED, USERS));
    let rows = ProofpointTenant::from_population(&population, options.seed);
    let options = ProofpointOptions {
        max_page_size: 37,
        ..options
    };
    let tenant = proofpoint::tenant(population, options, "acme")
        .await
        .unwrap();
    (tenant, rows)
}

const PER_USER: &str = "[metrics]\nper_user = true\n";

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

fn email(row: &Value) -> String {
    text(&row["useremailaddress"]).to_lowercase()
}

fn department(row: &Value) -> String {
    row["usertags"]["Department"][0]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// The contract's figures, computed from the simulator's rows as the vendor would send them.
fn expected(t: &ProofpointTenant) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let acme = ("account", "acme");
    let mut add = |name: &str, labels: &[(&str, &str)], v: f64| {
        *out.entry(series(name, labels)).or_insert(0.0) += v;
    };
    for u in t.users.iter().filter(|u| u["useractiveflag"] == true) {
        add(
            "awareness_proofpoint_users",
            &[acme, ("department", &department(u))],
            1.0,
        );
    }
    // Phishing: distinct users per campaign and outcome.
    let mut campaigns: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for e in &t.phishing {
        let outcome = match text(&e["eventtype"]).as_str() {
            "Email View" => "viewed",
            "Email Click" => "clicked",
            "Data Submission" => "data_submitted",
            "Attachment Open" => "attachment_opened",
            "Reported" => "reported",
            "No Action" => "no_action",
            _ => "other",
        };
        let c = campaigns.entry(text(&e["campaignname"])).or_default();
        c.entry("sent".into()).or_default().insert(email(e));
        c.entry(outcome.into()).or_default().insert(email(e));
    }
    let mut failures: BTreeMap<String, f64> = BTreeMap::new();
    for (campaign, outcomes) in &campaigns {
        let l = |o: &'static str| [acme, ("campaign", campaign.as_str()), ("outcome", o)];
        for o in [
            "sent",
            "viewed",
            "clicked",
            "data_submitted",
            "attachment_opened",
            "reported",
            "no_action",
            "other",
        ] {
            let n = outcomes.get(o).map_or(0, BTreeSet::len) as f64;
            if o != "other" || n > 0.0 {
                add("awareness_proofpoint_phishing_recipients", &l(o), n);
            }
        }
        let failed: BTreeSet<&String> = ["clicked", "data_submitted", "attachment_opened"]
            .iter()
            .filter_map(|o| outcomes.get(*o))
            .flatten()
            .collect();
        for u in &outcomes["sent"] {
            *failures.entry(u.clone()).or_default() += if failed.contains(u) { 1.0 } else { 0.0 };
        }
        add(
            "awareness_proofpoint_phishing_failure_ratio",
            &[acme, ("campaign", campaign.as_str())],
            failed.len() as f64 / outcomes["sent"].len() as f64,
        );
    }
    for (u, n) in &failures {
        add(
            "awareness_proofpoint_user_phishing_failures",
            &[acme, ("email", u)],
            *n,
        );
    }
    // Reported e-mails: rows by type, platform notifications asked for.
    for t in [
        "simulated_phish",
        "potential_phish",
        "platform_notification",
    ] {
        add(
            "awareness_proofpoint_reported_emails",
            &[acme, ("email_type", t)],
            0.0,
        );
    }
    for r in &t.phishalarm {
        let kind = text(&r["emailtype"]).to_lowercase().replace(' ', "_");
        add(
            "awareness_proofpoint_reported_emails",
            &[acme, ("email_type", &kind)],
            1.0,
        );
    }
    // Enrollments: rows by assignment and status; users overdue by department.
    let statuses = [
        "not_started",
        "in_progress",
        "completed",
        "overdue_not_started",
        "overdue_in_progress",
    ];
    let mut overdue: BTreeMap<String, (String, bool, f64)> = BTreeMap::new();
    for e in &t.enrollments {
        let assignment = text(&e["assignmentname"]);
        for s in statuses {
            add(
                "awareness_proofpoint_enrollments",
                &[acme, ("assignment", &assignment), ("status", s)],
                0.0,
            );
        }
        let status = text(&e["module_attempt_status"])
            .to_lowercase()
            .replace(" - ", "_")
            .replace(' ', "_");
        add(
            "awareness_proofpoint_enrollments",
            &[acme, ("assignment", &assignment), ("status", &status)],
            1.0,
        );
        let u = overdue
            .entry(email(e))
            .or_insert((department(e), false, 0.0));
        if status.starts_with("overdue") {
            u.1 = true;
            u.2 += 1.0;
        }
    }
    for (u, (d, is_overdue, n)) in &overdue {
        let v = if *is_overdue { 1.0 } else { 0.0 };
        add(
            "awareness_proofpoint_users_overdue",
            &[acme, ("department", d)],
            v,
        );
        add(
            "awareness_proofpoint_user_enrollments_overdue",
            &[acme, ("email", u)],
            *n,
        );
    }
    // Answers: answered rows by assessment.
    let mut answers: BTreeMap<String, [f64; 2]> = BTreeMap::new();
    for a in &t.cyberstrength {
        let counts = answers.entry(text(&a["assessmentname"])).or_default();
        if !a["selectedanswer"].is_null() {
            counts[usize::from(a["correct"] != true)] += 1.0;
        }
    }
    for (assessment, [correct, incorrect]) in &answers {
        let l = [acme, ("assessment", assessment.as_str())];
        add(
            "awareness_proofpoint_assessment_answers",
            &[l[0], l[1], ("result", "correct")],
            *correct,
        );
        add(
            "awareness_proofpoint_assessment_answers",
            &[l[0], l[1], ("result", "incorrect")],
            *incorrect,
        );
        if correct + incorrect > 0.0 {
            add(
                "awareness_proofpoint_assessment_correct_ratio",
                &l,
                correct / (correct + incorrect),
            );
        }
    }
    out
}

#[tokio::test]
async fn the_reports_become_the_contracts_figures() {
    let (tenant, rows) = tenant(ProofpointOptions::default()).await;
    let polled = harness::poll_tenant(&tenant, PER_USER, "user_tag = \"Department\"\n").await;
    let got = samples(&polled.text());
    let want = expected(&rows);
    let got_proofpoint: BTreeMap<String, f64> = got
        .into_iter()
        .filter(|(k, _)| k.starts_with("awareness_proofpoint_"))
        .collect();
    assert_eq!(got_proofpoint.len(), want.len(), "the same series");
    for (k, v) in &want {
        let g = got_proofpoint
            .get(k)
            .unwrap_or_else(|| panic!("missing {k}"));
        assert!((g - v).abs() < 1e-9, "{k}: got {g}, want {v}");
    }
    // Every page was followed by its link: pages of 37 rows, whatever was asked.
    let pages = rows.phishing.len().div_ceil(37) as u64;
    assert_eq!(tenant.control().requests("/phishing"), pages);
}

#[tokio::test]
async fn without_a_user_tag_no_tags_are_asked_for_and_departments_are_empty() {
    let (tenant, _) = tenant(ProofpointOptions::default()).await;
    let polled = harness::poll_tenant(&tenant, "", "endpoints = [\"users\"]\n").await;
    let got = samples(&polled.text());
    let departments: BTreeSet<&str> = got
        .keys()
        .filter_map(|k| k.strip_prefix("awareness_proofpoint_users{"))
        .collect();
    assert_eq!(
        departments,
        BTreeSet::from(["account=\"acme\",department=\"\"}"])
    );
    assert_eq!(polled.outcome.sections.len(), 1);
}

#[tokio::test]
async fn an_empty_budget_fails_every_section_with_reason_quota_and_asks_no_more() {
    // Three pages of users answered, then 402 with the documented (invalid JSON) body.
    let options = ProofpointOptions {
        budget: Some(3),
        ..ProofpointOptions::default()
    };
    let (tenant, _) = tenant(options).await;
    let polled = harness::poll_tenant(&tenant, "", "").await;
    assert_eq!(polled.outcome.sections.len(), 5);
    for s in &polled.outcome.sections {
        let Err(PollError::Fetch(e)) = &s.result else {
            panic!("{}: {:?}", s.name, s.result)
        };
        assert_eq!(
            (e.reason, e.retry),
            (FailureReason::Quota, Retry::NextInterval),
            "{}",
            s.name
        );
    }
    // The 402 is not retried, and the other reports are not asked before the next interval.
    assert_eq!(tenant.control().total_requests(), 4);
    assert_eq!(polled.stats.failures(FailureReason::Quota), 1);
}

#[tokio::test]
async fn a_wrong_key_is_auth_and_garbled_rows_are_skipped_and_counted() {
    let (tenant, rows) = tenant(ProofpointOptions::default()).await;
    let wrong = tenant
        .table("")
        .replace("demo-proofpoint-results-key", "not-the-key");
    let config = harness::load(&wrong);
    let polled = harness::poll(&config).await;
    for s in &polled.outcome.sections {
        let err = s.result.as_ref().err().and_then(PollError::reason);
        assert_eq!(err, Some(FailureReason::Auth), "{}", s.name);
    }

    tenant.control().set_fault(Fault::WrongTypes);
    let polled = harness::poll_tenant(&tenant, "", "endpoints = [\"users\"]\n").await;
    let got = samples(&polled.text());
    // Garbled: every 10th row of the report (deleted users are not sent).
    let (garbled, good): (Vec<_>, Vec<_>) = rows
        .users
        .iter()
        .enumerate()
        .filter(|(_, u)| u["useractiveflag"] == true)
        .partition(|(i, _)| i % 10 == 9);
    let skipped = polled.stats.snapshot().rows_skipped.get("users").copied();
    assert_eq!(skipped, Some(garbled.len() as u64));
    assert_eq!(
        sum_of(&got, "awareness_proofpoint_users{"),
        good.len() as f64
    );
}
