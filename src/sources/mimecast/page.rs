//! One Mimecast answer, `{meta, data[], fail[]}`: `meta` and `fail` are the envelope the
//! paging engine keeps; each `data[]` element is parsed as it is read
//! ([`Rows`](super::client::Rows)) and the raw JSON is never kept.

use serde::de::{IgnoredAny, MapAccess};

use super::models::{Fail, Meta};
use crate::sources::decode::Envelope;

/// `meta` and `fail`, the fields around `data[]`.
#[derive(Debug, Default)]
pub struct MetaFail {
    pub meta: Option<Meta>,
    pub fail: Option<Vec<Fail>>,
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

#[cfg(test)]
mod tests {
    use super::super::client::Rows;
    use crate::sources::decode::{Page, PageError, RowBudget};
    use crate::sources::mimecast::models::WatchlistRow;
    use crate::sources::paging::Format;

    fn decode<const NESTED: bool>(
        body: &[u8],
        b: &RowBudget,
    ) -> Result<(Page<super::MetaFail>, usize, u64), PageError> {
        let (mut rows, mut skipped) = (Vec::<WatchlistRow>::new(), 0);
        let page = Rows::<WatchlistRow, NESTED>::read(body, b, &mut |raw| {
            let (n, bad) = Rows::<WatchlistRow, NESTED>::rows(raw, &mut rows);
            skipped += bad;
            n
        })?;
        Ok((page, rows.len(), skipped))
    }

    #[test]
    fn rows_flat_and_nested() {
        let b = RowBudget::new(100);
        let (p, rows, skipped) = decode::<false>(
            br#"{"meta":{"status":200,"pagination":{"next":"t2"}},"data":[{"email":"a@x"},{}],"fail":[]}"#,
            &b,
        )
        .unwrap();
        assert_eq!((rows, skipped), (1, 1));
        let next = p
            .envelope
            .meta
            .and_then(|m| m.pagination)
            .and_then(|p| p.next);
        assert_eq!(next.as_deref(), Some("t2"));
        let (_, rows, skipped) = decode::<true>(
            br#"{"data":[{"items":[{"email":"a@x"},{"email":"b@x"},{}]},{"id":"no items"},{"email":"c@x"}]}"#,
            &b,
        )
        .unwrap();
        assert_eq!((rows, skipped), (3, 1));
    }

    #[test]
    fn errors_inside_a_200_are_refused() {
        let b = RowBudget::new(100);
        let (p, _, _) = decode::<false>(
            br#"{"meta":{"status":200},"data":[],"fail":[{"errors":[{"code":"err_developer_key","message":"App ID is invalid"}]}]}"#,
            &b,
        )
        .unwrap();
        let r = Rows::<WatchlistRow, false>::refusal(&p).unwrap();
        assert!(r.again, "the known intermittent error is asked again");
        let (p, _, _) = decode::<false>(br#"{"meta":{"status":500},"data":[]}"#, &b).unwrap();
        assert!(!Rows::<WatchlistRow, false>::refusal(&p).unwrap().again);
        let (p, _, _) = decode::<false>(br#"{"meta":{"status":200},"data":[]}"#, &b).unwrap();
        assert!(Rows::<WatchlistRow, false>::refusal(&p).is_none());
    }

    #[test]
    fn stops_at_the_row_budget() {
        let r = decode::<false>(br#"{"data":[{},{},{}]}"#, &RowBudget::new(2));
        assert!(matches!(r, Err(PageError::TooManyRows)));
        let r = decode::<false>(br#"{"data":[{}"#, &RowBudget::new(9));
        assert!(matches!(r, Err(PageError::Json(_))));
    }
}
