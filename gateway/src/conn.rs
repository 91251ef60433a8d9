//! One streaming connection's outbound side: a queue bounded in bytes.
//!
//! The hub pushes without ever waiting; the transport's writer drains
//! everything queued in one go, so events that pile up while a socket is busy
//! leave in one write. A queue over its limit means the client cannot keep
//! up: it is closed as `slow_consumer`, and resumes from its last position.

use crate::engine::Event;
use crate::flush::Flusher;
use bytes::Bytes;
use eventwire_protocol::{ErrorCode, Pattern, ProtocolError};
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::sync::Notify;

/// A held queue this large is written without waiting for the tick.
pub const FULL_WRITE: usize = 64 * 1024;

/// Which wire a connection speaks; decides how queued items are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Sse,
    WebSocket,
}

impl Transport {
    pub fn label(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::WebSocket => "ws",
        }
    }
}

/// An item waiting to be written.
#[derive(Debug, Clone)]
pub enum Out {
    Event(Arc<Event>),
    /// A frame already encoded for this connection's transport.
    Control(Bytes),
}

impl Out {
    fn cost(&self) -> usize {
        match self {
            Out::Event(e) => e.cost(),
            Out::Control(b) => b.len(),
        }
    }
}

/// What the writer gets from [`Conn::poll_take`].
#[derive(Debug)]
pub enum Taken {
    /// Items were moved into the caller's buffer.
    Items,
    /// A heartbeat is due (see [`Conn::heartbeat`]): send one, and for
    /// WebSocket check that the peer was heard from lately.
    Heartbeat,
    /// The connection is over; tell the peer why and stop.
    Closed(ProtocolError),
    /// The peer is gone or the socket failed: stop without a word.
    Aborted,
}

pub struct Conn {
    /// Process-unique key, used by the subscription trie.
    pub key: u64,
    /// Shown to the client in `welcome` and in logs.
    pub id: String,
    pub transport: Transport,
    limit: usize,
    state: Mutex<State>,
    writer: AtomicWaker,
    drained: Notify,
    /// Offset of the last live event queued, so a connection whose several
    /// patterns match one event gets it once.
    last_live: AtomicU64,
    /// The connection's subscriptions, in the order they were made.
    pub patterns: Mutex<Vec<Pattern>>,
    /// With `--write-delay` (a fixed delay, or `auto` while the writers are
    /// behind): live events wake the writer on the flusher's tick.
    flusher: Option<Arc<Flusher>>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Out>,
    /// Bytes in `queue` plus bytes in `replay`.
    bytes: usize,
    replay_bytes: usize,
    /// While a replay runs, live events wait here so they can be merged
    /// after the replayed ones, in position order and without duplicates.
    replay: Option<VecDeque<Arc<Event>>>,
    closed: Option<ProtocolError>,
    aborted: bool,
    /// Live events at or below this offset were already delivered by a
    /// replay. The hub can hand over an event after a history read already
    /// returned it, so without this it would arrive twice.
    replayed_through: u64,
    /// Replayed events are in `queue`: their age says nothing about whether
    /// the writers keep up, so the next take reports no lag.
    has_replayed: bool,
    /// The gateway-wide heartbeat tick came by and the writer has not sent
    /// the heartbeat yet.
    heartbeat_due: bool,
    /// The writer has taken items: the first is the `welcome`, which must be
    /// the first frame, so no heartbeat is asked for before it.
    started: bool,
    /// The flusher's tick count when the writer last took items; see
    /// [`Flusher::gathers`].
    wrote_at: u64,
}

impl Conn {
    pub fn new(
        key: u64,
        id: String,
        transport: Transport,
        limit: usize,
        flusher: Option<Arc<Flusher>>,
    ) -> Conn {
        Conn {
            key,
            id,
            transport,
            limit,
            state: Mutex::new(State::default()),
            writer: AtomicWaker::new(),
            drained: Notify::new(),
            last_live: AtomicU64::new(0),
            patterns: Mutex::new(Vec::new()),
            flusher,
        }
    }

