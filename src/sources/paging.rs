//! The paging engine: every page of every vendor is read here, under the same rules.
//!
//! A vendor supplies a [`Pager`] (its next requests, learnt from the pages already read: skip
//! and take, a page token, a page number, a next link followed exactly as given) and a
//! [`Format`] (how its page and its rows are read). The engine owns what keeps a poll safe:
//! `poll.max_pages`, the row cap (`poll.max_rows`), decoding on the blocking pool (at most
//! `poll.concurrency` pages of a source at once), exact de-duplication of rows by the key the
//! vendor names, counting skipped rows and refusing an answer that is mostly skipped, a
//! request never sent twice, and the poll's deadline (the transport's, set by
//! [`Engine::begin_poll`]). Retries are the transport's: a page that carries an error inside
//! an HTTP 200 is refused by [`Format::refusal`] inside the transport's retry loop, and a page
//! without its row array by the engine.

use std::borrow::Cow;
use std::collections::HashSet;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tokio::sync::Semaphore;

use crate::config::AccountConfig;
use crate::http::{Refusal, Reply, Scrub, Transport, VendorHttp};
use crate::model::{FailureReason, FetchError, SourceKey};
use crate::sources::aggregate::{lock, SeenKeys};
use crate::sources::decode::{decode_page, off_thread, Page, RowBudget};
use crate::sources::lenient;
use crate::sources::SourceContext;

/// How a vendor's pages and rows are read. Its functions run on the blocking pool.
pub trait Format: 'static {
    /// What a page says besides its rows (totals, the next token or link, errors): the page
    /// object's other fields, read by serde.
    type Envelope: DeserializeOwned + Send + 'static;
    type Row: DeserializeOwned + Send + 'static;
    /// The key of the page object's row array.
    const ROWS: &'static str;
    /// Reads a page, handing each element of its row array to `element` (which says how many
    /// rows it held, charged to `budget`) and keeping nothing of it but the envelope.
    fn read(
        body: &[u8],
        budget: &RowBudget,
        element: &mut dyn FnMut(&RawValue) -> u64,
    ) -> serde_json::Result<Page<Self::Envelope>> {
        decode_page(body, Self::ROWS, budget, element)
    }
    /// One element of the row array into `rows`: how many rows it held, and how many of those
    /// were malformed or had no identity (skipped and counted). By default the element is one
    /// row, usable when it reads and has a [`key`](Self::key).
    fn rows(element: &RawValue, rows: &mut Vec<Self::Row>) -> (u64, u64) {
        match serde_json::from_str::<Self::Row>(element.get()) {
            Ok(row) if Self::key(&row).is_some() => {
                rows.push(row);
                (1, 0)
            }
            _ => (1, 1),
        }
    }
    /// The key a row is counted once by (a user's id or email); `None`: every row counts.
    fn key(_row: &Self::Row) -> Option<Cow<'_, str>> {
        None
    }
    /// An error the page carries although it arrived whole (inside an HTTP 200); `again` when
    /// asking once more may pass. (A page without its row array the engine refuses itself.)
    fn refusal(_page: &Page<Self::Envelope>) -> Option<Refusal> {
        None
    }
}

/// A vendor's paging of one listing.
pub trait Pager: Sync {
    type Format: Format;
    /// One request: a skip, a token, a page number, a link. Never sent twice in one listing.
    type Request: Clone + Eq + Hash + Send + Sync;
    /// The endpoint label of its requests.
    fn endpoint(&self) -> &'static str;
    /// The requests to send next, at once (the first call gives the first one); none ends the
    /// listing. The engine takes no more than `poll.max_pages` allows.
    fn next(&mut self) -> impl IntoIterator<Item = Self::Request>;
    /// What a page said: `rows` elements of its row array, and its envelope.
    fn learn(
        &mut self,
        sent: Self::Request,
        envelope: <Self::Format as Format>::Envelope,
        rows: u64,
    );
    /// Sends `request`, handing the answer to `accept` (for the transport's `fetch`).
    fn send<T: Send>(
        &self,
        request: &Self::Request,
        accept: Accept<'_, T>,
    ) -> impl Future<Output = Result<T, FetchError>> + Send;
}

/// The engine's reading of an answer, for the transport's `fetch`.
pub(crate) type Accept<'a, T> =
    &'a (dyn Fn(Reply) -> BoxFuture<'a, Result<T, Refusal>> + Send + Sync);

