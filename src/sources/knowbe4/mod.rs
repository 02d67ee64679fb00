//! KnowBe4 (KSAT Reporting API): a static bearer key on a regional host, bare-array paging,
//! a daily request quota we count ourselves. One section per endpoint group (`account`,
//! `users`, `training`, `phishing`), each published whole or kept from the last good poll.

pub(crate) mod budget;
pub(crate) mod config;
pub(crate) mod http;
pub(crate) mod metrics;
pub(crate) mod models;
pub(crate) mod pager;

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{try_join, BoxFuture};
use futures::FutureExt;

use crate::http::{Refusal, Reply};
use crate::model::{FailureReason, FetchError, Platform, PollOutcome, SectionOutcome, SourceKey};
use crate::snapshot::Rendered;
use crate::sources::aggregate::lock;
use crate::sources::paging::Engine;
use crate::sources::registry::Registration;
use crate::sources::{Source, SourceContext};
use budget::{Plan, BASE_DAILY_QUOTA};
use config::{Endpoint, KnowBe4Config, MAX_PAGE_SIZE};
use http::KnowBe4Http;
use metrics::Enrollments;
use models::{is_active, Account, Group, Row, SecurityTest, TrainingCampaign, User};
use pager::{PageNumbers, ACCOUNT};

/// The `platform` label's value and the config's `[[knowbe4]]` table.
pub const PLATFORM: Platform = Platform::new("knowbe4");

/// KnowBe4's registration (`crate::sources::registry::VENDORS`). Its HTTP semantics
/// ([`http::KnowBe4Http`]): no rate-limit headers and no documented error body, 401/403 are
/// auth, and a 429 without `Retry-After` waits for the documented limits, not one second.
pub(crate) static VENDOR: Registration<KnowBe4Config, KnowBe4Source> = Registration {
    platform: PLATFORM,
    title: "KnowBe4 (KSAT Reporting API)",
    secret_keys: config::SECRET_KEYS,
    read: config::read,
    source: KnowBe4Source::new,
};

pub(crate) struct KnowBe4Source {
    config: KnowBe4Config,
    ctx: SourceContext,
    engine: Engine,
    http: Arc<KnowBe4Http>,
    /// Requests the latest poll made (0 before the first): what the next one will need.
    last_poll_requests: AtomicU64,
}

impl KnowBe4Source {
    fn new(config: KnowBe4Config, ctx: SourceContext) -> Self {
        let key = SourceKey::new(PLATFORM, &config.account);
        let http = Arc::new(KnowBe4Http::new(&config));
        let lists = config.endpoints.iter().flat_map(|e| pager::lists(*e));
        let endpoints: Vec<&str> = [ACCOUNT].into_iter().chain(lists.map(|l| l.0)).collect();
        KnowBe4Source {
            engine: ctx.engine(&config, key, http.clone(), &endpoints),
            config,
            ctx,
            http,
            last_poll_requests: AtomicU64::new(0),
        }
    }

    fn interval(&self) -> Duration {
        self.config.interval.unwrap_or(self.ctx.poll.interval)
    }

    /// `per_page` as sent: `page_size`, never more than the documented 500.
    fn per_page(&self) -> usize {
        self.config.page_size.clamp(1, MAX_PAGE_SIZE)
    }

    /// The plan for this account at its interval: the latest poll's requests, or an estimate
    /// from its size before the first poll.
    fn plan(&self) -> Plan {
        let last = Some(self.last_poll_requests.load(Ordering::Relaxed)).filter(|n| *n > 0);
        Plan::new(&self.config, *lock(&self.http.seats), last, self.interval())
    }

    /// A GET under `/v1/` with the key as bearer (paced and counted by [`KnowBe4Http`]).
    fn request(&self, endpoint: &str, query: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let url = format!("{}/v1/{endpoint}", self.config.base_url);
        let get = self.engine.transport.client().get(url).query(query);
        let get = get.bearer_auth(self.config.token.expose());
        get.header("accept", "application/json")
    }