    /// Queues a live event from the hub. Never blocks. Returns false when
    /// this push overflowed the queue and closed the connection.
    pub fn push_live(&self, ev: &Arc<Event>) -> bool {
        if self.last_live.swap(ev.offset, Ordering::Relaxed) == ev.offset {
            return true;
        }
        let mut st = self.state.lock();
        if st.closed.is_some() || ev.offset <= st.replayed_through {
            return true;
        }
        st.bytes += ev.cost();
        match &mut st.replay {
            Some(buffer) => {
                buffer.push_back(ev.clone());
                st.replay_bytes += ev.cost();
            }
            None => st.queue.push_back(Out::Event(ev.clone())),
        }
        // The writer parks only on an empty queue and drains it whole, so
        // only the first item after a drain needs to wake it.
        let wake = st.replay.is_none() && st.queue.len() == 1;
        // A held queue that has gathered a full write leaves now: holding is
        // for gathering small writes, and must not push a reader that keeps
        // up over its limit.
        let queued = st.bytes - st.replay_bytes;
        let full = self.flusher.is_some()
            && st.replay.is_none()
            && queued >= self.full_write()
            && queued - ev.cost() < self.full_write();
        let wrote_at = st.wrote_at;
        let open = self.enforce_limit(st, full);
        if open && wake && !full {
            match &self.flusher {
                // A writer that is not parked has no waker to take; it
                // drains the queue anyway before it parks. The waker stays
                // registered too, so a control frame, a replay or a close
                // pushed before the tick still wakes the writer at once.
                Some(f) if f.holds() && f.gathers(wrote_at) => {
                    if let Some(w) = self.writer.take() {
                        self.writer.register(&w);
                        if let Err(w) = f.defer(w) {
                            w.wake();
                        }
                    }
                }
                _ => self.writer.wake(),
            }
        }
        open
    }

    /// Queued bytes at which a held queue is written at once: a quarter of
    /// the limit, at most [`FULL_WRITE`].
    fn full_write(&self) -> usize {
        (self.limit / 4).clamp(1, FULL_WRITE)
    }

    /// Queues a control frame (welcome, ack, error...).
    pub fn push_control(&self, frame: Bytes) {
        let mut st = self.state.lock();
        if st.closed.is_some() {
            return;
        }
        let item = Out::Control(frame);
        st.bytes += item.cost();
        st.queue.push_back(item);
        // Behind held live events the queue is not empty, yet a control
        // frame (an ack, a reply) is never held: wake the writer anyway.
        let wake = st.queue.len() == 1 || self.flusher.is_some();
        self.enforce_limit(st, wake);
    }

    /// Closes the connection as a slow consumer when over its limit;
    /// returns whether it is still open. The queue and the live events held
    /// back during a replay each get the full limit, so a burst during a
    /// resume does not cut off a client that reads fast.
    fn enforce_limit(&self, mut st: parking_lot::MutexGuard<'_, State>, wake: bool) -> bool {
        let over = st.bytes - st.replay_bytes > self.limit || st.replay_bytes > self.limit;
        if over {
            st.queue.clear();
            st.replay = None;
            st.bytes = 0;
            st.replay_bytes = 0;
            st.closed = Some(ProtocolError::new(
                ErrorCode::SlowConsumer,
                format!(
                    "more than {} bytes were waiting for this connection; resume from your last position",
                    self.limit
                ),
            ));
        }
        drop(st);
        if over || wake {
            self.writer.wake();
        }
        !over
    }

    /// Ends the connection. With `discard`, queued items are dropped (the
    /// client will resume); otherwise they are written before the close.
    pub fn close(&self, reason: ProtocolError, discard: bool) {
        let mut st = self.state.lock();
        if st.closed.is_none() {
            if discard {
                st.queue.clear();
            }
            st.replay = None;
            st.replay_bytes = 0;
            st.bytes = st.queue.iter().map(Out::cost).sum();
            st.closed = Some(reason);
        }
        drop(st);
        self.writer.wake();
        self.drained.notify_waiters();
    }

    /// Ends the connection because its socket is gone: nothing more is written.
    pub fn abort(&self) {
        let mut st = self.state.lock();
        st.aborted = true;
        st.queue.clear();
        st.replay = None;
        st.closed
            .get_or_insert_with(|| ProtocolError::new(ErrorCode::Internal, "connection aborted"));
        drop(st);
        self.writer.wake();
        self.drained.notify_waiters();
    }

    /// Asks the writer for a heartbeat. Called by the one gateway-wide
    /// heartbeat tick (`crate::heartbeat`), so a connection carries no timer
    /// of its own and its writer polls none on every wake.
    pub fn heartbeat(&self) {
        let mut st = self.state.lock();
        if st.closed.is_some() || st.heartbeat_due || !st.started {
            return;
        }
        st.heartbeat_due = true;
        drop(st);
        self.writer.wake();
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().closed.is_some()
    }

