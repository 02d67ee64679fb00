//! Mimecast Awareness Training: one section per endpoint group, each published whole or kept
//! from the last good poll, so an endpoint the tenant is not licensed for fails only its own
//! metrics.

pub mod auth;
pub mod client;
pub mod config;
pub mod errors;
pub mod http;
pub mod metrics;
pub mod models;
pub mod page;

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::json;

use crate::config::{AccountConfig, Block, SourceConfig, VendorConfig};
use crate::model::{FetchError, Platform, PollOutcome, SectionOutcome, SourceKey};
use crate::snapshot::{MetricsBuilder, Rendered};
use crate::sources::aggregate::{lock, shared, take};
use crate::sources::registry::Vendor;
use crate::sources::{Source, SourceContext};
use client::{MimecastClient, TokenPager};
pub use config::{MimecastAuth, MimecastConfig, MimecastEndpoint};
use models::*;

/// The `platform` label's value and the config's `[[mimecast]]` table.
pub const PLATFORM: Platform = Platform::new("mimecast");

/// Mimecast's registration (`crate::sources::registry::VENDORS`).
pub static VENDOR: MimecastVendor = MimecastVendor;

pub struct MimecastVendor;

impl VendorConfig for MimecastVendor {
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

impl Vendor for MimecastVendor {
    fn title(&self) -> &'static str {
        "Mimecast Awareness Training"
    }
    fn build(&self, config: &SourceConfig, ctx: SourceContext) -> Option<Arc<dyn Source>> {
        Some(Arc::new(MimecastSource::new(
            config.get::<MimecastConfig>()?.clone(),
            ctx,
        )))
    }
}

pub const PERFORMANCE: &str = "company/get-performance-details";
pub const PERFORMANCE_SUMMARY: &str = "company/get-performance-summary";
pub const WATCHLIST: &str = "company/get-watchlist-details";
pub const SAFE_SCORE: &str = "company/get-safe-score-details";
pub const TRAINING: &str = "user/get-training-details";
pub const CAMPAIGNS: &str = "campaign/get-campaigns";
pub const CAMPAIGN_USERS: &str = "campaign/get-user-data";
pub const PHISHING: &str = "phishing/campaign/get-campaign";
pub const PHISHING_USERS: &str = "phishing/campaign/get-user-data";

pub struct MimecastSource {
    config: MimecastConfig,
    ctx: SourceContext,
    client: MimecastClient,
}

/// The listings a poll of `config` reads, for counters that exist from the start.
fn endpoints(config: &MimecastConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    for e in &config.endpoints {
        out.extend_from_slice(match e {
            MimecastEndpoint::PerformanceDetails => &[PERFORMANCE][..],
            MimecastEndpoint::PerformanceSummary => &[PERFORMANCE_SUMMARY],
            MimecastEndpoint::WatchlistDetails => &[WATCHLIST],
            MimecastEndpoint::SafeScoreDetails => &[SAFE_SCORE],
            MimecastEndpoint::TrainingDetails => &[TRAINING],
            MimecastEndpoint::Campaigns => &[CAMPAIGNS, CAMPAIGN_USERS],
            MimecastEndpoint::PhishingCampaigns => &[PHISHING, PHISHING_USERS],
        });
    }
    out
}

impl MimecastSource {
    pub fn new(config: MimecastConfig, ctx: SourceContext) -> Self {
        let key = SourceKey::new(PLATFORM, &config.account);
        let http = std::sync::Arc::new(http::MimecastHttp);
        let engine = ctx.engine(&config, key, http, &endpoints(&config));
        let client = MimecastClient::new(config.clone(), engine);
        MimecastSource {
            config,
            ctx,
            client,
        }
    }

    fn key(&self) -> &SourceKey {
        &self.client.engine.key
    }

