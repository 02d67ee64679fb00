//! Turns CyberPilot user summaries into the contract's metrics: sums per branch, optional
//! per-user series.

use std::collections::BTreeMap;

use super::models::UserSummary;
use crate::config::MetricsConfig;
use crate::snapshot::{MetricsBuilder, Rendered, SourceKey};
use crate::sources::cap_users;

/// Sums over the users of one branch.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BranchTotals {
    pub users: f64,
    pub courses_enrolled: f64,
    pub courses_not_completed: f64,
    pub courses_overdue: f64,
    pub users_overdue: f64,
    pub materials_enrolled: f64,
    pub materials_not_completed: f64,
    pub phishing_campaigns_active: f64,
    pub phishing_emails_sent: f64,
    pub phishing_links_clicked: f64,
    pub phishing_data_submitted: f64,
    pub users_clicked: f64,
    pub score_sum: f64,
    pub scored_users: f64,
}

pub fn totals_by_branch(users: &[UserSummary]) -> BTreeMap<String, BranchTotals> {
    let mut out: BTreeMap<String, BranchTotals> = BTreeMap::new();
    for u in users {
        let t = out.entry(u.branch().to_string()).or_default();
        let n = |v: Option<f64>| v.unwrap_or(0.0).max(0.0);
        t.users += 1.0;
        t.courses_enrolled += n(u.enrolled_courses);
        t.courses_not_completed += n(u.not_completed_courses);
        t.courses_overdue += n(u.overdue_courses);
        if n(u.overdue_courses) > 0.0 {
            t.users_overdue += 1.0;
        }
        t.materials_enrolled += n(u.enrolled_materials);
        t.materials_not_completed += n(u.not_completed_materials);
        t.phishing_campaigns_active += n(u.phishing_campaigns);
        t.phishing_emails_sent += n(u.emails_sent);
        t.phishing_links_clicked += n(u.links_clicked);
        t.phishing_data_submitted += n(u.data_submitted);
        if n(u.links_clicked) > 0.0 {
            t.users_clicked += 1.0;
        }
        if let Some(s) = u.score() {
            t.score_sum += s;
            t.scored_users += 1.0;
        }
    }
    out
}

pub fn render(key: &SourceKey, users: &[UserSummary], metrics: &MetricsConfig) -> Rendered {
    let mut b = MetricsBuilder::new();
    let account = key.account.as_str();
    for (branch, t) in totals_by_branch(users) {
        let l = [("account", account), ("branch", branch.as_str())];
        let series: [(&'static str, &'static str, f64); 12] = [
            ("awareness_cyberpilot_users", "Users in the branch", t.users),
            (
                "awareness_cyberpilot_courses_enrolled",
                "Course enrolments of the branch's users",
                t.courses_enrolled,
            ),
            (
                "awareness_cyberpilot_courses_not_completed",
                "Enrolled courses not yet completed",
                t.courses_not_completed,
            ),
            (
                "awareness_cyberpilot_courses_overdue",
                "Overdue or incomplete courses or materials of the branch's users (CyberPilot's \
                 overdueCourses: it counts materials too)",
                t.courses_overdue,
            ),
            (
                "awareness_cyberpilot_users_overdue",
                "Users with at least one overdue or incomplete course or material \
                 (overdueCourses > 0)",
                t.users_overdue,
            ),
            (
                "awareness_cyberpilot_materials_enrolled",
                "Material enrolments of the branch's users",
                t.materials_enrolled,
            ),
            (
                "awareness_cyberpilot_materials_not_completed",
                "Enrolled materials not yet completed",
                t.materials_not_completed,
            ),
            (
                "awareness_cyberpilot_phishing_campaigns_active",
                "Active phishing campaigns summed over the branch's users",
                t.phishing_campaigns_active,
            ),
            (
                "awareness_cyberpilot_phishing_emails_sent",
                "Phishing campaigns the branch's users were sent emails in",
                t.phishing_emails_sent,
            ),
            (
                "awareness_cyberpilot_phishing_links_clicked",
                "Phishing campaigns in which the branch's users clicked a link",
                t.phishing_links_clicked,
            ),
            (
                "awareness_cyberpilot_phishing_data_submitted",
                "Phishing campaigns in which the branch's users submitted data",
                t.phishing_data_submitted,
            ),
            (
                "awareness_cyberpilot_users_clicked",
                "Users who clicked at least one phishing link",
                t.users_clicked,
            ),
        ];
        for (name, help, v) in series {
            b.gauge(name, help, &l, v);
        }
        if t.scored_users > 0.0 {
            b.gauge(
                "awareness_cyberpilot_average_score",
                "Mean averageScore of the branch's users that have completed a course; users \
                 with no training yet (CyberPilot sends them averageScore 0) are left out",
                &l,
                t.score_sum / t.scored_users,
            );
        }
    }
    if metrics.per_user {
        let rows: Vec<(String, &UserSummary)> = users
            .iter()
            .filter_map(|u| Some((u.user.email.clone()?, u)))
            .collect();
        for (email, u) in cap_users(key, rows, metrics.max_users) {
            let l = [("account", account), ("email", email.as_str())];
            b.gauge(
                "awareness_cyberpilot_user_courses_overdue",
                "Overdue or incomplete courses or materials of the user (overdueCourses)",
                &l,
                u.overdue_courses.unwrap_or(0.0),
            );
            b.gauge(
                "awareness_cyberpilot_user_courses_not_completed",
                "Courses the user has not completed",
                &l,
                u.not_completed_courses.unwrap_or(0.0),
            );
            b.gauge(
                "awareness_cyberpilot_user_phishing_links_clicked",
                "Phishing campaigns in which the user clicked a link",
                &l,
                u.links_clicked.unwrap_or(0.0),
            );
            if let Some(s) = u.score() {
                b.gauge(
                    "awareness_cyberpilot_user_average_score",
                    "The user's averageScore, absent while the user has no training",
                    &l,
                    s,
                );
            }
        }
    }
    b.finish()
}
