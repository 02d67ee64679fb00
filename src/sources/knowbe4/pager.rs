//! KnowBe4 lists on the paging engine: `page=1, 2, …` with `per_page` over bare JSON arrays
//! (no envelope, no total), until a page holds fewer elements than asked for (short, or the
//! `[]` past the end). The vendor's documentation shows some lists as one lone object, and a
//! client's test data wraps rows in `{"data": [...]}`: both are read too. Arrays are read one
//! element at a time (never held as a list of raw rows); the other two shapes are small and read
//! whole.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::Error as _;
use serde_json::value::RawValue;
use serde_json::Value;

use super::config::Endpoint;
use super::models::Row;
use super::KnowBe4Source;
use crate::model::FetchError;
use crate::sources::decode::{decode_array, Page, RowBudget};
use crate::sources::paging::{Accept, Format, Pager};

/// One list: its path under `/v1/` (also its endpoint label) and its query besides `page` and
/// `per_page`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct List(pub(crate) &'static str, Query);
type Query = &'static [(&'static str, &'static str)];

/// The endpoint label of `GET /v1/account`.
pub(crate) const ACCOUNT: &str = "account";
pub(crate) const USERS: List = List("users", &[("status", "active")]);
pub(crate) const GROUPS: List = List("groups", &[("status", "active")]);
pub(crate) const ENROLLMENTS: List = List(
    "training/enrollments",
    &[
        ("include_campaign_id", "true"),
        ("exclude_archived_users", "true"),
    ],
);
/// Without `exclude_percentages=true` the vendor answers only 10 campaigns a page.
pub(crate) const TRAINING_CAMPAIGNS: List =
    List("training/campaigns", &[("exclude_percentages", "true")]);
pub(crate) const SECURITY_TESTS: List = List("phishing/security_tests", &[]);

/// The lists a section reads (the account is one object, not a list).
pub(crate) fn lists(e: Endpoint) -> &'static [List] {
    match e {
        Endpoint::Account => &[],
        Endpoint::Users => &[USERS, GROUPS],
        Endpoint::Training => &[ENROLLMENTS, TRAINING_CAMPAIGNS],
        Endpoint::Phishing => &[SECURITY_TESTS],
    }
}

/// The pages of one list.
pub(crate) struct PageNumbers<'a, T> {
    pub(crate) source: &'a KnowBe4Source,
    pub(crate) list: List,
    /// The next page to ask for; `None` once a page came back short.
    pub(crate) next: Option<u32>,
    pub(crate) rows: PhantomData<T>,
}

impl<T: Row> Pager for PageNumbers<'_, T> {
    type Format = ListRows<T>;
    type Request = u32;

    fn endpoint(&self) -> &'static str {
        self.list.0
    }

    fn next(&mut self) -> impl IntoIterator<Item = u32> {
        self.next
    }

    fn learn(&mut self, page: u32, _: (), rows: u64) {
        self.next = (rows >= self.source.per_page() as u64).then_some(page + 1);
    }

    async fn send<R: Send>(&self, page: &u32, accept: Accept<'_, R>) -> Result<R, FetchError> {
        let (page, per_page) = (page.to_string(), self.source.per_page().to_string());
        let mut query = self.list.1.to_vec();
        query.extend([("page", page.as_str()), ("per_page", per_page.as_str())]);
        let transport = &self.source.engine.transport;
        let request = || self.source.request(self.list.0, &query);
        transport.fetch(self.list.0, request, accept).await
    }
}

/// The rows of a list page; a row counts once by its key.
pub(crate) struct ListRows<T>(PhantomData<T>);

impl<T: Row> Format for ListRows<T> {
    type Envelope = ();
    type Row = T;
    /// The envelope a client's test data wraps rows in, `{"data": [...]}`.
    const ROWS: &'static str = "data";

    fn read(
        body: &[u8],
        budget: &RowBudget,
        element: &mut dyn FnMut(&RawValue) -> u64,
    ) -> serde_json::Result<Page<()>> {
        if !body.trim_ascii_start().starts_with(b"{") {
            // The bare array; anything else fails there as JSON.
            let has_rows = decode_array(body, budget, element)?;
            return Ok(Page {
                envelope: (),
                has_rows,
            });
        }
        let object: serde_json::Map<String, Value> = serde_json::from_slice(body)?;
        // `{"data": [...]}` (an envelope) or a lone row as the documentation shows it.
        let elements = match object.get(Self::ROWS) {
            Some(Value::Array(rows)) if object.len() <= 2 => rows.clone(),
            _ => vec![Value::Object(object)],
        };
        if !budget.charge(elements.len() as u64) {
            return Err(serde_json::Error::custom("more rows than poll.max_rows"));
        }
        for e in elements {
            element(&serde_json::value::to_raw_value(&e)?);
        }
        Ok(Page {
            envelope: (),
            has_rows: true,
        })
    }

    fn key(row: &T) -> Option<Cow<'_, str>> {
        row.key()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What one page held: its elements (good and bad: what paging compares with
    /// `per_page`), those that were not a usable row, and the rows.
    pub(crate) fn decode<T: Row>(
        body: &[u8],
        budget: &RowBudget,
    ) -> serde_json::Result<(u64, u64, Vec<T>)> {
        let (mut rows, mut len, mut skipped) = (Vec::new(), 0, 0);
        ListRows::<T>::read(body, budget, &mut |raw| {
            let (n, bad) = ListRows::<T>::rows(raw, &mut rows);
            len += n;
            skipped += bad;
            n
        })?;
        Ok((len, skipped, rows))
    }

    #[test]
    fn the_three_shapes_are_read() {
        use crate::sources::knowbe4::models::{Group, User};
        let b = RowBudget::new(100);
        let (len, skipped, rows) = decode::<User>(br#" [{"id":1},{"id":"2"},{},7] "#, &b).unwrap();
        assert_eq!((len, skipped, rows.len()), (4, 2, 2));
        let (len, _, rows) = decode::<User>(br#"{"id":667542,"email":"a@x"}"#, &b).unwrap();
        assert_eq!((len, rows.len()), (1, 1));
        let (len, _, rows) = decode::<Group>(
            br#"{"data":[{"id":1},{"id":2}],"_metadata":{"next_cursor":""}}"#,
            &b,
        )
        .unwrap();
        assert_eq!((len, rows.len()), (2, 2));
        assert_eq!(decode::<User>(b"[]", &b).unwrap().0, 0);
    }

    #[test]
    fn garbage_is_an_error_and_the_budget_holds() {
        use crate::sources::knowbe4::models::User;
        let b = RowBudget::new(100);
        for garbage in [&b"<html>"[..], b"[{\"id\":1}", b"[] []", b""] {
            assert!(decode::<User>(garbage, &b).is_err());
            assert!(b.used() <= b.limit(), "not a budget error");
        }
        let small = RowBudget::new(2);
        assert!(decode::<User>(br#"[{"id":1},{"id":2},{"id":3}]"#, &small).is_err());
        assert!(small.used() > small.limit(), "the budget stopped it");
    }
}
