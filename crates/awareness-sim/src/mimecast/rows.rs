//! The rows and items each endpoint answers with, built from the population with the keys of
//! the vendor's documentation and the recorded answers (tests/fixtures/mimecast/).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::endpoint::Endpoint;
use crate::population::{Population, SimUser};

/// Row-level garbage for [`crate::Fault::WrongTypes`]: values of the wrong JSON types.
pub(super) fn garble(endpoint: Endpoint, row: &mut Value) {
    let Some(obj) = row.as_object_mut() else {
        return;
    };
    match endpoint {
        Endpoint::Performance => {
            obj.insert("numCorrect".into(), json!(true));
            obj.insert("numNotWatched".into(), json!({"x": 1}));
        }
        Endpoint::Watchlist => {
            obj.insert("watchlistCount".into(), json!({"x": 1}));
        }
        Endpoint::SafeScore => {
            obj.insert("risk".into(), json!({"x": 1}));
        }
        Endpoint::Training => {
            obj.insert("training".into(), json!({"x": 1}));
            obj.insert("needEngagement".into(), json!("maybe"));
        }
        Endpoint::CampaignUserData => {
            obj.insert("acknowledgement".into(), json!(3));
            obj.insert("results".into(), json!([true]));
        }
        _ => {}
    }
}

/// Users without a department: `"department": ""` at even population indexes, no key at odd ones.
fn put_department(obj: &mut Map<String, Value>, u: &SimUser, index: usize) {
    match &u.department {
        Some(d) => {
            obj.insert("department".into(), json!(d));
        }
        None if index.is_multiple_of(2) => {
            obj.insert("department".into(), json!(""));
        }
        None => {}
    }
}

/// `company/get-performance-details` row of the user at population index `index`.
pub fn performance_row(u: &SimUser, index: usize) -> Value {
    let mut o = Map::new();
    o.insert("email".into(), json!(u.email));
    o.insert("name".into(), json!(u.name));
    put_department(&mut o, u, index);
    o.insert("numCorrect".into(), json!(u.num_correct));
    o.insert("numIncorrect".into(), json!(u.num_incorrect));
    o.insert("numNotWatched".into(), json!(u.num_not_watched));
    o.insert("userState".into(), json!(u.user_state));
    o.insert("userId".into(), json!(u.id));
    Value::Object(o)
}

/// `company/get-watchlist-details` row.
pub fn watchlist_row(u: &SimUser, index: usize) -> Value {
    let mut o = Map::new();
    o.insert("email".into(), json!(u.email));
    o.insert("name".into(), json!(u.name));
    put_department(&mut o, u, index);
    o.insert("watchlistCount".into(), json!(u.watchlist_count));
    o.insert("userState".into(), json!(u.user_state));
    o.insert("userId".into(), json!(u.id));
    Value::Object(o)
}

/// `company/get-safe-score-details` row (note `emailAddress`).
pub fn safe_score_row(u: &SimUser, index: usize) -> Value {
    let mut o = Map::new();
    o.insert("emailAddress".into(), json!(u.email));
    o.insert("name".into(), json!(u.name));
    put_department(&mut o, u, index);
    o.insert("risk".into(), json!(u.risk.to_string()));
    o.insert("humanError".into(), json!(u.human_error.to_string()));
    o.insert("sentiment".into(), json!(u.sentiment.to_string()));
    o.insert("engagement".into(), json!(u.engagement.to_string()));
    o.insert("knowledge".into(), json!(u.knowledge.to_string()));
    o.insert("userState".into(), json!(u.user_state));
    Value::Object(o)
}

