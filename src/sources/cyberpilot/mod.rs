//! CyberPilot: the users-summary report, bearer token (static or OAuth2 password grant),
//! take/skip paging.

pub(crate) mod config;
pub(crate) mod metrics;
pub(crate) mod models;
pub(crate) mod page;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::http::PlainHttp;
use crate::model::{FailureReason, FetchError, Platform, PollOutcome, SectionOutcome, SourceKey};
use crate::sources::paging::{Accept, Engine, Pager};
use crate::sources::registry::Registration;
use crate::sources::token::{request_token, TokenCache};
use crate::sources::{Source, SourceContext};
pub use config::{CyberPilotAuth, CyberPilotConfig};
use metrics::Report;
use page::{Counts, UsersFormat};

/// The `platform` label's value and the config's `[[cyberpilot]]` table.
pub(crate) const PLATFORM: Platform = Platform::new("cyberpilot");

/// CyberPilot's registration (`crate::sources::registry::VENDORS`). Plain HTTP semantics:
/// 429 with `Retry-After`, 401 for a refused token.
pub(crate) static VENDOR: Registration<CyberPilotConfig, CyberPilotSource> = Registration {
    platform: PLATFORM,
    title: "CyberPilot",
    secret_keys: config::SECRET_KEYS,
    read: config::read,
    source: CyberPilotSource::new,
};

/// The report: the section, its endpoint label, and the login's endpoint label.
pub(crate) const SECTION: &str = "users-summary";
pub(crate) const ENDPOINT_LOGIN: &str = "login";

pub(crate) struct CyberPilotSource {
    config: CyberPilotConfig,
    ctx: SourceContext,
    engine: Engine,
    token: TokenCache,
}

/// take/skip paging of the users-summary report. The first page tells the total and the page
/// size the server really uses (its cap on `take`); then every stretch of rows no page holds
/// (after the first page: all the rest) is asked for at once, a page size apart. A short page
/// leaves a stretch that the next round fills; an empty page ends its stretch.
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
        SECTION
    }

    fn next(&mut self) -> impl IntoIterator<Item = u64> {
        let first = self.pages.is_empty().then_some(0);
        let step = self.pages.get(&0).map_or(1, |&s| s.max(1) as usize);
        // Each page's stretch ends where the next page read begins, the last one at the total.
        let ends = self.pages.keys().skip(1).copied().chain([self.total]);
        let stretches = self.pages.iter().zip(ends).filter(|((_, &len), _)| len > 0);
        let gaps = stretches.flat_map(move |((&skip, &len), end)| (skip + len..end).step_by(step));
        first.into_iter().chain(gaps)
    }

    fn learn(&mut self, skip: u64, page: Counts, rows: u64) {
        // The furthest page read says the total (the first page: its rows, if it says none).
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

    async fn send<T: Send>(&self, skip: &u64, accept: Accept<'_, T>) -> Result<T, FetchError> {
        let s = self.source;
        let query = [("take", s.config.page_size), ("skip", *skip as usize)];
        let build = || {
            let users = s.engine.transport.client().get(&self.url).query(&query);
            users.header("accept", "application/json")
        };
        let transport = &s.engine.transport;
        // A refused login token is renewed once; a static token's refusal stands.
        match &s.config.auth {
            CyberPilotAuth::Token(token) => {
                let build = || build().bearer_auth(token.expose());
                transport.fetch(SECTION, build, accept).await
            }
            CyberPilotAuth::Login { .. } => {
                let bearer = || s.bearer();
                s.token
                    .fetch(transport, SECTION, bearer, build, accept)
                    .await
            }
        }
    }
}

impl CyberPilotSource {
    pub(crate) fn new(config: CyberPilotConfig, ctx: SourceContext) -> Self {
        let key = SourceKey::new(PLATFORM, &config.account);
        let engine = ctx.engine(&config, key, Arc::new(PlainHttp), &[SECTION]);
        let token = TokenCache::default();
        CyberPilotSource {
            config,
            ctx,
            engine,
            token,
        }
    }

    async fn bearer(&self) -> Result<String, FetchError> {
        let (token_url, client_id, username, password) = match &self.config.auth {
            CyberPilotAuth::Token(token) => return Ok(token.expose().to_string()),
            CyberPilotAuth::Login {
                token_url,
                client_id,
                username,
                password,
            } => (token_url, client_id, username, password),
        };
        let transport = &self.engine.transport;
        let form = [
            ("grant_type", "password"),
            ("client_id", client_id.as_str()),
            ("username", username.as_str()),
            ("password", password.expose()),
        ];
        let login = || transport.client().post(token_url).form(&form);
        let issue = || request_token(transport, ENDPOINT_LOGIN, "login", login);
        self.token.get(issue).await
    }

    /// Reads the whole report, folding each page into a [`Report`] as it arrives (a user on
    /// two pages counts once), then renders it off the serving threads.
    async fn poll_report(&self) -> Result<crate::snapshot::Rendered, FetchError> {
        let base = &self.config.base_url;
        let url = users_summary_url(base, &self.config.account_id)?;
        let mut pager = UsersPager {
            source: self,
            url,
            pages: BTreeMap::new(),
            total: 0,
        };
        let report = Report::new(&self.ctx.metrics);
        let add = |report: &mut Report, users: Vec<_>| users.iter().for_each(|u| report.add(u));
        let report = self.engine.fold(&mut pager, report, add).await?;
        let (key, metrics, stats) = (
            self.engine.key.clone(),
            self.ctx.metrics.clone(),
            self.ctx.stats.clone(),
        );
        let render = move || report.render(&key, &metrics, &stats);
        self.engine.off_thread(render).await
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
            let result = self.poll_report().await.map_err(Into::into);
            self.ctx.stats.rows_read(self.engine.rows_read());
            let sections = vec![SectionOutcome {
                name: SECTION,
                result,
            }];
            PollOutcome { sections }
        }
        .boxed()
    }
}

/// `{base_url}/accounts/{account_id}/reports/users-summary`, the account id percent-encoded as
/// one path segment (a `/`, `?`, `#` or space in it cannot change the path, query or fragment).
pub(crate) fn users_summary_url(base_url: &str, account_id: &str) -> Result<String, FetchError> {
    let error = |why: String| FetchError::new(FailureReason::Http, why);
    let mut url = url::Url::parse(base_url.trim())
        .map_err(|e| error(format!("base_url is not a URL: {e}")))?;
    let Ok(mut path) = url.path_segments_mut() else {
        return Err(error("base_url cannot hold a path".into()));
    };
    let segments = ["accounts", account_id, "reports", "users-summary"];
    path.pop_if_empty().extend(segments);
    drop(path);
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
