//! Proofpoint Results API rows as the vendor documents them (tests/fixtures/proofpoint), read
//! leniently: every report is a JSON:API page `{data: [{type, id, attributes}], links, meta}`
//! whose only field the exporter needs is `links.next` (relative, percent-encoded, followed as
//! given). `meta` is ignored: its page numbers are strings in some reports, numbers in others
//! and absent in phishing. Row ids are neither unique nor stable, so a row's identity is its
//! user's e-mail address, lower-cased; a row without one is skipped. Numbers may be text,
//! `useractiveflag` a boolean or 1/0, and `usertags` is `null` unless asked for.

use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::Value;

use crate::sources::lenient;

/// The page around the rows: the link to the next page (`links.next`), absent on the last one.
#[derive(Debug, Default, PartialEq, Deserialize)]
pub(crate) struct Envelope {
    #[serde(default, rename = "links", deserialize_with = "next_link")]
    pub(crate) next: Option<String>,
}

fn next_link<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Links {
        #[serde(default, deserialize_with = "lenient::link")]
        next: Option<String>,
    }
    Ok(Option::<Links>::deserialize(d)?.and_then(|l| l.next))
}

/// One element of `data`: only its attributes matter (`type` and `id` say nothing).
#[derive(Debug, Deserialize)]
pub(crate) struct Row<A> {
    pub(crate) attributes: A,
}

/// Reads one element of `data`; `None` (a skipped row) when it is not a row of this report.
pub(crate) fn parse<A: for<'de> Deserialize<'de>>(raw: &str) -> Option<A> {
    serde_json::from_str::<Row<A>>(raw)
        .ok()
        .map(|r| r.attributes)
}

/// A row of one report, as the paging engine counts it.
pub(crate) trait ReportRow: for<'de> Deserialize<'de> + Send + 'static {
    /// The key a row counts once by; `None`: every row counts (events, enrollments, reports
    /// and answers are rows; their ids are neither unique nor stable).
    fn key(&self) -> Option<&str> {
        None
    }
}

/// Users count once by e-mail address.
impl ReportRow for User {
    fn key(&self) -> Option<&str> {
        Some(&self.email)
    }
}
impl ReportRow for PhishingEvent {}
impl ReportRow for ReportedEmail {}
impl ReportRow for Enrollment {}
impl ReportRow for Answer {}

/// `useremailaddress`, trimmed and lower-cased: the one key of a user. Required.
fn email<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    lenient::label(d)?
        .map(|e| e.trim().to_lowercase())
        .filter(|e| !e.is_empty())
        .ok_or_else(|| de::Error::custom("a row without useremailaddress"))
}

/// The first value of tag `name` (matched without regard to case) in `usertags`: tags arrive as
/// lists (`{"Department": ["Finance"]}`), a single string is taken as it is.
pub(crate) fn tag(tags: &Option<Value>, name: &str) -> Option<String> {
    let (_, value) = tags
        .as_ref()?
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))?;
    let first = value.as_array().and_then(|v| v.first()).unwrap_or(value);
    first.as_str().map(|s| lenient::cut(s.trim().to_string()))
}

/// `GET /users`: one user.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub(crate) struct User {
    #[serde(rename = "useremailaddress", deserialize_with = "email")]
    pub(crate) email: String,
    /// A boolean here; absent counts as active (deleted users are only sent when asked for).
    #[serde(default, rename = "useractiveflag", deserialize_with = "lenient::flag")]
    pub(crate) active: Option<bool>,
    #[serde(default)]
    pub(crate) usertags: Option<Value>,
}

/// `GET /phishing`: one event of one user in one campaign.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub(crate) struct PhishingEvent {
    #[serde(rename = "useremailaddress", deserialize_with = "email")]
    pub(crate) email: String,
    #[serde(default, rename = "campaignname", deserialize_with = "lenient::label")]
    pub(crate) campaign: Option<String>,
    /// "Email View", "Email Click", "Data Submission", "No Action", "TM Sent", …
    #[serde(default, rename = "eventtype", deserialize_with = "lenient::text")]
    pub(crate) event: Option<String>,
}

