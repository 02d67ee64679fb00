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
//!
//! Messages name the key at fault and never show a value: a private key pasted where a path
//! belongs, or a password where a hash belongs, stays out of logs and `--check-config`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bcrypt::HashParts;
use hmac::{Hmac, Mac};
use hyper::header::{HeaderMap, AUTHORIZATION};
use serde::Deserialize;
use sha1::Sha1;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::files;

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    min_version: Option<String>,
}

/// The validated web config.
#[derive(Clone, Default)]
pub struct WebConfig {
    pub tls: Option<TlsAcceptor>,
    users: BTreeMap<String, String>,
    /// The files it was read from: the config itself, the certificate and the key.
    files: Vec<PathBuf>,
    /// What works but should not be so (a key file others may read), logged at load.
    warning: Option<String>,
}

fn err(key: &str, msg: impl std::fmt::Display) -> String {
    format!("web config key `{key}`: {msg}")
}

/// A YAML or type error without the value serde quotes ("invalid type: string \"…\"").
fn yaml_error(e: &serde_yaml_ng::Error) -> String {
    let text = e.to_string();
    let text = text.rsplit_once(" at line ").map_or(&*text, |(t, _)| t);
    let (key, msg) = match text.split_once(": ") {
        Some((path, msg)) if !path.contains(' ') => (format!(" key `{path}`"), msg),
        _ => (String::new(), text),
    };
    let msg = match (msg.starts_with("invalid "), msg.rsplit_once(", expected ")) {
        (true, Some((_, expected))) => format!("has the wrong type or value; expected {expected}"),
        (true, None) => "has the wrong type or value".into(),
        (false, _) => msg.to_string(),
    };
    let line = e.location().map(|l| format!(" (line {})", l.line()));
    format!("web config{key}: {msg}{}", line.unwrap_or_default())
}

impl WebConfig {
    /// Reads and checks the web config file; errors name the key at fault.
    pub fn load(path: &Path) -> Result<WebConfig, String> {
        let text = files::read_text(path)
            .map_err(|e| format!("the web config file cannot be read: {e}"))?;
        let mut config = Self::parse(&text, path.parent().unwrap_or(Path::new(".")))?;
        config.files.insert(0, path.to_path_buf());
        Ok(config)
    }

    fn parse(text: &str, base: &Path) -> Result<WebConfig, String> {
        let raw: RawWebConfig = match text.trim() {
            "" => RawWebConfig::default(),
            _ => serde_yaml_ng::from_str(text).map_err(|e| yaml_error(&e))?,
        };
        let not_bcrypt = |(_, h): &(&String, &String)| h.parse::<HashParts>().is_err();
        if let Some((user, _)) = raw.basic_auth_users.iter().find(not_bcrypt) {
            let msg =
                "is not a bcrypt hash (generate one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)";
            return Err(err(&format!("basic_auth_users.{user}"), msg));
        }
        let mut config = WebConfig {
            users: raw.basic_auth_users,
            ..WebConfig::default()
        };
        if let Some(t) = raw.tls_server_config {
            let (cert, key) = (base.join(&t.cert_file), base.join(&t.key_file));
            if let Some(who) = files::open_to_others(&key) {
                let problem = format!("the key file is open to {who}; restrict it (chmod 600)");
                config.warning = Some(err("tls_server_config.key_file", problem));
            }
            let tls = load_tls(&cert, &key, t.min_version.as_deref())?;
            config.tls = Some(TlsAcceptor::from(Arc::new(tls)));
            config.files = vec![cert, key];
        }
        Ok(config)
    }
}

