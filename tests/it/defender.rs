//! The Defender source against the simulated Microsoft Graph: every section's figures checked
//! against the simulator's wire rows over several pages of `@odata.nextLink`, an unlicensed
//! tenant, a tenant without simulations, a refused secret, a throttled request.

use crate::common;
use crate::common::harness::Counted as _;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use awareness_exporter::model::FailureReason;
use awareness_sim::defender::{self, DefenderOptions, DefenderTenant};
use awareness_sim::{Fault, Population, SimServer};
use common::*;
use serde_json::Value;

const SETTINGS: &str = "[poll]\ntimeout = \"5s\"\nretry_backoff = \"10ms\"\n\n\
                        [metrics]\nper_user = true\n";

/// A tenant built here (its launch dates relative to `now`), served as given.
async fn serve(tenant: DefenderTenant, options: DefenderOptions) -> SimServer {
    defender::start_account(Arc::new(tenant), options)
        .await
        .unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn options(page_size: usize) -> DefenderOptions {
    DefenderOptions {
        page_size,
        ..DefenderOptions::default()
    }
}

async fn poll(server: &SimServer, options: &DefenderOptions, keys: &str) -> harness::Polled {
    let text = format!(
        "{SETTINGS}\n{}{keys}",
        options.account_block(server, "acme")
    );
    harness::poll(&harness::load(&text)).await
}

fn f(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn user_key(row: &Value) -> String {
    let u = &row["attackSimulationUser"];
    match u["userId"].as_str() {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => u["email"].as_str().unwrap_or("").to_string(),
    }
}

/// The figures the contract promises, computed from the wire rows.
fn expected(t: &DefenderTenant) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let acc = [("account", "acme")];
    let mut by_status: BTreeMap<String, f64> = BTreeMap::new();
    let since = now() - 180 * 86_400;
    for s in &t.simulations {
        *by_status
            .entry(s["status"].as_str().unwrap().to_string())
            .or_default() += 1.0;
        let launched = s["launchDateTime"]
            .as_str()
            .and_then(|l| chrono::DateTime::parse_from_rfc3339(l).ok())
            .map(|l| l.timestamp());
        let status = s["status"].as_str().unwrap();
        let Some(launch) =
            launched.filter(|l| *l >= since && !matches!(status, "draft" | "scheduled"))
        else {
            continue;
        };
        let id = s["id"].as_str().unwrap();
        let l = [
            ("account", "acme"),
            ("simulation_id", id),
            ("simulation", s["displayName"].as_str().unwrap()),
        ];
        let o = &t.overviews[id];
        out.insert(
            series("awareness_defender_simulation_launch_timestamp_seconds", &l),
            launch as f64,
        );
        out.insert(
            series("awareness_defender_simulation_targeted_users", &l),
            f(&o["resolvedTargetsCount"]).unwrap(),
        );
        let rate = f(&o["simulationEventsContent"]["compromisedRate"]).unwrap();
        out.insert(
            series("awareness_defender_simulation_compromised_ratio", &l),
            rate / 100.0,
        );
        for t in o["trainingEventsContent"]["assignedTrainingsInfos"]
            .as_array()
            .unwrap()
        {
            for (state, key) in [
                ("assigned", "assignedUserCount"),
                ("completed", "completedUserCount"),
            ] {
                let mut lt = l.to_vec();
                lt.extend([
                    ("training", t["displayName"].as_str().unwrap()),
                    ("state", state),
                ]);
                out.insert(
                    series("awareness_defender_simulation_training_users", &lt),
                    f(&t[key]).unwrap(),
                );
            }
        }
        for e in o["simulationEventsContent"]["events"].as_array().unwrap() {
            let mut le = l.to_vec();
            le.push(("event", e["eventName"].as_str().unwrap()));
            out.insert(
                series("awareness_defender_simulation_events", &le),
                f(&e["count"]).unwrap(),
            );
        }
    }
    for (status, n) in by_status {
        out.insert(
            series(
                "awareness_defender_simulations",
                &[("account", "acme"), ("status", &status)],
            ),
            n,
        );
    }
    let cov = &t.simulation_coverage;
    let positive = |k: &str| {
        cov.iter()
            .filter(|r| f(&r[k]).is_some_and(|v| v > 0.0))
            .count() as f64
    };
    out.insert(series("awareness_defender_users", &acc), cov.len() as f64);
    out.insert(
        series("awareness_defender_users_simulated", &acc),
        positive("simulationCount"),
    );
    out.insert(
        series("awareness_defender_users_compromised", &acc),
        positive("compromisedCount"),
    );
    out.insert(
        series("awareness_defender_repeat_offenders", &acc),
        t.repeat_offenders.len() as f64,
    );
    let mut assignments: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut overdue = BTreeSet::new();
    for row in &t.training_coverage {
        for tr in row["userTrainings"].as_array().unwrap() {
            let status = tr["trainingStatus"].as_str().unwrap().to_string();
            if status == "overdue" {
                overdue.insert(user_key(row));
            }
            *assignments
                .entry((tr["displayName"].as_str().unwrap().to_string(), status))
                .or_default() += 1.0;
        }
    }
    for ((training, status), n) in assignments {
        out.insert(
            series(
                "awareness_defender_training_assignments",
                &[
                    ("account", "acme"),
                    ("training", &training),
                    ("status", &status),
                ],
            ),
            n,
        );
    }
    out.insert(
        series("awareness_defender_users_overdue", &acc),
        overdue.len() as f64,
    );
    out
}

fn defender_series(text: &str) -> BTreeMap<String, f64> {
    samples(text)
        .into_iter()
        .filter(|(k, _)| {
            k.starts_with("awareness_defender_") && !k.starts_with("awareness_defender_user_")
        })
        .collect()
}

#[tokio::test]
async fn every_section_matches_the_wire_rows_over_pages_of_next_links() {
    let tenant = DefenderTenant::from_population(&Population::generate(11, 150), 27, now());
    let want = expected(&tenant);
    let o = options(7);
    let server = serve(tenant.clone(), o.clone()).await;
    let polled = poll(&server, &o, "").await;
    assert_eq!(defender_series(&polled.text()), want);
    // Every page followed as given (the simulator refuses a rebuilt `$skiptoken` or a `$top`).
    let pages = |rows: usize| rows.div_ceil(7) as u64;
    let c = &server.control;
    assert_eq!(
        c.requests("/security/attackSimulation/simulations"),
        pages(tenant.simulations.len())
    );
    assert_eq!(
        c.requests("getAttackSimulationSimulationUserCoverage"),
        pages(tenant.simulation_coverage.len())
    );
    assert_eq!(
        c.requests("getAttackSimulationTrainingUserCoverage"),
        pages(tenant.training_coverage.len())
    );
    assert_eq!(
        c.requests("getAttackSimulationRepeatOffenders"),
        pages(tenant.repeat_offenders.len())
    );
    // No overview requested for drafts, scheduled simulations or those before the lookback.
    assert_eq!(c.requests("/report/overview"), 8);
    assert_eq!(c.token_requests(), 1);
    // Per user: labelled with the e-mail, or the user id where Graph sends none.
    let text = polled.text();
    let no_email = tenant
        .simulation_coverage
        .iter()
        .find(|r| r["attackSimulationUser"]["email"] == "" && r["compromisedCount"].is_u64())
        .unwrap();
    let id = no_email["attackSimulationUser"]["userId"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "awareness_defender_user_compromised{{account=\"acme\",email=\"{id}\"}}"
        )),
        "{text}"
    );
    for r in &tenant.repeat_offenders {
        let email = r["attackSimulationUser"]["email"].as_str().unwrap();
        let label = if email.is_empty() {
            user_key(r)
        } else {
            email.to_string()
        };
        let s = series(
            "awareness_defender_user_repeat_offences",
            &[("account", "acme"), ("email", &label)],
        );
        assert_eq!(
            samples(&text).get(&s).copied(),
            f(&r["repeatOffenceCount"]),
            "{s}"
        );
    }
}

