//! The KnowBe4 request budget. The vendor allows "2,000 requests per day plus the number of
//! licensed users", "four times per second" and "50 requests per minute" (burst), and sends
//! no rate-limit headers: so we count ourselves.
//!
//! - [`DailyCount`]: requests in the last 24 h (minute buckets, a ledger that outlives a
//!   restart). A sliding 24 h window never counts fewer requests than the vendor's window
//!   anchored at the first request, so it errs on the safe side.
//! - [`Pacer`]: at most `per_second` requests in any second and `per_minute` in any minute.
//! - [`rate_limited_wait`]: how long a 429 without `Retry-After` waits: two seconds when we
//!   were sending at the per-second limit, else the minute window, doubled for each further
//!   429 of the same request, jittered, never shorter.
//! - [`Plan`]: the requests one poll needs for an account of a given size, and whether the
//!   polls of a day fit the quota (`--check-config` refuses an interval that cannot fit).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::config::{Endpoint, KnowBe4Config};
use crate::sources::aggregate::lock;

/// The part of the daily quota every account has, whatever its size.
pub(crate) const BASE_DAILY_QUOTA: u64 = 2_000;
/// The share of the quota our polls plan to use: the rest is for restarts (the count starts
/// again at 0) and for other tools using the same key. A third-party page even says 1,000.
const PLANNED_SHARE: f64 = 0.9;
/// Enrollments per user assumed when planning (the vendor's research example: 20 each).
const ENROLLMENTS_PER_USER: u64 = 20;
/// The vendor's documented limits.
pub(crate) const PER_SECOND: u32 = 4;
pub(crate) const PER_MINUTE: u32 = 50;
/// The pacing windows: a second and a minute, plus room for latency that varies.
pub(crate) const SECOND: Duration = Duration::from_millis(1_250);
pub(crate) const MINUTE: Duration = Duration::from_secs(61);
/// The longest wait after a 429.
const MAX_RATE_LIMITED_WAIT: Duration = Duration::from_secs(5 * 60);
const DAY_SECS: u64 = 86_400;
const DAY_MINUTES: usize = 24 * 60;

/// The vendor's window a 429 without `Retry-After` most likely means, judged from what we
/// sent ([`Pacer::likely_window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Window {
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
pub(crate) fn rate_limited_wait(n: u32, first: Window, jitter: f64) -> Duration {
    // The rungs: two seconds, a minute, two, four, …; a per-second 429 starts at the first.
    let rung = n.saturating_sub(1) + u32::from(first == Window::Minute);
    let Some(doublings) = rung.checked_sub(1) else {
        return SECOND * 2;
    };
    let base = MINUTE.saturating_mul(1 << doublings.min(8));
    let base = base.min(MAX_RATE_LIMITED_WAIT);
    let jitter = Some(jitter)
        .filter(|j| (0.0..=1.0).contains(j))
        .unwrap_or(0.0);
    base.mul_f64(1.0 + jitter / 5.0).min(MAX_RATE_LIMITED_WAIT)
}

/// The daily quota of an account with `seats` licensed users (unknown: the base only).
pub(crate) fn daily_quota(seats: Option<u64>) -> u64 {
    BASE_DAILY_QUOTA + seats.unwrap_or(0)
}

/// Requests counted over the last 24 hours, by the minute.
#[derive(Debug)]
pub(crate) struct DailyCount {
    origin: Instant,
    /// Unix seconds at `origin`: the count is kept as wall-clock minutes, so it outlives a
    /// restart as a ledger.
    origin_unix: u64,
    /// `(unix second the minute began, requests)`, a restored ledger's first.
    minutes: Mutex<VecDeque<(u64, u64)>>,
}

impl Default for DailyCount {
    fn default() -> Self {
        let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        DailyCount {
            origin: Instant::now(),
            origin_unix: unix.map_or(0, |d| d.as_secs()),
            minutes: Mutex::new(VecDeque::new()),
        }
    }
}

impl DailyCount {
    /// Unix seconds now, and when the current minute (counted from `origin`) began.
    fn now(&self) -> (u64, u64) {
        let elapsed = Instant::now()
            .saturating_duration_since(self.origin)
            .as_secs();
        (
            self.origin_unix + elapsed,
            self.origin_unix + elapsed / 60 * 60,
        )
    }

