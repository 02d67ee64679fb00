//! CyberPilot: the users-summary report, bearer token (static or OAuth2 password grant),
//! take/skip paging.

pub mod config;
pub mod metrics;
pub mod models;
pub mod page;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use crate::http::Transport;
use crate::model::{FailureReason, FetchError, Platform, PollOutcome, SectionOutcome, SourceKey};
use crate::sources::aggregate::{self, Shared};
use crate::sources::decode::PageError;
use crate::sources::decode::{too_many_rows, Decoder, RowBudget};
use crate::sources::registry::{AccountConfig, Vendor};
use crate::sources::token::{parse_token_response, TokenCache};
use crate::sources::{Source, SourceContext};
pub use config::{CyberPilotAuth, CyberPilotConfig};
use metrics::Report;

/// The `platform` label's value and the config's `[[cyberpilot]]` table.
pub const PLATFORM: Platform = Platform::new("cyberpilot");

/// CyberPilot's registration (`crate::sources::registry::VENDORS`). Plain HTTP semantics:
/// 429 with `Retry-After`, 401 for a refused token.
pub static VENDOR: CyberPilotVendor = CyberPilotVendor;

pub struct CyberPilotVendor;

impl Vendor for CyberPilotVendor {
    fn platform(&self) -> Platform {
        PLATFORM
    }
    fn title(&self) -> &'static str {
        "CyberPilot"
    }
    fn read_account(&self, block: crate::config::Block<'_>) -> Option<Arc<dyn AccountConfig>> {
        Some(Arc::new(config::read(block)?))
    }
    fn secret_keys(&self) -> &'static [&'static str] {
        &["token", "password"]
    }
}

pub const ENDPOINT_USERS: &str = "users-summary";
pub const ENDPOINT_LOGIN: &str = "login";
pub const SECTION: &str = "users-summary";

pub struct CyberPilotSource {
    key: SourceKey,
    config: CyberPilotConfig,
    ctx: SourceContext,
    transport: Transport,
    token: TokenCache,
    decoder: Decoder,
    /// `poll.max_rows`, counted over the poll.
    rows: std::sync::Arc<RowBudget>,
}

/// One page as read: how many rows it held (good or bad), what the server said the total is,
/// and how many rows parsed. Its users are already folded into the poll's [`Report`].
struct Page {
    skip: u64,
    len: u64,
    count: Option<u64>,
    good: u64,
}

impl CyberPilotSource {
    pub fn new(config: CyberPilotConfig, ctx: SourceContext) -> Self {
        let key = SourceKey::new(PLATFORM, &config.account);
        let transport = ctx.transport();
        let decoder = Decoder::new(ctx.poll.concurrency);
        let rows = RowBudget::new(ctx.poll.max_rows as u64);
        CyberPilotSource {
            key,
            config,
            ctx,
            transport,
            token: TokenCache::default(),
            decoder,
            rows,
        }
    }

    async fn bearer(&self) -> Result<String, FetchError> {
        match &self.config.auth {
            CyberPilotAuth::Token(t) => Ok(t.expose().to_string()),
            CyberPilotAuth::Login {
                token_url,
                client_id,
                username,
                password,
            } => {
                self.token
                    .get(|| async {
                        let reply = self
                            .transport
                            .send_token_request(ENDPOINT_LOGIN, || {
                                self.transport.client().post(token_url).form(&[
                                    ("grant_type", "password"),
                                    ("client_id", client_id.as_str()),
                                    ("username", username.as_str()),
                                    ("password", password.expose()),
                                ])
                            })
                            .await
                            .map_err(|e| FetchError {
                                message: format!("login failed: {}", e.message),
                                ..e
                            })?;
                        parse_token_response(ENDPOINT_LOGIN, &self.transport, &reply)
                    })
                    .await
            }
        }
    }

