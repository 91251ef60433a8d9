//! Local fan-out: one engine subscription per gateway, routed to every
//! connection through a pattern trie.
//!
//! The hub also owns resume: it registers a connection's patterns first,
//! then reads history, and merges the two so that nothing published in
//! between is lost or delivered twice.

use crate::conn::{Conn, Out, Transport};
use crate::engine::position::Position;
use crate::engine::{Accepted, Engine, EngineError, History, HistoryQuery, NewEvent};
use crate::flush::Flusher;
use crate::limits::Budget;
use crate::metrics::Metrics;
use crate::sublist::Sublist;
use bytes::Bytes;
use eventwire_protocol::topic::Segment;
use eventwire_protocol::{ErrorCode, Pattern, ProtocolError};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;

/// Events read from history per engine call during a replay.
const REPLAY_PAGE: usize = 512;

pub struct Hub {
    engine: Arc<dyn Engine>,
    metrics: Arc<Metrics>,
    subs: RwLock<Sublist<Arc<Conn>>>,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// The live connection of each channel instance (see
    /// [`crate::transport::instance_key`]), by connection key.
    instances: Mutex<HashMap<String, u64>>,
    next_key: AtomicU64,
    node: String,
    max_subscriptions: usize,
    outbox_bytes: usize,
    flusher: Option<Arc<Flusher>>,
    /// The newest event routed, or where the engine stream started. Read
    /// under the trie's write lock, it is exactly the position after which
    /// a newly registered connection gets every matching event.
    routed: Mutex<Routed>,
    /// Publish backpressure: bytes of events this gateway accepted that the
    /// routing task has not reached yet. The engine's stream to the hub is
    /// unbounded; this budget is what keeps it short.
    backlog: Budget,
    /// Backlog permits by the offset of their event, released once routing
    /// passes that offset.
    unrouted: Mutex<BTreeMap<u64, Vec<OwnedSemaphorePermit>>>,
    max_wildcards: usize,
    /// History reads running at once (HTTP reads and resume replays).
    reads: Budget,
}

/// The hub's own bounds, from configuration.
#[derive(Debug, Clone)]
pub struct HubLimits {
    pub max_subscriptions: usize,
    pub outbox_bytes: usize,
    pub write_delay: crate::flush::WriteDelay,
    pub route_backlog_bytes: usize,
    pub max_pattern_wildcards: usize,
    pub max_history_reads: usize,
    pub queue_timeout: Duration,
    /// How often every connection gets a heartbeat (see [`crate::heartbeat`]).
    pub heartbeat: Duration,
}

impl HubLimits {
    pub fn from_config(c: &crate::Config) -> HubLimits {
        HubLimits {
            max_subscriptions: c.max_subscriptions,
            outbox_bytes: c.outbox_bytes,
            write_delay: c.write_delay,
            route_backlog_bytes: c.route_backlog_bytes,
            max_pattern_wildcards: c.max_pattern_wildcards,
            max_history_reads: c.max_history_reads,
            queue_timeout: c.queue_timeout,
            heartbeat: c.heartbeat,
        }
    }
}

/// A publish's place in the routing backlog, taken before the engine sees
/// the event; see [`Hub::reserve`] and [`Hub::routing`].
pub struct Reservation(OwnedSemaphorePermit);

enum Routed {
    Start(String),
    Event(Arc<crate::engine::Event>),
}

impl Routed {
    fn seq(&self) -> String {
        match self {
            Routed::Start(s) => s.clone(),
            Routed::Event(e) => e.seq.clone(),
        }
    }
}

