//! `--demo`: the simulated tenants of the `awareness-sim` crate on loopback, polled through the
//! real clients with a config that goes through the real loader. Only with the `demo` feature
//! (on by default); without it `--demo` is refused with [`UNAVAILABLE`].

use crate::config::Config;

/// Why `--demo` is refused by a binary built with `--no-default-features`.
pub const UNAVAILABLE: &str = "--demo is not available: this awareness-exporter was built without \
     the `demo` feature (the simulated tenants); rebuild with default features, or run with \
     --config.file to poll real accounts";

/// The running demo tenants; they stop when this is dropped.
#[cfg(feature = "demo")]
pub struct Demo {
    tenants: awareness_sim::demo::Demo,
}

#[cfg(feature = "demo")]
impl Demo {
    pub async fn start() -> std::io::Result<Demo> {
        Ok(Demo {
            tenants: awareness_sim::demo::Demo::start().await?,
        })
    }

    /// The simulated tenants (servers, their controls and config blocks).
    pub fn tenants(&self) -> &awareness_sim::demo::Demo {
        &self.tenants
    }

    /// The demo config, loaded and validated like a user's file.
    pub fn config(&self) -> Result<Config, crate::config::ConfigError> {
        crate::sources::registry::loader().parse(&self.tenants.config_text(), "<demo>")
    }
}

/// A binary without the `demo` feature has no demo to hold.
#[cfg(not(feature = "demo"))]
pub enum Demo {}

/// Starts the demo tenants and loads their config; the error is meant for the user.
pub async fn start() -> Result<(Demo, Config), String> {
    #[cfg(feature = "demo")]
    {
        let demo = Demo::start()
            .await
            .map_err(|e| format!("cannot start the demo tenants: {e}"))?;
        let config = demo.config().map_err(|e| e.to_string())?;
        Ok((demo, config))
    }
    #[cfg(not(feature = "demo"))]
    {
        Err(UNAVAILABLE.to_string())
    }
}
