//! Mimecast's `[[mimecast]]` block: its keys as a declared type, the checks between them
//! (the keys of each auth mode, base_url or region) and its regions.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::config::values::{duration, int, named, Account, HttpUrl, Name, Names, SEC, WEEK};
use crate::config::{account_and_interval, AccountConfig, Block, Secret};
use crate::model::SourceInfo;
use crate::sources::public_url;

pub(crate) const DEFAULT_URL: &str = "https://api.services.mimecast.com";

/// API 1.0 regional hosts (`region` key). Offshore is `je-api` in Mimecast's API 1.0 samples
/// (its SSO pages say `jer-api`; set `base_url` if your tenant differs).
pub(crate) const REGIONS: [(&str, &str); 10] = [
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
pub(crate) const SECRET_KEYS: &[&str] = &["client_secret", "app_key", "access_key", "secret_key"];

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
    endpoints: Names<MimecastEndpoint>,
    #[serde(deserialize_with = "duration::<_, _, SEC, WEEK>")]
    interval: Option<Duration>,
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

named! {
    /// The Mimecast endpoint groups that can be switched on or off per account; the name is
    /// also the group of the `endpoint` label.
    pub enum MimecastEndpoint {
        PerformanceDetails = "performance-details",
        PerformanceSummary = "performance-summary",
        WatchlistDetails = "watchlist-details",
        SafeScoreDetails = "safe-score-details",
        TrainingDetails = "training-details",
        Campaigns = "campaigns",
        PhishingCampaigns = "phishing-campaigns",
    }
}

/// `auth`: API 2.0's OAuth2 client credentials (the default) or API 1.0's signed requests.
#[derive(Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    OAuth2,
    Hmac,
}

impl AccountConfig for MimecastConfig {
    account_and_interval!();

    fn describe(&self) -> String {
        let endpoints: Vec<&str> = self.endpoints.iter().map(|e| e.name()).collect();
        let (base_url, auth) = (&self.base_url, self.info().auth);
        format!("{base_url}: {auth}; endpoints {}", endpoints.join(", "))
    }

    fn info(&self) -> SourceInfo {
        let auth = match self.auth {
            MimecastAuth::OAuth2 { .. } => "OAuth2 client credentials (API 2.0)",
            MimecastAuth::Hmac { .. } => "HMAC-signed requests (API 1.0)",
        };
        let url = public_url(&self.base_url);
        SourceInfo { url, auth }
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

/// A key of the other auth mode is a mistake worth naming.
const MISMATCH: &str = "does not match the keys: client_id and client_secret are for \"oauth2\" \
                        (API 2.0, the default); app_id, app_key, access_key and secret_key for \
                        \"hmac\" (API 1.0)";

/// API 1.0 has no global host.
const HMAC_REGION: &str =
    "is required with auth = \"hmac\" (API 1.0): eu, de, us, usb, ca, za, au or jer, or give \
     base_url";

/// Reads one `[[mimecast]]` block.
pub(super) fn read(mut b: Block<'_>) -> Option<MimecastConfig> {
    let w: Written = b.read()?;
    let mode = (!b.failed("auth")).then(|| w.auth.map_or(Mode::OAuth2, |m| m.0));
    let hmac_secrets = [&w.app_key, &w.access_key, &w.secret_key];
    let hmac_given = w.app_id.is_some() || hmac_secrets.iter().any(|k| k.is_some());
    let oauth2_given = w.client_id.is_some() || w.client_secret.is_some();
    if (mode == Some(Mode::OAuth2) && hmac_given) || (mode == Some(Mode::Hmac) && oauth2_given) {
        b.error("auth", MISMATCH);
    }
    // API 1.0 (hmac) has no global host: it needs a region or base_url; API 2.0 (oauth2) has
    // its global gateway and no regions.
    let otherwise = match mode {
        Some(Mode::Hmac) => Err(HMAC_REGION),
        _ => Ok(DEFAULT_URL),
    };
    if mode == Some(Mode::OAuth2) && w.region.is_some() && w.base_url.is_none() {
        b.error("region", "is only for auth = \"hmac\" (API 1.0)");
    }
    let (base_url, _) = b.host(w.base_url, w.region, &REGIONS, otherwise);
    let auth = mode.map(|mode| match mode {
        Mode::OAuth2 => MimecastAuth::OAuth2 {
            client_id: b.required("client_id", w.client_id),
            client_secret: b.required("client_secret", w.client_secret),
        },
        Mode::Hmac => {
            let secret_key = b.required("secret_key", w.secret_key);
            // Mimecast issues secret keys in base64; another cannot sign a request.
            let decoded = STANDARD.decode(secret_key.expose()).map(Zeroizing::new);
            if decoded.is_err() {
                let problem = "does not hold valid base64 (as Mimecast issues it)";
                b.error("secret_key", problem);
            }
            MimecastAuth::Hmac {
                app_id: b.required("app_id", w.app_id),
                app_key: b.required("app_key", w.app_key),
                access_key: b.required("access_key", w.access_key),
                secret_key,
            }
        }
    });
    b.valid(MimecastConfig {
        account: b.required("account", w.account).into(),
        base_url,
        auth: auth?,
        page_size: w.page_size.unwrap_or(500) as usize,
        endpoints: w.endpoints.0,
        interval: w.interval,
    })
}
