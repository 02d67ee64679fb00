//! Decoding vendor pages off the serving threads and within a row budget.
//!
//! A 60 MB page takes seconds to parse: on an async worker that stalls `/-/healthy` and
//! `/metrics`, and it leaves one account's pages parsing one after another on one core. So
//! every page is decoded on tokio's blocking pool, at most `poll.concurrency` at once per
//! source. Rows are read one array element at a time into their compact form (the raw JSON of
//! a page is never held as a list of rows), and each counts against the source's
//! `poll.max_rows` for the poll.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::de::value::MapDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer as _, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;
use tokio::sync::Semaphore;

use crate::model::{FailureReason, FetchError};

/// Runs `decode` on the blocking pool once one of `permits` (a source's bound on pages decoded
/// at once) is free. The permit travels with the work, so a poll that is cancelled meanwhile
/// does not let more decodes start than the bound allows.
pub(crate) async fn off_thread<T: Send + 'static>(
    permits: &Arc<Semaphore>,
    decode: impl FnOnce() -> T + Send + 'static,
) -> Result<T, FetchError> {
    let failed = |e: String| FetchError::new(FailureReason::Decode, e);
    let permit = permits.clone().acquire_owned().await;
    let permit = permit.map_err(|_| failed("the decoder is shut down".into()))?;
    let work = tokio::task::spawn_blocking(move || {
        let out = decode();
        drop(permit);
        out
    });
    let unexpected = |e| failed(format!("decoding a page failed unexpectedly: {e}"));
    work.await.map_err(unexpected)
}

/// Rows a source may read in one poll (`poll.max_rows`), shared by all its pages and sections.
#[derive(Debug)]
pub struct RowBudget {
    limit: u64,
    used: AtomicU64,
}

impl RowBudget {
    pub fn new(limit: u64) -> Arc<Self> {
        let used = AtomicU64::new(0);
        Arc::new(RowBudget { limit, used })
    }

    /// Starts a poll's count.
    pub fn reset(&self) {
        self.used.store(0, Ordering::Relaxed);
    }

    /// Counts `n` more rows; false once the poll has read more than the limit.
    pub fn charge(&self, n: u64) -> bool {
        self.used.fetch_add(n, Ordering::Relaxed).saturating_add(n) <= self.limit
    }

    /// Rows read so far in this poll.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }
}

/// A page as read: its envelope (the fields around the row array), and whether the row array
/// was there (`null` is not).
#[derive(Debug)]
pub struct Page<E> {
    pub envelope: E,
    pub has_rows: bool,
}

/// Decodes one page object, handing each element of its row array `rows` to `on_row` as it is
/// read (which says how many rows the element held, charged to `budget`); the other fields are
/// read into the envelope `E` by serde, and nothing else of the page is kept. Trailing bytes
/// after the object are an error, and so is the row budget spent (`budget.used()` then exceeds
/// its limit).
pub(crate) fn decode_page<E: DeserializeOwned, F: FnMut(&RawValue) -> u64>(
    body: &[u8],
    rows: &'static str,
    budget: &RowBudget,
    on_row: F,
) -> serde_json::Result<Page<E>> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let visitor = PageVisitor(rows, EachRow { budget, on_row }, PhantomData::<E>);
    let page = de.deserialize_map(visitor)?;
    de.end().map(|()| page)
}

/// Decodes a page that is a bare JSON array of rows (no envelope); `null` reads as no array.
pub(crate) fn decode_array(
    body: &[u8],
    budget: &RowBudget,
    on_row: impl FnMut(&RawValue) -> u64,
) -> serde_json::Result<bool> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let present = EachRow { budget, on_row }.deserialize(&mut de)?;
    de.end().map(|()| present)
}

/// Reads a page object: its row array (the key named first) through the [`EachRow`], every
/// other field into `E` (borrowed from the body, not copied).
struct PageVisitor<R, E>(&'static str, R, PhantomData<E>);

impl<'de, F: FnMut(&RawValue) -> u64, E: DeserializeOwned> Visitor<'de>
    for PageVisitor<EachRow<'_, F>, E>
{
    type Value = Page<E>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a page object with {}[]", self.0)
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Page<E>, A::Error> {
        let (mut fields, mut has_rows) = (Vec::new(), false);
        while let Some(key) = map.next_key::<String>()? {
            if key == self.0 {
                let rows = EachRow {
                    budget: self.1.budget,
                    on_row: &mut self.1.on_row,
                };
                has_rows = map.next_value_seed(rows)?;
            } else {
                fields.push((key, map.next_value::<&'de RawValue>()?));
            }
        }
        let fields = MapDeserializer::<_, serde_json::Error>::new(fields.into_iter());
        let envelope = E::deserialize(fields).map_err(de::Error::custom)?;
        Ok(Page { envelope, has_rows })
    }
}

/// Reads a JSON array one element at a time: `on_row` turns each element into compact rows
/// and says how many rows it found; the budget is charged as they arrive, and the array is
/// abandoned as soon as it is spent. `null` reads as no array.
pub(crate) struct EachRow<'b, F> {
    pub budget: &'b RowBudget,
    pub on_row: F,
}

impl<'de, F: FnMut(&RawValue) -> u64> DeserializeSeed<'de> for EachRow<'_, F> {
    /// Whether an array was there.
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, F: FnMut(&RawValue) -> u64> Visitor<'de> for EachRow<'_, F> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<bool, A::Error> {
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            let n = (self.on_row)(raw);
            if !self.budget.charge(n) {
                return Err(de::Error::custom("more rows than poll.max_rows"));
            }
        }
        Ok(true)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Id {
        id: u64,
    }

    fn read(json: &str, budget: &RowBudget) -> Result<(bool, Vec<u64>, u64), serde_json::Error> {
        let mut rows = Vec::new();
        let mut skipped = 0;
        let mut de = serde_json::Deserializer::from_str(json);
        let present = EachRow {
            budget,
            on_row: |raw: &RawValue| {
                match serde_json::from_str::<Id>(raw.get()) {
                    Ok(r) => rows.push(r.id),
                    Err(_) => skipped += 1,
                }
                1
            },
        }
        .deserialize(&mut de)?;
        Ok((present, rows, skipped))
    }

    #[test]
    fn rows_arrive_one_by_one_and_bad_ones_are_counted() {
        let b = RowBudget::new(10);
        let (present, rows, skipped) = read(r#"[{"id":1},{},{"id":3},"x"]"#, &b).unwrap();
        assert!(present);
        assert_eq!(rows, vec![1, 3]);
        assert_eq!(skipped, 2);
        assert_eq!(b.used(), 4);
        assert!(!read("null", &RowBudget::new(1)).unwrap().0);
    }

    #[test]
    fn the_budget_stops_the_array() {
        let b = RowBudget::new(2);
        assert!(read(r#"[{"id":1},{"id":2},{"id":3},{"id":4}]"#, &b).is_err());
        assert!(b.used() > b.limit());
        assert_eq!(
            b.used(),
            3,
            "reading stopped at the first row over the budget"
        );
        b.reset();
        assert!(read(r#"[{"id":1},{"id":2}]"#, &b).is_ok());
        assert!(b.used() <= b.limit());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn decoding_runs_off_the_async_thread() {
        let permits = Arc::new(Semaphore::new(1));
        let here = std::thread::current().id();
        let there = off_thread(&permits, || std::thread::current().id())
            .await
            .unwrap();
        assert_ne!(here, there);
    }
}
