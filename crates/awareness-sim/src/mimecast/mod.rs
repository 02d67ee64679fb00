//! Simulated Mimecast Awareness Training API: OAuth2 client credentials (API 2.0) or HMAC-SHA1
//! signed requests (API 1.0), the `{"meta","data","fail"}` envelope with opaque page tokens,
//! `X-RateLimit-*` headers and a sliding-window quota.
//!
//! One concern per module: `auth` (token endpoint, bearer and HMAC checks) with `signing` (the
//! API 1.0 signature), `rate_limit` (quota and headers), `paging` (request envelope, page
//! tokens, windows), `rows` (what each endpoint answers), `envelope` (the answer envelope),
//! `endpoint` (paths) and `handlers` (routing and the order of checks). This file holds the
//! tenant: options, state, start and its config table.

mod auth;
mod endpoint;
mod envelope;
mod handlers;
mod paging;
mod rate_limit;
mod rows;
mod signing;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;

use crate::population::Population;
use crate::{Control, SimServer, Tenant, TokenStore};
use auth::SeenRequestIds;
use rate_limit::Limiter;

pub use auth::SimAuth;
pub use envelope::fail_envelope;
pub use rows::{
    campaign_user_item, campaigns, performance_row, performance_summary, phishing_row,
    phishing_user_item, safe_score_row, safe_score_summary, training_row, watchlist_row,
};
pub use signing::{mc_date_now, parse_mc_date, sign, verify, MC_DATE_FORMAT};

/// The exporter's `platform` label and `[[table]]` for this vendor.
pub const PLATFORM: &str = "mimecast";

/// Population index of the user the API credentials belong to (user/get-training-details).
pub const API_USER: usize = 0;

/// Prefix of every data endpoint.
pub const API_PREFIX: &str = "/api/awareness-training/";

/// Default page size when the request has none.
pub const DEFAULT_PAGE_SIZE: usize = 25;

/// A `[[mimecast]]` block of the exporter's config polling `server` as `account` with `auth`;
/// more keys of the account may follow it.
pub fn account_block(server: &SimServer, account: &str, auth: &SimAuth) -> String {
    format!(
        "[[mimecast]]\naccount = {}\nbase_url = {}\n{}",
        crate::toml_str(account),
        crate::toml_str(&server.base_url()),
        auth.config_keys()
    )
}

/// Configuration of a simulated Mimecast tenant.
#[derive(Debug, Clone)]
pub struct MimecastOptions {
    pub auth: SimAuth,
    /// Page sizes above this are capped.
    pub max_page_size: usize,
    /// Calls allowed per `rate_window_ms` (sliding window: each call is added back
    /// `rate_window_ms` after it was made).
    pub rate_limit: u32,
    pub rate_window_ms: u64,
    pub token_lifetime_secs: u64,
    /// Only the endpoints of the API 2.0 catalogue (as a tenant onboarded after API 1.0 keys
    /// stopped): campaign/get-campaigns and campaign/get-user-data answer 404.
    pub catalogue_only: bool,
}

impl Default for MimecastOptions {
    fn default() -> Self {
        Self {
            auth: SimAuth::demo_oauth2(),
            max_page_size: 500,
            rate_limit: 800,
            rate_window_ms: 3700,
            token_lifetime_secs: 1800,
            catalogue_only: false,
        }
    }
}

/// The state of a simulated Mimecast tenant.
pub struct MimecastSim {
    population: Arc<Population>,
    options: MimecastOptions,
    control: Arc<Control>,
    tokens: TokenStore,
    limiter: Limiter,
    seen_req_ids: Mutex<SeenRequestIds>,
    /// Per training campaign: `(user index, result index)` of the users it was sent to.
    members: Vec<Vec<(usize, usize)>>,
    /// Rows serialised once per endpoint (performance, watchlist, safe score, training) and
    /// per campaign member, on first use: the simulator should spend as little of the CPU it
    /// shares with the exporter as it can (benchmarks).
    rows_json: [std::sync::OnceLock<Vec<String>>; 4],
    items_json: Vec<std::sync::OnceLock<Vec<String>>>,
}

impl crate::Simulator for MimecastSim {
    const PLATFORM: &'static str = PLATFORM;
    type Options = MimecastOptions;
    const FAULTS: &'static [(crate::Fault, &'static str)] = &[
        (
            crate::Fault::Status {
                code: 502,
                times: 1000,
            },
            "http",
        ),
        (
            crate::Fault::RateLimit {
                times: 1000,
                reset_ms: 20,
            },
            "rate_limited",
        ),
        // `meta.status` 500 with `fail[]` `err_internal`.
        (crate::Fault::ErrorIn200, "api_error"),
        (crate::Fault::HugeBody(1 << 19), "decode"),
    ];

    fn router(
        population: Arc<Population>,
        options: MimecastOptions,
        control: Arc<Control>,
    ) -> Router {
        let members: Vec<Vec<(usize, usize)>> = (0..population.campaigns.len())
            .map(|c| population.campaign_members(c))
            .collect();
        let items_json = members.iter().map(|_| std::sync::OnceLock::new()).collect();
        let limiter = Limiter::new(
            options.rate_limit,
            Duration::from_millis(options.rate_window_ms),
        );
        let sim = Arc::new(MimecastSim {
            population,
            options,
            control,
            tokens: TokenStore::default(),
            limiter,
            seen_req_ids: Mutex::new(SeenRequestIds::default()),
            members,
            rows_json: Default::default(),
            items_json,
        });
        Router::new().fallback(handlers::handle).with_state(sim)
    }

    /// Polled with the credentials of `options.auth`.
    fn account_keys(options: &MimecastOptions, server: &SimServer, account: &str) -> String {
        account_block(server, account, &options.auth)
    }
}

/// Start a simulated Mimecast tenant on `127.0.0.1:<random port>`.
pub async fn start(
    population: Arc<Population>,
    options: MimecastOptions,
) -> std::io::Result<SimServer> {
    crate::start::<MimecastSim>(population, options).await
}

/// A tenant polled with the credentials of `options.auth`.
pub async fn tenant(
    population: Arc<Population>,
    options: MimecastOptions,
    account: &str,
) -> std::io::Result<Tenant> {
    Tenant::start::<MimecastSim>(population, options, account).await
}

/// The fault matrix's Mimecast tenant: API 1.0 (HMAC), 120 users.
pub async fn fault_tenant() -> std::io::Result<Tenant> {
    demo_tenant("faulty", SimAuth::demo_hmac(), 8, 120).await
}

/// The demo's Mimecast API 2.0 tenant (OAuth2), 800 users.
pub async fn demo_tenant_oauth2(account: &str, size: crate::demo::Size) -> std::io::Result<Tenant> {
    demo_tenant(account, SimAuth::demo_oauth2(), 7, size.people(800)).await
}

/// The demo's Mimecast API 1.0 tenant (HMAC), 300 users.
pub async fn demo_tenant_hmac(account: &str, size: crate::demo::Size) -> std::io::Result<Tenant> {
    demo_tenant(account, SimAuth::demo_hmac(), 1337, size.people(300)).await
}

async fn demo_tenant(
    account: &str,
    auth: SimAuth,
    seed: u64,
    users: usize,
) -> std::io::Result<Tenant> {
    let options = MimecastOptions {
        auth,
        ..MimecastOptions::default()
    };
    let tenant = tenant(
        Arc::new(Population::generate(seed, users)),
        options,
        account,
    )
    .await?;
    Ok(tenant.with_keys(crate::demo::PAGE_SIZE))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
