//! Mimecast Awareness Training: one section per endpoint group, each published whole or kept
//! from the last good poll, so an endpoint the tenant is not licensed for fails only its own
//! metrics.

mod client;
pub(crate) mod config;
pub(crate) mod http;
mod metrics;
pub(crate) mod models;
mod page;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::future::{join_all, try_join_all, BoxFuture};
use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::model::{FetchError, Platform, PollOutcome, SectionOutcome, SourceKey};
use crate::snapshot::{MetricsBuilder, Rendered};
use crate::sources::aggregate::lock;
use crate::sources::paging::Engine;
use crate::sources::registry::Registration;
use crate::sources::token::TokenCache;
use crate::sources::{Source, SourceContext};
pub use config::{MimecastAuth, MimecastConfig, MimecastEndpoint};
use models::{Campaign, Identified, PhishingCampaign};
use page::TokenPager;

/// The `platform` label's value and the config's `[[mimecast]]` table.
pub(crate) const PLATFORM: Platform = Platform::new("mimecast");

/// Mimecast's registration (`crate::sources::registry::VENDORS`).
pub(crate) static VENDOR: Registration<MimecastConfig, MimecastSource> = Registration {
    platform: PLATFORM,
    title: "Mimecast Awareness Training",
    secret_keys: config::SECRET_KEYS,
    read: config::read,
    source: MimecastSource::new,
};

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
        let listings = config.endpoints.iter().flat_map(|e| e.listings());
        let listings: Vec<_> = listings.copied().collect();
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
        let b = MetricsBuilder::new();
        let mut out = metrics::Section { b, key, m, stats };
        match endpoint {
            MimecastEndpoint::PerformanceDetails => {
                // As the production clients (Azure Sentinel's connector) ask.
                let item = Some(json!({ "includeUserDetails": true }));
                let acc = metrics::Performance::new(m);
                let acc = self.fold(PERFORMANCE, vec![item], acc, metrics::performance_row);
                metrics::performance(&mut out, acc.await?);
            }
            MimecastEndpoint::PerformanceSummary => {
                let add = metrics::summary_row;
                let sums = self.fold(PERFORMANCE_SUMMARY, vec![None], [None; 8], add);
                metrics::performance_summary(&mut out, sums.await?);
            }
            MimecastEndpoint::WatchlistDetails => {
                let acc = metrics::Watchlist::new(m);
                let acc = self.fold(WATCHLIST, vec![None], acc, metrics::watchlist_row);
                metrics::watchlist(&mut out, acc.await?);
            }
            MimecastEndpoint::SafeScoreDetails => {
                let add = metrics::safe_score_row;
                let by = self.fold(SAFE_SCORE, vec![None], BTreeMap::new(), add);
                metrics::safe_score(&mut out, by.await?);
            }
            MimecastEndpoint::TrainingDetails => {
                let sums = self.fold(TRAINING, vec![None], [0.0; 4], metrics::training_row);
                metrics::training(&mut out, sums.await?);
            }
            MimecastEndpoint::Campaigns => {
                let campaigns: Vec<Campaign> = self.list(CAMPAIGNS).await?;
                let add = metrics::campaign_user_row;
                let users = self.fold(CAMPAIGN_USERS, ids(&campaigns), BTreeMap::new(), add);
                metrics::campaigns(&mut out, &campaigns, users.await?);
            }
            MimecastEndpoint::PhishingCampaigns => {
                let campaigns: Vec<PhishingCampaign> = self.list(PHISHING).await?;
                // Every campaign's recipients, folded into one accumulator: reports per
                // campaign, results by department.
                let acc = metrics::Phishing::new(m);
                let acc = self.fold(PHISHING_USERS, ids(&campaigns), acc, metrics::phishing_row);
                metrics::phishing(&mut out, &campaigns, acc.await?);
            }
        }
        Ok(out.b.finish())
    }

    /// Every page of `endpoint` for each request item (a campaign's id, or `None`), folded
    /// into `acc` by `add` (with the item's number) as the pages arrive. Token paging is
    /// sequential within an item, so the items page side by side; the transport's per-account
    /// semaphore (fair, FIFO) keeps at most `poll.concurrency` requests in flight. One failure
    /// fails the section.
    async fn fold<T, A>(
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
        let acc = Arc::new(Mutex::new(acc));
        let listings = items.into_iter().enumerate().map(|(i, item)| {
            let add = move |acc: &mut Arc<Mutex<A>>, rows: Vec<T>| {
                let mut acc = lock(acc);
                rows.iter().for_each(|r| add(&mut acc, i, r));
            };
            let mut pager = TokenPager::<T>::new(self, endpoint, item);
            let acc = acc.clone();
            async move { self.engine.fold(&mut pager, acc, add).await }
        });
        try_join_all(listings).await?;
        let acc = std::mem::take(&mut *lock(&acc));
        Ok(acc)
    }

    /// Every row of `endpoint`, kept.
    async fn list<T>(&self, endpoint: &'static str) -> Result<Vec<T>, FetchError>
    where
        T: DeserializeOwned + Identified + Send + Sync + 'static,
    {
        self.engine
            .collect(&mut TokenPager::new(self, endpoint, None))
            .await
    }
}

/// One request item per campaign: its id.
fn ids<T: Identified>(campaigns: &[T]) -> Vec<Option<Value>> {
    campaigns
        .iter()
        .map(|c| Some(json!({ "id": c.key() })))
        .collect()
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
