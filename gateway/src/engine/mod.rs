//! The broker behind one narrow trait, so the memory and NATS JetStream
//! engines are interchangeable and pass one conformance suite.
//!
//! An engine orders events: each accepted event gets a position (`seq` on the
//! wire, an `offset` inside the gateway) and is handed to live subscribers in
//! that order. The hub relies on this to merge replay and live delivery.

pub mod args;
pub mod dedupe;
pub mod disk;
pub mod event;
pub mod memory;
pub mod nats;
pub mod position;

use crate::groups::GroupBackend;
use async_trait::async_trait;
use eventwire_protocol::{ErrorCode, Pattern, ProtocolError};
use std::sync::Arc;
use tokio::sync::mpsc;

pub use args::{Built, EngineArgs, EngineKind, build};
pub use event::{Event, NewEvent};
pub use memory::MemoryEngine;

/// What `publish` returns once the engine holds the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub id: String,
    pub seq: String,
    /// An event with this id was already accepted inside the dedupe window;
    /// `seq` is the original one and nothing was delivered again.
    pub duplicate: bool,
}

/// A history read: events after a position, matching any of some patterns.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub patterns: Vec<Pattern>,
    /// Read events after this position; `None` reads from the oldest retained.
    pub since: Option<String>,
    pub limit: usize,
}

#[derive(Debug, Clone, Default)]
pub struct History {
    /// In position order.
    pub events: Vec<Arc<Event>>,
    /// False when `since` is older than what is retained, belongs to another
    /// epoch, or lies in the future: events may have been missed.
    pub recovered: bool,
    /// The offset `since` stands for, when it belongs to this engine's epoch.
    pub after: Option<u64>,
    /// True when `limit` cut the read short.
    pub more: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// A `since` that is not a position at all.
    InvalidPosition(String),
    /// The broker cannot take requests now.
    Unavailable(String),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::InvalidPosition(m) | EngineError::Unavailable(m) => f.write_str(m),
        }
    }
}

impl From<EngineError> for ProtocolError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::InvalidPosition(m) => ProtocolError::new(ErrorCode::InvalidPosition, m),
            EngineError::Unavailable(m) => ProtocolError::new(ErrorCode::EngineUnavailable, m),
        }
    }
}

/// Live events from `subscribe`, in position order. Unbounded because the
/// only reader is the hub, which never blocks: it moves events into
/// per-connection queues that are bounded in bytes.
pub type EventStream = mpsc::UnboundedReceiver<Arc<Event>>;

/// A live subscription, and where in the stream it starts.
pub struct Subscription {
    pub events: EventStream,
    /// The position just before the first event `events` will carry: the
    /// newest position at the moment of subscribing.
    pub from: String,
    /// Bumped when events were lost before they could be handed on (e.g.
    /// evicted by retention during a long broker outage). The hub then ends
    /// every connection so that clients resume and are told
    /// `recovered: false`. Engines that cannot lose events never bump it.
    pub gaps: tokio::sync::watch::Receiver<u64>,
}

impl Subscription {
    /// A subscription whose engine never loses events on the way.
    pub fn lossless(events: EventStream, from: String) -> Subscription {
        let (tx, gaps) = tokio::sync::watch::channel(0);
        // Keep the sender alive for as long as the receiver, so `changed()`
        // waits forever instead of failing at once.
        std::mem::forget(tx);
        Subscription { events, from, gaps }
    }
}

#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Short name shown in `welcome` and logs.
    fn name(&self) -> &'static str;

    /// Accepts an event and returns its position once the engine holds it.
    /// Dedupes by [`NewEvent::dedupe_key`] (`source` + `id`) inside the
    /// engine's window: a duplicate gets the first event's `seq`.
    async fn publish(&self, event: NewEvent) -> Result<Accepted, EngineError>;

    /// Accepts several events in this order, each as `publish` would. Stops
    /// at the first error: the events after it are not attempted. An engine
    /// that can store them together (one write, one sync) overrides this.
    async fn publish_batch(&self, events: Vec<NewEvent>) -> Vec<Result<Accepted, EngineError>> {
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            let r = self.publish(event).await;
            let failed = r.is_err();
            out.push(r);
            if failed {
                break;
            }
        }
        out
    }

    /// Every event accepted from now on whose type matches `pattern`.
    async fn subscribe(&self, pattern: Pattern) -> Result<Subscription, EngineError>;

    /// Retained events after a position.
    async fn history(&self, query: HistoryQuery) -> Result<History, EngineError>;

    /// Rejects a malformed position without touching the broker, so a bad
    /// `Last-Event-ID` gets its error before a stream starts.
    fn check_position(&self, seq: &str) -> Result<(), EngineError> {
        position::Position::parse(seq).map(|_| ())
    }

    /// Whether the engine can take requests now (`/readyz`).
    async fn ready(&self) -> Result<(), EngineError>;

    /// Consumer groups that the broker itself keeps (NATS: durable
    /// JetStream consumers that every gateway on the stream shares). `None`,
    /// the default, lets the gateway keep them in a
    /// [`crate::groups::GroupStore`]. Called once, when the gateway is built.
    async fn groups(&self) -> Result<Option<Arc<dyn GroupBackend>>, EngineError> {
        Ok(None)
    }
}
