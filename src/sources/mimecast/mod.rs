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

use crate::http::{FetchError, VendorHttp};
use crate::model::{Platform, PollOutcome, SectionOutcome, SourceKey};
use crate::snapshot::{MetricsBuilder, Rendered};
use crate::sources::registry::{AccountConfig, Vendor};
use crate::sources::{Source, SourceContext};
use client::MimecastClient;
pub use config::{MimecastAuth, MimecastConfig, MimecastEndpoint};
use models::*;

/// The `platform` label's value and the config's `[[mimecast]]` table.
pub const PLATFORM: Platform = Platform::new("mimecast");

/// Mimecast's registration (`crate::sources::registry::VENDORS`).
pub static VENDOR: MimecastVendor = MimecastVendor;

pub struct MimecastVendor;

impl Vendor for MimecastVendor {
    fn platform(&self) -> Platform {
        PLATFORM
    }
    fn title(&self) -> &'static str {
        "Mimecast Awareness Training"
    }
    fn read_account(&self, block: crate::config::Block<'_>) -> Option<Arc<dyn AccountConfig>> {
        Some(Arc::new(config::read(block)?))
    }
    fn secret_keys(&self) -> &'static [&'static str] {
        &["client_secret", "app_key", "access_key", "secret_key"]
    }
    fn http(&self) -> &'static dyn VendorHttp {
        &http::MimecastHttp
    }
}

pub const PERFORMANCE: &str = "company/get-performance-details";
pub const WATCHLIST: &str = "company/get-watchlist-details";
pub const SAFE_SCORE: &str = "company/get-safe-score-details";
pub const TRAINING: &str = "user/get-training-details";
pub const CAMPAIGNS: &str = "campaign/get-campaigns";
pub const CAMPAIGN_USERS: &str = "campaign/get-user-data";
pub const PHISHING: &str = "phishing/campaign/get-campaign";
pub const PHISHING_USERS: &str = "phishing/campaign/get-user-data";

pub struct MimecastSource {
    key: SourceKey,
    config: MimecastConfig,
    ctx: SourceContext,
    client: MimecastClient,
}

impl MimecastSource {
    pub fn new(config: MimecastConfig, ctx: SourceContext) -> Self {
        let key = SourceKey::new(PLATFORM, &config.account);
        let client = MimecastClient::new(
            key.clone(),
            config.clone(),
            ctx.transport(),
            ctx.stats.clone(),
            &ctx.poll,
        );
        MimecastSource {
            key,
            config,
            ctx,
            client,
        }
    }

    async fn section(&self, endpoint: MimecastEndpoint) -> Result<Rendered, FetchError> {
        let account = self.key.account.as_str();
        let m = &self.ctx.metrics;
        let mut b = MetricsBuilder::new();
        match endpoint {
            MimecastEndpoint::PerformanceDetails => {
                let mut rows = self
                    .client
                    .fetch_rows::<PerformanceRow>(
                        PERFORMANCE,
                        // As the production clients (Azure Sentinel's connector) ask.
                        Some(json!({ "includeUserDetails": true })),
                        false,
                    )
                    .await?;
                self.fold_departments(&mut rows.rows, |r| r.department.as_mut());
                metrics::performance(&mut b, &self.key, account, &rows.rows, m);
            }
            MimecastEndpoint::WatchlistDetails => {
                let mut rows = self
                    .client
                    .fetch_rows::<WatchlistRow>(WATCHLIST, None, false)
                    .await?;
                self.fold_departments(&mut rows.rows, |r| r.department.as_mut());
                metrics::watchlist(&mut b, &self.key, account, &rows.rows, m);
            }
            MimecastEndpoint::SafeScoreDetails => {
                let rows = self
                    .client
                    .fetch_rows::<SafeScoreRow>(SAFE_SCORE, None, false)
                    .await?;
                metrics::safe_score(&mut b, account, &rows.rows);
            }
            MimecastEndpoint::TrainingDetails => {
                let rows = self
                    .client
                    .fetch_rows::<TrainingRow>(TRAINING, None, false)
                    .await?;
                metrics::training(&mut b, account, &rows.rows);
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
                        let rows = self
                            .client
                            .fetch_rows::<CampaignUserRow>(
                                CAMPAIGN_USERS,
                                Some(json!({ "id": id })),
                                true,
                            )
                            .await?;
                        Ok::<_, FetchError>((c, rows.rows))
                    }))
                    .await?;
                metrics::campaigns(&mut b, account, &all);
            }
            MimecastEndpoint::PhishingCampaigns => {
                let rows = self
                    .client
                    .fetch_rows::<PhishingCampaign>(PHISHING, None, false)
                    .await?;
                // Every campaign's recipients: reports per campaign, results by department.
                let mut all = futures::future::try_join_all(rows.rows.into_iter().map(|c| async {
                    let id = c.id.clone().unwrap_or_default();
                    let users = self
                        .client
                        .fetch_rows::<PhishingUserRow>(
                            PHISHING_USERS,
                            Some(json!({ "id": id })),
                            true,
                        )
                        .await?;
                    Ok::<_, FetchError>((c, users.rows))
                }))
                .await?;
                let departments = all
                    .iter_mut()
                    .flat_map(|(_, users)| users.iter_mut())
                    .filter_map(|u| u.department.as_mut())
                    .collect();
                crate::sources::labels::fold_rare(
                    &self.key,
                    "department",
                    departments,
                    m.max_label_values,
                    &self.ctx.stats,
                );
                metrics::phishing(&mut b, account, &all);
                metrics::phishing_departments(&mut b, &self.key, account, &all, m);
            }
        }
        Ok(b.finish())
    }

    /// Department names come from the vendor: at most `metrics.max_label_values` of them keep
    /// their own series.
    fn fold_departments<T>(&self, rows: &mut [T], department: fn(&mut T) -> Option<&mut String>) {
        let values = rows.iter_mut().filter_map(department).collect();
        crate::sources::labels::fold_rare(
            &self.key,
            "department",
            values,
            self.ctx.metrics.max_label_values,
            &self.ctx.stats,
        );
    }

    /// campaign/get-campaigns: `data[0].campaigns[]` (or campaigns directly in `data[]`).
    async fn campaigns(&self) -> Result<Vec<Campaign>, FetchError> {
        let lists = self
            .client
            .fetch_rows::<serde_json::Value>(CAMPAIGNS, None, false)
            .await?;
        let mut out = Vec::new();
        let mut skipped = 0u64;
        for entry in lists.rows {
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
        &self.key
    }

    fn sections(&self) -> Vec<&'static str> {
        self.config.endpoints.iter().map(|e| e.name()).collect()
    }

    fn poll_sections(&self, wanted: Vec<&'static str>) -> BoxFuture<'_, PollOutcome> {
        async move {
            let endpoints: Vec<MimecastEndpoint> = self
                .config
                .endpoints
                .iter()
                .copied()
                .filter(|e| wanted.contains(&e.name()))
                .collect();
            if endpoints.is_empty() {
                return PollOutcome::default();
            }
            let names: Vec<&'static str> = endpoints.iter().map(|e| e.name()).collect();
            if let Err(e) = self.client.authenticate().await {
                return PollOutcome::all_failed(&names, &e.to_string());
            }
            let sections = futures::future::join_all(endpoints.into_iter().map(|e| async move {
                SectionOutcome {
                    name: e.name(),
                    result: self.section(e).await.map_err(|err| err.to_string()),
                }
            }))
            .await;
            self.ctx.stats.rows_read(self.client.rows_read());
            PollOutcome { sections }
        }
        .boxed()
    }
}