#[tokio::test]
async fn the_lookback_limits_the_reported_simulations() {
    let tenant = DefenderTenant::from_population(&Population::generate(11, 60), 27, now());
    let o = options(100);
    let server = serve(tenant, o.clone()).await;
    let polled = poll(&server, &o, "lookback = \"30d\"\n").await;
    let text = polled.text();
    // Launched 20 and 3 days ago (of the simulator's plan); the rest are older.
    assert_eq!(server.control.requests("/report/overview"), 2);
    assert_eq!(
        text.matches("awareness_defender_simulation_targeted_users{")
            .count(),
        2,
        "{text}"
    );
    assert!(text.contains("awareness_defender_simulations{account=\"acme\",status=\"succeeded\"}"));
}

#[tokio::test]
async fn an_unlicensed_tenant_is_down_with_reason_auth_and_asked_once() {
    let tenant = DefenderTenant::from_population(&Population::generate(11, 30), 27, now());
    let o = options(100);
    let server = serve(tenant, o.clone()).await;
    server.control.set_fault(Fault::NotLicensed {
        endpoint: String::new(),
    });
    let polled = poll(&server, &o, "").await;
    assert_eq!(polled.outcome.sections.len(), 4);
    for s in &polled.outcome.sections {
        let e = s.result.as_ref().unwrap_err();
        assert_eq!(e.reason(), Some(FailureReason::Auth), "{}: {e}", s.name);
        assert!(e.to_string().contains("AttackSimulation.Read.All"), "{e}");
    }
    // One request a section: a 403 waits for the next interval, not the fast retries.
    assert_eq!(server.control.total_requests(), 1 + 4);
    assert_eq!(polled.stats.failures(FailureReason::Auth), 4);
}

