//! Every open HTTP connection, timed from accept, and who goes when the server is full.
//!
//! hyper times request headers only from their first byte, and HTTP/2 not at all, so a client
//! that connects and says nothing (or only an HTTP/2 preface, or half of one, or finishes a TLS
//! handshake and stops) would hold its slot for ever. A sweeper looks at every connection a
//! few times per timeout and applies three rules:
//!
//! 1. no request within `header_read_timeout` of accept (TLS handshake included): dropped;
//! 2. no request in flight for `idle_timeout`: closed gracefully (HTTP/2 GOAWAY);
//! 3. a request in flight without progress for `send_timeout` (a request body that never
//!    comes, an answer the client does not read, an HTTP/2 stream at window 0): dropped with
//!    its connection, whatever else the connection does.
//!
//! Progress is timed per request: its start, and each chunk (at most [`CHUNK`] bytes) of its
//! answer handed to hyper, which happens only as the client reads. New requests do not
//! refresh an old stuck one (issue 24: tiny requests every half second around a stream at
//! window 0 kept a connection alive for ever), and HTTP/2 pings do not count either. (The
//! socket refusing writes is the server's write timeout, `tokio-io-timeout`.)
//!
//! At `max_connections`, a new connection sheds an old one instead of waiting: first one that
//! never sent a request, then one without a request in flight, then one whose requests have
//! made no progress for a second (its oldest request), the longest-quiet first. Only when
//! every connection is busy making progress does the newcomer wait (briefly, in a bounded
//! waiting room) for one to stall or end, so scrapes and probes stay answerable while
//! any number of silent or stalled clients hold connections.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

/// Largest piece of a response handed to hyper at once (progress is seen per piece).
pub(crate) const CHUNK: usize = 64 * 1024;

/// New connections that may wait for a slot when every connection is busy.
pub const WAITING_ROOM: usize = 64;

/// A connection whose requests made no progress for this long may be shed for a newcomer.
pub(crate) const STALLED: Duration = Duration::from_secs(1);

/// What a connection's task is told to do; an order is only ever raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Order {
    Serve,
    /// Finish what is in flight, then close (HTTP/2: GOAWAY).
    Close,
    /// Close now.
    Drop,
}

/// The server's limits and timeouts (`server.*` of the config), which the sweeper and the
/// admission apply, and `--web.enable-lifecycle`: `/-/reload` over HTTP.
#[derive(Debug, Clone)]
pub(crate) struct ServerSettings {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub send_timeout: Duration,
    pub enable_lifecycle: bool,
}

/// What a connection did, as the rules see it.
struct State {
    requests: u64,
    /// Each request in flight, by number: its last progress.
    in_flight: HashMap<u64, Instant>,
    /// When the last request started or ended (accept, before the first).
    activity: Instant,
}

/// One open connection.
pub(crate) struct Conn {
    state: Mutex<State>,
    order: watch::Sender<Order>,
}

