//! Turns Mimecast rows into the contract's metrics: by department, grade, module or campaign,
//! and per user only with `per_user`. Rows are folded into an accumulator per section as their
//! pages arrive (see [`aggregate`](crate::sources::aggregate)); a section renders from its
//! accumulator when every page has been read.

use std::collections::BTreeMap;

use super::models::*;
use crate::config::MetricsConfig;
use crate::model::SourceKey;
use crate::snapshot::MetricsBuilder;
use crate::sources::aggregate::{ByLabel, Merge, UserRows};
use crate::stats::ApiStats;

fn n(v: Option<f64>) -> f64 {
    v.unwrap_or(0.0).max(0.0)
}

/// A user's state in lower case, for `awareness_mimecast_users_excluded{state}`.
fn state_label(state: &Option<String>) -> String {
    state
        .as_deref()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Per-user rows of a section: only with `per_user`, at most `max_users`.
fn user_rows<T: Default>(m: &MetricsConfig) -> Option<UserRows<T>> {
    m.per_user.then(|| UserRows::new(m.max_users))
}

/// One department's performance figures: users, not watched, correct, incorrect (ACTIVE users
/// only; `None` while the department has none) and the users left out, by state.
#[derive(Debug, Default)]
pub struct PerformanceTotals {
    active: Option<[f64; 4]>,
    excluded: BTreeMap<String, f64>,
}

impl Merge for PerformanceTotals {
    fn absorb(&mut self, other: Self) {
        self.active.absorb(other.active);
        self.excluded.absorb(other.excluded);
    }
}

/// company/get-performance-details, folded.
#[derive(Default)]
pub struct Performance {
    by: ByLabel<PerformanceTotals>,
    users: Option<UserRows<f64>>,
}

impl Performance {
    pub fn new(m: &MetricsConfig) -> Self {
        Performance {
            users: user_rows(m),
            ..Performance::default()
        }
    }

    /// Folds one user's row in; a user already counted (the same email) is not counted again.
    pub fn add(&mut self, r: &PerformanceRow) {
        let t = self.by.row(r.department.as_deref());
        if !counts_as_user(&r.user_state) {
            *t.excluded.entry(state_label(&r.user_state)).or_default() += 1.0;
            return;
        }
        let a = t.active.get_or_insert_default();
        a[0] += 1.0;
        a[1] += n(r.num_not_watched);
        a[2] += n(r.num_correct);
        a[3] += n(r.num_incorrect);
        if let (Some(users), Some(email)) = (self.users.as_mut(), r.email.as_deref()) {
            if let Some(u) = users.entry(email) {
                *u = n(r.num_not_watched);
            }
        }
    }
}

pub fn performance(
    b: &mut MetricsBuilder,
    key: &SourceKey,
    account: &str,
    acc: Performance,
    m: &MetricsConfig,
    stats: &ApiStats,
) {
    let by = acc.by.finish(key, "department", m.max_label_values, stats);
    for (d, t) in by.iter().filter_map(|(d, t)| Some((d.as_str(), t.active?))) {
        let l = [("account", account), ("department", d)];
        b.gauge(
            "awareness_mimecast_users",
            "Users in the department (performance details)",
            &l,
            t[0],
        );
        b.gauge(
            "awareness_mimecast_modules_not_watched",
            "Training modules not watched by the department's users",
            &l,
            t[1],
        );
        b.gauge(
            "awareness_mimecast_answers_correct",
            "Correct module answers of the department's users",
            &l,
            t[2],
        );
        b.gauge(
            "awareness_mimecast_answers_incorrect",
            "Incorrect module answers of the department's users",
            &l,
            t[3],
        );
    }
    for (d, state, v) in by
        .iter()
        .flat_map(|(d, t)| t.excluded.iter().map(move |(s, v)| (d.as_str(), s, *v)))
    {
        b.gauge(
            "awareness_mimecast_users_excluded",
            "Users of the department left out of the Mimecast user figures because their \
             userState is not ACTIVE, by state (performance details)",
            &[
                ("account", account),
                ("department", d),
                ("state", state.as_str()),
            ],
            v,
        );
    }
    for (email, v) in acc.users.map(|u| u.finish(key)).into_iter().flatten() {
        b.gauge(
            "awareness_mimecast_user_modules_not_watched",
            "Training modules the user has not watched",
            &[("account", account), ("email", &*email)],
            v,
        );
    }
}

/// company/get-watchlist-details, folded: per department, users on the watchlist and entries
/// (ACTIVE users only; `None` while the department has none).
#[derive(Default)]
pub struct Watchlist {
    by: ByLabel<Option<[f64; 2]>>,
    users: Option<UserRows<f64>>,
}

impl Watchlist {
    pub fn new(m: &MetricsConfig) -> Self {
        Watchlist {
            users: user_rows(m),
            ..Watchlist::default()
        }
    }

    pub fn add(&mut self, r: &WatchlistRow) {
        let slot = self.by.row(r.department.as_deref());
        if !counts_as_user(&r.user_state) {
            return;
        }
        let t = slot.get_or_insert_default();
        if n(r.watchlist_count) > 0.0 {
            t[0] += 1.0;
        }
        t[1] += n(r.watchlist_count);
        if let (Some(users), Some(email)) = (self.users.as_mut(), r.email.as_deref()) {
            if let Some(u) = users.entry(email) {
                *u = n(r.watchlist_count);
            }
        }
    }
}

pub fn watchlist(
    b: &mut MetricsBuilder,
    key: &SourceKey,
    account: &str,
    acc: Watchlist,
    m: &MetricsConfig,
    stats: &ApiStats,
) {
    let by = acc.by.finish(key, "department", m.max_label_values, stats);
    for (d, t) in by.iter().filter_map(|(d, t)| Some((d.as_str(), (*t)?))) {
        let l = [("account", account), ("department", d)];
        b.gauge(
            "awareness_mimecast_watchlist_users",
            "Users of the department on the watchlist (watchlistCount > 0)",
            &l,
            t[0],
        );
        b.gauge(
            "awareness_mimecast_watchlist_entries",
            "Sum of the department's users' watchlistCount (watchlist entries)",
            &l,
            t[1],
        );
    }
    for (email, v) in acc.users.map(|u| u.finish(key)).into_iter().flatten() {
        b.gauge(
            "awareness_mimecast_user_watchlist_entries",
            "The user's watchlistCount (watchlist entries)",
            &[("account", account), ("email", &*email)],
            v,
        );
    }
}

/// company/get-safe-score-details, folded: ACTIVE users per risk grade.
#[derive(Default)]
pub struct SafeScore {
    by: BTreeMap<String, f64>,
}

impl SafeScore {
    pub fn add(&mut self, r: &SafeScoreRow) {
        if !counts_as_user(&r.user_state) {
            return;
        }
        let grade = r.risk.as_deref().map(str::trim).unwrap_or_default();
        let grade = if grade.is_empty() {
            "unknown".to_string()
        } else {
            grade.to_uppercase()
        };
        *self.by.entry(grade).or_default() += 1.0;
    }
}

pub fn safe_score(b: &mut MetricsBuilder, account: &str, acc: SafeScore) {
    for (grade, v) in acc.by {
        b.gauge(
            "awareness_mimecast_safe_score_users",
            "Users per SAFE score risk grade",
            &[("account", account), ("grade", &grade)],
            v,
        );
    }
}

/// company/get-performance-summary: company totals, the sums over its department entries (the
/// catalogue names no department); a count the vendor never sent stays absent rather than 0.
pub fn performance_summary(b: &mut MetricsBuilder, account: &str, rows: &[PerformanceSummaryRow]) {
    let mut sums = [None::<f64>; 8];
    for d in rows
        .iter()
        .flat_map(|r| r.department_completion_stats.iter().flatten())
    {
        let counts = [
            d.num_participating,
            d.num_videos_sent,
            d.num_videos_not_watched,
            d.num_zero_incorrect,
            d.num_one_incorrect,
            d.num_two_incorrect,
            d.num_three_incorrect,
            d.num_four_or_more_incorrect,
        ];
        for (sum, v) in sums.iter_mut().zip(counts) {
            *sum = v.map(|v| sum.unwrap_or(0.0) + v.max(0.0)).or(*sum);
        }
    }
    let [participating, sent, not_watched, by_incorrect @ ..] = sums;
    let l = [("account", account)];
    for (name, help, v) in [
        (
            "awareness_mimecast_participating_users",
            "Users participating in training, company-wide (performance-summary numParticipating)",
            participating,
        ),
        (
            "awareness_mimecast_videos_sent",
            "Training videos sent to users, company-wide (performance-summary numVideosSent)",
            sent,
        ),
        (
            "awareness_mimecast_videos_not_watched",
            "Training videos sent but not yet watched, company-wide (performance-summary \
             numVideosNotWatched)",
            not_watched,
        ),
    ] {
        if let Some(v) = v {
            b.gauge(name, help, &l, v);
        }
    }
    for (incorrect, v) in ["0", "1", "2", "3", "4+"].into_iter().zip(by_incorrect) {
        if let Some(v) = v {
            b.gauge(
                "awareness_mimecast_users_by_incorrect_answers",
                "Users by how many training videos they answered incorrectly (0, 1, 2, 3, 4+), \
                 company-wide (performance-summary num*Incorrect)",
                &[("account", account), ("incorrect", incorrect)],
                v,
            );
        }
    }
}

/// user/get-training-details: its request selects no user and its rows carry no identity, so
/// it describes the calling (API) user's own training, not the company's. Published under
/// names that say so; company-wide module figures come from campaign/get-campaigns.
pub fn training(b: &mut MetricsBuilder, account: &str, rows: &[TrainingRow]) {
    let (mut need, mut assigned, mut watched, mut on_watchlist) = (0.0, 0.0, 0.0, 0.0);
    for r in rows {
        if r.need_engagement == Some(true) {
            need += 1.0;
        }
        for t in r.training.iter().flatten() {
            assigned += 1.0;
            if t.watched == Some(true) {
                watched += 1.0;
            }
            if t.on_watchlist == Some(true) {
                on_watchlist += 1.0;
            }
        }
    }
    let l = [("account", account)];
    b.gauge(
        "awareness_mimecast_users_need_engagement",
        "1 when the API user's own training record (user/get-training-details) needs engagement; \
         not a company-wide count (the endpoint describes the calling user)",
        &l,
        need,
    );
    b.gauge(
        "awareness_mimecast_api_user_modules_assigned",
        "Training modules assigned to the API user itself (user/get-training-details)",
        &l,
        assigned,
    );
    b.gauge(
        "awareness_mimecast_api_user_modules_watched",
        "Training modules the API user itself has watched (user/get-training-details)",
        &l,
        watched,
    );
    b.gauge(
        "awareness_mimecast_api_user_modules_on_watchlist",
        "Training modules for which the API user itself is on the watchlist (user/get-training-details)",
        &l,
        on_watchlist,
    );
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

/// One training campaign's users (campaign/get-user-data), folded.
#[derive(Debug, Default)]
pub struct CampaignUsers {
    users: f64,
    acknowledged: f64,
    answers: BTreeMap<(String, &'static str), f64>,
    correct: f64,
    incorrect: f64,
}

impl CampaignUsers {
    pub fn add(&mut self, r: &CampaignUserRow) {
        self.users += 1.0;
        if r.acknowledgement == Some(true) {
            self.acknowledged += 1.0;
        }
        for (q, result) in r.results.iter().flatten() {
            let result = match result.as_deref().map(|s| s.trim().to_ascii_lowercase()) {
                Some(s) if s == "correct" => "correct",
                Some(s) if s == "incorrect" => "incorrect",
                Some(s) if s == "sent" => "sent",
                _ => continue,
            };
            match result {
                "correct" => self.correct += 1.0,
                "incorrect" => self.incorrect += 1.0,
                _ => {}
            }
            *self.answers.entry((question(q), result)).or_default() += 1.0;
        }
    }
}

/// campaign/get-campaigns and campaign/get-user-data: per campaign, and company-wide per
/// module (`title.title`) as the sums of the vendor's own numSent / numCompleted.
pub fn campaigns(b: &mut MetricsBuilder, account: &str, all: &[(Campaign, CampaignUsers)]) {
    let mut modules: BTreeMap<&str, [f64; 2]> = BTreeMap::new();
    for (c, _) in all {
        if let Some(module) = c.module() {
            let m = modules.entry(module).or_default();
            m[0] += n(c.num_sent);
            m[1] += n(c.num_completed);
        }
    }
    for (module, [sent, completed]) in modules {
        let l = [("account", account), ("module", module)];
        b.gauge(
            "awareness_mimecast_module_assigned",
            "Users the training module was sent to, over all its campaigns (sum of numSent)",
            &l,
            sent,
        );
        b.gauge(
            "awareness_mimecast_module_watched",
            "Users who completed the training module, over all its campaigns (sum of numCompleted)",
            &l,
            completed,
        );
    }
    for (c, rows) in all {
        let id = c.id.clone().unwrap_or_default();
        let name = c.label();
        let l = [
            ("account", account),
            ("campaign_id", id.as_str()),
            ("campaign", name.as_str()),
        ];
        b.gauge(
            "awareness_mimecast_campaign_users",
            "Users in the training campaign",
            &l,
            rows.users,
        );
        if let Some(completed) = c.num_completed {
            b.gauge(
                "awareness_mimecast_campaign_completed_users",
                "Users who completed the training campaign (the vendor's numCompleted)",
                &l,
                completed.max(0.0),
            );
        }
        if let Some(t) = c.launch_date.as_deref().and_then(parse_timestamp) {
            b.gauge(
                "awareness_mimecast_campaign_launch_timestamp_seconds",
                "Unix time the training campaign was launched",
                &l,
                t.timestamp() as f64,
            );
        }
        b.gauge(
            "awareness_mimecast_campaign_acknowledged_users",
            "Users who acknowledged the training campaign",
            &l,
            rows.acknowledged,
        );
        for ((q, result), v) in &rows.answers {
            b.gauge(
                "awareness_mimecast_campaign_answers",
                "Answers per question and result in the training campaign",
                &[
                    ("account", account),
                    ("campaign_id", id.as_str()),
                    ("campaign", name.as_str()),
                    ("question", q.as_str()),
                    ("result", result),
                ],
                *v,
            );
        }
        let (correct, incorrect) = (rows.correct, rows.incorrect);
        if correct + incorrect > 0.0 {
            b.gauge(
                "awareness_mimecast_campaign_correct_ratio",
                "Correct answers over all answered questions of the training campaign",
                &l,
                correct / (correct + incorrect),
            );
        }
    }
}

/// phishing/campaign/get-user-data over all phishing campaigns, folded: reports per campaign,
/// recipients by department and outcome, and per recipient only with `per_user`.
#[derive(Default)]
pub struct Phishing {
    /// Recipients who reported, by campaign (index in the campaign list).
    reported: Vec<f64>,
    /// sent, opened, clicked, submitted, reported.
    departments: ByLabel<[f64; 5]>,
    /// clicked, reported.
    users: Option<UserRows<[f64; 2]>>,
}

impl Phishing {
    pub fn new(campaigns: usize, m: &MetricsConfig) -> Self {
        Phishing {
            reported: vec![0.0; campaigns],
            departments: ByLabel::default(),
            users: user_rows(m),
        }
    }

    /// Folds one recipient of campaign number `campaign` in.
    pub fn add(&mut self, campaign: usize, r: &PhishingUserRow) {
        let step = r.step();
        let reported = r.reported();
        if reported {
            if let Some(c) = self.reported.get_mut(campaign) {
                *c += 1.0;
            }
        }
        let t = self.departments.row(r.department.as_deref());
        t[0] += 1.0;
        t[1] += f64::from(u8::from(step >= PhishingStep::Opened));
        t[2] += f64::from(u8::from(step >= PhishingStep::Clicked));
        t[3] += f64::from(u8::from(step >= PhishingStep::Submitted));
        t[4] += f64::from(u8::from(reported));
        if let (Some(users), Some(email)) = (self.users.as_mut(), r.email.as_deref()) {
            if let Some(u) = users.entry(email) {
                u[0] += f64::from(u8::from(step >= PhishingStep::Clicked));
                u[1] += f64::from(u8::from(reported));
            }
        }
    }
}

/// phishing/campaign/get-campaign, with each campaign's recipients
/// (phishing/campaign/get-user-data).
pub fn phishing(
    b: &mut MetricsBuilder,
    account: &str,
    campaigns: &[PhishingCampaign],
    acc: &Phishing,
) {
    for (i, c) in campaigns.iter().enumerate() {
        let id = c.id.clone().unwrap_or_default();
        let name = c.name.clone().unwrap_or_default();
        let l = [
            ("account", account),
            ("campaign_id", id.as_str()),
            ("campaign", name.as_str()),
        ];
        b.gauge(
            "awareness_mimecast_phishing_emails_sent",
            "Phishing emails sent in the campaign",
            &l,
            n(c.num_sent),
        );
        if let Some(t) = c.launch_date.as_deref().and_then(parse_timestamp) {
            b.gauge(
                "awareness_mimecast_phishing_launch_timestamp_seconds",
                "Unix time the phishing campaign was launched",
                &l,
                t.timestamp() as f64,
            );
        }
        b.gauge(
            "awareness_mimecast_phishing_emails_opened",
            "Phishing emails opened in the campaign",
            &l,
            n(c.num_opened),
        );
        b.gauge(
            "awareness_mimecast_phishing_links_clicked",
            "Phishing links clicked in the campaign",
            &l,
            n(c.num_clicked),
        );
        b.gauge(
            "awareness_mimecast_phishing_data_submitted",
            "Phishing data submissions in the campaign",
            &l,
            n(c.num_submitted),
        );
        // Counted from the recipients' timeReported: the report figure every campaign has.
        b.gauge(
            "awareness_mimecast_phishing_reported_recipients",
            "Recipients of the campaign who reported the phishing email (phishing/campaign/\
             get-user-data timeReported)",
            &l,
            acc.reported.get(i).copied().unwrap_or(0.0),
        );
        // The vendor documents no numReported: publish it only where it was sent.
        if let Some(reported) = c.num_reported {
            b.gauge(
                "awareness_mimecast_phishing_reported",
                "Phishing emails reported in the campaign (only where the vendor sends numReported)",
                &l,
                reported.max(0.0),
            );
        }
    }
}

/// phishing/campaign/get-user-data over all phishing campaigns, by department: recipients
/// (one per recipient and campaign) and how far they went. Per recipient only with `per_user`.
pub fn phishing_departments(
    b: &mut MetricsBuilder,
    key: &SourceKey,
    account: &str,
    acc: Phishing,
    m: &MetricsConfig,
    stats: &ApiStats,
) {
    let by = acc
        .departments
        .finish(key, "department", m.max_label_values, stats);
    for (d, t) in by {
        for (outcome, v) in ["sent", "opened", "clicked", "submitted", "reported"]
            .iter()
            .zip(t)
        {
            b.gauge(
                "awareness_mimecast_phishing_department_recipients",
                "Phishing recipients of the department over all phishing campaigns (one per \
                 recipient and campaign) by outcome: sent (all), opened, clicked, submitted \
                 (each implies the ones before), reported",
                &[
                    ("account", account),
                    ("department", d.as_str()),
                    ("outcome", outcome),
                ],
                v,
            );
        }
    }
    for (email, [clicked, reported]) in acc.users.map(|u| u.finish(key)).into_iter().flatten() {
        let l = [("account", account), ("email", &*email)];
        b.gauge(
            "awareness_mimecast_user_phishing_clicked",
            "Phishing campaigns in which the user clicked a link (or submitted data)",
            &l,
            clicked,
        );
        b.gauge(
            "awareness_mimecast_user_phishing_reported",
            "Phishing campaigns in which the user reported the email",
            &l,
            reported,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Platform;
    use crate::snapshot::merge;

    fn row(email: &str, department: &str, not_watched: f64, state: &str) -> PerformanceRow {
        PerformanceRow {
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
            acc.add(&row(&format!("u{i:04}@x"), "Sales", 1.0, "ACTIVE"));
        }
        acc.add(&row("gone@x", "Ops", 0.0, "DELETED"));
        assert_eq!(
            acc.users.as_ref().map(|u| u.len()),
            Some(2),
            "bounded by max_users"
        );
        let key = SourceKey::new(Platform::new("mimecast"), "a");
        let mut b = MetricsBuilder::new();
        performance(&mut b, &key, "a", acc, &m, &ApiStats::default());
        let text = merge([&b.finish()]);
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
        let mut b = MetricsBuilder::new();
        performance_summary(&mut b, "a", &[row]);
        let text = merge([&b.finish()]);
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
    fn without_per_user_no_user_rows_are_held() {
        let m = MetricsConfig::default();
        let mut acc = Phishing::new(1, &m);
        for i in 0..100 {
            acc.add(
                0,
                &PhishingUserRow {
                    email: Some(format!("u{i}@x")),
                    department: Some("D".into()),
                    status: Some("clicked".into()),
                    ..Default::default()
                },
            );
        }
        assert!(acc.users.is_none());
        assert_eq!(acc.departments.len(), 1);
    }
}