    /// `GET /v1/account` (one JSON object); remembers the seat count for the quota.
    async fn account(&self) -> Result<Account, FetchError> {
        let read = |reply: Reply| async move {
            let object = reply.body.trim_ascii_start().starts_with(b"{");
            let account = serde_json::from_slice::<Account>(&reply.body).ok();
            let account = account.filter(|_| object);
            let e = format!("{ACCOUNT}: the answer is not an account object");
            account.ok_or_else(|| Refusal::fatal(FetchError::new(FailureReason::Decode, e)))
        };
        let request = || self.request(ACCOUNT, &[]);
        let account = self.engine.transport.fetch(ACCOUNT, request, read).await?;
        if let Some(seats) = account.seats() {
            *lock(&self.http.seats) = Some(seats as u64);
        }
        Ok(account)
    }

    fn pages<T>(&self, list: pager::List) -> PageNumbers<'_, T> {
        PageNumbers {
            source: self,
            list,
            next: Some(1),
            rows: PhantomData,
        }
    }

    /// Every row of a list, each counted once.
    async fn list<T: Row>(&self, list: pager::List) -> Result<Vec<T>, FetchError> {
        self.engine.collect(&mut self.pages::<T>(list)).await
    }

    async fn users(&self) -> Result<Rendered, FetchError> {
        let (mut users, mut groups) = try_join(
            self.list::<User>(pager::USERS),
            self.list::<Group>(pager::GROUPS),
        )
        .await?;
        users.retain(|u| is_active(&u.status));
        groups.retain(|g| is_active(&g.status));
        if users.is_empty() && self.http.quota() > BASE_DAILY_QUOTA {
            tracing::warn!(
                source = %self.key(),
                "KnowBe4 sent no active users for an account with licensed seats: is the region right?"
            );
        }
        let (m, stats) = (&self.ctx.metrics, &self.ctx.stats);
        Ok(metrics::users(self.key(), &users, &groups, m, stats))
    }

    async fn training(&self) -> Result<Rendered, FetchError> {
        let (enrollments, add) = (Enrollments::default(), Enrollments::add);
        let (enrollments, campaigns) = try_join(
            self.engine
                .fold(&mut self.pages(pager::ENROLLMENTS), enrollments, add),
            self.list::<TrainingCampaign>(pager::TRAINING_CAMPAIGNS),
        )
        .await?;
        let (m, stats) = (&self.ctx.metrics, &self.ctx.stats);
        Ok(metrics::training(
            self.key(),
            enrollments,
            &campaigns,
            m,
            stats,
        ))
    }

    async fn phishing(&self) -> Result<Rendered, FetchError> {
        let tests = self.list::<SecurityTest>(pager::SECURITY_TESTS).await?;
        let (account, max) = (&self.key().account, self.ctx.metrics.max_label_values);
        Ok(metrics::phishing(account, &tests, max))
    }

    /// Warns when a poll at the vendor's pace cannot finish within the deadline, or the polls
    /// of a day cannot fit the daily quota (as `--check-config` says it, with the seats and
    /// requests seen).
    fn warn_if_unfit(&self, plan: &Plan) {
        let per_minute = f64::from(self.config.requests_per_minute.max(1));
        let pace = Duration::from_secs_f64(60.0 * plan.per_poll as f64 / per_minute);
        let deadline = self.ctx.poll.deadline.min(self.interval());
        if pace > deadline {
            tracing::warn!(
                source = %self.key(),
                per_poll = plan.per_poll,
                requests_per_minute = self.config.requests_per_minute,
                "a KnowBe4 poll at the vendor's pace takes {} but poll.deadline (or the \
                 interval) ends it after {}; raise poll.deadline and the interval",
                humantime::format_duration(pace),
                humantime::format_duration(deadline)
            );
        }
        if let Some(why) = plan.refusal() {
            tracing::warn!(source = %self.key(), "{why}");
        }
    }
}

impl Source for KnowBe4Source {
    fn key(&self) -> &SourceKey {
        &self.engine.key
    }

