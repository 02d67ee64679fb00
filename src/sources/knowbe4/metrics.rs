//! KnowBe4 rows turned into the contract's metrics. Ratios are 0..1 everywhere: a user's
//! `phish_prone_percentage` (a percent) is divided by 100, a security test's (a fraction) is
//! kept as it is.

use std::collections::{BTreeMap, HashMap};

use super::budget::Plan;
use super::models::{
    status_label, Account, Enrollment, Group, SecurityTest, TrainingCampaign, User,
};
use crate::config::MetricsConfig;
use crate::model::SourceKey;
use crate::snapshot::MetricsBuilder;
use crate::sources::aggregate::SeenKeys;
use crate::sources::cap_users;
use crate::sources::labels::OTHER;
use crate::sources::order_free_sum::OrderFreeSum;

/// What the account section shows about the request budget.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaState {
    pub plan: Plan,
    /// Requests counted in the last 24 hours (this process only).
    pub used: u64,
    /// Requests the latest poll made.
    pub poll_requests: u64,
}

pub fn account(b: &mut MetricsBuilder, account: &str, a: &Account, quota: &QuotaState) {
    let l = [("account", account)];
    if let Some(score) = a.current_risk_score {
        b.gauge(
            "awareness_knowbe4_risk_score",
            "The organization's current risk score from /v1/account (1 least to 100 most risky)",
            &l,
            score,
        );
    }
    if let Some(seats) = a.number_of_seats.filter(|s| *s >= 0.0) {
        b.gauge(
            "awareness_knowbe4_licensed_users",
            "Licensed seats of the account (/v1/account number_of_seats; absent for trial accounts)",
            &l,
            seats,
        );
    }
    b.gauge(
        "awareness_knowbe4_api_quota_limit",
        "Reporting API requests allowed per 24 hours: 2,000 plus the licensed users",
        &l,
        quota.plan.quota as f64,
    );
    b.gauge(
        "awareness_knowbe4_api_quota_remaining",
        "Reporting API requests left of the daily quota, as this exporter counts its own requests \
         over the last 24 hours (other tools using the key are not seen)",
        &l,
        quota.plan.quota.saturating_sub(quota.used) as f64,
    );
    b.gauge(
        "awareness_knowbe4_api_poll_budget",
        "Requests one poll may make so that a day of polls at the configured interval stays \
         within 90% of the daily quota",
        &l,
        quota.plan.poll_budget as f64,
    );
    b.gauge(
        "awareness_knowbe4_api_poll_requests",
        "Requests the latest poll made (compare with awareness_knowbe4_api_poll_budget)",
        &l,
        quota.poll_requests as f64,
    );
}

/// Mean of the values of each key.
#[derive(Default)]
struct Mean {
    /// Order-free, so the mean is the same bytes whatever order the rows came in.
    sum: OrderFreeSum,
    n: f64,
}

impl Mean {
    fn add(&mut self, v: f64) {
        self.sum.add(v);
        self.n += 1.0;
    }
    fn get(&self) -> Option<f64> {
        (self.n > 0.0).then(|| self.sum.mean(self.n))
    }
}

/// A label value per group id: its name, made unique with the id when two groups share one.
pub fn group_labels(groups: &[Group]) -> HashMap<String, String> {
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for g in groups {
        *by_name.entry(g.name.as_deref().unwrap_or("")).or_default() += 1;
    }
    groups
        .iter()
        .filter_map(|g| {
            let id = g.id.clone()?;
            let name = g.name.as_deref().unwrap_or("");
            let label = if name.is_empty() || by_name.get(name).copied().unwrap_or(0) > 1 {
                format!("{name} ({id})").trim_start().to_string()
            } else {
                name.to_string()
            };
            Some((id, label))
        })
        .collect()
}