#[tokio::test]
async fn a_tenant_without_simulations_is_a_success_with_zero_counts() {
    let empty = DefenderTenant {
        simulations: vec![],
        overviews: Default::default(),
        repeat_offenders: vec![],
        simulation_coverage: vec![],
        training_coverage: vec![],
    };
    let o = options(100);
    let server = serve(empty, o.clone()).await;
    let text = poll(&server, &o, "").await.text();
    for name in [
        "users",
        "users_simulated",
        "users_compromised",
        "repeat_offenders",
        "users_overdue",
    ] {
        let s = series(
            &format!("awareness_defender_{name}"),
            &[("account", "acme")],
        );
        assert_eq!(samples(&text).get(&s), Some(&0.0), "{s} in\n{text}");
    }
    assert!(!text.contains("awareness_defender_simulations{"));
}

#[tokio::test]
async fn a_refused_secret_fails_every_section_with_reason_auth_without_data_requests() {
    let tenant = DefenderTenant::from_population(&Population::generate(11, 30), 27, now());
    let o = options(100);
    let server = serve(tenant, o.clone()).await;
    let wrong = DefenderOptions {
        client_secret: "not-the-secret".into(),
        ..o.clone()
    };
    let polled = poll(&server, &wrong, "").await;
    for s in &polled.outcome.sections {
        let e = s.result.as_ref().unwrap_err();
        assert_eq!(e.reason(), Some(FailureReason::Auth), "{}: {e}", s.name);
        assert!(!e.to_string().contains("not-the-secret"), "{e}");
    }
    assert_eq!(server.control.token_requests(), 1, "one sign-in a poll");
    assert_eq!(server.control.total_requests(), 1);
}

#[tokio::test]
async fn a_throttled_request_waits_its_fractional_retry_after_and_succeeds() {
    let tenant = DefenderTenant::from_population(&Population::generate(11, 30), 27, now());
    let o = options(100);
    let server = serve(tenant, o.clone()).await;
    server.control.set_fault(Fault::RateLimit {
        times: 1,
        reset_ms: 40,
    });
    let polled = poll(&server, &o, "").await;
    assert!(polled.outcome.sections.iter().all(|s| s.result.is_ok()));
    assert_eq!(polled.stats.failures(FailureReason::RateLimited), 1);
}
