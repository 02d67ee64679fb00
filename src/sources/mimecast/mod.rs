//! Mimecast Awareness Training: one section per endpoint group, each published whole or kept
//! from the last good poll, so an endpoint the tenant is not licensed for fails only its own
//! metrics.

mod client;
pub mod config;
pub mod http;
mod metrics;
pub mod models;
mod page;

use std::sync::Arc;

use futures::future::{join_all, try_join_all, BoxFuture};
use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::config::{AccountConfig, Block, SourceConfig, VendorConfig};
use crate::model::{FetchError, Platform, PollOutcome, SectionOutcome, SourceKey};
use crate::snapshot::{MetricsBuilder, Rendered};
use crate::sources::aggregate::{lock, shared, take};
use crate::sources::paging::Engine;
use crate::sources::registry::Vendor;
use crate::sources::token::TokenCache;
use crate::sources::{Source, SourceContext};
pub use config::{MimecastAuth, MimecastConfig, MimecastEndpoint};
use models::{Campaign, Identified, PhishingCampaign};
use page::TokenPager;

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

const PERFORMANCE: &str = "company/get-performance-details";
const PERFORMANCE_SUMMARY: &str = "company/get-performance-summary";
const WATCHLIST: &str = "company/get-watchlist-details";
const SAFE_SCORE: &str = "company/get-safe-score-details";
const TRAINING: &str = "user/get-training-details";
const CAMPAIGNS: &str = "campaign/get-campaigns";
const CAMPAIGN_USERS: &str = "campaign/get-user-data";
const PHISHING: &str = "phishing/campaign/get-campaign";
const PHISHING_USERS: &str = "phishing/campaign/get-user-data";

impl MimecastEndpoint {
    /// The listings the section reads.
    fn listings(self) -> &'static [&'static str] {
        match self {
            MimecastEndpoint::PerformanceDetails => &[PERFORMANCE],
            MimecastEndpoint::PerformanceSummary => &[PERFORMANCE_SUMMARY],
            MimecastEndpoint::WatchlistDetails => &[WATCHLIST],
            MimecastEndpoint::SafeScoreDetails => &[SAFE_SCORE],
            MimecastEndpoint::TrainingDetails => &[TRAINING],
            MimecastEndpoint::Campaigns => &[CAMPAIGNS, CAMPAIGN_USERS],
            MimecastEndpoint::PhishingCampaigns => &[PHISHING, PHISHING_USERS],
        }
    }
}

/// One Mimecast account: its paging engine and its credentials (client.rs).
pub(crate) struct MimecastSource {
    config: MimecastConfig,
    ctx: SourceContext,
    engine: Engine,
    token: TokenCache,
    /// The decoded HMAC key (API 1.0).
    secret_key: Option<Zeroizing<Vec<u8>>>,
}

impl MimecastSource {
    pub(crate) fn new(config: MimecastConfig, ctx: SourceContext) -> Self {
        let key = SourceKey::new(PLATFORM, &config.account);
        // Counters of every listing read exist from the start.
        let listings: Vec<_> = config.endpoints.iter().flat_map(|e| e.listings()).collect();
        let listings: Vec<&'static str> = listings.into_iter().copied().collect();
        let engine = ctx.engine(&config, key, Arc::new(http::MimecastHttp), &listings);
        MimecastSource {
            secret_key: client::secret_key(&config.auth),
            token: TokenCache::default(),
            config,
            ctx,
            engine,
        }
    }

