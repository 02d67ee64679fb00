//! One users-summary page, `{count, fetched, result[]}`, decoded straight into compact rows:
//! each `result[]` element is parsed as it is read and the raw JSON is never kept, so a page
//! costs its parsed users, not a list of borrowed rows as long as the page.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::models::{parse_row, UserSummary};
use crate::sources::decode::{EachRow, RowBudget};
use crate::sources::lenient;

/// What one page said, with the rows that parsed.
#[derive(Debug, Default)]
pub struct DecodedPage {
    pub count: Option<f64>,
    pub fetched: Option<f64>,
    /// False when the page had no `result` array.
    pub has_result: bool,
    /// Elements of `result[]`, good and bad.
    pub len: u64,
    pub skipped: u64,
    pub users: Vec<UserSummary>,
}

/// Why a page could not be read.
#[derive(Debug)]
pub enum PageError {
    Json(serde_json::Error),
    TooManyRows,
}

/// Decodes a page, charging its rows to `budget`.
pub fn decode(body: &[u8], budget: &RowBudget) -> Result<DecodedPage, PageError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let page = PageSeed { budget }
        .deserialize(&mut de)
        .and_then(|p| de.end().map(|()| p));
    page.map_err(|e| {
        if budget.exceeded() {
            PageError::TooManyRows
        } else {
            PageError::Json(e)
        }
    })
}

struct PageSeed<'b> {
    budget: &'b RowBudget,
}

impl<'de> DeserializeSeed<'de> for PageSeed<'_> {
    type Value = DecodedPage;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<DecodedPage, D::Error> {
        d.deserialize_map(self)
    }
}

/// `lenient::number` as a value of its own, for `next_value`.
struct Number(Option<f64>);

impl<'de> serde::Deserialize<'de> for Number {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient::number(d).map(Number)
    }
}

impl<'de> Visitor<'de> for PageSeed<'_> {
    type Value = DecodedPage;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a users-summary page object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DecodedPage, A::Error> {
        let mut page = DecodedPage::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "count" => page.count = map.next_value::<Number>()?.0,
                "fetched" => page.fetched = map.next_value::<Number>()?.0,
                "result" => {
                    let (users, len, skipped) = (&mut page.users, &mut page.len, &mut page.skipped);
                    page.has_result = map.next_value_seed(EachRow {
                        budget: self.budget,
                        on_row: |raw: &RawValue| {
                            *len += 1;
                            match parse_row(raw) {
                                Some(u) => users.push(u),
                                None => *skipped += 1,
                            }
                            1
                        },
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_page() {
        let b = RowBudget::new(100);
        let p = decode(
            br#"{"count":"3","fetched":2,"result":[{"user":{"id":"a"}},{}],"extra":[1]}"#,
            &b,
        )
        .unwrap();
        assert_eq!(
            (p.count, p.fetched, p.has_result),
            (Some(3.0), Some(2.0), true)
        );
        assert_eq!((p.len, p.skipped, p.users.len()), (2, 1, 1));
        assert!(!decode(br#"{"count":1}"#, &b).unwrap().has_result);
        assert!(!decode(br#"{"result":null}"#, &b).unwrap().has_result);
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
