//! The `[[knowbe4]]` account: where it polls, its Reporting API key, and the request budget.

use std::sync::Arc;
use std::time::Duration;

use super::budget::{self, daily_quota, requests_per_poll, Plan, PlanSections};
use crate::config::{Block, Secret};
use crate::model::SourceInfo;
use crate::sources::registry::AccountConfig;
use crate::sources::{public_url, Source, SourceContext};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
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

    fn build(&self, ctx: SourceContext) -> Arc<dyn Source> {
        Arc::new(super::KnowBe4Source::new(self.clone(), ctx))
    }
}

/// `base_url`, or the host of `region`; one of the two is required (each account lives on its
/// region's host, and a key sent to another region's host is refused).
fn base_url(s: &mut Block<'_>) -> (Option<String>, Option<String>) {
    let region = s.string("region");
    match (s.has("base_url"), region) {
        (true, Some(_)) => {
            s.error("region", "give either base_url or region, not both");
            s.mark_read("base_url");
            (None, None)
        }
        (true, None) => (s.url("base_url", None), None),
        (false, Some(region)) => match region_host(&region) {
            Some(host) => (
                Some(host.to_string()),
                Some(region.trim().to_ascii_lowercase()),
            ),
            None => {
                s.error(
                    "region",
                    format!(
                        "unknown region {region:?}; known: us, eu, ca, uk, de (the region of the \
                         console you log in to: training.knowbe4.com is us, eu.knowbe4.com is eu)"
                    ),
                );
                (None, None)
            }
        },
        (false, None) if s.has("region") => (None, None),
        (false, None) => {
            s.error(
                "region",
                "is required (us, eu, ca, uk or de), or give base_url: a KnowBe4 account lives \
                 on its region's host",
            );
            (None, None)
        }
    }
}

/// A whole number in `min..=max`, or `default` when absent; out of range is reported.
fn uint_in(s: &mut Block<'_>, key: &'static str, min: usize, max: usize) -> Option<Option<usize>> {
    match s.uint(key) {
        Some(v) if !(min..=max).contains(&v) => {
            s.error(key, format!("must be between {min} and {max}"));
            None
        }
        Some(v) => Some(Some(v)),
        None if s.has(key) => None,
        None => Some(None),
    }
}

/// Reads one `[[knowbe4]]` block.
pub fn read(mut s: Block<'_>) -> Option<KnowBe4Config> {
    let account = s.account();
    let (base_url, region) = base_url(&mut s);
    let token = s.require_secret(["token", "token_file", "token_env"]);
    let page_size =
        uint_in(&mut s, "page_size", 1, MAX_PAGE_SIZE).map(|p| p.unwrap_or(MAX_PAGE_SIZE));
    let licensed_users =
        uint_in(&mut s, "licensed_users", 0, 100_000_000).map(|n| n.map(|n| n as u64));
    let per_second = uint_in(&mut s, "requests_per_second", 1, 1000)
        .map(|n| n.map_or(budget::PER_SECOND, |n| n as u32));
    let per_minute = uint_in(&mut s, "requests_per_minute", 1, 60_000)
        .map(|n| n.map_or(budget::PER_MINUTE, |n| n as u32));
    if per_second.is_some_and(|n| n > budget::PER_SECOND)
        || per_minute.is_some_and(|n| n > budget::PER_MINUTE)
    {
        s.warn(format!(
            "knowbe4 account `{}`: requests_per_second / requests_per_minute above KnowBe4's \
             documented limits ({} a second, {} a minute) will be answered with 429",
            account.as_deref().unwrap_or(""),
            budget::PER_SECOND,
            budget::PER_MINUTE
        ));
    }
    let endpoints = match s.strings("endpoints") {
        None if s.has("endpoints") => None,
        None => Some(Endpoint::ALL.to_vec()),
        Some(names) => {
            let mut out = vec![Endpoint::Account];
            let mut ok = true;
            for name in names {
                match Endpoint::parse(name.trim()) {
                    Some(e) if !out.contains(&e) => out.push(e),
                    Some(_) => {}
                    None => {
                        ok = false;
                        s.error(
                            "endpoints",
                            format!(
                                "unknown endpoint {name:?}; known: {} (account is always polled: \
                                 the quota depends on its seats)",
                                Endpoint::ALL.map(|e| e.name()).join(", ")
                            ),
                        );
                    }
                }
            }
            out.sort();
            ok.then_some(out)
        }
    };
    let interval = s.interval();
    let poll_interval = s.poll_interval();
    let config = KnowBe4Config {
        account: account?,
        base_url: base_url?,
        region,
        token: token?.secret,
        page_size: page_size?,
        endpoints: endpoints?,
        interval,
        licensed_users: licensed_users?,
        requests_per_second: per_second?,
        requests_per_minute: per_minute?,
    };
    // The day's polls must fit the day's quota: 2,000 requests plus the licensed users.
    let every = interval.unwrap_or(poll_interval);
    let plan = config.plan(every);
    if !plan.fits() {
        let show = |d: Duration| humantime::format_duration(d).to_string();
        s.error(
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
        s.finish();
        return None;
    }
    s.finish();
    Some(config)
}

fn round_up_to_minute(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs().div_ceil(60) * 60)
}