    /// Fetches one page and folds its users into `report`, logging in again once if the token
    /// was refused.
    async fn fetch_page(&self, skip: u64, report: &Shared<Report>) -> Result<Page, FetchError> {
        let url = users_summary_url(&self.config.base_url, &self.config.account_id)?;
        let take = self.config.page_size.to_string();
        let skip_s = skip.to_string();
        // A refused login token is renewed once; a static token's refusal stands.
        let reply = self
            .transport
            .send_with_bearer(
                ENDPOINT_USERS,
                || self.bearer(),
                |token| async move {
                    let renewable = matches!(self.config.auth, CyberPilotAuth::Login { .. });
                    if renewable {
                        self.token.invalidate(&token).await;
                    }
                    renewable
                },
                || {
                    self.transport
                        .client()
                        .get(&url)
                        .query(&[("take", take.as_str()), ("skip", skip_s.as_str())])
                        .header("accept", "application/json")
                },
            )
            .await?;
        // Decoded on the blocking pool and folded into the report there (one lock per page);
        // the raw page and its parsed rows are dropped as soon as they are folded.
        let budget = self.rows.clone();
        let body = reply.body;
        let report = report.clone();
        let decoded = self
            .decoder
            .run(move || {
                let mut page = page::decode(&body, &budget)?;
                drop(body);
                let mut report = aggregate::lock(&report);
                for u in std::mem::take(&mut page.users) {
                    report.add(&u);
                }
                Ok(page)
            })
            .await?;
        let decoded = match decoded {
            Ok(p) => p,
            Err(e) => {
                self.transport
                    .record_failure(ENDPOINT_USERS, FailureReason::Decode);
                return Err(match e {
                    PageError::TooManyRows => too_many_rows(ENDPOINT_USERS, &self.rows),
                    PageError::Json(e) => FetchError::new(
                        FailureReason::Decode,
                        format!("users-summary page at skip {skip} is not valid JSON: {e}"),
                    ),
                });
            }
        };
        if !decoded.has_result {
            self.transport
                .record_failure(ENDPOINT_USERS, FailureReason::Decode);
            return Err(FetchError::new(
                FailureReason::Decode,
                format!("users-summary page at skip {skip} has no `result` array"),
            ));
        }
        if decoded.skipped > 0 {
            self.ctx.stats.rows_skipped(ENDPOINT_USERS, decoded.skipped);
            tracing::warn!(source = %self.key, skip, skipped = decoded.skipped, "skipped malformed users-summary rows");
        }
        Ok(Page {
            skip,
            len: decoded.len,
            count: decoded.count.filter(|c| *c >= 0.0).map(|c| c as u64),
            good: decoded.len - decoded.skipped,
        })
    }

    /// Reads the whole report, folding each page as it arrives. After the first page tells the
    /// total and the page size the server really uses, the remaining pages are fetched
    /// concurrently; any gap left by a short page (or a total that grew meanwhile) is then
    /// filled sequentially with `skip += fetched`. A user on two pages counts once.
    pub async fn fetch_all(&self) -> Result<Report, FetchError> {
        let report = aggregate::shared(Report::new(&self.ctx.metrics));
        let max_pages = self.ctx.poll.max_pages as u64;
        let mut fetched_pages = 0u64;
        let too_many = |_pages: u64| {
            self.transport
                .record_failure(ENDPOINT_USERS, FailureReason::Decode);
            FetchError::new(
                FailureReason::Decode,
                format!("users-summary paging exceeded poll.max_pages ({max_pages}); refusing to continue"),
            )
        };
        let first = self.fetch_page(0, &report).await?;
        fetched_pages += 1;
        // The server's cap on `take`, learned from the first page (its `fetched`, which is the
        // rows it held): we ask for `page_size` (an upper bound, large by default) and then
        // page by what the server really sends, so the requests are ceil(rows / cap).
        let step = first.len;
        let mut total = first.count.unwrap_or(first.len);
        let mut pages: BTreeMap<u64, Page> = BTreeMap::new();
        pages.insert(0, first);

        if step > 0 && total > step {
            let planned = (total - 1) / step; // pages after the first
            if 1 + planned > max_pages {
                return Err(too_many(planned));
            }
            // Twice `poll.concurrency` pages at once: the transport still sends at most
            // `concurrency` requests and the decoder parses at most `concurrency` pages, but a
            // page being parsed no longer holds a request slot, so the next request leaves while
            // it is parsed. At most 2 × concurrency pages are held in memory.
            let pages_at_once = 2 * self.ctx.poll.concurrency.max(1);
            let mut stream =
                futures::stream::iter((1..=planned).map(|i| self.fetch_page(i * step, &report)))
                    .buffer_unordered(pages_at_once);
            while let Some(page) = stream.next().await {
                let page = page?;
                fetched_pages += 1;
                pages.insert(page.skip, page);
            }
        }

        // Fill gaps left by short pages, then follow the total as the latest page reports it
        // (it may have grown meanwhile), sequentially with `skip += fetched`.
        let mut next = 0u64;
        let mut gaps = Vec::new();
        for (skip, p) in &pages {
            if *skip > next {
                gaps.push((next, *skip));
            }
            if p.len > 0 {
                next = next.max(skip + p.len);
            }
        }
        if let Some(c) = pages.values().next_back().and_then(|p| p.count) {
            total = c;
        }
        // `None` as the end: up to the total the latest page reports.
        let mut ranges: Vec<(u64, Option<u64>)> = gaps
            .into_iter()
            .map(|(from, to)| (from, Some(to)))
            .collect();
        if step > 0 {
            ranges.push((next, None));
        }
        for (from, to) in ranges {
            let mut skip = from;
            while skip < to.unwrap_or(total) {
                if fetched_pages >= max_pages {
                    return Err(too_many(fetched_pages));
                }
                let page = self.fetch_page(skip, &report).await?;
                fetched_pages += 1;
                if page.len == 0 {
                    break;
                }
                skip += page.len;
                if to.is_none() {
                    total = page.count.unwrap_or(total);
                }
                pages.insert(page.skip, page);
            }
        }

        // Mostly garbage (rows without identity or of the wrong types) is not a report.
        let good: u64 = pages.values().map(|p| p.good).sum();
        let rows: u64 = pages.values().map(|p| p.len).sum();
        if crate::sources::lenient::mostly_skipped(good, rows.saturating_sub(good)) {
            self.transport
                .record_failure(ENDPOINT_USERS, FailureReason::Decode);
            return Err(FetchError::new(
                FailureReason::Decode,
                format!(
                    "users-summary: {} of {rows} rows are malformed or have no identity; \
                     refusing to publish the rest",
                    rows.saturating_sub(good)
                ),
            ));
        }
        Ok(aggregate::take(&report))
    }
}

