//! Process hardening done once at start-up.
//!
//! Core dumps off: a dump of this process holds vendor tokens, passwords and client secrets in
//! plain memory. `RLIMIT_CORE` 0 stops the kernel from writing one, and `PR_SET_DUMPABLE` 0 also
//! keeps other processes of the same user from attaching a debugger or reading
//! `/proc/<pid>/mem`. Both through rustix's safe wrappers.

/// Disables core dumps for this process. Returns what could not be done (logged by the caller;
/// not fatal: the unit file and the container also set the limit).
pub fn disable_core_dumps() -> Vec<String> {
    let mut failed = Vec::new();
    #[cfg(unix)]
    {
        use rustix::process::{setrlimit, Resource, Rlimit};
        let zero = Rlimit {
            current: Some(0),
            maximum: Some(0),
        };
        if let Err(e) = setrlimit(Resource::Core, zero) {
            failed.push(format!("cannot set RLIMIT_CORE to 0: {e}"));
        }
    }
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{set_dumpable_behavior, DumpableBehavior};
        if let Err(e) = set_dumpable_behavior(DumpableBehavior::NotDumpable) {
            failed.push(format!("cannot clear the dumpable flag: {e}"));
        }
    }
    failed
}

/// Whether core dumps are off for this process: the core limit is 0 and (on Linux) the process
/// is not dumpable.
pub fn core_dumps_disabled() -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_dumps_are_turned_off() {
        assert!(disable_core_dumps().is_empty());
        assert!(core_dumps_disabled());
    }
}