fn load_tls(cert: &Path, key: &Path, min: Option<&str>) -> Result<ServerConfig, String> {
    let read = |what: &str, path: &Path| {
        files::read(path).map_err(|e| err(what, format!("the file it names cannot be read: {e}")))
    };
    // PEM errors can quote a line of the file: say only that it is not PEM.
    let not_pem = |what: &str, item: &str| err(what, format!("holds no valid PEM {item}"));
    let cert_key = "tls_server_config.cert_file";
    let certs = CertificateDer::pem_slice_iter(&read(cert_key, cert)?)
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .filter(|certs| !certs.is_empty())
        .ok_or_else(|| not_pem(cert_key, "certificate"))?;
    let key_key = "tls_server_config.key_file";
    let key = PrivateKeyDer::from_pem_slice(&read(key_key, key)?)
        .map_err(|_| not_pem(key_key, "private key"))?;
    let versions: &[&rustls::SupportedProtocolVersion] = match min {
        None | Some("TLS12") => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Some("TLS13") => &[&rustls::version::TLS13],
        Some(_) => {
            let msg = "is not supported (use TLS12 or TLS13)";
            return Err(err("tls_server_config.min_version", msg));
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| err("tls_server_config", e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| err("tls_server_config", e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// How often the web config files are looked at for changes.
const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What `stat` tells of each file's content: modification time, size, inode (Kubernetes secret
/// volumes swap a symlink, which changes the inode).
type Stamp = Vec<Option<(SystemTime, u64, u64)>>;

fn stamp(paths: &[PathBuf]) -> Stamp {
    let one = |p: &PathBuf| {
        let m = std::fs::metadata(p).ok()?;
        Some((m.modified().ok()?, m.len(), m.ino()))
    };
    paths.iter().map(one).collect()
}

/// The web config in force. Connections take its TLS acceptor at accept, and every request
/// is checked against its users' access, so a changed password takes effect on open
/// connections too.
pub struct ActiveWeb {
    pub config: WebConfig,
    pub access: Arc<Access>,
}

/// The web config file, read at start and again when it (or a certificate or key it names)
/// changes: looked at every second by [`WebSettings::watch`], and on SIGHUP. A file that fails
/// to load is refused and logged; the one in force stays. All file work runs off the runtime
/// workers.
pub struct WebSettings {
    path: Option<PathBuf>,
    active: RwLock<Arc<ActiveWeb>>,
    /// The files' stamp when they were last read (and accepted or refused): the watcher reads
    /// them again only when it changes.
    read: Mutex<Stamp>,
}

impl WebSettings {
    /// Loads the web config (none: plain HTTP, no auth). An error here stops start-up.
    pub fn load(path: Option<PathBuf>) -> Result<WebSettings, String> {
        let none = ActiveWeb {
            config: WebConfig::default(),
            access: Arc::new(Access::new(BTreeMap::new(), None)),
        };
        let web = WebSettings {
            path,
            active: RwLock::new(Arc::new(none)),
            read: Mutex::default(),
        };
        web.read()?;
        Ok(web)
    }

    /// The config in force (no file work: the watcher and SIGHUP read the files).
    pub fn current(&self) -> Arc<ActiveWeb> {
        let active = self.active.read();
        active.unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the files and puts the config in force, keeping what the old one verified for
    /// users whose hash did not change. Blocking.
    fn read(&self) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let old = self.current();
        // Stamped before reading: a change during the read is seen at the next look.
        *lock(&self.read) = stamp(&old.config.files);
        let config = WebConfig::load(path)?;
        if config.files != old.config.files {
            *lock(&self.read) = stamp(&config.files);
        }
        if let Some(w) = &config.warning {
            tracing::warn!("{w}");
        }
        let access = Arc::new(Access::new(config.users.clone(), Some(&old.access)));
        let active = ActiveWeb { config, access };
        *self.active.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(active);
        Ok(())
    }

    /// Reads the files again now (SIGHUP, or a change the watcher saw), off the runtime
    /// workers. On error the config in force stays.
    pub async fn reload(self: &Arc<Self>) -> Result<(), String> {
        let me = self.clone();
        let read = tokio::task::spawn_blocking(move || me.read()).await;
        let read = read.unwrap_or_else(|e| Err(format!("web config reload failed: {e}")));
        match &read {
            Ok(()) => tracing::info!("web config reloaded"),
            Err(e) => tracing::error!(error = %e, "web config refused; keeping the one in force"),
        }
        read
    }

    /// Reloads when a file changed, looking every [`RECHECK_INTERVAL`], until dropped.
    pub async fn watch(self: Arc<Self>) {
        if self.path.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(RECHECK_INTERVAL);
        loop {
            tick.tick().await;
            let me = self.clone();
            let look = move || stamp(&me.current().config.files) != *lock(&me.read);
            if tokio::task::spawn_blocking(look).await.unwrap_or(false) {
                let _ = self.reload().await;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a basic-auth check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied,
    /// Too many password checks already running: refused at once rather than queued.
    Busy,
}

/// Remembered verified credentials, and client addresses that passed a check before.
const REMEMBERED: usize = 1024;

/// Basic-auth check. bcrypt is slow on purpose, so:
/// - a successful check is remembered as a keyed digest of the credentials (never the
///   credentials themselves), consulted first, and kept across reloads for every user whose
///   hash did not change: a known-good scraper never waits for bcrypt;
/// - bcrypt work is rationed, never queued: one check at a time per client address, at most
///   (cores / 2 + 1) at once on the blocking pool, plus one slot kept for addresses that passed
///   before; a check that finds no slot is answered "busy" at once. So a flood from one
///   address cannot starve another, cached or not;
/// - an unknown user is checked against a dummy hash of the configured cost, so the answer
///   time does not tell which users exist.
pub struct Access {
    users: BTreeMap<String, String>,
    cache_key: [u8; 32],
    memory: Mutex<Memory>,
    /// Checks that may run at once; one more for addresses that passed before.
    slots: usize,
    dummy: OnceLock<String>,
}

#[derive(Clone, Default)]
struct Memory {
    /// Digest of verified credentials → their user.
    verified: HashMap<Vec<u8>, String>,
    /// Addresses that passed a check.
    known: HashSet<IpAddr>,
    /// Addresses with a check running.
    checking: HashSet<IpAddr>,
}

/// A running check: its address marked busy, which also counts it against the slots.
struct Ticket {
    access: Arc<Access>,
    peer: IpAddr,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        lock(&self.access.memory).checking.remove(&self.peer);
    }
}

impl Access {
    /// The users' access; what `old` verified for users whose hash did not change, and the
    /// addresses it knows, are kept.
    pub fn new(users: BTreeMap<String, String>, old: Option<&Access>) -> Self {
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut memory = old.map(|old| lock(&old.memory).clone()).unwrap_or_default();
        let kept = |user: &String| old.is_none_or(|old| users.get(user) == old.users.get(user));
        memory.verified.retain(|_, user| kept(user));
        memory.checking.clear();
        Access {
            cache_key: old.map_or_else(rand::random, |old| old.cache_key),
            users,
            memory: Mutex::new(memory),
            slots: parallel / 2 + 1,
            dummy: OnceLock::new(),
        }
    }

    /// Checks the basic-auth credentials of a request from `peer`.
    pub async fn check(self: &Arc<Self>, headers: &HeaderMap, peer: IpAddr) -> Verdict {
        if self.users.is_empty() {
            return Verdict::Allowed;
        }
        let Some((user, password)) = basic_credentials(headers) else {
            return Verdict::Denied;
        };
        let Some(digest) = self.digest(&user, &password) else {
            return Verdict::Denied;
        };
        if lock(&self.memory).verified.contains_key(&digest) {
            return Verdict::Allowed;
        }
        let Some(ticket) = self.ticket(peer) else {
            return Verdict::Busy;
        };
        // The ticket is the check's slot until the check ends.
        let verify = move || ticket.access.verify(&user, &password, digest, peer);
        tokio::task::spawn_blocking(verify)
            .await
            .unwrap_or(Verdict::Denied)
    }

    /// A slot for a check from `peer`: none when `peer` has one running or none is free (the
    /// kept slot is only for addresses that passed before).
    fn ticket(self: &Arc<Self>, peer: IpAddr) -> Option<Ticket> {
        let mut memory = lock(&self.memory);
        // One check per address at a time, so the addresses checking count the checks running.
        let slots = self.slots + usize::from(memory.known.contains(&peer));
        if memory.checking.len() >= slots || !memory.checking.insert(peer) {
            return None;
        }
        let access = self.clone();
        Some(Ticket { access, peer })
    }

    fn digest(&self, user: &str, password: &str) -> Option<Vec<u8>> {
        let mut mac = Hmac::<Sha1>::new_from_slice(&self.cache_key).ok()?;
        mac.update(user.as_bytes());
        mac.update(b"\0");
        mac.update(password.as_bytes());
        Some(mac.finalize().into_bytes().to_vec())
    }

    /// The bcrypt comparison (blocking).
    fn verify(&self, user: &str, password: &str, digest: Vec<u8>, peer: IpAddr) -> Verdict {
        let Some(hash) = self.users.get(user) else {
            let _ = bcrypt::verify(password, self.dummy_hash());
            return Verdict::Denied;
        };
        if !bcrypt::verify(password, hash).unwrap_or(false) {
            return Verdict::Denied;
        }
        let mut memory = lock(&self.memory);
        if memory.verified.len() >= REMEMBERED || memory.known.len() >= REMEMBERED {
            memory.verified.clear();
            memory.known.clear();
        }
        memory.verified.insert(digest, user.to_string());
        memory.known.insert(peer);
        Verdict::Allowed
    }

    /// A hash of a random password at the configured cost (the highest among the users), made
    /// once on first need.
    fn dummy_hash(&self) -> &str {
        self.dummy.get_or_init(|| {
            let cost = |h: &String| h.parse::<HashParts>().map(|p| p.get_cost()).ok();
            let cost = self.users.values().filter_map(cost).max();
            let password: [u8; 16] = rand::random();
            bcrypt::hash(password, cost.unwrap_or(bcrypt::DEFAULT_COST)).unwrap_or_default()
        })
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let basic = |(scheme, _): &(&str, &str)| scheme.eq_ignore_ascii_case("basic");
    let (_, encoded) = value.trim().split_once(' ').filter(basic)?;
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, pw: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = STANDARD.encode(format!("{user}:{pw}"));
        h.insert(AUTHORIZATION, format!("Basic {v}").parse().unwrap());
        h
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn users(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let hash = |pw: &str| bcrypt::hash(pw, 4).unwrap();
        pairs
            .iter()
            .map(|(u, pw)| (u.to_string(), hash(pw)))
            .collect()
    }

    #[tokio::test]
    async fn basic_auth_checks_bcrypt() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let cfg = WebConfig::parse(
            &format!("basic_auth_users:\n  prom: '{hash}'\n"),
            Path::new("."),
        )
        .unwrap();
        let access = Arc::new(Access::new(cfg.users, None));
        let check = |user: &'static str, pw: &'static str| access.check_as(user, pw, ip(1));
        assert_eq!(check("prom", "s3cret").await, Verdict::Allowed);
        assert_eq!(check("prom", "s3cret").await, Verdict::Allowed, "cached");
        assert_eq!(check("prom", "wrong").await, Verdict::Denied);
        assert_eq!(check("other", "s3cret").await, Verdict::Denied);
        assert_eq!(
            access.check(&HeaderMap::new(), ip(1)).await,
            Verdict::Denied
        );
    }

    impl Access {
        async fn check_as(self: &Arc<Self>, user: &str, pw: &str, peer: IpAddr) -> Verdict {
            self.check(&header(user, pw), peer).await
        }
    }

    /// Issue 24 item 2: wrong passwords from one address cannot starve another's first check
    /// (nothing cached yet), and a slot is kept for addresses that passed before.
    #[tokio::test]
    async fn floods_cannot_starve_other_clients_cached_or_not() {
        let hash = bcrypt::hash("s3cret", 5).unwrap();
        let mut all = users(&[("other", "0ther")]);
        all.insert("prom".into(), hash);
        let access = Arc::new(Access::new(all, None));
        // The dummy hash an unknown user is checked against has the configured cost (5), not
        // bcrypt's default (which would make unknown users 32 times slower).
        let dummy = access.dummy_hash().parse::<bcrypt::HashParts>().unwrap();
        assert_eq!(dummy.get_cost(), 5);

        // A flood from .2: one check running, the next ones told "busy" at once.
        let flood = access.ticket(ip(2)).unwrap();
        assert_eq!(access.check_as("prom", "wrong", ip(2)).await, Verdict::Busy);
        // Prometheus at .1, never checked before, still gets its answer.
        assert_eq!(
            access.check_as("prom", "s3cret", ip(1)).await,
            Verdict::Allowed
        );
        // Every shared slot taken by floods from many addresses: .1 passed before, so the kept
        // slot is its; a stranger is turned away.
        let mut held = vec![flood];
        for last in 3..=255 {
            match access.ticket(ip(last)) {
                Some(t) => held.push(t),
                None => break,
            }
        }
        assert_eq!(
            access.check_as("other", "0ther", ip(250)).await,
            Verdict::Busy
        );
        assert_eq!(
            access.check_as("other", "0ther", ip(1)).await,
            Verdict::Allowed
        );
        drop(held);
        assert_eq!(access.check_as("nobody", "x", ip(2)).await, Verdict::Denied);
    }

    /// Issue 24 item 2: what was verified survives a reload for users whose hash did not change.
    #[tokio::test]
    async fn verified_credentials_survive_a_reload_unless_the_hash_changed() {
        let first = Arc::new(Access::new(users(&[("a", "pa"), ("b", "pb")]), None));
        assert_eq!(first.check_as("a", "pa", ip(1)).await, Verdict::Allowed);
        assert_eq!(first.check_as("b", "pb", ip(1)).await, Verdict::Allowed);
        let mut changed = first.users.clone();
        changed.insert("b".into(), bcrypt::hash("new", 4).unwrap());
        let second = Arc::new(Access::new(changed, Some(&first)));
        // No slot for anyone: only what is cached can pass.
        let _held: Vec<_> = (1..=255).filter_map(|i| second.ticket(ip(i))).collect();
        assert_eq!(second.check_as("a", "pa", ip(9)).await, Verdict::Allowed);
        assert_eq!(second.check_as("b", "pb", ip(9)).await, Verdict::Busy);
    }

    /// Issue 24 item 8: no message about the web config shows a value: not a private key
    /// pasted where a path belongs, not a password where a hash belongs, nor any other value.
    #[test]
    fn web_config_messages_never_show_values() {
        let dir = tempfile::tempdir().unwrap();
        let key = "-----BEGIN PRIVATE KEY-----\n  SENTINELSENTINEL\n  -----END PRIVATE KEY-----";
        let cases = [
            format!("tls_server_config:\n  cert_file: x\n  key_file: |\n  {key}\n"),
            format!("tls_server_config:\n  cert_file: '{key}'\n  key_file: y\n"),
            "basic_auth_users:\n  prom: SENTINELSENTINEL\n".into(),
            "basic_auth_users:\n  prom: [SENTINELSENTINEL]\n".into(),
            "basic_auth_users: SENTINELSENTINEL\n".into(),
            "tls_server_config: SENTINELSENTINEL\n".into(),
            "tls_server_config:\n  cert_file: [SENTINELSENTINEL]\n  key_file: y\n".into(),
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: SENTINELSENTINEL\n"
                .into(),
            "SENTINELSENTINEL\n".into(),
        ];
        for (i, text) in cases.iter().enumerate() {
            let e = WebConfig::parse(text, dir.path()).err().unwrap();
            assert!(!e.contains("SENTINEL"), "case {i}: {e}");
            assert!(e.contains("web config"), "case {i}: {e}");
        }
        // A PEM file whose lines are not PEM: the error quotes none of them.
        std::fs::write(
            dir.path().join("bad.pem"),
            "-----BEGIN SENTINEL\nSENTINEL\n",
        )
        .unwrap();
        let text = "tls_server_config:\n  cert_file: bad.pem\n  key_file: bad.pem\n";
        let e = WebConfig::parse(text, dir.path()).err().unwrap();
        assert!(!e.contains("SENTINEL") && e.contains("cert_file"), "{e}");
    }

    #[test]
    fn world_readable_tls_key_warns() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(dir.path().join("tls.crt"), cert.cert.pem()).unwrap();
        let key = dir.path().join("tls.key");
        std::fs::write(&key, cert.key_pair.serialize_pem()).unwrap();
        let text = "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n";
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let cfg = WebConfig::parse(text, dir.path()).unwrap();
        assert!(
            cfg.warning
                .as_ref()
                .is_some_and(|w| w.contains("open to other users")),
            "{:?}",
            cfg.warning
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let cfg = WebConfig::parse(text, dir.path()).unwrap();
        assert!(cfg.warning.is_none());
    }

    #[test]
    fn pem_files_are_read_with_pki_types() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let text = "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n";
        let parse = || WebConfig::parse(text, dir.path());
        // A key file that also holds the certificate (a combined PEM) still gives its key.
        std::fs::write(&crt, cert.cert.pem()).unwrap();
        let combined = format!("{}{}", cert.cert.pem(), cert.key_pair.serialize_pem());
        std::fs::write(&key, combined).unwrap();
        assert!(parse().is_ok());
        // A key file with no key, a certificate file with no certificate, a cut-off PEM.
        std::fs::write(&key, cert.cert.pem()).unwrap();
        let e = parse().err().unwrap();
        assert!(
            e.contains("tls_server_config.key_file") && e.contains("private key"),
            "{e}"
        );
        std::fs::write(&key, cert.key_pair.serialize_pem()).unwrap();
        std::fs::write(&crt, "").unwrap();
        let e = parse().err().unwrap();
        assert!(
            e.contains("tls_server_config.cert_file") && e.contains("certificate"),
            "{e}"
        );
        let pem = cert.cert.pem();
        std::fs::write(&crt, &pem[..pem.len() - 30]).unwrap();
        let e = parse().err().unwrap();
        assert!(e.contains("tls_server_config.cert_file"), "{e}");
    }

    /// RUSTSEC-2025-0134: rustls-pemfile is unmaintained; PEM comes from rustls-pki-types.
    #[test]
    fn rustls_pemfile_is_not_a_dependency() {
        let lock = include_str!("../Cargo.lock");
        assert!(!lock.contains("name = \"rustls-pemfile\""));
    }

    /// Issue 24 item 7: a FIFO or a device at any path the web config names is refused at once,
    /// never read (a FIFO blocked a runtime worker; /dev/zero grew memory without end).
    #[test]
    fn fifos_and_devices_are_refused_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("web.yml");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let e = WebConfig::load(&fifo).err().unwrap();
        assert!(e.contains("not a regular file"), "{e}");
        let text = "tls_server_config:\n  cert_file: /dev/zero\n  key_file: /dev/zero\n";
        let e = WebConfig::parse(text, dir.path()).err().unwrap();
        assert!(
            e.contains("cert_file") && e.contains("not a regular file"),
            "{e}"
        );
    }

    #[test]
    fn bad_web_config_names_the_key() {
        let e = WebConfig::parse("basic_auth_users:\n  prom: plain\n", Path::new("."))
            .err()
            .unwrap();
        assert!(e.contains("basic_auth_users.prom"), "{e}");
        let text = "tls_server_config:\n  cert_file: /nonexistent\n  key_file: /x\n";
        let e = WebConfig::parse(text, Path::new(".")).err().unwrap();
        assert!(
            e.contains("tls_server_config.cert_file") && e.contains("no such file"),
            "{e}"
        );
        let e = WebConfig::parse("unknown_key: 1\n", Path::new("."))
            .err()
            .unwrap();
        assert!(e.contains("unknown_key"), "{e}");
    }
}
