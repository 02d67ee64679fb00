//! The `[[defender]]` block: the Entra tenant and app, its client secret, the hosts, how far
//! back simulations are reported, and which sections are polled.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Block, Secret};
use crate::model::SourceInfo;
use crate::sources::registry::AccountConfig;
use crate::sources::{public_url, Source, SourceContext};

pub(crate) const GRAPH_URL: &str = "https://graph.microsoft.com";
pub(crate) const LOGIN_URL: &str = "https://login.microsoftonline.com";
/// Simulations launched within this are reported (Graph keeps 18 months).
const LOOKBACK: Duration = Duration::from_secs(180 * 86_400);
/// Graph's reports refresh every 10–60 minutes after a simulation starts: hourly is enough.
const INTERVAL: Duration = Duration::from_secs(3600);

/// The sections, each its own endpoint group (`endpoints`).
pub(crate) const SECTIONS: [&str; 4] = [
    "simulations",
    "simulation-coverage",
    "training-coverage",
    "repeat-offenders",
];

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DefenderConfig {
    pub(crate) account: String,
    pub(crate) tenant_id: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: Secret,
    pub(crate) base_url: String,
    pub(crate) login_url: String,
    pub(crate) lookback: Duration,
    pub(crate) interval: Duration,
    /// Names from [`SECTIONS`], in their order.
    pub(crate) endpoints: Vec<&'static str>,
}

impl AccountConfig for DefenderConfig {
    fn account(&self) -> &str {
        &self.account
    }

    fn interval(&self) -> Option<Duration> {
        Some(self.interval)
    }

    fn describe(&self) -> String {
        format!(
            "{} (tenant {}, app {}; needs AttackSimulation.Read.All); sections: {}",
            self.base_url,
            self.tenant_id,
            self.client_id,
            self.endpoints.join(", ")
        )
    }

    fn info(&self) -> SourceInfo {
        SourceInfo {
            url: public_url(&self.base_url),
            auth: "OAuth2 client credentials (Entra app)",
        }
    }

    fn secrets(&self) -> Vec<&str> {
        vec![self.client_secret.expose()]
    }

    fn build(&self, ctx: SourceContext) -> Arc<dyn Source> {
        Arc::new(super::DefenderSource::new(self.clone(), ctx))
    }
}

/// Reads one `[[defender]]` block.
pub(crate) fn read(mut s: Block<'_>) -> Option<DefenderConfig> {
    let account = s.account();
    let id = |s: &mut Block<'_>, key: &'static str| {
        let v = s.required(key)?;
        // A path segment of the token URL: nothing that could change the path or the host.
        let ok = !v.is_empty()
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
        if !ok {
            s.error(
                key,
                "must be a GUID or a domain name (letters, digits, '-', '.', '_')",
            );
        }
        ok.then_some(v)
    };
    let tenant_id = id(&mut s, "tenant_id");
    let client_id = id(&mut s, "client_id");
    let client_secret =
        s.require_secret(["client_secret", "client_secret_file", "client_secret_env"]);
    let base_url = s.url("base_url", Some(GRAPH_URL));
    let login_url = s.url("login_url", Some(LOGIN_URL));
    let lookback = match s.duration("lookback") {
        Some(d) if d < Duration::from_secs(86_400) => {
            s.error("lookback", "must be at least 1d");
            None
        }
        Some(d) => Some(d),
        None if s.has("lookback") => None,
        None => Some(LOOKBACK),
    };
    let endpoints = match s.strings("endpoints") {
        None if s.has("endpoints") => None,
        None => Some(SECTIONS.to_vec()),
        Some(names) => {
            let unknown: Vec<&String> = names
                .iter()
                .filter(|n| !SECTIONS.contains(&n.trim()))
                .collect();
            if !unknown.is_empty() || names.is_empty() {
                s.error(
                    "endpoints",
                    format!(
                        "unknown or empty endpoints {unknown:?}; known: {}",
                        SECTIONS.join(", ")
                    ),
                );
                None
            } else {
                Some(
                    SECTIONS
                        .into_iter()
                        .filter(|e| names.iter().any(|n| n.trim() == *e))
                        .collect(),
                )
            }
        }
    };
    let interval = s.interval();
    s.finish();
    Some(DefenderConfig {
        account: account?,
        tenant_id: tenant_id?,
        client_id: client_id?,
        client_secret: client_secret?.secret,
        base_url: base_url?.trim_end_matches('/').to_string(),
        login_url: login_url?.trim_end_matches('/').to_string(),
        lookback: lookback?,
        interval: interval.unwrap_or(INTERVAL),
        endpoints: endpoints?,
    })
}
