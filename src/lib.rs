//! awareness-exporter: polls security awareness training platforms and serves what it learns
//! as Prometheus metrics. Data flows one way: source → snapshot → store → scrape.

pub mod app;
pub mod config;
pub mod connections;
pub mod demo;
pub mod exposition;
pub mod hardening;
pub mod http;
pub mod landing;
pub mod model;
pub mod poller;
pub mod scrape_body;
pub mod server;
pub mod shard;
pub mod snapshot;
pub mod sources;
pub mod stats;
pub mod store;
pub mod web;
