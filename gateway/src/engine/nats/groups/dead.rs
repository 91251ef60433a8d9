//! The groups stream, beside the events stream: dead letters on
//! `<prefix>-dead.<group>` and redriven letters on `<prefix>-redrive.<group>`.
//!
//! A dead letter is a JSON record holding the event as delivered (envelope
//! with `seq`), its attempts, the last reason and the time. A redriven
//! letter is the event's JSON alone; the group's second consumer hands it
//! out like a new event. Both are outside `<prefix>.>`, so browsers never
//! see them as events.

use super::super::{Core, unavailable};
use crate::engine::position::Position;
use crate::engine::{EngineError, Event};
use crate::groups::ledger::DeadLetter;
use async_nats::jetstream::stream::{Config, RetentionPolicy, Stream};
use bytes::Bytes;
use eventwire_protocol::{ErrorCode, ProtocolError, Topic};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::sync::Arc;

pub fn stream_name(events_stream: &str) -> String {
    format!("{events_stream}_GROUPS")
}

pub fn dead_subject(prefix: &str, group: &str) -> String {
    format!("{prefix}-dead.{group}")
}

pub fn redrive_subject(prefix: &str, group: &str) -> String {
    format!("{prefix}-redrive.{group}")
}

/// Creates the groups stream if it is missing (same replicas as the events
/// stream; no limits: dead letters stay until redriven or the group is
/// deleted).
pub async fn ensure(core: &Core) -> Result<Stream<()>, EngineError> {
    let prefix = &core.config.prefix;
    let config = Config {
        name: stream_name(&core.config.stream),
        description: Some("eventwire consumer groups: dead and redriven letters".into()),
        subjects: vec![format!("{prefix}-dead.>"), format!("{prefix}-redrive.>")],
        retention: RetentionPolicy::Limits,
        num_replicas: core.config.replicas,
        ..Config::default()
    };
    core.js
        .get_or_create_stream(config)
        .await
        .map_err(|e| unavailable("creating the groups stream", e))?;
    core.js
        .get_stream_no_info(stream_name(&core.config.stream))
        .await
        .map_err(|e| unavailable("opening the groups stream", e))
}

#[derive(Serialize, Deserialize)]
struct Record<'a> {
    attempts: u32,
    reason: String,
    /// Unix ms.
    at: u64,
    #[serde(borrow)]
    event: &'a RawValue,
}

pub fn record(dead: &DeadLetter) -> Bytes {
    let event = std::str::from_utf8(&dead.event.json).expect("events are UTF-8 JSON");
    let event: &RawValue = serde_json::from_str(event).expect("events are JSON");
    let r = Record {
        attempts: dead.attempts,
        reason: dead.reason.clone(),
        at: dead.at,
        event,
    };
    Bytes::from(serde_json::to_vec(&r).expect("a record serializes"))
}

pub fn parse_record(payload: &[u8]) -> Result<DeadLetter, ProtocolError> {
    let r: Record = serde_json::from_slice(payload).map_err(|e| {
        ProtocolError::new(ErrorCode::InvalidJson, format!("not a dead letter: {e}"))
    })?;
    Ok(DeadLetter {
        event: event(Bytes::copy_from_slice(r.event.get().as_bytes()))?,
        attempts: r.attempts,
        reason: r.reason,
        at: r.at,
    })
}

/// An event from its delivered JSON (`seq` included), as dead and
/// redriven letters carry it.
pub fn event(json: Bytes) -> Result<Arc<Event>, ProtocolError> {
    #[derive(Deserialize)]
    struct Head {
        id: String,
        #[serde(rename = "type")]
        ty: String,
        seq: String,
    }
    let head: Head = serde_json::from_slice(&json).map_err(|e| {
        ProtocolError::new(ErrorCode::InvalidJson, format!("not a stored event: {e}"))
    })?;
    let offset = Position::parse(&head.seq)?.offset;
    let topic = Topic::parse(&head.ty)?;
    Ok(Arc::new(Event::new(offset, head.seq, head.id, topic, json)))
}
