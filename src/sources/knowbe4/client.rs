//! KnowBe4 requests: the bearer key, the request budget (pace and daily quota), `page` /
//! `per_page` paging over bare arrays, and errors explained in the vendor's terms.

use std::sync::Arc;

use rand::Rng;
use tokio::time::Instant;

use super::budget::{daily_quota, rate_limited_wait, DailyCount, Pacer};
use super::config::{KnowBe4Config, MAX_PAGE_SIZE};
use super::models::{Account, Row};
use super::page::{self, PageError};
use crate::config::PollConfig;
use crate::http::Transport;
use crate::model::{FailureReason, FetchError, SourceKey};
use crate::sources::aggregate::SeenIds;
use crate::sources::decode::{too_many_rows, Decoder, RowBudget};
use crate::stats::ApiStats;

/// The endpoint label of each request, as the path under `/v1/`.
pub const ACCOUNT: &str = "account";
pub const USERS: &str = "users";
pub const GROUPS: &str = "groups";
pub const ENROLLMENTS: &str = "training/enrollments";
pub const TRAINING_CAMPAIGNS: &str = "training/campaigns";
pub const SECURITY_TESTS: &str = "phishing/security_tests";

/// One list endpoint and its query (besides `page` and `per_page`).
#[derive(Debug, Clone, Copy)]
pub struct List {
    pub endpoint: &'static str,
    pub query: &'static [(&'static str, &'static str)],
}

pub const ACTIVE_USERS: List = List {
    endpoint: USERS,
    query: &[("status", "active")],
};
pub const ACTIVE_GROUPS: List = List {
    endpoint: GROUPS,
    query: &[("status", "active")],
};
pub const ENROLLMENT_LIST: List = List {
    endpoint: ENROLLMENTS,
    query: &[
        ("include_campaign_id", "true"),
        ("exclude_archived_users", "true"),
    ],
};
/// Without `exclude_percentages=true` the vendor answers only 10 campaigns a page.
pub const TRAINING_CAMPAIGN_LIST: List = List {
    endpoint: TRAINING_CAMPAIGNS,
    query: &[("exclude_percentages", "true")],
};
pub const SECURITY_TEST_LIST: List = List {
    endpoint: SECURITY_TESTS,
    query: &[],
};

/// True the first time a row with this key is seen: rows that shift between pages while the
/// data changes arrive twice.
pub fn first_time<T: Row>(seen: &mut SeenIds, row: &T) -> bool {
    row.key().is_some_and(|k| seen.first_time(&k))
}

pub struct KnowBe4Client {
    key: SourceKey,
    config: KnowBe4Config,
    transport: Transport,
    stats: Arc<ApiStats>,
    decoder: Decoder,
    max_pages: usize,
    /// `poll.max_rows`, counted over the poll (all sections).
    rows: Arc<RowBudget>,
    daily: DailyCount,
    pacer: Pacer,
    /// Seats from the latest good `/v1/account` (the quota is 2,000 plus these).
    seats: std::sync::Mutex<Option<u64>>,
    /// When the poller ends the running poll: no rate-limit wait may outlast it.
    poll_deadline: std::sync::Mutex<Option<Instant>>,
}

impl KnowBe4Client {
    pub fn new(
        key: SourceKey,
        config: KnowBe4Config,
        transport: Transport,
        stats: Arc<ApiStats>,
        poll: &PollConfig,
    ) -> Self {
        let pacer = Pacer::new(config.requests_per_second, config.requests_per_minute);
        let seats = std::sync::Mutex::new(config.licensed_users);
        KnowBe4Client {
            key,
            config,
            transport,
            stats,
            decoder: Decoder::new(poll.concurrency),
            max_pages: poll.max_pages,
            rows: RowBudget::new(poll.max_rows as u64),
            daily: DailyCount::default(),
            pacer,
            seats,
            poll_deadline: std::sync::Mutex::new(None),
        }
    }

    pub fn key(&self) -> &SourceKey {
        &self.key
    }

    /// Starts a poll: its row count, and its deadline (`poll.deadline`, at most the
    /// interval), which bounds every wait for a rate-limit window.
    pub fn begin_poll(&self, deadline: std::time::Duration) {
        self.rows.reset();
        *self.poll_deadline.lock().unwrap_or_else(|e| e.into_inner()) =
            Instant::now().checked_add(deadline);
    }

    pub fn rows_read(&self) -> u64 {
        self.rows.used()
    }

