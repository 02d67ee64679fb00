//! Restart state (`[server] state_dir`): each account's last good sections, with their success
//! times, and its quota ledger, kept in one file per account so a restart serves the same
//! series at once and polls no vendor before the interval is due. A file is written whole or
//! not at all (temporary file, fsync, rename), mode 0600; it holds encoded metrics and
//! timestamps, never a credential. A file that is missing, unreadable, corrupt, of another
//! format version or of another account is logged once with the reason and ignored.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::model::SourceKey;
use crate::snapshot::Rendered;
use crate::sources::Source;
use crate::store::Store;

/// The format of the files; another version is ignored. 2: the identity covers the account.
const VERSION: u32 = 2;
/// Largest state file read back: what a very large tenant's per-user series take.
const MAX_BYTES: u64 = 1 << 30;
/// Why a file of another account, or of another identity, is ignored (and removed).
const ANOTHER: &str =
    "saved for another account or another vendor URL, account id or metrics settings; removed";
/// Longest a save or a load may take before the poller goes on without it.
const DEADLINE: Duration = Duration::from_secs(30);

/// A file's content.
#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    /// The account and what its data depends on (see `poller::Settings::identity`).
    identity: String,
    /// The end of the source's last fully successful poll.
    last_success: Option<SystemTime>,
    sections: Vec<SavedSection>,
    /// The vendor's request ledger (KnowBe4's daily count), as the source gives it.
    ledger: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
struct SavedSection {
    name: String,
    success_at: SystemTime,
    data: Arc<Rendered>,
}

/// What a source's poller needs of the state directory.
#[derive(Clone)]
pub(crate) struct SourceState {
    pub(crate) dir: PathBuf,
    pub(crate) identity: String,
    /// Serve the saved state at start (a new source), or not (a changed one polls at once).
    pub(crate) restore: bool,
}

/// `<platform>-<digest of the account name>.json` in `dir`: any account name gives a safe file
/// name.
fn path(dir: &Path, key: &SourceKey) -> PathBuf {
    use sha1::{Digest, Sha1};
    let digest = format!("{:x}", Sha1::digest(key.account.as_bytes()));
    dir.join(format!("{}-{}.json", key.platform, &digest[..16]))
}

/// Removes the files in `dir` (and temporary files a crash left behind) of accounts not in
/// `keep`: left by an earlier config, or removed by a reload. Those of `keep` stay, so a save
/// under way is not disturbed.
pub(crate) fn prune(dir: &Path, keep: &[&SourceKey]) {
    let keep: Vec<PathBuf> = keep.iter().map(|k| path(dir, k)).collect();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.flatten().map(|e| e.path()) {
        let ours = path.extension().is_some_and(|e| e == "json" || e == "tmp");
        if ours && !keep.contains(&path.with_extension("json")) {
            tracing::info!(file = %path.display(), "removing the state of an account no longer polled here");
            let _ = std::fs::remove_file(&path);
        }
    }
}

impl SourceState {
    fn write(&self, key: &SourceKey, file: &StateFile) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let path = path(&self.dir, key);
        let tmp = path.with_extension("tmp");
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        out.write_all(&serde_json::to_vec(file)?)?;
        out.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        // The rename itself must survive a crash too.
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// The file of `key`, if it is one of ours for this account and identity; otherwise the
    /// reason, and a file of another account or identity is removed.
    fn read(&self, key: &SourceKey) -> Result<Option<StateFile>, String> {
        let path = path(&self.dir, key);
        let meta = match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            meta => meta.map_err(|e| format!("cannot read it: {e}"))?,
        };
        if !meta.is_file() || meta.len() > MAX_BYTES {
            return Err("not a regular file of a plausible size".into());
        }
        let mut text = Vec::new();
        let file = std::fs::File::open(&path);
        let read = file.and_then(|f| f.take(MAX_BYTES).read_to_end(&mut text));
        read.map_err(|e| format!("cannot read it: {e}"))?;
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let corrupt = |e: serde_json::Error| format!("truncated or corrupt: {e}");
        let Version { version } = serde_json::from_slice(&text).map_err(corrupt)?;
        if version != VERSION {
            return Err(format!(
                "format version {version} (this exporter reads {VERSION})"
            ));
        }
        let state: StateFile = serde_json::from_slice(&text).map_err(corrupt)?;
        if state.identity != self.identity {
            let _ = std::fs::remove_file(&path);
            return Err(ANOTHER.into());
        }
        Ok(Some(state))
    }

    /// Serves the saved sections of `source` (registered and configured in `store`) and gives
    /// it back its ledger; returns when each restored section last succeeded.
    pub(crate) async fn load(
        &self,
        source: &Arc<dyn Source>,
        store: &Store,
    ) -> BTreeMap<&'static str, SystemTime> {
        let (key, this) = (source.key().clone(), self.clone());
        let state = match off_thread(move || this.read(&key)).await {
            Ok(Some(state)) => state,
            Ok(None) => {
                tracing::info!("no saved state; polling now");
                return BTreeMap::new();
            }
            Err(reason) => {
                tracing::warn!(reason, "saved state ignored; polling now");
                return BTreeMap::new();
            }
        };
        let sections = state.sections.into_iter();
        let sections = sections.map(|s| (s.name, s.success_at, s.data)).collect();
        let restored = store.restore(source.key(), sections, state.last_success);
        if let Some(ledger) = state.ledger {
            source.restore_ledger(ledger);
        }
        tracing::info!(sections = ?restored.keys().collect::<Vec<_>>(), "saved state served");
        restored
    }

    /// Saves what `store` publishes of `source` now, and its ledger.
    pub(crate) async fn save(&self, source: &Arc<dyn Source>, store: &Store) {
        let key = source.key().clone();
        let Some(status) = store.status(&key, SystemTime::now()) else {
            return; // removed by a reload
        };
        let sections = status.sections.into_iter().filter_map(|(name, s)| {
            Some(SavedSection {
                name: name.to_string(),
                success_at: s.last_success?,
                data: s.data?,
            })
        });
        let file = StateFile {
            version: VERSION,
            identity: self.identity.clone(),
            last_success: status.last_success,
            sections: sections.collect(),
            ledger: source.ledger(),
        };
        let this = self.clone();
        let write = move || this.write(&key, &file).map_err(|e| e.to_string());
        if let Err(error) = off_thread(write).await {
            tracing::warn!(error, "cannot save the state");
        }
    }
}
/// Runs file work on the blocking pool under [`DEADLINE`]: a hung disk cannot stop a poller.
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    match tokio::time::timeout(DEADLINE, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(format!("the file task failed: {e}")),
        Err(_) => Err("the file took too long".into()),
    }
}
