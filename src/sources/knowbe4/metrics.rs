//! KnowBe4 rows turned into the contract's metrics. Ratios are 0..1 everywhere: a user's
//! `phish_prone_percentage` (a percent) is divided by 100, a security test's (a fraction) is
//! kept as it is. Each family is written as its `# HELP` line says it: the name, a space, the
//! help.

use std::collections::{BTreeMap, HashMap};

use super::budget::Plan;
use super::models::{
    status_label, Account, Enrollment, Group, SecurityTest, TrainingCampaign, User,
};
use crate::config::MetricsConfig;
use crate::model::SourceKey;
use crate::snapshot::{MetricsBuilder, Rendered};
use crate::sources::aggregate::{ByLabel, Merge, SeenKeys};
use crate::sources::cap_users;
use crate::sources::order_free_sum::OrderFreeSum;
use crate::stats::ApiStats;

/// A metric family as its `# HELP` line says it: the name, a space, the help.
type Family = &'static str;

/// One section's series, each labelled by the account first.
struct Out<'a> {
    b: MetricsBuilder,
    account: &'a str,
}

impl<'a> Out<'a> {
    fn new(account: &'a str) -> Self {
        let b = MetricsBuilder::new();
        Out { b, account }
    }

    /// One gauge of each family, labelled by the account and `labels`, its value the one at
    /// the same place in `values` (`None` publishes nothing).
    fn gauges<const N: usize>(
        &mut self,
        labels: &[(&str, &str)],
        families: &[Family; N],
        values: [Option<f64>; N],
    ) {
        let account = [("account", self.account)];
        let labels: Vec<_> = account.iter().chain(labels).copied().collect();
        for (&family, v) in families.iter().zip(values) {
            let (name, help) = family.split_once(' ').unwrap_or((family, ""));
            if let Some(v) = v {
                self.b.gauge(name, help, &labels, v);
            }
        }
    }

    fn gauge(&mut self, labels: &[(&str, &str)], family: Family, v: f64) {
        self.gauges(labels, &[family], [Some(v)]);
    }

    /// Counts of `statuses` as label values, one family; the section is complete.
    fn by_status<'s>(
        mut self,
        family: Family,
        statuses: impl Iterator<Item = Option<&'s str>>,
    ) -> Rendered {
        let mut counts: BTreeMap<String, f64> = BTreeMap::new();
        for s in statuses {
            *counts.entry(status_label(s)).or_default() += 1.0;
        }
        for (status, n) in counts {
            self.gauge(&[("status", &status)], family, n);
        }
        self.b.finish()
    }
}

const ACCOUNT: [Family; 6] = [
    "awareness_knowbe4_risk_score The organization's current risk score from /v1/account (1 \
     least to 100 most risky)",
    "awareness_knowbe4_licensed_users Licensed seats of the account (/v1/account \
     number_of_seats; absent for trial accounts)",
    "awareness_knowbe4_api_quota_limit Reporting API requests allowed per 24 hours: 2,000 plus \
     the licensed users",
    "awareness_knowbe4_api_quota_remaining Reporting API requests left of the daily quota, as \
     this exporter counts its own requests over the last 24 hours (other tools using the key are \
     not seen)",
    "awareness_knowbe4_api_poll_budget Requests one poll may make so that a day of polls at the \
     configured interval stays within 90% of the daily quota",
    "awareness_knowbe4_api_poll_requests Requests the latest poll made (compare with \
     awareness_knowbe4_api_poll_budget)",
];

/// The account and this exporter's count of its requests: `used` in the last 24 hours (this
/// process only), `poll_requests` by the latest poll.
pub(crate) fn account(
    account: &str,
    a: &Account,
    plan: &Plan,
    used: u64,
    poll_requests: u64,
) -> Rendered {
    let mut out = Out::new(account);
    let n = |v: u64| Some(v as f64);
    let values = [
        a.current_risk_score,
        a.seats(),
        n(plan.quota),
        n(plan.quota.saturating_sub(used)),
        n(plan.poll_budget),
        n(poll_requests),
    ];
    out.gauges(&[], &ACCOUNT, values);
    out.b.finish()
}

/// Users counted, and the mean of the phish-prone ratios they have (order-free, so equal data
/// gives equal bytes whatever order the rows came in).
#[derive(Debug, Default, Clone, Copy)]
struct Users {
    n: f64,
    rated: f64,
    sum: OrderFreeSum,
}

