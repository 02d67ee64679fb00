//! The KnowBe4 request budget. The vendor allows "2,000 requests per day plus the number of
//! licensed users", "four times per second" and "50 requests per minute" (burst), and sends
//! no rate-limit headers: so we count ourselves.
//!
//! - [`DailyCount`]: requests in the last 24 h (minute buckets, fixed memory), the quota they
//!   are counted against, and what is left. A sliding 24 h window never counts fewer requests
//!   than the vendor's window anchored at the first request, so it errs on the safe side.
//! - [`Pacer`]: at most `per_second` requests in any second and `per_minute` in any minute.
//! - [`rate_limited_wait`]: how long a 429 without `Retry-After` waits: two seconds when we
//!   were sending at the per-second limit, else the minute window, doubled for each further
//!   429 of the same request, jittered, never shorter.
//! - [`plan`]: the requests one poll needs for an account of a given size, and whether the
//!   polls of a day fit the quota (`--check-config` refuses an interval that cannot fit).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The part of the daily quota every account has, whatever its size.
pub const BASE_DAILY_QUOTA: u64 = 2_000;
/// The share of the quota our polls plan to use: the rest is for restarts (the count starts
/// again at 0) and for other tools using the same key. A third-party page even says 1,000.
pub const PLANNED_SHARE: f64 = 0.9;
/// Enrollments per user assumed when planning (the vendor's research example: 20 each).
pub const ENROLLMENTS_PER_USER: u64 = 20;
/// The vendor's documented limits.
pub const PER_SECOND: u32 = 4;
pub const PER_MINUTE: u32 = 50;

const DAY_MINUTES: usize = 24 * 60;
/// The pacing windows: a second and a minute, plus room for latency that varies.
pub const SECOND: Duration = Duration::from_millis(1_250);
pub const MINUTE: Duration = Duration::from_secs(61);

/// The longest wait after a 429.
pub const MAX_RATE_LIMITED_WAIT: Duration = Duration::from_secs(5 * 60);

/// The vendor's window a 429 without `Retry-After` most likely means, judged from what we
/// sent ([`Pacer::sent_within`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// We were sending at the per-second limit: latency bunched our requests as they arrived.
    Second,
    /// We were not: another tool on the key, the minute's burst or the day's quota.
    Minute,
}

/// How long to wait after the `n`-th 429 (1, 2, …) of one request when the vendor says
/// nothing of when to come back, the first having meant `first`. A per-second 429 waits two
/// (long) seconds ([`SECOND`]); otherwise, and for every further 429, a whole minute window
/// ([`MINUTE`]) has to pass, doubled for each further one (a minute was not enough: the
/// day's quota may be spent), up to [`MAX_RATE_LIMITED_WAIT`]. `jitter` (0..1, random in
/// use) adds up to a fifth so accounts and replicas sharing a key do not come back together;
/// it never shortens the window.
pub fn rate_limited_wait(n: u32, first: Window, jitter: f64) -> Duration {
    let minutes = match first {
        Window::Second if n <= 1 => None,
        Window::Second => Some(n - 2),
        Window::Minute => Some(n.saturating_sub(1)),
    };
    let base = match minutes {
        None => SECOND * 2,
        Some(doublings) => MINUTE
            .saturating_mul(1u32 << doublings.min(8))
            .min(MAX_RATE_LIMITED_WAIT),
    };
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    base.mul_f64(1.0 + jitter / 5.0)
        .min(MAX_RATE_LIMITED_WAIT)
        .max(base)
}

/// The daily quota of an account with `seats` licensed users (unknown: the base only).
pub fn daily_quota(seats: Option<u64>) -> u64 {
    BASE_DAILY_QUOTA + seats.unwrap_or(0)
}

/// Requests counted over the last 24 hours, in one-minute buckets.
#[derive(Debug)]
pub struct DailyCount {
    origin: Instant,
    /// Unix seconds at `origin`: the count outlives a restart as a ledger of wall-clock minutes.
    origin_unix: u64,
    inner: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    /// `(minute since origin, requests)` per slot; a slot holds the minute `m % 1440`.
    slots: Vec<(u64, u64)>,
    /// `(unix second, requests)` counted before a restart ([`DailyCount::restore`]).
    carried: Vec<(u64, u64)>,
}

impl Default for DailyCount {
    fn default() -> Self {
        let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        DailyCount {
            origin: Instant::now(),
            origin_unix: unix.map_or(0, |d| d.as_secs()),
            inner: Mutex::new(Buckets {
                slots: vec![(u64::MAX, 0); DAY_MINUTES],
                carried: Vec::new(),
            }),
        }
    }
}

const DAY_SECS: u64 = 86_400;

