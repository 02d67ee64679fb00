//! One users-summary page, `{count, fetched, result[]}`, as the paging engine reads it
//! ([`Format`]). Each `result[]` element is parsed as it is read and the raw JSON
//! is never kept, so a page costs its parsed users (then folded and dropped by the caller).

use std::borrow::Cow;

use serde::Deserialize;

use super::models::UserSummary;
use crate::sources::lenient;
use crate::sources::paging::Format;

/// `count`, the total beside `result[]` (`fetched` says nothing the rows do not).
#[derive(Debug, Default, Deserialize)]
pub struct Counts {
    #[serde(default, deserialize_with = "lenient::number")]
    pub count: Option<f64>,
}

/// A users-summary page and its rows; a user counts once by its id (else its email).
pub struct UsersFormat;

impl Format for UsersFormat {
    type Envelope = Counts;
    type Row = UserSummary;
    const ROWS: &'static str = "result";

    fn key(row: &UserSummary) -> Option<Cow<'_, str>> {
        row.identity().map(Cow::Borrowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::decode::{Page, RowBudget};

    fn decode(
        body: &[u8],
        b: &RowBudget,
    ) -> serde_json::Result<(Page<Counts>, Vec<UserSummary>, u64)> {
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
        assert_eq!((p.envelope.count, p.has_rows), (Some(3.0), true));
        assert_eq!((users.len(), skipped), (1, 1));
        let (p, _, _) = decode(br#"{"count":1}"#, &b).unwrap();
        assert!(!p.has_rows, "no result array: the engine refuses the page");
        assert!(!decode(br#"{"result":null}"#, &b).unwrap().0.has_rows);
        assert!(decode(b"[]", &b).is_err());
        assert!(decode(br#"{"result":[] } x"#, &b).is_err());
        assert!(b.used() <= b.limit(), "not budget errors");
    }

    #[test]
    fn stops_at_the_row_budget() {
        let b = RowBudget::new(1);
        assert!(decode(br#"{"result":[{},{},{}]}"#, &b).is_err());
        assert!(b.used() > b.limit(), "the budget stopped it");
    }
}
