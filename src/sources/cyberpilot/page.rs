//! One users-summary page, `{count, fetched, result[]}`: the envelope of the shared page
//! decoder ([`decode_page`]). Each `result[]` element is parsed as it is read and the raw JSON
//! is never kept, so a page costs its parsed users (then folded and dropped by the caller).

use serde::de::{IgnoredAny, MapAccess};
use serde_json::value::RawValue;

use super::models::{parse_row, UserSummary};
use crate::sources::decode::{decode_page, Envelope, PageError, RowBudget};
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

/// `count` and `fetched`, the fields around `result[]`.
#[derive(Debug, Default)]
struct Counts {
    count: Option<f64>,
    fetched: Option<f64>,
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

/// Decodes a page, charging its rows to `budget`.
pub fn decode(body: &[u8], budget: &RowBudget) -> Result<DecodedPage, PageError> {
    let (mut users, mut len, mut skipped) = (Vec::new(), 0u64, 0u64);
    let page = decode_page::<Counts, _>(body, budget, |raw: &RawValue| {
        len += 1;
        match parse_row(raw) {
            Some(u) => users.push(u),
            None => skipped += 1,
        }
        1
    })?;
    Ok(DecodedPage {
        count: page.envelope.count,
        fetched: page.envelope.fetched,
        has_result: page.has_rows,
        len,
        skipped,
        users,
    })
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
