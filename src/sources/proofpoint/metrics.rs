//! Proofpoint rows folded into the contract's metrics, one accumulator per report: rows are added
//! as pages arrive and only the sums (and, where users are counted, the set of their e-mail
//! addresses) are kept. Figures about users count distinct users by e-mail, never rows; the
//! enrollment, reported-e-mail and answer figures count rows. Vendor-named labels (department,
//! campaign, assignment, assessment) are capped by `metrics.max_label_values`.

use std::collections::{BTreeMap, HashMap};

use super::models::{
    tag, Answer, Enrollment, PhishingEvent, ReportRow, ReportedEmail, User, EMAIL_TYPES,
    ENROLLMENT_STATUSES, FAILED, OUTCOMES,
};
use crate::config::MetricsConfig;
use crate::model::SourceKey;
use crate::snapshot::{MetricsBuilder, Rendered};
use crate::sources::aggregate::{ByLabel, Merge, UserRows};
use crate::stats::ApiStats;
use std::sync::Arc;

/// A metric family: its name and help.
type Family = (&'static str, &'static str);

const USER_FAILURES: Family = (
    "awareness_proofpoint_user_phishing_failures",
    "Phishing campaigns in which the user clicked, submitted data or opened an attachment",
);
const USER_OVERDUE: Family = (
    "awareness_proofpoint_user_enrollments_overdue",
    "The user's overdue training enrollments",
);

/// One report's accumulator: its rows in as pages arrive, its section out.
pub(crate) trait Accumulate: Send + 'static {
    type Row: ReportRow;
    fn add(&mut self, row: Self::Row);
    fn render(self, scope: &Scope) -> Rendered;
}

/// Where a section's figures go: the account, and the caps on vendor-named label values.
pub(crate) struct Scope {
    pub(crate) key: SourceKey,
    pub(crate) metrics: MetricsConfig,
    pub(crate) stats: Arc<ApiStats>,
}

impl Scope {
    fn account(&self) -> &str {
        &self.key.account
    }

    /// The per-user series of `rows` (only with `per_user`).
    fn per_user(&self, b: &mut MetricsBuilder, (name, help): Family, rows: Option<UserRows<f64>>) {
        for (email, n) in rows.map(|r| r.finish(&self.key)).unwrap_or_default() {
            b.gauge(
                name,
                help,
                &[("account", self.account()), ("email", &email)],
                n,
            );
        }
    }

    fn fold<T: Default + Merge>(&self, by: ByLabel<T>, label: &'static str) -> BTreeMap<String, T> {
        by.finish(&self.key, label, self.metrics.max_label_values, &self.stats)
    }
}

/// The department of a row: the first value of the configured user tag, `""` without one.
fn department(user_tag: Option<&str>, tags: &Option<serde_json::Value>) -> Option<String> {
    user_tag.and_then(|name| tag(tags, name))
}

/// `/users`: active users by department (the engine reads each e-mail once).
pub(crate) struct Users {
    user_tag: Option<String>,
    by_department: ByLabel<f64>,
}

impl Users {
    pub(crate) fn new(user_tag: Option<&str>) -> Self {
        Users {
            user_tag: user_tag.map(str::to_string),
            by_department: ByLabel::default(),
        }
    }
}

impl Accumulate for Users {
    type Row = User;

    fn add(&mut self, u: User) {
        if u.active == Some(false) {
            return;
        }
        let d = department(self.user_tag.as_deref(), &u.usertags);
        *self.by_department.row(d.as_deref()) += 1.0;
    }

    fn render(self, scope: &Scope) -> Rendered {
        let mut b = MetricsBuilder::new();
        for (d, n) in scope.fold(self.by_department, "department") {
            b.gauge(
                "awareness_proofpoint_users",
                "Active users (/users) by department (the configured user_tag), each e-mail address once",
                &[("account", scope.account()), ("department", &d)],
                n,
            );
        }
        b.finish()
    }
}

