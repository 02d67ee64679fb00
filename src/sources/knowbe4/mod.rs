//! KnowBe4 (KSAT Reporting API): a static bearer key on a regional host, bare-array paging,
//! a daily request quota we count ourselves. One section per endpoint group (`account`,
//! `users`, `training`, `phishing`), each published whole or kept from the last good poll.

pub mod budget;
pub mod client;
pub mod config;
pub mod http;
pub mod metrics;
pub mod models;
pub mod page;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::config::{AccountConfig, Block, SourceConfig, VendorConfig};
use crate::model::{FailureReason, FetchError, Platform, PollOutcome, SectionOutcome, SourceKey};
use crate::snapshot::{MetricsBuilder, Rendered};
use crate::sources::aggregate::{lock, shared, take};
use crate::sources::registry::Vendor;
use crate::sources::{Source, SourceContext};
use budget::{requests_per_poll, Plan, PlanSections};
use client::KnowBe4Client;
use config::{Endpoint, KnowBe4Config};
use models::{Enrollment, Group, SecurityTest, TrainingCampaign, User};

/// The `platform` label's value and the config's `[[knowbe4]]` table.
pub const PLATFORM: Platform = Platform::new("knowbe4");

/// KnowBe4's registration (`crate::sources::registry::VENDORS`). Its HTTP semantics
/// ([`http::KnowBe4Http`]): no rate-limit headers and no documented error body, 401/403 are
/// auth, and a 429 without `Retry-After` waits for the documented limits, not one second.
pub static VENDOR: KnowBe4Vendor = KnowBe4Vendor;

pub struct KnowBe4Vendor;

impl VendorConfig for KnowBe4Vendor {
    fn platform(&self) -> Platform {
        PLATFORM
    }
    fn secret_keys(&self) -> &'static [&'static str] {
        config::SECRET_KEYS
    }
    fn read_account(&self, block: Block<'_>) -> Option<Arc<dyn AccountConfig>> {
        Some(Arc::new(config::read(block)?))
    }
}

impl Vendor for KnowBe4Vendor {
    fn title(&self) -> &'static str {
        "KnowBe4 (KSAT Reporting API)"
    }
    fn build(&self, config: &SourceConfig, ctx: SourceContext) -> Option<Arc<dyn Source>> {
        Some(Arc::new(KnowBe4Source::new(
            config.get::<KnowBe4Config>()?.clone(),
            ctx,
        )))
    }
}

pub struct KnowBe4Source {
    config: KnowBe4Config,
    ctx: SourceContext,
    client: KnowBe4Client,
    /// Requests the latest poll made (0 before the first): what the next one will need.
    last_poll_requests: AtomicU64,
}

impl KnowBe4Source {
    pub fn new(config: KnowBe4Config, ctx: SourceContext) -> Self {
        let key = SourceKey::new(PLATFORM, &config.account);
        let http = Arc::new(http::KnowBe4Http::new(&config));
        let mut endpoints = vec![client::ACCOUNT];
        for e in &config.endpoints {
            endpoints.extend_from_slice(match e {
                Endpoint::Account => &[][..],
                Endpoint::Users => &[client::USERS, client::GROUPS],
                Endpoint::Training => &[client::ENROLLMENTS, client::TRAINING_CAMPAIGNS],
                Endpoint::Phishing => &[client::SECURITY_TESTS],
            });
        }
        let engine = ctx.engine(&config, key, http.clone(), &endpoints);
        let client = KnowBe4Client::new(config.clone(), engine, http);
        KnowBe4Source {
            config,
            ctx,
            client,
            last_poll_requests: AtomicU64::new(0),
        }
    }

    fn interval(&self) -> std::time::Duration {
        self.config.interval.unwrap_or(self.ctx.poll.interval)
    }

    /// The plan for this account at its interval: the latest poll's requests, or an estimate
    /// from its size before the first poll.
    pub fn plan(&self) -> Plan {
        let last = self.last_poll_requests.load(Ordering::Relaxed);
        let per_poll = if last > 0 {
            last
        } else {
            let users = self.client.quota() - budget::BASE_DAILY_QUOTA;
            requests_per_poll(users, self.config.page_size as u64, self.plan_sections())
        };
        Plan::new(self.client.quota(), per_poll, self.interval())
    }

