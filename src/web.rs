//! The web config file (Prometheus exporter-toolkit format): optional TLS and basic auth for
//! every endpoint.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: /etc/awareness-exporter/tls.crt
//!   key_file: /etc/awareness-exporter/tls.key
//! basic_auth_users:
//!   prometheus: $2y$10$...   # bcrypt hash
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use hmac::{Hmac, Mac};
use hyper::header::{HeaderMap, AUTHORIZATION};
use serde::Deserialize;
use sha1::Sha1;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    min_version: Option<String>,
}

/// The validated web config.
#[derive(Clone, Default)]
pub struct WebConfig {
    tls: Option<Arc<rustls::ServerConfig>>,
    users: BTreeMap<String, String>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn err(key: &str, msg: impl std::fmt::Display) -> String {
    format!("web config key `{key}`: {msg}")
}

impl WebConfig {
    /// Reads and checks the web config file; errors name the key at fault.
    pub fn load(path: &Path) -> Result<WebConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read web config file {}: {e}", path.display()))?;
        Self::parse(&text, path.parent().unwrap_or(Path::new(".")))
    }

    pub fn parse(text: &str, base: &Path) -> Result<WebConfig, String> {
        let raw: RawWebConfig = if text.trim().is_empty() {
            RawWebConfig::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| format!("web config: {e}"))?
        };
        for (user, hash) in &raw.basic_auth_users {
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(err(
                    &format!("basic_auth_users.{user}"),
                    "is not a bcrypt hash (generate one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)",
                ));
            }
        }
        let tls = match raw.tls_server_config {
            None => None,
            Some(t) => Some(Arc::new(load_tls(&t, base)?)),
        };
        Ok(WebConfig {
            tls,
            users: raw.basic_auth_users,
        })
    }

    pub fn tls_acceptor(&self) -> Option<TlsAcceptor> {
        self.tls.clone().map(TlsAcceptor::from)
    }

    pub fn access(&self) -> Access {
        Access::new(self.users.clone())
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn load_tls(t: &RawTls, base: &Path) -> Result<rustls::ServerConfig, String> {
    let cert_path = resolve(base, &t.cert_file);
    let key_path = resolve(base, &t.key_file);
    let cert_pem = std::fs::read(&cert_path).map_err(|e| {
        err(
            "tls_server_config.cert_file",
            format!("{}: {e}", cert_path.display()),
        )
    })?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| err("tls_server_config.cert_file", e))?;
    if certs.is_empty() {
        return Err(err(
            "tls_server_config.cert_file",
            "holds no PEM certificate",
        ));
    }
    let key_pem = std::fs::read(&key_path).map_err(|e| {
        err(
            "tls_server_config.key_file",
            format!("{}: {e}", key_path.display()),
        )
    })?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| err("tls_server_config.key_file", e))?
        .ok_or_else(|| err("tls_server_config.key_file", "holds no PEM private key"))?;
    let versions: &[&rustls::SupportedProtocolVersion] = match t.min_version.as_deref() {
        None | Some("TLS12") => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Some("TLS13") => &[&rustls::version::TLS13],
        Some(other) => {
            return Err(err(
                "tls_server_config.min_version",
                format!("`{other}` is not supported (use TLS12 or TLS13)"),
            ))
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| err("tls_server_config", e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| err("tls_server_config", e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Basic-auth check. bcrypt is slow on purpose, so a successful check is remembered as a keyed
/// digest of the credentials (never the credentials themselves).
pub struct Access {
    users: BTreeMap<String, String>,
    cache_key: [u8; 32],
    verified: Mutex<HashSet<Vec<u8>>>,
}

impl Access {
    pub fn new(users: BTreeMap<String, String>) -> Self {
        Access {
            users,
            cache_key: rand::random(),
            verified: Mutex::new(HashSet::new()),
        }
    }

    pub fn required(&self) -> bool {
        !self.users.is_empty()
    }

    pub fn allows(&self, headers: &HeaderMap) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some((user, password)) = basic_credentials(headers) else {
            return false;
        };
        let Some(hash) = self.users.get(&user) else {
            // Spend comparable time so unknown users are not told apart from wrong passwords.
            let _ = bcrypt::verify(
                &password,
                "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DSmV5UHEFG/zNL5Eq4rRi",
            );
            return false;
        };
        let digest = {
            let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&self.cache_key) else {
                return false;
            };
            mac.update(user.as_bytes());
            mac.update(b"\0");
            mac.update(password.as_bytes());
            mac.update(b"\0");
            mac.update(hash.as_bytes());
            mac.finalize().into_bytes().to_vec()
        };
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.contains(&digest) {
            return true;
        }
        drop(verified);
        if bcrypt::verify(&password, hash).unwrap_or(false) {
            verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if verified.len() > 1024 {
                verified.clear();
            }
            verified.insert(digest);
            true
        } else {
            false
        }
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, pw: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        h.insert(AUTHORIZATION, format!("Basic {v}").parse().unwrap());
        h
    }

    #[test]
    fn basic_auth_checks_bcrypt() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let cfg = WebConfig::parse(
            &format!("basic_auth_users:\n  prom: '{hash}'\n"),
            Path::new("."),
        )
        .unwrap();
        let access = cfg.access();
        assert!(access.allows(&header("prom", "s3cret")));
        assert!(access.allows(&header("prom", "s3cret")), "cached");
        assert!(!access.allows(&header("prom", "wrong")));
        assert!(!access.allows(&header("other", "s3cret")));
        assert!(!access.allows(&HeaderMap::new()));
    }

    #[test]
    fn bad_web_config_names_the_key() {
        let e = WebConfig::parse("basic_auth_users:\n  prom: plain\n", Path::new(".")).unwrap_err();
        assert!(e.contains("basic_auth_users.prom"), "{e}");
        let e = WebConfig::parse(
            "tls_server_config:\n  cert_file: /nonexistent\n  key_file: /x\n",
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.contains("tls_server_config.cert_file"), "{e}");
        let e = WebConfig::parse("unknown_key: 1\n", Path::new(".")).unwrap_err();
        assert!(e.contains("unknown_key"), "{e}");
    }
}