    /// Moves everything queued into `buf`. Registers the writer's waker first,
    /// so a push racing with this call is never missed.
    pub fn poll_take(&self, cx: &mut Context<'_>, buf: &mut Vec<Out>) -> Poll<Taken> {
        self.writer.register(cx.waker());
        let mut st = self.state.lock();
        if st.aborted {
            return Poll::Ready(Taken::Aborted);
        }
        // Before the queue: a writer that always finds items must still
        // send heartbeats (and, on WebSocket, notice a silent peer).
        if std::mem::take(&mut st.heartbeat_due) {
            return Poll::Ready(Taken::Heartbeat);
        }
        if !st.queue.is_empty() {
            let from = buf.len();
            buf.extend(st.queue.drain(..));
            st.bytes = st.replay_bytes;
            st.started = true;
            if let Some(f) = &self.flusher {
                st.wrote_at = f.epoch();
            }
            let replaying = st.replay.is_some();
            let live = !std::mem::take(&mut st.has_replayed);
            drop(st);
            if let Some(f) = &self.flusher
                && live
                && f.wants_lag()
                && let Some(Out::Event(e)) = buf[from..].iter().find(|o| matches!(o, Out::Event(_)))
            {
                f.observe(e.seen_at.elapsed());
            }
            if replaying {
                self.drained.notify_waiters();
            }
            return Poll::Ready(Taken::Items);
        }
        match &st.closed {
            Some(reason) => Poll::Ready(Taken::Closed(reason.clone())),
            None => Poll::Pending,
        }
    }

    /// Async form of [`Conn::poll_take`].
    pub async fn take(&self, buf: &mut Vec<Out>) -> Taken {
        std::future::poll_fn(|cx| self.poll_take(cx, buf)).await
    }

    /// Starts buffering live events; see [`Conn::finish_replay`].
    pub fn begin_replay(&self) {
        self.state.lock().replay.get_or_insert_with(VecDeque::new);
    }