    async fn section(&self, endpoint: MimecastEndpoint) -> Result<Rendered, FetchError> {
        let account = self.key().account.as_str();
        let m = &self.ctx.metrics;
        let stats = &self.ctx.stats;
        let mut b = MetricsBuilder::new();
        match endpoint {
            MimecastEndpoint::PerformanceDetails => {
                let acc = self
                    .fold::<_, _, false>(
                        PERFORMANCE,
                        // As the production clients (Azure Sentinel's connector) ask.
                        Some(json!({ "includeUserDetails": true })),
                        metrics::Performance::new(m),
                        |acc, r: &PerformanceRow| acc.add(r),
                    )
                    .await?;
                metrics::performance(&mut b, self.key(), account, acc, m, stats);
            }
            MimecastEndpoint::PerformanceSummary => {
                let mut pager = TokenPager::<PerformanceSummaryRow, false>::new(
                    &self.client,
                    PERFORMANCE_SUMMARY,
                    None,
                );
                let rows = self.client.engine.collect(&mut pager).await?;
                metrics::performance_summary(&mut b, account, &rows);
            }
            MimecastEndpoint::WatchlistDetails => {
                let acc = self
                    .fold::<_, _, false>(
                        WATCHLIST,
                        None,
                        metrics::Watchlist::new(m),
                        |acc, r: &WatchlistRow| acc.add(r),
                    )
                    .await?;
                metrics::watchlist(&mut b, self.key(), account, acc, m, stats);
            }
            MimecastEndpoint::SafeScoreDetails => {
                let acc = self
                    .fold::<_, _, false>(
                        SAFE_SCORE,
                        None,
                        metrics::SafeScore::default(),
                        |acc, r: &SafeScoreRow| acc.add(r),
                    )
                    .await?;
                metrics::safe_score(&mut b, account, acc);
            }
            MimecastEndpoint::TrainingDetails => {
                let mut pager = TokenPager::<TrainingRow, false>::new(&self.client, TRAINING, None);
                let rows = self.client.engine.collect(&mut pager).await?;
                metrics::training(&mut b, account, &rows);
            }
            MimecastEndpoint::Campaigns => {
                let campaigns = self.campaigns().await?;
                // Every campaign's user data. Token paging is sequential within a campaign, so
                // all campaigns page side by side; the transport's per-account semaphore (fair,
                // FIFO) keeps at most `poll.concurrency` requests in flight. One failure fails
                // the section.
                let all =
                    futures::future::try_join_all(campaigns.into_iter().map(|c| async move {
                        let id = c.id.clone().unwrap_or_default();
                        let users = self
                            .fold::<_, _, true>(
                                CAMPAIGN_USERS,
                                Some(json!({ "id": id })),
                                metrics::CampaignUsers::default(),
                                |acc, r: &CampaignUserRow| acc.add(r),
                            )
                            .await?;
                        Ok::<_, FetchError>((c, users))
                    }))
                    .await?;
                metrics::campaigns(&mut b, account, &all);
            }
            MimecastEndpoint::PhishingCampaigns => {
                let mut pager =
                    TokenPager::<PhishingCampaign, false>::new(&self.client, PHISHING, None);
                let campaigns = self.client.engine.collect(&mut pager).await?;
                // Every campaign's recipients, folded into one accumulator: reports per
                // campaign, results by department.
                let acc = shared(metrics::Phishing::new(campaigns.len(), m));
                futures::future::try_join_all(campaigns.iter().enumerate().map(|(i, c)| {
                    let item = Some(json!({ "id": c.id.clone().unwrap_or_default() }));
                    let acc = acc.clone();
                    async move {
                        let mut pager = TokenPager::<PhishingUserRow, true>::new(
                            &self.client,
                            PHISHING_USERS,
                            item,
                        );
                        let fold = move |rows: Vec<PhishingUserRow>| {
                            let mut acc = lock(&acc);
                            for r in &rows {
                                acc.add(i, r);
                            }
                        };
                        self.client.engine.fold(&mut pager, fold).await
                    }
                }))
                .await?;
                let acc = take(&acc);
                metrics::phishing(&mut b, account, &campaigns, &acc);
                metrics::phishing_departments(&mut b, self.key(), account, acc, m, stats);
            }
        }
        Ok(b.finish())
    }

    /// Every page of `endpoint` folded into `acc` by `add` as the pages arrive (rows from
    /// `data[].items[]` when `NESTED`).
    async fn fold<T, A, const NESTED: bool>(
        &self,
        endpoint: &'static str,
        item: Option<serde_json::Value>,
        acc: A,
        add: fn(&mut A, &T),
    ) -> Result<A, FetchError>
    where
        T: serde::de::DeserializeOwned + Identified + Send + Sync + 'static,
        A: Default + Send + 'static,
    {
        let acc = shared(acc);
        let sink = acc.clone();
        let mut pager = TokenPager::<T, NESTED>::new(&self.client, endpoint, item);
        self.client
            .engine
            .fold(&mut pager, move |rows: Vec<T>| {
                let mut acc = lock(&sink);
                for r in &rows {
                    add(&mut acc, r);
                }
            })
            .await?;
        Ok(take(&acc))
    }

    /// campaign/get-campaigns: `data[0].campaigns[]` (or campaigns directly in `data[]`).
    async fn campaigns(&self) -> Result<Vec<Campaign>, FetchError> {
        let mut pager = TokenPager::<serde_json::Value, false>::new(&self.client, CAMPAIGNS, None);
        let lists = self.client.engine.collect(&mut pager).await?;
        let mut out = Vec::new();
        let mut skipped = 0u64;
        for entry in lists {
            let items: Vec<serde_json::Value> = match entry.get("campaigns") {
                Some(serde_json::Value::Array(list)) => list.clone(),
                _ => vec![entry],
            };
            for item in items {
                match serde_json::from_value::<Campaign>(item) {
                    Ok(c) if c.id.as_deref().is_some_and(|id| !id.is_empty()) => out.push(c),
                    _ => skipped += 1,
                }
            }
        }
        self.ctx.stats.rows_skipped(CAMPAIGNS, skipped);
        Ok(out)
    }
}

impl Source for MimecastSource {
    fn key(&self) -> &SourceKey {
        &self.client.engine.key
    }

    fn sections(&self) -> Vec<&'static str> {
        self.config.endpoints.iter().map(|e| e.name()).collect()
    }

    fn poll_sections(&self, wanted: Vec<&'static str>) -> BoxFuture<'_, PollOutcome> {
        async move {
            let (endpoints, names) = crate::sources::wanted_sections(
                &self.config.endpoints,
                &wanted,
                MimecastEndpoint::name,
            );
            if endpoints.is_empty() {
                return PollOutcome::default();
            }
            if let Err(e) = self.client.authenticate().await {
                return PollOutcome::all_failed(&names, e);
            }
            let sections = futures::future::join_all(endpoints.into_iter().map(|e| async move {
                SectionOutcome {
                    name: e.name(),
                    result: self.section(e).await.map_err(Into::into),
                }
            }))
            .await;
            self.ctx.stats.rows_read(self.client.engine.rows_read());
            PollOutcome { sections }
        }
        .boxed()
    }
}