    fn plan_sections(&self) -> PlanSections {
        PlanSections {
            users: self.config.has(Endpoint::Users),
            training: self.config.has(Endpoint::Training),
            phishing: self.config.has(Endpoint::Phishing),
        }
    }

    async fn users(&self) -> Result<Rendered, FetchError> {
        let (mut users, groups) = futures::future::try_join(
            self.client.list::<User>(client::ACTIVE_USERS),
            self.client.list::<Group>(client::ACTIVE_GROUPS),
        )
        .await?;
        // The server is asked for active users only; archived ones are dropped if sent anyway.
        users.retain(User::is_active);
        let groups: Vec<Group> = groups
            .into_iter()
            .filter(|g| {
                g.status
                    .as_deref()
                    .is_none_or(|s| s.eq_ignore_ascii_case("active"))
            })
            .collect();
        if users.is_empty() && self.client.quota() > budget::BASE_DAILY_QUOTA {
            tracing::warn!(
                source = %self.key(),
                "KnowBe4 sent no active users for an account with licensed seats: is the region right?"
            );
        }
        let mut departments: Vec<String> = users
            .iter_mut()
            .map(|u| u.department.take().unwrap_or_default())
            .collect();
        self.fold("department", departments.iter_mut().collect());
        for (u, d) in users.iter_mut().zip(departments) {
            u.department = Some(d);
        }
        let mut b = MetricsBuilder::new();
        metrics::users(&mut b, self.key(), &users, &groups, &self.ctx.metrics);
        Ok(b.finish())
    }

    async fn training(&self) -> Result<Rendered, FetchError> {
        let acc = shared(metrics::Enrollments::default());
        let sink = acc.clone();
        let mut pages = self.client.pages::<Enrollment>(client::ENROLLMENT_LIST);
        let fold = move |rows: Vec<Enrollment>| {
            let mut acc = lock(&sink);
            rows.into_iter().for_each(|e| acc.add(e));
        };
        let (_, campaigns) = futures::future::try_join(
            self.client.engine.fold(&mut pages, fold),
            self.client
                .list::<TrainingCampaign>(client::TRAINING_CAMPAIGN_LIST),
        )
        .await?;
        let mut enrollments = take(&acc);
        enrollments.fold_rare(
            self.key(),
            self.ctx.metrics.max_label_values,
            &self.ctx.stats,
        );
        let mut b = MetricsBuilder::new();
        metrics::training(&mut b, &self.key().account, &enrollments, &campaigns);
        Ok(b.finish())
    }

    async fn phishing(&self) -> Result<Rendered, FetchError> {
        let tests = self
            .client
            .list::<SecurityTest>(client::SECURITY_TEST_LIST)
            .await?;
        let mut b = MetricsBuilder::new();
        metrics::phishing(
            &mut b,
            &self.key().account,
            &tests,
            self.ctx.metrics.max_label_values,
        );
        Ok(b.finish())
    }

    fn fold(&self, label: &'static str, values: Vec<&mut String>) {
        crate::sources::labels::fold_rare(
            self.key(),
            label,
            values,
            self.ctx.metrics.max_label_values,
            &self.ctx.stats,
        );
    }

    async fn section(&self, e: Endpoint) -> Result<Rendered, FetchError> {
        match e {
            Endpoint::Users => self.users().await,
            Endpoint::Training => self.training().await,
            Endpoint::Phishing => self.phishing().await,
            // Polled first, rendered last (see poll_sections).
            Endpoint::Account => Ok(Rendered::default()),
        }
    }
}

impl Source for KnowBe4Source {
    fn key(&self) -> &SourceKey {
        &self.client.engine.key
    }