    /// Queues one replayed event, waiting while the queue is over half full
    /// so a long replay cannot overflow it. Returns false once closed.
    pub async fn push_replayed(&self, ev: Arc<Event>) -> bool {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            {
                let mut st = self.state.lock();
                if st.closed.is_some() {
                    return false;
                }
                if st.bytes - st.replay_bytes <= self.limit / 2 {
                    st.bytes += ev.cost();
                    st.has_replayed = true;
                    st.queue.push_back(Out::Event(ev));
                    drop(st);
                    self.writer.wake();
                    return true;
                }
            }
            drained.await;
        }
    }

    /// Ends a replay that delivered everything up to `after`: buffered live
    /// events beyond it follow in order; the ones the replay covered are dropped.
    pub fn finish_replay(&self, after: u64) {
        let mut st = self.state.lock();
        st.replayed_through = st.replayed_through.max(after);
        if let Some(buffer) = st.replay.take() {
            st.replay_bytes = 0;
            for ev in buffer {
                if ev.offset > after {
                    st.queue.push_back(Out::Event(ev));
                } else {
                    st.bytes -= ev.cost();
                }
            }
        }
        drop(st);
        self.writer.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Event;

    fn ev(offset: u64) -> Arc<Event> {
        Event::sample(offset, "t")
    }

    fn offsets(buf: &[Out]) -> Vec<u64> {
        buf.iter()
            .filter_map(|o| match o {
                Out::Event(e) => Some(e.offset),
                Out::Control(_) => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn replay_merges_with_buffered_live_events() {
        let conn = Conn::new(1, "c".into(), Transport::Sse, 1 << 20, None);
        conn.begin_replay();
        conn.push_live(&ev(4));
        conn.push_live(&ev(5));
        conn.push_live(&ev(5)); // a second matching pattern
        for o in 2..=4 {
            assert!(conn.push_replayed(ev(o)).await);
        }
        conn.finish_replay(4);
        // The hub may hand over an event the history read already returned.
        conn.push_live(&ev(4));
        conn.push_live(&ev(6));
        let mut buf = Vec::new();
        assert!(matches!(conn.take(&mut buf).await, Taken::Items));
        assert_eq!(offsets(&buf), vec![2, 3, 4, 5, 6]);
    }

    #[tokio::test]
    async fn overflow_closes_as_slow_consumer_and_drops_the_queue() {
        let conn = Conn::new(1, "c".into(), Transport::WebSocket, 200, None);
        for o in 1..=10 {
            conn.push_live(&ev(o));
        }
        let mut buf = Vec::new();
        match conn.take(&mut buf).await {
            Taken::Closed(e) => assert_eq!(e.code, ErrorCode::SlowConsumer),
            other => panic!("expected a close, got {other:?} {:?}", offsets(&buf)),
        }
        assert!(buf.is_empty());
    }

    #[tokio::test]
    async fn a_live_burst_during_replay_neither_stalls_nor_cuts_off_the_replay() {
        let conn = Conn::new(1, "c".into(), Transport::Sse, 1000, None);
        conn.begin_replay();
        // Live events held back: more than half the limit, less than all of it.
        for o in 100..108 {
            conn.push_live(&ev(o));
        }
        assert!(!conn.is_closed());
        // The queue is empty, so the replay must not wait for a drain.
        let pushed =
            tokio::time::timeout(std::time::Duration::from_secs(1), conn.push_replayed(ev(1)))
                .await;
        assert_eq!(pushed.ok(), Some(true));
        conn.finish_replay(1);
        let mut buf = Vec::new();
        assert!(matches!(conn.take(&mut buf).await, Taken::Items));
        assert_eq!(offsets(&buf), [1, 100, 101, 102, 103, 104, 105, 106, 107]);
    }

    /// An event the gateway saw `age` ago.
    fn aged(offset: u64, age: std::time::Duration) -> Arc<Event> {
        let mut e = Arc::try_unwrap(ev(offset)).expect("sole owner");
        e.seen_at = std::time::Instant::now() - age;
        Arc::new(e)
    }

    #[tokio::test]
    async fn auto_coalescing_starts_on_a_late_live_write_not_on_a_replay() {
        use crate::flush::{BUSY_LAG, Flusher, WriteDelay};
        let f = Flusher::for_setting(WriteDelay::Auto).expect("a flusher");
        let conn = Conn::new(1, "c".into(), Transport::Sse, 1 << 20, Some(f.clone()));
        let mut buf = Vec::new();
        // A replayed event is old by nature: it says nothing about the writers.
        conn.begin_replay();
        assert!(conn.push_replayed(aged(1, BUSY_LAG * 5)).await);
        conn.finish_replay(1);
        assert!(matches!(conn.take(&mut buf).await, Taken::Items));
        tokio::task::yield_now().await;
        assert!(!f.holds());
        // A live one on time: still writing at once.
        conn.push_live(&aged(2, std::time::Duration::ZERO));
        assert!(matches!(conn.take(&mut buf).await, Taken::Items));
        tokio::task::yield_now().await;
        assert!(!f.holds());
        // A live one that waited past the lag: the writers are behind.
        conn.push_live(&aged(3, BUSY_LAG * 2));
        assert!(matches!(conn.take(&mut buf).await, Taken::Items));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(f.holds());
        assert_eq!(offsets(&buf), vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn a_held_queue_that_gathered_a_full_write_wakes_the_writer_at_once() {
        use crate::flush::Flusher;
        use std::sync::atomic::AtomicUsize;
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        // A fixed hour-long delay: only a full queue can wake the writer.
        let f = Flusher::start(std::time::Duration::from_secs(3600));
        let conn = Conn::new(1, "c".into(), Transport::Sse, 1 << 20, Some(f));
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut buf = Vec::new();
        assert!(
            conn.poll_take(&mut cx, &mut buf).is_pending(),
            "the writer parks"
        );
        conn.push_live(&ev(1));
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "one small event is held");
        // A control frame behind it is not held.
        conn.push_control(Bytes::from_static(b"ack"));
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "a control frame is not held"
        );
        assert!(matches!(
            conn.poll_take(&mut cx, &mut buf),
            Poll::Ready(Taken::Items)
        ));
        assert_eq!(buf.len(), 2);
        buf.clear();
        count.0.store(0, Ordering::SeqCst);
        assert!(conn.poll_take(&mut cx, &mut buf).is_pending());
        // Small live events are held until they make a full write.
        let mut o = 2;
        while count.0.load(Ordering::SeqCst) == 0 {
            assert!((o as usize) * ev(o).cost() < FULL_WRITE * 2, "never woken");
            conn.push_live(&ev(o));
            o += 1;
        }
        assert!((o as usize - 2) * ev(1).cost() >= FULL_WRITE);
        assert!(matches!(
            conn.poll_take(&mut cx, &mut buf),
            Poll::Ready(Taken::Items)
        ));
        assert_eq!(offsets(&buf), (2..o).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn auto_holds_only_connections_whose_writer_wrote_within_a_tick() {
        use crate::flush::{AUTO_TICK, BUSY_LAG, Flusher, WriteDelay};
        use std::sync::atomic::AtomicUsize;
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let f = Flusher::for_setting(WriteDelay::Auto).expect("a flusher");
        let busy = Conn::new(1, "busy".into(), Transport::Sse, 1 << 20, Some(f.clone()));
        let sparse = Conn::new(2, "sparse".into(), Transport::Sse, 1 << 20, Some(f.clone()));
        let (cb, cs) = (
            Arc::new(Count(AtomicUsize::new(0))),
            Arc::new(Count(AtomicUsize::new(0))),
        );
        let (wb, ws) = (
            std::task::Waker::from(cb.clone()),
            std::task::Waker::from(cs.clone()),
        );
        let mut buf = Vec::new();
        // The writers fell behind: the gateway holds.
        f.observe(BUSY_LAG * 2);
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        assert!(f.holds());
        // `busy` writes now, within this tick; `sparse` last wrote before.
        busy.push_live(&ev(1));
        assert!(
            busy.poll_take(&mut Context::from_waker(&wb), &mut buf)
                .is_ready()
        );
        assert!(
            busy.poll_take(&mut Context::from_waker(&wb), &mut buf)
                .is_pending()
        );
        assert!(
            sparse
                .poll_take(&mut Context::from_waker(&ws), &mut buf)
                .is_pending()
        );
        cb.0.store(0, Ordering::SeqCst);
        busy.push_live(&ev(2));
        sparse.push_live(&ev(2));
        assert_eq!(cb.0.load(Ordering::SeqCst), 0, "busy gathers on the tick");
        assert_eq!(cs.0.load(Ordering::SeqCst), 1, "sparse is written at once");
        tokio::time::sleep(AUTO_TICK + std::time::Duration::from_millis(1)).await;
        assert_eq!(cb.0.load(Ordering::SeqCst), 1, "the tick wakes busy");
    }

    #[test]
    fn a_heartbeat_is_taken_once_ahead_of_queued_items_and_never_after_a_close() {
        let conn = Conn::new(1, "c".into(), Transport::Sse, 1 << 20, None);
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut buf = Vec::new();
        // Nothing before the welcome, which must be the first frame.
        conn.heartbeat();
        conn.push_control(Bytes::from_static(b"welcome"));
        assert!(matches!(
            conn.poll_take(&mut cx, &mut buf),
            Poll::Ready(Taken::Items)
        ));
        buf.clear();
        assert!(conn.poll_take(&mut cx, &mut buf).is_pending());
        conn.push_live(&ev(1));
        conn.heartbeat();
        conn.heartbeat(); // one tick's worth, however often asked
        assert!(matches!(
            conn.poll_take(&mut cx, &mut buf),
            Poll::Ready(Taken::Heartbeat)
        ));
        assert!(matches!(
            conn.poll_take(&mut cx, &mut buf),
            Poll::Ready(Taken::Items)
        ));
        assert_eq!(offsets(&buf), vec![1]);
        assert!(conn.poll_take(&mut cx, &mut buf).is_pending());
        conn.close(ProtocolError::new(ErrorCode::ShuttingDown, "bye"), false);
        conn.heartbeat();
        assert!(matches!(
            conn.poll_take(&mut cx, &mut buf),
            Poll::Ready(Taken::Closed(_))
        ));
    }

    #[tokio::test]
    async fn graceful_close_flushes_first() {
        let conn = Conn::new(1, "c".into(), Transport::Sse, 1 << 20, None);
        conn.push_live(&ev(1));
        conn.close(ProtocolError::new(ErrorCode::ShuttingDown, "bye"), false);
        let mut buf = Vec::new();
        assert!(matches!(conn.take(&mut buf).await, Taken::Items));
        assert_eq!(offsets(&buf), vec![1]);
        assert!(matches!(conn.take(&mut buf).await, Taken::Closed(_)));
    }
}
