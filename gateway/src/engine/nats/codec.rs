//! Between envelopes and JetStream messages: subjects, the stored payload,
//! and turning a stored message back into the [`Event`] subscribers get.
//!
//! The stream holds the envelope JSON without `seq`: the position is the
//! stream sequence, known only once JetStream has stored the message.

use super::super::position::Position;
use super::super::{Event, NewEvent};
use crate::publish::ingest;
use async_nats::HeaderMap;
use bytes::Bytes;
use eventwire_protocol::{ErrorCode, ProtocolError};
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::sync::Arc;
use std::time::SystemTime;

/// `source` given to events that backends put on the stream without one.
pub const BACKEND_SOURCE: &str = "eventwire/nats";

/// The header JetStream dedupes on.
pub const MSG_ID: &str = "Nats-Msg-Id";

/// Everything needed to map between topics, subjects and positions for one stream.
#[derive(Debug, Clone)]
pub struct Codec {
    /// Subject prefix, without the trailing dot.
    pub prefix: String,
    pub epoch: String,
    /// Largest stored envelope decoded; bigger ones are skipped, as
    /// `--max-event-bytes` would have refused them at the gateway.
    pub max_event_bytes: usize,
}

/// Which optional attributes a stored envelope carries itself. A backend may
/// leave them out; the gateway then fills them in from the message, the same
/// way on every node and on every read, so two gateways agree on the event.
#[derive(Deserialize)]
struct Present {
    id: Option<IgnoredAny>,
    time: Option<IgnoredAny>,
}

impl Codec {
    /// The subject an event of `topic` is stored under.
    pub fn subject(&self, topic: &str) -> String {
        format!("{}.{topic}", self.prefix)
    }

    /// The subject filter for a topic pattern (same wildcard syntax).
    pub fn filter(&self, pattern: &str) -> String {
        self.subject(pattern)
    }

    /// Every subject this engine stores events under.
    pub fn all_subjects(&self) -> String {
        self.subject(">")
    }

    /// The core-NATS subject on which gateways report stream (and interop)
    /// messages they refused, so the backend that published one learns
    /// why (docs/NATS.md). Outside `<prefix>.>`, so the stream never
    /// captures a report.
    pub fn rejected_subject(&self) -> String {
        format!("{}-rejected", self.prefix)
    }

    pub fn position(&self, stream_seq: u64) -> String {
        Position::format(&self.epoch, stream_seq)
    }

    /// The stored form of an accepted event: its envelope without `seq`.
    pub fn payload(event: &NewEvent) -> Bytes {
        Bytes::from(serde_json::to_vec(&event.envelope).expect("an envelope always serializes"))
    }

    /// Builds the delivered event from a stored message. Messages that a
    /// gateway would not have accepted (a backend's malformed envelope, a
    /// `type` that contradicts the subject) are refused with the reason.
    pub fn decode(
        &self,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: &[u8],
        stream_seq: u64,
        stored_at: SystemTime,
    ) -> Result<Arc<Event>, ProtocolError> {
        let ty = subject
            .strip_prefix(self.prefix.as_str())
            .and_then(|s| s.strip_prefix('.'))
            .ok_or_else(|| {
                ProtocolError::new(
                    ErrorCode::InvalidTopic,
                    format!("subject {subject} is outside {}.>", self.prefix),
                )
            })?;
        let text = std::str::from_utf8(payload)
            .map_err(|_| ProtocolError::new(ErrorCode::InvalidJson, "payload is not UTF-8"))?;
        let present: Present = serde_json::from_str(text).map_err(|e| {
            ProtocolError::new(ErrorCode::InvalidJson, format!("not an envelope: {e}"))
        })?;
        let mut event = ingest::prepare(text, self.max_event_bytes, BACKEND_SOURCE)?;
        if event.topic.as_str() != ty {
            return Err(ProtocolError::new(
                ErrorCode::InvalidEvent,
                format!(
                    "type {:?} does not match subject {subject}: an event of that type belongs on {}",
                    event.topic.as_str(),
                    self.subject(event.topic.as_str())
                ),
            ));
        }
        let seq = self.position(stream_seq);
        if present.id.is_none() {
            let header = headers
                .and_then(|h| h.get(MSG_ID))
                .map(|v| v.as_str().to_owned())
                .filter(|v| !v.is_empty() && v.len() <= eventwire_protocol::envelope::MAX_ID_LEN);
            event.envelope.id = Some(header.unwrap_or_else(|| seq.clone()));
        }
        if present.time.is_none() {
            event.envelope.time = Some(humantime::format_rfc3339_millis(stored_at).to_string());
        }
        let id = event.id().to_owned();
        let json = event.encode(&seq);
        Ok(Arc::new(Event::new(stream_seq, seq, id, event.topic, json)))
    }
}

