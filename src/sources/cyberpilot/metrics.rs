//! Turns CyberPilot user summaries into the contract's metrics: sums per branch, optional
//! per-user series. Users are folded into a [`Report`] page by page as they arrive; the report
//! holds sums per branch, 8 bytes per user to drop duplicates, and per-user rows only with
//! `per_user` (at most `max_users`).

use std::collections::BTreeMap;

use super::models::UserSummary;
use crate::config::MetricsConfig;
use crate::model::SourceKey;
use crate::snapshot::{MetricsBuilder, Rendered};
use crate::sources::aggregate::{ByLabel, Merge, UserRows};
use crate::sources::order_free_sum::OrderFreeSum;
use crate::stats::ApiStats;

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
    /// Order-free: pages are folded in the order they arrive.
    pub score_sum: OrderFreeSum,
    pub scored_users: f64,
}

impl BranchTotals {
    fn add(&mut self, u: &UserSummary) {
        let n = |v: Option<f64>| v.unwrap_or(0.0).max(0.0);
        self.users += 1.0;
        self.courses_enrolled += n(u.enrolled_courses);
        self.courses_not_completed += n(u.not_completed_courses);
        self.courses_overdue += n(u.overdue_courses);
        if n(u.overdue_courses) > 0.0 {
            self.users_overdue += 1.0;
        }
        self.materials_enrolled += n(u.enrolled_materials);
        self.materials_not_completed += n(u.not_completed_materials);
        self.phishing_campaigns_active += n(u.phishing_campaigns);
        self.phishing_emails_sent += n(u.emails_sent);
        self.phishing_links_clicked += n(u.links_clicked);
        self.phishing_data_submitted += n(u.data_submitted);
        if n(u.links_clicked) > 0.0 {
            self.users_clicked += 1.0;
        }
        if let Some(s) = u.score() {
            self.score_sum.add(s);
            self.scored_users += 1.0;
        }
    }
}

impl Merge for BranchTotals {
    fn absorb(&mut self, o: Self) {
        self.users += o.users;
        self.courses_enrolled += o.courses_enrolled;
        self.courses_not_completed += o.courses_not_completed;
        self.courses_overdue += o.courses_overdue;
        self.users_overdue += o.users_overdue;
        self.materials_enrolled += o.materials_enrolled;
        self.materials_not_completed += o.materials_not_completed;
        self.phishing_campaigns_active += o.phishing_campaigns_active;
        self.phishing_emails_sent += o.phishing_emails_sent;
        self.phishing_links_clicked += o.phishing_links_clicked;
        self.phishing_data_submitted += o.phishing_data_submitted;
        self.users_clicked += o.users_clicked;
        self.score_sum.absorb(o.score_sum);
        self.scored_users += o.scored_users;
    }
}

/// What a per-user series needs of one user.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct UserLine {
    pub courses_overdue: f64,
    pub courses_not_completed: f64,
    pub links_clicked: f64,
    pub score: Option<f64>,
}

/// A users-summary report folded as its pages arrive.
#[derive(Default)]
pub struct Report {
    branches: ByLabel<BranchTotals>,
    /// Only with `per_user`.
    users: Option<UserRows<UserLine>>,
}

impl Report {
    pub fn new(metrics: &MetricsConfig) -> Self {
        Report {
            users: metrics.per_user.then(|| UserRows::new(metrics.max_users)),
            ..Report::default()
        }
    }

    /// Folds one user in (the paging engine has dropped users already counted).
    pub fn add(&mut self, u: &UserSummary) {
        let branch = u.user.branch.as_ref().and_then(|b| b.name.as_deref());
        self.branches.row(branch).add(u);
        if let (Some(users), Some(email)) = (self.users.as_mut(), u.user.email.as_deref()) {
            if let Some(line) = users.entry(email) {
                *line = UserLine {
                    courses_overdue: u.overdue_courses.unwrap_or(0.0),
                    courses_not_completed: u.not_completed_courses.unwrap_or(0.0),
                    links_clicked: u.links_clicked.unwrap_or(0.0),
                    score: u.score(),
                };
            }
        }
    }

