//! Proofpoint's paging, for the paging engine: the first request asks `page[number]=1` with
//! the configured size and the report's filters; every later one is the page's `links.next`,
//! followed as the vendor gave it (relative and percent-encoded) against the account's origin.
//! The last page has no `next`; a page shorter than asked says nothing (the server may send
//! fewer rows than asked). A link to another host is refused: the key goes nowhere else.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::time::Duration;

use serde_json::value::RawValue;

use super::config::ProofpointConfig;
use super::models::{parse, Envelope, ReportRow};
use super::ProofpointSource;
use crate::model::{FailureReason, FetchError};
use crate::sources::paging::{Accept, Format, Pager};

/// The API's root on the account's host.
pub(crate) const ROOT: &str = "/api/reporting/v0.3.0";

pub(crate) struct Rows<R>(PhantomData<R>);

impl<R: ReportRow> Format for Rows<R> {
    type Envelope = Envelope;
    type Row = R;
    const ROWS: &'static str = "data";

    fn rows(element: &RawValue, rows: &mut Vec<R>) -> (u64, u64) {
        let row = parse::<R>(element.get());
        let skipped = u64::from(row.is_none());
        rows.extend(row);
        (1, skipped)
    }

    fn key(row: &R) -> Option<Cow<'_, str>> {
        row.key().map(Cow::Borrowed)
    }
}

/// The pages of one report: its first URL, then each page's next link as given.
pub(crate) struct ReportPager<'a, R> {
    pub(crate) source: &'a ProofpointSource,
    pub(crate) endpoint: &'static str,
    /// The first page's URL, which every link is read against.
    pub(crate) first: String,
    pub(crate) next: Option<String>,
    pub(crate) rows: PhantomData<fn() -> R>,
}

impl<R: ReportRow> Pager for ReportPager<'_, R> {
    type Format = Rows<R>;
    type Request = String;

    fn endpoint(&self) -> &'static str {
        self.endpoint
    }

    fn next(&mut self) -> impl IntoIterator<Item = String> {
        self.next.take()
    }

    fn learn(&mut self, _sent: String, envelope: Envelope, _rows: u64) {
        self.next = envelope.next;
    }

    async fn send<T: Send>(&self, link: &String, accept: Accept<'_, T>) -> Result<T, FetchError> {
        let url = follow(&self.first, link).map_err(|why| {
            FetchError::new(FailureReason::Decode, format!("{}: {why}", self.endpoint))
        })?;
        let s = self.source;
        let transport = &s.engine.transport;
        transport
            .fetch(
                self.endpoint,
                || {
                    transport
                        .client()
                        .get(&url)
                        .header("x-apikey-token", s.config.api_key.expose())
                        .header("accept", "application/json")
                },
                accept,
            )
            .await
    }
}

/// `link` (as the vendor wrote it) against the first page's URL: the URL to ask, or why it is
/// not followed (another host: the key goes nowhere else).
fn follow(first: &str, link: &str) -> Result<String, String> {
    let base = url::Url::parse(first).map_err(|_| "base_url is not a URL".to_string())?;
    // `join` keeps the link's percent-encoding as it is: the vendor's query goes back unchanged.
    let next = base
        .join(link.trim())
        .map_err(|_| "links.next is not a URL".to_string())?;
    if next.origin() != base.origin() {
        return Err("links.next points to another host; not followed".to_string());
    }
    Ok(next.into())
}

/// The filters of each report's first request: its records from the lookback's first day
/// (`""`), platform notifications asked for.
const FILTERS: [(&str, &str, &str); 5] = [
    ("phishing", "filter[_campaignstartdate_start]", ""),
    ("phishalarm", "filter[_reporteddate_start]", ""),
    (
        "phishalarm",
        "filter[_includeplatformnotifications]",
        "TRUE",
    ),
    ("trainingenrollments", "filter[_created_start]", ""),
    ("cyberstrength", "filter[_assignmentstartdate_start]", ""),
];

/// The first URL of `report`: page 1 of `page_size`, the report's filters from the lookback's
/// first day on, tags only when a user tag is configured.
pub(crate) fn first_url(c: &ProofpointConfig, report: &str) -> Result<String, FetchError> {
    let mut url = url::Url::parse(c.base_url.trim())
        .map_err(|e| FetchError::new(FailureReason::Http, format!("base_url is not a URL: {e}")))?;
    url.set_path(&format!("{ROOT}/{report}"));
    let since = since(c.lookback);
    let mut q = url.query_pairs_mut();
    q.append_pair("page[number]", "1");
    q.append_pair("page[size]", &c.page_size.to_string());
    for (_, filter, value) in FILTERS.iter().filter(|(r, _, _)| *r == report) {
        q.append_pair(filter, if value.is_empty() { &since } else { value });
    }
    if c.user_tag.is_some() {
        q.append_pair("user_tag_enable", "TRUE");
    }
    drop(q);
    Ok(url.into())
}

/// The first day of the lookback, `YYYY-MM-DD`, as the vendor's date filters take it.
fn since(lookback: Duration) -> String {
    let from = chrono::Utc::now() - chrono::Duration::from_std(lookback).unwrap_or_default();
    from.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_are_followed_as_given_on_the_same_host_only() {
        let page = "https://results.us.securityeducation.com/api/reporting/v0.3.0/phishing?page%5Bnumber%5D=1&page%5Bsize%5D=5000";
        // The documented link: relative, percent-encoded, size before number.
        let link = "/api/reporting/v0.1.0/phishing?page%5Bsize%5D=1&page%5Bnumber%5D=2";
        assert_eq!(
            follow(page, link).unwrap(),
            format!("https://results.us.securityeducation.com{link}")
        );
        let same = "https://results.us.securityeducation.com/api/reporting/v0.3.0/users?page%5Bnumber%5D=3";
        assert_eq!(follow(page, same).unwrap(), same);
        for elsewhere in [
            "https://attacker.example/api/reporting/v0.3.0/users?page%5Bnumber%5D=2",
            "//attacker.example/x",
            "http://results.us.securityeducation.com/api/reporting/v0.3.0/users",
        ] {
            assert!(follow(page, elsewhere).is_err(), "{elsewhere}");
        }
    }

    #[test]
    fn the_first_request_carries_the_reports_filters() {
        let mut c = crate::sources::proofpoint::config::tests::config("https://h.example/");
        let url = |c: &ProofpointConfig, report| first_url(c, report).unwrap();
        let since = since(c.lookback);
        assert_eq!(
            url(&c, "users"),
            "https://h.example/api/reporting/v0.3.0/users?page%5Bnumber%5D=1&page%5Bsize%5D=5000"
        );
        c.user_tag = Some("Department".into());
        assert_eq!(
            url(&c, "phishalarm"),
            format!(
                "https://h.example/api/reporting/v0.3.0/phishalarm?page%5Bnumber%5D=1&page%5Bsize%5D=5000\
                 &filter%5B_reporteddate_start%5D={since}&filter%5B_includeplatformnotifications%5D=TRUE\
                 &user_tag_enable=TRUE"
            )
        );
        assert!(url(&c, "phishing").contains("filter%5B_campaignstartdate_start%5D="));
        assert!(url(&c, "trainingenrollments").contains("filter%5B_created_start%5D="));
        assert!(url(&c, "cyberstrength").contains("filter%5B_assignmentstartdate_start%5D="));
        c.base_url = "not a url".into();
        assert!(first_url(&c, "users").is_err());
    }
}
