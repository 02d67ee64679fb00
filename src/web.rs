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
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use hmac::{Hmac, Mac};
use hyper::header::{HeaderMap, AUTHORIZATION};
use serde::Deserialize;
use sha1::Sha1;
use tokio::sync::Semaphore;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
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
    /// The certificate and key files it was built from (watched for changes).
    files: Vec<PathBuf>,
    warnings: Vec<String>,
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
        let text = crate::files::read_text(path)
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
        let mut warnings = Vec::new();
        let mut files = Vec::new();
        let tls = match raw.tls_server_config {
            None => None,
            Some(t) => {
                let key_path = resolve(base, &t.key_file);
                if world_readable(&key_path) {
                    warnings.push(format!(
                        "TLS key file {} is world-readable; restrict it (chmod 600)",
                        key_path.display()
                    ));
                }
                files.push(resolve(base, &t.cert_file));
                files.push(key_path);
                Some(Arc::new(load_tls(&t, base)?))
            }
        };
        Ok(WebConfig {
            tls,
            users: raw.basic_auth_users,
            files,
            warnings,
        })
    }

    /// Things that work but should not be so (e.g. a world-readable key), logged at load.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn tls_acceptor(&self) -> Option<TlsAcceptor> {
        self.tls.clone().map(TlsAcceptor::from)
    }

    pub fn access(&self) -> Access {
        Access::new(self.users.clone())
    }
}

#[cfg(unix)]
fn world_readable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o004 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn world_readable(_: &Path) -> bool {
    false
}

/// How often new connections may look at the web config files for changes.
const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Identity of a file's content as far as `stat` tells: modification time, size, inode.
/// Kubernetes secret volumes swap a symlink, which changes the inode.
type Stamp = Vec<Option<(SystemTime, u64, u64)>>;

fn stamp(paths: &[&Path]) -> Stamp {
    paths
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            #[cfg(unix)]
            let ino = std::os::unix::fs::MetadataExt::ino(&m);
            #[cfg(not(unix))]
            let ino = 0;
            Some((m.modified().ok()?, m.len(), ino))
        })
        .collect()
}

/// The web config in force: what new connections get.
pub struct ActiveWeb {
    pub tls: Option<TlsAcceptor>,
    pub access: Arc<Access>,
    files: Vec<PathBuf>,
    stamp: Stamp,
}

struct Watch {
    checked: Instant,
    /// Stamp of a file that was refused: not re-read until it changes again.
    refused: Option<Stamp>,
}

/// The web config file, re-read when it (or a certificate or key it names) changes: checked
/// on new connections at most once per second, and on SIGHUP. A file that fails to load is
/// refused and logged; the one in force stays.
pub struct WebSettings {
    path: Option<PathBuf>,
    active: RwLock<Arc<ActiveWeb>>,
    watch: Mutex<Watch>,
}

impl WebSettings {
    /// Loads the web config (none: plain HTTP, no auth). An error here stops start-up.
    pub fn load(path: Option<PathBuf>) -> Result<WebSettings, String> {
        let config = match &path {
            None => WebConfig::default(),
            Some(p) => WebConfig::load(p)?,
        };
        for w in config.warnings() {
            tracing::warn!("{w}");
        }
        let active = Self::activate(path.as_deref(), config);
        Ok(WebSettings {
            path,
            active: RwLock::new(Arc::new(active)),
            watch: Mutex::new(Watch {
                checked: Instant::now(),
                refused: None,
            }),
        })
    }

    fn activate(path: Option<&Path>, config: WebConfig) -> ActiveWeb {
        let mut files: Vec<PathBuf> = path.map(Path::to_path_buf).into_iter().collect();
        files.extend(config.files.iter().cloned());
        let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        ActiveWeb {
            tls: config.tls_acceptor(),
            access: Arc::new(config.access()),
            stamp: stamp(&refs),
            files,
        }
    }

