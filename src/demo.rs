//! `--demo`: simulated CyberPilot and Mimecast tenants on loopback, polled through the real
//! clients with a config that goes through the real loader.

use std::sync::Arc;

use crate::config::{self, Config};
use crate::sim::cyberpilot::{self, CyberPilotOptions};
use crate::sim::mimecast::{self, MimecastOptions, SimAuth};
use crate::sim::{Fault, Population, SimServer};

pub const CYBERPILOT_ACCOUNT: &str = "demo-cyberpilot";
pub const MIMECAST_OAUTH2_ACCOUNT: &str = "demo-mimecast-oauth2";
pub const MIMECAST_HMAC_ACCOUNT: &str = "demo-mimecast-hmac";

/// The running demo tenants; they stop when this is dropped.
pub struct Demo {
    pub cyberpilot: SimServer,
    pub mimecast_oauth2: SimServer,
    pub mimecast_hmac: SimServer,
    cyberpilot_options: CyberPilotOptions,
    oauth2: SimAuth,
    hmac: SimAuth,
}

impl Demo {
    pub async fn start() -> std::io::Result<Demo> {
        let cyberpilot_options = CyberPilotOptions::default();
        let cyberpilot = cyberpilot::start(
            Arc::new(Population::generate(42, 1200)),
            cyberpilot_options.clone(),
        )
        .await?;
        let oauth2 = SimAuth::demo_oauth2();
        let mimecast_oauth2 = mimecast::start(
            Arc::new(Population::generate(7, 800)),
            MimecastOptions {
                auth: oauth2.clone(),
                ..MimecastOptions::default()
            },
        )
        .await?;
        let hmac = SimAuth::demo_hmac();
        let mimecast_hmac = mimecast::start(
            Arc::new(Population::generate(1337, 300)),
            MimecastOptions {
                auth: hmac.clone(),
                ..MimecastOptions::default()
            },
        )
        .await?;
        // Like real tenants, the demo is not perfect: the first CyberPilot data request fails
        // once (503, retried) and the HMAC tenant sends some rows of the wrong types (skipped
        // and counted). So every metric the dashboards and rules use shows in the demo.
        cyberpilot.control.add_fault(Fault::Status {
            code: 503,
            times: 1,
        });
        mimecast_hmac.control.add_fault(Fault::WrongTypes);
        Ok(Demo {
            cyberpilot,
            mimecast_oauth2,
            mimecast_hmac,
            cyberpilot_options,
            oauth2,
            hmac,
        })
    }

    /// The demo's config as TOML text (the CyberPilot tenant logs in with the password grant;
    /// per-user series are on so every metric of the contract shows).
    pub fn config_text(&self) -> String {
        let cp = &self.cyberpilot_options;
        format!(
            "[server]\nlisten = \"127.0.0.1:10019\"\n\n[poll]\ninterval = \"5m\"\ntimeout = \"20s\"\n\n\
             [metrics]\nper_user = true\nmax_users = 2000\n\n\
             {}page_size = 100\n{}\n{}page_size = 100\n\n{}page_size = 100\n",
            cp.account_block(&self.cyberpilot, CYBERPILOT_ACCOUNT),
            cp.login_table(&self.cyberpilot),
            mimecast::account_block(&self.mimecast_oauth2, MIMECAST_OAUTH2_ACCOUNT, &self.oauth2),
            mimecast::account_block(&self.mimecast_hmac, MIMECAST_HMAC_ACCOUNT, &self.hmac),
        )
    }

    /// The demo config, loaded and validated like a user's file.
    pub fn config(&self) -> Result<Config, config::ConfigError> {
        config::parse(&self.config_text(), "<demo>")
    }
}