/// A source's engine: its transport and the bounds of its polls.
pub struct Engine {
    pub transport: Transport,
    pub key: SourceKey,
    /// Pages (and renderings) of this source on the blocking pool at once: `poll.concurrency`.
    decoding: Arc<Semaphore>,
    rows: Arc<RowBudget>,
    max_pages: usize,
    /// Pages in progress at once: twice `poll.concurrency`, so a page being decoded does not
    /// hold a request slot (the transport still sends at most `poll.concurrency`).
    in_progress: usize,
    deadline: Duration,
}

/// One listing as its pages are read: what every page's decoding shares.
struct Listing<A, F> {
    add: F,
    /// The accumulator, the keys counted, and the good and skipped rows so far.
    state: Mutex<(A, SeenKeys, u64, u64)>,
}

impl SourceContext {
    /// The paging engine of `account`: its transport speaks `vendor`'s HTTP semantics and
    /// scrubs the account's secrets from every vendor text; its polls end within
    /// `poll.deadline` (at most the account's interval); the counters of its `listings` exist
    /// from the start. The only way a source gets one.
    pub fn engine(
        &self,
        account: &dyn AccountConfig,
        key: SourceKey,
        vendor: Arc<dyn VendorHttp>,
        listings: &[&'static str],
    ) -> Engine {
        self.stats.expect(listings);
        let poll = &self.poll;
        let transport = Transport::new(
            self.client.clone(),
            self.stats.clone(),
            poll.clone(),
            self.global_permits.clone(),
            vendor,
            Scrub::new(account.secrets()),
        );
        Engine {
            transport,
            key,
            decoding: Arc::new(Semaphore::new(poll.concurrency.max(1))),
            rows: RowBudget::new(poll.max_rows as u64),
            max_pages: poll.max_pages.max(1),
            in_progress: 2 * poll.concurrency.max(1),
            deadline: poll
                .deadline
                .min(account.interval().unwrap_or(poll.interval)),
        }
    }
}

impl Engine {
    /// A poll begins: its row count starts at 0 and its deadline runs.
    pub fn begin_poll(&self) {
        self.rows.reset();
        self.transport.begin_poll(self.deadline);
    }

    /// Rows read so far in this poll, over all listings.
    pub fn rows_read(&self) -> u64 {
        self.rows.used()
    }

    /// Runs `work` (rendering, folding rare labels) on the blocking pool, within the bound.
    pub async fn off_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, FetchError> {
        off_thread(&self.decoding, work).await
    }

    /// Every row of the listing `pager` pages, collected (short lists).
    pub async fn collect<P: Pager>(
        &self,
        pager: &mut P,
    ) -> Result<Vec<<P::Format as Format>::Row>, FetchError> {
        self.fold(pager, Vec::new(), |all, rows| all.extend(rows))
            .await
    }

