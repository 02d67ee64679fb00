//! One Mimecast answer, `{meta, data[], fail[]}`, decoded straight into compact rows: each
//! `data[]` element is parsed as it is read and the raw JSON is never kept, so a page costs its
//! parsed rows, not a list of borrowed rows as long as the page.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::models::{Fail, Identified, Items, Meta, UserLike};
use crate::sources::decode::{EachRow, RowBudget};

/// What one answer said, with the rows that parsed.
#[derive(Debug)]
pub struct DecodedPage<T> {
    pub meta: Option<Meta>,
    pub fail: Option<Vec<Fail>>,
    pub rows: Vec<T>,
    pub skipped: u64,
}

/// Why an answer could not be read.
#[derive(Debug)]
pub enum PageError {
    Json(serde_json::Error),
    TooManyRows,
}

/// Decodes an answer, charging its rows to `budget`. With `nested`, rows are the `items[]` of
/// each `data[]` entry (campaign/get-user-data); an entry without `items` is no row, unless it
/// is itself a user row with an email (the seed's example): never a phantom user.
pub fn decode<T: DeserializeOwned + Identified>(
    body: &[u8],
    nested: bool,
    budget: &RowBudget,
) -> Result<DecodedPage<T>, PageError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let seed = PageSeed {
        nested,
        budget,
        rows: PhantomData,
    };
    let page = seed.deserialize(&mut de).and_then(|p| de.end().map(|()| p));
    page.map_err(|e| {
        if budget.exceeded() {
            PageError::TooManyRows
        } else {
            PageError::Json(e)
        }
    })
}

struct PageSeed<'b, T> {
    nested: bool,
    budget: &'b RowBudget,
    rows: PhantomData<T>,
}

impl<'de, T: DeserializeOwned + Identified> DeserializeSeed<'de> for PageSeed<'_, T> {
    type Value = DecodedPage<T>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

/// Parses one row into `out`; false when it is malformed or says whose it is not.
fn push_row<T: DeserializeOwned + Identified>(raw: &RawValue, out: &mut Vec<T>) -> bool {
    match serde_json::from_str::<T>(raw.get()) {
        Ok(row) if row.has_identity() => {
            out.push(row);
            true
        }
        _ => false,
    }
}

impl<'de, T: DeserializeOwned + Identified> Visitor<'de> for PageSeed<'_, T> {
    type Value = DecodedPage<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Mimecast response object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut page = DecodedPage {
            meta: None,
            fail: None,
            rows: Vec::new(),
            skipped: 0,
        };
        let nested = self.nested;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "meta" => page.meta = map.next_value()?,
                "fail" => page.fail = map.next_value()?,
                "data" => {
                    let (rows, skipped) = (&mut page.rows, &mut page.skipped);
                    map.next_value_seed(EachRow {
                        budget: self.budget,
                        on_row: |raw: &RawValue| {
                            if !nested {
                                if !push_row(raw, rows) {
                                    *skipped += 1;
                                }
                                return 1;
                            }
                            match serde_json::from_str::<Items>(raw.get()) {
                                Ok(items) => {
                                    for item in &items.items {
                                        if !push_row(item, rows) {
                                            *skipped += 1;
                                        }
                                    }
                                    items.items.len() as u64
                                }
                                Err(_) => {
                                    let user = serde_json::from_str::<UserLike>(raw.get());
                                    if user.is_ok_and(|u| u.email.is_some()) {
                                        if !push_row(raw, rows) {
                                            *skipped += 1;
                                        }
                                        1
                                    } else {
                                        0
                                    }
                                }
                            }
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
    use crate::sources::mimecast::models::WatchlistRow;

    #[test]
    fn rows_flat_and_nested() {
        let b = RowBudget::new(100);
        let p: DecodedPage<WatchlistRow> = decode(
            br#"{"meta":{"status":200,"pagination":{"next":"t2"}},"data":[{"email":"a@x"},{}],"fail":[]}"#,
            false,
            &b,
        )
        .unwrap();
        assert_eq!((p.rows.len(), p.skipped), (1, 1));
        let next = p.meta.and_then(|m| m.pagination).and_then(|p| p.next);
        assert_eq!(next.as_deref(), Some("t2"));
        let p: DecodedPage<WatchlistRow> = decode(
            br#"{"data":[{"items":[{"email":"a@x"},{"email":"b@x"},{}]},{"id":"no items"},{"email":"c@x"}]}"#,
            true,
            &b,
        )
        .unwrap();
        assert_eq!((p.rows.len(), p.skipped), (3, 1));
    }

    #[test]
    fn stops_at_the_row_budget() {
        let b = RowBudget::new(2);
        let r = decode::<WatchlistRow>(br#"{"data":[{},{},{}]}"#, false, &b);
        assert!(matches!(r, Err(PageError::TooManyRows)));
        let r = decode::<WatchlistRow>(br#"{"data":[{}"#, false, &RowBudget::new(9));
        assert!(matches!(r, Err(PageError::Json(_))));
    }
}
