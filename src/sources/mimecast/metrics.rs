//! Turns Mimecast rows into the contract's metrics: by department, grade, module or campaign,
//! and per user only with `per_user`. Rows are folded into an accumulator per section as their
//! pages arrive (see [`aggregate`](crate::sources::aggregate)); a section renders from its
//! accumulator when every page has been read. Each section's families are a table, one per
//! figure of its accumulator and in the same order.

use std::collections::BTreeMap;

use super::models::*;
use crate::config::MetricsConfig;
use crate::model::SourceKey;
use crate::snapshot::MetricsBuilder;
use crate::sources::aggregate::{ByLabel, Merge, UserRows};
use crate::stats::ApiStats;

/// A metric family as its `# HELP` line says it: the name, a space, the help.
type Family = &'static str;

fn n(v: Option<f64>) -> f64 {
    v.unwrap_or(0.0).max(0.0)
}

fn flag(v: bool) -> f64 {
    f64::from(u8::from(v))
}

/// One section as it is rendered: its metrics, the account they belong to, and what bounds
/// the department and per-user figures.
pub(crate) struct Section<'a> {
    pub(crate) b: MetricsBuilder,
    pub(crate) key: &'a SourceKey,
    pub(crate) m: &'a MetricsConfig,
    pub(crate) stats: &'a ApiStats,
}

impl Section<'_> {
    /// One gauge of each family, labelled by the account and `labels`, its value the one at
    /// the same place in `values` (`None` publishes nothing).
    fn gauges<const N: usize>(
        &mut self,
        labels: &[(&str, &str)],
        families: &[Family; N],
        values: [Option<f64>; N],
    ) {
        let account = [("account", self.key.account.as_str())];
        let labels: Vec<_> = account.iter().chain(labels).copied().collect();
        for (family, v) in families.iter().zip(values) {
            let (name, help) = family.split_once(' ').unwrap_or((family, ""));
            if let Some(v) = v {
                self.b.gauge(name, help, &labels, v);
            }
        }
    }

    fn gauge(&mut self, labels: &[(&str, &str)], family: Family, v: f64) {
        self.gauges(labels, &[family], [Some(v)]);
    }
}

/// User rows folded by department: `D` sums over the users that count, and the users left
/// out by their `userState`; with `per_user`, `U` figures per user.
#[derive(Default)]
pub(crate) struct People<const D: usize, const U: usize> {
    by: ByLabel<Department<D>>,
    users: Option<UserRows<[f64; U]>>,
}

/// One department's sums (`None` while no user of it counts) and its users left out, by state
/// in lower case.
#[derive(Default)]
pub(crate) struct Department<const D: usize> {
    counted: Option<[f64; D]>,
    excluded: BTreeMap<String, f64>,
}

impl<const D: usize> Merge for Department<D> {
    fn absorb(&mut self, other: Self) {
        self.counted.absorb(other.counted);
        self.excluded.absorb(other.excluded);
    }
}

impl<const D: usize, const U: usize> People<D, U>
where
    [f64; U]: Default,
{
    pub(crate) fn new(m: &MetricsConfig) -> Self {
        People {
            by: ByLabel::default(),
            users: m.per_user.then(|| UserRows::new(m.max_users)),
        }
    }

    /// Folds one user's row in: its department's `sums` and the user's `own` figures, or only
    /// the department's users left out when its `state` does not count.
    fn add(
        &mut self,
        department: &Option<String>,
        state: &Option<String>,
        email: &Option<String>,
        sums: [f64; D],
        own: [f64; U],
    ) {
        let d = self.by.row(department.as_deref());
        if !counts_as_user(state) {
            let state = state
                .as_deref()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            *d.excluded.entry(state).or_default() += 1.0;
            return;
        }
        d.counted.absorb(Some(sums));
        let users = self.users.as_mut().zip(email.as_deref());
        if let Some(user) = users.and_then(|(users, email)| users.entry(email)) {
            user.absorb(own);
        }
    }

    /// Renders the kept users (a gauge of each family of `own`) and gives the departments,
    /// `metrics.max_label_values` applied.
    fn finish(self, out: &mut Section, own: &[Family; U]) -> BTreeMap<String, Department<D>> {
        for (email, v) in self.users.map(|u| u.finish(out.key)).into_iter().flatten() {
            out.gauges(&[("email", &email)], own, v.map(Some));
        }
        self.by
            .finish(out.key, "department", out.m.max_label_values, out.stats)
    }
}