/// `user/get-training-details` row of the user at population index `index`. Odd indexes spell
/// `watchedData` (as the vendor doc does) instead of `watchedDate`; indexes divisible by 3 spell
/// `onWatchList` instead of `onWatchlist`.
pub fn training_row(pop: &Population, index: usize) -> Value {
    let Some(u) = pop.users.get(index) else {
        return Value::Null;
    };
    let watched_key = if index % 2 == 1 {
        "watchedData"
    } else {
        "watchedDate"
    };
    let watchlist_key = if index.is_multiple_of(3) {
        "onWatchList"
    } else {
        "onWatchlist"
    };
    let training: Vec<Value> = u
        .training
        .iter()
        .map(|t| {
            let mut o = Map::new();
            if let Some(m) = pop.modules.get(t.module) {
                o.insert("title".into(), json!(m.title));
                o.insert("titleId".into(), json!(m.id));
            }
            o.insert("assignedTimeStamp".into(), json!(t.assigned));
            o.insert("watched".into(), json!(t.watched));
            if let Some(d) = &t.watched_date {
                o.insert(watched_key.into(), json!(d));
            }
            if let Some(a) = t.my_answer {
                o.insert("myAnswer".into(), json!(a));
            }
            o.insert(watchlist_key.into(), json!(t.on_watchlist));
            Value::Object(o)
        })
        .collect();
    json!({"training": training, "needEngagement": u.need_engagement, "meritBadge": {}})
}

/// `company/get-safe-score-summary` `data[0]`.
pub fn safe_score_summary(pop: &Population) -> Value {
    let count = |g: char| pop.users.iter().filter(|u| u.risk == g).count();
    json!({"scoreCounts": {"a": count('A'), "b": count('B'), "c": count('C'), "d": count('D'), "f": count('F')}})
}

/// `company/get-performance-summary` `data[0]`, in the API 2.0 catalogue's shape
/// (tests/fixtures/mimecast/README.md): one `departmentCompletionStats` entry per department
/// (no department name: the catalogue documents none), from the performance-details figures of
/// its users; a video sent is answered correctly, incorrectly, or not watched.
pub fn performance_summary(pop: &Population) -> Value {
    let mut by_department: BTreeMap<Option<&str>, [u64; 8]> = BTreeMap::new();
    for u in &pop.users {
        let d = by_department.entry(u.department.as_deref()).or_default();
        let (incorrect, not_watched) = (u.num_incorrect, u.num_not_watched);
        d[0] += 1;
        d[1] += u64::from(u.num_correct + incorrect + not_watched);
        d[2] += u64::from(not_watched);
        d[3 + incorrect.min(4) as usize] += 1;
    }
    let stats: Vec<Value> = by_department
        .values()
        .map(|d| {
            json!({
                "numParticipating": d[0], "numVideosSent": d[1], "numVideosNotWatched": d[2],
                "numZeroIncorrect": d[3], "numOneIncorrect": d[4], "numTwoIncorrect": d[5],
                "numThreeIncorrect": d[6], "numFourOrMoreIncorrect": d[7],
            })
        })
        .collect();
    json!({ "departmentCompletionStats": stats })
}

/// `campaign/get-campaigns` `data[0].campaigns`, with the keys of the real recorded answer
/// (tests/fixtures/mimecast/campaign-get-campaigns.json); percentages are whole numbers as there.
pub fn campaigns(pop: &Population) -> Vec<Value> {
    pop.campaigns
        .iter()
        .enumerate()
        .map(|(ci, c)| {
            let mut sent = 0u64;
            let mut completed = 0u64;
            let mut correct = 0u64;
            let mut answered = 0u64;
            let mut correct_per_question = vec![0u64; usize::from(c.questions)];
            for u in &pop.users {
                for r in u.campaign_results.iter().filter(|r| r.campaign == ci) {
                    sent += 1;
                    if r.results.iter().all(|x| x != "SENT") {
                        completed += 1;
                    }
                    for (q, x) in r.results.iter().enumerate() {
                        if x == "CORRECT" {
                            correct += 1;
                            if let Some(n) = correct_per_question.get_mut(q) {
                                *n += 1;
                            }
                        }
                        if x != "SENT" {
                            answered += 1;
                        }
                    }
                }
            }
            let pct = |a: u64, b: u64| (a * 100 + b / 2).checked_div(b).unwrap_or(0);
            let per_question = |f: &dyn Fn(usize) -> u64| -> Value {
                (0..usize::from(c.questions))
                    .map(|q| (format!("forQuestion{}", q + 1), json!(f(q))))
                    .collect::<Map<String, Value>>()
                    .into()
            };
            let title = pop
                .modules
                .get(c.module)
                .map(|m| {
                    json!({
                        "id": m.id,
                        "title": m.title,
                        "titleForCustomModule": false,
                        "correctAnswers": per_question(&|q| (q as u64 + c.module as u64) % 4 + 1),
                    })
                })
                .unwrap_or(Value::Null);
            json!({
                "id": c.id,
                "name": c.name,
                "title": title,
                "launchDate": c.launch_date,
                "createDate": c.launch_date,
                "emailCustomized": false,
                "numSent": sent,
                "numCompleted": completed,
                "allOtherCampaigns": {},
                "locked": false,
                "percentComplete": pct(completed, sent),
                "percentCorrect": pct(correct, answered),
                "numCorrectAnswers": per_question(&|q| correct_per_question.get(q).copied().unwrap_or(0)),
            })
        })
        .collect()
}

