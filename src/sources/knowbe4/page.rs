//! One KnowBe4 list page, as the paging engine reads it. On the wire a page is a bare JSON
//! array (no envelope, no total); the vendor's documentation shows some lists as one lone
//! object, and a client's test data wraps rows in `{"data": [...]}`. Arrays are read one
//! element at a time (never held as a list of raw rows); the other two shapes are small and
//! read whole.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::Error as _;
use serde_json::value::RawValue;

use super::models::Row;
use crate::sources::decode::{decode_array, Page, PageError, RowBudget};
use crate::sources::paging::Format;

/// The rows of a list page; a row counts once by its key.
pub struct ListRows<T>(PhantomData<T>);

/// Parses one element; `None` when it is not a usable row.
pub fn parse_row<T: Row>(raw: &str) -> Option<T> {
    let row: T = serde_json::from_str(raw).ok()?;
    row.key()?;
    Some(row)
}

impl<T: Row> Format for ListRows<T> {
    type Envelope = ();
    type Row = T;

    fn read(
        body: &[u8],
        budget: &RowBudget,
        element: &mut dyn FnMut(&RawValue) -> u64,
    ) -> Result<Page<()>, PageError> {
        match body.iter().copied().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => {
                decode_array(body, budget, element)?;
            }
            Some(b'{') => {
                let object: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(body).map_err(PageError::Json)?;
                // `{"data": [...]}` (an envelope) or a lone row as the documentation shows it.
                let elements = match object.get("data") {
                    Some(serde_json::Value::Array(rows)) if object.len() <= 2 => rows.clone(),
                    _ => vec![serde_json::Value::Object(object)],
                };
                if !budget.charge(elements.len() as u64) {
                    return Err(PageError::TooManyRows);
                }
                for e in elements {
                    let raw = serde_json::value::to_raw_value(&e).map_err(PageError::Json)?;
                    element(&raw);
                }
            }
            _ => {
                return Err(PageError::Json(serde_json::Error::custom(
                    "the answer is not a JSON array or object",
                )))
            }
        }
        Ok(Page {
            envelope: (),
            has_rows: true,
        })
    }

    fn rows(element: &RawValue, rows: &mut Vec<T>) -> (u64, u64) {
        match parse_row::<T>(element.get()) {
            Some(r) => {
                rows.push(r);
                (1, 0)
            }
            None => (1, 1),
        }
    }

    fn key(row: &T) -> Option<Cow<'_, str>> {
        row.key()
    }
}

/// What one page held (tests and recorded fixtures).
#[derive(Debug)]
pub struct DecodedPage<T> {
    /// Elements of the page, good and bad: what paging compares with `per_page`.
    pub len: u64,
    /// Elements that were not a usable row.
    pub skipped: u64,
    pub rows: Vec<T>,
}

/// Decodes a page, charging its elements to `budget`.
pub fn decode<T: Row>(body: &[u8], budget: &RowBudget) -> Result<DecodedPage<T>, PageError> {
    let (mut rows, mut len, mut skipped) = (Vec::new(), 0, 0);
    ListRows::<T>::read(body, budget, &mut |raw| {
        let (n, bad) = ListRows::<T>::rows(raw, &mut rows);
        len += n;
        skipped += bad;
        n
    })?;
    Ok(DecodedPage { len, skipped, rows })
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::knowbe4::models::{Group, User};

    #[test]
    fn the_three_shapes_are_read() {
        let b = RowBudget::new(100);
        let p: DecodedPage<User> = decode(br#" [{"id":1},{"id":"2"},{},7] "#, &b).unwrap();
        assert_eq!((p.len, p.skipped, p.rows.len()), (4, 2, 2));
        let p: DecodedPage<User> = decode(br#"{"id":667542,"email":"a@x"}"#, &b).unwrap();
        assert_eq!((p.len, p.rows.len()), (1, 1));
        let p: DecodedPage<Group> = decode(
            br#"{"data":[{"id":1},{"id":2}],"_metadata":{"next_cursor":""}}"#,
            &b,
        )
        .unwrap();
        assert_eq!((p.len, p.rows.len()), (2, 2));
        let p: DecodedPage<User> = decode(b"[]", &b).unwrap();
        assert_eq!(p.len, 0);
    }

    #[test]
    fn garbage_is_an_error_and_the_budget_holds() {
        let b = RowBudget::new(100);
        assert!(matches!(
            decode::<User>(b"<html>", &b),
            Err(PageError::Json(_))
        ));
        assert!(matches!(
            decode::<User>(b"[{\"id\":1}", &b),
            Err(PageError::Json(_))
        ));
        assert!(matches!(
            decode::<User>(b"[] []", &b),
            Err(PageError::Json(_))
        ));
        assert!(matches!(decode::<User>(b"", &b), Err(PageError::Json(_))));
        let small = RowBudget::new(2);
        assert!(matches!(
            decode::<User>(br#"[{"id":1},{"id":2},{"id":3}]"#, &small),
            Err(PageError::TooManyRows)
        ));
    }
}