impl Users {
    fn add(&mut self, ratio: Option<f64>) {
        self.n += 1.0;
        if let Some(r) = ratio {
            self.rated += 1.0;
            self.sum.add(r);
        }
    }

    fn mean(&self) -> Option<f64> {
        (self.rated > 0.0).then(|| self.sum.mean(self.rated))
    }
}

impl Merge for Users {
    fn absorb(&mut self, other: Self) {
        self.n += other.n;
        self.rated += other.rated;
        self.sum.absorb(other.sum);
    }
}

const DEPARTMENT: [Family; 2] = [
    "awareness_knowbe4_users Active users (/v1/users?status=active) by department",
    "awareness_knowbe4_phish_prone_ratio Mean phish-prone ratio (0..1) of the department's active \
     users (their phish_prone_percentage / 100); not the console's test-based figure",
];

const OVERALL: Family = "awareness_knowbe4_account_phish_prone_ratio Mean phish-prone ratio \
                         (0..1) of all active users (their phish_prone_percentage / 100)";

const GROUP: [Family; 3] = [
    "awareness_knowbe4_group_users Active users in the group (from the users' groups)",
    "awareness_knowbe4_group_phish_prone_ratio Mean phish-prone ratio (0..1) of the group's \
     active users",
    "awareness_knowbe4_group_risk_score The group's current risk score from /v1/groups (1 least \
     to 100 most risky)",
];

const USER: [Family; 2] = [
    "awareness_knowbe4_user_phish_prone_ratio The user's phish-prone ratio (0..1; \
     phish_prone_percentage / 100)",
    "awareness_knowbe4_user_risk_score The user's current risk score (1 least to 100 most risky)",
];

/// The `users` section: active users and their phish-prone ratios by department (rare
/// departments folded), over the account, by group (labelled by name, made unique with the id
/// when two groups share one); per user with `per_user`.
pub(crate) fn users(
    key: &SourceKey,
    users: &[User],
    groups: &[Group],
    m: &MetricsConfig,
    stats: &ApiStats,
) -> Rendered {
    let mut out = Out::new(&key.account);
    let mut by_department = ByLabel::<Users>::default();
    let mut by_group: HashMap<&str, Users> = HashMap::new();
    for u in users {
        let ratio = u.phish_prone_ratio();
        let department = by_department.row(u.department.as_deref().or(Some("")));
        department.add(ratio);
        for g in &u.groups {
            by_group.entry(g.as_str()).or_default().add(ratio);
        }
    }
    let mut all = Users::default();
    for (department, d) in by_department.finish(key, "department", m.max_label_values, stats) {
        out.gauges(
            &[("department", &department)],
            &DEPARTMENT,
            [Some(d.n), d.mean()],
        );
        all.absorb(d);
    }
    out.gauges(&[], &[OVERALL], [all.mean()]);
    let mut names: HashMap<&str, usize> = HashMap::new();
    for g in groups {
        *names.entry(g.name.as_deref().unwrap_or("")).or_default() += 1;
    }
    for g in groups {
        let (Some(id), name) = (g.id.as_deref(), g.name.as_deref().unwrap_or("")) else {
            continue;
        };
        let label = match names.get(name) {
            Some(1) if !name.is_empty() => name.to_string(),
            _ => format!("{name} ({id})").trim_start().to_string(),
        };
        let m = by_group.get(id).copied().unwrap_or_default();
        let values = [Some(m.n), m.mean(), g.current_risk_score];
        out.gauges(&[("group", &label)], &GROUP, values);
    }
    if m.per_user {
        // Anonymized accounts send no email: those users get no per-user series.
        let rows: Vec<(String, &User)> = users
            .iter()
            .filter_map(|u| Some((u.email.as_deref()?.trim().to_string(), u)))
            .filter(|(email, _)| !email.is_empty())
            .collect();
        for (email, u) in cap_users(key, rows, m.max_users) {
            let values = [u.phish_prone_ratio(), u.current_risk_score];
            out.gauges(&[("email", &email)], &USER, values);
        }
    }
    out.b.finish()
}

/// The enrollment families, and their label, in the order of [`Enrollments::by`].
const ENROLLMENTS: [Family; 2] = [
    "awareness_knowbe4_enrollments Training enrollments by campaign and status (not_started, \
     in_progress, completed, passed, past_due; past_due is overdue)",
    "awareness_knowbe4_module_enrollments Training enrollments by module (or policy) and status",
];
const BY: [&str; 2] = ["campaign", "module"];

