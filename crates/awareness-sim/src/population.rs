//! A seeded, realistic population of users shared by the simulated CyberPilot and Mimecast
//! tenants. Same seed and size give the same population, hence byte-identical answers.

use chrono::{DateTime, Datelike, Timelike};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A Mimecast training module ("title").
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    pub id: String,
    pub title: String,
}

/// A Mimecast training (module) campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingCampaign {
    pub id: String,
    pub name: String,
    /// Index into [`Population::modules`].
    pub module: usize,
    /// `2023-02-01T09:00:00+0000`
    pub launch_date: String,
    /// Questions per user (1..=3).
    pub questions: u8,
}

/// A Mimecast phishing campaign with its funnel (sent ≥ opened ≥ clicked ≥ submitted,
/// sent ≥ reported).
#[derive(Debug, Clone, PartialEq)]
pub struct PhishingCampaign {
    pub id: String,
    pub name: String,
    pub launch_date: String,
    pub sent: u64,
    pub opened: u64,
    pub clicked: u64,
    pub submitted: u64,
    pub reported: u64,
}

/// CyberPilot `lastAction`: documented as int, described as text.
#[derive(Debug, Clone, PartialEq)]
pub enum LastAction {
    Code(i64),
    Text(String),
}

/// One user's progress on one Mimecast training module.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleProgress {
    /// Index into [`Population::modules`].
    pub module: usize,
    /// `2022-01-11T23:32:00+0000`
    pub assigned: String,
    pub watched: bool,
    pub watched_date: Option<String>,
    pub on_watchlist: bool,
    pub my_answer: Option<u8>,
}

/// One user's results in one Mimecast training campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignResult {
    /// Index into [`Population::campaigns`].
    pub campaign: usize,
    pub acknowledgement: bool,
    /// One per question: `CORRECT`, `INCORRECT` or `SENT`.
    pub results: Vec<String>,
}