impl DailyCount {
    fn unix(&self, now: Instant) -> u64 {
        self.origin_unix + now.saturating_duration_since(self.origin).as_secs()
    }

    /// The requests of the last 24 hours as `(unix second, requests)`, the plain form the
    /// state dir keeps across restarts.
    pub fn ledger(&self) -> Vec<(u64, u64)> {
        let now = self.unix(Instant::now());
        let b = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let slots = b.slots.iter().filter(|(m, _)| *m != u64::MAX);
        let slots = slots.map(|(m, n)| (self.origin_unix + m * 60, *n));
        let all = b.carried.iter().copied().chain(slots);
        all.filter(|(at, _)| at + DAY_SECS > now).collect()
    }

    /// Counts the requests of a [`ledger`](Self::ledger) saved before a restart (at most two
    /// days of minutes are taken).
    pub fn restore(&self, ledger: &[(u64, u64)]) {
        let mut b = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let from = ledger.len().saturating_sub(2 * DAY_MINUTES);
        b.carried = ledger[from..].to_vec();
    }

    fn minute(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs() / 60
    }

    /// Counts one request sent now.
    pub fn record(&self) {
        self.record_at(Instant::now());
    }

    pub fn record_at(&self, now: Instant) {
        let m = self.minute(now);
        let mut b = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut b.slots[(m % DAY_MINUTES as u64) as usize];
        if slot.0 != m {
            *slot = (m, 0);
        }
        slot.1 += 1;
    }

    /// Requests sent in the last 24 hours.
    pub fn used(&self) -> u64 {
        self.used_at(Instant::now())
    }

    pub fn used_at(&self, now: Instant) -> u64 {
        let m = self.minute(now);
        let b = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let carried = b
            .carried
            .iter()
            .filter(|(at, _)| at + DAY_SECS > self.unix(now));
        b.slots
            .iter()
            .filter(|(minute, _)| *minute != u64::MAX && *minute + (DAY_MINUTES as u64) > m)
            .chain(carried)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Keeps requests under `per_second` in any second and `per_minute` in any minute, as the
/// vendor sees them: requests leave when we send them but arrive after varying latency, so the
/// windows are counted a little longer ([`SECOND`], [`MINUTE`]). Waiters take turns (a fair
/// lock), so pages keep their order under load.
#[derive(Debug)]
pub struct Pacer {
    per_second: usize,
    per_minute: usize,
    turn: tokio::sync::Mutex<()>,
    /// When our requests of the last [`MINUTE`] were sent.
    sent: Mutex<VecDeque<Instant>>,
    /// Nothing is sent before this (a 429 closed the gate for the whole account).
    held_until: Mutex<Option<Instant>>,
}

impl Pacer {
    pub fn new(per_second: u32, per_minute: u32) -> Self {
        Pacer {
            per_second: per_second.max(1) as usize,
            per_minute: per_minute.max(1) as usize,
            turn: tokio::sync::Mutex::new(()),
            sent: Mutex::new(VecDeque::new()),
            held_until: Mutex::new(None),
        }
    }

    /// Sends nothing before `until` (a later hold wins): every request of the account waits,
    /// not only the one that was refused.
    pub fn hold_until(&self, until: Instant) {
        let mut held = self.held_until.lock().unwrap_or_else(|e| e.into_inner());
        if held.is_none_or(|h| h < until) {
            *held = Some(until);
        }
    }

    /// Our requests sent within the last `window`.
    pub fn sent_within(&self, window: Duration) -> usize {
        let now = Instant::now();
        let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        sent.iter()
            .rev()
            .take_while(|t| now.saturating_duration_since(**t) < window)
            .count()
    }

    /// Which window a 429 answered now most likely means: the per-second one when at least
    /// `per_second` of our requests left within the last two (long) seconds, since only then
    /// can latency have made more than `per_second` of them arrive within one.
    pub fn likely_window(&self) -> Window {
        if self.sent_within(SECOND * 2) >= self.per_second {
            Window::Second
        } else {
            Window::Minute
        }
    }

    /// Waits until the gate is open and one more request fits both windows, and counts it as
    /// sent.
    pub async fn acquire(&self) {
        let _turn = self.turn.lock().await;
        loop {
            let held = *self.held_until.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(until) = held.filter(|t| *t > Instant::now()) {
                tokio::time::sleep_until(until).await;
                continue;
            }
            let wait_until = {
                let now = Instant::now();
                let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
                while sent
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= MINUTE)
                {
                    sent.pop_front();
                }
                let in_second = sent
                    .iter()
                    .rev()
                    .take_while(|t| now.saturating_duration_since(**t) < SECOND)
                    .count();
                let wait_until = if sent.len() >= self.per_minute {
                    sent.front().map(|t| *t + MINUTE)
                } else if in_second >= self.per_second {
                    // The oldest of the last second's requests leaves the window first.
                    sent.iter()
                        .rev()
                        .nth(self.per_second - 1)
                        .map(|t| *t + SECOND)
                } else {
                    None
                };
                match wait_until {
                    Some(t) => t,
                    None => {
                        sent.push_back(now);
                        return;
                    }
                }
            };
            tokio::time::sleep_until(wait_until).await;
        }
    }
}

/// The sections of a poll, for planning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanSections {
    pub users: bool,
    pub training: bool,
    pub phishing: bool,
}