impl Hub {
    /// Subscribes to everything the engine carries and starts routing.
    pub async fn start(
        engine: Arc<dyn Engine>,
        metrics: Arc<Metrics>,
        limits: HubLimits,
    ) -> Result<Arc<Hub>, EngineError> {
        let HubLimits {
            max_subscriptions,
            outbox_bytes,
            write_delay,
            heartbeat,
            ..
        } = limits;
        let sub = engine
            .subscribe(Pattern::parse(">").expect("valid"))
            .await?;
        let mut stream = sub.events;
        let mut gaps = sub.gaps;
        let hub = Arc::new(Hub {
            engine,
            metrics,
            subs: RwLock::new(Sublist::default()),
            conns: Mutex::new(HashMap::new()),
            instances: Mutex::new(HashMap::new()),
            next_key: AtomicU64::new(1),
            node: format!("{:06x}", uuid::Uuid::new_v4().as_u128() as u32 & 0xff_ffff),
            max_subscriptions,
            outbox_bytes,
            flusher: Flusher::for_setting(write_delay),
            routed: Mutex::new(Routed::Start(sub.from)),
            backlog: Budget::new(
                limits.route_backlog_bytes,
                limits.queue_timeout,
                "event bytes waiting to be routed",
            ),
            unrouted: Mutex::new(BTreeMap::new()),
            max_wildcards: limits.max_pattern_wildcards,
            reads: Budget::new(
                limits.max_history_reads,
                limits.queue_timeout,
                "history reads at once",
            ),
        });
        crate::heartbeat::start(Arc::downgrade(&hub), heartbeat);
        let weak = Arc::downgrade(&hub);
        tokio::spawn(async move {
            let mut overflowed = Vec::new();
            loop {
                let ev = tokio::select! {
                    ev = stream.recv() => ev,
                    Ok(()) = gaps.changed() => {
                        // Events were lost upstream: every connection must
                        // resume, and will be told `recovered: false`.
                        if let Some(hub) = weak.upgrade() {
                            tracing::error!("the engine lost events before they reached this gateway; ending every connection");
                            hub.close_all(ProtocolError::new(
                                ErrorCode::SlowConsumer,
                                "events were lost upstream; resume to learn what is missing",
                            ));
                        }
                        continue;
                    }
                };
                let Some(ev) = ev else {
                    if let Some(hub) = weak.upgrade() {
                        tracing::error!("the engine's event stream ended; ending every connection");
                        hub.close_all(ProtocolError::new(
                            ErrorCode::EngineUnavailable,
                            "the engine's event stream ended",
                        ));
                    }
                    break;
                };
                let Some(hub) = weak.upgrade() else { break };
                {
                    let subs = hub.subs.read();
                    subs.for_each_match(ev.topic.as_str(), |_, conn| {
                        if !conn.push_live(&ev) {
                            overflowed.push(conn.clone());
                        }
                    });
                    let offset = ev.offset;
                    *hub.routed.lock() = Routed::Event(ev);
                    hub.routed_through(offset);
                }
                // Unregister at once: a stalled socket may not notice its
                // close for a while, and routing to it meanwhile is waste.
                for conn in overflowed.drain(..) {
                    hub.metrics.disconnect(ErrorCode::SlowConsumer.as_str());
                    hub.disconnect(&conn);
                }
            }
        });
        Ok(hub)
    }

    /// Takes room in the routing backlog for events about to be published:
    /// waits while the hub is behind, then `overloaded`.
    pub async fn reserve(&self, events: &[NewEvent]) -> Result<Reservation, ProtocolError> {
        // The envelope's attributes are at most a few hundred bytes; `data`
        // is what varies.
        let size = events
            .iter()
            .map(|e| e.envelope.data.as_ref().map_or(0, |d| d.get().len()) + 512)
            .sum();
        Ok(Reservation(self.backlog.take(size).await?))
    }

