//! One Mimecast answer, `{meta, data[], fail[]}`: the envelope of the shared page decoder
//! ([`decode_page`]). Each `data[]` element is parsed as it is read and the raw JSON is never
//! kept, so a page costs its parsed rows (then folded and dropped by the caller).

use serde::de::{DeserializeOwned, IgnoredAny, MapAccess};
use serde_json::value::RawValue;

use super::models::{Fail, Identified, Items, Meta, UserLike};
use crate::sources::decode::{decode_page, Envelope, RowBudget};

pub use crate::sources::decode::PageError;

/// What one answer said, with the rows that parsed.
#[derive(Debug)]
pub struct DecodedPage<T> {
    pub meta: Option<Meta>,
    pub fail: Option<Vec<Fail>>,
    pub rows: Vec<T>,
    pub skipped: u64,
}

/// `meta` and `fail`, the fields around `data[]`.
#[derive(Debug, Default)]
struct MetaFail {
    meta: Option<Meta>,
    fail: Option<Vec<Fail>>,
}

impl Envelope for MetaFail {
    const ROWS: &'static str = "data";
    const WHAT: &'static str = "a Mimecast response object";

    fn field<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "meta" => self.meta = map.next_value()?,
            "fail" => self.fail = map.next_value()?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// Decodes an answer, charging its rows to `budget`. With `nested`, rows are the `items[]` of
/// each `data[]` entry (campaign/get-user-data); an entry without `items` is no row, unless it
/// is itself a user row with an email (the seed's example): never a phantom user.
pub fn decode<T: DeserializeOwned + Identified>(
    body: &[u8],
    nested: bool,
    budget: &RowBudget,
) -> Result<DecodedPage<T>, PageError> {
    let (mut rows, mut skipped) = (Vec::new(), 0u64);
    let page = decode_page::<MetaFail, _>(body, budget, |raw: &RawValue| {
        let mut push = |raw: &RawValue| {
            if !push_row(raw, &mut rows) {
                skipped += 1;
            }
        };
        if !nested {
            push(raw);
            return 1;
        }
        match serde_json::from_str::<Items>(raw.get()) {
            Ok(items) => {
                for item in &items.items {
                    push(item);
                }
                items.items.len() as u64
            }
            Err(_) => {
                let user = serde_json::from_str::<UserLike>(raw.get());
                if user.is_ok_and(|u| u.email.is_some()) {
                    push(raw);
                    1
                } else {
                    0
                }
            }
        }
    })?;
    Ok(DecodedPage {
        meta: page.envelope.meta,
        fail: page.envelope.fail,
        rows,
        skipped,
    })
}

/// The next page's token, read from a `meta` object that opens the answer (as Mimecast sends
/// it: `{"meta":{…,"pagination":{"next":…}},"data":[…],"fail":[]}`) without reading the rows.
/// `None` when the answer does not open with `meta`, names no next page, or does not close its
/// object (a page cut short costs no request). Only a hint for asking early: the full decode
/// stays the authority.
pub fn peek_next_token(body: &[u8]) -> Option<String> {
    let body = body.trim_ascii();
    if !body.ends_with(b"}") {
        return None;
    }
    let rest = body.strip_prefix(b"{")?.trim_ascii_start();
    let rest = rest.strip_prefix(b"\"meta\"")?.trim_ascii_start();
    let rest = rest.strip_prefix(b":")?;
    // One JSON value from the start of `rest`, the rows after it left unread.
    let meta = serde_json::Deserializer::from_slice(rest)
        .into_iter::<Meta>()
        .next()?
        .ok()?;
    meta.pagination?.next.filter(|n| !n.is_empty())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::mimecast::models::WatchlistRow;

    #[test]
    fn the_next_token_is_read_from_the_head_of_the_answer() {
        let page = br#" { "meta" : {"status":200,"pagination":{"pageSize":2,"next":"tok-2"}},"data":[{"a":1}],"fail":[]}
"#;
        assert_eq!(peek_next_token(page).as_deref(), Some("tok-2"));
        // Cut short, the last page, an answer that does not open with meta, an empty token,
        // garbage.
        for body in [
            &page[..page.len() / 2],
            br#"{"meta":{"status":200,"pagination":{"pageSize":2}},"data":[]}"#,
            br#"{"data":[],"meta":{"pagination":{"next":"x"}}}"#,
            br#"{"meta":{"pagination":{"next":""}},"data":[]}"#,
            br#"{"meta":{"pagination":{"next":"#,
            b"<html>",
            b"",
        ] {
            let shown = String::from_utf8_lossy(body);
            assert_eq!(peek_next_token(body), None, "{shown}");
        }
    }

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
