//! `--demo`: the simulated tenants of the `awareness-sim` crate on loopback, polled through the
//! real clients with a config that goes through the real loader. Only with the `demo` feature
//! (on by default); without it `--demo` is refused, saying why.

use crate::config::Config;

/// The running demo tenants; they stop when this is dropped.
#[cfg(feature = "demo")]
pub use awareness_sim::demo::Demo;

/// A binary without the `demo` feature has no demo to hold.
#[cfg(not(feature = "demo"))]
pub enum Demo {}

/// Starts the demo tenants and loads their config, validated like a user's file; the error is
/// meant for the user.
pub async fn start() -> Result<(Demo, Config), String> {
    #[cfg(feature = "demo")]
    {
        let demo = Demo::start()
            .await
            .map_err(|e| format!("cannot start the demo tenants: {e}"))?;
        let loader = crate::sources::registry::loader();
        let config = loader.parse(&demo.config_text(), "<demo>");
        Ok((demo, config.map_err(|e| e.to_string())?))
    }
    #[cfg(not(feature = "demo"))]
    {
        Err(
            "--demo is not available: this awareness-exporter was built without the `demo` \
             feature (the simulated tenants); rebuild with default features, or run with \
             --config.file to poll real accounts"
                .to_string(),
        )
    }
}
