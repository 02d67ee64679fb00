//! One users-summary page, `{count, fetched, result[]}`, as the paging engine reads it
//! ([`Format`]). Each `result[]` element is parsed as it is read and the raw JSON
//! is never kept, so a page costs its parsed users (then folded and dropped by the caller).

use std::borrow::Cow;

use serde::de::{IgnoredAny, MapAccess};
use serde_json::value::RawValue;

use super::models::{parse_row, UserSummary};
use crate::sources::decode::{decode_page, Envelope, Page, PageError, RowBudget};
use crate::sources::lenient;
use crate::sources::paging::Format;

/// `count` and `fetched`, the fields around `result[]`.
#[derive(Debug, Default)]
pub struct Counts {
    pub count: Option<f64>,
    pub fetched: Option<f64>,
}

/// `lenient::number` as a value of its own, for `next_value`.
struct Number(Option<f64>);

impl<'de> serde::Deserialize<'de> for Number {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient::number(d).map(Number)
    }
}

impl Envelope for Counts {
    const ROWS: &'static str = "result";
    const WHAT: &'static str = "a users-summary page object";

    fn field<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "count" => self.count = map.next_value::<Number>()?.0,
            "fetched" => self.fetched = map.next_value::<Number>()?.0,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// A users-summary page and its rows; a user counts once by its id (else its email).
pub struct UsersFormat;

impl Format for UsersFormat {
    type Envelope = Counts;
    type Row = UserSummary;

    fn read(
        body: &[u8],
        budget: &RowBudget,
        element: &mut dyn FnMut(&RawValue) -> u64,
    ) -> Result<Page<Counts>, PageError> {
        decode_page::<Counts, _>(body, budget, element)
    }

    fn rows(element: &RawValue, rows: &mut Vec<UserSummary>) -> (u64, u64) {
        match parse_row(element) {
            Some(u) => {
                rows.push(u);
                (1, 0)
            }
            None => (1, 1),
        }
    }

    fn key(row: &UserSummary) -> Option<Cow<'_, str>> {
        row.identity().map(Cow::Borrowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(
        body: &[u8],
        b: &RowBudget,
    ) -> Result<(Page<Counts>, Vec<UserSummary>, u64), PageError> {
        let (mut rows, mut skipped) = (Vec::new(), 0);
        let page = UsersFormat::read(body, b, &mut |raw| {
            let (n, bad) = UsersFormat::rows(raw, &mut rows);
            skipped += bad;
            n
        })?;
        Ok((page, rows, skipped))
    }

    #[test]
    fn reads_the_documented_page() {
        let b = RowBudget::new(100);
        let (p, users, skipped) = decode(
            br#"{"count":"3","fetched":2,"result":[{"user":{"id":"a"}},{}],"extra":[1]}"#,
            &b,
        )
        .unwrap();
        assert_eq!(
            (p.envelope.count, p.envelope.fetched, p.has_rows),
            (Some(3.0), Some(2.0), true)
        );
        assert_eq!((users.len(), skipped), (1, 1));
        let (p, _, _) = decode(br#"{"count":1}"#, &b).unwrap();
        assert!(!p.has_rows, "no result array: the engine refuses the page");
        assert!(!decode(br#"{"result":null}"#, &b).unwrap().0.has_rows);
        assert!(matches!(decode(b"[]", &b), Err(PageError::Json(_))));
        assert!(matches!(
            decode(br#"{"result":[] } x"#, &b),
            Err(PageError::Json(_))
        ));
    }

    #[test]
    fn stops_at_the_row_budget() {
        let b = RowBudget::new(1);
        let r = decode(br#"{"result":[{},{},{}]}"#, &b);
        assert!(matches!(r, Err(PageError::TooManyRows)));
    }
}