/// company/get-performance-details by department: users, modules not watched, answers
/// correct and incorrect; per user: modules not watched.
pub(crate) type Performance = People<4, 1>;

const PERFORMANCE: [Family; 4] = [
    "awareness_mimecast_users Users in the department (performance details)",
    "awareness_mimecast_modules_not_watched Training modules not watched by the department's users",
    "awareness_mimecast_answers_correct Correct module answers of the department's users",
    "awareness_mimecast_answers_incorrect Incorrect module answers of the department's users",
];

const EXCLUDED: Family =
    "awareness_mimecast_users_excluded Users of the department left out of the Mimecast user \
     figures because their userState is not ACTIVE, by state (performance details)";

const PERFORMANCE_USER: [Family; 1] =
    ["awareness_mimecast_user_modules_not_watched Training modules the user has not watched"];

pub(crate) fn performance_row(acc: &mut Performance, _: usize, r: &UserRow) {
    let not_watched = n(r.num_not_watched);
    let sums = [1.0, not_watched, n(r.num_correct), n(r.num_incorrect)];
    acc.add(&r.department, &r.user_state, &r.email, sums, [not_watched]);
}

pub(crate) fn performance(out: &mut Section, acc: Performance) {
    for (d, t) in acc.finish(out, &PERFORMANCE_USER) {
        if let Some(sums) = t.counted {
            out.gauges(&[("department", &d)], &PERFORMANCE, sums.map(Some));
        }
        for (state, v) in t.excluded {
            out.gauge(&[("department", &d), ("state", &state)], EXCLUDED, v);
        }
    }
}

/// company/get-watchlist-details by department: users on the watchlist and entries; per user:
/// entries.
pub(crate) type Watchlist = People<2, 1>;

const WATCHLIST: [Family; 2] = [
    "awareness_mimecast_watchlist_users Users of the department on the watchlist (watchlistCount \
     > 0)",
    "awareness_mimecast_watchlist_entries Sum of the department's users' watchlistCount \
     (watchlist entries)",
];

const WATCHLIST_USER: [Family; 1] =
    ["awareness_mimecast_user_watchlist_entries The user's watchlistCount (watchlist entries)"];

pub(crate) fn watchlist_row(acc: &mut Watchlist, _: usize, r: &UserRow) {
    let entries = n(r.watchlist_count);
    let sums = [flag(entries > 0.0), entries];
    acc.add(&r.department, &r.user_state, &r.email, sums, [entries]);
}

pub(crate) fn watchlist(out: &mut Section, acc: Watchlist) {
    for (d, t) in acc.finish(out, &WATCHLIST_USER) {
        if let Some(sums) = t.counted {
            out.gauges(&[("department", &d)], &WATCHLIST, sums.map(Some));
        }
    }
}

/// company/get-safe-score-details: users that count, per risk grade (upper case; `unknown`
/// when the row has none).
pub(crate) fn safe_score_row(by: &mut BTreeMap<String, f64>, _: usize, r: &UserRow) {
    if counts_as_user(&r.user_state) {
        let grade = r.risk.as_deref().map(str::trim).filter(|g| !g.is_empty());
        *by.entry(grade.map_or("unknown".into(), str::to_uppercase))
            .or_default() += 1.0;
    }
}

const SAFE_SCORE: Family = "awareness_mimecast_safe_score_users Users per SAFE score risk grade";

pub(crate) fn safe_score(out: &mut Section, by: BTreeMap<String, f64>) {
    for (grade, v) in by {
        out.gauge(&[("grade", &grade)], SAFE_SCORE, v);
    }
}