    fn active(&self) -> Arc<ActiveWeb> {
        self.active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The config for a new connection, re-read first if a file changed (checked at most once
    /// per [`RECHECK_INTERVAL`]).
    pub fn current(&self) -> Arc<ActiveWeb> {
        let active = self.active();
        if self.path.is_none() {
            return active;
        }
        let Ok(mut watch) = self.watch.try_lock() else {
            return active; // another connection is checking right now
        };
        if watch.checked.elapsed() < RECHECK_INTERVAL {
            return active;
        }
        watch.checked = Instant::now();
        let refs: Vec<&Path> = active.files.iter().map(PathBuf::as_path).collect();
        let now = stamp(&refs);
        if now == active.stamp || watch.refused.as_ref() == Some(&now) {
            return active;
        }
        match self.reload_locked(&mut watch) {
            Ok(()) => self.active(),
            Err(_) => active,
        }
    }

    /// Re-reads the file now (SIGHUP). On error the config in force stays.
    pub fn reload(&self) -> Result<(), String> {
        if self.path.is_none() {
            return Ok(());
        }
        let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        self.reload_locked(&mut watch)
    }

    fn reload_locked(&self, watch: &mut Watch) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        // Stamp before reading: a change during the read is seen at the next check.
        let active = self.active();
        let before_refs: Vec<&Path> = active.files.iter().map(PathBuf::as_path).collect();
        let before = stamp(&before_refs);
        match WebConfig::load(path) {
            Ok(config) => {
                for w in config.warnings() {
                    tracing::warn!("{w}");
                }
                let active = Self::activate(Some(path), config);
                *self.active.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(active);
                watch.refused = None;
                tracing::info!(file = %path.display(), "web config reloaded; new connections use it");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "web config refused; keeping the one in force");
                watch.refused = Some(before);
                Err(e)
            }
        }
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
    let cert_pem = crate::files::read(&cert_path).map_err(|e| {
        err(
            "tls_server_config.cert_file",
            format!("{}: {e}", cert_path.display()),
        )
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| err("tls_server_config.cert_file", e))?;
    if certs.is_empty() {
        return Err(err(
            "tls_server_config.cert_file",
            "holds no PEM certificate",
        ));
    }
    let key_pem = crate::files::read(&key_path).map_err(|e| {
        err(
            "tls_server_config.key_file",
            format!("{}: {e}", key_path.display()),
        )
    })?;
    let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => {
            return Err(err(
                "tls_server_config.key_file",
                "holds no PEM private key",
            ))
        }
        Err(e) => return Err(err("tls_server_config.key_file", e)),
    };
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

/// What a basic-auth check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied,
    /// Too many password checks already running: refused at once rather than queued.
    Busy,
}

/// Basic-auth check. bcrypt is slow on purpose, so:
/// - a successful check is remembered as a keyed digest of the credentials (never the
///   credentials themselves), and that cache is consulted first: a known-good scraper never
///   waits for bcrypt;
/// - at most a few bcrypt checks run at once, on the blocking pool; a check that finds them all
///   busy is answered "busy" immediately, so a flood of wrong passwords can neither queue up nor
///   take more than those threads;
/// - an unknown user is checked against a dummy hash of the configured cost, so the answer
///   time does not tell which users exist.
pub struct Access {
    users: BTreeMap<String, String>,
    cache_key: [u8; 32],
    verified: Mutex<HashSet<Vec<u8>>>,
    checks: Arc<Semaphore>,
    dummy_cost: u32,
    dummy: OnceLock<String>,
}

impl Access {
    pub fn new(users: BTreeMap<String, String>) -> Self {
        let dummy_cost = users
            .values()
            .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
            .map(|p| p.get_cost())
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST);
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        Access {
            users,
            cache_key: rand::random(),
            verified: Mutex::new(HashSet::new()),
            checks: Arc::new(Semaphore::new((parallel / 2).max(1))),
            dummy_cost,
            dummy: OnceLock::new(),
        }
    }

    pub fn required(&self) -> bool {
        !self.users.is_empty()
    }