    /// Holds a reservation until routing has passed the newest of the
    /// positions the engine gave the events. Duplicates are not routed
    /// again; a reservation with nothing new is given back at once.
    pub fn routing<'a>(
        &self,
        reservation: Reservation,
        accepted: impl IntoIterator<Item = &'a Accepted>,
    ) {
        let Some(offset) = accepted
            .into_iter()
            .filter(|a| !a.duplicate)
            .filter_map(|a| Position::parse(&a.seq).ok().map(|p| p.offset))
            .max()
        else {
            return;
        };
        let mut unrouted = self.unrouted.lock();
        // Checked under the lock `routed_through` takes, so a reservation
        // is never parked after its event was routed.
        if self.routed_offset() >= offset {
            return;
        }
        unrouted.entry(offset).or_default().push(reservation.0);
    }

    fn routed_offset(&self) -> u64 {
        match &*self.routed.lock() {
            Routed::Event(e) => e.offset,
            Routed::Start(s) => Position::parse(s).map_or(0, |p| p.offset),
        }
    }

    /// Releases the reservations of events up to `offset`.
    fn routed_through(&self, offset: u64) {
        let mut unrouted = self.unrouted.lock();
        if unrouted
            .first_key_value()
            .is_some_and(|(k, _)| *k <= offset)
        {
            let later = unrouted.split_off(&(offset + 1));
            *unrouted = later;
        }
    }

    /// Waits (at most `within`) until every event published through this
    /// gateway has been routed, e.g. before shutdown closes connections.
    pub async fn settle(&self, within: Duration) {
        let until = tokio::time::Instant::now() + within;
        while !self.unrouted.lock().is_empty() && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Bytes reserved in the routing backlog now.
    pub fn backlog_bytes(&self) -> usize {
        self.backlog.in_use()
    }

    /// Reads history within the bound on concurrent reads.
    pub async fn history(&self, query: HistoryQuery) -> Result<History, ProtocolError> {
        let _slot = self.reads.take(1).await?;
        Ok(self.engine.history(query).await?)
    }

    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Registers a new connection. Pair with [`Hub::disconnect`].
    pub fn connect(&self, transport: Transport) -> Arc<Conn> {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new(
            key,
            format!("{}-{key}", self.node),
            transport,
            self.outbox_bytes,
            self.flusher.clone(),
        ));
        self.conns.lock().insert(key, conn.clone());
        self.metrics.connections(transport).increment(1.0);
        conn
    }

    /// The connections whose key falls in `slot` of `slots`, into `out`
    /// (for the heartbeat tick, which visits one slot per tick).
    pub fn connections_in_slot(&self, slot: u64, slots: u64, out: &mut Vec<Arc<Conn>>) {
        out.extend(
            self.conns
                .lock()
                .iter()
                .filter(|(key, _)| *key % slots == slot)
                .map(|(_, conn)| conn.clone()),
        );
    }

    /// Forgets a connection and all its subscriptions.
    pub fn disconnect(&self, conn: &Conn) {
        let patterns = std::mem::take(&mut *conn.patterns.lock());
        {
            let mut subs = self.subs.write();
            for p in &patterns {
                subs.remove(p, conn.key);
            }
        }
        if self.conns.lock().remove(&conn.key).is_some() {
            self.metrics.connections(conn.transport).decrement(1.0);
        }
    }

    /// Makes `conn` the live connection of channel instance `key`, ending
    /// the one it replaces as `superseded`, queued events discarded: the
    /// client resumes on the new connection from what it last received.
    pub fn claim_instance(&self, key: &str, conn: &Arc<Conn>) {
        let old = self.instances.lock().insert(key.to_owned(), conn.key);
        let Some(old) = old.filter(|k| *k != conn.key) else {
            return;
        };
        let old = self.conns.lock().get(&old).cloned();
        if let Some(old) = old {
            tracing::debug!(old = %old.id, new = %conn.id, "stream superseded by its instance");
            self.end(
                &old,
                ProtocolError::new(
                    ErrorCode::Superseded,
                    "a newer connection of this channel instance replaced this one",
                ),
                true,
            );
        }
    }

    /// Forgets channel instance `key` if `conn` is still its live connection.
    pub fn release_instance(&self, key: &str, conn: &Conn) {
        let mut instances = self.instances.lock();
        if instances.get(key) == Some(&conn.key) {
            instances.remove(key);
        }
    }

    pub fn connection_count(&self) -> usize {
        self.conns.lock().len()
    }

    /// Ends a connection for `reason`: it is told why, counted, and
    /// unregistered at once. With `discard`, queued items are dropped.
    pub fn end(&self, conn: &Conn, reason: ProtocolError, discard: bool) {
        if conn.is_closed() {
            return;
        }
        self.metrics.disconnect(reason.code.as_str());
        conn.close(reason, discard);
        self.disconnect(conn);
    }

    /// Ends every connection, e.g. on shutdown. Queued events are written first.
    pub fn close_all(&self, reason: ProtocolError) {
        let conns: Vec<_> = self.conns.lock().values().cloned().collect();
        for c in conns {
            self.end(&c, reason.clone(), false);
        }
    }

    /// Adds patterns to a connection, all or none, within its limit.
    /// Returns how many were new.
    /// `then` runs while the trie is write-locked, so whatever it queues
    /// precedes every event routed through the new patterns.
    /// Returns the position after which the connection gets every event.
    fn add_patterns(
        &self,
        conn: &Arc<Conn>,
        patterns: &[Pattern],
        then: impl FnOnce(&str),
    ) -> Result<String, ProtocolError> {
        if let Some(p) = patterns.iter().find(|p| wildcards(p) > self.max_wildcards) {
            return Err(ProtocolError::new(
                ErrorCode::InvalidPattern,
                format!(
                    "{p}: a pattern may hold at most {} `*` wildcards",
                    self.max_wildcards
                ),
            ));
        }
        let mut mine = conn.patterns.lock();
        let mut fresh: Vec<&Pattern> = Vec::new();
        for p in patterns {
            if !mine.contains(p) && !fresh.contains(&p) {
                fresh.push(p);
            }
        }
        if mine.len() + fresh.len() > self.max_subscriptions {
            return Err(ProtocolError::new(
                ErrorCode::TooManySubscriptions,
                format!(
                    "a connection may hold at most {} subscriptions; it has {} and asked for {} more",
                    self.max_subscriptions,
                    mine.len(),
                    fresh.len()
                ),
            ));
        }
        let mut subs = self.subs.write();
        for p in &fresh {
            subs.insert(p, conn.key, conn.clone());
            mine.push((*p).clone());
        }
        let position = self.routed.lock().seq();
        then(&position);
        Ok(position)
    }

    /// Removes patterns from a connection; unknown ones are ignored.
    pub fn unsubscribe(&self, conn: &Conn, patterns: &[Pattern]) {
        let mut mine = conn.patterns.lock();
        let mut subs = self.subs.write();
        for p in patterns {
            if let Some(i) = mine.iter().position(|m| m == p) {
                mine.remove(i);
                subs.remove(p, conn.key);
            }
        }
    }

    /// Subscribes `conn` to `patterns`. Without `since`, `ack(true, p)` is
    /// queued at once: every event after position `p` will be delivered, so
    /// a client that got nothing yet can still resume from `p`. With
    /// `since`, a replay task queues `ack(recovered, p)`, then the missed
    /// events, then live ones, in position order; there `p` is `since`
    /// itself unless nothing is replayed (see [`Hub::replay`]).
    pub fn subscribe(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        patterns: Vec<Pattern>,
        since: Option<String>,
        ack: impl FnOnce(bool, String) -> Bytes + Send + 'static,
    ) -> Result<(), ProtocolError> {
        let Some(since) = since else {
            self.add_patterns(conn, &patterns, |p| {
                conn.push_control(ack(true, p.to_owned()))
            })?;
            return Ok(());
        };
        self.engine.check_position(&since)?;
        if patterns.is_empty() {
            // Nothing subscribed, so nothing was missed: the live start is
            // exact, and there is no history to read.
            self.add_patterns(conn, &patterns, |p| {
                conn.push_control(ack(true, p.to_owned()))
            })?;
            return Ok(());
        }
        conn.begin_replay();
        let position = match self.add_patterns(conn, &patterns, |_| {}) {
            Ok(p) => p,
            Err(e) => {
                conn.finish_replay(0);
                return Err(e);
            }
        };
        let hub = self.clone();
        let conn = conn.clone();
        tokio::spawn(async move { hub.replay(conn, patterns, since, position, ack).await });
        Ok(())
    }

    async fn replay(
        &self,
        conn: Arc<Conn>,
        patterns: Vec<Pattern>,
        since: String,
        live_start: String,
        ack: impl FnOnce(bool, String) -> Bytes,
    ) {
        let mut ack = Some(ack);
        let mut cursor = since;
        let mut after = 0;
        loop {
            let query = HistoryQuery {
                patterns: patterns.clone(),
                since: Some(cursor.clone()),
                limit: REPLAY_PAGE,
            };
            // A replay waits its turn among history reads rather than
            // failing: its connection is already counted and bounded.
            let page = {
                let _slot = self.reads.take_patiently(1).await;
                self.engine.history(query).await
            };
            let page = match page {
                Ok(page) => page,
                Err(e) => return self.end(&conn, e.into(), true),
            };
            if let Some(ack) = ack.take() {
                let counter = if page.recovered {
                    &self.metrics.replay_hit
                } else {
                    &self.metrics.replay_miss
                };
                counter.increment(1);
                after = page.after.unwrap_or(0);
                // The start position must be safe to adopt the moment it
                // arrives (PROTOCOL §4.3): while events are replayed after
                // it, that is the client's own `since`; the live start is
                // newer than the replay and would skip it if the client
                // dropped mid-replay. With nothing to replay, the live
                // start is exact, and it spares a client whose `since`
                // was foreign a second `recovered:false`.
                let nothing_replayed = page.events.is_empty() && !page.more;
                let start = if page.recovered || !nothing_replayed {
                    cursor.clone()
                } else {
                    live_start.clone()
                };
                conn.push_control(ack(page.recovered, start));
            } else if !page.recovered {
                // History moved past us mid-replay: end the connection so the
                // client resumes and is told about the gap.
                return self.end(
                    &conn,
                    ProtocolError::new(
                        ErrorCode::SlowConsumer,
                        "history was truncated during replay",
                    ),
                    false,
                );
            }
            for ev in page.events.iter() {
                after = after.max(ev.offset);
                if !conn.push_replayed(ev.clone()).await {
                    return;
                }
            }
            match (page.more, page.events.last()) {
                (true, Some(last)) => cursor = last.seq.clone(),
                _ => break,
            }
        }
        conn.finish_replay(after);
    }
}

