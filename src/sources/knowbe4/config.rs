//! The `[[knowbe4]]` account: where it polls, its Reporting API key, and the request budget.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;

use super::budget::{self, daily_quota, requests_per_poll, Plan, PlanSections};
use crate::config::values::{duration, int, Account, HttpUrl, Name, SEC, WEEK};
use crate::config::{AccountConfig, Block, Secret};
use crate::model::SourceInfo;
use crate::sources::public_url;

/// Regional hosts, by the region of the account (the console's host tells it:
/// `training.knowbe4.com` is us, `eu.knowbe4.com` eu, and so on).
pub const REGIONS: [(&str, &str); 5] = [
    ("us", "https://us.api.knowbe4.com"),
    ("eu", "https://eu.api.knowbe4.com"),
    ("ca", "https://ca.api.knowbe4.com"),
    ("uk", "https://uk.api.knowbe4.com"),
    ("de", "https://de.api.knowbe4.com"),
];

/// The host of `region` (case-insensitive).
pub fn region_host(region: &str) -> Option<&'static str> {
    REGIONS
        .iter()
        .find(|(r, _)| r.eq_ignore_ascii_case(region.trim()))
        .map(|(_, h)| *h)
}

/// The documented maximum of `per_page`; what a larger value does is unknown, so it is never
/// sent.
pub const MAX_PAGE_SIZE: usize = 500;

/// The groups of endpoints an account can switch on or off; `account` is always polled (it
/// gives the seat count the quota depends on, and the organization's risk score).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    Account,
    Users,
    Training,
    Phishing,
}

impl Endpoint {
    pub const ALL: [Endpoint; 4] = [
        Endpoint::Account,
        Endpoint::Users,
        Endpoint::Training,
        Endpoint::Phishing,
    ];

    /// The name in the config's `endpoints` and the section's name.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Account => "account",
            Endpoint::Users => "users",
            Endpoint::Training => "training",
            Endpoint::Phishing => "phishing",
        }
    }
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
    /// A config with the defaults, for tests and the simulator.
    pub fn new(account: &str, base_url: &str, token: &str) -> Self {
        KnowBe4Config {
            account: account.to_string(),
            base_url: base_url.trim_end_matches('/').to_string(),
            region: None,
            token: Secret::new(token),
            page_size: MAX_PAGE_SIZE,
            endpoints: Endpoint::ALL.to_vec(),
            interval: None,
            licensed_users: None,
            requests_per_second: super::budget::PER_SECOND,
            requests_per_minute: super::budget::PER_MINUTE,
        }
    }

    pub fn has(&self, e: Endpoint) -> bool {
        self.endpoints.contains(&e)
    }

    /// The request plan at `interval`, for an account of `licensed_users` (unknown: the
    /// smallest account).
    pub fn plan(&self, interval: Duration) -> Plan {
        let sections = PlanSections {
            users: self.has(Endpoint::Users),
            training: self.has(Endpoint::Training),
            phishing: self.has(Endpoint::Phishing),
        };
        let per_poll = requests_per_poll(
            self.licensed_users.unwrap_or(0),
            self.page_size as u64,
            sections,
        );
        Plan::new(daily_quota(self.licensed_users), per_poll, interval)
    }
}

impl AccountConfig for KnowBe4Config {
    fn account(&self) -> &str {
        &self.account
    }

    fn interval(&self) -> Option<Duration> {
        self.interval
    }

