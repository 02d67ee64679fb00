//! Environment overrides. In a test binary of its own: environment variables are process-wide
//! and would leak into the other config tests running in parallel.

use std::time::Duration;

use awareness_exporter::config;

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own large error
fn environment_overrides_scalar_keys() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("AWARENESS_POLL__INTERVAL", "15m");
        jail.set_env("AWARENESS_METRICS__PER_USER", "true");
        let c = config::parse("", "t.toml").unwrap();
        assert_eq!(c.poll.interval, Duration::from_secs(900));
        assert!(c.metrics.per_user);
        jail.set_env("AWARENESS_POLL__BOGUS", "1");
        let e = config::parse("", "t.toml").unwrap_err().to_string();
        assert!(e.contains("bogus") || e.contains("BOGUS"), "{e}");
        Ok(())
    });
}

/// What the variables' names do, pinned: the prefix in any case, `__` between section and key,
/// only [server], [poll] and [metrics], a variable with an empty part ignored; a problem names
/// the key and the variable (in upper case), never the value.
#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own large error
fn environment_override_names_and_messages() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("awareness_poll__timeout", "90s");
        jail.set_env("AWARENESS_SERVER__LISTEN", "127.0.0.1:9999");
        jail.set_env("AWARENESS_METRICS__MAX_USERS", "7");
        // Not overridable, and an empty part: both ignored.
        jail.set_env("AWARENESS_CYBERPILOT__TOKEN", "SENTINEL-ENV-1");
        jail.set_env("AWARENESS_POLL____INTERVAL", "SENTINEL-ENV-2");
        let c = config::parse("", "t.toml").unwrap();
        assert_eq!(c.poll.timeout, Duration::from_secs(90));
        assert_eq!(c.server.listen, "127.0.0.1:9999");
        assert_eq!(c.metrics.max_users, 7);
        assert_eq!(c.poll.interval, config::PollConfig::default().interval);

        jail.set_env("Awareness_Poll__Max_Age", "SENTINEL-ENV-3");
        jail.set_env("AWARENESS_METRICS__PER_USERS", "true");
        let e = config::parse("", "t.toml").unwrap_err().to_string();
        assert!(
            e.contains("`poll.max_age`")
                && e.contains("must be a duration in quotes")
                && e.contains("(set by environment variable AWARENESS_POLL__MAX_AGE)"),
            "{e}"
        );
        assert!(
            e.contains("`metrics.per_users`")
                && e.contains("did you mean `per_user`?")
                && e.contains("(set by environment variable AWARENESS_METRICS__PER_USERS)"),
            "{e}"
        );
        assert!(!e.contains("SENTINEL"), "{e}");
        Ok(())
    });
}