    /// Reads every page of the listing `pager` pages, folding each page's new rows (rows
    /// whose key was seen before are dropped) into `acc` with `add` on the blocking pool as
    /// soon as the page is read; nothing of a page is kept. A page that fails fails the
    /// listing, and the accumulator is dropped whole.
    pub async fn fold<P, A, F>(&self, pager: &mut P, acc: A, add: F) -> Result<A, FetchError>
    where
        P: Pager,
        A: Send + 'static,
        F: Fn(&mut A, Vec<<P::Format as Format>::Row>) + Send + Sync + 'static,
    {
        let endpoint = pager.endpoint();
        let state = Mutex::new((acc, SeenKeys::default(), 0, 0));
        let listing = Arc::new(Listing { add, state });
        let mut sent = HashSet::new();
        loop {
            // One more than the pages left: enough to tell that the listing goes beyond them.
            let left = self.max_pages + 1 - sent.len();
            let batch: Vec<_> = pager.next().into_iter().take(left).collect();
            if batch.is_empty() {
                break;
            }
            if batch.iter().any(|r| sent.contains(r)) {
                let why = "the vendor pointed to a page already read (a paging loop)";
                return Err(self.refuse(endpoint, why.to_string()));
            }
            if batch.len() == left {
                let why = format!(
                    "paging exceeded poll.max_pages ({}); refusing to continue",
                    self.max_pages
                );
                return Err(self.refuse(endpoint, why));
            }
            let first = sent.len() + 1;
            sent.extend(batch.iter().cloned());
            let pager_ref = &*pager;
            let pages = batch.into_iter().enumerate().map(|(i, request)| {
                let listing = listing.clone();
                async move {
                    let accept = |reply| {
                        let listing = listing.clone();
                        self.read::<P::Format, _, _>(listing, endpoint, first + i, reply)
                            .boxed()
                    };
                    let (envelope, rows) = pager_ref.send(&request, &accept).await?;
                    Ok::<_, FetchError>((request, envelope, rows))
                }
            });
            let pages: Vec<_> = futures::stream::iter(pages)
                .buffer_unordered(self.in_progress)
                .try_collect()
                .await?;
            for (request, envelope, rows) in pages {
                pager.learn(request, envelope, rows);
            }
        }
        // Every page is read: the listing is no longer shared.
        let Some(listing) = Arc::into_inner(listing) else {
            return Err(self.refuse(endpoint, "a page is still being read".into()));
        };
        let (acc, _, good, skipped) = listing
            .state
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        if skipped > 0 {
            self.transport.stats().rows_skipped(endpoint, skipped);
            tracing::warn!(source = %self.key, endpoint, skipped, "skipped malformed rows");
        }
        // Most rows skipped: the answer is garbage, and publishing the few good rows would
        // present it as the truth.
        if skipped > good {
            let total = good + skipped;
            let why = format!(
                "{skipped} of {total} rows are malformed or have no identity; refusing to \
                 publish the rest"
            );
            return Err(self.refuse(endpoint, why));
        }
        Ok(acc)
    }

    /// A listing refused after its answers arrived: counted, logged, reason `decode`.
    fn refuse(&self, endpoint: &'static str, why: String) -> FetchError {
        let e = FetchError::new(FailureReason::Decode, format!("{endpoint}: {why}"));
        self.transport.record_failure(endpoint, &e);
        e
    }

    /// Decodes the answer to page `page_no` on the blocking pool and folds its new rows into
    /// `listing`: the transport's `accept` step, so an error inside the answer is retried like
    /// any failed attempt.
    async fn read<P, A, F>(
        &self,
        listing: Arc<Listing<A, F>>,
        endpoint: &'static str,
        page_no: usize,
        reply: Reply,
    ) -> Result<(P::Envelope, u64), Refusal>
    where
        P: Format,
        A: Send + 'static,
        F: Fn(&mut A, Vec<P::Row>) + Send + Sync + 'static,
    {
        let (budget, stats) = (self.rows.clone(), self.transport.stats().clone());
        let limit = budget.limit();
        let decode = move || {
            let refuse = |why: String| {
                let e = FetchError::new(FailureReason::Decode, format!("{endpoint}: {why}"));
                Err(Refusal::fatal(e))
            };
            lenient::take_cut();
            let (mut rows, mut elements, mut skipped) = (Vec::new(), 0u64, 0u64);
            let page = P::read(&reply.body, &budget, &mut |raw| {
                let (n, bad) = P::rows(raw, &mut rows);
                elements += n;
                skipped += bad;
                n
            });
            drop(reply);
            let page = match page {
                Ok(page) => page,
                Err(_) if budget.used() > limit => {
                    return refuse(format!(
                        "more than poll.max_rows ({limit}) rows in one poll; refusing to read \
                         further (raise poll.max_rows if the account is really this large)"
                    ))
                }
                Err(e) => return refuse(format!("page {page_no} is not valid JSON: {e}")),
            };
            stats.labels_cut(lenient::take_cut());
            if let Some(refusal) = P::refusal(&page) {
                return Err(refusal);
            }
            // A 200 without the row array is not an empty page: the listing keeps its last data.
            if !page.has_rows {
                return refuse("the answer has no row array".into());
            }
            let mut state = lock(&listing.state);
            let (acc, seen, good, bad) = &mut *state;
            rows.retain(|r| P::key(r).is_none_or(|k| seen.first_time(&k)));
            (listing.add)(acc, rows);
            (*good, *bad) = (*good + elements - skipped, *bad + skipped);
            Ok((page.envelope, elements))
        };
        self.off_thread(decode).await.map_err(Refusal::fatal)?
    }
}