    fn sections(&self) -> Vec<&'static str> {
        self.config.endpoints.iter().map(|e| e.name()).collect()
    }

    fn ledger(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self.http.daily.ledger()).ok()
    }

    fn restore_ledger(&self, ledger: serde_json::Value) {
        if let Ok(ledger) = serde_json::from_value::<Vec<(u64, u64)>>(ledger) {
            self.http.daily.restore(&ledger);
        }
    }

    fn poll_sections(&self, wanted: Vec<&'static str>) -> BoxFuture<'_, PollOutcome> {
        async move {
            let (endpoints, names) =
                crate::sources::wanted_sections(&self.config.endpoints, &wanted, Endpoint::name);
            if endpoints.is_empty() {
                return PollOutcome::default();
            }
            // Its row count, and its deadline: no wait for a rate-limit window outlasts it.
            self.engine.begin_poll();
            let used_before = self.http.daily.used();

            // A poll the day's quota cannot carry is not started: the last good data stays.
            let plan = self.plan();
            let left = plan.quota.saturating_sub(used_before);
            if plan.per_poll > left {
                let e = format!(
                    "KnowBe4 daily quota: {left} of {} requests left in the last 24 hours and a \
                     poll needs about {}; not polling (the last good data is kept)",
                    plan.quota, plan.per_poll
                );
                self.ctx.stats.failure(ACCOUNT, FailureReason::RateLimited);
                let e = FetchError::new(FailureReason::RateLimited, e);
                return PollOutcome::all_failed(&names, e);
            }

            // The account first: its seats set the quota, and a refused key (401) fails every
            // section at once instead of on every endpoint; a 403 may be this endpoint's
            // permission only.
            let account = if endpoints.contains(&Endpoint::Account) {
                match self.account().await {
                    Err(e) if e.status == Some(401) => return PollOutcome::all_failed(&names, e),
                    other => Some(other),
                }
            } else {
                None
            };
            let mut sections = futures::future::join_all(endpoints.iter().map(|e| async move {
                let result = match e {
                    Endpoint::Users => self.users().await,
                    Endpoint::Training => self.training().await,
                    Endpoint::Phishing => self.phishing().await,
                    // Read first, rendered last (below).
                    Endpoint::Account => Ok(Rendered::default()),
                };
                SectionOutcome {
                    name: e.name(),
                    result: result.map_err(Into::into),
                }
            }))
            .await;

            let poll_requests = self.http.daily.used().saturating_sub(used_before);
            let account_ok = account.as_ref().is_none_or(Result::is_ok);
            if account_ok && sections.iter().all(|s| s.result.is_ok()) {
                self.last_poll_requests
                    .store(poll_requests, Ordering::Relaxed);
            }
            let plan = self.plan();
            let section = sections.iter_mut().find(|s| s.name == ACCOUNT);
            if let (Some(account), Some(section)) = (account, section) {
                let (name, used) = (&self.key().account, self.http.daily.used());
                section.result = account
                    .map(|a| metrics::account(name, &a, &plan, used, poll_requests))
                    .map_err(Into::into);
            }
            self.warn_if_unfit(&plan);
            self.ctx.stats.rows_read(self.engine.rows_read());
            PollOutcome { sections }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MetricsConfig, PollConfig};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_poll_the_days_quota_cannot_carry_sends_nothing() {
        let stats = Arc::new(crate::stats::ApiStats::default());
        let ctx = SourceContext {
            client: crate::http::client(),
            global_permits: Arc::new(tokio::sync::Semaphore::new(1)),
            stats: stats.clone(),
            poll: PollConfig::default(),
            metrics: MetricsConfig::default(),
        };
        // Nothing listens there: a request would fail with `connect`.
        let source = KnowBe4Source::new(KnowBe4Config::new("acme", "http://127.0.0.1:9", "k"), ctx);
        for _ in 0..BASE_DAILY_QUOTA - 3 {
            source.http.daily.record();
        }
        let outcome = source.poll().await;
        assert_eq!(outcome.sections.len(), 4);
        let e = outcome.first_failure().map(|e| e.to_string());
        let e = e.unwrap_or_default();
        assert!(e.contains("3 of 2000 requests left"), "{e}");
        assert_eq!(stats.total_requests(), 0, "not one request sent");
        assert_eq!(stats.failures(FailureReason::RateLimited), 1);
    }
}
