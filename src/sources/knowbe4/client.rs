//! KnowBe4 requests: the bearer key, `page` / `per_page` paging over bare arrays on the paging
//! engine, the account object; pacing, quota and the meaning of refusals are
//! [`KnowBe4Http`]'s.

use std::marker::PhantomData;
use std::sync::Arc;

use super::config::{KnowBe4Config, MAX_PAGE_SIZE};
use super::http::KnowBe4Http;
use super::models::{Account, Row};
use super::page::ListRows;
use crate::http::{Refusal, Reply};
use crate::model::{FailureReason, FetchError};
use crate::sources::paging::{Engine, Pager};

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

pub struct KnowBe4Client {
    config: KnowBe4Config,
    pub engine: Engine,
    pub http: Arc<KnowBe4Http>,
}

/// `page=1, 2, …` with `per_page` = `page_size` (never more than 500), until a page holds
/// fewer elements than asked for (short or empty).
pub struct PageNumbers<'a, T> {
    client: &'a KnowBe4Client,
    list: List,
    /// The next page to ask for; `None` once a page came back short.
    next: Option<u32>,
    rows: PhantomData<T>,
}

impl<T: Row + Sync> Pager for PageNumbers<'_, T> {
    type Format = ListRows<T>;
    type Request = u32;

    fn endpoint(&self) -> &'static str {
        self.list.endpoint
    }

    fn next(&mut self) -> Vec<u32> {
        self.next.into_iter().collect()
    }

    fn learn(&mut self, page: u32, _: (), rows: u64) {
        self.next = (rows >= self.client.per_page() as u64).then_some(page + 1);
    }

    async fn send<R, A, AF>(&self, page: &u32, accept: A) -> Result<R, FetchError>
    where
        R: Send,
        A: Fn(Reply) -> AF + Send + Sync,
        AF: std::future::Future<Output = Result<R, Refusal>> + Send,
    {
        let (page, per_page) = (page.to_string(), self.client.per_page().to_string());
        let mut query: Vec<(&str, &str)> = self.list.query.to_vec();
        query.push(("page", &page));
        query.push(("per_page", &per_page));
        self.client.get(self.list.endpoint, &query, accept).await
    }
}

impl KnowBe4Client {
    pub fn new(config: KnowBe4Config, engine: Engine, http: Arc<KnowBe4Http>) -> Self {
        KnowBe4Client {
            config,
            engine,
            http,
        }
    }

    fn per_page(&self) -> usize {
        self.config.page_size.clamp(1, MAX_PAGE_SIZE)
    }

    /// Requests sent in the last 24 hours.
    pub fn used_today(&self) -> u64 {
        self.http.daily.used()
    }

    pub fn quota(&self) -> u64 {
        self.http.quota()
    }

    /// One GET under `/v1/` with the key as bearer (paced and counted by [`KnowBe4Http`]).
    async fn get<R, A, AF>(
        &self,
        endpoint: &'static str,
        query: &[(&str, &str)],
        accept: A,
    ) -> Result<R, FetchError>
    where
        A: Fn(Reply) -> AF,
        AF: std::future::Future<Output = Result<R, Refusal>>,
    {
        let url = format!("{}/v1/{endpoint}", self.config.base_url);
        let transport = &self.engine.transport;
        let build = || {
            transport
                .client()
                .get(&url)
                .query(query)
                .bearer_auth(self.config.token.expose())
                .header("accept", "application/json")
        };
        transport.fetch(endpoint, build, accept).await
    }

    /// `GET /v1/account`; remembers the seat count for the quota.
    pub async fn account(&self) -> Result<Account, FetchError> {
        let read = |reply: Reply| async move {
            let refused = |why: String| {
                Refusal::fatal(FetchError::new(
                    FailureReason::Decode,
                    format!("{ACCOUNT}: {why}"),
                ))
            };
            match serde_json::from_slice::<serde_json::Value>(&reply.body) {
                Ok(v @ serde_json::Value::Object(_)) => serde_json::from_value::<Account>(v)
                    .map_err(|e| refused(format!("the account is malformed: {e}"))),
                Ok(_) => Err(refused("the account is not a JSON object".into())),
                Err(e) => Err(refused(format!("not valid JSON: {e}"))),
            }
        };
        let account = self.get(ACCOUNT, &[], read).await?;
        if let Some(seats) = account.number_of_seats.filter(|s| *s >= 0.0) {
            *self.http.seats.lock().unwrap_or_else(|e| e.into_inner()) = Some(seats as u64);
        }
        Ok(account)
    }

    /// The pager of a list.
    pub fn pages<T>(&self, list: List) -> PageNumbers<'_, T> {
        PageNumbers {
            client: self,
            list,
            next: Some(1),
            rows: PhantomData,
        }
    }

    /// Every row of a list, each counted once.
    pub async fn list<T: Row + Sync>(&self, list: List) -> Result<Vec<T>, FetchError> {
        self.engine.collect(&mut self.pages::<T>(list)).await
    }
}
