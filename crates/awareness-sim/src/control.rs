//! Fault injection and request accounting shared by the simulated vendor servers.
//!
//! Every method takes `&self`: a test holds the `Arc<Control>` of a running [`super::SimServer`]
//! and flips faults while the exporter polls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// A misbehaviour the simulated server shows until cleared.
///
/// "Data requests" are the report endpoints (CyberPilot `users-summary`, every Mimecast
/// `/api/...` call); token endpoints are only affected by [`Fault::Down`] and
/// [`Fault::TokenFailure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Every request (token endpoints included) answers 503 with an empty body.
    /// See also [`Control::set_refuse`], which closes connections instead.
    Down,
    /// Sleep this long before answering each data request.
    Slow(Duration),
    /// The next `times` data requests answer this HTTP status.
    Status { code: u16, times: u32 },
    /// The next `times` data requests answer 429: CyberPilot with `Retry-After` (seconds, rounded
    /// up), Mimecast with `X-RateLimit-Remaining: 0` and `X-RateLimit-Reset: reset_ms`.
    RateLimit { times: u32, reset_ms: u64 },
    /// Successful data answers are cut in the middle of the JSON (with a matching Content-Length).
    Truncated,
    /// Data answers are `<html>oops</html>` (HTTP 200, `text/html`).
    Malformed,
    /// Every 10th row (0-based position `p` in the full listing with `p % 10 == 9`) carries values
    /// of the wrong JSON type; see [`is_garbage_row`].
    WrongTypes,
    /// Successful data answers are padded with an ignored `_padding` string so that the body is
    /// at least this many bytes.
    HugeBody(usize),
    /// Paging never ends: CyberPilot's `count` keeps growing past every page, Mimecast always
    /// returns a `next` token (rows wrap around).
    EndlessPaging,
    /// Token endpoints answer 400 `{"error":"invalid_client"}`; a Mimecast HMAC tenant answers
    /// every data request 401 `err_xdk_invalid_signature` (revoked keys).
    TokenFailure,
    /// The `page`-th page (1-based: `offset / page_size + 1`) of the endpoint whose path ends with
    /// `endpoint` answers 500, every time it is asked for.
    FailPage { endpoint: String, page: u32 },
    /// HTTP 200 carrying an error: Mimecast `meta.status` 500 with `fail[].errors[]` code
    /// `err_internal` and empty data; CyberPilot `{"error": "..."}` with no `result`.
    ErrorIn200,
    /// Mimecast only: the endpoint whose path ends with `endpoint` answers HTTP 200 with
    /// `fail[].errors[]` code `err_feature_not_enabled`.
    NotLicensed { endpoint: String },
}

/// True when the row at 0-based position `position` of a listing is garbled under
/// [`Fault::WrongTypes`].
pub fn is_garbage_row(position: usize) -> bool {
    position % 10 == 9
}

#[derive(Default)]
struct Counters {
    by_path: HashMap<String, u64>,
}

/// Shared fault injection and request accounting for one simulated server.
#[derive(Default)]
pub struct Control {
    faults: Mutex<Vec<Fault>>,
    latency_us: AtomicU64,
    counters: Mutex<Counters>,
    total: AtomicU64,
    tokens: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    /// Requests answered and the sum of their times from arrival to answer, in µs (what a
    /// client sees as the vendor's latency, before the bytes travel).
    answered: AtomicU64,
    answer_time_us: AtomicU64,
    /// Benchmarks: replay answers from memory (see [`crate::answer_cache`]).
    answer_cache_on: AtomicBool,
    answers: crate::answer_cache::AnswerCache,
    token_generation: AtomicU64,
    refuse: AtomicBool,
    /// Where the server listens (set once it runs), to bind again after refusing.
    listen_addr: Mutex<Option<std::net::SocketAddr>>,
    /// A listener bound again by `set_refuse(false)`, picked up by the accept loop.
    rebound: Mutex<Option<std::net::TcpListener>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("faults", &*lock(&self.faults))
            .field("total_requests", &self.total_requests())
            .field("refuse", &self.refusing())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Control {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `f` inside the crate (the demo's scripted imperfections), whatever the features.
    pub(crate) fn push_fault(&self, f: Fault) {
        lock(&self.faults).push(f);
    }

    /// Latency added to every request, token endpoints included.
    pub fn set_latency(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.latency_us.store(us, Ordering::Relaxed);
    }

    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.load(Ordering::Relaxed))
    }

    /// For benchmarks: when on, a 200 answer already given to the same request is replayed
    /// from memory after the same latency, so the simulator's own JSON building leaves the
    /// exporter's cores (a real vendor builds its pages elsewhere). Faults, quotas and
    /// authentication are bypassed by a replayed answer. Turning it off forgets the answers.
    pub fn set_answer_cache(&self, on: bool) {
        self.answer_cache_on.store(on, Ordering::SeqCst);
        if !on {
            self.answers.clear();
        }
    }

    pub(crate) fn answer_cache_on(&self) -> bool {
        self.answer_cache_on.load(Ordering::SeqCst)
    }

