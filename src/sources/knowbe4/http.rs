//! KnowBe4's HTTP semantics, as hooks the shared transport calls. KnowBe4 sends no rate-limit
//! headers and documents no error body: so the account paces itself (4 a second, 50 a
//! minute), counts its requests against the daily quota, says how long a 429 without
//! `Retry-After` means ([`rate_limited_wait`]), and explains refusals in its own terms.

use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use rand::Rng;

use super::budget::{daily_quota, rate_limited_wait, DailyCount, Pacer, Window};
use super::config::KnowBe4Config;
use crate::http::{VendorError, VendorHttp};
use crate::model::{FailureReason, FetchError, Retry};
use crate::sources::aggregate::lock;

/// One account's request budget and the meaning of its answers.
pub struct KnowBe4Http {
    pub(crate) daily: DailyCount,
    pacer: Pacer,
    /// Seats from the latest good `/v1/account` (the quota is 2,000 plus these), or the
    /// configured `licensed_users` before it.
    pub(crate) seats: Mutex<Option<u64>>,
    /// The window the first 429 of a run of them most likely meant.
    first_window: Mutex<Option<Window>>,
    /// The host, and the configured region: where a refused key was refused.
    host: String,
}

impl KnowBe4Http {
    pub fn new(config: &KnowBe4Config) -> Self {
        let region = config
            .region
            .as_ref()
            .map(|r| format!(" (region = \"{r}\")"));
        KnowBe4Http {
            daily: DailyCount::default(),
            pacer: Pacer::new(config.requests_per_second, config.requests_per_minute),
            seats: Mutex::new(config.licensed_users),
            first_window: Mutex::new(None),
            host: crate::sources::public_url(&config.base_url) + &region.unwrap_or_default(),
        }
    }

    /// The daily quota as known now: 2,000 plus the seats.
    pub(crate) fn quota(&self) -> u64 {
        daily_quota(*lock(&self.seats))
    }
}

impl VendorHttp for KnowBe4Http {
    /// A 401 names the host and the region hint: a key of an account on another region's host
    /// is refused like a wrong key.
    fn read_error(&self, status: u16, _body: &[u8]) -> Option<VendorError> {
        let detail = match status {
            401 => format!(
                "KnowBe4 refused the Reporting API key: the key is wrong or disabled, or the \
                 account lives in another region than {} (regions: us, eu, ca, uk, de; the \
                 console at training.knowbe4.com is us, eu.knowbe4.com is eu, and so on)",
                self.host
            ),
            403 => "the key may not read this endpoint (the Reporting API needs a Platinum or \
                    Diamond subscription)"
                .into(),
            404 => "not found on this host".into(),
            406 => "KnowBe4 wants Accept: application/json".into(),
            503 => "KnowBe4 is offline for maintenance".into(),
            _ => return None,
        };
        Some(VendorError {
            detail,
            reason: None,
            retry: Retry::Backoff,
        })
    }

    /// Two (long) seconds when we were sending at the per-second limit, else the minute
    /// window, doubling for each further 429 of the same request.
    fn rate_limited_wait(&self, refused: u32) -> Option<Duration> {
        let mut first = lock(&self.first_window);
        let window = match *first {
            Some(w) if refused > 1 => w,
            _ => *first.insert(self.pacer.likely_window()),
        };
        let jitter = rand::thread_rng().gen_range(0.0..1.0);
        Some(rate_limited_wait(refused, window, jitter))
    }

    /// Every attempt waits for the pace and counts against the daily quota; none is sent
    /// once the quota is spent (not before the next interval).
    fn before_send(&self) -> BoxFuture<'_, Result<(), FetchError>> {
        Box::pin(async move {
            let quota = self.quota();
            if self.daily.used() >= quota {
                let message = format!(
                    "daily quota spent: {quota} requests (2,000 + licensed users) in the last 24 \
                     hours; no request sent"
                );
                return Err(FetchError {
                    retry: Retry::NextInterval,
                    ..FetchError::new(FailureReason::RateLimited, message)
                });
            }
            self.pacer.acquire().await;
            self.daily.record();
            Ok(())
        })
    }
}