    fn describe(&self) -> String {
        let mut d = self.base_url.clone();
        if let Some(r) = &self.region {
            d.push_str(&format!(" (region {r})"));
        }
        // KnowBe4 refuses a key of another region's account as it refuses a wrong key.
        d.push_str(
            "; a 401 from this host means a wrong or disabled key, or an account of another region",
        );
        match self.licensed_users {
            Some(n) => d.push_str(&format!(
                ", {n} licensed users: daily quota {}",
                daily_quota(Some(n))
            )),
            None => d.push_str(", licensed_users not set: the quota check assumes a small account"),
        }
        d
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

/// `base_url`, or the host of `region`; one of the two is required (each account lives on its
/// region's host, and a key sent to another region's host is refused). With the region, for
/// the wrong-region hint.
fn base_url(
    b: &Block<'_>,
    url: Option<HttpUrl>,
    region: Option<String>,
) -> Option<(String, Option<String>)> {
    match (url, region) {
        (Some(_), Some(_)) => b.error("region", "give either base_url or region, not both"),
        (Some(url), None) => return Some((url.into(), None)),
        (None, Some(region)) => match region_host(&region) {
            Some(host) => {
                return Some((host.to_string(), Some(region.trim().to_ascii_lowercase())))
            }
            None => b.error(
                "region",
                "is not a known region; known: us, eu, ca, uk, de (the region of the console you \
                 log in to: training.knowbe4.com is us, eu.knowbe4.com is eu)",
            ),
        },
        (None, None) if b.failed("base_url") || b.failed("region") => {}
        (None, None) => b.error(
            "region",
            "is required (us, eu, ca, uk or de), or give base_url: a KnowBe4 account lives on its \
             region's host",
        ),
    }
    None
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
    endpoints: Option<BTreeSet<Name<Endpoint>>>,
    #[serde(deserialize_with = "duration::<_, _, SEC, WEEK>")]
    interval: Option<Duration>,
}

/// The secret keys of the block.
pub const SECRET_KEYS: &[&str] = &["token"];

/// Reads one `[[knowbe4]]` block.
pub(super) fn read(mut b: Block<'_>) -> Option<KnowBe4Config> {
    let w: Written = b.read()?;
    let url = base_url(&b, w.base_url, w.region);
    let token = b.required("token", w.token);
    let (per_second, per_minute) = (
        w.requests_per_second
            .map_or(budget::PER_SECOND, |n| n as u32),
        w.requests_per_minute
            .map_or(budget::PER_MINUTE, |n| n as u32),
    );
    if per_second > budget::PER_SECOND || per_minute > budget::PER_MINUTE {
        b.warn(format!(
            "knowbe4 account `{}`: requests_per_second / requests_per_minute above KnowBe4's \
             documented limits ({} a second, {} a minute) will be answered with 429",
            w.account.clone().map(String::from).unwrap_or_default(),
            budget::PER_SECOND,
            budget::PER_MINUTE
        ));
    }
    let (base_url, region) = url?;
    let mut endpoints: BTreeSet<Endpoint> = match w.endpoints {
        Some(names) => names.into_iter().map(|e| e.0).collect(),
        None => Endpoint::ALL.into(),
    };
    endpoints.insert(Endpoint::Account);
    let config = KnowBe4Config {
        account: b.required("account", w.account)?.into(),
        base_url,
        region,
        token: token?,
        page_size: w.page_size.map_or(MAX_PAGE_SIZE, |p| p as usize),
        endpoints: endpoints.into_iter().collect(),
        interval: w.interval,
        licensed_users: w.licensed_users,
        requests_per_second: per_second,
        requests_per_minute: per_minute,
    };
    // The day's polls must fit the day's quota: 2,000 requests plus the licensed users.
    let every = w.interval.unwrap_or(b.poll_interval());
    let plan = config.plan(every);
    if !plan.fits() {
        let show = |d: Duration| humantime::format_duration(d).to_string();
        b.error(
            "interval",
            format!(
                "polling every {} cannot fit KnowBe4's daily quota: about {} requests a poll, {:.0} \
                 polls a day, against {} requests a day (2,000 + {} licensed users; polls plan \
                 with {:.0}% of it). Set interval to at least {}",
                show(every),
                plan.per_poll,
                plan.polls_per_day,
                plan.quota,
                config.licensed_users.unwrap_or(0),
                budget::PLANNED_SHARE * 100.0,
                show(round_up_to_minute(plan.shortest_interval)),
            ),
        );
        return None;
    }
    Some(config)
}

fn round_up_to_minute(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs().div_ceil(60) * 60)
}