/// Phishing event types and the outcome each counts as, one bit each in that order; any other
/// type ("TM Sent", "TM Complete", ...) is `other`, the last.
pub(crate) const OUTCOMES: [(&str, &str); 7] = [
    ("Email View", "viewed"),
    ("Email Click", "clicked"),
    ("Data Submission", "data_submitted"),
    ("Attachment Open", "attachment_opened"),
    ("Reported", "reported"),
    ("No Action", "no_action"),
    ("", "other"),
];

/// The outcomes of a user the campaign caught: clicked, submitted data, opened an attachment.
pub(crate) const FAILED: u8 = 0b1110;

impl PhishingEvent {
    /// The bit of its outcome in [`OUTCOMES`].
    pub(crate) fn outcome(&self) -> u8 {
        1 << lookup(&OUTCOMES, self.event.as_deref().unwrap_or(""))
    }
}

/// The row of `table` (vendor word, label value) whose word is `word`, case aside; the last
/// (`other`) for any other word.
fn lookup(table: &[(&str, &str)], word: &str) -> usize {
    let last = table.len() - 1;
    let word = word.trim();
    table[..last]
        .iter()
        .position(|(w, _)| w.eq_ignore_ascii_case(word))
        .unwrap_or(last)
}

/// `GET /phishalarm`: one e-mail a user reported. Counted as a row; its type is required.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub(crate) struct ReportedEmail {
    /// "Simulated Phish", "Potential Phish", "Platform Notification".
    #[serde(rename = "emailtype", deserialize_with = "required_text")]
    pub(crate) email_type: String,
}

/// E-mail types and their label values; any other is `other`.
pub(crate) const EMAIL_TYPES: [(&str, &str); 4] = [
    ("Simulated Phish", "simulated_phish"),
    ("Potential Phish", "potential_phish"),
    ("Platform Notification", "platform_notification"),
    ("", "other"),
];

impl ReportedEmail {
    /// Its row in [`EMAIL_TYPES`].
    pub(crate) fn kind(&self) -> usize {
        lookup(&EMAIL_TYPES, &self.email_type)
    }
}

/// `GET /trainingenrollments`: one user × module of an assignment.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub(crate) struct Enrollment {
    #[serde(rename = "useremailaddress", deserialize_with = "email")]
    pub(crate) email: String,
    #[serde(
        default,
        rename = "assignmentname",
        deserialize_with = "lenient::label"
    )]
    pub(crate) assignment: Option<String>,
    /// "Not Started", "In Progress", "Completed", "Overdue - Not Started", "Overdue - In Progress".
    #[serde(default, deserialize_with = "lenient::text")]
    pub(crate) module_attempt_status: Option<String>,
    /// 1/0 in this report (a boolean in the vendor's example).
    #[serde(default, rename = "useractiveflag", deserialize_with = "lenient::flag")]
    pub(crate) active: Option<bool>,
    /// Set when the enrollment was removed (sent only when removed ones are asked for).
    #[serde(
        default,
        rename = "enrollmentremovaldate",
        deserialize_with = "lenient::text"
    )]
    pub(crate) removed: Option<String>,
    #[serde(default)]
    pub(crate) usertags: Option<Value>,
}

/// Module statuses and their label values; any other is `other`.
pub(crate) const ENROLLMENT_STATUSES: [(&str, &str); 6] = [
    ("Not Started", "not_started"),
    ("In Progress", "in_progress"),
    ("Completed", "completed"),
    ("Overdue - Not Started", "overdue_not_started"),
    ("Overdue - In Progress", "overdue_in_progress"),
    ("", "other"),
];

impl Enrollment {
    /// Its row in [`ENROLLMENT_STATUSES`].
    pub(crate) fn status(&self) -> usize {
        lookup(
            &ENROLLMENT_STATUSES,
            self.module_attempt_status.as_deref().unwrap_or(""),
        )
    }

    pub(crate) fn is_overdue(&self) -> bool {
        ENROLLMENT_STATUSES[self.status()].1.starts_with("overdue")
    }