/// The users of one campaign: interned user → the outcome bits of their events.
#[derive(Default)]
struct Campaign(HashMap<u32, u8>);

impl Merge for Campaign {
    fn absorb(&mut self, other: Self) {
        for (user, bits) in other.0 {
            *self.0.entry(user).or_default() |= bits;
        }
    }
}

/// `/phishing`: distinct users per campaign and outcome. Events are one row each (a click comes
/// with its view, and rows repeat), so users are counted, not rows.
pub(crate) struct Phishing {
    users: HashMap<Box<str>, u32>,
    campaigns: ByLabel<Campaign>,
    /// Campaigns failed per user (only with `per_user`).
    failures: Option<UserRows<f64>>,
}

impl Phishing {
    pub(crate) fn new(metrics: &MetricsConfig) -> Self {
        Phishing {
            users: HashMap::new(),
            campaigns: ByLabel::default(),
            failures: metrics.per_user.then(|| UserRows::new(metrics.max_users)),
        }
    }
}

impl Accumulate for Phishing {
    type Row = PhishingEvent;

    fn add(&mut self, e: PhishingEvent) {
        let next = self.users.len() as u32;
        let user = *self.users.entry(e.email.as_str().into()).or_insert(next);
        let campaign = self.campaigns.row(e.campaign.as_deref());
        let bits = campaign.0.entry(user).or_default();
        let before = *bits;
        *bits |= e.outcome();
        let caught = before & FAILED == 0 && *bits & FAILED != 0;
        if let Some(n) = self.failures.as_mut().and_then(|f| f.entry(&e.email)) {
            *n += f64::from(u8::from(caught));
        }
    }

    fn render(self, scope: &Scope) -> Rendered {
        let mut b = MetricsBuilder::new();
        for (campaign, users) in scope.fold(self.campaigns, "campaign") {
            let l = [
                ("account", scope.account()),
                ("campaign", campaign.as_str()),
            ];
            let sent = users.0.len() as f64;
            let with = |mask: u8| users.0.values().filter(|b| **b & mask != 0).count() as f64;
            let recipients = |b: &mut MetricsBuilder, outcome: &str, n: f64| {
                b.gauge(
                    "awareness_proofpoint_phishing_recipients",
                    "Distinct users of the phishing campaign (/phishing) with an event of the outcome \
                     (sent: any event)",
                    &[l[0], l[1], ("outcome", outcome)],
                    n,
                )
            };
            recipients(&mut b, "sent", sent);
            for (i, (_, name)) in OUTCOMES.iter().enumerate() {
                let n = with(1 << i);
                if *name != "other" || n > 0.0 {
                    recipients(&mut b, name, n);
                }
            }
            if sent > 0.0 {
                b.gauge(
                    "awareness_proofpoint_phishing_failure_ratio",
                    "Share of the campaign's users who clicked, submitted data or opened an attachment",
                    &l,
                    with(FAILED) / sent,
                );
            }
        }
        scope.per_user(&mut b, USER_FAILURES, self.failures);
        b.finish()
    }
}

/// `/phishalarm`: reported e-mails (rows) by type.
#[derive(Default)]
pub(crate) struct Reports([f64; EMAIL_TYPES.len()]);

impl Accumulate for Reports {
    type Row = ReportedEmail;

    fn add(&mut self, r: ReportedEmail) {
        self.0[r.kind()] += 1.0;
    }

    fn render(self, scope: &Scope) -> Rendered {
        let mut b = MetricsBuilder::new();
        for ((_, email_type), n) in EMAIL_TYPES.iter().zip(self.0) {
            if *email_type != "other" || n > 0.0 {
                b.gauge(
                    "awareness_proofpoint_reported_emails",
                    "E-mails reported with PhishAlarm (/phishalarm rows) by type",
                    &[("account", scope.account()), ("email_type", email_type)],
                    n,
                );
            }
        }
        b.finish()
    }
}

