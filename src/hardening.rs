//! Process hardening done once at start-up: core dumps off, the open-files limit raised and
//! checked against what the server may hold open.
//!
//! Core dumps off: a dump of this process holds vendor tokens, passwords and client secrets in
//! plain memory. `RLIMIT_CORE` 0 stops the kernel from writing one, and `PR_SET_DUMPABLE` 0 also
//! keeps other processes of the same user from attaching a debugger or reading
//! `/proc/<pid>/mem`. Both through rustix's safe wrappers.

/// Disables core dumps for this process. Returns what could not be done (logged by the caller;
/// not fatal: the unit file and the container also set the limit).
pub fn disable_core_dumps() -> Vec<String> {
    use rustix::process::{setrlimit, Resource, Rlimit};
    let mut failed = Vec::new();
    let zero = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    if let Err(e) = setrlimit(Resource::Core, zero) {
        failed.push(format!("cannot set RLIMIT_CORE to 0: {e}"));
    }
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        failed.push(format!("cannot clear the dumpable flag: {e}"));
    }
    failed
}

/// Descriptors kept back for everything that is not a client or vendor connection: the
/// listener, stdio, files being read, the runtime's own.
const OTHER_FILES: u64 = 64;

/// Raises the soft open-files limit to the hard one, as Go programs do at start (systemd's
/// soft default of 1024 is far below what `max_connections` asks for). Returns the soft limit
/// now in force, `None` when unlimited or unknown.
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if limit.maximum != limit.current {
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!("cannot raise the open-files limit to the hard limit: {e}");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// The open-files limit this process will run with (the hard one, which start-up raises the
/// soft one to), for `--check-config`.
pub fn open_files_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum
}

/// `max_connections` clamped so that it, plus `waiting` newcomers, the vendors' connections and
/// a reserve for everything else, fits in `limit` open files; with the warning to log when it
/// was clamped.
pub fn fit_connections(
    max_connections: usize,
    waiting: usize,
    vendor_connections: usize,
    limit: Option<u64>,
) -> (usize, Option<String>) {
    let limit = limit.unwrap_or(u64::MAX);
    let others = waiting as u64 + vendor_connections as u64 + OTHER_FILES;
    let fits = limit.saturating_sub(others).max(1);
    if max_connections as u64 <= fits {
        return (max_connections, None);
    }
    let warning = format!(
        "server.max_connections ({max_connections}) plus {waiting} waiting connections, \
         {vendor_connections} vendor connections and {OTHER_FILES} other files exceed the \
         open-files limit ({limit}); serving at most {fits} connections (raise LimitNOFILE or \
         ulimit -n)"
    );
    (fits as usize, Some(warning))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether core dumps are off for this process: the core limit is 0 and (on Linux) the process
    /// is not dumpable.
    fn core_dumps_disabled() -> bool {
        #[cfg(unix)]
        {
            let limit = rustix::process::getrlimit(rustix::process::Resource::Core);
            if limit.current != Some(0) {
                return false;
            }
        }
        #[cfg(target_os = "linux")]
        {
            use rustix::process::{dumpable_behavior, DumpableBehavior};
            if dumpable_behavior().ok() != Some(DumpableBehavior::NotDumpable) {
                return false;
            }
        }
        true
    }

    #[test]
    fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let hard = getrlimit(Resource::Nofile).maximum;
        let low = Rlimit {
            current: Some(256.min(hard.unwrap_or(256))),
            maximum: hard,
        };
        setrlimit(Resource::Nofile, low).unwrap();
        assert_eq!(raise_open_files_limit(), hard);
        assert_eq!(getrlimit(Resource::Nofile).current, hard);
        assert_eq!(open_files_limit(), hard);
    }

    #[test]
    fn max_connections_is_clamped_to_the_open_files_limit() {
        assert_eq!(fit_connections(512, 64, 100, Some(1_048_576)), (512, None));
        assert_eq!(fit_connections(512, 64, 100, None), (512, None));
        // systemd's soft default with max_connections = 2000 (issue 24).
        let (fits, warning) = fit_connections(2000, 64, 32, Some(1024));
        assert_eq!(fits, 1024 - 64 - 32 - 64);
        let warning = warning.unwrap();
        assert!(warning.contains("server.max_connections (2000)") && warning.contains("(1024)"));
        assert_eq!(fit_connections(10, 64, 32, Some(64)).0, 1);
    }

    #[test]
    fn core_dumps_are_turned_off() {
        assert!(disable_core_dumps().is_empty());
        assert!(core_dumps_disabled());
    }
}