    pub(crate) fn is_removed(&self) -> bool {
        self.removed
            .as_deref()
            .is_some_and(|d| !d.trim().is_empty())
    }
}

/// `GET /cyberstrength`: one user × question of a knowledge assessment.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub(crate) struct Answer {
    #[serde(rename = "useremailaddress", deserialize_with = "email")]
    pub(crate) email: String,
    #[serde(
        default,
        rename = "assessmentname",
        deserialize_with = "lenient::label"
    )]
    pub(crate) assessment: Option<String>,
    #[serde(default, rename = "selectedanswer", deserialize_with = "lenient::text")]
    pub(crate) selected: Option<String>,
    /// `false` also on questions not answered yet.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub(crate) correct: Option<bool>,
}

impl Answer {
    /// Answered: a selected answer is there. A not-started row says `correct: false` without one.
    pub(crate) fn answered(&self) -> bool {
        self.selected
            .as_deref()
            .is_some_and(|s| !s.trim().is_empty())
    }
}

fn required_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    lenient::text(d)?.ok_or_else(|| de::Error::custom("a required field is null"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sources::decode::{decode_page, RowBudget};

    pub(crate) fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/proofpoint/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The page's rows of type `A` (skipped ones counted) and its envelope.
    pub(crate) fn rows<A: for<'de> Deserialize<'de>>(body: &[u8]) -> (Vec<A>, u64, Envelope) {
        let (mut rows, mut skipped) = (Vec::new(), 0);
        let page = decode_page::<Envelope, _>(body, "data", &RowBudget::new(1_000), |raw| {
            match parse::<A>(raw.get()) {
                Some(r) => rows.push(r),
                None => skipped += 1,
            }
            1
        })
        .unwrap();
        assert!(page.has_rows);
        (rows, skipped, page.envelope)
    }

    #[test]
    fn the_documented_pages_read_with_their_links() {
        let (users, skipped, env) = rows::<User>(&fixture("doc_users.json"));
        assert_eq!(skipped, 0);
        assert_eq!(env.next, None, "a one-page answer has only `self`");
        assert_eq!(users[0].email, "email_0972@wombank.com");
        assert_eq!(users[0].active, Some(true));
        assert_eq!(users[0].usertags, None);
        assert_eq!(
            users[0].key(),
            Some("email_0972@wombank.com"),
            "a user counts once"
        );

        let (events, _, env) = rows::<PhishingEvent>(&fixture("doc_phishing.json"));
        assert_eq!(
            env.next.as_deref(),
            Some("/api/reporting/v0.1.0/phishing?page%5Bsize%5D=1&page%5Bnumber%5D=2"),
            "followed as given: relative and percent-encoded"
        );
        assert_eq!(events[0].email, "39d70f2acca1b12b1da7503eff212228");
        assert_eq!(
            events[0].campaign.as_deref(),
            Some("SmishGuru Campaign 04-28-2016 LW")
        );
        assert_eq!(events[0].outcome(), 1 << 5, "no_action");
        assert_eq!(events[0].key(), None, "events are rows, repeats included");

        let (reports, _, env) = rows::<ReportedEmail>(&fixture("doc_phishalarm.json"));
        assert!(env.next.is_some());
        assert_eq!(EMAIL_TYPES[reports[0].kind()].1, "simulated_phish");

        let (enrollments, _, env) = rows::<Enrollment>(&fixture("doc_trainingenrollments.json"));
        assert_eq!(env.next, None);
        let e = &enrollments[0];
        assert_eq!(e.email, "activeuserbravo@qlikbot.wombatqa.com");
        assert_eq!(e.assignment.as_deref(), Some("test duration"));
        assert_eq!(ENROLLMENT_STATUSES[e.status()].1, "overdue_not_started");
        assert!(e.is_overdue() && !e.is_removed());
        assert_eq!(e.active, Some(true));

        let (answers, _, env) = rows::<Answer>(&fixture("doc_cyberstrength.json"));
        assert!(env.next.is_some());
        let a = &answers[0];
        assert_eq!(a.assessment.as_deref(), Some("Phishing"));
        assert_eq!(a.correct, Some(false));
        assert!(
            !a.answered(),
            "not started: `correct: false` without a selected answer"
        );
    }

    #[test]
    fn the_documented_quirks_are_accepted() {
        // useractiveflag as 1/0 (enrollments' field list), usertags as lists or a string.
        let raw = r#"{"type":"x","id":"7","attributes":{"useremailaddress":" Ann@Example.COM ",
            "useractiveflag":0,"module_attempt_status":"Overdue - In Progress",
            "enrollmentremovaldate":"2024-01-02T00:00:00",
            "usertags":{"department":["Finance","Sales"],"Manager":"x@y"}}}"#;
        let e: Enrollment = parse(raw).unwrap();
        assert_eq!(e.email, "ann@example.com");
        assert_eq!(e.active, Some(false));
        assert!(e.is_overdue() && e.is_removed());
        assert_eq!(tag(&e.usertags, "Department").as_deref(), Some("Finance"));
        assert_eq!(tag(&e.usertags, "manager").as_deref(), Some("x@y"));
        assert_eq!(tag(&e.usertags, "Region"), None);
        assert_eq!(tag(&None, "Department"), None);
        // A status the vendor adds later, an unknown e-mail type: counted as `other`.
        let e: Enrollment =
            parse(r#"{"attributes":{"useremailaddress":"a@b","module_attempt_status":"Waived"}}"#)
                .unwrap();
        assert_eq!(ENROLLMENT_STATUSES[e.status()].1, "other");
        let r: ReportedEmail = parse(r#"{"attributes":{"emailtype":"Newsletter"}}"#).unwrap();
        assert_eq!(EMAIL_TYPES[r.kind()].1, "other");
        // An answer is answered by its selected answer, whatever `correct` says.
        let a: Answer = parse(
            r#"{"attributes":{"useremailaddress":"a@b","selectedanswer":"True","correct":"true"}}"#,
        )
        .unwrap();
        assert!(a.answered() && a.correct == Some(true));
    }

    #[test]
    fn rows_without_identity_are_skipped_and_pages_without_links_end() {
        let body = br#"{"data":[{"attributes":{"useremailaddress":null}},{"id":1},
            {"attributes":{"useremailaddress":"  "}},"x",
            {"attributes":{"useremailaddress":"ok@x","useractiveflag":"maybe"}},
            {"attributes":{"useremailaddress":"good@x"}}],"meta":{"count":"6"}}"#;
        let (users, skipped, env) = rows::<User>(body);
        assert_eq!(skipped, 5);
        assert_eq!(users.len(), 1);
        assert_eq!(env.next, None);
        let (_, _, env) = rows::<User>(br#"{"data":[],"links":{"next":""}}"#);
        assert_eq!(env.next, None, "an empty next is no next");
        assert!(decode_page::<Envelope, _>(
            br#"{"data":[],"links":5}"#,
            "data",
            &RowBudget::new(9),
            |_| 1
        )
        .is_err());
        let r: Option<ReportedEmail> = parse(r#"{"attributes":{"emailtype":null}}"#);
        assert!(r.is_none());
    }

    #[test]
    fn phishing_outcomes_by_event_type() {
        let outcome = |t: &str| {
            let e = PhishingEvent {
                email: "a".into(),
                campaign: None,
                event: Some(t.into()),
            };
            OUTCOMES[e.outcome().trailing_zeros() as usize].1
        };
        assert_eq!(outcome("Email Click"), "clicked");
        assert_eq!(outcome("email view"), "viewed");
        assert_eq!(outcome("Data Submission"), "data_submitted");
        assert_eq!(outcome("Attachment Open"), "attachment_opened");
        assert_eq!(outcome("Reported"), "reported");
        assert_eq!(outcome("TM Sent"), "other");
        assert_eq!(outcome(""), "other");
        let failed: Vec<&str> = (0..7)
            .filter(|i| FAILED & (1 << i) != 0)
            .map(|i| OUTCOMES[i].1)
            .collect();
        assert_eq!(failed, ["clicked", "data_submitted", "attachment_opened"]);
    }
}