    /// The daily quota as known now: 2,000 plus the seats of the latest account answer (or
    /// the configured `licensed_users`).
    pub fn quota(&self) -> u64 {
        daily_quota(*self.seats.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// This account's count of requests over the last 24 hours.
    pub fn daily_count(&self) -> &DailyCount {
        &self.daily
    }

    /// Requests sent in the last 24 hours.
    pub fn used_today(&self) -> u64 {
        self.daily.used()
    }

    /// One GET under `/v1/`, paced, counted against the daily quota, with the key as bearer.
    /// A 429 without `Retry-After` (the transport hands it back, see [`super::http`]) closes
    /// the account's gate for the window the limits imply ([`rate_limited_wait`]: two
    /// seconds when we were sending at the per-second limit, else the minute) and the
    /// request is sent again, at most `poll.max_attempts` times in all; a wait that would
    /// outlast the poll's deadline is not started: the 429 stands.
    async fn get(
        &self,
        endpoint: &'static str,
        query: &[(&str, &str)],
    ) -> Result<bytes::Bytes, FetchError> {
        let url = format!("{}/v1/{endpoint}", self.config.base_url);
        let mut refused = 0u32;
        let mut first_window = None;
        loop {
            let quota = self.quota();
            if self.daily.used() >= quota {
                self.stats.failure(endpoint, FailureReason::RateLimited);
                return Err(FetchError::new(
                    FailureReason::RateLimited,
                    format!(
                        "daily quota spent: {quota} requests (2,000 + licensed users) in the last \
                         24 hours; no request sent"
                    ),
                ));
            }
            self.pacer.acquire().await;
            let result = self
                .transport
                .send(endpoint, || {
                    // Every attempt, retries included, counts against the quota.
                    self.daily.record();
                    self.transport
                        .client()
                        .get(&url)
                        .query(query)
                        .bearer_auth(self.config.token.expose())
                        .header("accept", "application/json")
                })
                .await;
            let e = match result {
                Ok(reply) => return Ok(reply.body),
                Err(e) if e.status == Some(429) && e.reason == FailureReason::RateLimited => e,
                Err(e) => return Err(self.explain(e)),
            };
            refused += 1;
            let attempts = self.transport.settings().max_attempts;
            if refused >= attempts {
                let message = format!(
                    "{} (after {refused} attempt{})",
                    e.message,
                    if refused == 1 { "" } else { "s" }
                );
                return Err(self.explain(FetchError { message, ..e }));
            }
            let first = *first_window.get_or_insert_with(|| self.pacer.likely_window());
            let wait = rate_limited_wait(refused, first, rand::thread_rng().gen_range(0.0..1.0));
            let until = Instant::now() + wait;
            let deadline = *self.poll_deadline.lock().unwrap_or_else(|e| e.into_inner());
            if deadline.is_some_and(|d| until >= d) {
                let message = format!(
                    "{} (not retried: waiting {} for KnowBe4's rate-limit window would outlast \
                     the poll's deadline, poll.deadline)",
                    e.message,
                    humantime::format_duration(std::time::Duration::from_millis(
                        wait.as_millis() as u64
                    ))
                );
                return Err(self.explain(FetchError { message, ..e }));
            }
            tracing::info!(
                source = %self.key,
                endpoint,
                window = ?first,
                wait_ms = wait.as_millis() as u64,
                "KnowBe4 answered 429 without Retry-After; waiting for its rate-limit window"
            );
            self.pacer.hold_until(until);
        }
    }

    /// The transport's error, said in KnowBe4's terms: a 401 names the host and the region
    /// hint, because a key of an account on another region's host is refused like a wrong key.
    fn explain(&self, e: FetchError) -> FetchError {
        let host = crate::sources::public_url(&self.config.base_url);
        let hint = match e.status {
            Some(401) => format!(
                "KnowBe4 refused the Reporting API key: the key is wrong or disabled, or the \
                 account lives in another region than {host}{} (regions: us, eu, ca, uk, de; \
                 the console at training.knowbe4.com is us, eu.knowbe4.com is eu, and so on)",
                match &self.config.region {
                    Some(r) => format!(" (region = \"{r}\")"),
                    None => String::new(),
                }
            ),
            Some(403) => "the key may not read this endpoint (the Reporting API needs a Platinum \
                          or Diamond subscription)"
                .to_string(),
            Some(404) => "not found on this host".to_string(),
            Some(406) => "KnowBe4 wants Accept: application/json".to_string(),
            Some(429) => "KnowBe4's rate limit was hit (4 a second, 50 a minute, 2,000 + \
                          licensed users a day); the last good data is kept"
                .to_string(),
            Some(503) => "KnowBe4 is offline for maintenance".to_string(),
            _ => return e,
        };
        FetchError {
            message: format!("{}: {hint}", e.message),
            ..e
        }
    }

    /// `GET /v1/account`; remembers the seat count for the quota.
    pub async fn account(&self) -> Result<Account, FetchError> {
        let body = self.get(ACCOUNT, &[]).await?;
        let account: Account = match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Object(o)) => {
                serde_json::from_value(serde_json::Value::Object(o))
                    .map_err(|e| self.refused(ACCOUNT, format!("the account is malformed: {e}")))?
            }
            Ok(_) => return Err(self.refused(ACCOUNT, "the account is not a JSON object".into())),
            Err(e) => return Err(self.refused(ACCOUNT, format!("not valid JSON: {e}"))),
        };
        if let Some(seats) = account.number_of_seats.filter(|s| *s >= 0.0) {
            *self.seats.lock().unwrap_or_else(|e| e.into_inner()) = Some(seats as u64);
        }
        Ok(account)
    }