/// `campaign/get-user-data` item for a user's result in a campaign.
pub fn campaign_user_item(
    u: &SimUser,
    index: usize,
    result: &crate::population::CampaignResult,
) -> Value {
    let mut results = Map::new();
    for (q, r) in result.results.iter().enumerate() {
        results.insert(format!("forQuestion{}", q + 1), json!(r));
    }
    let mut o = Map::new();
    o.insert("name".into(), json!(u.name));
    o.insert("email".into(), json!(u.email));
    put_department(&mut o, u, index);
    o.insert("acknowledgement".into(), json!(result.acknowledgement));
    o.insert("results".into(), Value::Object(results));
    o.insert("userState".into(), json!(u.user_state));
    Value::Object(o)
}

/// `phishing/campaign/get-campaign` row, with the keys the vendor documents (no `numReported`).
pub fn phishing_row(c: &crate::population::PhishingCampaign) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "launchDate": c.launch_date,
        "numSent": c.sent,
        "numOpened": c.opened,
        "numClicked": c.clicked,
        "numSubmitted": c.submitted,
    })
}

/// `phishing/campaign/get-user-data` item: one recipient of one phishing campaign, with the
/// fields Azure Sentinel's Awareness_User_Data table stores (and `timeSubmitted`); times of
/// steps not taken are null.
pub fn phishing_user_item(
    pop: &Population,
    u: &SimUser,
    index: usize,
    result: &crate::population::PhishingResult,
) -> Value {
    let campaign = pop.phishing.get(result.campaign);
    let launched = campaign.map(|c| c.launch_date.clone());
    let at = |done: bool| if done { json!(launched) } else { Value::Null };
    let status = if result.submitted {
        "SUBMITTED"
    } else if result.clicked {
        "CLICKED"
    } else if result.opened {
        "OPENED"
    } else {
        "SENT"
    };
    let mut o = Map::new();
    o.insert("name".into(), json!(u.name));
    o.insert("email".into(), json!(u.email));
    o.insert(
        "templateName".into(),
        json!(campaign.map(|c| format!("{} template", c.name))),
    );
    put_department(&mut o, u, index);
    o.insert("status".into(), json!(status));
    o.insert("numCampaignsSent".into(), json!(u.phishing_results.len()));
    o.insert(
        "numCampaignsClicked".into(),
        json!(u.phishing_results.iter().filter(|r| r.clicked).count()),
    );
    o.insert("numTrainingModulesAssigned".into(), json!(u.training.len()));
    o.insert("numCorrectAnswers".into(), json!(u.num_correct));
    o.insert("numIncorrectAnswers".into(), json!(u.num_incorrect));
    o.insert("userState".into(), json!(u.user_state));
    o.insert("timeScheduled".into(), json!(launched));
    o.insert("timeOpened".into(), at(result.opened));
    o.insert("timeClicked".into(), at(result.clicked));
    o.insert("timeSubmitted".into(), at(result.submitted));
    o.insert("timeReported".into(), at(result.reported));
    o.insert(
        "clickedIp".into(),
        if result.clicked {
            json!(format!("192.0.2.{}", index % 250 + 1))
        } else {
            Value::Null
        },
    );
    o.insert(
        "reactionTime".into(),
        if result.clicked {
            json!(60 + (index % 50) * 30)
        } else {
            Value::Null
        },
    );
    Value::Object(o)
}