/// The requests one poll makes for an account of `users` licensed users at `page_size` rows a
/// page: each list needs `floor(rows / page_size) + 1` pages (the last page is short or empty).
/// Groups are assumed one per ten users, enrollments [`ENROLLMENTS_PER_USER`] per user,
/// training campaigns and security tests one page.
pub fn requests_per_poll(users: u64, page_size: u64, sections: PlanSections) -> u64 {
    let pages = |rows: u64| rows / page_size.max(1) + 1;
    let mut n = 1; // the account
    if sections.users {
        n += pages(users) + pages(users / 10);
    }
    if sections.training {
        n += pages(users.saturating_mul(ENROLLMENTS_PER_USER)) + 1;
    }
    if sections.phishing {
        n += 1;
    }
    n
}

/// How a poll interval fits the daily quota.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub quota: u64,
    pub per_poll: u64,
    pub polls_per_day: f64,
    /// Requests one poll may use so that a day of polls stays within the planned share.
    pub poll_budget: u64,
    /// The shortest interval that fits.
    pub shortest_interval: Duration,
}

impl Plan {
    pub fn new(quota: u64, per_poll: u64, interval: Duration) -> Self {
        let polls_per_day = 86_400.0 / interval.as_secs_f64().max(1.0);
        let usable = quota as f64 * PLANNED_SHARE;
        Plan {
            quota,
            per_poll,
            polls_per_day,
            poll_budget: (usable / polls_per_day).floor() as u64,
            shortest_interval: Duration::from_secs(
                (86_400.0 * per_poll as f64 / usable.max(1.0)).ceil() as u64,
            ),
        }
    }

    pub fn fits(&self) -> bool {
        self.per_poll <= self.poll_budget
    }