    pub(crate) fn answers(&self) -> &crate::answer_cache::AnswerCache {
        &self.answers
    }

    pub(crate) fn attach(&self, addr: std::net::SocketAddr) {
        *lock(&self.listen_addr) = Some(addr);
    }

    pub(crate) fn take_rebound(&self) -> Option<std::net::TcpListener> {
        lock(&self.rebound).take()
    }

    pub fn refusing(&self) -> bool {
        self.refuse.load(Ordering::SeqCst)
    }

    /// Requests received whose path ends with `endpoint_suffix`, whatever their answer.
    pub fn requests(&self, endpoint_suffix: &str) -> u64 {
        lock(&self.counters)
            .by_path
            .iter()
            .filter(|(path, _)| path.ends_with(endpoint_suffix))
            .map(|(_, n)| *n)
            .sum()
    }

    pub fn total_requests(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    /// Requests to the token endpoint (`/oauth/token`).
    pub fn token_requests(&self) -> u64 {
        self.tokens.load(Ordering::SeqCst)
    }

    /// Highest number of requests being handled at the same time since the last reset.
    pub fn max_in_flight(&self) -> u64 {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn reset_counters(&self) {
        lock(&self.counters).by_path.clear();
        self.total.store(0, Ordering::SeqCst);
        self.tokens.store(0, Ordering::SeqCst);
        self.max_in_flight
            .store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
        self.answered.store(0, Ordering::SeqCst);
        self.answer_time_us.store(0, Ordering::SeqCst);
    }

    /// The mean time from a request's arrival to its answer since the last
    /// [`reset_counters`](Self::reset_counters): the latency the server really gave (the
    /// configured one, rounded by the timer, plus building the answer when that took longer).
    pub fn mean_answer_time(&self) -> Option<Duration> {
        let n = self.answered.load(Ordering::SeqCst);
        (n > 0).then(|| Duration::from_micros(self.answer_time_us.load(Ordering::SeqCst) / n))
    }

    /// Generation stamped on issued tokens; a token is valid only while it matches.
    pub fn token_generation(&self) -> u64 {
        self.token_generation.load(Ordering::SeqCst)
    }

    /// Account for a request; the returned guard tracks it as in flight until dropped.
    pub fn begin(&self, path: &str, is_token: bool) -> InFlight<'_> {
        *lock(&self.counters)
            .by_path
            .entry(path.to_string())
            .or_insert(0) += 1;
        self.total.fetch_add(1, Ordering::SeqCst);
        if is_token {
            self.tokens.fetch_add(1, Ordering::SeqCst);
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight {
            control: self,
            started: std::time::Instant::now(),
        }
    }

    fn any(&self, pred: impl Fn(&Fault) -> bool) -> bool {
        lock(&self.faults).iter().any(pred)
    }

    pub fn is_down(&self) -> bool {
        self.any(|f| matches!(f, Fault::Down))
    }

    /// Sum of the active [`Fault::Slow`] delays.
    pub fn slow_delay(&self) -> Duration {
        lock(&self.faults)
            .iter()
            .filter_map(|f| match f {
                Fault::Slow(d) => Some(*d),
                _ => None,
            })
            .sum()
    }

    /// Consume one [`Fault::Status`] answer, if any is left.
    pub fn take_status(&self) -> Option<u16> {
        let mut faults = lock(&self.faults);
        let pos = faults
            .iter()
            .position(|f| matches!(f, Fault::Status { times, .. } if *times > 0))?;
        let mut code = None;
        let mut exhausted = false;
        if let Some(Fault::Status { code: c, times }) = faults.get_mut(pos) {
            *times -= 1;
            code = Some(*c);
            exhausted = *times == 0;
        }
        if exhausted {
            faults.remove(pos);
        }
        code
    }

    /// Consume one [`Fault::RateLimit`] answer, if any is left; gives its `reset_ms`.
    pub fn take_rate_limit(&self) -> Option<u64> {
        let mut faults = lock(&self.faults);
        let pos = faults
            .iter()
            .position(|f| matches!(f, Fault::RateLimit { times, .. } if *times > 0))?;
        let mut reset = None;
        let mut exhausted = false;
        if let Some(Fault::RateLimit { times, reset_ms }) = faults.get_mut(pos) {
            *times -= 1;
            reset = Some(*reset_ms);
            exhausted = *times == 0;
        }
        if exhausted {
            faults.remove(pos);
        }
        reset
    }

    pub fn truncated(&self) -> bool {
        self.any(|f| matches!(f, Fault::Truncated))
    }

    pub fn malformed(&self) -> bool {
        self.any(|f| matches!(f, Fault::Malformed))
    }

    pub fn wrong_types(&self) -> bool {
        self.any(|f| matches!(f, Fault::WrongTypes))
    }

    pub fn endless_paging(&self) -> bool {
        self.any(|f| matches!(f, Fault::EndlessPaging))
    }

    pub fn token_failure(&self) -> bool {
        self.any(|f| matches!(f, Fault::TokenFailure))
    }

    pub fn error_in_200(&self) -> bool {
        self.any(|f| matches!(f, Fault::ErrorIn200))
    }

    /// Largest active [`Fault::HugeBody`] size.
    pub fn huge_body(&self) -> Option<usize> {
        lock(&self.faults)
            .iter()
            .filter_map(|f| match f {
                Fault::HugeBody(n) => Some(*n),
                _ => None,
            })
            .max()
    }

    /// Whether page `page` (1-based) of `path` must fail.
    pub fn fails_page(&self, path: &str, page: u32) -> bool {
        self.any(
            |f| matches!(f, Fault::FailPage { endpoint, page: p } if *p == page && path.ends_with(endpoint.as_str())),
        )
    }

    pub fn not_licensed(&self, path: &str) -> bool {
        self.any(
            |f| matches!(f, Fault::NotLicensed { endpoint } if path.ends_with(endpoint.as_str())),
        )
    }
}

/// The fault-injection API: for tests (feature `faults`, which only the exporter's
/// dev-dependency enables), never for the shipped demo.
#[cfg(any(test, feature = "faults"))]
impl Control {
    /// Replace every active fault with `f`.
    pub fn set_fault(&self, f: Fault) {
        let mut faults = lock(&self.faults);
        faults.clear();
        faults.push(f);
    }

    /// Add `f` to the active faults (several can be active at once).
    pub fn add_fault(&self, f: Fault) {
        self.push_fault(f);
    }

    pub fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    /// The currently active faults (counting faults show their remaining `times`).
    pub fn faults(&self) -> Vec<Fault> {
        lock(&self.faults).clone()
    }

    /// When on, new connections are closed right after being accepted, and established
    /// (keep-alive) connections are closed at their next read, without an answer.
    ///
    /// While refusing, the listening socket is closed, so connection attempts get "connection
    /// refused" (within ~20 ms of the call). Turning it off binds the port again before
    /// returning, so the very next request is accepted.
    pub fn set_refuse(&self, refuse: bool) {
        let was = self.refuse.swap(refuse, Ordering::SeqCst);
        if was && !refuse {
            let addr = *lock(&self.listen_addr);
            if let Some(addr) = addr {
                // Fails while the accept loop still holds the old socket: it then keeps using it.
                if let Ok(l) = std::net::TcpListener::bind(addr) {
                    if l.set_nonblocking(true).is_ok() {
                        *lock(&self.rebound) = Some(l);
                    }
                }
            }
        }
    }

    /// Invalidate every token issued so far: the next request bearing one gets 401.
    pub fn expire_tokens(&self) {
        self.token_generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// Marks a request as in flight until dropped.
pub struct InFlight<'a> {
    control: &'a Control,
    started: std::time::Instant,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.control.in_flight.fetch_sub(1, Ordering::SeqCst);
        let us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.control.answered.fetch_add(1, Ordering::SeqCst);
        self.control.answer_time_us.fetch_add(us, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_faults_run_out() {
        let c = Control::new();
        c.set_fault(Fault::Status {
            code: 502,
            times: 2,
        });
        c.add_fault(Fault::RateLimit {
            times: 1,
            reset_ms: 1500,
        });
        assert_eq!(c.take_status(), Some(502));
        assert_eq!(c.take_status(), Some(502));
        assert_eq!(c.take_status(), None);
        assert_eq!(c.take_rate_limit(), Some(1500));
        assert_eq!(c.take_rate_limit(), None);
        assert!(c.faults().is_empty());
    }

    #[test]
    fn accounting() {
        let c = Control::new();
        {
            let _a = c.begin("/accounts/x/reports/users-summary", false);
            let _b = c.begin("/oauth/token", true);
            assert_eq!(c.max_in_flight(), 2);
        }
        let _c = c.begin("/accounts/x/reports/users-summary", false);
        assert_eq!(c.max_in_flight(), 2);
        assert_eq!(c.requests("users-summary"), 2);
        assert_eq!(c.requests("/oauth/token"), 1);
        assert_eq!(c.total_requests(), 3);
        assert_eq!(c.token_requests(), 1);
        c.reset_counters();
        assert_eq!(c.total_requests(), 0);
        assert_eq!(c.requests("users-summary"), 0);
        assert_eq!(c.max_in_flight(), 1);
    }

    #[test]
    fn page_and_license_matching() {
        let c = Control::new();
        c.set_fault(Fault::FailPage {
            endpoint: "users-summary".into(),
            page: 2,
        });
        c.add_fault(Fault::NotLicensed {
            endpoint: "company/get-safe-score-details".into(),
        });
        assert!(c.fails_page("/accounts/a/reports/users-summary", 2));
        assert!(!c.fails_page("/accounts/a/reports/users-summary", 1));
        assert!(c.not_licensed("/api/awareness-training/company/get-safe-score-details"));
        assert!(!c.not_licensed("/api/awareness-training/company/get-watchlist-details"));
        c.clear_faults();
        assert!(!c.fails_page("/accounts/a/reports/users-summary", 2));
    }
}
