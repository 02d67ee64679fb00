//! Every open HTTP connection, timed from accept, and who goes when the server is full.
//!
//! hyper times request headers only from their first byte, and HTTP/2 not at all, so a client
//! that connects and says nothing (or only an HTTP/2 preface, or half of one, or finishes a TLS
//! handshake and stops) would hold its slot for ever. A sweeper looks at every connection a
//! few times per timeout and applies four rules:
//!
//! 1. no request within `header_read_timeout` of accept (TLS handshake included): dropped;
//! 2. no request in flight for `idle_timeout`: closed gracefully (HTTP/2 GOAWAY);
//! 3. a request in flight without progress for `send_timeout` (a request body that never
//!    comes, an answer the client does not read, an HTTP/2 stream at window 0): dropped with
//!    its connection, whatever else the connection does;
//! 4. the socket refusing writes for `send_timeout` (answers already handed to hyper that the
//!    client does not read): dropped.
//!
//! Progress is timed per request: its start, and each chunk (at most [`CHUNK`] bytes) of its
//! answer handed to hyper, which happens only as the client reads. New requests do not
//! refresh an old stuck one (issue 24: tiny requests every half second around a stream at
//! window 0 kept a connection alive for ever), and HTTP/2 pings do not count either.
//!
//! At `max_connections`, a new connection sheds an old one instead of waiting: first one that
//! never sent a request, then one without a request in flight, then one whose requests have
//! made no progress for a second (its oldest request), the longest-quiet first. Only when
//! every connection is busy making progress does the newcomer wait (briefly, in a bounded
//! waiting room) for one to stall or finish, and is turned away if none does. So scrapes and probes stay answerable while
//! any number of silent or stalled clients hold connections.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Largest piece of a response handed to hyper at once (progress is seen per piece).
pub(crate) const CHUNK: usize = 64 * 1024;

/// A connection whose requests made no progress for this long may be shed for a newcomer.
pub(crate) const STALLED: Duration = Duration::from_secs(1);

/// What a connection's task is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Order {
    Serve = 0,
    /// Finish what is in flight, then close (HTTP/2: GOAWAY).
    Close = 1,
    /// Close now.
    Drop = 2,
}

/// The timeouts the sweeper applies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) header_read: Duration,
    pub(crate) idle: Duration,
    pub(crate) send: Duration,
}

/// What a connection did, as the rules see it.
#[derive(Debug)]
struct State {
    requests: u64,
    /// Each request in flight, by number: its last progress.
    in_flight: HashMap<u64, Instant>,
    /// When the last request started or ended (accept, before the first).
    activity: Instant,
    /// Since when the socket refuses writes.
    write_blocked: Option<Instant>,
}

/// One open connection.
#[derive(Debug)]
pub(crate) struct Conn {
    id: u64,
    state: Mutex<State>,
    order: AtomicU8,
    wake: Notify,
}

