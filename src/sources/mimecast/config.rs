//! Mimecast's `[[mimecast]]` block: its keys as a declared type, the checks between them
//! (the keys of each auth mode, base_url or region) and its regions.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::config::values::{duration, int, Account, HttpUrl, Name, SEC, WEEK};
use crate::config::{AccountConfig, Block, Secret};
use crate::model::SourceInfo;
use crate::sources::public_url;

pub const DEFAULT_URL: &str = "https://api.services.mimecast.com";

/// API 1.0 regional hosts (`region` key). Offshore is `je-api` in Mimecast's API 1.0 samples
/// (its SSO pages say `jer-api`; set `base_url` if your tenant differs).
pub const REGIONS: [(&str, &str); 10] = [
    ("eu", "https://eu-api.mimecast.com"),
    ("de", "https://de-api.mimecast.com"),
    ("us", "https://us-api.mimecast.com"),
    ("usb", "https://usb-api.mimecast.com"),
    ("ca", "https://ca-api.mimecast.com"),
    ("za", "https://za-api.mimecast.com"),
    ("au", "https://au-api.mimecast.com"),
    ("jer", "https://je-api.mimecast.com"),
    ("je", "https://je-api.mimecast.com"),
    ("offshore", "https://je-api.mimecast.com"),
];

/// The secret keys of the block.
pub const SECRET_KEYS: &[&str] = &["client_secret", "app_key", "access_key", "secret_key"];

/// The block as written (a secret's `_file`/`_env` forms are resolved before it is read).
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Written {
    account: Option<Account>,
    base_url: Option<HttpUrl>,
    region: Option<String>,
    auth: Option<Name<Mode>>,
    // auth = "oauth2" (API 2.0)
    client_id: Option<String>,
    client_secret: Option<Secret>,
    // auth = "hmac" (API 1.0)
    app_id: Option<String>,
    app_key: Option<Secret>,
    access_key: Option<Secret>,
    secret_key: Option<Secret>,
    /// 500 is both the default and the most any public client asks for (Azure Sentinel's
    /// MAX_PAGE_SIZE); larger Mimecast pages are unconfirmed.
    #[serde(deserialize_with = "int::<_, _, 1, 500>")]
    page_size: Option<u64>,
    endpoints: Option<BTreeSet<Name<MimecastEndpoint>>>,
    #[serde(deserialize_with = "duration::<_, _, SEC, WEEK>")]
    interval: Option<Duration>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    OAuth2,
    Hmac,
}

/// One Mimecast account.
#[derive(Debug, Clone, PartialEq)]
pub struct MimecastConfig {
    pub account: String,
    pub base_url: String,
    pub auth: MimecastAuth,
    pub page_size: usize,
    pub endpoints: Vec<MimecastEndpoint>,
    pub interval: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MimecastAuth {
    OAuth2 {
        client_id: String,
        client_secret: Secret,
    },
    Hmac {
        app_id: String,
        app_key: Secret,
        access_key: Secret,
        secret_key: Secret,
    },
}

/// The Mimecast endpoint groups that can be switched on or off per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MimecastEndpoint {
    PerformanceDetails,
    WatchlistDetails,
    SafeScoreDetails,
    TrainingDetails,
    Campaigns,
    PhishingCampaigns,
}

impl MimecastEndpoint {
    pub const ALL: [MimecastEndpoint; 6] = [
        MimecastEndpoint::PerformanceDetails,
        MimecastEndpoint::WatchlistDetails,
        MimecastEndpoint::SafeScoreDetails,
        MimecastEndpoint::TrainingDetails,
        MimecastEndpoint::Campaigns,
        MimecastEndpoint::PhishingCampaigns,
    ];

    /// The name used in the config file and in the `endpoint` label's group.
    pub fn name(self) -> &'static str {
        match self {
            MimecastEndpoint::PerformanceDetails => "performance-details",
            MimecastEndpoint::WatchlistDetails => "watchlist-details",
            MimecastEndpoint::SafeScoreDetails => "safe-score-details",
            MimecastEndpoint::TrainingDetails => "training-details",
            MimecastEndpoint::Campaigns => "campaigns",
            MimecastEndpoint::PhishingCampaigns => "phishing-campaigns",
        }
    }
}

impl AccountConfig for MimecastConfig {
    fn account(&self) -> &str {
        &self.account
    }

    fn interval(&self) -> Option<Duration> {
        self.interval
    }

    fn describe(&self) -> String {
        let mode = match self.auth {
            MimecastAuth::OAuth2 { .. } => "oauth2",
            MimecastAuth::Hmac { .. } => "hmac",
        };
        let endpoints: Vec<&str> = self.endpoints.iter().map(|e| e.name()).collect();
        format!(
            "{} ({mode}, endpoints: {})",
            self.base_url,
            endpoints.join(", ")
        )
    }

    fn info(&self) -> SourceInfo {
        SourceInfo {
            url: public_url(&self.base_url),
            auth: match self.auth {
                MimecastAuth::OAuth2 { .. } => "OAuth2 client credentials (API 2.0)",
                MimecastAuth::Hmac { .. } => "HMAC-signed requests (API 1.0)",
            },
        }
    }