/// `/trainingenrollments`: enrollments (rows not removed) by assignment and status, and the
/// distinct active users with an overdue one.
pub(crate) struct Enrollments {
    user_tag: Option<String>,
    by_assignment: ByLabel<[f64; ENROLLMENT_STATUSES.len()]>,
    /// Active enrolled users: their department and whether any enrollment is overdue.
    users: HashMap<Box<str>, (Option<String>, bool)>,
    /// Overdue enrollments per active user (only with `per_user`).
    overdue: Option<UserRows<f64>>,
}

impl Enrollments {
    pub(crate) fn new(user_tag: Option<&str>, metrics: &MetricsConfig) -> Self {
        Enrollments {
            user_tag: user_tag.map(str::to_string),
            by_assignment: ByLabel::default(),
            users: HashMap::new(),
            overdue: metrics.per_user.then(|| UserRows::new(metrics.max_users)),
        }
    }
}

impl Accumulate for Enrollments {
    type Row = Enrollment;

    fn add(&mut self, e: Enrollment) {
        if e.is_removed() {
            return;
        }
        self.by_assignment.row(e.assignment.as_deref())[e.status()] += 1.0;
        if e.active == Some(false) {
            return;
        }
        let overdue = e.is_overdue();
        if let Some(n) = self.overdue.as_mut().and_then(|o| o.entry(&e.email)) {
            *n += if overdue { 1.0 } else { 0.0 };
        }
        let user_tag = self.user_tag.as_deref();
        let user = self
            .users
            .entry(e.email.into())
            .or_insert_with(|| (department(user_tag, &e.usertags), false));
        user.1 |= overdue;
    }

    fn render(self, scope: &Scope) -> Rendered {
        let mut b = MetricsBuilder::new();
        for (assignment, counts) in scope.fold(self.by_assignment, "assignment") {
            for ((_, status), n) in ENROLLMENT_STATUSES.iter().zip(counts) {
                if *status != "other" || n > 0.0 {
                    b.gauge(
                        "awareness_proofpoint_enrollments",
                        "Training enrollments (/trainingenrollments rows, user x module, not removed) \
                         by assignment and module status",
                        &[
                            ("account", scope.account()),
                            ("assignment", &assignment),
                            ("status", status),
                        ],
                        n,
                    );
                }
            }
        }
        let mut by_department: ByLabel<f64> = ByLabel::default();
        for (department, overdue) in self.users.into_values() {
            *by_department.row(department.as_deref()) += if overdue { 1.0 } else { 0.0 };
        }
        for (d, n) in scope.fold(by_department, "department") {
            b.gauge(
                "awareness_proofpoint_users_overdue",
                "Distinct active users with at least one overdue training enrollment, by department",
                &[("account", scope.account()), ("department", &d)],
                n,
            );
        }
        scope.per_user(&mut b, USER_OVERDUE, self.overdue);
        b.finish()
    }
}

/// `/cyberstrength`: answered questions (rows) by assessment, correct or not.
#[derive(Default)]
pub(crate) struct Answers(ByLabel<[f64; 2]>);

impl Accumulate for Answers {
    type Row = Answer;

    fn add(&mut self, a: Answer) {
        let counts = self.0.row(a.assessment.as_deref());
        if a.answered() {
            counts[usize::from(a.correct != Some(true))] += 1.0;
        }
    }