    /// The sums per branch, `metrics.max_label_values` applied (rare branches folded into
    /// `__other__`, counted in `stats`).
    pub fn branches(
        self,
        key: &SourceKey,
        metrics: &MetricsConfig,
        stats: &ApiStats,
    ) -> (BTreeMap<String, BranchTotals>, Option<UserRows<UserLine>>) {
        let branches = self
            .branches
            .finish(key, "branch", metrics.max_label_values, stats);
        (branches, self.users)
    }

    pub fn render(self, key: &SourceKey, metrics: &MetricsConfig, stats: &ApiStats) -> Rendered {
        let (branches, users) = self.branches(key, metrics, stats);
        render_totals(key, &branches, users.map(|u| u.finish(key)))
    }
}

/// Renders a list of users (tests and benchmarks).
pub fn render(key: &SourceKey, users: &[UserSummary], metrics: &MetricsConfig) -> Rendered {
    let mut report = Report::new(metrics);
    for u in users {
        report.add(u);
    }
    report.render(key, metrics, &ApiStats::default())
}

fn render_totals(
    key: &SourceKey,
    branches: &BTreeMap<String, BranchTotals>,
    users: Option<BTreeMap<Box<str>, UserLine>>,
) -> Rendered {
    let mut b = MetricsBuilder::new();
    let account = key.account.as_str();
    for (branch, t) in branches {
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
                t.score_sum.mean(t.scored_users),
            );
        }
    }
    for (email, u) in users.iter().flatten() {
        let l = [("account", account), ("email", &**email)];
        b.gauge(
            "awareness_cyberpilot_user_courses_overdue",
            "Overdue or incomplete courses or materials of the user (overdueCourses)",
            &l,
            u.courses_overdue,
        );
        b.gauge(
            "awareness_cyberpilot_user_courses_not_completed",
            "Courses the user has not completed",
            &l,
            u.courses_not_completed,
        );
        b.gauge(
            "awareness_cyberpilot_user_phishing_links_clicked",
            "Phishing campaigns in which the user clicked a link",
            &l,
            u.links_clicked,
        );
        if let Some(s) = u.score {
            b.gauge(
                "awareness_cyberpilot_user_average_score",
                "The user's averageScore, absent while the user has no training",
                &l,
                s,
            );
        }
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Platform;
    use crate::snapshot::merge;
    use crate::sources::cyberpilot::models::{Branch, UserInfo};

    fn user(id: &str, branch: &str, overdue: f64) -> UserSummary {
        UserSummary {
            overdue_courses: Some(overdue),
            user: UserInfo {
                id: Some(id.to_string()),
                email: Some(format!("{id}@x")),
                branch: Some(Branch {
                    name: Some(branch.to_string()),
                }),
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_report_holds_sums_not_users() {
        let m = MetricsConfig {
            per_user: true,
            max_users: 3,
            ..Default::default()
        };
        let mut report = Report::new(&m);
        for i in 0..10_000 {
            report.add(&user(&format!("u{i:05}"), ["A", "B"][i % 2], 1.0));
        }
        assert_eq!(report.branches.len(), 2);
        assert_eq!(report.users.as_ref().map(|u| u.len()), Some(3));
        let key = SourceKey::new(Platform::new("cyberpilot"), "a");
        let text = merge([&report.render(&key, &m, &ApiStats::default())]);
        assert!(text.contains("awareness_cyberpilot_users{account=\"a\",branch=\"A\"} 5000"));
        assert!(
            text.contains("awareness_cyberpilot_courses_overdue{account=\"a\",branch=\"B\"} 5000")
        );
        assert_eq!(
            text.matches("awareness_cyberpilot_user_courses_overdue{")
                .count(),
            3
        );
    }

    #[test]
    fn rare_branches_fold_when_the_report_renders() {
        let m = MetricsConfig {
            max_label_values: 1,
            ..Default::default()
        };
        let mut report = Report::new(&m);
        for (i, b) in ["big", "big", "small", "tiny"].iter().enumerate() {
            report.add(&user(&i.to_string(), b, 0.0));
        }
        let stats = ApiStats::default();
        let key = SourceKey::new(Platform::new("cyberpilot"), "a");
        let text = merge([&report.render(&key, &m, &stats)]);
        assert!(text.contains("awareness_cyberpilot_users{account=\"a\",branch=\"big\"} 2"));
        assert!(text.contains("awareness_cyberpilot_users{account=\"a\",branch=\"__other__\"} 2"));
        assert_eq!(stats.snapshot().labels_folded.get("branch"), Some(&2));
    }
}
