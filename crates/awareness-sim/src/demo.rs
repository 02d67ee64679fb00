//! The demo: one simulated tenant per line of [`Demo::start_sized`], each started by its
//! vendor's module (`<vendor>::demo_tenant`), and the exporter config that polls them all.

use crate::Tenant;

/// The running demo tenants; they stop when this is dropped.
#[derive(Debug)]
pub struct Demo {
    tenants: Vec<Tenant>,
}

/// The exporter settings of the demo, before the tenants' tables: per-user series are on so that
/// every metric of the contract shows.
const SETTINGS: &str = "[server]\nlisten = \"127.0.0.1:10019\"\n\n\
     [poll]\ninterval = \"5m\"\ntimeout = \"20s\"\n\n\
     [metrics]\nper_user = true\nmax_users = 2000\n";

/// The page size of the demo's accounts whose vendor lets the client choose one (each adds it in
/// its `demo_tenant`; Graph chooses its own).
pub(crate) const PAGE_SIZE: &str = "page_size = 100\n";

/// How large the demo's tenants are. Both sizes start the same list of tenants, so a test of
/// the small demo covers every platform the demo has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// `--demo`: populations that fill the dashboards, each vendor's real pace.
    Full,
    /// For tests that want every platform cheaply (the golden `/metrics` body): a tenth of
    /// the people (KnowBe4's pace costs a test in paused time no real time).
    Small,
}

impl Size {
    /// The people of a tenant that has `full` at full size.
    pub fn people(self, full: usize) -> usize {
        match self {
            Size::Full => full,
            Size::Small => full.div_ceil(10),
        }
    }
}

impl Demo {
    /// Starts every demo tenant at full size (see [`Demo::start_sized`]).
    pub async fn start() -> std::io::Result<Demo> {
        Demo::start_sized(Size::Full).await
    }

    /// Starts every demo tenant on loopback, healthy. With `DEMO_VENDOR_FAULTS=1` in the
    /// environment (the end-to-end test sets it) each tenant answers its first data request
    /// with a 503 once, which the exporter retries, so the failure counters show.
    pub async fn start_sized(size: Size) -> std::io::Result<Demo> {
        let faults = std::env::var("DEMO_VENDOR_FAULTS").is_ok_and(|v| v == "1");
        let tenants = vec![
            crate::cyberpilot::demo_tenant("demo-cyberpilot", size).await?,
            crate::mimecast::demo_tenant_oauth2("demo-mimecast-oauth2", size).await?,
            crate::mimecast::demo_tenant_hmac("demo-mimecast-hmac", size).await?,
            crate::knowbe4::demo_tenant("demo-knowbe4", size).await?,
            crate::defender::demo_tenant("demo-defender", size).await?,
            crate::proofpoint::demo_tenant("demo-proofpoint", size).await?,
        ];
        for t in tenants.iter().filter(|_| faults) {
            t.control().push_fault(crate::Fault::Status {
                code: 503,
                times: 1,
            });
        }
        Ok(Demo { tenants })
    }

    pub fn tenants(&self) -> &[Tenant] {
        &self.tenants
    }

    /// The tenant named `account`.
    pub fn tenant(&self, account: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.account == account)
    }

    /// The demo's config as TOML text for the exporter's loader.
    pub fn config_text(&self) -> String {
        let mut text = SETTINGS.to_string();
        for tenant in &self.tenants {
            text.push('\n');
            text.push_str(&tenant.table(""));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_tenant_has_its_table_in_the_config() {
        let demo = Demo::start().await.unwrap();
        let text = demo.config_text();
        // One table per tenant, each for its own account.
        assert!(!demo.tenants().is_empty());
        assert_eq!(text.matches("\n[[").count(), demo.tenants().len(), "{text}");
        let accounts: std::collections::BTreeSet<&str> =
            demo.tenants().iter().map(|t| t.account.as_str()).collect();
        assert_eq!(accounts.len(), demo.tenants().len());
        for t in demo.tenants() {
            assert!(text.contains(&format!("account = \"{}\"", t.account)));
            assert!(text.contains(&t.base_url()));
            assert!(t.table("").starts_with(&format!("[[{}]]\n", t.platform)));
        }
        assert!(demo.tenant("demo-mimecast-hmac").is_some());
        assert!(demo.tenant("nope").is_none());
    }
}
