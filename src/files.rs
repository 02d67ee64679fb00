//! Reading the files a user points us at (config, secrets, web config, certificates and keys):
//! the one way to do it, because any of them may be a FIFO, a device or a huge file.
//!
//! - opened without blocking (`O_NONBLOCK`: opening a FIFO with no writer would wait for ever)
//!   and refused unless it is a regular file (so no FIFO, `/dev/zero`, socket or terminal);
//! - read up to [`MAX_BYTES`], refused above;
//! - on a thread of its own, waited for at most [`DEADLINE`] (a hung network or FUSE mount
//!   leaves that thread behind instead of the caller).
//!
//! Blocking: call it off the runtime workers (`spawn_blocking`, or a plain thread).

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use zeroize::Zeroizing;

/// The largest file we read (configs, secrets, PEM files are all far smaller).
pub(crate) const MAX_BYTES: u64 = 1024 * 1024;

/// How long a read may take before we give up on it.
pub(crate) const DEADLINE: Duration = Duration::from_secs(5);

/// Why a file was not read, in plain words that never show its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FileError {
    #[error("no such file")]
    Missing,
    #[error("permission denied (check the file's owner and mode)")]
    Denied,
    #[error("it is a folder, not a file")]
    Folder,
    #[error("it is not a regular file (a FIFO, a device or a socket)")]
    NotRegular,
    #[error("it is larger than 1 MiB")]
    TooLarge,
    #[error("it is not UTF-8 text")]
    NotText,
    #[error("it could not be read within {} s", DEADLINE.as_secs())]
    TooSlow,
    /// Any other OS error, in the OS's words.
    #[error("{0}")]
    Io(String),
}

impl From<std::io::Error> for FileError {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        match e.kind() {
            NotFound => FileError::Missing,
            PermissionDenied => FileError::Denied,
            // The OS message without Rust's "(os error N)".
            _ => {
                let text = e.to_string().to_lowercase();
                let text = text.split_once(" (os error").map_or(&*text, |(t, _)| t);
                FileError::Io(text.to_string())
            }
        }
    }
}

/// The bytes of the regular file at `path` (see the module's rules), zeroized when dropped.
pub(crate) fn read(path: &Path) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let path = path.to_path_buf();
    within(DEADLINE, move || read_now(&path))
}

/// [`read`], as UTF-8 text (a copy, zeroized when dropped as the bytes are).
pub(crate) fn read_text(path: &Path) -> Result<Zeroizing<String>, FileError> {
    let bytes = read(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| FileError::NotText)?;
    Ok(Zeroizing::new(text.to_owned()))
}

fn read_now(path: &Path) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let flags = (rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits() as i32;
    let mut options = std::fs::OpenOptions::new();
    let file = options.read(true).custom_flags(flags).open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(FileError::Folder);
    }
    if !meta.is_file() {
        return Err(FileError::NotRegular);
    }
    if meta.len() > MAX_BYTES {
        return Err(FileError::TooLarge);
    }
    // Sized up front so the buffer never moves (a move would leave an unzeroized copy).
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_BYTES.min(meta.len() + 1) as usize));
    file.take(MAX_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(FileError::TooLarge);
    }
    Ok(bytes)
}

/// Who besides the exporter may read the file at `path`, in words with its mode ("other users
/// (mode 0644)"), or `None` when nobody may. Group bits count unless the file's group is the
/// exporter's own (effective) group: Kubernetes mounts secrets `0440` with the pod's `fsGroup`,
/// and a service account's own group is how a unit file shares a key with it. Only the
/// metadata is read, never the content.
pub(crate) fn open_to_others(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let mode = meta.mode() & 0o7777;
    let own_group = meta.gid() == rustix::process::getegid().as_raw();
    let who = if mode & 0o007 != 0 {
        "other users"
    } else if mode & 0o070 != 0 && !own_group {
        "its group, which is not the exporter's own"
    } else {
        return None;
    };
    Some(format!("{who} (mode {mode:04o})"))
}

/// Runs `work` on a thread of its own and waits for it at most `deadline`.
fn within<T: Send + 'static>(
    deadline: Duration,
    work: impl FnOnce() -> Result<T, FileError> + Send + 'static,
) -> Result<T, FileError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new().name("file-read".into());
    thread.spawn(move || tx.send(work()))?;
    rx.recv_timeout(deadline).unwrap_or(Err(FileError::TooSlow))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_and_everything_else_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok");
        std::fs::write(&ok, "s3cret\n").unwrap();
        assert_eq!(&**read_text(&ok).unwrap(), "s3cret\n");

        // A FIFO without a writer: a plain open would block for ever.
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(read(&fifo).unwrap_err(), FileError::NotRegular);
        // Endless devices.
        assert_eq!(
            read(Path::new("/dev/zero")).unwrap_err(),
            FileError::NotRegular
        );
        assert_eq!(
            read(Path::new("/dev/urandom")).unwrap_err(),
            FileError::NotRegular
        );

        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; MAX_BYTES as usize + 1]).unwrap();
        assert_eq!(read(&big).unwrap_err(), FileError::TooLarge);
        std::fs::write(&big, vec![b'a'; MAX_BYTES as usize]).unwrap();
        assert_eq!(read(&big).unwrap().len(), MAX_BYTES as usize);

        assert_eq!(read(dir.path()).unwrap_err(), FileError::Folder);
        assert_eq!(
            read(&dir.path().join("none")).unwrap_err(),
            FileError::Missing
        );
        std::fs::write(&ok, [0xff, 0xfe]).unwrap();
        assert_eq!(read_text(&ok).unwrap_err(), FileError::NotText);
    }

    #[test]
    fn other_os_errors_are_told_in_the_os_words_alone() {
        let e = FileError::from(std::io::Error::from_raw_os_error(11));
        assert_eq!(e.to_string(), "resource temporarily unavailable");
    }

    #[test]
    fn a_read_that_hangs_is_given_up_at_the_deadline() {
        let (_hold, wait) = std::sync::mpsc::channel::<()>();
        let r: Result<(), _> = within(Duration::from_millis(20), move || {
            let _ = wait.recv();
            Ok(())
        });
        assert_eq!(r.unwrap_err(), FileError::TooSlow);
    }
}