/// Enrollments folded as their pages arrive: counts by campaign and by module (each by status),
/// and the users with a Past Due enrollment. Tens of thousands of enrollments a poll cost these
/// counts, not their rows.
#[derive(Default)]
pub(crate) struct Enrollments {
    by: [ByLabel<BTreeMap<String, f64>>; 2],
    overdue_users: SeenKeys,
    rows: u64,
}

impl Enrollments {
    /// Folds a page of enrollments in.
    pub(crate) fn add(&mut self, page: Vec<Enrollment>) {
        for e in page {
            let status = status_label(e.status.as_deref());
            if status == "past_due" {
                if let Some(id) = e.user.as_ref().and_then(|u| u.id.as_deref()) {
                    self.overdue_users.first_time(id);
                }
            }
            for (by, name) in self.by.iter_mut().zip([e.campaign_name, e.module_name]) {
                let statuses = by.row(Some(name.as_deref().unwrap_or("")));
                *statuses.entry(status.clone()).or_default() += 1.0;
            }
            self.rows += 1;
        }
    }
}

const OVERDUE: Family =
    "awareness_knowbe4_users_overdue Users with at least one Past Due training enrollment";

const CAMPAIGNS: Family = "awareness_knowbe4_training_campaigns Training campaigns by status";

/// The `training` section: enrollments by campaign and by module (each keeping the
/// `metrics.max_label_values` names with the most enrollments, the rest summed into
/// `__other__`), the overdue users, and the campaigns by status.
pub(crate) fn training(
    key: &SourceKey,
    enrollments: Enrollments,
    campaigns: &[TrainingCampaign],
    m: &MetricsConfig,
    stats: &ApiStats,
) -> Rendered {
    let mut out = Out::new(&key.account);
    for ((label, family), by) in BY.into_iter().zip(ENROLLMENTS).zip(enrollments.by) {
        for (name, statuses) in by.finish(key, label, m.max_label_values, stats) {
            for (status, n) in statuses {
                out.gauge(&[(label, &name), ("status", &status)], family, n);
            }
        }
    }
    let overdue = enrollments.overdue_users.len() as f64;
    out.gauges(&[], &[OVERDUE], [(enrollments.rows > 0).then_some(overdue)]);
    out.by_status(CAMPAIGNS, campaigns.iter().map(|c| c.status.as_deref()))
}

/// The tests that keep their own series: the newest `max` (by start, then id), since tests
/// only ever accumulate.
fn newest_tests(tests: &[SecurityTest], max: usize) -> Vec<&SecurityTest> {
    let mut v: Vec<&SecurityTest> = tests.iter().collect();
    fn order(t: &SecurityTest) -> (Option<&str>, Option<(Option<u64>, &str)>) {
        let id = t.pst_id.as_deref();
        (t.started_at.as_deref(), id.map(|id| (id.parse().ok(), id)))
    }
    v.sort_by(|a, b| order(b).cmp(&order(a)));
    v.truncate(max);
    v
}

const TESTS: Family = "awareness_knowbe4_security_tests Phishing security tests by status";

const RECIPIENTS: Family = "awareness_knowbe4_security_test_recipients Recipients of a phishing \
     security test by outcome (users, as /v1/phishing/security_tests counts them: delivered, \
     opened, clicked, replied, attachment_opened, macro_enabled, data_entered, qr_code_scanned, \
     reported, bounced, scheduled)";

const TEST_RATIO: Family = "awareness_knowbe4_security_test_phish_prone_ratio The test's \
                            phish-prone ratio (0..1) as KnowBe4 reports it";

const GROUP_RECIPIENTS: Family = "awareness_knowbe4_group_security_test_recipients Recipients by \
     outcome summed over the published tests that targeted the group (a test aimed at several \
     groups counts in each; \"All Users\" is a group here)";