pub fn users(
    b: &mut MetricsBuilder,
    key: &SourceKey,
    users: &[User],
    groups: &[Group],
    m: &MetricsConfig,
) {
    let account = key.account.as_str();
    let mut by_department: BTreeMap<&str, (f64, Mean)> = BTreeMap::new();
    let mut all = Mean::default();
    let mut by_group: HashMap<&str, (f64, Mean)> = HashMap::new();
    for u in users {
        let d = by_department
            .entry(u.department.as_deref().unwrap_or(""))
            .or_default();
        d.0 += 1.0;
        let ratio = u.phish_prone_ratio();
        if let Some(r) = ratio {
            d.1.add(r);
            all.add(r);
        }
        for g in &u.groups {
            let e = by_group.entry(g.as_str()).or_default();
            e.0 += 1.0;
            if let Some(r) = ratio {
                e.1.add(r);
            }
        }
    }
    for (department, (n, mean)) in &by_department {
        let l = [("account", account), ("department", *department)];
        b.gauge(
            "awareness_knowbe4_users",
            "Active users (/v1/users?status=active) by department",
            &l,
            *n,
        );
        if let Some(r) = mean.get() {
            b.gauge(
                "awareness_knowbe4_phish_prone_ratio",
                "Mean phish-prone ratio (0..1) of the department's active users (their \
                 phish_prone_percentage / 100); not the console's test-based figure",
                &l,
                r,
            );
        }
    }
    if let Some(r) = all.get() {
        b.gauge(
            "awareness_knowbe4_account_phish_prone_ratio",
            "Mean phish-prone ratio (0..1) of all active users (their phish_prone_percentage / 100)",
            &[("account", account)],
            r,
        );
    }
    let labels = group_labels(groups);
    for g in groups {
        let Some(label) = g.id.as_ref().and_then(|id| labels.get(id)) else {
            continue;
        };
        let l = [("account", account), ("group", label.as_str())];
        if let Some(score) = g.current_risk_score {
            b.gauge(
                "awareness_knowbe4_group_risk_score",
                "The group's current risk score from /v1/groups (1 least to 100 most risky)",
                &l,
                score,
            );
        }
        let (n, mean) =
            g.id.as_deref()
                .and_then(|id| by_group.get(id))
                .map(|(n, mean)| (*n, mean.get()))
                .unwrap_or((0.0, None));
        b.gauge(
            "awareness_knowbe4_group_users",
            "Active users in the group (from the users' groups)",
            &l,
            n,
        );
        if let Some(r) = mean {
            b.gauge(
                "awareness_knowbe4_group_phish_prone_ratio",
                "Mean phish-prone ratio (0..1) of the group's active users",
                &l,
                r,
            );
        }
    }
    if m.per_user {
        // Anonymized accounts send no email: those users get no per-user series.
        let rows: Vec<(String, &User)> = users
            .iter()
            .filter_map(|u| {
                let e = u.email.as_deref()?.trim();
                (!e.is_empty()).then(|| (e.to_string(), u))
            })
            .collect();
        for (email, u) in cap_users(key, rows, m.max_users) {
            let l = [("account", account), ("email", email.as_str())];
            if let Some(r) = u.phish_prone_ratio() {
                b.gauge(
                    "awareness_knowbe4_user_phish_prone_ratio",
                    "The user's phish-prone ratio (0..1; phish_prone_percentage / 100)",
                    &l,
                    r,
                );
            }
            if let Some(s) = u.current_risk_score {
                b.gauge(
                    "awareness_knowbe4_user_risk_score",
                    "The user's current risk score (1 least to 100 most risky)",
                    &l,
                    s,
                );
            }
        }
    }
}

/// Enrollments folded as their pages arrive: counts by (campaign, status) and (module,
/// status), and the users with a Past Due enrollment. Tens of thousands of enrollments a poll
/// cost these counts, not their rows.
#[derive(Default)]
pub struct Enrollments {
    by_campaign: BTreeMap<(String, String), f64>,
    by_module: BTreeMap<(String, String), f64>,
    overdue_users: SeenKeys,
    rows: u64,
}

impl Enrollments {
    pub fn add(&mut self, e: Enrollment) {
        let status = e.status_label();
        if status == "past_due" {
            if let Some(id) = e.user.as_ref().and_then(|u| u.id.as_deref()) {
                self.overdue_users.first_time(id);
            }
        }
        let (campaign, module) = (
            e.campaign_name.unwrap_or_default(),
            e.module_name.unwrap_or_default(),
        );
        *self
            .by_campaign
            .entry((campaign, status.clone()))
            .or_default() += 1.0;
        *self.by_module.entry((module, status)).or_default() += 1.0;
        self.rows += 1;
    }

    /// Keeps the `max` campaign and module names with the most enrollments (ties by name, as
    /// [`labels::fold_rare`](crate::sources::labels::fold_rare) ranks them); the rest are
    /// summed into `__other__`.
    pub fn fold_rare(&mut self, key: &SourceKey, max: usize, stats: &crate::stats::ApiStats) {
        for (label, map) in [
            ("campaign", &mut self.by_campaign),
            ("module", &mut self.by_module),
        ] {
            let mut per_name: BTreeMap<&str, f64> = BTreeMap::new();
            for ((name, _), n) in map.iter() {
                *per_name.entry(name.as_str()).or_default() += n;
            }
            if per_name.len() <= max {
                continue;
            }
            let mut ranked: Vec<(&str, f64)> = per_name.into_iter().collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
            let keep: std::collections::HashSet<String> =
                ranked[..max].iter().map(|(n, _)| n.to_string()).collect();
            let folded = ranked.len() - max;
            let mut out: BTreeMap<(String, String), f64> = BTreeMap::new();
            for ((name, status), n) in std::mem::take(map) {
                let name = if keep.contains(&name) {
                    name
                } else {
                    OTHER.to_string()
                };
                *out.entry((name, status)).or_default() += n;
            }
            *map = out;
            stats.labels_folded(label, folded as u64);
            tracing::warn!(source = %key, label, folded, max_label_values = max,
                "label values beyond metrics.max_label_values folded into {OTHER}");
        }
    }
}