    fn secrets(&self) -> Vec<&str> {
        match &self.auth {
            MimecastAuth::OAuth2 { client_secret, .. } => vec![client_secret.expose()],
            MimecastAuth::Hmac {
                app_key,
                access_key,
                secret_key,
                ..
            } => vec![app_key.expose(), access_key.expose(), secret_key.expose()],
        }
    }
}

/// Reads one `[[mimecast]]` block.
pub(super) fn read(mut b: Block<'_>) -> Option<MimecastConfig> {
    let w: Written = b.read()?;
    let mode = (!b.failed("auth")).then(|| w.auth.map_or(Mode::OAuth2, |m| m.0));
    let (oauth2, hmac) = (
        [
            ("client_id", w.client_id.is_some()),
            ("client_secret", w.client_secret.is_some()),
        ],
        [
            ("app_id", w.app_id.is_some()),
            ("app_key", w.app_key.is_some()),
            ("access_key", w.access_key.is_some()),
            ("secret_key", w.secret_key.is_some()),
        ],
    );
    let (stray, message): (&[_], _) = match mode {
        Some(Mode::OAuth2) => (
            &hmac,
            "belongs to auth = \"hmac\" (API 1.0); this account uses auth = \"oauth2\"",
        ),
        Some(Mode::Hmac) => (
            &oauth2,
            "belongs to auth = \"oauth2\" (API 2.0); this account uses auth = \"hmac\"",
        ),
        None => (&[], ""),
    };
    for (key, _) in stray.iter().filter(|(_, given)| *given) {
        b.error(key, message);
    }
    let auth = match mode {
        Some(Mode::OAuth2) => {
            let client_id = b.required("client_id", w.client_id);
            let client_secret = b.required("client_secret", w.client_secret);
            client_id
                .zip(client_secret)
                .map(|(client_id, client_secret)| MimecastAuth::OAuth2 {
                    client_id,
                    client_secret,
                })
        }
        Some(Mode::Hmac) => {
            let app_id = b.required("app_id", w.app_id);
            let app_key = b.required("app_key", w.app_key);
            let access_key = b.required("access_key", w.access_key);
            let secret_key = b.required("secret_key", w.secret_key).filter(|k| {
                use base64::Engine as _;
                let decoded = base64::engine::general_purpose::STANDARD.decode(k.expose());
                let valid = decoded.map(Zeroizing::new).is_ok();
                if !valid {
                    // Named as written: `secret_key_file`, not `secret_key`.
                    b.error(
                        "secret_key",
                        "does not hold valid base64 (Mimecast issues secret keys in base64)",
                    );
                }
                valid
            });
            match (app_id, app_key, access_key, secret_key) {
                (Some(app_id), Some(app_key), Some(access_key), Some(secret_key)) => {
                    Some(MimecastAuth::Hmac {
                        app_id,
                        app_key,
                        access_key,
                        secret_key,
                    })
                }
                _ => None,
            }
        }
        None => None,
    };
    let base_url = base_url(&b, w.base_url, w.region, mode == Some(Mode::Hmac));
    let endpoints = match w.endpoints {
        Some(e) if e.is_empty() => {
            b.error("endpoints", "must name at least one endpoint");
            None
        }
        Some(e) => Some(e.into_iter().map(|e| e.0).collect()),
        None => Some(MimecastEndpoint::ALL.to_vec()),
    };
    Some(MimecastConfig {
        account: b.required("account", w.account)?.into(),
        base_url: base_url?,
        auth: auth?,
        page_size: w.page_size.unwrap_or(500) as usize,
        endpoints: endpoints?,
        interval: w.interval,
    })
}

/// `base_url`, or the API 1.0 host of `region`. API 1.0 (hmac) has no global host, so it needs
/// one of the two; API 2.0 (oauth2) defaults to its global gateway.
fn base_url(
    b: &Block<'_>,
    url: Option<HttpUrl>,
    region: Option<String>,
    hmac: bool,
) -> Option<String> {
    match (url, region) {
        (Some(_), Some(_)) => b.error("region", "give either base_url or region, not both"),
        (Some(url), None) => return Some(url.into()),
        (None, Some(region)) if hmac => {
            let host = REGIONS.iter().find(|(name, _)| name.eq_ignore_ascii_case(region.trim()));
            if host.is_none() {
                b.error("region", "is not a known region; known: eu, de, us, usb, ca, za, au, jer (offshore)");
            }
            return host.map(|(_, host)| host.to_string());
        }
        (None, Some(_)) => b.error(
            "region",
            "selects an API 1.0 host and needs auth = \"hmac\"; API 2.0 (oauth2) uses base_url \
             (default https://api.services.mimecast.com)",
        ),
        (None, None) if b.failed("base_url") || b.failed("region") => {}
        (None, None) if hmac => b.error(
            "region",
            "auth = \"hmac\" (API 1.0) needs region (eu, de, us, usb, ca, za, au, jer) or base_url; \
             the default host is the API 2.0 gateway, which does not accept API 1.0 signatures",
        ),
        (None, None) => return Some(DEFAULT_URL.to_string()),
    }
    None
}
