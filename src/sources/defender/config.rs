//! The `[[defender]]` block: the Entra tenant and app, its client secret, the hosts, how far
//! back simulations are reported, and which sections are polled.

use std::time::Duration;

use serde::Deserialize;

use crate::config::values::{duration, id, named, Account, HttpUrl, Names, DAY, SEC, WEEK};
use crate::config::{account_and_interval, AccountConfig, Block, Secret};
use crate::model::SourceInfo;
use crate::sources::public_url;

const GRAPH_URL: &str = "https://graph.microsoft.com";
const LOGIN_URL: &str = "https://login.microsoftonline.com";
/// Simulations launched within this are reported; Graph keeps 18 months.
const LOOKBACK: Duration = Duration::from_secs(180 * 86_400);
const MAX_LOOKBACK: u64 = 548 * DAY;
/// Graph's reports refresh every 10–60 minutes after a simulation starts: hourly is enough.
const INTERVAL: Duration = Duration::from_secs(3600);

named! {
    /// The sections, each its own endpoint group (`endpoints`).
    enum Section {
        Simulations = "simulations",
        SimulationCoverage = "simulation-coverage",
        TrainingCoverage = "training-coverage",
        RepeatOffenders = "repeat-offenders",
    }
}

/// The block as written (the secret's `_file`/`_env` forms are resolved before it is read).
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Written {
    account: Option<Account>,
    #[serde(deserialize_with = "id")]
    tenant_id: Option<String>,
    #[serde(deserialize_with = "id")]
    client_id: Option<String>,
    client_secret: Option<Secret>,
    base_url: Option<HttpUrl>,
    login_url: Option<HttpUrl>,
    #[serde(deserialize_with = "duration::<_, _, DAY, MAX_LOOKBACK>")]
    lookback: Option<Duration>,
    #[serde(deserialize_with = "duration::<_, _, SEC, WEEK>")]
    interval: Option<Duration>,
    endpoints: Names<Section>,
}

/// The secret keys of the block.
pub(crate) const SECRET_KEYS: &[&str] = &["client_secret"];

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
    /// Section names, in their order.
    pub(crate) endpoints: Vec<&'static str>,
}

impl AccountConfig for DefenderConfig {
    account_and_interval!();

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
}

/// Reads one `[[defender]]` block.
pub(super) fn read(mut b: Block<'_>) -> Option<DefenderConfig> {
    let w: Written = b.read()?;
    b.valid(DefenderConfig {
        account: b.required("account", w.account).into(),
        tenant_id: b.required("tenant_id", w.tenant_id),
        client_id: b.required("client_id", w.client_id),
        client_secret: b.required("client_secret", w.client_secret),
        base_url: w.base_url.map_or(GRAPH_URL.into(), String::from),
        login_url: w.login_url.map_or(LOGIN_URL.into(), String::from),
        lookback: w.lookback.unwrap_or(LOOKBACK),
        interval: w.interval.unwrap_or(INTERVAL),
        endpoints: w.endpoints.0.into_iter().map(Section::name).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: &str = "[[defender]]\naccount = \"contoso\"\ntenant_id = \"8f2a6d31-4c1b\"\n\
                         client_id = \"535fb089\"\nclient_secret = \"s3cr3t-value\"\n";

    fn read(extra: &str) -> Result<DefenderConfig, String> {
        let c = crate::sources::registry::loader()
            .parse(&format!("{BLOCK}{extra}"), "t.toml")
            .map_err(|e| e.to_string())?;
        Ok(c.sources[0].get::<DefenderConfig>().unwrap().clone())
    }

    #[test]
    fn defaults_are_the_contracts() {
        let c = read("").unwrap();
        assert_eq!(
            (c.base_url.as_str(), c.login_url.as_str()),
            (GRAPH_URL, LOGIN_URL)
        );
        assert_eq!((c.lookback, c.interval), (LOOKBACK, INTERVAL));
        assert_eq!(c.endpoints, Section::ALL.map(Section::name));
        let c = read("lookback = \"30d\"\nendpoints = [\"repeat-offenders\", \"simulations\"]\n")
            .unwrap();
        assert_eq!(c.lookback, Duration::from_secs(30 * 86_400));
        assert_eq!(c.endpoints, ["simulations", "repeat-offenders"]);
    }

    #[test]
    fn problems_name_the_key_and_never_the_secret() {
        for (extra, key) in [
            ("endpoints = [\"nope\"]\n", "defender[0].endpoints"),
            ("endpoints = []\n", "defender[0].endpoints"),
            ("lookback = \"1h\"\n", "defender[0].lookback"),
            ("page_size = 100\n", "defender[0].page_size"),
        ] {
            let e = read(extra).unwrap_err();
            assert!(e.contains(key) && !e.contains("s3cr3t"), "{extra}: {e}");
        }
        let e = crate::sources::registry::loader()
            .parse(&BLOCK.replace("8f2a6d31-4c1b", "x/../y"), "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("defender[0].tenant_id") && !e.contains("s3cr3t"),
            "{e}"
        );
    }
}