/// The `phishing` section: tests by status, the newest tests' recipients by outcome and
/// phish-prone ratio, and the recipients summed per target group.
pub(crate) fn phishing(account: &str, tests: &[SecurityTest], max_tests: usize) -> Rendered {
    let mut out = Out::new(account);
    let mut by_group: BTreeMap<(String, &'static str), f64> = BTreeMap::new();
    for t in newest_tests(tests, max_tests) {
        let (id, name) = (t.pst_id.as_deref(), t.name.as_deref());
        let test = [("test_id", id.unwrap_or("")), ("test", name.unwrap_or(""))];
        let outcomes = t.outcomes();
        for &(outcome, n) in &outcomes {
            out.gauge(&[test[0], test[1], ("outcome", outcome)], RECIPIENTS, n);
        }
        out.gauges(&test, &[TEST_RATIO], [t.phish_prone_ratio()]);
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
        out.gauge(
            &[("group", &group), ("outcome", outcome)],
            GROUP_RECIPIENTS,
            n,
        );
    }
    out.by_status(TESTS, tests.iter().map(|t| t.status.as_deref()))
}

#[cfg(test)]
mod tests {
    //! Parsing and figures anchored in real and documented bodies (tests/fixtures/knowbe4,
    //! provenance in its README): what each body means is checked against the vendor's own
    //! numbers, not against our simulator.

    use super::*;
    use crate::config::MetricsConfig;
    use crate::model::SourceKey;
    use crate::sources::decode::RowBudget;
    use crate::sources::knowbe4::config::KnowBe4Config;
    use crate::sources::knowbe4::models::*;
    use crate::sources::knowbe4::pager::tests::decode;
    use std::time::Duration;

    /// Sample lines of an exposition: `name{labels}` → value.
    fn samples(text: &str) -> BTreeMap<String, f64> {
        let samples = text.lines().filter(|l| !l.starts_with('#'));
        let parse = |l: &str| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        };
        samples.filter_map(parse).collect()
    }

    fn series(name: &str, labels: &[(&str, &str)]) -> String {
        let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        format!("{name}{{{}}}", inner.join(","))
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/knowbe4/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A page's elements, skipped elements and rows.
    fn page<T: Row>(name: &str) -> (u64, u64, Vec<T>) {
        decode(&fixture(name), &RowBudget::new(10_000)).unwrap_or_else(|e| panic!("{name}: {e:?}"))
    }

    fn rows<T: Row>(name: &str) -> Vec<T> {
        let (_, skipped, rows) = page::<T>(name);
        assert_eq!(skipped, 0, "{name}: every row parses");
        rows
    }

    fn account_of(name: &str) -> Account {
        serde_json::from_slice(&fixture(name)).unwrap()
    }

    fn render(r: Rendered) -> BTreeMap<String, f64> {
        samples(&crate::snapshot::try_merge([&r]).unwrap())
    }

    fn enrollments(rows: Vec<Enrollment>) -> Enrollments {
        let mut acc = Enrollments::default();
        acc.add(rows);
        acc
    }

    /// The key of account `acme`'s enrollment count for `campaign` and `status`.
    fn enrollment_series(campaign: &str, status: &str) -> String {
        series(
            "awareness_knowbe4_enrollments",
            &[
                ("account", "acme"),
                ("campaign", campaign),
                ("status", status),
            ],
        )
    }

    fn key() -> SourceKey {
        SourceKey::new(crate::sources::knowbe4::PLATFORM, "acme")
    }

    /// The account section of `a` for an account of `seats`, 7 requests used by one poll.
    fn account_section(a: &Account, seats: Option<u64>) -> BTreeMap<String, f64> {
        let config = KnowBe4Config::new("acme", "http://127.0.0.1:9", "k");
        let plan = Plan::new(&config, seats, Some(10), Duration::from_secs(3600));
        render(account("acme", a, &plan, 7, 7))
    }

    #[test]
    fn the_recorded_trial_account_has_no_seats_and_a_risk_score() {
        let a = account_of("rec_eu_account_trial.json");
        assert_eq!(a.number_of_seats, None, "trial accounts send no seats");
        let got = account_section(&a, None);
        let l = [("account", "acme")];
        assert_eq!(got[&series("awareness_knowbe4_risk_score", &l)], 25.3);
        assert_eq!(
            got[&series("awareness_knowbe4_api_quota_limit", &l)],
            2000.0
        );
        assert_eq!(
            got[&series("awareness_knowbe4_api_quota_remaining", &l)],
            1993.0
        );
        assert!(!got.contains_key(&series("awareness_knowbe4_licensed_users", &l)));
    }

    #[test]
    fn documented_accounts_give_seats_and_a_null_risk_score_is_no_sample() {
        let doc = account_of("doc_account.json");
        assert_eq!(
            (doc.number_of_seats, doc.current_risk_score),
            (Some(25.0), Some(45.742))
        );
        let xsoar = account_of("xsoar_account.json");
        assert_eq!(
            (xsoar.number_of_seats, xsoar.current_risk_score),
            (Some(1200.0), None)
        );
        let got = account_section(&xsoar, Some(1200));
        let l = [("account", "acme")];
        assert_eq!(
            got[&series("awareness_knowbe4_api_quota_limit", &l)],
            3200.0
        );
        assert_eq!(got[&series("awareness_knowbe4_licensed_users", &l)], 1200.0);
        assert!(!got.contains_key(&series("awareness_knowbe4_risk_score", &l)));
    }

    #[test]
    fn recorded_security_tests_keep_the_vendors_counts_and_fraction() {
        let t: Vec<SecurityTest> = rows("rec_eu_campaign_229584_security_tests.json");
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].pst_id.as_deref(), Some("509579"));
        assert_eq!(
            t[0].outcomes(),
            vec![
                ("scheduled", 2.0),
                ("delivered", 2.0),
                ("opened", 1.0),
                ("clicked", 0.0),
                ("replied", 0.0),
                ("attachment_opened", 0.0),
                ("macro_enabled", 0.0),
                ("data_entered", 0.0),
                ("reported", 0.0),
                ("bounced", 0.0),
            ],
            "2021 wire: no qr_code_scanned_count, so no such outcome"
        );
        // A test in status Error: scheduled_count null is "not reported", not 0.
        let err: Vec<SecurityTest> = rows("rec_eu_campaign_229823_security_tests_error.json");
        assert_eq!(err[0].status.as_deref(), Some("Error"));
        assert_eq!(err[0].started_at, None);
        assert!(!err[0].outcomes().iter().any(|(o, _)| *o == "scheduled"));
        let got = render(phishing("acme", &err, 100));
        assert!(!got.keys().any(|k| k.contains("outcome=\"scheduled\"")));
        assert_eq!(
            got[&series(
                "awareness_knowbe4_security_tests",
                &[("account", "acme"), ("status", "error")]
            )],
            1.0
        );
    }

    #[test]
    fn a_real_production_test_gives_a_fraction_of_delivered() {
        let t: Vec<SecurityTest> = rows("sumo_security_tests_row_2023.json");
        let got = render(phishing("acme", &t, 100));
        let l = |o| {
            series(
                "awareness_knowbe4_security_test_recipients",
                &[
                    ("account", "acme"),
                    ("test_id", "8805725"),
                    ("test", "Mar2023_NA_SUMOs"),
                    ("outcome", o),
                ],
            )
        };
        assert_eq!(got[&l("delivered")], 625.0);
        assert_eq!(got[&l("opened")], 328.0);
        assert_eq!(got[&l("clicked")], 171.0);
        assert_eq!(got[&l("replied")], 2.0);
        assert_eq!(got[&l("qr_code_scanned")], 0.0);
        let ratio = got[&series(
            "awareness_knowbe4_security_test_phish_prone_ratio",
            &[
                ("account", "acme"),
                ("test_id", "8805725"),
                ("test", "Mar2023_NA_SUMOs"),
            ],
        )];
        // Exported as sent: already a fraction (173 failures / 625 delivered = 0.2768).
        assert_eq!(ratio, 0.277);
        assert!((ratio - 173.0 / 625.0).abs() < 0.001);
        // Per target group.
        assert_eq!(
            got[&series(
                "awareness_knowbe4_group_security_test_recipients",
                &[
                    ("account", "acme"),
                    ("group", "Monthly Campaign - NA"),
                    ("outcome", "clicked")
                ]
            )],
            171.0
        );
    }

    #[test]
    fn the_documented_test_sample_with_its_hyphenated_landing_page_parses() {
        let t: Vec<SecurityTest> = rows("doc_phishing_security_tests.json");
        assert_eq!(t[0].phish_prone_ratio(), Some(0.5));
        // The sample has delivered 4 < opened 24: figures are published as sent, not "fixed".
        let outcomes = t[0].outcomes();
        assert!(outcomes.contains(&("delivered", 4.0)) && outcomes.contains(&("opened", 24.0)));
    }

    #[test]
    fn user_phish_prone_percent_becomes_a_ratio_by_department_and_group() {
        let users: Vec<User> = rows("j1_users_trimmed.json");
        let groups: Vec<Group> = rows("j1_groups.json");
        assert_eq!(users.len(), 2);
        assert_eq!(groups.len(), 8);
        assert!(
            groups.iter().all(|g| g.current_risk_score.is_none()),
            "old samples have none"
        );
        let m = MetricsConfig {
            per_user: true,
            ..MetricsConfig::default()
        };
        let stats = ApiStats::default();
        let got = render(super::users(&key(), &users, &groups, &m, &stats));
        let d = |name, dept| series(name, &[("account", "acme"), ("department", dept)]);
        assert_eq!(got[&d("awareness_knowbe4_users", "Sales")], 1.0);
        assert_eq!(got[&d("awareness_knowbe4_users", "Production")], 1.0);
        // 13.235 % and the integer 76 %.
        assert!((got[&d("awareness_knowbe4_phish_prone_ratio", "Sales")] - 0.13235).abs() < 1e-12);
        assert_eq!(
            got[&d("awareness_knowbe4_phish_prone_ratio", "Production")],
            0.76
        );
        let account = got[&series(
            "awareness_knowbe4_account_phish_prone_ratio",
            &[("account", "acme")],
        )];
        assert!((account - (0.13235 + 0.76) / 2.0).abs() < 1e-12);
        // William is in 6276 and 1759; Linda's group 3264 is not among the active groups.
        let g = |name, group| series(name, &[("account", "acme"), ("group", group)]);
        assert_eq!(
            got[&g("awareness_knowbe4_group_users", "Customer Service")],
            1.0
        );
        assert_eq!(
            got[&g(
                "awareness_knowbe4_group_users",
                "Clickers in the past 90 days"
            )],
            1.0
        );
        assert_eq!(got[&g("awareness_knowbe4_group_users", "Sales")], 0.0);
        assert!(
            (got[&g(
                "awareness_knowbe4_group_phish_prone_ratio",
                "Customer Service"
            )] - 0.13235)
                .abs()
                < 1e-12
        );
        assert!(!got.keys().any(|k| k.contains("group=\"3264")));
        let e = |name, email| series(name, &[("account", "acme"), ("email", email)]);
        assert_eq!(
            got[&e(
                "awareness_knowbe4_user_phish_prone_ratio",
                "LStephens@kb4-demo.com"
            )],
            0.76
        );
        assert!(!got
            .keys()
            .any(|k| k.starts_with("awareness_knowbe4_user_risk_score")));
    }

    #[test]
    fn documented_lone_objects_read_as_one_row() {
        let users: Vec<User> = rows("doc_users.json");
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].groups, ["3264"]);
        assert!((users[0].phish_prone_ratio().unwrap() - 0.14235).abs() < 1e-12);
        let groups: Vec<Group> = rows("doc_groups.json");
        let (m, stats) = (MetricsConfig::default(), ApiStats::default());
        let got = render(super::users(&key(), &users, &groups, &m, &stats));
        assert_eq!(
            got[&series(
                "awareness_knowbe4_group_risk_score",
                &[("account", "acme"), ("group", "Customer Service")]
            )],
            45.742
        );
        assert!(
            !got.keys().any(|k| k.contains("email=")),
            "no per-user series by default"
        );
        let e: Vec<Enrollment> = rows("doc_training_enrollments.json");
        assert_eq!(status_label(e[0].status.as_deref()), "passed");
        // `content` is an array of arrays in this sample: ignored, the row still parses.
        let c: Vec<TrainingCampaign> = rows("doc_training_campaigns.json");
        assert_eq!(c[0].status.as_deref(), Some("Completed"));
    }

    #[test]
    fn enrollments_by_campaign_and_status_with_duplicates_dropped() {
        let (len, _, page) = page::<Enrollment>("j1_training_enrollments.json");
        assert_eq!(len, 5);
        let mut seen = SeenKeys::default();
        let mut first_time = |r: &Enrollment| r.key().is_some_and(|k| seen.first_time(&k));
        let e: Vec<Enrollment> = page.into_iter().filter(|r| first_time(r)).collect();
        // enrollment 2525523 appears three times: twice identical, once in another campaign.
        assert_eq!(e.len(), 4);
        let mut more: Vec<Enrollment> = rows("xsoar_training_enrollments.json");
        more.retain(|r| first_time(r));
        assert_eq!(more.len(), 4, "64-bit user ids are fine");
        let all: Vec<Enrollment> = e.into_iter().chain(more).collect();
        let campaigns: Vec<TrainingCampaign> = rows("j1_training_campaigns.json");
        let (m, stats) = (MetricsConfig::default(), ApiStats::default());
        let got = render(training(&key(), enrollments(all), &campaigns, &m, &stats));
        let c = enrollment_series;
        assert_eq!(got[&c("New Employee Policies 2", "not_started")], 1.0);
        // One from JupiterOne's data, one from XSOAR's (another user).
        assert_eq!(got[&c("New Employee Policies", "passed")], 2.0);
        assert_eq!(got[&c("Monthly Training", "in_progress")], 1.0);
        assert_eq!(got[&c("Sales Ongoing Campaign", "passed")], 1.0);
        assert_eq!(got[&c("Sales Ongoing Campaign", "in_progress")], 1.0);
        let total: f64 = got
            .iter()
            .filter(|(k, _)| k.starts_with("awareness_knowbe4_enrollments{"))
            .map(|(_, v)| v)
            .sum();
        assert_eq!(total, 8.0);
        let m = |module, status| {
            series(
                "awareness_knowbe4_module_enrollments",
                &[("account", "acme"), ("module", module), ("status", status)],
            )
        };
        assert_eq!(got[&m("Acceptable Use Policy", "passed")], 2.0);
        let campaigns_total: f64 = got
            .iter()
            .filter(|(k, _)| k.starts_with("awareness_knowbe4_training_campaigns{"))
            .map(|(_, v)| v)
            .sum();
        assert_eq!(campaigns_total, campaigns.len() as f64);
    }

    #[test]
    fn past_due_is_its_own_status_and_unknown_statuses_are_kept() {
        let rows: Vec<Enrollment> = serde_json::from_str(
            r#"[{"enrollment_id":1,"campaign_name":"C","status":"Past Due","user":{"id":1}},
                {"enrollment_id":2,"campaign_name":"C","status":"Something New","user":{"id":1}},
                {"enrollment_id":3,"campaign_name":"C","status":null,"user":{"id":1}}]"#,
        )
        .unwrap();
        let (m, stats) = (MetricsConfig::default(), ApiStats::default());
        let got = render(training(&key(), enrollments(rows), &[], &m, &stats));
        assert_eq!(
            got[&series("awareness_knowbe4_users_overdue", &[("account", "acme")])],
            1.0
        );
        for status in ["past_due", "something_new", "unknown"] {
            let k = series(
                "awareness_knowbe4_enrollments",
                &[("account", "acme"), ("campaign", "C"), ("status", status)],
            );
            assert_eq!(got.get(&k), Some(&1.0), "{k}");
        }
    }

    #[test]
    fn the_empty_page_past_the_end_is_an_empty_array() {
        let (len, _, rows) = page::<SecurityTest>("rec_eu_empty_page.json");
        assert_eq!((len, rows.len()), (0, 0));
    }

    #[test]
    fn rare_campaign_names_fold_into_other_beyond_max_label_values() {
        let rows: Vec<Enrollment> = serde_json::from_str(
            r#"[{"enrollment_id":1,"campaign_name":"A","module_name":"M","status":"Passed","user":{"id":1}},
                {"enrollment_id":2,"campaign_name":"A","module_name":"M","status":"Past Due","user":{"id":2}},
                {"enrollment_id":3,"campaign_name":"B","module_name":"M","status":"Passed","user":{"id":3}},
                {"enrollment_id":4,"campaign_name":"B","module_name":"N","status":"Passed","user":{"id":4}},
                {"enrollment_id":5,"campaign_name":"C","module_name":"O","status":"Passed","user":{"id":5}}]"#,
        )
        .unwrap();
        let stats = ApiStats::default();
        let m = MetricsConfig {
            max_label_values: 1,
            ..MetricsConfig::default()
        };
        let got = render(training(&key(), enrollments(rows), &[], &m, &stats));
        let c = enrollment_series;
        // A and B have two each: A wins the tie by name; B and C fold.
        assert_eq!(got[&c("A", "passed")], 1.0);
        assert_eq!(got[&c("A", "past_due")], 1.0);
        assert_eq!(got[&c("__other__", "passed")], 3.0);
        assert_eq!(got.keys().filter(|k| k.contains("campaign=")).count(), 3);
        let snap = stats.snapshot();
        assert_eq!(snap.labels_folded.get("campaign"), Some(&2));
        assert_eq!(snap.labels_folded.get("module"), Some(&2));
    }
}