/// Single-segment wildcards in a pattern. Routing an event visits at most
/// one trie node per distinct prefix that matches its topic; with at most
/// `w` wildcards per pattern, a topic of 16 segments meets at most
/// sum over depths d of sum over j <= w of C(d, j) such prefixes (9,401
/// for w = 4), however many patterns there are.
fn wildcards(p: &Pattern) -> usize {
    p.segments()
        .iter()
        .filter(|s| matches!(s, Segment::One))
        .count()
}

/// Shared by both transports' writers: what the gateway counts once a
/// batch has been handed to the socket.
pub fn record_batch(metrics: &Metrics, transport: Transport, batch: &[Out]) {
    let mut n = 0;
    let mut oldest = None;
    for item in batch {
        if let Out::Event(e) = item {
            n += 1;
            oldest.get_or_insert(e.seen_at);
        }
    }
    if n > 0 {
        metrics.delivered(transport).increment(n);
    }
    if let Some(t) = oldest {
        metrics.publish_to_write.record(t.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Taken;
    use crate::engine::Subscription;
    use crate::engine::memory::{MemoryConfig, MemoryEngine};
    use async_trait::async_trait;

    /// The memory engine, but with a handle to report lost events, as the
    /// NATS engine does after an outage longer than its retention.
    struct Lossy {
        inner: MemoryEngine,
        gaps: parking_lot::Mutex<Option<tokio::sync::watch::Sender<u64>>>,
    }

    #[async_trait]
    impl Engine for Lossy {
        fn name(&self) -> &'static str {
            "lossy"
        }
        async fn publish(&self, event: NewEvent) -> Result<Accepted, EngineError> {
            self.inner.publish(event).await
        }
        async fn subscribe(&self, pattern: Pattern) -> Result<Subscription, EngineError> {
            let mut sub = self.inner.subscribe(pattern).await?;
            let (tx, rx) = tokio::sync::watch::channel(0);
            *self.gaps.lock() = Some(tx);
            sub.gaps = rx;
            Ok(sub)
        }
        async fn history(&self, query: HistoryQuery) -> Result<History, EngineError> {
            self.inner.history(query).await
        }
        async fn ready(&self) -> Result<(), EngineError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn events_lost_upstream_end_every_connection_so_clients_resume() {
        let engine = Arc::new(Lossy {
            inner: MemoryEngine::new(MemoryConfig::default()),
            gaps: parking_lot::Mutex::new(None),
        });
        let hub = Hub::start(
            engine.clone(),
            Arc::new(Metrics::new()),
            HubLimits::from_config(&crate::Config::defaults()),
        )
        .await
        .unwrap();
        let conn = hub.connect(Transport::Sse);
        hub.subscribe(&conn, vec![Pattern::parse("a").unwrap()], None, |_, _| {
            Bytes::new()
        })
        .unwrap();
        let mut buf = Vec::new();
        assert!(matches!(conn.take(&mut buf).await, Taken::Items), "the ack");
        engine
            .gaps
            .lock()
            .as_ref()
            .unwrap()
            .send_modify(|n| *n += 1);
        let taken = tokio::time::timeout(std::time::Duration::from_secs(5), conn.take(&mut buf))
            .await
            .expect("the connection was ended");
        match taken {
            Taken::Closed(e) => assert_eq!(e.code, ErrorCode::SlowConsumer),
            other => panic!("{other:?}"),
        }
        assert_eq!(hub.connection_count(), 0);
    }
}