pub fn training(
    b: &mut MetricsBuilder,
    account: &str,
    enrollments: &Enrollments,
    campaigns: &[TrainingCampaign],
) {
    for ((campaign, status), n) in &enrollments.by_campaign {
        b.gauge(
            "awareness_knowbe4_enrollments",
            "Training enrollments by campaign and status (not_started, in_progress, completed, \
             passed, past_due; past_due is overdue)",
            &[
                ("account", account),
                ("campaign", campaign),
                ("status", status.as_str()),
            ],
            *n,
        );
    }
    for ((module, status), n) in &enrollments.by_module {
        b.gauge(
            "awareness_knowbe4_module_enrollments",
            "Training enrollments by module (or policy) and status",
            &[
                ("account", account),
                ("module", module),
                ("status", status.as_str()),
            ],
            *n,
        );
    }
    if enrollments.rows > 0 {
        b.gauge(
            "awareness_knowbe4_users_overdue",
            "Users with at least one Past Due training enrollment",
            &[("account", account)],
            enrollments.overdue_users.len() as f64,
        );
    }
    let mut by_status: BTreeMap<String, f64> = BTreeMap::new();
    for c in campaigns {
        *by_status
            .entry(status_label(c.status.as_deref()))
            .or_default() += 1.0;
    }
    for (status, n) in by_status {
        b.gauge(
            "awareness_knowbe4_training_campaigns",
            "Training campaigns by status",
            &[("account", account), ("status", status.as_str())],
            n,
        );
    }
}

/// The tests that keep their own series: the newest `max` (by start, then id), since tests
/// only ever accumulate.
pub fn newest_tests(tests: &[SecurityTest], max: usize) -> Vec<&SecurityTest> {
    let mut v: Vec<&SecurityTest> = tests.iter().collect();
    let id = |t: &SecurityTest| t.pst_id.as_deref().and_then(|s| s.parse::<u64>().ok());
    v.sort_by(|a, b| {
        (b.started_at.as_deref(), id(b), b.pst_id.as_deref()).cmp(&(
            a.started_at.as_deref(),
            id(a),
            a.pst_id.as_deref(),
        ))
    });
    v.truncate(max);
    v
}

pub fn phishing(b: &mut MetricsBuilder, account: &str, tests: &[SecurityTest], max_tests: usize) {
    let mut by_status: BTreeMap<String, f64> = BTreeMap::new();
    for t in tests {
        *by_status
            .entry(status_label(t.status.as_deref()))
            .or_default() += 1.0;
    }
    for (status, n) in by_status {
        b.gauge(
            "awareness_knowbe4_security_tests",
            "Phishing security tests by status",
            &[("account", account), ("status", status.as_str())],
            n,
        );
    }
    let mut by_group: BTreeMap<(String, &'static str), f64> = BTreeMap::new();
    for t in newest_tests(tests, max_tests) {
        let id = t.pst_id.as_deref().unwrap_or("");
        let name = t.name.as_deref().unwrap_or("");
        let outcomes = t.outcomes();
        for (outcome, n) in &outcomes {
            b.gauge(
                "awareness_knowbe4_security_test_recipients",
                "Recipients of a phishing security test by outcome (users, as /v1/phishing/\
                 security_tests counts them: delivered, opened, clicked, replied, \
                 attachment_opened, macro_enabled, data_entered, qr_code_scanned, reported, \
                 bounced, scheduled)",
                &[
                    ("account", account),
                    ("test_id", id),
                    ("test", name),
                    ("outcome", outcome),
                ],
                *n,
            );
        }
        if let Some(r) = t.phish_prone_ratio() {
            b.gauge(
                "awareness_knowbe4_security_test_phish_prone_ratio",
                "The test's phish-prone ratio (0..1) as KnowBe4 reports it",
                &[("account", account), ("test_id", id), ("test", name)],
                r,
            );
        }
        for g in &t.groups {
            let group = match (g.name.as_deref(), g.group_id.as_deref()) {
                (Some(n), _) if !n.is_empty() => n.to_string(),
                (_, Some(id)) => format!("({id})"),
                _ => continue,
            };
            for (outcome, n) in &outcomes {
                *by_group.entry((group.clone(), outcome)).or_default() += n;
            }
        }
    }
    for ((group, outcome), n) in by_group {
        b.gauge(
            "awareness_knowbe4_group_security_test_recipients",
            "Recipients by outcome summed over the published tests that targeted the group (a \
             test aimed at several groups counts in each; \"All Users\" is a group here)",
            &[
                ("account", account),
                ("group", group.as_str()),
                ("outcome", outcome),
            ],
            n,
        );
    }
}