    /// The requests of the last 24 hours as `(unix second the minute began, requests)`, the
    /// plain form the state dir keeps across restarts; older minutes are forgotten.
    pub(crate) fn ledger(&self) -> Vec<(u64, u64)> {
        let (now, _) = self.now();
        let mut minutes = lock(&self.minutes);
        minutes.retain(|(at, _)| at + DAY_SECS > now);
        minutes.iter().copied().collect()
    }

    /// Counts the requests of a [`ledger`](Self::ledger) saved before a restart (at most two
    /// days of minutes are taken).
    pub(crate) fn restore(&self, ledger: &[(u64, u64)]) {
        let from = ledger.len().saturating_sub(2 * DAY_MINUTES);
        let mut minutes = lock(&self.minutes);
        ledger[from..]
            .iter()
            .rev()
            .for_each(|m| minutes.push_front(*m));
    }

    /// Counts one request sent now.
    pub(crate) fn record(&self) {
        let (now, minute) = self.now();
        let mut minutes = lock(&self.minutes);
        minutes.retain(|(at, _)| at + DAY_SECS > now);
        match minutes.back_mut() {
            Some((at, n)) if *at == minute => *n += 1,
            _ => minutes.push_back((minute, 1)),
        }
    }

    /// Requests sent in the last 24 hours.
    pub(crate) fn used(&self) -> u64 {
        self.ledger().iter().map(|(_, n)| n).sum()
    }
}

/// Keeps requests under `per_second` in any second and `per_minute` in any minute, as the
/// vendor sees them: requests leave when we send them but arrive after varying latency, so the
/// windows are counted a little longer ([`SECOND`], [`MINUTE`]). Waiters take turns (a fair
/// lock), so pages keep their order under load.
#[derive(Debug)]
pub(crate) struct Pacer {
    per_second: usize,
    per_minute: usize,
    turn: tokio::sync::Mutex<()>,
    /// When our requests of the last [`MINUTE`] were sent, oldest first.
    sent: Mutex<VecDeque<Instant>>,
}

impl Pacer {
    pub(crate) fn new(per_second: u32, per_minute: u32) -> Self {
        Pacer {
            per_second: per_second.max(1) as usize,
            per_minute: per_minute.max(1) as usize,
            turn: tokio::sync::Mutex::new(()),
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Which window a 429 answered now most likely means: the per-second one when at least
    /// `per_second` of our requests left within the last two (long) seconds, since only then
    /// can latency have made more than `per_second` of them arrive within one.
    pub(crate) fn likely_window(&self) -> Window {
        let now = Instant::now();
        let sent = lock(&self.sent);
        let recent = sent
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < SECOND * 2);
        if recent.count() >= self.per_second {
            Window::Second
        } else {
            Window::Minute
        }
    }

    /// Waits until one more request fits both windows, and counts it as sent.
    pub(crate) async fn acquire(&self) {
        let _turn = self.turn.lock().await;
        loop {
            let wait_until = {
                let now = Instant::now();
                let mut sent = lock(&self.sent);
                while sent
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= MINUTE)
                {
                    sent.pop_front();
                }
                // A window is full while its `limit`-th newest request is in it.
                let windows = [(SECOND, self.per_second), (MINUTE, self.per_minute)];
                let full = windows.into_iter().filter_map(|(window, limit)| {
                    Some(*sent.iter().rev().nth(limit - 1)? + window)
                });
                match full.filter(|until| *until > now).max() {
                    Some(until) => until,
                    None => return sent.push_back(now),
                }
            };
            tokio::time::sleep_until(wait_until).await;
        }
    }
}

/// How a poll interval fits the daily quota.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub(crate) quota: u64,
    pub(crate) per_poll: u64,
    /// Requests one poll may use so that a day of polls stays within the planned share.
    pub(crate) poll_budget: u64,
    /// The shortest interval that fits.
    pub(crate) shortest_interval: Duration,
    interval: Duration,
}

