//! CyberPilot's `[[cyberpilot]]` block: its keys, their checks and its secrets.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Block, Secret};
use crate::model::SourceInfo;
use crate::sources::registry::AccountConfig;
use crate::sources::{public_url, Source, SourceContext};

pub const DEFAULT_URL: &str = "https://api.app.cyberpilot.io";

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
    fn account(&self) -> &str {
        &self.account
    }

    fn interval(&self) -> Option<Duration> {
        self.interval
    }

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
        match &self.auth {
            CyberPilotAuth::Token(t) => vec![t.expose()],
            CyberPilotAuth::Login { password, .. } => vec![password.expose()],
        }
    }

    fn build(&self, ctx: SourceContext) -> Arc<dyn Source> {
        Arc::new(super::CyberPilotSource::new(self.clone(), ctx))
    }
}

/// Reads one `[[cyberpilot]]` block.
pub fn read(mut s: Block<'_>) -> Option<CyberPilotConfig> {
    let account = s.account();
    let account_id = s.required("account_id");
    if account_id
        .as_ref()
        .is_some_and(|a| a.contains(['/', '?', '#']))
    {
        s.error("account_id", "must not contain '/', '?' or '#'");
    }
    let base_url = s.url("base_url", Some(DEFAULT_URL));
    let page_size = match s.uint("page_size") {
        Some(p) if !(1..=10_000).contains(&p) => {
            s.error("page_size", "must be between 1 and 10000");
            None
        }
        Some(p) => Some(p),
        // Asked for, not assumed: the server's own cap (seen in `fetched`) sets the paging.
        None => Some(1000),
    };
    let token = s.secret(["token", "token_file", "token_env"]);
    let token_given = ["token", "token_file", "token_env"]
        .iter()
        .any(|k| s.has(k));
    let login = s.table("login");
    let auth = match (token_given, login) {
        (true, Some(_)) => {
            s.error(
                "login",
                "give either a token or a [login] section, not both",
            );
            None
        }
        (true, None) => token.map(|t| CyberPilotAuth::Token(t.secret)),
        (false, Some(mut login)) => {
            let token_url = login.url("token_url", None);
            let client_id = login.required("client_id");
            let username = login.required("username");
            let password = login.require_secret(["password", "password_file", "password_env"]);
            login.finish();
            match (token_url, client_id, username, password) {
                (Some(token_url), Some(client_id), Some(username), Some(p)) => {
                    Some(CyberPilotAuth::Login {
                        token_url,
                        client_id,
                        username,
                        password: p.secret,
                    })
                }
                _ => None,
            }
        }
        (false, None) => {
            s.error(
                "token",
                "is required (or `token_file`, `token_env`, or a [cyberpilot.login] section)",
            );
            None
        }
    };
    let interval = s.interval();
    s.finish();
    Some(CyberPilotConfig {
        account: account?,
        account_id: account_id?,
        base_url: base_url?,
        auth: auth?,
        page_size: page_size?,
        interval,
    })
}
