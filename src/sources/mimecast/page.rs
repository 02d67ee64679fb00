//! One Mimecast answer, `{meta, data[], fail[]}`, and its `pageToken` paging, on the paging
//! engine: `meta` and `fail` are the envelope the engine keeps; each `data[]` element is parsed
//! as it is read and the raw JSON is never kept.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use super::http::{describe, errors_of, reason_of, should_retry};
use super::models::{Fail, Identified, Items, Meta};
use super::MimecastSource;
use crate::http::Refusal;
use crate::model::{FailureReason, FetchError};
use crate::sources::decode::Page;
use crate::sources::paging::{Accept, Format, Pager};

/// `meta` and `fail`, the fields around `data[]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct MetaFail {
    pub(crate) meta: Option<Meta>,
    pub(crate) fail: Option<Vec<Fail>>,
}

/// Rows of `data[]`, or with `T::NESTED` the list inside each `data[]` entry (`items[]` of the
/// user data, `campaigns[]` of campaign/get-campaigns): an entry without one is no row, unless
/// it is itself a row that says whose it is (the seed's example), never a phantom. A row counts
/// once by its key.
pub(crate) struct Rows<T>(PhantomData<T>);

impl<T> Format for Rows<T>
where
    T: DeserializeOwned + Identified + Send + 'static,
{
    type Envelope = MetaFail;
    type Row = T;
    const ROWS: &'static str = "data";

    fn rows(element: &RawValue, rows: &mut Vec<T>) -> (u64, u64) {
        let mut push = |raw: &RawValue| match serde_json::from_str::<T>(raw.get()) {
            Ok(row) if row.has_identity() => {
                rows.push(row);
                0
            }
            _ => 1,
        };
        if !T::NESTED {
            return (1, push(element));
        }
        if let Ok(list) = serde_json::from_str::<Items>(element.get()) {
            let skipped = list.items.iter().map(|i| push(i)).sum();
            return (list.items.len() as u64, skipped);
        }
        let pushed = push(element) == 0;
        (u64::from(pushed), 0)
    }

    fn key(row: &T) -> Option<Cow<'_, str>> {
        row.key().map(Cow::Borrowed)
    }

    /// Errors arrive inside HTTP 200: a non-empty `fail[]` (API 1.0 or 2.0 shape) or a
    /// `meta.status` other than 200. `err_developer_key` and `retryable` errors are asked
    /// again before they count as what they say.
    fn refusal(page: &Page<MetaFail>) -> Option<Refusal> {
        let fail = page.envelope.fail.as_deref().unwrap_or_default();
        if !fail.is_empty() {
            let errors = errors_of(fail);
            let detail = Some(describe(&errors)).filter(|d| !d.is_empty());
            let detail = detail.unwrap_or_else(|| "fail[] without details".into());
            let error = FetchError::new(reason_of(&errors), format!("API error: {detail}"));
            let again = should_retry(&errors);
            return Some(Refusal { error, again });
        }
        let status = page.envelope.meta.as_ref()?.status?;
        let error = format!("API answered meta.status {status}");
        (status != 200.0).then(|| Refusal::fatal(FetchError::new(FailureReason::ApiError, error)))
    }
}

/// `pageToken` paging of one endpoint for one request item: tokens are sequential, each
/// page's `meta.pagination.next` names the next (absent or empty: the last page).
pub(crate) struct TokenPager<'a, T> {
    source: &'a MimecastSource,
    endpoint: &'static str,
    item: Option<serde_json::Value>,
    /// The first request (no token), then the next page's token, if any.
    next: Option<Option<String>>,
    rows: PhantomData<T>,
}

impl<'a, T> TokenPager<'a, T> {
    pub(crate) fn new(
        source: &'a MimecastSource,
        endpoint: &'static str,
        item: Option<serde_json::Value>,
    ) -> Self {
        TokenPager {
            source,
            endpoint,
            item,
            next: Some(None),
            rows: PhantomData,
        }
    }
}

impl<T> Pager for TokenPager<'_, T>
where
    T: DeserializeOwned + Identified + Send + Sync + 'static,
{
    type Format = Rows<T>;
    type Request = Option<String>;

    fn endpoint(&self) -> &'static str {
        self.endpoint
    }

    fn next(&mut self) -> impl IntoIterator<Item = Option<String>> {
        self.next.take()
    }

    fn learn(&mut self, _sent: Option<String>, page: MetaFail, _rows: u64) {
        let next = page.meta.and_then(|m| m.pagination).and_then(|p| p.next);
        self.next = next.filter(|n| !n.is_empty()).map(Some);
    }

    async fn send<R: Send>(
        &self,
        token: &Option<String>,
        accept: Accept<'_, R>,
    ) -> Result<R, FetchError> {
        let mut pagination = json!({ "pageSize": self.source.config.page_size });
        if let Some(t) = token {
            pagination["pageToken"] = json!(t);
        }
        let body = json!({
            "meta": { "pagination": pagination },
            "data": self.item.iter().collect::<Vec<_>>(),
        });
        self.source.post(self.endpoint, &body, accept).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::decode::RowBudget;
    use crate::sources::mimecast::models::{CampaignUserRow, UserRow};

    fn decode<T: Identified + DeserializeOwned + Send + 'static>(
        body: &[u8],
        b: &RowBudget,
    ) -> serde_json::Result<(Page<MetaFail>, usize, u64)> {
        let (mut rows, mut skipped) = (Vec::<T>::new(), 0);
        let page = Rows::<T>::read(body, b, &mut |raw| {
            let (n, bad) = Rows::<T>::rows(raw, &mut rows);
            skipped += bad;
            n
        })?;
        Ok((page, rows.len(), skipped))
    }

    #[test]
    fn rows_flat_and_nested() {
        let b = RowBudget::new(100);
        let (p, rows, skipped) = decode::<UserRow>(
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
        let (_, rows, skipped) = decode::<CampaignUserRow>(
            br#"{"data":[{"items":[{"email":"a@x"},{"email":"b@x"},{}]},{"id":"no items"},{"email":"c@x"},{"campaigns":[{"email":"d@x"}]}]}"#,
            &b,
        )
        .unwrap();
        assert_eq!((rows, skipped), (4, 1));
    }

    #[test]
    fn errors_inside_a_200_are_refused() {
        let b = RowBudget::new(100);
        let (p, _, _) = decode::<UserRow>(
            br#"{"meta":{"status":200},"data":[],"fail":[{"errors":[{"code":"err_developer_key","message":"App ID is invalid"}]}]}"#,
            &b,
        )
        .unwrap();
        let r = Rows::<UserRow>::refusal(&p).unwrap();
        assert!(r.again, "the known intermittent error is asked again");
        let (p, _, _) = decode::<UserRow>(br#"{"meta":{"status":500},"data":[]}"#, &b).unwrap();
        assert!(!Rows::<UserRow>::refusal(&p).unwrap().again);
        let (p, _, _) = decode::<UserRow>(br#"{"meta":{"status":200},"data":[]}"#, &b).unwrap();
        assert!(Rows::<UserRow>::refusal(&p).is_none());
    }

    #[test]
    fn stops_at_the_row_budget() {
        let b = RowBudget::new(2);
        assert!(decode::<UserRow>(br#"{"data":[{},{},{}]}"#, &b).is_err());
        assert!(b.used() > b.limit(), "the budget stopped it");
        let b = RowBudget::new(9);
        assert!(decode::<UserRow>(br#"{"data":[{}"#, &b).is_err());
        assert!(b.used() <= b.limit(), "not a budget error");
    }
}
