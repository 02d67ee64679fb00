//! One KnowBe4 list page decoded into rows. On the wire a page is a bare JSON array (no
//! envelope, no total); the vendor's documentation shows some lists as one lone object, and a
//! client's test data wraps rows in `{"data": [...]}`. Arrays are read one element at a time
//! (never held as a list of raw rows); the other two shapes are small and read whole.

use serde::de::Error as _;
use serde_json::value::RawValue;

use super::models::Row;
pub use crate::sources::decode::PageError;
use crate::sources::decode::{decode_array, RowBudget};

/// What one page held.
#[derive(Debug)]
pub struct DecodedPage<T> {
    /// Elements of the page, good and bad: what paging compares with `per_page`.
    pub len: u64,
    /// Elements that were not a usable row.
    pub skipped: u64,
    pub rows: Vec<T>,
}

impl<T> Default for DecodedPage<T> {
    fn default() -> Self {
        DecodedPage {
            len: 0,
            skipped: 0,
            rows: Vec::new(),
        }
    }
}

/// Parses one element; `None` when it is not a usable row.
pub fn parse_row<T: Row>(raw: &str) -> Option<T> {
    let row: T = serde_json::from_str(raw).ok()?;
    row.key()?;
    Some(row)
}

/// Decodes a page, charging its elements to `budget`.
pub fn decode<T: Row>(body: &[u8], budget: &RowBudget) -> Result<DecodedPage<T>, PageError> {
    let first = body.iter().copied().find(|b| !b.is_ascii_whitespace());
    let mut page = DecodedPage::default();
    match first {
        Some(b'[') => {
            decode_array(body, budget, |raw: &RawValue| {
                page.len += 1;
                match parse_row::<T>(raw.get()) {
                    Some(r) => page.rows.push(r),
                    None => page.skipped += 1,
                }
                1
            })?;
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
                page.len += 1;
                match serde_json::from_value::<T>(e)
                    .ok()
                    .filter(|r| r.key().is_some())
                {
                    Some(r) => page.rows.push(r),
                    None => page.skipped += 1,
                }
            }
        }
        _ => {
            return Err(PageError::Json(serde_json::Error::custom(
                "the answer is not a JSON array or object",
            )))
        }
    }
    Ok(page)
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
