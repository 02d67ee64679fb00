//! awareness-exporter: polls security awareness training platforms and serves what it learns
//! as Prometheus metrics. Data flows one way: source → snapshot → store → scrape.

// Production code never panics on a value it could not get; tests may (clippy.toml). Here and
// not in Cargo.toml's [lints]: clippy counts only `#[test]` functions and `#[cfg(test)]` modules
// as tests, so a package-wide deny would also hit every helper of tests/, benches/, examples/.
#![deny(clippy::unwrap_used, clippy::expect_used)]
// Every `pub` item is reachable from the crate root (else it is `pub(crate)`/`pub(super)`).
#![deny(unreachable_pub)]

pub mod app;
pub mod config;
pub(crate) mod connections;
pub mod demo;
pub mod exposition;
pub(crate) mod files;
pub mod hardening;
pub mod http;
pub mod landing;
pub mod model;
pub mod poller;
pub(crate) mod scrape_body;
pub mod server;
pub mod shard;
pub mod snapshot;
pub mod sources;
pub(crate) mod state;
pub mod stats;
pub mod store;
pub mod web;