    fn refused(&self, endpoint: &'static str, message: String) -> FetchError {
        self.transport
            .record_failure(endpoint, FailureReason::Decode);
        FetchError::new(FailureReason::Decode, format!("{endpoint}: {message}"))
    }

    /// Every row of a list: `page=1, 2, …` with `per_page` = `page_size` (never more than
    /// 500), until a page holds fewer elements than asked for (short or empty). Rows seen
    /// twice (pages shift while the data changes) are kept once.
    pub async fn list<T: Row>(&self, list: List) -> Result<Vec<T>, FetchError> {
        let mut rows = Vec::new();
        self.fold(list, |row: T| rows.push(row)).await?;
        Ok(rows)
    }

    /// Like [`list`](Self::list), but hands each row to `fold` as its page arrives and keeps
    /// nothing of the page: a list of many pages (enrollments) costs its aggregates, not its
    /// rows. Rows of a list that then fails were folded too: the caller drops its aggregates.
    pub async fn fold<T: Row>(
        &self,
        list: List,
        mut fold: impl FnMut(T),
    ) -> Result<(), FetchError> {
        let per_page = self.config.page_size.clamp(1, MAX_PAGE_SIZE);
        let per_page_s = per_page.to_string();
        let endpoint = list.endpoint;
        let mut seen = SeenIds::default();
        let (mut elements, mut skipped) = (0u64, 0u64);
        for page in 1.. {
            if page > self.max_pages {
                return Err(self.refused(
                    endpoint,
                    format!(
                        "paging exceeded poll.max_pages ({}); refusing to continue",
                        self.max_pages
                    ),
                ));
            }
            let page_s = page.to_string();
            let mut query: Vec<(&str, &str)> = list.query.to_vec();
            query.push(("page", &page_s));
            query.push(("per_page", &per_page_s));
            let body = self.get(endpoint, &query).await?;
            let budget = self.rows.clone();
            let decoded = self
                .decoder
                .run(move || page::decode::<T>(&body, &budget))
                .await?;
            let decoded = match decoded {
                Ok(p) => p,
                Err(PageError::TooManyRows) => {
                    self.transport
                        .record_failure(endpoint, FailureReason::Decode);
                    return Err(too_many_rows(endpoint, &self.rows));
                }
                Err(PageError::Json(e)) => {
                    return Err(self.refused(endpoint, format!("page {page}: {e}")));
                }
            };
            elements += decoded.len;
            skipped += decoded.skipped;
            for r in decoded.rows {
                if first_time(&mut seen, &r) {
                    fold(r);
                }
            }
            if decoded.len < per_page as u64 {
                break;
            }
        }
        if skipped > 0 {
            self.stats.rows_skipped(endpoint, skipped);
            tracing::warn!(source = %self.key, endpoint, skipped, "skipped malformed KnowBe4 rows");
        }
        if crate::sources::lenient::mostly_skipped(elements - skipped, skipped) {
            return Err(self.refused(
                endpoint,
                format!(
                    "{skipped} of {elements} rows are malformed or have no id; refusing to \
                     publish the rest"
                ),
            ));
        }
        Ok(())
    }
}