    async fn section(&self, endpoint: MimecastEndpoint) -> Result<Rendered, FetchError> {
        let (key, m, stats) = (&self.engine.key, &self.ctx.metrics, &*self.ctx.stats);
        let account = key.account.as_str();
        let mut b = MetricsBuilder::new();
        match endpoint {
            MimecastEndpoint::PerformanceDetails => {
                // As the production clients (Azure Sentinel's connector) ask.
                let item = Some(json!({ "includeUserDetails": true }));
                let acc = metrics::Performance::new(m);
                let add = |acc: &mut _, _, r: &_| metrics::performance_row(acc, r);
                let acc = self
                    .fold::<_, _, false>(PERFORMANCE, vec![item], acc, add)
                    .await?;
                metrics::performance(&mut b, key, acc, m, stats);
            }
            MimecastEndpoint::PerformanceSummary => {
                let add = |acc: &mut _, _, r: &_| metrics::summary_row(acc, r);
                let sums = self
                    .fold::<_, _, false>(PERFORMANCE_SUMMARY, vec![None], Default::default(), add)
                    .await?;
                metrics::performance_summary(&mut b, account, sums);
            }
            MimecastEndpoint::WatchlistDetails => {
                let acc = metrics::Watchlist::new(m);
                let add = |acc: &mut _, _, r: &_| metrics::watchlist_row(acc, r);
                let acc = self
                    .fold::<_, _, false>(WATCHLIST, vec![None], acc, add)
                    .await?;
                metrics::watchlist(&mut b, key, acc, m, stats);
            }
            MimecastEndpoint::SafeScoreDetails => {
                let add = |acc: &mut _, _, r: &_| metrics::safe_score_row(acc, r);
                let by = self
                    .fold::<_, _, false>(SAFE_SCORE, vec![None], Default::default(), add)
                    .await?;
                metrics::safe_score(&mut b, account, by);
            }
            MimecastEndpoint::TrainingDetails => {
                let add = |acc: &mut _, _, r: &_| metrics::training_row(acc, r);
                let sums = self
                    .fold::<_, _, false>(TRAINING, vec![None], Default::default(), add)
                    .await?;
                metrics::training(&mut b, account, sums);
            }
            MimecastEndpoint::Campaigns => {
                let mut pager = TokenPager::<Campaign, true>::new(self, CAMPAIGNS, None);
                let campaigns = self.engine.collect(&mut pager).await?;
                let items = campaigns
                    .iter()
                    .map(|c| Some(json!({ "id": c.id })))
                    .collect();
                let acc = campaigns.iter().map(|_| Default::default()).collect();
                let add = |acc: &mut Vec<_>, i, r: &_| metrics::campaign_user_row(acc, i, r);
                let users = self
                    .fold::<_, _, true>(CAMPAIGN_USERS, items, acc, add)
                    .await?;
                metrics::campaigns(&mut b, account, &campaigns, users);
            }
            MimecastEndpoint::PhishingCampaigns => {
                let mut pager = TokenPager::<PhishingCampaign, false>::new(self, PHISHING, None);
                let campaigns = self.engine.collect(&mut pager).await?;
                // Every campaign's recipients, folded into one accumulator: reports per
                // campaign, results by department.
                let items = campaigns
                    .iter()
                    .map(|c| Some(json!({ "id": c.id })))
                    .collect();
                let acc = metrics::Phishing::new(campaigns.len(), m);
                let add = metrics::phishing_row;
                let acc = self
                    .fold::<_, _, true>(PHISHING_USERS, items, acc, add)
                    .await?;
                metrics::phishing(&mut b, key, &campaigns, acc, m, stats);
            }
        }
        Ok(b.finish())
    }

    /// Every page of `endpoint` for each request item (a campaign's id, or `None`), folded
    /// into `acc` by `add` (with the item's number) as the pages arrive; with `NESTED` the
    /// rows are the lists inside `data[]`. Token paging is sequential within an item, so the
    /// items page side by side; the transport's per-account semaphore (fair, FIFO) keeps at
    /// most `poll.concurrency` requests in flight. One failure fails the section.
    async fn fold<T, A, const NESTED: bool>(
        &self,
        endpoint: &'static str,
        items: Vec<Option<Value>>,
        acc: A,
        add: fn(&mut A, usize, &T),
    ) -> Result<A, FetchError>
    where
        T: DeserializeOwned + Identified + Send + Sync + 'static,
        A: Default + Send + 'static,
    {
        let acc = shared(acc);
        let listings = items.into_iter().enumerate().map(|(i, item)| {
            let sink = acc.clone();
            let fold = move |rows: Vec<T>| {
                let mut acc = lock(&sink);
                rows.iter().for_each(|r| add(&mut acc, i, r));
            };
            async move {
                let mut pager = TokenPager::<T, NESTED>::new(self, endpoint, item);
                self.engine.fold(&mut pager, fold).await
            }
        });
        try_join_all(listings).await?;
        Ok(take(&acc))
    }
}

impl Source for MimecastSource {
    fn key(&self) -> &SourceKey {
        &self.engine.key
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
            if let Err(e) = self.authenticate().await {
                return PollOutcome::all_failed(&names, e);
            }
            let sections = join_all(endpoints.into_iter().map(|e| async move {
                SectionOutcome {
                    name: e.name(),
                    result: self.section(e).await.map_err(Into::into),
                }
            }))
            .await;
            self.ctx.stats.rows_read(self.engine.rows_read());
            PollOutcome { sections }
        }
        .boxed()
    }
}
