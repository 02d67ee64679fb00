//! Mimecast's `[[mimecast]]` block: its keys, their checks, its secrets and its regions.

use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::config::{Block, Secret};
use crate::model::SourceInfo;
use crate::sources::registry::AccountConfig;
use crate::sources::{public_url, Source, SourceContext};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
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
        format!(
            "{} ({}, endpoints: {})",
            self.base_url,
            match self.auth {
                MimecastAuth::OAuth2 { .. } => "oauth2",
                MimecastAuth::Hmac { .. } => "hmac",
            },
            self.endpoints
                .iter()
                .map(|e| e.name())
                .collect::<Vec<_>>()
                .join(", ")
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

    fn build(&self, ctx: SourceContext) -> Arc<dyn Source> {
        Arc::new(super::MimecastSource::new(self.clone(), ctx))
    }
}

const OAUTH2_KEYS: [&str; 4] = [
    "client_id",
    "client_secret",
    "client_secret_file",
    "client_secret_env",
];

const HMAC_KEYS: [&str; 10] = [
    "app_id",
    "app_key",
    "app_key_file",
    "app_key_env",
    "access_key",
    "access_key_file",
    "access_key_env",
    "secret_key",
    "secret_key_file",
    "secret_key_env",
];

/// `base_url`, or the API 1.0 host of `region`. API 1.0 (hmac) has no global host, so it needs
/// one of the two; API 2.0 (oauth2) defaults to its global gateway.
fn base_url(s: &mut Block<'_>, hmac: bool) -> Option<String> {
    let region = s.string("region");
    match (s.has("base_url"), region) {
        (true, Some(_)) => {
            s.error("region", "give either base_url or region, not both");
            s.mark_read("base_url");
            None
        }
        (true, None) => s.url("base_url", None),
        (false, Some(region)) if hmac => {
            let host = REGIONS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(region.trim()))
                .map(|(_, host)| host.to_string());
            if host.is_none() {
                s.error(
                    "region",
                    format!(
                        "unknown region {region:?}; known: eu, de, us, usb, ca, za, au, jer (offshore)"
                    ),
                );
            }
            host
        }
        (false, Some(_)) => {
            s.error(
                "region",
                "selects an API 1.0 host and needs auth = \"hmac\"; API 2.0 (oauth2) uses base_url \
                 (default https://api.services.mimecast.com)",
            );
            None
        }
        (false, None) if hmac && !s.has("region") => {
            s.error(
                "region",
                "auth = \"hmac\" (API 1.0) needs region (eu, de, us, usb, ca, za, au, jer) or base_url; \
                 the default host is the API 2.0 gateway, which does not accept API 1.0 signatures",
            );
            None
        }
        (false, None) if s.has("region") => None,
        (false, None) => Some(DEFAULT_URL.to_string()),
    }
}

/// Reads one `[[mimecast]]` block.
pub fn read(mut s: Block<'_>) -> Option<MimecastConfig> {
    let account = s.account();
    // 500 is both the default and the most any public client asks for (Azure Sentinel's
    // MAX_PAGE_SIZE); larger Mimecast pages are unconfirmed.
    let page_size = match s.uint("page_size") {
        Some(p) if !(1..=500).contains(&p) => {
            s.error("page_size", "must be between 1 and 500");
            None
        }
        Some(p) => Some(p),
        None => Some(500),
    };
    let auth_mode = if s.has("auth") {
        s.string("auth")
    } else {
        Some("oauth2".to_string())
    };
    let auth = match auth_mode.as_deref() {
        Some("oauth2") => {
            let client_id = s.required("client_id");
            let secret =
                s.require_secret(["client_secret", "client_secret_file", "client_secret_env"]);
            match (client_id, secret) {
                (Some(client_id), Some(r)) => Some(MimecastAuth::OAuth2 {
                    client_id,
                    client_secret: r.secret,
                }),
                _ => None,
            }
        }
        Some("hmac") => {
            let app_id = s.required("app_id");
            let app_key = s.require_secret(["app_key", "app_key_file", "app_key_env"]);
            let access_key = s.require_secret(["access_key", "access_key_file", "access_key_env"]);
            let secret_key = s.require_secret(["secret_key", "secret_key_file", "secret_key_env"]);
            let secret_key = secret_key.filter(|r| {
                use base64::Engine as _;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(r.secret.expose())
                    .map(Zeroizing::new);
                if decoded.is_err() {
                    // Name the key the user wrote: `secret_key_file`, not `secret_key`.
                    s.error(
                        r.key,
                        "does not hold valid base64 (Mimecast issues secret keys in base64)",
                    );
                }
                decoded.is_ok()
            });
            match (app_id, app_key, access_key, secret_key) {
                (Some(app_id), Some(app_key), Some(access_key), Some(secret_key)) => {
                    Some(MimecastAuth::Hmac {
                        app_id,
                        app_key: app_key.secret,
                        access_key: access_key.secret,
                        secret_key: secret_key.secret,
                    })
                }
                _ => None,
            }
        }
        Some(_) => {
            s.error("auth", "must be \"oauth2\" or \"hmac\"");
            // Read the other keys so they are not also reported as unknown.
            for k in OAUTH2_KEYS.into_iter().chain(HMAC_KEYS) {
                s.mark_read(k);
            }
            None
        }
        None => None,
    };
    let stray: &[&'static str] = match auth_mode.as_deref() {
        Some("oauth2") => &HMAC_KEYS,
        Some("hmac") => &OAUTH2_KEYS,
        _ => &[],
    };
    for &k in stray {
        if s.has(k) {
            s.mark_read(k);
            s.error(
                k,
                if auth_mode.as_deref() == Some("oauth2") {
                    "belongs to auth = \"hmac\" (API 1.0); this account uses auth = \"oauth2\""
                } else {
                    "belongs to auth = \"oauth2\" (API 2.0); this account uses auth = \"hmac\""
                },
            );
        }
    }
    let base_url = base_url(&mut s, auth_mode.as_deref() == Some("hmac"));
    let endpoints = match s.strings("endpoints") {
        None if s.has("endpoints") => None,
        None => Some(MimecastEndpoint::ALL.to_vec()),
        Some(names) => {
            let mut out = Vec::new();
            let mut ok = true;
            for name in names {
                match MimecastEndpoint::parse(&name) {
                    Some(e) => {
                        if !out.contains(&e) {
                            out.push(e);
                        }
                    }
                    None => {
                        ok = false;
                        s.error(
                            "endpoints",
                            format!(
                                "unknown endpoint {name:?}; known: {}",
                                MimecastEndpoint::ALL.map(|e| e.name()).join(", ")
                            ),
                        );
                    }
                }
            }
            if ok && out.is_empty() {
                s.error("endpoints", "must name at least one endpoint");
                ok = false;
            }
            out.sort();
            ok.then_some(out)
        }
    };
    let interval = s.interval();
    s.finish();
    Some(MimecastConfig {
        account: account?,
        base_url: base_url?,
        auth: auth?,
        page_size: page_size?,
        endpoints: endpoints?,
        interval,
    })
}
