//! Microsoft Defender Attack Simulation Training through Microsoft Graph v1.0: OAuth2 client
//! credentials, `@odata.nextLink` paging followed exactly as given, the Graph error envelope.
//! Sections: `simulations` (the list and each launched simulation's report overview),
//! `simulation-coverage`, `training-coverage` and `repeat-offenders` (the three report
//! functions), each published whole or kept from the last good poll.

pub(crate) mod config;
pub(crate) mod metrics;
pub(crate) mod models;
pub(crate) mod page;

use std::marker::PhantomData;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use crate::http::{Refusal, Reply};
use crate::model::{FailureReason, FetchError, Platform, PollOutcome, SectionOutcome, SourceKey};
use crate::snapshot::{MetricsBuilder, Rendered};
use crate::sources::paging::{Accept, Engine, Pager};
use crate::sources::registry::Registration;
use crate::sources::token::{request_token, TokenCache};
use crate::sources::{Source, SourceContext};
use config::DefenderConfig;
use models::{GraphRow, Overview, Simulation};
use page::{Collection, GraphHttp};

/// The `platform` label's value and the config's `[[defender]]` table.
pub(crate) const PLATFORM: Platform = Platform::new("defender");

/// Defender's registration (`crate::sources::registry::VENDORS`).
pub(crate) static VENDOR: Registration<DefenderConfig, DefenderSource> = Registration {
    platform: PLATFORM,
    title: "Microsoft Defender Attack Simulation Training (Microsoft Graph)",
    secret_keys: config::SECRET_KEYS,
    read: config::read,
    source: DefenderSource::new,
};

const TOKEN: &str = "token";
const SIMULATIONS: &str = "simulations";
const SIMULATIONS_PATH: &str = "security/attackSimulation/simulations";
const OVERVIEW: &str = "report-overview";
// The sections of the three report functions (their endpoint labels too).
const COVERAGE: &str = "simulation-coverage";
const TRAINING: &str = "training-coverage";
const OFFENDERS: &str = "repeat-offenders";

pub(crate) struct DefenderSource {
    config: DefenderConfig,
    ctx: SourceContext,
    engine: Engine,
    token: TokenCache,
}

/// A Graph collection: its first URL, then each `@odata.nextLink` exactly as given, as long
/// as it stays on the configured Graph origin (the bearer token goes with it).
struct NextLinks<'a, T> {
    source: &'a DefenderSource,
    endpoint: &'static str,
    next: Option<String>,
    rows: PhantomData<T>,
}

impl<T: GraphRow> Pager for NextLinks<'_, T> {
    type Format = Collection<T>;
    type Request = String;

    fn endpoint(&self) -> &'static str {
        self.endpoint
    }

    fn next(&mut self) -> impl IntoIterator<Item = String> {
        self.next.take()
    }

    fn learn(&mut self, _: String, link: page::NextLink, _: u64) {
        self.next = link.next;
    }

    async fn send<R: Send>(&self, url: &String, accept: Accept<'_, R>) -> Result<R, FetchError> {
        self.source.get(self.endpoint, url, accept).await
    }
}

impl DefenderSource {
    pub(crate) fn new(config: DefenderConfig, ctx: SourceContext) -> Self {
        let key = SourceKey::new(PLATFORM, &config.account);
        let listings = [SIMULATIONS, OVERVIEW, COVERAGE, TRAINING, OFFENDERS];
        let engine = ctx.engine(&config, key, Arc::new(GraphHttp), &listings);
        DefenderSource {
            config,
            ctx,
            engine,
            token: TokenCache::default(),
        }
    }