impl Conn {
    fn new() -> Conn {
        let state = State {
            requests: 0,
            in_flight: HashMap::new(),
            activity: Instant::now(),
        };
        Conn {
            state: Mutex::new(state),
            order: watch::Sender::new(Order::Serve),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (has sent a request, has one in flight, quiet since): the last progress of its oldest
    /// request in flight, or its last activity when none is.
    fn standing(&self) -> (bool, bool, Instant) {
        let s = self.state();
        match s.in_flight.values().min() {
            Some(oldest) => (true, true, *oldest),
            None => (s.requests > 0, false, s.activity),
        }
    }

    /// Resolves once the connection is ordered `order` or more.
    pub(crate) async fn ordered(&self, order: Order) {
        let _ = self.order.subscribe().wait_for(|o| *o >= order).await;
    }

    fn command(&self, order: Order) {
        self.order.send_if_modified(|o| {
            let raised = order > *o;
            *o = order.max(*o);
            raised
        });
    }

    /// What the sweeper rules say about this connection now.
    fn verdict(&self, now: Instant, t: &ServerSettings) -> Order {
        let (used, busy, quiet) = self.standing();
        let quiet = now.duration_since(quiet);
        match (used, busy) {
            (false, _) if quiet > t.header_read_timeout => Order::Drop,
            (true, false) if quiet > t.idle_timeout => Order::Close,
            (true, true) if quiet > t.send_timeout => Order::Drop,
            _ => Order::Serve,
        }
    }
}

/// Held by a request from when hyper hands it over until its answer is sent or dropped.
pub(crate) struct InFlight {
    conn: Arc<Conn>,
    number: u64,
}

impl InFlight {
    pub(crate) fn start(conn: &Arc<Conn>) -> InFlight {
        let mut s = conn.state();
        let (number, now) = (s.requests, Instant::now());
        s.requests += 1;
        s.activity = now;
        s.in_flight.insert(number, now);
        let conn = conn.clone();
        InFlight { conn, number }
    }

    /// This request made progress now.
    pub(crate) fn touch(&self) {
        if let Some(p) = self.conn.state().in_flight.get_mut(&self.number) {
            *p = Instant::now();
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.conn.state();
        s.in_flight.remove(&self.number);
        s.activity = Instant::now();
    }
}

/// The table of open connections: a connection leaves it when its task (and every request of
/// it) has let go of it.
pub(crate) struct Connections {
    table: Mutex<Vec<Weak<Conn>>>,
    waiting_room: Semaphore,
    settings: ServerSettings,
}

impl Connections {
    pub(crate) fn new(settings: ServerSettings) -> Arc<Connections> {
        Arc::new(Connections {
            table: Mutex::default(),
            waiting_room: Semaphore::new(WAITING_ROOM),
            settings,
        })
    }

    /// The table, without the connections that are gone.
    fn lock(&self) -> MutexGuard<'_, Vec<Weak<Conn>>> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.retain(|c| c.strong_count() > 0);
        table
    }

    fn open(&self) -> Vec<Arc<Conn>> {
        self.lock().iter().filter_map(Weak::upgrade).collect()
    }

    /// Registers a just-accepted connection. When every connection is busy making progress,
    /// it waits (one of [`WAITING_ROOM`] at most) two seconds for one to stall or end; `None`:
    /// turned away.
    pub(crate) async fn admit(&self) -> Option<Arc<Conn>> {
        if let Some(conn) = self.try_admit() {
            return Some(conn);
        }
        let _place = self.waiting_room.try_acquire().ok()?;
        for _ in 0..4 {
            tokio::time::sleep(STALLED / 2).await;
            if let Some(conn) = self.try_admit() {
                return Some(conn);
            }
        }
        None
    }

    /// Registers a just-accepted connection, shedding an old one if the table is full.
    /// `None`: every connection is busy making progress.
    fn try_admit(&self) -> Option<Arc<Conn>> {
        let now = Instant::now();
        let mut table = self.lock();
        let serving: Vec<Arc<Conn>> = (table.iter().filter_map(Weak::upgrade))
            .filter(|c| *c.order.borrow() == Order::Serve)
            .collect();
        if serving.len() >= self.settings.max_connections.max(1) {
            let victim = serving
                .iter()
                .map(|c| (c.standing(), c))
                .filter(|((used, busy, quiet), _)| {
                    !used || !busy || now.duration_since(*quiet) >= STALLED
                })
                .min_by_key(|(standing, _)| *standing);
            victim?.1.command(Order::Drop);
        }
        let conn = Arc::new(Conn::new());
        table.push(Arc::downgrade(&conn));
        Some(conn)
    }

    /// Orders every connection to close (server shutdown).
    pub(crate) fn close_all(&self) {
        self.open().iter().for_each(|c| c.command(Order::Close));
    }

    /// Applies the timeout rules to every connection, until the table is dropped; looks a
    /// quarter of the shortest timeout apart (within 50 ms and 1 s).
    pub(crate) async fn sweep(self: Arc<Self>) {
        let t = &self.settings;
        let shortest = t
            .header_read_timeout
            .min(t.idle_timeout)
            .min(t.send_timeout);
        let every = (shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = Instant::now();
            for c in self.open() {
                c.command(c.verdict(now, t));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(c: &Conn) -> Order {
        *c.order.borrow()
    }

    fn settings(max_connections: usize) -> ServerSettings {
        ServerSettings {
            max_connections,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(30),
            enable_lifecycle: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rules_apply_from_accept() {
        let t = settings(1);
        let silent = Conn::new();
        assert_eq!(silent.verdict(Instant::now(), &t), Order::Serve);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(
            silent.verdict(Instant::now(), &t),
            Order::Drop,
            "no request since accept"
        );

        let conn = Arc::new(Conn::new());
        let req = InFlight::start(&conn);
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(conn.verdict(Instant::now(), &t), Order::Serve);
        req.touch();
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(
            conn.verdict(Instant::now(), &t),
            Order::Serve,
            "progress resets"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            conn.verdict(Instant::now(), &t),
            Order::Drop,
            "stalled answer"
        );
        drop(req);
        assert_eq!(conn.verdict(Instant::now(), &t), Order::Serve);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(conn.verdict(Instant::now(), &t), Order::Close, "idle");
    }

    /// Issue 24: a stream stuck at window 0, with a new tiny request every half second beside
    /// it, is dropped after `send_timeout` and can be shed after [`STALLED`].
    #[tokio::test(start_paused = true)]
    async fn new_requests_do_not_refresh_a_stuck_one() {
        let t = settings(1);
        let conns = Connections::new(t.clone());
        let conn = conns.try_admit().unwrap();
        let _stuck = InFlight::start(&conn);
        let mut shed = false;
        for _ in 0..62 {
            tokio::time::advance(Duration::from_millis(500)).await;
            let tiny = InFlight::start(&conn);
            tiny.touch();
            drop(tiny);
            if !shed {
                // Full table: a newcomer sheds it once the stuck request is a second old.
                let newcomer = conns.try_admit();
                shed = newcomer.is_some();
                assert_eq!(order(&conn) == Order::Drop, shed);
                conn.order.send_replace(Order::Serve);
            }
        }
        assert!(shed);
        assert_eq!(conn.verdict(Instant::now(), &t), Order::Drop);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_sheds_the_quietest_connection_never_a_busy_one() {
        let conns = Connections::new(settings(3));
        let busy = conns.try_admit().unwrap();
        let _busy_req = InFlight::start(&busy);
        let used = conns.try_admit().unwrap();
        drop(InFlight::start(&used));
        tokio::time::advance(Duration::from_millis(10)).await;
        let silent = conns.try_admit().unwrap();
        // Full: the silent one goes first, although it is the newest.
        let fourth = conns.try_admit().unwrap();
        assert_eq!(order(&silent), Order::Drop);
        assert_eq!(order(&used), Order::Serve);
        drop(silent);
        let fifth = conns.try_admit().unwrap();
        assert_eq!(order(&fourth), Order::Drop, "never sent a request");
        assert_eq!(order(&used), Order::Serve);
        drop(fourth);
        // Then the one without a request in flight.
        let _r5 = InFlight::start(&fifth);
        let sixth = conns.try_admit().unwrap();
        assert_eq!(order(&used), Order::Drop);
        assert_eq!(order(&busy), Order::Serve);
        drop(used);
        let _r6 = InFlight::start(&sixth);
        assert!(
            conns.try_admit().is_none(),
            "all busy and progressing: the newcomer is turned away"
        );
        tokio::time::advance(STALLED).await;
        assert!(conns.try_admit().is_some(), "a stalled one is shed");
    }
}