/// company/get-performance-summary: company totals, the sums over its department entries (the
/// catalogue names no department) in [`DepartmentCompletion::counts`]'s order; a count the
/// vendor never sent stays absent rather than 0.
pub(crate) fn summary_row(sums: &mut [Option<f64>; 8], _: usize, r: &PerformanceSummaryRow) {
    for d in r.department_completion_stats.iter().flatten() {
        for (sum, v) in sums.iter_mut().zip(d.counts()) {
            *sum = v.map(|v| sum.unwrap_or(0.0) + v.max(0.0)).or(*sum);
        }
    }
}

const SUMMARY: [Family; 3] = [
    "awareness_mimecast_participating_users Users participating in training, company-wide \
     (performance-summary numParticipating)",
    "awareness_mimecast_videos_sent Training videos sent to users, company-wide \
     (performance-summary numVideosSent)",
    "awareness_mimecast_videos_not_watched Training videos sent but not yet watched, company-wide \
     (performance-summary numVideosNotWatched)",
];

const BY_INCORRECT: [Family; 1] = [
    "awareness_mimecast_users_by_incorrect_answers Users by how many training videos they \
     answered incorrectly (0, 1, 2, 3, 4+), company-wide (performance-summary num*Incorrect)",
];

pub(crate) fn performance_summary(out: &mut Section, sums: [Option<f64>; 8]) {
    let [participating, sent, not_watched, by_incorrect @ ..] = sums;
    out.gauges(&[], &SUMMARY, [participating, sent, not_watched]);
    for (incorrect, v) in ["0", "1", "2", "3", "4+"].into_iter().zip(by_incorrect) {
        out.gauges(&[("incorrect", incorrect)], &BY_INCORRECT, [v]);
    }
}
/// user/get-training-details: its request selects no user and its rows carry no identity, so
/// it describes the calling (API) user's own training, not the company's. Published under
/// names that say so; company-wide module figures come from campaign/get-campaigns.
const TRAINING: [Family; 4] = [
    "awareness_mimecast_users_need_engagement 1 when the API user's own training record \
     (user/get-training-details) needs engagement; not a company-wide count (the endpoint \
     describes the calling user)",
    "awareness_mimecast_api_user_modules_assigned Training modules assigned to the API user \
     itself (user/get-training-details)",
    "awareness_mimecast_api_user_modules_watched Training modules the API user itself has watched \
     (user/get-training-details)",
    "awareness_mimecast_api_user_modules_on_watchlist Training modules for which the API user \
     itself is on the watchlist (user/get-training-details)",
];

pub(crate) fn training_row(sums: &mut [f64; 4], _: usize, r: &TrainingRow) {
    sums[0] += flag(r.need_engagement == Some(true));
    for t in r.training.iter().flatten() {
        let (watched, listed) = (t.watched == Some(true), t.on_watchlist == Some(true));
        sums.absorb([0.0, 1.0, flag(watched), flag(listed)]);
    }
}

pub(crate) fn training(out: &mut Section, sums: [f64; 4]) {
    out.gauges(&[], &TRAINING, sums.map(Some));
}

/// `forQuestion2` → `2`.
fn question(key: &str) -> String {
    let digits: String = key.chars().filter(|c| c.is_ascii_digit()).collect();
    crate::sources::lenient::cut(if digits.is_empty() {
        key.to_string()
    } else {
        digits
    })
}

