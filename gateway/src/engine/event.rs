//! An accepted event, serialized once, when the engine accepts it: every
//! subscriber gets a reference-counted handle to the same bytes.

use crate::transport::frame::Frames;
use bytes::Bytes;
use eventwire_protocol::{Envelope, Topic};
use serde_json::value::RawValue;
use std::time::Instant;

/// A validated event that no engine has accepted yet: every attribute but
/// `seq` is filled in.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub topic: Topic,
    pub envelope: Envelope<Box<RawValue>>,
}

impl NewEvent {
    pub fn id(&self) -> &str {
        self.envelope.id.as_deref().unwrap_or_default()
    }

    /// What engines dedupe on: the id scoped by the publisher, as stamped in
    /// `source` (CloudEvents: `source` + `id` identify an event). The gateway
    /// stamps `source` with a user's subject (and a fixed source for
    /// anonymous publishes), so one identity can neither suppress another's
    /// event by publishing its id first nor learn whether that id exists.
    ///
    /// The source's length comes first so that no (source, id) pair can be
    /// spelled as another; the key is printable, as a NATS header must be.
    pub fn dedupe_key(&self) -> String {
        let source = self.envelope.source.as_deref().unwrap_or_default();
        format!("{}:{source}:{}", source.len(), self.id())
    }

    /// The envelope JSON with `seq` set: what subscribers receive.
    pub fn encode(&mut self, seq: &str) -> Bytes {
        self.envelope.seq = Some(seq.to_owned());
        let json = serde_json::to_vec(&self.envelope).expect("an envelope always serializes");
        self.envelope.seq = None;
        Bytes::from(json)
    }
}

#[derive(Debug)]
pub struct Event {
    /// Engine order; comparable only within one engine epoch.
    pub offset: u64,
    pub seq: String,
    pub id: String,
    pub topic: Topic,
    /// The envelope JSON, `seq` included, on one line.
    pub json: Bytes,
    /// When this gateway first saw the event, for the publish-to-write histogram.
    pub seen_at: Instant,
    /// The wire frames, built by the transports on first use; opaque here.
    pub(crate) frames: Frames,
}

impl Event {
    pub fn new(offset: u64, seq: String, id: String, topic: Topic, json: Bytes) -> Event {
        Event {
            offset,
            seq,
            id,
            topic,
            json,
            seen_at: Instant::now(),
            frames: Frames::default(),
        }
    }

    /// Bytes counted against a connection's queue limit.
    pub fn cost(&self) -> usize {
        self.json.len() + 64
    }
}

#[cfg(test)]
impl Event {
    /// A small event at `offset` on `topic`, for unit tests.
    pub fn sample(offset: u64, topic: &str) -> std::sync::Arc<Event> {
        std::sync::Arc::new(Event::new(
            offset,
            format!("e-{offset}"),
            format!("id{offset}"),
            Topic::parse(topic).expect("a valid topic"),
            Bytes::from_static(b"{}"),
        ))
    }
}
