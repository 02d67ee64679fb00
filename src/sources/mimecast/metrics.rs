//! Turns Mimecast rows into the contract's metrics: by department, grade, module or campaign,
//! and per user only with `per_user`.

use std::collections::BTreeMap;

use super::models::*;
use crate::config::MetricsConfig;
use crate::snapshot::{MetricsBuilder, SourceKey};
use crate::sources::cap_users;

fn n(v: Option<f64>) -> f64 {
    v.unwrap_or(0.0).max(0.0)
}

fn dept(d: &Option<String>) -> &str {
    d.as_deref().unwrap_or("")
}

pub fn performance(
    b: &mut MetricsBuilder,
    key: &SourceKey,
    account: &str,
    rows: &[PerformanceRow],
    m: &MetricsConfig,
) {
    let mut by: BTreeMap<&str, [f64; 4]> = BTreeMap::new();
    let mut excluded: BTreeMap<(&str, String), f64> = BTreeMap::new();
    for r in rows {
        if !counts_as_user(&r.user_state) {
            let state = r
                .user_state
                .as_deref()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            *excluded.entry((dept(&r.department), state)).or_default() += 1.0;
            continue;
        }
        let t = by.entry(dept(&r.department)).or_default();
        t[0] += 1.0;
        t[1] += n(r.num_not_watched);
        t[2] += n(r.num_correct);
        t[3] += n(r.num_incorrect);
    }
    for (d, t) in by {
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
    for ((d, state), v) in excluded {
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
    if m.per_user {
        let users: Vec<(String, f64)> = rows
            .iter()
            .filter(|r| counts_as_user(&r.user_state))
            .filter_map(|r| Some((r.email.clone()?, n(r.num_not_watched))))
            .collect();
        for (email, v) in cap_users(key, users, m.max_users) {
            b.gauge(
                "awareness_mimecast_user_modules_not_watched",
                "Training modules the user has not watched",
                &[("account", account), ("email", &email)],
                v,
            );
        }
    }
}

pub fn watchlist(
    b: &mut MetricsBuilder,
    key: &SourceKey,
    account: &str,
    rows: &[WatchlistRow],
    m: &MetricsConfig,
) {
    let mut by: BTreeMap<&str, [f64; 2]> = BTreeMap::new();
    for r in rows.iter().filter(|r| counts_as_user(&r.user_state)) {
        let t = by.entry(dept(&r.department)).or_default();
        if n(r.watchlist_count) > 0.0 {
            t[0] += 1.0;
        }
        t[1] += n(r.watchlist_count);
    }
    for (d, t) in by {
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
    if m.per_user {
        let users: Vec<(String, f64)> = rows
            .iter()
            .filter(|r| counts_as_user(&r.user_state))
            .filter_map(|r| Some((r.email.clone()?, n(r.watchlist_count))))
            .collect();
        for (email, v) in cap_users(key, users, m.max_users) {
            b.gauge(
                "awareness_mimecast_user_watchlist_entries",
                "The user's watchlistCount (watchlist entries)",
                &[("account", account), ("email", &email)],
                v,
            );
        }
    }
}

pub fn safe_score(b: &mut MetricsBuilder, account: &str, rows: &[SafeScoreRow]) {
    let mut by: BTreeMap<String, f64> = BTreeMap::new();
    for r in rows.iter().filter(|r| counts_as_user(&r.user_state)) {
        let grade = r
            .risk
            .as_deref()
            .map(|g| g.trim().to_uppercase())
            .filter(|g| !g.is_empty())
            .unwrap_or_else(|| "unknown".to_string());
        *by.entry(grade).or_default() += 1.0;
    }
    for (grade, v) in by {
        b.gauge(
            "awareness_mimecast_safe_score_users",
            "Users per SAFE score risk grade",
            &[("account", account), ("grade", &grade)],
            v,
        );
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
    if digits.is_empty() {
        key.to_string()
    } else {
        digits
    }
}

/// campaign/get-campaigns and campaign/get-user-data: per campaign, and company-wide per
/// module (`title.title`) as the sums of the vendor's own numSent / numCompleted.
pub fn campaigns(b: &mut MetricsBuilder, account: &str, all: &[(Campaign, Vec<CampaignUserRow>)]) {
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
        let acknowledged = rows
            .iter()
            .filter(|r| r.acknowledgement == Some(true))
            .count();
        b.gauge(
            "awareness_mimecast_campaign_users",
            "Users in the training campaign",
            &l,
            rows.len() as f64,
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
            acknowledged as f64,
        );
        let mut answers: BTreeMap<(String, &'static str), f64> = BTreeMap::new();
        let (mut correct, mut incorrect) = (0.0, 0.0);
        for r in rows {
            for (q, result) in r.results.iter().flatten() {
                let result = match result.as_deref().map(|s| s.trim().to_ascii_lowercase()) {
                    Some(s) if s == "correct" => "correct",
                    Some(s) if s == "incorrect" => "incorrect",
                    Some(s) if s == "sent" => "sent",
                    _ => continue,
                };
                match result {
                    "correct" => correct += 1.0,
                    "incorrect" => incorrect += 1.0,
                    _ => {}
                }
                *answers.entry((question(q), result)).or_default() += 1.0;
            }
        }
        for ((q, result), v) in answers {
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
                v,
            );
        }
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

/// phishing/campaign/get-campaign, with each campaign's recipients
/// (phishing/campaign/get-user-data).
pub fn phishing(
    b: &mut MetricsBuilder,
    account: &str,
    all: &[(PhishingCampaign, Vec<PhishingUserRow>)],
) {
    for (c, recipients) in all {
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
            recipients.iter().filter(|r| r.reported()).count() as f64,
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
    all: &[(PhishingCampaign, Vec<PhishingUserRow>)],
    m: &MetricsConfig,
) {
    let rows = all.iter().flat_map(|(_, r)| r.iter());
    let mut by: BTreeMap<&str, [f64; 5]> = BTreeMap::new();
    let mut users: BTreeMap<&str, [f64; 2]> = BTreeMap::new();
    for r in rows {
        let step = r.step();
        let t = by.entry(dept(&r.department)).or_default();
        t[0] += 1.0;
        t[1] += f64::from(u8::from(step >= PhishingStep::Opened));
        t[2] += f64::from(u8::from(step >= PhishingStep::Clicked));
        t[3] += f64::from(u8::from(step >= PhishingStep::Submitted));
        t[4] += f64::from(u8::from(r.reported()));
        if let Some(email) = r.email.as_deref() {
            let u = users.entry(email).or_default();
            u[0] += f64::from(u8::from(step >= PhishingStep::Clicked));
            u[1] += f64::from(u8::from(r.reported()));
        }
    }
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
                    ("department", d),
                    ("outcome", outcome),
                ],
                v,
            );
        }
    }
    if m.per_user {
        let list: Vec<(String, [f64; 2])> =
            users.into_iter().map(|(e, v)| (e.to_string(), v)).collect();
        for (email, [clicked, reported]) in cap_users(key, list, m.max_users) {
            let l = [("account", account), ("email", email.as_str())];
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
}