/// One training campaign's users (campaign/get-user-data), folded: users, acknowledged, and
/// answers by question and result.
#[derive(Debug, Default)]
pub(crate) struct CampaignUsers {
    users: f64,
    acknowledged: f64,
    answers: BTreeMap<(String, &'static str), f64>,
}

/// Folds a user of campaign number `campaign` in.
pub(crate) fn campaign_user_row(
    all: &mut BTreeMap<usize, CampaignUsers>,
    campaign: usize,
    r: &CampaignUserRow,
) {
    let c = all.entry(campaign).or_default();
    c.users += 1.0;
    c.acknowledged += flag(r.acknowledgement == Some(true));
    for (q, result) in r.results.iter().flatten() {
        let result = result.as_deref().map(str::trim).unwrap_or_default();
        let mut known = ["correct", "incorrect", "sent"].into_iter();
        if let Some(result) = known.find(|k| result.eq_ignore_ascii_case(k)) {
            *c.answers.entry((question(q), result)).or_default() += 1.0;
        }
    }
}

const MODULE: [Family; 2] = [
    "awareness_mimecast_module_assigned Users the training module was sent to, over all its \
     campaigns (sum of numSent)",
    "awareness_mimecast_module_watched Users who completed the training module, over all its \
     campaigns (sum of numCompleted)",
];

const CAMPAIGN: [Family; 5] = [
    "awareness_mimecast_campaign_users Users in the training campaign",
    "awareness_mimecast_campaign_completed_users Users who completed the training campaign (the \
     vendor's numCompleted)",
    "awareness_mimecast_campaign_launch_timestamp_seconds Unix time the training campaign was \
     launched",
    "awareness_mimecast_campaign_acknowledged_users Users who acknowledged the training campaign",
    "awareness_mimecast_campaign_correct_ratio Correct answers over all answered questions of the \
     training campaign",
];

const ANSWERS: Family =
    "awareness_mimecast_campaign_answers Answers per question and result in the training campaign";

/// campaign/get-campaigns and campaign/get-user-data: per campaign, and company-wide per
/// module (`title.title`) as the sums of the vendor's own numSent / numCompleted.
pub(crate) fn campaigns(
    out: &mut Section,
    campaigns: &[Campaign],
    mut users: BTreeMap<usize, CampaignUsers>,
) {
    let mut modules: BTreeMap<&str, [f64; 2]> = BTreeMap::new();
    for c in campaigns {
        if let Some(module) = c.module() {
            let sums = [n(c.num_sent), n(c.num_completed)];
            modules.entry(module).or_default().absorb(sums);
        }
    }
    for (module, sums) in modules {
        out.gauges(&[("module", module)], &MODULE, sums.map(Some));
    }
    for (i, c) in campaigns.iter().enumerate() {
        let u = users.remove(&i).unwrap_or_default();
        let id = c.id.as_deref().unwrap_or_default();
        let l = [("campaign_id", id), ("campaign", c.label())];
        let answered = |r: &str| -> f64 {
            let of = u.answers.iter().filter(|((_, result), _)| *result == r);
            of.map(|(_, v)| v).sum()
        };
        let (correct, incorrect) = (answered("correct"), answered("incorrect"));
        let ratio = (correct + incorrect > 0.0).then(|| correct / (correct + incorrect));
        let values = [
            Some(u.users),
            c.num_completed.map(|v| v.max(0.0)),
            c.launch_date.as_deref().and_then(parse_timestamp),
            Some(u.acknowledged),
            ratio,
        ];
        out.gauges(&l, &CAMPAIGN, values);
        for ((q, result), v) in &u.answers {
            out.gauge(
                &[l[0], l[1], ("question", q), ("result", result)],
                ANSWERS,
                *v,
            );
        }
    }
}

/// phishing/campaign/get-user-data over all phishing campaigns, folded: recipients by
/// department and outcome (one per recipient and campaign), per recipient only with
/// `per_user` (clicked, reported), and the recipients who reported, by campaign number.
#[derive(Default)]
pub(crate) struct Phishing {
    people: People<5, 2>,
    reported: BTreeMap<usize, f64>,
}

impl Phishing {
    pub(crate) fn new(m: &MetricsConfig) -> Self {
        let people = People::new(m);
        Phishing {
            people,
            reported: BTreeMap::new(),
        }
    }
}

/// The outcomes of a phishing recipient: its steps (each implies the ones before), then
/// whether it reported.
const OUTCOMES: [&str; 5] = ["sent", "opened", "clicked", "submitted", "reported"];

/// Folds a recipient of campaign number `campaign` in.
pub(crate) fn phishing_row(acc: &mut Phishing, campaign: usize, r: &PhishingUserRow) {
    let reported = flag(r.reported());
    *acc.reported.entry(campaign).or_default() += reported;
    let mut outcomes = [0.0, 0.0, 0.0, 0.0, reported];
    outcomes[..=r.step()].fill(1.0);
    let own = [outcomes[2], reported];
    acc.people
        .add(&r.department, &None, &r.email, outcomes, own);
}

const PHISHING: [Family; 7] = [
    "awareness_mimecast_phishing_emails_sent Phishing emails sent in the campaign",
    "awareness_mimecast_phishing_emails_opened Phishing emails opened in the campaign",
    "awareness_mimecast_phishing_links_clicked Phishing links clicked in the campaign",
    "awareness_mimecast_phishing_data_submitted Phishing data submissions in the campaign",
    "awareness_mimecast_phishing_launch_timestamp_seconds Unix time the phishing campaign was \
     launched",
    // Counted from the recipients' timeReported: the report figure every campaign has.
    "awareness_mimecast_phishing_reported_recipients Recipients of the campaign who reported the \
     phishing email (phishing/campaign/get-user-data timeReported)",
    // The vendor documents no numReported: published only where it was sent.
    "awareness_mimecast_phishing_reported Phishing emails reported in the campaign (only where \
     the vendor sends numReported)",
];

const PHISHING_DEPARTMENT: Family =
    "awareness_mimecast_phishing_department_recipients Phishing recipients of the department over \
     all phishing campaigns (one per recipient and campaign) by outcome: sent (all), opened, \
     clicked, submitted (each implies the ones before), reported";

const PHISHING_USER: [Family; 2] = [
    "awareness_mimecast_user_phishing_clicked Phishing campaigns in which the user clicked a link \
     (or submitted data)",
    "awareness_mimecast_user_phishing_reported Phishing campaigns in which the user reported the \
     email",
];

/// phishing/campaign/get-campaign, with each campaign's recipients
/// (phishing/campaign/get-user-data).
pub(crate) fn phishing(out: &mut Section, campaigns: &[PhishingCampaign], acc: Phishing) {
    for (i, c) in campaigns.iter().enumerate() {
        let id = c.id.as_deref().unwrap_or_default();
        let name = c.name.as_deref().unwrap_or_default();
        let values = [
            Some(n(c.num_sent)),
            Some(n(c.num_opened)),
            Some(n(c.num_clicked)),
            Some(n(c.num_submitted)),
            c.launch_date.as_deref().and_then(parse_timestamp),
            Some(acc.reported.get(&i).copied().unwrap_or(0.0)),
            c.num_reported.map(|v| v.max(0.0)),
        ];
        out.gauges(
            &[("campaign_id", id), ("campaign", name)],
            &PHISHING,
            values,
        );
    }
    for (d, t) in acc.people.finish(out, &PHISHING_USER) {
        let Some(sums) = t.counted else { continue };
        for (outcome, v) in OUTCOMES.into_iter().zip(sums) {
            let l = [("department", d.as_str()), ("outcome", outcome)];
            out.gauge(&l, PHISHING_DEPARTMENT, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Platform;
    use crate::snapshot::merge;

    /// The text of what `render` publishes for account `a`.
    fn render(m: &MetricsConfig, render: impl FnOnce(&mut Section)) -> String {
        let key = SourceKey::new(Platform::new("mimecast"), "a");
        let stats = ApiStats::default();
        let b = MetricsBuilder::new();
        let mut out = Section {
            b,
            key: &key,
            m,
            stats: &stats,
        };
        render(&mut out);
        merge([&out.b.finish()])
    }

    fn row(email: &str, department: &str, not_watched: f64, state: &str) -> UserRow {
        UserRow {
            email: Some(email.to_string()),
            department: Some(department.to_string()),
            num_not_watched: Some(not_watched),
            user_state: Some(state.to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn performance_keeps_only_max_users_rows() {
        let m = MetricsConfig {
            per_user: true,
            max_users: 2,
            ..Default::default()
        };
        let mut acc = Performance::new(&m);
        for i in 0..1_000 {
            performance_row(
                &mut acc,
                0,
                &row(&format!("u{i:04}@x"), "Sales", 1.0, "ACTIVE"),
            );
        }
        performance_row(&mut acc, 0, &row("gone@x", "Ops", 0.0, "DELETED"));
        assert_eq!(
            acc.users.as_ref().map(|u| u.len()),
            Some(2),
            "bounded by max_users"
        );
        let text = render(&m, |out| performance(out, acc));
        assert!(text.contains("awareness_mimecast_users{account=\"a\",department=\"Sales\"} 1000"));
        assert!(text.contains(
            "awareness_mimecast_modules_not_watched{account=\"a\",department=\"Sales\"} 1000"
        ));
        assert!(text.contains(
            "awareness_mimecast_users_excluded{account=\"a\",department=\"Ops\",state=\"deleted\"} 1"
        ));
        assert!(
            !text.contains("awareness_mimecast_users{account=\"a\",department=\"Ops\"}"),
            "a department with only excluded users has no user figure"
        );
        assert!(text.contains("email=\"u0000@x\""));
        assert!(text.contains("email=\"u0001@x\""));
        assert!(!text.contains("email=\"u0002@x\""));
    }

    #[test]
    fn the_summary_sums_what_was_sent_and_leaves_out_what_was_not() {
        let row: PerformanceSummaryRow = serde_json::from_str(
            r#"{"departmentCompletionStats":[{"numParticipating":3,"numOneIncorrect":2},
                {"numParticipating":4,"numZeroIncorrect":null}]}"#,
        )
        .unwrap();
        let mut sums = Default::default();
        summary_row(&mut sums, 0, &row);
        let text = render(&MetricsConfig::default(), |out| {
            performance_summary(out, sums)
        });
        assert!(text.contains("awareness_mimecast_participating_users{account=\"a\"} 7"));
        assert!(text.contains(
            "awareness_mimecast_users_by_incorrect_answers{account=\"a\",incorrect=\"1\"} 2"
        ));
        assert!(
            !text.contains("incorrect=\"0\""),
            "never sent: absent, not 0"
        );
        assert!(!text.contains("awareness_mimecast_videos_sent"));
    }

    #[test]
    fn phishing_outcomes_imply_the_steps_before() {
        let m = MetricsConfig {
            per_user: true,
            ..Default::default()
        };
        let mut acc = Phishing::new(&m);
        for (campaign, status) in [(0, "submitted"), (1, "reported")] {
            let r = PhishingUserRow {
                email: Some("u@x".into()),
                department: Some("D".into()),
                status: Some(status.into()),
                ..Default::default()
            };
            phishing_row(&mut acc, campaign, &r);
        }
        assert_eq!(acc.reported, BTreeMap::from([(0, 0.0), (1, 1.0)]));
        let text = render(&m, |out| phishing(out, &[], acc));
        let outcome = |o: &str, v: u8| {
            format!("awareness_mimecast_phishing_department_recipients{{account=\"a\",department=\"D\",outcome=\"{o}\"}} {v}")
        };
        for (o, v) in [
            ("sent", 2),
            ("clicked", 1),
            ("submitted", 1),
            ("reported", 1),
        ] {
            assert!(text.contains(&outcome(o, v)), "{o}: {text}");
        }
        assert!(text
            .contains("awareness_mimecast_user_phishing_clicked{account=\"a\",email=\"u@x\"} 1"));
    }

    #[test]
    fn without_per_user_no_user_rows_are_held() {
        let m = MetricsConfig::default();
        let mut acc = Phishing::new(&m);
        for i in 0..100 {
            let r = PhishingUserRow {
                email: Some(format!("u{i}@x")),
                department: Some("D".into()),
                status: Some("clicked".into()),
                ..Default::default()
            };
            phishing_row(&mut acc, 0, &r);
        }
        assert!(acc.people.users.is_none());
        assert_eq!(acc.people.by.len(), 1);
    }
}