impl Conn {
    fn new(id: u64) -> Conn {
        let now = Instant::now();
        let state = State {
            requests: 0,
            in_flight: HashMap::new(),
            activity: now,
            write_blocked: None,
        };
        Conn {
            id,
            state: Mutex::new(state),
            order: AtomicU8::new(Order::Serve as u8),
            wake: Notify::new(),
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

    /// The order in force.
    pub(crate) fn order(&self) -> Order {
        match self.order.load(Ordering::Acquire) {
            0 => Order::Serve,
            1 => Order::Close,
            _ => Order::Drop,
        }
    }

    /// Raises the order (never lowers it) and wakes the connection's task.
    pub(crate) fn command(&self, order: Order) {
        if self.order.fetch_max(order as u8, Ordering::AcqRel) < order as u8 {
            self.wake.notify_one();
        }
    }

    /// Resolves when an order is given (check [`Conn::order`]).
    pub(crate) async fn ordered(&self) {
        self.wake.notified().await
    }

    /// What the sweeper rules say about this connection now.
    fn verdict(&self, now: Instant, t: &Timeouts) -> Order {
        let blocked = self.state().write_blocked;
        // Answers handed to hyper but stuck in the socket: in flight for our purposes.
        if blocked.is_some_and(|since| now.duration_since(since) > t.send) {
            return Order::Drop;
        }
        let (used, busy, quiet) = self.standing();
        let quiet = now.duration_since(quiet);
        match (used, busy) {
            (false, _) if quiet > t.header_read => Order::Drop,
            (true, false) if quiet > t.idle => Order::Close,
            (true, true) if quiet > t.send => Order::Drop,
            _ => Order::Serve,
        }
    }
}

/// The connection's socket, watched for writes that do not go through. Reads and pings do
/// not count as progress; only the socket taking bytes clears a write stall. Kept because
/// hyper takes a whole HTTP/1.1 answer into its write queue and answers the next pipelined
/// request while the client reads nothing: no request is in flight, only the socket shows
/// the stall (`tests/it/hostile_clients.rs::http1_answers_never_read_are_dropped`).
pub(crate) struct Metered<I> {
    io: I,
    conn: Arc<Conn>,
}

impl<I> Metered<I> {
    pub(crate) fn new(io: I, conn: Arc<Conn>) -> Self {
        Metered { io, conn }
    }

    fn note<T>(&self, r: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        let mut s = self.conn.state();
        match r {
            Poll::Pending => s.write_blocked = s.write_blocked.or(Some(Instant::now())),
            Poll::Ready(_) => s.write_blocked = None,
        }
        r
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Metered<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Metered<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.note(r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.note(r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.note(r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Held by a request from when hyper hands it over until its answer is sent or dropped.
#[derive(Debug)]
pub(crate) struct InFlight {
    conn: Arc<Conn>,
    number: u64,
}

impl InFlight {
    pub(crate) fn start(conn: &Arc<Conn>) -> InFlight {
        let mut s = conn.state();
        let number = s.requests;
        s.requests += 1;
        let now = Instant::now();
        s.activity = now;
        s.in_flight.insert(number, now);
        InFlight {
            conn: conn.clone(),
            number,
        }
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

/// Removes a connection from the table when its task ends, however it ends.
pub(crate) struct Registration {
    conns: Arc<Connections>,
    pub(crate) conn: Arc<Conn>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.conns.lock().remove(&self.conn.id);
    }
}

/// The table of open connections.
#[derive(Debug)]
pub(crate) struct Connections {
    map: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    max: usize,
    timeouts: Timeouts,
}

impl Connections {
    pub(crate) fn new(max: usize, timeouts: Timeouts) -> Arc<Connections> {
        Arc::new(Connections {
            map: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            max: max.max(1),
            timeouts,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Registers a just-accepted connection, shedding an old one if the table is full.
    /// `None`: every connection is busy making progress; close the newcomer.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Registration> {
        let now = Instant::now();
        let mut map = self.lock();
        let serving: Vec<&Arc<Conn>> = map.values().filter(|c| c.order() == Order::Serve).collect();
        if serving.len() >= self.max {
            let victim = serving
                .into_iter()
                .map(|c| (c.standing(), c))
                .filter(|((used, busy, quiet), _)| {
                    !used || !busy || now.duration_since(*quiet) >= STALLED
                })
                .min_by_key(|(standing, _)| *standing);
            victim?.1.command(Order::Drop);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new(id));
        map.insert(id, conn.clone());
        Some(Registration {
            conns: self.clone(),
            conn,
        })
    }

    /// Orders every connection to close (server shutdown).
    pub(crate) fn close_all(&self, order: Order) {
        for c in self.lock().values() {
            c.command(order);
        }
    }

    /// Applies the timeout rules to every connection, until the table is dropped; looks a
    /// quarter of the shortest timeout apart (within 50 ms and 1 s).
    pub(crate) async fn sweep(self: Arc<Self>) {
        let t = self.timeouts;
        let every = (t.header_read.min(t.idle).min(t.send) / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = Instant::now();
            for c in self.lock().values() {
                c.command(c.verdict(now, &t));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> Timeouts {
        Timeouts {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            send: Duration::from_secs(30),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rules_apply_from_accept() {
        let t = timeouts();
        let silent = Conn::new(0);
        assert_eq!(silent.verdict(Instant::now(), &t), Order::Serve);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(
            silent.verdict(Instant::now(), &t),
            Order::Drop,
            "no request since accept"
        );

        let conn = Arc::new(Conn::new(1));
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
        let t = timeouts();
        let conns = Connections::new(1, t);
        let conn = conns.admit().unwrap();
        let _stuck = InFlight::start(&conn.conn);
        let mut shed = false;
        for _ in 0..62 {
            tokio::time::advance(Duration::from_millis(500)).await;
            let tiny = InFlight::start(&conn.conn);
            tiny.touch();
            drop(tiny);
            if !shed {
                // Full table: a newcomer sheds it once the stuck request is a second old.
                let newcomer = conns.admit();
                shed = newcomer.is_some();
                assert_eq!(conn.conn.order() == Order::Drop, shed);
                conn.conn.order.store(Order::Serve as u8, Ordering::Relaxed);
            }
        }
        assert!(shed);
        assert_eq!(conn.conn.verdict(Instant::now(), &t), Order::Drop);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_sheds_the_quietest_connection_never_a_busy_one() {
        let conns = Connections::new(3, timeouts());
        let busy = conns.admit().unwrap();
        let _busy_req = InFlight::start(&busy.conn);
        let used = conns.admit().unwrap();
        drop(InFlight::start(&used.conn));
        tokio::time::advance(Duration::from_millis(10)).await;
        let silent = conns.admit().unwrap();
        // Full: the silent one goes first, although it is the newest.
        let fourth = conns.admit().unwrap();
        assert_eq!(silent.conn.order(), Order::Drop);
        assert_eq!(used.conn.order(), Order::Serve);
        drop(silent);
        let fifth = conns.admit().unwrap();
        assert_eq!(fourth.conn.order(), Order::Drop, "never sent a request");
        assert_eq!(used.conn.order(), Order::Serve);
        drop(fourth);
        // Then the one without a request in flight.
        let _r5 = InFlight::start(&fifth.conn);
        let sixth = conns.admit().unwrap();
        assert_eq!(used.conn.order(), Order::Drop);
        assert_eq!(busy.conn.order(), Order::Serve);
        drop(used);
        let _r6 = InFlight::start(&sixth.conn);
        assert!(
            conns.admit().is_none(),
            "all busy and progressing: the newcomer is turned away"
        );
        tokio::time::advance(STALLED).await;
        assert!(conns.admit().is_some(), "a stalled one is shed");
    }
}
