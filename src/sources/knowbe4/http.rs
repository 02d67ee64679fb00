//! KnowBe4's HTTP semantics, as hooks the shared transport calls. KnowBe4 sends no rate-limit
//! headers and documents no error body; a 429 that carries no `Retry-After` is handed back to
//! the client, which waits for what the documented limits imply
//! ([`super::budget::rate_limited_wait`]) instead of the transport's one-second backoff.

use crate::http::VendorHttp;

/// KnowBe4's rules: plain HTTP (401/403 are auth), except that a 429 without `Retry-After` is
/// not retried by the transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct KnowBe4Http;

impl VendorHttp for KnowBe4Http {
    fn retries_unexplained_429(&self) -> bool {
        false
    }
}