/// The epoch of a stream incarnation: `n` and its creation time (Unix
/// nanoseconds) in base 36. A stream deleted and created again gets another
/// epoch, so positions into the old one are recognised as foreign; a memory
/// engine's epochs start with `m`, so they never collide.
pub fn epoch(created_unix_nanos: i128) -> String {
    let mut n = created_unix_nanos.unsigned_abs();
    let mut digits = Vec::new();
    loop {
        digits.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.push(b'n');
    digits.reverse();
    String::from_utf8(digits).expect("ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> Codec {
        Codec {
            prefix: "ew".into(),
            epoch: epoch(1_700_000_000_123_456_789),
            max_event_bytes: 1024,
        }
    }

    fn decode(subject: &str, json: &str) -> Result<Arc<Event>, ProtocolError> {
        codec().decode(
            subject,
            None,
            json.as_bytes(),
            7,
            SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_500),
        )
    }

    #[test]
    fn epochs_are_positions_and_differ_by_creation_time() {
        let a = epoch(1_700_000_000_123_456_789);
        assert!(a.starts_with('n'));
        Position::parse(&format!("{a}-1")).unwrap();
        assert_ne!(a, epoch(1_700_000_000_123_456_790));
        assert_eq!(epoch(0), "n0");
    }

    #[test]
    fn decodes_an_envelope_and_adds_seq() {
        let ev = decode(
            "ew.order.placed",
            r#"{"id":"a","type":"order.placed","time":"2026-01-01T00:00:00Z","data":{"x":1}}"#,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&ev.json).unwrap();
        assert_eq!(ev.offset, 7);
        assert_eq!(v["seq"], ev.seq.as_str());
        assert_eq!(v["id"], "a");
        assert_eq!(v["time"], "2026-01-01T00:00:00Z");
        assert_eq!(v["source"], BACKEND_SOURCE);
        assert_eq!(ev.topic.as_str(), "order.placed");
    }

    #[test]
    fn fills_id_and_time_deterministically() {
        let ev = decode("ew.a", r#"{"type":"a"}"#).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&ev.json).unwrap();
        assert_eq!(
            v["id"],
            ev.seq.as_str(),
            "no id and no header: the position"
        );
        assert_eq!(v["time"], "1970-01-01T00:00:01.500Z", "the stored time");
        let mut h = HeaderMap::new();
        h.insert(MSG_ID, "hdr-1");
        let ev = codec()
            .decode("ew.a", Some(&h), br#"{"type":"a"}"#, 8, SystemTime::now())
            .unwrap();
        assert_eq!(ev.id, "hdr-1");
    }

    #[test]
    fn refuses_what_a_gateway_would_refuse() {
        let mismatch = decode("ew.a", r#"{"type":"b"}"#).unwrap_err();
        assert_eq!(mismatch.code, ErrorCode::InvalidEvent);
        assert!(mismatch.message.contains("ew.b"), "{}", mismatch.message);
        assert!(decode("other.a", r#"{"type":"a"}"#).is_err());
        assert!(decode("ew.a", "not json").is_err());
        assert!(decode("ew.a", r#"{"type":"a","Bogus":1}"#).is_err());
        let big = format!(r#"{{"type":"a","data":"{}"}}"#, "x".repeat(2000));
        assert!(decode("ew.a", &big).is_err());
        let ev = decode("ew.a", "{\"type\":\"a\",\"data\":{\n\"k\": 1}}").unwrap();
        assert!(!ev.json.contains(&b'\n'), "one line");
    }
}
