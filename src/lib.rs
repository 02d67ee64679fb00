//! awareness-exporter: polls security awareness training platforms and serves what it learns
//! as Prometheus metrics. Data flows one way: source → snapshot → store → scrape.

// Production code never panics on a value it could not get; tests may (clippy.toml). Here and
// not in Cargo.toml's [lints]: clippy counts only `#[test]` functions and `#[cfg(test)]` modules
// as tests, so a package-wide deny would also hit every helper of tests/, benches/, examples/.
#![deny(clippy::unwrap_used, clippy::expect_used)]
// The library's surface is app, config, demo, hardening and model, the binary's re-exports
// below, and `testing` (the insides tests, benches and examples use). Every other module is
// crate-private, so the compiler finds dead code; every `pub` item is reachable from the root.
#![deny(unreachable_pub)]

pub mod app;
pub mod config;
pub(crate) mod connections;
pub mod demo;
pub(crate) mod exposition;
pub(crate) mod files;
pub mod hardening;
pub(crate) mod http;
pub(crate) mod landing;
pub mod model;
pub(crate) mod poller;
pub(crate) mod scrape_body;
pub(crate) mod server;
pub(crate) mod shard;
pub(crate) mod snapshot;
pub(crate) mod sources;
pub(crate) mod state;
pub(crate) mod stats;
pub(crate) mod store;
pub mod testing;
pub(crate) mod web;

// The binary's few needs beyond the surface modules.
pub use connections::WAITING_ROOM;
pub use shard::Shard;
pub use sources::registry;
pub use web::{WebConfig, WebSettings};