impl Plan {
    /// Polls of `config`'s sections every `interval` for an account of `seats` licensed users
    /// (unknown: the smallest account), each making `per_poll` requests; an estimate from the
    /// account's size when `None`: every list needs `floor(rows / page_size) + 1` pages (the last
    /// is short or empty), with a group per ten users, [`ENROLLMENTS_PER_USER`] enrollments per
    /// user, and one page of training campaigns and of security tests.
    pub(crate) fn new(
        config: &KnowBe4Config,
        seats: Option<u64>,
        per_poll: Option<u64>,
        interval: Duration,
    ) -> Self {
        let users = seats.unwrap_or(0);
        let pages = |rows: u64| rows / (config.page_size as u64).max(1) + 1;
        let estimate = || {
            let section = |e: &Endpoint| match e {
                Endpoint::Account => 1,
                Endpoint::Users => pages(users) + pages(users / 10),
                Endpoint::Training => pages(users.saturating_mul(ENROLLMENTS_PER_USER)) + 1,
                Endpoint::Phishing => 1,
            };
            config.endpoints.iter().map(section).sum()
        };
        let per_poll = per_poll.unwrap_or_else(estimate);
        let quota = daily_quota(seats);
        let usable = quota as f64 * PLANNED_SHARE;
        let polls_per_day = 86_400.0 / interval.as_secs_f64().max(1.0);
        let shortest = (86_400.0 * per_poll as f64 / usable.max(1.0)).ceil() as u64;
        Plan {
            quota,
            per_poll,
            poll_budget: (usable / polls_per_day).floor() as u64,
            shortest_interval: Duration::from_secs(shortest),
            interval,
        }
    }

    /// Why polling at this plan's interval cannot fit the daily quota, with the shortest
    /// interval that does (whole minutes); `None` when it fits.
    pub(crate) fn refusal(&self) -> Option<String> {
        let show = |d: Duration| humantime::format_duration(d).to_string();
        let shortest = Duration::from_secs(self.shortest_interval.as_secs().div_ceil(60) * 60);
        (self.per_poll > self.poll_budget).then(|| {
            format!(
                "polling every {} cannot fit KnowBe4's daily quota: about {} requests a poll, {:.0} \
                 polls a day, against {} requests a day (2,000 + {} licensed users; polls plan \
                 with {:.0}% of it). Set interval to at least {}",
                show(self.interval),
                self.per_poll,
                86_400.0 / self.interval.as_secs_f64().max(1.0),
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

    impl Plan {
        fn fits(&self) -> bool {
            self.refusal().is_none()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_daily_count_forgets_after_24_hours() {
        let c = DailyCount::default();
        let at = |secs| tokio::time::advance(Duration::from_secs(secs));
        for _ in 0..5 {
            c.record();
            at(30).await;
        }
        at(3600 - 150).await;
        c.record();
        assert_eq!(c.used(), 6);
        // Minutes 0 and 1 (four requests) have left the window; minute 2 and the hour stay.
        at(86_400 + 60 - 3600).await;
        assert_eq!(c.used(), 2);
        at(3600).await;
        assert_eq!(c.used(), 0);
        // A slot reused a day later starts from 0.
        at(86_400 * 2 - 86_400 - 3660).await;
        c.record();
        assert_eq!(c.used(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_daily_count_continues_from_its_ledger_after_a_restart() {
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
        tokio::time::advance(Duration::from_secs(DAY_SECS + 120)).await;
        assert_eq!(after.used(), 0);
    }

    #[test]
    fn the_research_example_needs_a_long_interval() {
        // 2,000 users, 500 a page: 1 + (5 + 1) + (81 + 1) + 1 = 90 requests a poll.
        let all = KnowBe4Config::new("a", "http://127.0.0.1:9", "k");
        let half_hour = Plan::new(&all, Some(2_000), None, Duration::from_secs(1800));
        assert_eq!((half_hour.per_poll, half_hour.quota), (90, 4_000));
        assert!(!half_hour.fits(), "48 polls x 90 = 4,320 > 3,600");
        assert_eq!(half_hour.poll_budget, 75);
        let hour = Plan::new(&all, Some(2_000), Some(90), Duration::from_secs(3600));
        assert!(hour.fits());
        assert_eq!(hour.shortest_interval, Duration::from_secs(2160));
        // A small account fits the default interval; fewer sections need fewer requests.
        let small = Plan::new(&all, None, None, Duration::from_secs(1800));
        assert_eq!((small.per_poll, small.quota), (6, 2_000));
        assert!(small.fits());
        let phishing = KnowBe4Config {
            endpoints: vec![Endpoint::Account, Endpoint::Phishing],
            ..all
        };
        let few = Plan::new(&phishing, Some(2_000), None, Duration::from_secs(1800));
        assert_eq!(few.per_poll, 2);
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
        assert_eq!(p.likely_window(), Window::Second, "at the per-second pace");
        tokio::time::sleep(SECOND * 2).await;
        assert_eq!(p.likely_window(), Window::Minute);
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