    /// Checks the request's basic-auth credentials.
    pub async fn check(self: &Arc<Self>, headers: &HeaderMap) -> Verdict {
        if self.users.is_empty() {
            return Verdict::Allowed;
        }
        let Some((user, password)) = basic_credentials(headers) else {
            return Verdict::Denied;
        };
        let Some(digest) = self.digest(&user, &password) else {
            return Verdict::Denied;
        };
        if self.cached(&digest) {
            return Verdict::Allowed;
        }
        let Ok(permit) = self.checks.clone().try_acquire_owned() else {
            return Verdict::Busy;
        };
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            me.verify(&user, &password, digest)
        })
        .await
        .unwrap_or(Verdict::Denied)
    }

    fn digest(&self, user: &str, password: &str) -> Option<Vec<u8>> {
        let mut mac = Hmac::<Sha1>::new_from_slice(&self.cache_key).ok()?;
        mac.update(user.as_bytes());
        mac.update(b"\0");
        mac.update(password.as_bytes());
        Some(mac.finalize().into_bytes().to_vec())
    }

    fn cached(&self, digest: &[u8]) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(digest)
    }

    /// The bcrypt comparison (blocking).
    fn verify(&self, user: &str, password: &str, digest: Vec<u8>) -> Verdict {
        let Some(hash) = self.users.get(user) else {
            let _ = bcrypt::verify(password, self.dummy_hash());
            return Verdict::Denied;
        };
        if !bcrypt::verify(password, hash).unwrap_or(false) {
            return Verdict::Denied;
        }
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= 1024 {
            verified.clear();
        }
        verified.insert(digest);
        Verdict::Allowed
    }

    /// A hash of a random password at the configured cost, made once on first need.
    fn dummy_hash(&self) -> &str {
        self.dummy.get_or_init(|| {
            let password: [u8; 16] = rand::random();
            bcrypt::hash(password, self.dummy_cost).unwrap_or_default()
        })
    }

    /// The cost of the dummy hash (tests).
    pub fn dummy_cost(&self) -> u32 {
        self.dummy_cost
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

    #[tokio::test]
    async fn basic_auth_checks_bcrypt() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let cfg = WebConfig::parse(
            &format!("basic_auth_users:\n  prom: '{hash}'\n"),
            Path::new("."),
        )
        .unwrap();
        let access = Arc::new(cfg.access());
        assert_eq!(
            access.check(&header("prom", "s3cret")).await,
            Verdict::Allowed
        );
        assert_eq!(
            access.check(&header("prom", "s3cret")).await,
            Verdict::Allowed,
            "cached"
        );
        assert_eq!(
            access.check(&header("prom", "wrong")).await,
            Verdict::Denied
        );
        assert_eq!(
            access.check(&header("other", "s3cret")).await,
            Verdict::Denied
        );
        assert_eq!(access.check(&HeaderMap::new()).await, Verdict::Denied);
    }

    #[tokio::test]
    async fn unknown_users_cost_as_much_as_known_ones_and_floods_are_turned_away() {
        let hash = bcrypt::hash("s3cret", 5).unwrap();
        let access = Arc::new(Access::new(BTreeMap::from([("prom".to_string(), hash)])));
        // The dummy hash an unknown user is checked against has the configured cost (5), not
        // bcrypt's default (which would make unknown users 32 times slower).
        assert_eq!(access.dummy_cost(), 5);
        assert_eq!(
            access
                .dummy_hash()
                .parse::<bcrypt::HashParts>()
                .unwrap()
                .get_cost(),
            5
        );
        // Learn the good credentials, then hold every check slot: wrong passwords are told
        // "busy" at once, while the cached good credentials still pass.
        assert_eq!(
            access.check(&header("prom", "s3cret")).await,
            Verdict::Allowed
        );
        let held = access
            .checks
            .clone()
            .acquire_many_owned(access.checks.available_permits() as u32)
            .await
            .unwrap();
        assert_eq!(access.check(&header("prom", "wrong")).await, Verdict::Busy);
        assert_eq!(access.check(&header("nobody", "x")).await, Verdict::Busy);
        assert_eq!(
            access.check(&header("prom", "s3cret")).await,
            Verdict::Allowed
        );
        drop(held);
        assert_eq!(
            access.check(&header("prom", "wrong")).await,
            Verdict::Denied
        );
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
            cfg.warnings().iter().any(|w| w.contains("world-readable")),
            "{:?}",
            cfg.warnings()
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let cfg = WebConfig::parse(text, dir.path()).unwrap();
        assert!(cfg.warnings().is_empty());
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
        let e = parse().unwrap_err();
        assert!(
            e.contains("tls_server_config.key_file") && e.contains("holds no PEM private key"),
            "{e}"
        );
        std::fs::write(&key, cert.key_pair.serialize_pem()).unwrap();
        std::fs::write(&crt, "").unwrap();
        let e = parse().unwrap_err();
        assert!(
            e.contains("tls_server_config.cert_file") && e.contains("holds no PEM certificate"),
            "{e}"
        );
        let pem = cert.cert.pem();
        std::fs::write(&crt, &pem[..pem.len() - 30]).unwrap();
        let e = parse().unwrap_err();
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
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let e = WebConfig::load(&fifo).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let text = "tls_server_config:\n  cert_file: /dev/zero\n  key_file: /dev/zero\n";
        let e = WebConfig::parse(text, dir.path()).unwrap_err();
        assert!(
            e.contains("tls_server_config.cert_file") && e.contains("not a regular file"),
            "{e}"
        );
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