    fn sections(&self) -> Vec<&'static str> {
        self.config.endpoints.iter().map(|e| e.name()).collect()
    }

    fn ledger(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self.client.http.daily.ledger()).ok()
    }

    fn restore_ledger(&self, ledger: serde_json::Value) {
        if let Ok(ledger) = serde_json::from_value::<Vec<(u64, u64)>>(ledger) {
            self.client.http.daily.restore(&ledger);
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
            self.client.engine.begin_poll();
            let used_before = self.client.used_today();

            // A poll the day's quota cannot carry is not started: the last good data stays.
            let plan = self.plan();
            let left = plan.quota.saturating_sub(used_before);
            if plan.per_poll > left {
                let e = format!(
                    "KnowBe4 daily quota: {left} of {} requests left in the last 24 hours and a \
                     poll needs about {}; not polling (the last good data is kept)",
                    plan.quota, plan.per_poll
                );
                self.ctx.stats.failure(client::ACCOUNT, FailureReason::RateLimited);
                return PollOutcome::all_failed(&names, FetchError::new(FailureReason::RateLimited, e));
            }

            // The account first: its seats set the quota, and a refused key fails the poll at
            // once instead of on every endpoint.
            let account = if endpoints.contains(&Endpoint::Account) {
                match self.client.account().await {
                    // A refused key (401) fails every section at once; a 403 may be this
                    // endpoint's permission only.
                    Err(e) if e.status == Some(401) => {
                        return PollOutcome::all_failed(&names, e);
                    }
                    other => Some(other),
                }
            } else {
                None
            };

            let mut sections = futures::future::join_all(
                endpoints
                    .iter()
                    .filter(|e| **e != Endpoint::Account)
                    .map(|e| async move {
                        SectionOutcome {
                            name: e.name(),
                            result: self.section(*e).await.map_err(Into::into),
                        }
                    }),
            )
            .await;

            let poll_requests = self.client.used_today().saturating_sub(used_before);
            if sections.iter().all(|s| s.result.is_ok()) && account.as_ref().is_none_or(|a| a.is_ok())
            {
                self.last_poll_requests
                    .store(poll_requests, Ordering::Relaxed);
            }
            if let Some(account) = account {
                let result = account.map_err(Into::into).map(|a| {
                    let quota = metrics::QuotaState {
                        plan: self.plan(),
                        used: self.client.used_today(),
                        poll_requests,
                    };
                    let mut b = MetricsBuilder::new();
                    metrics::account(&mut b, &self.key().account, &a, &quota);
                    b.finish()
                });
                sections.insert(
                    0,
                    SectionOutcome {
                        name: Endpoint::Account.name(),
                        result,
                    },
                );
            }
            let plan = self.plan();
            let pace = std::time::Duration::from_secs_f64(
                60.0 * plan.per_poll as f64 / f64::from(self.config.requests_per_minute.max(1)),
            );
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
            if !plan.fits() {
                tracing::warn!(
                    source = %self.key(),
                    per_poll = plan.per_poll,
                    poll_budget = plan.poll_budget,
                    shortest_interval = %humantime::format_duration(plan.shortest_interval),
                    "KnowBe4 polls at this interval do not fit the daily quota; set a longer interval"
                );
            }
            self.ctx.stats.rows_read(self.client.engine.rows_read());
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
        let ctx = SourceContext::standalone(
            crate::http::client(),
            stats.clone(),
            PollConfig::default(),
            MetricsConfig::default(),
        );
        // Nothing listens there: a request would fail with `connect`.
        let source = KnowBe4Source::new(KnowBe4Config::new("acme", "http://127.0.0.1:9", "k"), ctx);
        for _ in 0..budget::BASE_DAILY_QUOTA - 3 {
            source.client.http.daily.record();
        }
        let outcome = source.poll().await;
        assert_eq!(outcome.sections.len(), 4);
        let e = outcome.first_error().unwrap_or_default();
        assert!(e.contains("3 of 2000 requests left"), "{e}");
        assert_eq!(stats.total_requests(), 0, "not one request sent");
        assert_eq!(stats.failures(FailureReason::RateLimited), 1);
    }
}