    fn render(self, scope: &Scope) -> Rendered {
        let mut b = MetricsBuilder::new();
        for (assessment, [correct, incorrect]) in scope.fold(self.0, "assessment") {
            let l = [
                ("account", scope.account()),
                ("assessment", assessment.as_str()),
            ];
            for (result, n) in [("correct", correct), ("incorrect", incorrect)] {
                b.gauge(
                    "awareness_proofpoint_assessment_answers",
                    "Answered knowledge-assessment questions (/cyberstrength rows with a selected \
                     answer) by assessment and result",
                    &[l[0], l[1], ("result", result)],
                    n,
                );
            }
            if correct + incorrect > 0.0 {
                b.gauge(
                    "awareness_proofpoint_assessment_correct_ratio",
                    "Share of the assessment's answered questions answered correctly",
                    &l,
                    correct / (correct + incorrect),
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
    use crate::sources::proofpoint::models::parse;
    use crate::sources::proofpoint::models::tests::{fixture, rows};

    fn scope(metrics: MetricsConfig) -> Scope {
        Scope {
            key: SourceKey::new(Platform::new("proofpoint"), "acme"),
            metrics,
            stats: Arc::default(),
        }
    }

    fn text(r: Rendered) -> String {
        merge([&r])
    }

    fn metrics(per_user: bool) -> MetricsConfig {
        MetricsConfig {
            per_user,
            ..MetricsConfig::default()
        }
    }

    fn row<A: for<'de> serde::Deserialize<'de>>(attributes: serde_json::Value) -> A {
        parse(&serde_json::json!({ "attributes": attributes }).to_string()).unwrap()
    }

    /// The sample lines of `text` that start with `prefix`, sorted.
    fn lines<'t>(text: &'t str, prefix: &str) -> Vec<&'t str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn the_documented_examples_become_the_contracts_series() {
        let scope = scope(metrics(false));
        let m = scope.metrics.clone();

        let mut users = Users::new(Some("Department"));
        rows::<User>(&fixture("doc_users.json"))
            .0
            .into_iter()
            .for_each(|u| users.add(u));
        assert_eq!(
            lines(&text(users.render(&scope)), "awareness_proofpoint_users"),
            ["awareness_proofpoint_users{account=\"acme\",department=\"\"} 1.0"]
        );

        let mut phishing = Phishing::new(&m);
        for e in rows::<PhishingEvent>(&fixture("doc_phishing.json")).0 {
            phishing.add(e);
        }
        let t = text(phishing.render(&scope));
        let c = "account=\"acme\",campaign=\"SmishGuru Campaign 04-28-2016 LW\"";
        assert!(
            t.contains(&format!(
                "awareness_proofpoint_phishing_recipients{{{c},outcome=\"sent\"}} 1.0"
            )),
            "{t}"
        );
        assert!(t.contains(&format!(
            "awareness_proofpoint_phishing_recipients{{{c},outcome=\"no_action\"}} 1.0"
        )));
        assert!(t.contains(&format!(
            "awareness_proofpoint_phishing_recipients{{{c},outcome=\"clicked\"}} 0.0"
        )));
        assert!(
            !t.contains("outcome=\"other\""),
            "other only when there is one"
        );
        assert!(t.contains(&format!(
            "awareness_proofpoint_phishing_failure_ratio{{{c}}} 0.0"
        )));

        let mut reports = Reports::default();
        rows::<ReportedEmail>(&fixture("doc_phishalarm.json"))
            .0
            .into_iter()
            .for_each(|r| reports.add(r));
        assert_eq!(
            lines(&text(reports.render(&scope)), "awareness_proofpoint_reported_emails"),
            [
                "awareness_proofpoint_reported_emails{account=\"acme\",email_type=\"platform_notification\"} 0.0",
                "awareness_proofpoint_reported_emails{account=\"acme\",email_type=\"potential_phish\"} 0.0",
                "awareness_proofpoint_reported_emails{account=\"acme\",email_type=\"simulated_phish\"} 1.0",
            ]
        );

        let mut enrollments = Enrollments::new(None, &m);
        for e in rows::<Enrollment>(&fixture("doc_trainingenrollments.json")).0 {
            enrollments.add(e);
        }
        let t = text(enrollments.render(&scope));
        assert!(t.contains("awareness_proofpoint_enrollments{account=\"acme\",assignment=\"test duration\",status=\"overdue_not_started\"} 1.0"), "{t}");
        assert!(t.contains("awareness_proofpoint_enrollments{account=\"acme\",assignment=\"test duration\",status=\"completed\"} 0.0"));
        assert!(
            t.contains("awareness_proofpoint_users_overdue{account=\"acme\",department=\"\"} 1.0")
        );

        let mut answers = Answers::default();
        rows::<Answer>(&fixture("doc_cyberstrength.json"))
            .0
            .into_iter()
            .for_each(|a| answers.add(a));
        let t = text(answers.render(&scope));
        assert!(t.contains("awareness_proofpoint_assessment_answers{account=\"acme\",assessment=\"Phishing\",result=\"incorrect\"} 0.0"), "{t}");
        assert!(
            !t.contains("correct_ratio"),
            "absent when nothing was answered: {t}"
        );
    }

    #[test]
    fn phishing_counts_distinct_users_not_events() {
        let scope = scope(metrics(true));
        let m = scope.metrics.clone();
        let mut p = Phishing::new(&m);
        let ev = |email: &str, campaign: &str, event: &str| {
            row::<PhishingEvent>(serde_json::json!({
                "useremailaddress": email, "campaignname": campaign, "eventtype": event}))
        };
        for e in [
            ev("a@x", "Q1", "Email View"),
            ev("A@X", "Q1", "Email Click"),
            ev("a@x", "Q1", "Email Click"), // a duplicate row
            ev("a@x", "Q1", "Data Submission"),
            ev("b@x", "Q1", "Email View"),
            ev("c@x", "Q1", "No Action"),
            ev("d@x", "Q1", "TM Sent"),
            ev("a@x", "Q2", "Attachment Open"),
            ev("b@x", "Q2", "Reported"),
        ] {
            p.add(e);
        }
        let t = text(p.render(&scope));
        let n = |campaign: &str, outcome: &str| {
            let prefix = format!("awareness_proofpoint_phishing_recipients{{account=\"acme\",campaign=\"{campaign}\",outcome=\"{outcome}\"}} ");
            t.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .unwrap_or("absent")
                .to_string()
        };
        assert_eq!(n("Q1", "sent"), "4.0");
        assert_eq!(n("Q1", "viewed"), "2.0");
        assert_eq!(n("Q1", "clicked"), "1.0");
        assert_eq!(n("Q1", "data_submitted"), "1.0");
        assert_eq!(n("Q1", "no_action"), "1.0");
        assert_eq!(n("Q1", "other"), "1.0");
        assert_eq!(n("Q2", "attachment_opened"), "1.0");
        assert_eq!(n("Q2", "reported"), "1.0");
        assert!(t.contains(
            "awareness_proofpoint_phishing_failure_ratio{account=\"acme\",campaign=\"Q1\"} 0.25"
        ));
        assert!(t.contains(
            "awareness_proofpoint_phishing_failure_ratio{account=\"acme\",campaign=\"Q2\"} 0.5"
        ));
        // Per user: campaigns failed, a@x both, the others none.
        assert_eq!(
            lines(&t, "awareness_proofpoint_user_phishing_failures"),
            [
                "awareness_proofpoint_user_phishing_failures{account=\"acme\",email=\"a@x\"} 2.0",
                "awareness_proofpoint_user_phishing_failures{account=\"acme\",email=\"b@x\"} 0.0",
                "awareness_proofpoint_user_phishing_failures{account=\"acme\",email=\"c@x\"} 0.0",
                "awareness_proofpoint_user_phishing_failures{account=\"acme\",email=\"d@x\"} 0.0",
            ]
        );
    }

    #[test]
    fn users_and_overdue_by_department_from_the_user_tag() {
        let scope = scope(metrics(true));
        let m = scope.metrics.clone();
        let tags = |d: &str| serde_json::json!({ "Department": [d] });
        let mut users = Users::new(Some("Department"));
        for (email, active, d) in [
            ("a@x", true, "Finance"),
            ("b@x", true, "Sales"),
            ("c@x", false, "Sales"),
        ] {
            users.add(row(serde_json::json!({
                "useremailaddress": email, "useractiveflag": active, "usertags": tags(d)})));
        }
        assert_eq!(
            lines(&text(users.render(&scope)), "awareness_proofpoint_users"),
            [
                "awareness_proofpoint_users{account=\"acme\",department=\"Finance\"} 1.0",
                "awareness_proofpoint_users{account=\"acme\",department=\"Sales\"} 1.0",
            ]
        );

        let mut e = Enrollments::new(Some("Department"), &m);
        for (email, active, status, removed, d) in [
            ("a@x", 1, "Overdue - Not Started", false, "Finance"),
            ("a@x", 1, "Overdue - In Progress", false, "Finance"),
            ("b@x", 1, "Completed", false, "Sales"),
            ("b@x", 1, "Overdue - In Progress", true, "Sales"), // removed: not counted
            ("c@x", 0, "Overdue - Not Started", false, "Sales"), // inactive
        ] {
            let removal = if removed { "2025-01-01T00:00:00" } else { "" };
            e.add(row(serde_json::json!({
                "useremailaddress": email, "useractiveflag": active, "assignmentname": "Annual",
                "module_attempt_status": status, "enrollmentremovaldate": removal,
                "usertags": tags(d)})));
        }
        let t = text(e.render(&scope));
        assert_eq!(
            lines(&t, "awareness_proofpoint_users_overdue"),
            [
                "awareness_proofpoint_users_overdue{account=\"acme\",department=\"Finance\"} 1.0",
                "awareness_proofpoint_users_overdue{account=\"acme\",department=\"Sales\"} 0.0",
            ]
        );
        assert!(
            t.contains("status=\"overdue_not_started\"} 2.0"),
            "rows, inactive users' too: {t}"
        );
        assert!(t.contains("status=\"overdue_in_progress\"} 1.0"));
        assert_eq!(
            lines(&t, "awareness_proofpoint_user_enrollments_overdue"),
            [
                "awareness_proofpoint_user_enrollments_overdue{account=\"acme\",email=\"a@x\"} 2.0",
                "awareness_proofpoint_user_enrollments_overdue{account=\"acme\",email=\"b@x\"} 0.0",
            ]
        );
    }

    #[test]
    fn answers_count_answered_rows_and_their_ratio() {
        let scope = scope(metrics(false));
        let mut a = Answers::default();
        for (selected, correct) in [
            (Some("A"), true),
            (Some("B"), false),
            (Some("C"), true),
            (None, false),
            (Some(""), true),
        ] {
            a.add(row(serde_json::json!({
                "useremailaddress": "a@x", "assessmentname": "Phishing",
                "selectedanswer": selected, "correct": correct})));
        }
        let t = text(a.render(&scope));
        assert!(
            t.contains("result=\"correct\"} 2.0") && t.contains("result=\"incorrect\"} 1.0"),
            "{t}"
        );
        assert!(t.contains("awareness_proofpoint_assessment_correct_ratio{account=\"acme\",assessment=\"Phishing\"} 0.6666666666666666"));
    }

    #[test]
    fn vendor_named_labels_are_capped() {
        let scope = scope(MetricsConfig {
            max_label_values: 2,
            ..MetricsConfig::default()
        });
        let m = scope.metrics.clone();
        let mut p = Phishing::new(&m);
        for (i, c) in ["a", "b", "b", "c", "c", "c"].iter().enumerate() {
            p.add(row(serde_json::json!({
                "useremailaddress": format!("u{i}@x"), "campaignname": c, "eventtype": "Email Click"})));
        }
        let t = text(p.render(&scope));
        assert!(
            t.contains("campaign=\"__other__\",outcome=\"sent\"} 1.0"),
            "{t}"
        );
        assert!(!t.contains("campaign=\"a\""));
        assert_eq!(
            scope.stats.snapshot().labels_folded.get("campaign"),
            Some(&1)
        );
    }
}
