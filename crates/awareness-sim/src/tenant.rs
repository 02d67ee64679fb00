//! A running simulated tenant together with the exporter config table that polls it: what the
//! demo, the tests' polling harness and the benchmarks start, whatever the vendor.

use std::sync::Arc;

use crate::{Control, Population, SimServer, Simulator};

/// A simulated tenant on loopback; it stops when dropped.
#[derive(Debug)]
pub struct Tenant {
    /// The exporter's `platform` label and `[[table]]` name for this vendor.
    pub platform: &'static str,
    pub account: String,
    pub server: SimServer,
    pub population: Arc<Population>,
    /// `[[<platform>]]` and the keys naming the account, its URL and its credentials.
    head: String,
    /// Sub-tables of the account (e.g. `[cyberpilot.login]`): TOML wants them after every key.
    sub_tables: String,
    /// The faults its simulator answers besides `COMMON_FAULTS`, and the reason each must be
    /// reported with.
    pub faults: &'static [(crate::Fault, &'static str)],
}

impl Tenant {
    /// `head` starts with `[[<platform>]]`; every line of both ends in a newline.
    pub fn new(
        platform: &'static str,
        account: &str,
        server: SimServer,
        population: Arc<Population>,
        head: String,
        sub_tables: String,
    ) -> Tenant {
        Tenant {
            platform,
            account: account.to_string(),
            server,
            population,
            head,
            sub_tables,
            faults: &[],
        }
    }

    /// Starts vendor `S`'s simulator for `population` and the table that polls it as `account`
    /// with the credentials of `options`.
    pub async fn start<S: Simulator>(
        population: Arc<Population>,
        options: S::Options,
        account: &str,
    ) -> std::io::Result<Tenant> {
        let server = crate::start::<S>(Arc::clone(&population), options.clone()).await?;
        let head = S::account_keys(&options, &server, account);
        let mut tenant = Tenant::new(
            S::PLATFORM,
            account,
            server,
            population,
            head,
            String::new(),
        );
        tenant.faults = S::FAULTS;
        Ok(tenant)
    }

    /// The tenant with `keys` (lines ending in a newline) added to its account for good, e.g.
    /// the demo's own `interval`.
    pub fn with_keys(mut self, keys: &str) -> Tenant {
        self.head.push_str(keys);
        self
    }

    /// The tenant's `[[<platform>]]` table for the exporter's config, with `extra_keys` (e.g.
    /// `"page_size = 100\n"`) added to the account.
    pub fn table(&self, extra_keys: &str) -> String {
        let mut out = self.head.clone();
        out.push_str(extra_keys);
        if !extra_keys.is_empty() && !extra_keys.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&self.sub_tables);
        out
    }

    /// The fault control and request counters of the tenant's server.
    pub fn control(&self) -> &Arc<Control> {
        &self.server.control
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }
}
