//! Proofpoint's `[[proofpoint]]` block: its keys as a declared type, and the checks between them.

use std::time::Duration;

use serde::Deserialize;

use crate::config::values::{duration, int, named, Account, HttpUrl, Names, DAY, SEC, WEEK};
use crate::config::{account_and_interval, AccountConfig, Block, Secret};
use crate::model::SourceInfo;
use crate::sources::public_url;

/// Each region's Results API host (the community client's list; the vendor's page names us,
/// eu and ap).
const REGIONS: [(&str, &str); 5] = [
    ("us", "https://results.us.securityeducation.com"),
    ("eu", "https://results.eu.securityeducation.com"),
    ("ap", "https://results.ap.securityeducation.com"),
    ("ca", "https://results.zenguide.ca"),
    ("in", "https://results.securityeducation.in"),
];

named! {
    /// The reports an account reads, each a section of its polls (`endpoints` picks them), its
    /// path under `/api/reporting/v0.3.0/` and its `endpoint` label.
    pub(crate) enum Report { Users = "users", Phishing = "phishing", Phishalarm = "phishalarm", Trainingenrollments = "trainingenrollments", Cyberstrength = "cyberstrength" }
}

/// The block as written (the key's `_file`/`_env` forms are resolved before it is read).
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Written {
    account: Option<Account>,
    region: Option<String>,
    base_url: Option<HttpUrl>,
    api_key: Option<Secret>,
    user_tag: Option<String>,
    #[serde(deserialize_with = "int::<_, _, 1, 10_000>")]
    page_size: Option<u64>,
    #[serde(deserialize_with = "duration::<_, _, DAY, { 3660 * DAY }>")]
    lookback: Option<Duration>,
    #[serde(deserialize_with = "duration::<_, _, SEC, WEEK>")]
    interval: Option<Duration>,
    endpoints: Names<Report>,
}

/// The secret keys of the block.
pub(crate) const SECRET_KEYS: &[&str] = &["api_key"];

/// One Proofpoint account.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProofpointConfig {
    pub(crate) account: String,
    pub(crate) base_url: String,
    pub(crate) api_key: Secret,
    /// The user tag whose first value is the `department` label; tags are asked for only then.
    pub(crate) user_tag: Option<String>,
    pub(crate) page_size: usize,
    pub(crate) lookback: Duration,
    pub(crate) interval: Duration,
    pub(crate) reports: Vec<Report>,
}

impl AccountConfig for ProofpointConfig {
    account_and_interval!();

    fn describe(&self) -> String {
        let tag = self.user_tag.as_deref().unwrap_or("none");
        format!("{} (user tag {tag})", self.base_url)
    }

    fn info(&self) -> SourceInfo {
        SourceInfo {
            url: public_url(&self.base_url),
            auth: "Results API key (x-apikey-token)",
        }
    }

    fn secrets(&self) -> Vec<&str> {
        vec![self.api_key.expose()]
    }
}

/// Reads one `[[proofpoint]]` block.
pub(super) fn read(mut b: Block<'_>) -> Option<ProofpointConfig> {
    let w: Written = b.read()?;
    let needed = Err("is required (us, eu, ap, ca or in), or give base_url");
    let (base_url, _) = b.host(w.base_url, w.region, &REGIONS, needed);
    let user_tag = w.user_tag.map(|t| t.trim().to_string());
    b.valid(ProofpointConfig {
        account: b.required("account", w.account).into(),
        api_key: b.required("api_key", w.api_key),
        base_url,
        user_tag: user_tag.filter(|t| !t.is_empty()),
        page_size: w.page_size.unwrap_or(5000) as usize,
        lookback: w.lookback.unwrap_or(Duration::from_secs(365 * 86_400)),
        interval: w.interval.unwrap_or(Duration::from_secs(3600)),
        reports: w.endpoints.0,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An account on `base_url` with the defaults.
    pub(crate) fn config(base_url: &str) -> ProofpointConfig {
        ProofpointConfig {
            account: "acme".into(),
            base_url: base_url.into(),
            api_key: Secret::new("k"),
            user_tag: None,
            page_size: 5000,
            lookback: Duration::from_secs(365 * 86_400),
            interval: Duration::from_secs(3600),
            reports: Report::ALL.to_vec(),
        }
    }

    const KEY: &str = "SENTINEL-PP-KEY-0c1d";

    fn parse(extra: &str) -> Result<ProofpointConfig, String> {
        let text = format!("[[proofpoint]]\naccount = \"acme\"\n{extra}");
        let loader = crate::sources::registry::loader().with_env([("PP_KEY", KEY)]);
        let c = loader.parse(&text, "t.toml").map_err(|e| e.to_string())?;
        Ok(c.sources[0].get::<ProofpointConfig>().cloned().unwrap())
    }

    #[test]
    fn a_region_names_its_host_and_the_defaults_are_the_contracts() {
        let c = parse(&format!("region = \"eu\"\napi_key = \"{KEY}\"\n")).unwrap();
        let mut want = config("https://results.eu.securityeducation.com");
        want.api_key = Secret::new(KEY);
        assert_eq!(c, want);
        for (region, host) in REGIONS {
            let c = parse(&format!(
                "region = \"{region}\"\napi_key_env = \"PP_KEY\"\n"
            ))
            .unwrap();
            assert_eq!((c.base_url.as_str(), c.api_key.expose()), (host, KEY));
        }
        let c = parse(&format!(
            "base_url = \"https://pp.proxy.example/\"\napi_key = \"{KEY}\"\nuser_tag = \" Department \"\n\
             page_size = 1000\nlookback = \"90d\"\ninterval = \"3h\"\nendpoints = [\"phishing\", \"users\"]\n"
        ))
        .unwrap();
        assert_eq!(c.base_url, "https://pp.proxy.example");
        assert_eq!(c.user_tag.as_deref(), Some("Department"));
        assert_eq!(
            (c.page_size, c.lookback, c.interval),
            (
                1000,
                Duration::from_secs(90 * 86_400),
                Duration::from_secs(3 * 3600)
            )
        );
        assert_eq!(
            c.reports,
            [Report::Users, Report::Phishing],
            "in the reports' order"
        );
    }

    #[test]
    fn mistakes_name_the_key_and_never_the_value() {
        for (extra, key) in [
            ("region = \"asia\"\n", "proofpoint[0].region"),
            (
                "region = \"us\"\nbase_url = \"https://x.example\"\n",
                "proofpoint[0].region",
            ),
            ("", "proofpoint[0].region"),
            ("region = \"us\"\napi_token = \"x\"\n", "api_token"),
            (
                "region = \"us\"\nendpoints = [\"training\"]\n",
                "proofpoint[0].endpoints",
            ),
            (
                "region = \"us\"\nendpoints = []\n",
                "proofpoint[0].endpoints",
            ),
            (
                "region = \"us\"\npage_size = 0\n",
                "proofpoint[0].page_size",
            ),
            (
                "region = \"us\"\nlookback = \"1h\"\n",
                "proofpoint[0].lookback",
            ),
        ] {
            let e = parse(&format!("{extra}api_key = \"{KEY}\"\n")).unwrap_err();
            assert!(e.contains(key), "{extra}: {e}");
            assert!(!e.contains(KEY), "the key never shows: {e}");
        }
        let e = parse("region = \"us\"\n").unwrap_err();
        assert!(e.contains("proofpoint[0].api_key"), "{e}");
    }
}
