//! The tenant's request quota (a sliding window) and the `X-RateLimit-*` headers that show it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::header::HeaderValue;
use axum::response::Response;

use super::lock;

/// The quota as one request sees it (sent as `X-RateLimit-*`).
pub(super) struct RateInfo {
    pub(super) allowed: bool,
    pub(super) limit: u32,
    pub(super) remaining: u32,
    pub(super) reset_ms: u64,
}

/// Sliding-window quota: each call is given back `window` after it was made.
pub(super) struct Limiter {
    calls: Mutex<VecDeque<Instant>>,
    limit: u32,
    window: Duration,
}

impl Limiter {
    pub(super) fn new(limit: u32, window: Duration) -> Limiter {
        Limiter {
            calls: Mutex::new(VecDeque::new()),
            limit,
            window,
        }
    }

    /// Looks at the window; with `consume`, an allowed call is counted.
    pub(super) fn check(&self, consume: bool) -> RateInfo {
        let now = Instant::now();
        let mut calls = lock(&self.calls);
        while calls
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            calls.pop_front();
        }
        let used = u32::try_from(calls.len()).unwrap_or(u32::MAX);
        let allowed = used < self.limit;
        if consume && allowed {
            calls.push_back(now);
        }
        let used = u32::try_from(calls.len()).unwrap_or(u32::MAX);
        let reset_ms = calls
            .front()
            .map(|t| {
                let left = self.window.saturating_sub(now.duration_since(*t));
                u64::try_from(left.as_micros().div_ceil(1000)).unwrap_or(u64::MAX)
            })
            .unwrap_or(0);
        RateInfo {
            allowed,
            limit: self.limit,
            remaining: self.limit.saturating_sub(used),
            reset_ms,
        }
    }
}

/// `X-RateLimit-Limit`, `-Remaining` and `-Reset` (milliseconds, as Mimecast sends it).
pub(super) fn with_rate_headers(mut resp: Response, info: &RateInfo) -> Response {
    let h = resp.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(info.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(info.remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(info.reset_ms));
    resp
}