    async fn bearer(&self) -> Result<String, FetchError> {
        let c = &self.config;
        let url = format!("{}/{}/oauth2/v2.0/token", c.login_url, c.tenant_id);
        let transport = &self.engine.transport;
        self.token
            .get(|| {
                request_token(transport, TOKEN, "sign-in to Entra ID", || {
                    transport.client().post(&url).form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", c.client_id.as_str()),
                        ("client_secret", c.client_secret.expose()),
                        ("scope", "https://graph.microsoft.com/.default"),
                    ])
                })
            })
            .await
    }

    /// One GET of `url` with the token (renewed once when refused); only on the Graph origin.
    async fn get<R, A, AF>(
        &self,
        endpoint: &'static str,
        url: &str,
        accept: A,
    ) -> Result<R, FetchError>
    where
        A: Fn(Reply) -> AF,
        AF: std::future::Future<Output = Result<R, Refusal>>,
    {
        if page::origin(url).is_none() || page::origin(url) != page::origin(&self.config.base_url) {
            let e = FetchError::new(
                FailureReason::Decode,
                format!("{endpoint}: Graph sent a next link to another host; not followed"),
            );
            self.engine.transport.record_failure(endpoint, &e);
            return Err(e);
        }
        let transport = &self.engine.transport;
        let build = || {
            transport
                .client()
                .get(url)
                .header("accept", "application/json")
                // Enum members Graph added later come as sent, not `unknownFutureValue`.
                .header("prefer", "include-unknown-enum-members")
        };
        // A refused token (401) is renewed once; a 403 is the tenant's licence or the app's
        // permission, which a new token does not change (the cache renews on 401 only).
        let bearer = || self.bearer();
        self.token
            .fetch(transport, endpoint, bearer, build, accept)
            .await
    }

    /// Every row of the collection at `path` under `/v1.0/`.
    async fn list<T: GraphRow>(
        &self,
        endpoint: &'static str,
        path: &str,
    ) -> Result<Vec<T>, FetchError> {
        let mut pager = NextLinks {
            source: self,
            endpoint,
            next: Some(format!("{}/v1.0/{path}", self.config.base_url)),
            rows: PhantomData,
        };
        self.engine.collect(&mut pager).await
    }

    /// A simulation's report overview; `None` when the simulation is gone (404) meanwhile, or
    /// its id is not one (Graph's are GUIDs: nothing in one can change the path).
    async fn overview(&self, id: &str) -> Result<Option<Overview>, FetchError> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Ok(None);
        }
        let base = &self.config.base_url;
        let url = format!("{base}/v1.0/security/attackSimulation/simulations/{id}/report/overview");
        let read = |reply: Reply| async move {
            serde_json::from_slice::<Overview>(&reply.body).map_err(|e| {
                let e = format!("{OVERVIEW}: not a report overview: {e}");
                Refusal::fatal(FetchError::new(FailureReason::Decode, e))
            })
        };
        match self.get(OVERVIEW, &url, read).await {
            Err(e) if e.status == Some(404) => Ok(None),
            other => other.map(Some),
        }
    }

    async fn simulations(&self) -> Result<Rendered, FetchError> {
        let all: Vec<Simulation> = self.list(SIMULATIONS, SIMULATIONS_PATH).await?;
        let lookback = i64::try_from(self.config.lookback.as_secs()).unwrap_or(i64::MAX / 2);
        let since = chrono::Utc::now().timestamp().saturating_sub(lookback);
        let reported = metrics::reported(&all, since, self.ctx.metrics.max_label_values);
        // Owned ids: a future per id that borrows only the source.
        let ids: Vec<String> = reported.iter().filter_map(|s| s.id.clone()).collect();
        let fetched: Vec<Result<Option<Overview>, FetchError>> = futures::stream::iter(
            ids.into_iter()
                .map(|id| async move { self.overview(&id).await }),
        )
        .buffered(self.ctx.poll.concurrency.max(1))
        .collect()
        .await;
        let mut overviews = Vec::with_capacity(fetched.len());
        for (s, o) in reported.into_iter().zip(fetched) {
            overviews.extend(o?.map(|o| (s, o)));
        }
        let mut b = MetricsBuilder::new();
        metrics::simulations(&mut b, &self.config.account, &all, &overviews);
        Ok(b.finish())
    }

    /// A report function's rows, rendered off the serving threads (a tenant's users).
    async fn report<T: GraphRow>(
        &self,
        name: &'static str,
        function: &str,
        render: metrics::Render<T>,
    ) -> Result<Rendered, FetchError> {
        let path = format!("reports/security/getAttackSimulation{function}");
        let rows: Vec<T> = self.list(name, &path).await?;
        let (key, m, stats) = (
            self.engine.key.clone(),
            self.ctx.metrics.clone(),
            self.ctx.stats.clone(),
        );
        self.engine
            .off_thread(move || {
                let mut b = MetricsBuilder::new();
                render(&mut b, &key, &rows, &m, &stats);
                b.finish()
            })
            .await
    }

    async fn section(&self, name: &'static str) -> Result<Rendered, FetchError> {
        match name {
            COVERAGE => {
                self.report(name, "SimulationUserCoverage", metrics::simulation_coverage)
                    .await
            }
            TRAINING => {
                self.report(name, "TrainingUserCoverage", metrics::training)
                    .await
            }
            OFFENDERS => {
                self.report(name, "RepeatOffenders", metrics::repeat_offenders)
                    .await
            }
            _ => self.simulations().await,
        }
    }
}

impl Source for DefenderSource {
    fn key(&self) -> &SourceKey {
        &self.engine.key
    }

    fn sections(&self) -> Vec<&'static str> {
        self.config.endpoints.clone()
    }

    fn poll_sections(&self, wanted: Vec<&'static str>) -> BoxFuture<'_, PollOutcome> {
        async move {
            let names: Vec<&'static str> = self
                .config
                .endpoints
                .iter()
                .copied()
                .filter(|s| wanted.contains(s))
                .collect();
            if names.is_empty() {
                return PollOutcome::default();
            }
            // One sign-in per poll: a failed one fails the poll at once.
            self.token.begin_poll().await;
            self.engine.begin_poll();
            if let Err(e) = self.bearer().await {
                return PollOutcome::all_failed(&names, e);
            }
            let sections = futures::future::join_all(names.into_iter().map(|name| async move {
                SectionOutcome {
                    name,
                    result: self.section(name).await.map_err(Into::into),
                }
            }))
            .await;
            self.ctx.stats.rows_read(self.engine.rows_read());
            PollOutcome { sections }
        }
        .boxed()
    }
}
