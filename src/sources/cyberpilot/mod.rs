//! CyberPilot: the users-summary report, bearer token (static or OAuth2 password grant),
//! take/skip paging.

pub mod config;
pub mod metrics;
pub mod models;
pub mod page;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::config::{AccountConfig, Block, SourceConfig, VendorConfig};
use crate::http::{PlainHttp, Refusal, Reply};
use crate::model::{FailureReason, FetchError, Platform, PollOutcome, SectionOutcome, SourceKey};
use crate::sources::aggregate::{self, Shared};
use crate::sources::paging::{Engine, Pager};
use crate::sources::registry::Vendor;
use crate::sources::token::{request_token, TokenCache};
use crate::sources::{Source, SourceContext};
pub use config::{CyberPilotAuth, CyberPilotConfig};
use metrics::Report;
use page::{Counts, UsersFormat};

/// The `platform` label's value and the config's `[[cyberpilot]]` table.
pub const PLATFORM: Platform = Platform::new("cyberpilot");

/// CyberPilot's registration (`crate::sources::registry::VENDORS`). Plain HTTP semantics:
/// 429 with `Retry-After`, 401 for a refused token.
pub static VENDOR: CyberPilotVendor = CyberPilotVendor;

pub struct CyberPilotVendor;

impl VendorConfig for CyberPilotVendor {
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

impl Vendor for CyberPilotVendor {
    fn title(&self) -> &'static str {
        "CyberPilot"
    }
    fn build(&self, config: &SourceConfig, ctx: SourceContext) -> Option<Arc<dyn Source>> {
        Some(Arc::new(CyberPilotSource::new(
            config.get::<CyberPilotConfig>()?.clone(),
            ctx,
        )))
    }
}

pub const ENDPOINT_USERS: &str = "users-summary";
pub const ENDPOINT_LOGIN: &str = "login";
pub const SECTION: &str = "users-summary";

pub struct CyberPilotSource {
    config: CyberPilotConfig,
    ctx: SourceContext,
    engine: Engine,
    token: TokenCache,
}

/// take/skip paging of the users-summary report. After the first page tells the total and
/// the page size the server really uses (its cap on `take`), the other pages are asked for at
/// once; a gap left by a short page (or a total that grew meanwhile) is then filled with
/// `skip += fetched`, one page after another.
struct UsersPager<'a> {
    source: &'a CyberPilotSource,
    url: String,
    /// Rows each page held, by its skip.
    pages: BTreeMap<u64, u64>,
    /// The total as the furthest page read says it.
    total: u64,
}

impl Pager for UsersPager<'_> {
    type Format = UsersFormat;
    type Request = u64;

    fn endpoint(&self) -> &'static str {
        ENDPOINT_USERS
    }

    fn next(&mut self) -> Vec<u64> {
        let Some(&step) = self.pages.get(&0) else {
            return vec![0];
        };
        if self.pages.len() == 1 && step > 0 && self.total > step {
            return (1..=(self.total - 1) / step).map(|i| i * step).collect();
        }
        // The first row no page holds: in a gap, or past the last page.
        let mut at = 0;
        let mut pages = self.pages.iter().peekable();
        while let Some((&skip, &len)) = pages.next() {
            if skip > at && at < self.total {
                return vec![at];
            }
            // An empty page ends its stretch: the rows go on at the next page read, if any.
            at = match (len, pages.peek()) {
                (0, Some((&next, _))) => next,
                (0, None) => u64::MAX,
                _ => at.max(skip + len),
            };
        }
        if at < self.total {
            vec![at]
        } else {
            Vec::new()
        }
    }

    fn learn(&mut self, skip: u64, page: Counts, rows: u64) {
        if self
            .pages
            .keys()
            .next_back()
            .is_none_or(|last| skip >= *last)
        {
            let count = page.count.filter(|c| *c >= 0.0).map(|c| c as u64);
            self.total = count.unwrap_or(if skip == 0 { rows } else { self.total });
        }
        self.pages.insert(skip, rows);
    }

    async fn send<T, A, AF>(&self, skip: &u64, accept: A) -> Result<T, FetchError>
    where
        T: Send,
        A: Fn(Reply) -> AF + Send + Sync,
        AF: std::future::Future<Output = Result<T, Refusal>> + Send,
    {
        let s = self.source;
        let (take, skip) = (s.config.page_size.to_string(), skip.to_string());
        // A refused login token is renewed once; a static token's refusal stands.
        s.engine
            .transport
            .fetch_with_bearer(
                ENDPOINT_USERS,
                || s.bearer(),
                |token| async move {
                    let renewable = matches!(s.config.auth, CyberPilotAuth::Login { .. });
                    if renewable {
                        s.token.invalidate(&token).await;
                    }
                    renewable
                },
                || {
                    s.engine
                        .transport
                        .client()
                        .get(&self.url)
                        .query(&[("take", take.as_str()), ("skip", skip.as_str())])
                        .header("accept", "application/json")
                },
                accept,
            )
            .await
    }
}

impl CyberPilotSource {
    pub fn new(config: CyberPilotConfig, ctx: SourceContext) -> Self {
        let key = SourceKey::new(PLATFORM, &config.account);
        let engine = ctx.engine(&config, key, Arc::new(PlainHttp), &[ENDPOINT_USERS]);
        CyberPilotSource {
            config,
            ctx,
            engine,
            token: TokenCache::default(),
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
                let transport = &self.engine.transport;
                self.token
                    .get(|| {
                        request_token(transport, ENDPOINT_LOGIN, "login", || {
                            transport.client().post(token_url).form(&[
                                ("grant_type", "password"),
                                ("client_id", client_id.as_str()),
                                ("username", username.as_str()),
                                ("password", password.expose()),
                            ])
                        })
                    })
                    .await
            }
        }
    }

    /// Reads the whole report, folding each page into a [`Report`] as it arrives (a user on
    /// two pages counts once).
    pub async fn fetch_all(&self) -> Result<Report, FetchError> {
        let report: Shared<Report> = aggregate::shared(Report::new(&self.ctx.metrics));
        let mut pager = UsersPager {
            source: self,
            url: users_summary_url(&self.config.base_url, &self.config.account_id)?,
            pages: BTreeMap::new(),
            total: 0,
        };
        let sink = report.clone();
        self.engine
            .fold(&mut pager, move |users| {
                let mut report = aggregate::lock(&sink);
                for u in &users {
                    report.add(u);
                }
            })
            .await?;
        Ok(aggregate::take(&report))
    }
}

impl Source for CyberPilotSource {
    fn key(&self) -> &SourceKey {
        &self.engine.key
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
            self.engine.begin_poll();
            if let Err(e) = self.bearer().await {
                return PollOutcome::all_failed(&[SECTION], e);
            }
            let result = match self.fetch_all().await {
                // Rendering and folding rare branches: off the serving threads as well.
                Ok(report) => {
                    let (key, config) = (self.engine.key.clone(), self.ctx.metrics.clone());
                    let stats = self.ctx.stats.clone();
                    self.engine
                        .off_thread(move || report.render(&key, &config, &stats))
                        .await
                        .map_err(Into::into)
                }
                Err(e) => Err(e.into()),
            };
            self.ctx.stats.rows_read(self.engine.rows_read());
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
