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
