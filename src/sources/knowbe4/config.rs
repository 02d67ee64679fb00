//! The `[[knowbe4]]` account: where it polls, its Reporting API key, and the request budget.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;

use super::budget::{daily_quota, Plan, PER_MINUTE, PER_SECOND};
use crate::config::values::{duration, int, named, Account, HttpUrl, Names, SEC, WEEK};
use crate::config::{account_and_interval, AccountConfig, Block, Secret};
use crate::model::SourceInfo;
use crate::sources::public_url;

/// Regional hosts, by the region of the account (the console's host tells it:
/// `training.knowbe4.com` is us, `eu.knowbe4.com` eu, and so on).
pub(crate) const REGIONS: [(&str, &str); 5] = [
    ("us", "https://us.api.knowbe4.com"),
    ("eu", "https://eu.api.knowbe4.com"),
    ("ca", "https://ca.api.knowbe4.com"),
    ("uk", "https://uk.api.knowbe4.com"),
    ("de", "https://de.api.knowbe4.com"),
];

/// The documented maximum of `per_page`; what a larger value does is unknown, so it is never
/// sent.
pub(crate) const MAX_PAGE_SIZE: usize = 500;

named! {
    /// The groups of endpoints an account can switch on or off; `account` is always polled (it
    /// gives the seat count the quota depends on, and the organization's risk score).
    pub enum Endpoint { Account = "account", Users = "users", Training = "training", Phishing = "phishing" }
}

#[derive(Debug, Clone, PartialEq)]
pub struct KnowBe4Config {
    pub account: String,
    pub base_url: String,
    /// The configured region (for the wrong-region hint); `None` with `base_url`.
    pub region: Option<String>,
    pub token: Secret,
    pub page_size: usize,
    /// Always holds [`Endpoint::Account`]; sorted.
    pub endpoints: Vec<Endpoint>,
    pub interval: Option<Duration>,
    /// Licensed users, when known before the first poll: plans the request budget for
    /// `--check-config`. The account's own `number_of_seats` replaces it once polled.
    pub licensed_users: Option<u64>,
    pub requests_per_second: u32,
    pub requests_per_minute: u32,
}

impl KnowBe4Config {
    /// The request plan at `interval`, for an account of `licensed_users` (unknown: the
    /// smallest account).
    pub(crate) fn plan(&self, interval: Duration) -> Plan {
        Plan::new(self, self.licensed_users, None, interval)
    }
}

impl AccountConfig for KnowBe4Config {
    account_and_interval!();

    fn describe(&self) -> String {
        let (base_url, region) = (&self.base_url, self.region.as_ref());
        let region = region.map(|r| format!(" (region {r})")).unwrap_or_default();
        let quota = match self.licensed_users {
            Some(n) => format!(", {n} licensed users: daily quota {}", daily_quota(Some(n))),
            None => ", licensed_users not set: the quota check assumes a small account".into(),
        };
        // KnowBe4 refuses a key of another region's account as it refuses a wrong key.
        format!(
            "{base_url}{region}; a 401 from this host means a wrong or disabled key, or an \
             account of another region{quota}"
        )
    }

    fn info(&self) -> SourceInfo {
        SourceInfo {
            url: public_url(&self.base_url),
            auth: "Reporting API key (bearer)",
        }
    }

    fn secrets(&self) -> Vec<&str> {
        vec![self.token.expose()]
    }
}

/// The block as written (the key's `_file`/`_env` forms are resolved before it is read).
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Written {
    account: Option<Account>,
    base_url: Option<HttpUrl>,
    region: Option<String>,
    token: Option<Secret>,
    #[serde(deserialize_with = "int::<_, _, 1, 500>")]
    page_size: Option<u64>,
    #[serde(deserialize_with = "int::<_, _, 0, 100_000_000>")]
    licensed_users: Option<u64>,
    #[serde(deserialize_with = "int::<_, _, 1, 1000>")]
    requests_per_second: Option<u64>,
    #[serde(deserialize_with = "int::<_, _, 1, 60_000>")]
    requests_per_minute: Option<u64>,
    endpoints: Names<Endpoint>,
    #[serde(deserialize_with = "duration::<_, _, SEC, WEEK>")]
    interval: Option<Duration>,
}

/// The secret keys of the block.
pub(crate) const SECRET_KEYS: &[&str] = &["token"];

/// Reads one `[[knowbe4]]` block.
pub(super) fn read(mut b: Block<'_>) -> Option<KnowBe4Config> {
    let w: Written = b.read()?;
    let required = "is required (us, eu, ca, uk or de: the region of the console you log in to, \
                    training.knowbe4.com is us), or give base_url";
    let (base_url, region) = b.host(w.base_url, w.region, &REGIONS, Err(required));
    let limit = |key: &str, n: Option<u64>, documented: u32| {
        let n = n.map_or(documented, |n| n as u32);
        if n > documented {
            let warning = "is above KnowBe4's documented limit: it will be answered with 429";
            b.warn(key, format!("{warning} ({documented})"));
        }
        n
    };
    let per_second = limit("requests_per_second", w.requests_per_second, PER_SECOND);
    let per_minute = limit("requests_per_minute", w.requests_per_minute, PER_MINUTE);
    let endpoints = BTreeSet::from_iter(w.endpoints.0.into_iter().chain([Endpoint::Account]));
    let config = KnowBe4Config {
        account: b.required("account", w.account).into(),
        token: b.required("token", w.token),
        page_size: w.page_size.map_or(MAX_PAGE_SIZE, |p| p as usize),
        endpoints: endpoints.into_iter().collect(),
        interval: w.interval,
        licensed_users: w.licensed_users,
        requests_per_second: per_second,
        requests_per_minute: per_minute,
        base_url,
        region,
    };
    // The day's polls must fit the day's quota: 2,000 requests plus the licensed users.
    let every = w.interval.unwrap_or(b.poll_interval());
    if let Some(refusal) = config.plan(every).refusal() {
        b.error("interval", refusal);
    }
    b.valid(config)
}

#[cfg(test)]
impl KnowBe4Config {
    /// A config with the defaults, for unit tests.
    pub(crate) fn new(account: &str, base_url: &str, token: &str) -> Self {
        KnowBe4Config {
            account: account.to_string(),
            base_url: base_url.trim_end_matches('/').to_string(),
            region: None,
            token: Secret::new(token),
            page_size: MAX_PAGE_SIZE,
            endpoints: Endpoint::ALL.to_vec(),
            interval: None,
            licensed_users: None,
            requests_per_second: PER_SECOND,
            requests_per_minute: PER_MINUTE,
        }
    }
}
