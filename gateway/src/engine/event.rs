//! An accepted event and its encodings.
//!
//! Each event is serialized once, when the engine accepts it, and each
//! framing (SSE, WebSocket) is built at most once from those bytes. Every
//! subscriber gets a reference-counted handle to the same bytes.

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use eventwire_protocol::{Envelope, Topic, frame};
use serde_json::value::RawValue;
use std::sync::OnceLock;
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
    sse_named: OnceLock<Bytes>,
    sse_unnamed: OnceLock<Bytes>,
    ws: OnceLock<Utf8Bytes>,
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
            sse_named: OnceLock::new(),
            sse_unnamed: OnceLock::new(),
            ws: OnceLock::new(),
        }
    }

    /// Bytes counted against a connection's queue limit.
    pub fn cost(&self) -> usize {
        self.json.len() + 64
    }

    /// The SSE frame. `named` puts the type on an `event:` line; unnamed
    /// frames reach `EventSource.onmessage`, which a client listening to
    /// wildcard patterns needs because it cannot know every type in advance.
    pub fn sse_frame(&self, named: bool) -> Bytes {
        let cell = if named {
            &self.sse_named
        } else {
            &self.sse_unnamed
        };
        cell.get_or_init(|| {
            // No CR or LF in any of the three fields: the topic grammar and
            // the position format forbid them, serde_json writes compact
            // JSON, and ingest strips line breaks from `data`.
            let mut out = Vec::with_capacity(
                self.json.len() + self.seq.len() + self.topic.as_str().len() + 24,
            );
            out.extend_from_slice(b"id: ");
            out.extend_from_slice(self.seq.as_bytes());
            if named {
                out.extend_from_slice(b"\nevent: ");
                out.extend_from_slice(self.topic.as_str().as_bytes());
            }
            out.extend_from_slice(b"\ndata: ");
            out.extend_from_slice(&self.json);
            out.extend_from_slice(b"\n\n");
            Bytes::from(out)
        })
        .clone()
    }

    /// The WebSocket `event` frame.
    pub fn ws_frame(&self) -> Utf8Bytes {
        self.ws
            .get_or_init(|| {
                let json = std::str::from_utf8(&self.json).expect("serde_json writes UTF-8");
                Utf8Bytes::from(frame::event_frame(json))
            })
            .clone()
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
