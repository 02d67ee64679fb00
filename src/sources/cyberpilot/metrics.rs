//! Turns CyberPilot user summaries into the contract's metrics: sums per branch, optional
//! per-user series. Users are folded into a [`Report`] page by page as they arrive; the report
//! holds sums per branch, 8 bytes per user to drop duplicates, and per-user rows only with
//! `per_user` (at most `max_users`).

use super::models::UserSummary;
use crate::config::MetricsConfig;
use crate::model::SourceKey;
use crate::snapshot::{MetricsBuilder, Rendered};
use crate::sources::aggregate::{ByLabel, Merge, UserRows};
use crate::sources::order_free_sum::OrderFreeSum;
use crate::stats::ApiStats;

/// The per-branch families, each the sum of one figure of [`BranchTotals::figures`] over the
/// branch's users.
const BRANCH_FAMILIES: [(&str, &str); 12] = [
    ("awareness_cyberpilot_users", "Users in the branch"),
    (
        "awareness_cyberpilot_courses_enrolled",
        "Course enrolments of the branch's users",
    ),
    (
        "awareness_cyberpilot_courses_not_completed",
        "Enrolled courses not yet completed",
    ),
    (
        "awareness_cyberpilot_courses_overdue",
        "Overdue or incomplete courses or materials of the branch's users (CyberPilot's \
         overdueCourses: it counts materials too)",
    ),
    (
        "awareness_cyberpilot_users_overdue",
        "Users with at least one overdue or incomplete course or material \
         (overdueCourses > 0)",
    ),
    (
        "awareness_cyberpilot_materials_enrolled",
        "Material enrolments of the branch's users",
    ),
    (
        "awareness_cyberpilot_materials_not_completed",
        "Enrolled materials not yet completed",
    ),
    (
        "awareness_cyberpilot_phishing_campaigns_active",
        "Active phishing campaigns summed over the branch's users",
    ),
    (
        "awareness_cyberpilot_phishing_emails_sent",
        "Phishing campaigns the branch's users were sent emails in",
    ),
    (
        "awareness_cyberpilot_phishing_links_clicked",
        "Phishing campaigns in which the branch's users clicked a link",
    ),
    (
        "awareness_cyberpilot_phishing_data_submitted",
        "Phishing campaigns in which the branch's users submitted data",
    ),
    (
        "awareness_cyberpilot_users_clicked",
        "Users who clicked at least one phishing link",
    ),
];

/// Sums over the users of one branch.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct BranchTotals {
    /// One sum a family of [`BRANCH_FAMILIES`], in its order.
    figures: [f64; 12],
    /// Order-free: pages are folded in the order they arrive.
    score_sum: OrderFreeSum,
    scored_users: f64,
}

impl BranchTotals {
    fn add(&mut self, u: &UserSummary) {
        let n = |v: Option<f64>| v.unwrap_or(0.0).max(0.0);
        let one_if = |v: f64| if v > 0.0 { 1.0 } else { 0.0 };
        self.figures.absorb([
            1.0,
            n(u.enrolled_courses),
            n(u.not_completed_courses),
            n(u.overdue_courses),
            one_if(n(u.overdue_courses)),
            n(u.enrolled_materials),
            n(u.not_completed_materials),
            n(u.phishing_campaigns),
            n(u.emails_sent),
            n(u.links_clicked),
            n(u.data_submitted),
            one_if(n(u.links_clicked)),
        ]);
        if let Some(s) = u.score() {
            self.score_sum.add(s);
            self.scored_users += 1.0;
        }
    }
}

impl Merge for BranchTotals {
    fn absorb(&mut self, o: Self) {
        self.figures.absorb(o.figures);
        self.score_sum.absorb(o.score_sum);
        self.scored_users += o.scored_users;
    }
}

/// The per-user families, each one figure of [`UserLine::figures`].
const USER_FAMILIES: [(&str, &str); 3] = [
    (
        "awareness_cyberpilot_user_courses_overdue",
        "Overdue or incomplete courses or materials of the user (overdueCourses)",
    ),
    (
        "awareness_cyberpilot_user_courses_not_completed",
        "Courses the user has not completed",
    ),
    (
        "awareness_cyberpilot_user_phishing_links_clicked",
        "Phishing campaigns in which the user clicked a link",
    ),
];

/// What the per-user series need of one user: the figures of [`USER_FAMILIES`], in its order,
/// and the score.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct UserLine {
    figures: [f64; 3],
    score: Option<f64>,
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
        self.branches.row(u.branch()).add(u);
        if let (Some(users), Some(email)) = (self.users.as_mut(), u.user.email.as_deref()) {
            if let Some(line) = users.entry(email) {
                let figures = [u.overdue_courses, u.not_completed_courses, u.links_clicked];
                *line = UserLine {
                    figures: figures.map(|v| v.unwrap_or(0.0)),
                    score: u.score(),
                };
            }
        }
    }

    /// The report's series: sums per branch with `metrics.max_label_values` applied (rare
    /// branches folded into `__other__`, counted in `stats`), then the per-user series.
    pub fn render(self, key: &SourceKey, metrics: &MetricsConfig, stats: &ApiStats) -> Rendered {
        let max = metrics.max_label_values;
        let branches = self.branches.finish(key, "branch", max, stats);
        let mut b = MetricsBuilder::new();
        let account = key.account.as_str();
        for (branch, t) in &branches {
            let l = [("account", account), ("branch", branch.as_str())];
            for ((name, help), v) in BRANCH_FAMILIES.iter().zip(t.figures) {
                b.gauge(name, help, &l, v);
            }
            if t.scored_users > 0.0 {
                b.gauge(
                    "awareness_cyberpilot_average_score",
                    "Mean averageScore of the branch's users that have completed a course; \
                     users with no training yet (CyberPilot sends them averageScore 0) are \
                     left out",
                    &l,
                    t.score_sum.mean(t.scored_users),
                );
            }
        }
        for (email, u) in self.users.map(|u| u.finish(key)).iter().flatten() {
            let l = [("account", account), ("email", &**email)];
            for ((name, help), v) in USER_FAMILIES.iter().zip(u.figures) {
                b.gauge(name, help, &l, v);
            }
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