impl Source for CyberPilotSource {
    fn key(&self) -> &SourceKey {
        &self.key
    }

    fn sections(&self) -> Vec<&'static str> {
        vec![SECTION]
    }

    fn poll_sections(&self, wanted: Vec<&'static str>) -> BoxFuture<'_, PollOutcome> {
        async move {
            if !wanted.contains(&SECTION) {
                return PollOutcome::default();
            }
            // One login per poll: a failed one fails the poll at once.
            self.token.begin_poll().await;
            self.rows.reset();
            if let Err(e) = self.bearer().await {
                return PollOutcome::all_failed(&[SECTION], e);
            }
            let result = match self.fetch_all().await {
                // Rendering and folding rare branches: off the serving threads as well.
                Ok(report) => {
                    let (key, config) = (self.key.clone(), self.ctx.metrics.clone());
                    let stats = self.ctx.stats.clone();
                    self.decoder
                        .run(move || report.render(&key, &config, &stats))
                        .await
                        .map_err(Into::into)
                }
                Err(e) => Err(e.into()),
            };
            self.ctx.stats.rows_read(self.rows.used());
            PollOutcome {
                sections: vec![SectionOutcome {
                    name: SECTION,
                    result,
                }],
            }
        }
        .boxed()
    }
}

/// `{base_url}/accounts/{account_id}/reports/users-summary`, the account id percent-encoded as
/// one path segment (a `/`, `?`, `#` or space in it cannot change the path, query or fragment).
pub fn users_summary_url(base_url: &str, account_id: &str) -> Result<String, FetchError> {
    let mut url = url::Url::parse(base_url.trim())
        .map_err(|e| FetchError::new(FailureReason::Http, format!("base_url is not a URL: {e}")))?;
    match url.path_segments_mut() {
        Ok(mut path) => {
            path.pop_if_empty()
                .extend(["accounts", account_id, "reports", "users-summary"]);
        }
        Err(()) => {
            return Err(FetchError::new(
                FailureReason::Http,
                "base_url cannot hold a path".to_string(),
            ))
        }
    }
    Ok(url.into())
}

#[cfg(test)]
mod url_tests {
    use super::users_summary_url;

    #[test]
    fn account_id_is_one_percent_encoded_path_segment() {
        let url = |base, id| users_summary_url(base, id).unwrap();
        assert_eq!(
            url("https://api.example.com", "acme"),
            "https://api.example.com/accounts/acme/reports/users-summary"
        );
        assert_eq!(
            url("https://api.example.com/v2/", "a/b?c#d e"),
            "https://api.example.com/v2/accounts/a%2Fb%3Fc%23d%20e/reports/users-summary"
        );
        assert_eq!(
            url("http://127.0.0.1:8080/api", "../x"),
            "http://127.0.0.1:8080/api/accounts/..%2Fx/reports/users-summary"
        );
        let parsed = url::Url::parse(&url("https://h", "a/b?c#d e")).unwrap();
        assert_eq!(parsed.query(), None);
        assert_eq!(parsed.fragment(), None);
        assert_eq!(parsed.path_segments().unwrap().count(), 4);
    }
}
