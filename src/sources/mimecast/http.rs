//! Mimecast's HTTP semantics, as hooks the shared transport calls: its quota headers and its
//! error bodies (read in [`super::errors`]).

use std::time::Duration;

use reqwest::header::HeaderMap;

use crate::http::{VendorError, VendorHttp};

/// Mimecast's rules: `X-RateLimit-Remaining` / `X-RateLimit-Reset` (milliseconds until a call
/// is added back), `fail[]` error bodies in both API generations, HTTP 418 as an expired key
/// binding.
#[derive(Debug, Clone, Copy, Default)]
pub struct MimecastHttp;

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl VendorHttp for MimecastHttp {
    fn rate_limit_reset(&self, headers: &HeaderMap) -> Option<Duration> {
        header_u64(headers, "x-ratelimit-reset").map(Duration::from_millis)
    }

    fn quota_exhausted(&self, headers: &HeaderMap) -> bool {
        header_u64(headers, "x-ratelimit-remaining") == Some(0)
    }

    fn read_error(&self, status: u16, body: &[u8]) -> Option<VendorError> {
        super::errors::read_error_body(status, body)
    }
}