    /// Why polling every `every` (this plan's interval) cannot fit the daily quota, with the
    /// shortest interval that does (whole minutes); `None` when it fits.
    pub fn refusal(&self, every: Duration) -> Option<String> {
        let show = |d: Duration| humantime::format_duration(d).to_string();
        let shortest = Duration::from_secs(self.shortest_interval.as_secs().div_ceil(60) * 60);
        (!self.fits()).then(|| {
            format!(
                "polling every {} cannot fit KnowBe4's daily quota: about {} requests a poll, {:.0} \
                 polls a day, against {} requests a day (2,000 + {} licensed users; polls plan \
                 with {:.0}% of it). Set interval to at least {}",
                show(every),
                self.per_poll,
                self.polls_per_day,
                self.quota,
                self.quota - BASE_DAILY_QUOTA,
                PLANNED_SHARE * 100.0,
                show(shortest),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daily_count_forgets_after_24_hours() {
        let c = DailyCount::default();
        let t0 = c.origin;
        for i in 0..5 {
            c.record_at(t0 + Duration::from_secs(i * 30));
        }
        c.record_at(t0 + Duration::from_secs(3600));
        assert_eq!(c.used_at(t0 + Duration::from_secs(3600)), 6);
        // Minutes 0 and 1 (four requests) have left the window; minute 2 and the hour stay.
        assert_eq!(c.used_at(t0 + Duration::from_secs(86_400 + 60)), 2);
        assert_eq!(c.used_at(t0 + Duration::from_secs(86_400 + 3660)), 0);
        // A slot reused a day later starts from 0.
        c.record_at(t0 + Duration::from_secs(86_400 * 2));
        assert_eq!(c.used_at(t0 + Duration::from_secs(86_400 * 2)), 1);
    }

    #[test]
    fn the_daily_count_continues_from_its_ledger_after_a_restart() {
        let before = DailyCount::default();
        for _ in 0..7 {
            before.record();
        }
        let ledger = serde_json::to_value(before.ledger()).unwrap();
        let after = DailyCount::default();
        after.restore(&serde_json::from_value::<Vec<(u64, u64)>>(ledger).unwrap());
        after.record();
        assert_eq!(after.used(), 8);
        assert_eq!(after.ledger().iter().map(|(_, n)| n).sum::<u64>(), 8);
        // A day later the carried requests have left the window.
        let t = after.origin + Duration::from_secs(DAY_SECS + 120);
        assert_eq!(after.used_at(t), 0);
    }

    #[test]
    fn the_research_example_needs_a_long_interval() {
        // 2,000 users, 500 a page: 1 + (5 + 1) + (81 + 1) + 1 = 90 requests a poll.
        let all = PlanSections {
            users: true,
            training: true,
            phishing: true,
        };
        assert_eq!(requests_per_poll(2_000, 500, all), 90);
        let quota = daily_quota(Some(2_000));
        assert_eq!(quota, 4_000);
        let half_hour = Plan::new(quota, 90, Duration::from_secs(1800));
        assert!(!half_hour.fits(), "48 polls x 90 = 4,320 > 3,600");
        assert_eq!(half_hour.poll_budget, 75);
        let hour = Plan::new(quota, 90, Duration::from_secs(3600));
        assert!(hour.fits());
        assert_eq!(hour.shortest_interval, Duration::from_secs(2160));
        // A small account fits the default interval.
        let small = requests_per_poll(0, 500, all);
        assert_eq!(small, 6);
        assert!(Plan::new(daily_quota(None), small, Duration::from_secs(1800)).fits());
    }

    #[test]
    fn a_429_waits_for_the_window_it_means_doubling_and_jittered() {
        use Window::*;
        // Never the transport's one second. A per-second 429 waits two long seconds ...
        assert_eq!(rate_limited_wait(1, Second, 0.0), SECOND * 2);
        // ... anything else a whole minute window, and so does a second 429 of either.
        assert_eq!(rate_limited_wait(1, Minute, 0.0), MINUTE);
        assert_eq!(rate_limited_wait(2, Second, 0.0), MINUTE);
        assert!(rate_limited_wait(1, Minute, 0.5) > MINUTE);
        assert!(rate_limited_wait(1, Minute, 1.0) <= MINUTE.mul_f64(1.2));
        assert_eq!(rate_limited_wait(2, Minute, 0.0), MINUTE * 2);
        assert_eq!(rate_limited_wait(3, Minute, 0.0), MINUTE * 4);
        assert_eq!(rate_limited_wait(3, Second, 0.0), MINUTE * 2);
        assert_eq!(rate_limited_wait(4, Minute, 0.0), MAX_RATE_LIMITED_WAIT);
        assert_eq!(
            rate_limited_wait(u32::MAX, Minute, 1.0),
            MAX_RATE_LIMITED_WAIT
        );
        assert_eq!(
            rate_limited_wait(u32::MAX, Second, 1.0),
            MAX_RATE_LIMITED_WAIT
        );
        // Jitter never shortens a window and odd jitter is harmless.
        for j in [f64::NAN, -1.0, f64::INFINITY, 7.0] {
            let w = rate_limited_wait(1, Minute, j);
            assert!(w >= MINUTE && w <= MINUTE.mul_f64(1.2), "{j}: {w:?}");
        }
        for first in [Second, Minute] {
            for n in 1..10 {
                assert!(rate_limited_wait(n + 1, first, 0.0) >= rate_limited_wait(n, first, 0.0));
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_a_429_means_is_judged_from_our_own_pace() {
        let p = Pacer::new(4, 50);
        p.acquire().await;
        assert_eq!(
            p.likely_window(),
            Window::Minute,
            "one request cannot fill a second"
        );
        for _ in 0..3 {
            p.acquire().await;
        }
        assert_eq!(p.sent_within(SECOND), 4);
        assert_eq!(p.likely_window(), Window::Second, "at the per-second pace");
        tokio::time::sleep(SECOND * 2).await;
        assert_eq!(p.likely_window(), Window::Minute);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_closes_the_gate_for_every_request() {
        let p = Pacer::new(4, 50);
        let start = Instant::now();
        p.hold_until(start + MINUTE);
        // An earlier hold does not reopen it.
        p.hold_until(start + SECOND);
        p.acquire().await;
        assert_eq!(Instant::now() - start, MINUTE);
        // Open again: the next ones go at once (within the pace).
        p.acquire().await;
        assert_eq!(Instant::now() - start, MINUTE);
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_keeps_both_windows() {
        let p = Pacer::new(4, 10);
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..12 {
            p.acquire().await;
            at.push(Instant::now() - start);
        }
        // 4 at once, 4 a (long) second later, 2 more after another (10 a minute), then the
        // (long) minute has to pass.
        assert_eq!(at[3], Duration::ZERO);
        assert_eq!(at[4], SECOND);
        assert_eq!(at[8], SECOND * 2);
        assert_eq!(at[9], SECOND * 2);
        assert_eq!(at[10], MINUTE);
        for w in at.windows(5) {
            assert!(w[4] - w[0] >= Duration::from_secs(1), "{at:?}");
        }
    }
}
