//! CyberPilot's `[[cyberpilot]]` block: its keys as a declared type, and the checks between
//! them.

use std::time::Duration;

use serde::Deserialize;

use crate::config::values::{duration, id, int, Account, HttpUrl, SEC, WEEK};
use crate::config::{account_and_interval, AccountConfig, Block, Secret};
use crate::model::SourceInfo;
use crate::sources::public_url;

pub(crate) const DEFAULT_URL: &str = "https://api.app.cyberpilot.io";

/// The block as written (a secret's `_file`/`_env` forms are resolved before it is read).
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Written {
    account: Option<Account>,
    #[serde(deserialize_with = "id")]
    account_id: Option<String>,
    base_url: Option<HttpUrl>,
    token: Option<Secret>,
    login: Option<Login>,
    /// `take` asked for, not assumed: the server's own cap (seen in `fetched`) sets the paging.
    #[serde(deserialize_with = "int::<_, _, 1, 10_000>")]
    page_size: Option<u64>,
    #[serde(deserialize_with = "duration::<_, _, SEC, WEEK>")]
    interval: Option<Duration>,
}

/// `[cyberpilot.login]`: the OAuth2 password grant instead of a static token.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Login {
    token_url: Option<HttpUrl>,
    client_id: Option<String>,
    username: Option<String>,
    password: Option<Secret>,
}

/// The secret keys of the block (`login.password` included).
pub(crate) const SECRET_KEYS: &[&str] = &["token", "password"];

/// One CyberPilot account.
#[derive(Debug, Clone, PartialEq)]
pub struct CyberPilotConfig {
    pub account: String,
    pub account_id: String,
    pub base_url: String,
    pub auth: CyberPilotAuth,
    pub page_size: usize,
    pub interval: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CyberPilotAuth {
    Token(Secret),
    Login {
        token_url: String,
        client_id: String,
        username: String,
        password: Secret,
    },
}

impl AccountConfig for CyberPilotConfig {
    account_and_interval!();

    fn describe(&self) -> String {
        format!("{} (account id {})", self.base_url, self.account_id)
    }

    fn info(&self) -> SourceInfo {
        SourceInfo {
            url: public_url(&self.base_url),
            auth: match self.auth {
                CyberPilotAuth::Token(_) => "static token",
                CyberPilotAuth::Login { .. } => "OAuth2 password grant (login)",
            },
        }
    }

    fn secrets(&self) -> Vec<&str> {
        let secret = match &self.auth {
            CyberPilotAuth::Token(token) => token,
            CyberPilotAuth::Login { password, .. } => password,
        };
        vec![secret.expose()]
    }
}

/// A static token and a `[login]` section are two ways to sign in: one of them, not both.
const BOTH: &str = "give either a token or a [login] section, not both";
const NEITHER: &str = "is required (or `token_file`, `token_env`, or a [cyberpilot.login] section)";

/// Reads one `[[cyberpilot]]` block.
pub(super) fn read(mut b: Block<'_>) -> Option<CyberPilotConfig> {
    let w: Written = b.read()?;
    let auth = match (w.token, w.login) {
        (Some(_), Some(_)) => {
            b.error("login", BOTH);
            None
        }
        (Some(token), None) => Some(CyberPilotAuth::Token(token)),
        (None, Some(login)) => Some(CyberPilotAuth::Login {
            token_url: b.required("login.token_url", login.token_url).into(),
            client_id: b.required("login.client_id", login.client_id),
            username: b.required("login.username", login.username),
            password: b.required("login.password", login.password),
        }),
        (None, None) if b.failed("token") || b.failed("login") => None,
        (None, None) => {
            b.error("token", NEITHER);
            None
        }
    };
    b.valid(CyberPilotConfig {
        account: b.required("account", w.account).into(),
        account_id: b.required("account_id", w.account_id),
        base_url: w.base_url.map_or(DEFAULT_URL.into(), String::from),
        auth: auth?,
        page_size: w.page_size.unwrap_or(1000) as usize,
        interval: w.interval,
    })
}