/// One user's outcome in one Mimecast phishing campaign (each step implies the ones before).
#[derive(Debug, Clone, PartialEq)]
pub struct PhishingResult {
    /// Index into [`Population::phishing`].
    pub campaign: usize,
    pub opened: bool,
    pub clicked: bool,
    pub submitted: bool,
    pub reported: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimUser {
    /// UUID-like, derived from the seed.
    pub id: String,
    pub email: String,
    pub name: String,
    pub first_name: String,
    pub last_name: String,
    /// ISO timestamp, `2021-03-04T10:22:31.123Z`.
    pub created: String,
    pub department: Option<String>,
    /// CyberPilot branch `(id, name)`.
    pub branch: Option<(String, String)>,
    /// CyberPilot groups `(id, name)`.
    pub groups: Vec<(String, String)>,

    // CyberPilot users-summary figures.
    pub enrolled_courses: u32,
    pub not_completed_courses: u32,
    pub overdue_courses: u32,
    pub average_score: Option<f64>,
    pub enrolled_materials: u32,
    pub not_completed_materials: u32,
    pub phishing_campaigns: u32,
    pub emails_sent: u32,
    pub links_clicked: u32,
    pub data_submitted: u32,
    pub last_action: LastAction,

    // Mimecast figures.
    pub num_correct: u32,
    pub num_incorrect: u32,
    pub num_not_watched: u32,
    pub watchlist_count: u32,
    /// SAFE grades, one of `A B C D F`.
    pub risk: char,
    pub human_error: char,
    pub sentiment: char,
    pub engagement: char,
    pub knowledge: char,
    pub user_state: String,
    pub training: Vec<ModuleProgress>,
    pub need_engagement: bool,
    pub campaign_results: Vec<CampaignResult>,
    pub phishing_results: Vec<PhishingResult>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Population {
    pub seed: u64,
    /// Sorted by `id` (the order both simulators list users in).
    pub users: Vec<SimUser>,
    pub modules: Vec<Module>,
    pub campaigns: Vec<TrainingCampaign>,
    pub phishing: Vec<PhishingCampaign>,
}

const FIRST_NAMES: &[&str] = &[
    "Anna", "Ben", "Clara", "David", "Emma", "Frank", "Grace", "Henrik", "Isabel", "Jonas",
    "Karen", "Lars", "Maria", "Noah", "Olivia", "Peter", "Rachel", "Samuel", "Tina", "Victor",
    "William", "Yasmin", "Zoë", "José", "Søren", "Łukasz", "Åsa", "Chloé", "Jürgen", "Siobhán",
    "Björn", "Noémie", "美咲", "Priya", "Ahmed", "Mette",
];

const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Hansen",
    "Jensen",
    "Nielsen",
    "Müller",
    "García",
    "Nørgaard",
    "O'Brien",
    "Kowalski",
    "Nguyen",
    "Rossi",
    "Dubois",
    "Okafor",
    "Patel",
    "Silva",
    "Novak",
    "Andersen",
    "Larsen",
    "Schmidt",
    "Tanaka",
    "Brown",
    "Wilson",
    "Taylor",
    "佐藤",
];

/// Department names with a weight and a risk factor (higher: more clicks, worse grades).
const DEPARTMENTS: &[(&str, u32, f64)] = &[
    ("Sales", 20, 1.35),
    ("Engineering", 22, 0.65),
    ("Finance", 8, 0.9),
    ("HR", 5, 1.1),
    ("Support", 15, 1.2),
    ("Operations", 10, 1.0),
    ("Marketing", 8, 1.25),
    ("Legal", 3, 0.8),
    ("R&D \"Labs\" \\ Team", 4, 0.75),
];
/// Weight of "no department".
const NO_DEPARTMENT_WEIGHT: u32 = 5;

const HQ_BRANCH: &str = "Headquarters";

const GROUPS: &[(&str, f64)] = &[
    ("All Staff", 0.85),
    ("Managers", 0.12),
    ("Remote Workers", 0.3),
    ("New Hires", 0.1),
    ("Phishing Pilot", 0.2),
];

const MODULE_TITLES: &[&str] = &[
    "Phishing Fundamentals",
    "Password Hygiene",
    "Social Engineering",
    "Safe Browsing",
    "Ransomware: Don't Take the Bait",
    "Working Remotely",
    "Data Protection & GDPR",
    "Business Email Compromise",
    "Mobile Device Security",
    "Insider Threats",
    "USB Drop Attacks",
    "Clean Desk Policy",
];

const CAMPAIGN_NAMES: &[&str] = &[
    "Q1 Security Refresher",
    "New Starter Onboarding",
    "Finance Fraud Awareness",
    "Annual Compliance 2024",
    "Summer Travel Safety",
    "Holiday Scam Season",
];

const PHISHING_NAMES: &[&str] = &[
    "Fake invoice (Finance)",
    "Parcel delivery notice",
    "Password expiry warning",
    "CEO gift card request",
    "Shared document lure",
];

const LAST_ACTION_TEXTS: &[&str] = &[
    "Email sent",
    "Opened email",
    "Clicked link",
    "Submitted data",
    "Reported email",
    "Completed course",
];

const GRADES: [char; 5] = ['A', 'B', 'C', 'D', 'F'];

/// 2019-01-01T00:00:00Z
const EPOCH_2019: i64 = 1_546_300_800;
/// 2022-01-01T00:00:00Z
const EPOCH_2022: i64 = 1_640_995_200;
/// 2024-12-31T00:00:00Z
const EPOCH_2025: i64 = 1_735_603_200;

fn uuid_like(rng: &mut ChaCha8Rng) -> String {
    let bytes: [u8; 16] = rng.gen();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// A Mimecast-style opaque secure id.
fn secure_id(rng: &mut ChaCha8Rng) -> String {
    use base64::Engine as _;
    let bytes: [u8; 30] = rng.gen();
    format!(
        "eNo{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// `2022-01-11T23:32:00+0000`, the Mimecast timestamp style.
pub fn mimecast_timestamp(unix: i64) -> String {
    match DateTime::from_timestamp(unix, 0) {
        Some(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+0000",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        None => String::from("1970-01-01T00:00:00+0000"),
    }
}

/// `2021-03-04T10:22:31.123Z`
fn iso_millis(unix: i64, millis: u32) -> String {
    match DateTime::from_timestamp(unix, 0) {
        Some(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            millis.min(999)
        ),
        None => String::from("1970-01-01T00:00:00.000Z"),
    }
}

fn ascii_fold(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let mapped = match c {
            'ë' | 'é' | 'è' | 'ê' | 'É' => Some('e'),
            'ø' | 'ö' | 'ó' | 'Ø' | 'Ö' => Some('o'),
            'ł' | 'Ł' => Some('l'),
            'å' | 'á' | 'ä' | 'Å' | 'Ä' => Some('a'),
            'ü' | 'ú' | 'Ü' => Some('u'),
            'í' | 'ï' => Some('i'),
            'ç' => Some('c'),
            'ñ' => Some('n'),
            c if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        };
        if let Some(m) = mapped {
            out.push(m);
        }
    }
    out
}

fn weighted_department(rng: &mut ChaCha8Rng) -> Option<usize> {
    let total: u32 = DEPARTMENTS.iter().map(|d| d.1).sum::<u32>() + NO_DEPARTMENT_WEIGHT;
    let mut pick = rng.gen_range(0..total);
    for (i, d) in DEPARTMENTS.iter().enumerate() {
        if pick < d.1 {
            return Some(i);
        }
        pick -= d.1;
    }
    None
}

fn grade_near(rng: &mut ChaCha8Rng, center: usize) -> char {
    let shift: i64 = rng.gen_range(-1..=1);
    let idx = (center as i64 + shift).clamp(0, GRADES.len() as i64 - 1) as usize;
    GRADES[idx]
}

struct PhishingPlan {
    target: f64,
    open: f64,
    click: f64,
    submit: f64,
    report: f64,
}

impl Population {
    /// Generate `users` users (plus modules and campaigns) from `seed`.
    pub fn generate(seed: u64, users: usize) -> Population {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);

        let module_count = rng.gen_range(8..=MODULE_TITLES.len());
        let modules: Vec<Module> = MODULE_TITLES[..module_count]
            .iter()
            .map(|t| Module {
                id: secure_id(&mut rng),
                title: (*t).to_string(),
            })
            .collect();

        let dept_branch_ids: Vec<String> =
            DEPARTMENTS.iter().map(|_| uuid_like(&mut rng)).collect();
        let hq_branch_id = uuid_like(&mut rng);
        let group_ids: Vec<String> = GROUPS.iter().map(|_| uuid_like(&mut rng)).collect();

        let campaign_count = rng.gen_range(4..=6usize);
        let mut campaigns = Vec::with_capacity(campaign_count);
        for (i, name) in CAMPAIGN_NAMES[..campaign_count].iter().enumerate() {
            let launch = EPOCH_2022 + (i as i64) * 90 * 86_400 + rng.gen_range(0..30 * 86_400);
            campaigns.push(TrainingCampaign {
                id: secure_id(&mut rng),
                name: (*name).to_string(),
                module: rng.gen_range(0..module_count),
                launch_date: mimecast_timestamp(launch - launch % 3600),
                questions: rng.gen_range(1..=3),
            });
        }
        // The newest campaign was just launched: nobody has answered yet (every result SENT).
        let pending_campaign = campaign_count - 1;
        let campaign_inclusion: Vec<f64> =
            campaigns.iter().map(|_| rng.gen_range(0.6..0.95)).collect();

        let phishing_count = rng.gen_range(3..=5usize);
        let mut phishing = Vec::with_capacity(phishing_count);
        let mut plans = Vec::with_capacity(phishing_count);
        for (i, name) in PHISHING_NAMES[..phishing_count].iter().enumerate() {
            let launch = EPOCH_2022 + 45 * 86_400 + (i as i64) * 120 * 86_400;
            phishing.push(PhishingCampaign {
                id: secure_id(&mut rng),
                name: (*name).to_string(),
                launch_date: mimecast_timestamp(launch + rng.gen_range(0..86_400)),
                sent: 0,
                opened: 0,
                clicked: 0,
                submitted: 0,
                reported: 0,
            });
            plans.push(PhishingPlan {
                target: rng.gen_range(0.5..1.0),
                open: rng.gen_range(0.4..0.8),
                click: rng.gen_range(0.15..0.5),
                submit: rng.gen_range(0.1..0.5),
                report: rng.gen_range(0.05..0.35),
            });
        }

        let mut out = Vec::with_capacity(users);
        for n in 0..users {
            let first = FIRST_NAMES.choose(&mut rng).copied().unwrap_or("Alex");
            let last = LAST_NAMES.choose(&mut rng).copied().unwrap_or("Doe");
            let mut local_first = ascii_fold(first);
            if local_first.is_empty() {
                local_first.push_str("user");
            }
            let mut local_last = ascii_fold(last);
            if local_last.is_empty() {
                local_last.push_str("member");
            }
            let email = format!("{local_first}.{local_last}{n}@example.com");
            let id = uuid_like(&mut rng);
            let created_at = rng.gen_range(EPOCH_2019..EPOCH_2025);
            let created = iso_millis(created_at, rng.gen_range(0..1000));

            let dept = weighted_department(&mut rng);
            let factor = dept.map(|d| DEPARTMENTS[d].2).unwrap_or(1.0);
            let department = dept.map(|d| DEPARTMENTS[d].0.to_string());
            let branch_roll: f64 = rng.gen();
            let branch = match dept {
                _ if branch_roll < 0.05 => None,
                Some(d) if branch_roll < 0.92 => {
                    Some((dept_branch_ids[d].clone(), DEPARTMENTS[d].0.to_string()))
                }
                _ => Some((hq_branch_id.clone(), HQ_BRANCH.to_string())),
            };
            let groups = GROUPS
                .iter()
                .zip(&group_ids)
                .filter(|((_, p), _)| rng.gen_bool(*p))
                .map(|((name, _), gid)| (gid.clone(), (*name).to_string()))
                .collect();

            // CyberPilot figures.
            let enrolled_courses = if rng.gen_bool(0.08) {
                0
            } else {
                rng.gen_range(1..=8)
            };
            let not_completed_courses = rng.gen_range(0..=enrolled_courses);
            let overdue_courses = if rng.gen_bool((0.45 * factor).min(1.0)) {
                rng.gen_range(0..=not_completed_courses)
            } else {
                0
            };
            let average_score = if enrolled_courses == 0 {
                None
            } else {
                let raw: f64 = rng.gen_range(40.0..100.0) - (factor - 1.0) * 15.0;
                let raw = raw.clamp(0.0, 100.0);
                if rng.gen_bool(0.5) {
                    Some(raw.round())
                } else {
                    Some((raw * 10.0).round() / 10.0)
                }
            };
            let enrolled_materials = rng.gen_range(0..=12);
            let not_completed_materials = rng.gen_range(0..=enrolled_materials);
            let emails_sent = rng.gen_range(0..=12);
            let phishing_campaigns = rng.gen_range(0..=emails_sent.min(3));
            let mut links_clicked = 0;
            for _ in 0..emails_sent {
                if rng.gen_bool((0.18 * factor).min(1.0)) {
                    links_clicked += 1;
                }
            }
            let mut data_submitted = 0;
            for _ in 0..links_clicked {
                if rng.gen_bool(0.35) {
                    data_submitted += 1;
                }
            }
            let last_action = if rng.gen_bool(0.5) {
                LastAction::Code(rng.gen_range(0..=5))
            } else {
                let text = LAST_ACTION_TEXTS
                    .choose(&mut rng)
                    .copied()
                    .unwrap_or("Email sent");
                LastAction::Text(text.to_string())
            };

            // Mimecast figures.
            let on_watchlist_user = rng.gen_bool(0.1);
            let mut training = Vec::new();
            let mut num_correct = 0;
            let mut num_incorrect = 0;
            let mut num_not_watched = 0;
            let mut flagged = 0;
            for m in 0..module_count {
                if !rng.gen_bool(0.8) {
                    continue;
                }
                let assigned_at = rng.gen_range(EPOCH_2022..EPOCH_2025 - 60 * 86_400);
                let assigned_at = assigned_at - assigned_at % 60;
                let watched = rng.gen_bool((0.75 / factor).min(0.98));
                let (watched_date, my_answer) = if watched {
                    let at = assigned_at + rng.gen_range(3600..45 * 86_400);
                    let correct = rng.gen_bool((0.7 / factor).min(0.97));
                    if correct {
                        num_correct += 1;
                    } else {
                        num_incorrect += 1;
                    }
                    (Some(mimecast_timestamp(at)), Some(rng.gen_range(0..=3)))
                } else {
                    num_not_watched += 1;
                    (None, None)
                };
                let on_watchlist = !watched && on_watchlist_user && rng.gen_bool(0.7);
                if on_watchlist {
                    flagged += 1;
                }
                training.push(ModuleProgress {
                    module: m,
                    assigned: mimecast_timestamp(assigned_at),
                    watched,
                    watched_date,
                    on_watchlist,
                    my_answer,
                });
            }
            let watchlist_count = if on_watchlist_user {
                flagged.max(1) + rng.gen_range(0..=2)
            } else {
                0
            };
            let center = ((factor - 0.6) * 3.0 + rng.gen_range(-1.0..1.5)).clamp(0.0, 4.0);
            let center = center.round() as usize;
            let risk = GRADES[center.min(GRADES.len() - 1)];
            let human_error = grade_near(&mut rng, center);
            let sentiment = grade_near(&mut rng, center);
            let engagement = grade_near(&mut rng, center);
            let knowledge = grade_near(&mut rng, center);
            let need_engagement = matches!(risk, 'D' | 'F') || rng.gen_bool(0.08);

            let mut campaign_results = Vec::new();
            for (ci, c) in campaigns.iter().enumerate() {
                if !rng.gen_bool(campaign_inclusion[ci]) {
                    continue;
                }
                let answered = ci != pending_campaign && rng.gen_bool(0.85);
                let results = (0..c.questions)
                    .map(|_| {
                        if !answered {
                            "SENT"
                        } else if rng.gen_bool((0.72 / factor).min(0.97)) {
                            "CORRECT"
                        } else {
                            "INCORRECT"
                        }
                        .to_string()
                    })
                    .collect();
                campaign_results.push(CampaignResult {
                    campaign: ci,
                    acknowledgement: answered && rng.gen_bool(0.7),
                    results,
                });
            }

            let mut phishing_results = Vec::new();
            for (pi, (pc, plan)) in phishing.iter_mut().zip(&plans).enumerate() {
                if !rng.gen_bool(plan.target) {
                    continue;
                }
                pc.sent += 1;
                let opened = rng.gen_bool(plan.open);
                let clicked = opened && rng.gen_bool((plan.click * factor).min(1.0));
                let submitted = clicked && rng.gen_bool(plan.submit);
                let reported = rng.gen_bool(plan.report / factor);
                pc.opened += u64::from(opened);
                pc.clicked += u64::from(clicked);
                pc.submitted += u64::from(submitted);
                pc.reported += u64::from(reported);
                phishing_results.push(PhishingResult {
                    campaign: pi,
                    opened,
                    clicked,
                    submitted,
                    reported,
                });
            }

            out.push(SimUser {
                id,
                email,
                name: format!("{first} {last}"),
                first_name: first.to_string(),
                last_name: last.to_string(),
                created,
                department,
                branch,
                groups,
                enrolled_courses,
                not_completed_courses,
                overdue_courses,
                average_score,
                enrolled_materials,
                not_completed_materials,
                phishing_campaigns,
                emails_sent,
                links_clicked,
                data_submitted,
                last_action,
                num_correct,
                num_incorrect,
                num_not_watched,
                watchlist_count,
                risk,
                human_error,
                sentiment,
                engagement,
                knowledge,
                user_state: "ACTIVE".to_string(), // as recorded from Mimecast
                training,
                need_engagement,
                campaign_results,
                phishing_results,
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));

        Population {
            seed,
            users: out,
            modules,
            campaigns,
            phishing,
        }
    }

    /// The population `--demo` serves: seed 42, 240 users.
    pub fn demo() -> Population {
        Self::generate(42, 240)
    }

    /// The same seed with a different number of users.
    pub fn with_user_count(&self, users: usize) -> Population {
        Self::generate(self.seed, users)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Distinct department names (sorted), without the "no department" case.
    pub fn departments(&self) -> Vec<String> {
        let mut d: Vec<String> = self
            .users
            .iter()
            .filter_map(|u| u.department.clone())
            .collect();
        d.sort();
        d.dedup();
        d
    }

    /// Users that were sent phishing campaign `campaign` (index): `(user index, result index)`.
    pub fn phishing_members(&self, campaign: usize) -> Vec<(usize, usize)> {
        self.users
            .iter()
            .enumerate()
            .filter_map(|(ui, u)| {
                u.phishing_results
                    .iter()
                    .position(|r| r.campaign == campaign)
                    .map(|ri| (ui, ri))
            })
            .collect()
    }

    /// Users that have a result in campaign `campaign` (index), in listing order.
    pub fn campaign_members(&self, campaign: usize) -> Vec<(usize, usize)> {
        self.users
            .iter()
            .enumerate()
            .filter_map(|(ui, u)| {
                u.campaign_results
                    .iter()
                    .position(|r| r.campaign == campaign)
                    .map(|ri| (ui, ri))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_consistent() {
        let a = Population::generate(7, 300);
        let b = Population::generate(7, 300);
        assert_eq!(a, b);
        let c = Population::generate(8, 300);
        assert_ne!(a.users, c.users);
        assert_eq!(a.users.len(), 300);
        assert!((8..=12).contains(&a.modules.len()));
        assert!((4..=6).contains(&a.campaigns.len()));
        assert!((3..=5).contains(&a.phishing.len()));

        let mut emails: Vec<&str> = a.users.iter().map(|u| u.email.as_str()).collect();
        emails.sort();
        emails.dedup();
        assert_eq!(emails.len(), 300, "emails are unique");
        let mut ids: Vec<&str> = a.users.iter().map(|u| u.id.as_str()).collect();
        ids.dedup();
        assert_eq!(ids.len(), 300, "ids are unique and sorted");
        assert!(a.users.windows(2).all(|w| w[0].id < w[1].id));

        for u in &a.users {
            assert!(u.not_completed_courses <= u.enrolled_courses);
            assert!(u.overdue_courses <= u.not_completed_courses);
            assert_eq!(u.average_score.is_none(), u.enrolled_courses == 0);
            assert!(u.not_completed_materials <= u.enrolled_materials);
            assert!(u.links_clicked <= u.emails_sent);
            assert!(u.data_submitted <= u.links_clicked);
            let watched = u.training.iter().filter(|t| t.watched).count() as u32;
            assert_eq!(u.num_correct + u.num_incorrect, watched);
            assert_eq!(
                u.num_not_watched as usize,
                u.training.len() - watched as usize
            );
            assert!(GRADES.contains(&u.risk));
            for r in &u.campaign_results {
                assert_eq!(
                    r.results.len(),
                    usize::from(a.campaigns[r.campaign].questions)
                );
            }
        }
        for p in &a.phishing {
            assert!(p.sent >= p.opened && p.opened >= p.clicked && p.clicked >= p.submitted);
            assert!(p.sent >= p.reported);
            assert!(p.clicked > 0);
        }
        let last = a.campaigns.len() - 1;
        let pending = a.campaign_members(last);
        assert!(!pending.is_empty());
        assert!(pending.iter().all(|(u, r)| a.users[*u].campaign_results[*r]
            .results
            .iter()
            .all(|x| x == "SENT")));

        let watch = a.users.iter().filter(|u| u.watchlist_count > 0).count();
        assert!(
            watch > 10 && watch < 60,
            "about 10% on the watchlist: {watch}"
        );
        assert!(a.users.iter().any(|u| u.department.is_none()));
        assert!(a.users.iter().any(|u| u.branch.is_none()));
        assert!(a
            .departments()
            .iter()
            .any(|d| d.contains('"') && d.contains('\\')));
        assert!(a.users.iter().any(|u| !u.name.is_ascii()));
        assert!(a
            .users
            .iter()
            .any(|u| matches!(u.last_action, LastAction::Text(_))));
        assert!(a
            .users
            .iter()
            .any(|u| matches!(u.last_action, LastAction::Code(_))));
        assert!(a.users[0].training[0].assigned.ends_with("+0000"));
    }
}
