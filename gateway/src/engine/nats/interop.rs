//! Interop: bare JSON that other producers publish on their own subjects,
//! wrapped into envelopes and put on the stream like any event.
//!
//! Such producers (for example @synet/realtime's NatsEventChannel, which
//! publishes `{type, id, source, timestamp, data, ...}` on `topic.<name>`)
//! use core NATS, so each gateway listens with a plain subscription. Every
//! gateway maps every message and publishes it with the same `Nats-Msg-Id`;
//! JetStream keeps the first and answers the others "duplicate". That keeps
//! the producer's order (a gateway publishes one message only after the
//! previous one is stored) and survives a gateway going away, at the price
//! of one rejected duplicate per extra gateway.

use super::Core;
use super::codec::BACKEND_SOURCE;
use crate::engine::{EngineError, NewEvent};
use crate::publish::ingest;
use eventwire_protocol::attr::is_uri_reference;
use eventwire_protocol::envelope::{MAX_ATTR_LEN, MAX_ID_LEN, is_rfc3339};
use eventwire_protocol::{Envelope, ErrorCode, ProtocolError, Topic};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// One mapping: `SUBJECT=TYPE_PREFIX`, e.g. `topic.>=legacy`, which turns
/// a message on `topic.chat` into an event of type `legacy.chat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteropRule {
    /// The NATS subject listened on; `*` and a final `>` allowed.
    pub subject: String,
    /// The event type, to which the subject tokens matched by the
    /// wildcards are appended.
    pub type_prefix: String,
}

impl FromStr for InteropRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (subject, type_prefix) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected SUBJECT=TYPE_PREFIX, e.g. topic.>=legacy"))?;
        let tokens: Vec<&str> = subject.split('.').collect();
        for (i, t) in tokens.iter().enumerate() {
            let bad = t.is_empty()
                || t.contains(|c: char| c.is_whitespace() || c.is_control())
                || (t.contains(['*', '>']) && t.len() > 1)
                || (*t == ">" && i + 1 != tokens.len());
            if bad {
                return Err(format!("{s:?}: {subject:?} is not a NATS subject"));
            }
        }
        Topic::parse(type_prefix).map_err(|e| format!("{s:?}: {}", e.message))?;
        Ok(InteropRule {
            subject: subject.to_owned(),
            type_prefix: type_prefix.to_owned(),
        })
    }
}

/// Whether two subject patterns can match a common subject.
fn overlaps(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for (x, y) in a.iter().zip(&b) {
        if *x == ">" || *y == ">" {
            return true;
        }
        if *x != "*" && *y != "*" && x != y {
            return false;
        }
    }
    a.len() == b.len()
}

impl InteropRule {
    /// The event type for a message received on `subject`.
    pub fn type_for(&self, subject: &str) -> Result<Topic, String> {
        let mut ty = self.type_prefix.clone();
        let pattern: Vec<&str> = self.subject.split('.').collect();
        let tokens: Vec<&str> = subject.split('.').collect();
        for (i, p) in pattern.iter().enumerate() {
            match *p {
                "*" => {
                    ty.push('.');
                    ty.push_str(tokens.get(i).ok_or("too few tokens")?);
                }
                ">" => {
                    for t in tokens.get(i..).unwrap_or_default() {
                        ty.push('.');
                        ty.push_str(t);
                    }
                }
                _ => {}
            }
        }
        Topic::parse(&ty).map_err(|e| e.message)
    }

    /// Wraps a bare JSON message into an event. The whole message becomes
    /// `data`, verbatim; `id`, `source` and `timestamp` (or `time`) are
    /// lifted into the envelope when they are usable. Without an id, one is
    /// derived from the subject and the bytes, so every gateway derives the
    /// same one and JetStream keeps the message once.
    pub fn map(
        &self,
        subject: &str,
        payload: &[u8],
        max_event_bytes: usize,
    ) -> Result<NewEvent, ProtocolError> {
        let topic = self
            .type_for(subject)
            .map_err(|m| ProtocolError::new(ErrorCode::InvalidTopic, m))?;
        let text = std::str::from_utf8(payload)
            .map_err(|_| ProtocolError::new(ErrorCode::InvalidJson, "payload is not UTF-8"))?;
        let data: &RawValue = serde_json::from_str(text).map_err(|e| {
            ProtocolError::new(ErrorCode::InvalidJson, format!("payload is not JSON: {e}"))
        })?;
        let bare: Bare = serde_json::from_str(text).unwrap_or_default();
        let id = bare
            .id
            .and_then(|v| match v {
                Value::String(s) => Some(s),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|s| attr_ok(s, MAX_ID_LEN))
            .unwrap_or_else(|| {
                let mut key = Vec::with_capacity(subject.len() + 1 + payload.len());
                key.extend_from_slice(subject.as_bytes());
                key.push(0);
                key.extend_from_slice(payload);
                uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, &key).to_string()
            });
        let source = bare
            .source
            .and_then(|v| v.as_str().map(str::to_owned))
            .filter(|s| attr_ok(s, MAX_ATTR_LEN) && is_uri_reference(s))
            .unwrap_or_else(|| format!("nats:{subject}"));
        let time = bare.timestamp.or(bare.time).and_then(|v| match v {
            Value::String(s) if is_rfc3339(&s) => Some(s),
            Value::Number(n) => n.as_u64().map(|ms| {
                let at = SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
                humantime::format_rfc3339_millis(at).to_string()
            }),
            _ => None,
        });
        let mut envelope = Envelope::new(topic.as_str(), data);
        envelope.id = Some(id);
        envelope.source = Some(source);
        envelope.time = time;
        let raw = serde_json::to_string(&envelope).expect("an envelope always serializes");
        ingest::prepare(&raw, max_event_bytes, BACKEND_SOURCE)
    }
}

/// The attributes lifted from a bare message, when it is an object.
#[derive(Default, Deserialize)]
struct Bare {
    id: Option<Value>,
    source: Option<Value>,
    timestamp: Option<Value>,
    time: Option<Value>,
}

fn attr_ok(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)
}

/// Subscribes to every rule's subject and starts the mapping task.
pub(super) async fn start(core: Arc<Core>) -> Result<tokio::task::JoinHandle<()>, EngineError> {
    let ours = core.codec.all_subjects();
    let mut subscriptions = Vec::new();
    for rule in &core.config.interop {
        if overlaps(&rule.subject, &ours) {
            return Err(EngineError::Unavailable(format!(
                "--nats-interop {}: overlaps the gateway's own subjects {ours}",
                rule.subject
            )));
        }
        let sub = core
            .client
            .subscribe(rule.subject.clone())
            .await
            .map_err(|e| super::unavailable("subscribing for interop", e))?;
        tracing::info!(subject = %rule.subject, type_prefix = %rule.type_prefix, "interop mapping on");
        let rule = rule.clone();
        subscriptions.push(sub.map(move |m| (rule.clone(), m)).boxed());
    }
    // The subscriptions are live once the server has read them.
    core.client
        .flush()
        .await
        .map_err(|e| super::unavailable("subscribing for interop", e))?;
    let mut all = futures_util::stream::select_all(subscriptions);
    Ok(tokio::spawn(async move {
        while let Some((rule, msg)) = all.next().await {
            let event = match rule.map(&msg.subject, &msg.payload, core.codec.max_event_bytes) {
                Ok(e) => e,
                Err(why) => {
                    core.counters.interop_invalid.increment(1);
                    core.report_rejected(&msg.subject, None, msg.headers.as_ref(), &why)
                        .await;
                    continue;
                }
            };
            match core.publish(&event).await {
                Ok(a) if a.duplicate => core.counters.interop_duplicate.increment(1),
                Ok(_) => core.counters.interop_stored.increment(1),
                Err(e) => {
                    core.counters.interop_failed.increment(1);
                    tracing::warn!(subject = %msg.subject, id = event.id(), error = ?e, "interop: could not store a message; it is lost unless another gateway stored it");
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> InteropRule {
        s.parse().unwrap()
    }

    #[test]
    fn parses_rules() {
        assert_eq!(
            rule("topic.>=legacy"),
            InteropRule {
                subject: "topic.>".into(),
                type_prefix: "legacy".into()
            }
        );
        for bad in [
            "topic.>", "=a", "a..b=x", "a.>.b=x", "a.b*=x", "a=b c", "a=b.*",
        ] {
            assert!(bad.parse::<InteropRule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn types_come_from_the_wildcard_tokens() {
        assert_eq!(
            rule("topic.>=legacy")
                .type_for("topic.chat.x")
                .unwrap()
                .as_str(),
            "legacy.chat.x"
        );
        assert_eq!(rule("a.*.c=t").type_for("a.b.c").unwrap().as_str(), "t.b");
        assert_eq!(
            rule("orders.new=order.created")
                .type_for("orders.new")
                .unwrap()
                .as_str(),
            "order.created"
        );
        assert!(
            rule("topic.>=legacy").type_for("topic.a:b").is_err(),
            "not a topic"
        );
    }

    #[test]
    fn overlap() {
        assert!(overlaps("eventwire.>", "eventwire.>"));
        assert!(overlaps(">", "eventwire.>"));
        assert!(overlaps("*.a", "eventwire.>"));
        assert!(!overlaps("topic.>", "eventwire.>"));
        assert!(!overlaps("eventwire", "eventwire.>"));
    }

    #[test]
    fn maps_a_synet_event() {
        let bare = br#"{"type":"message","id":"e-1","source":"chat-svc","timestamp":"2026-01-02T03:04:05.678Z","data":{"text":"hi"},"clientId":"c"}"#;
        let ev = rule("topic.>=legacy")
            .map("topic.chat", bare, 4096)
            .unwrap();
        let e = &ev.envelope;
        assert_eq!(ev.topic.as_str(), "legacy.chat");
        assert_eq!(e.id.as_deref(), Some("e-1"));
        assert_eq!(e.source.as_deref(), Some("chat-svc"));
        assert_eq!(e.time.as_deref(), Some("2026-01-02T03:04:05.678Z"));
        assert_eq!(
            e.data.as_ref().unwrap().get(),
            std::str::from_utf8(bare).unwrap()
        );
    }

    #[test]
    fn fills_what_is_missing_the_same_way_everywhere() {
        let r = rule("topic.*=legacy");
        let a = r
            .map("topic.x", br#"{"n":1,"timestamp":1700000000000}"#, 4096)
            .unwrap();
        let b = r
            .map("topic.x", br#"{"n":1,"timestamp":1700000000000}"#, 4096)
            .unwrap();
        assert_eq!(a.envelope.id, b.envelope.id, "derived ids agree");
        assert_eq!(a.envelope.time.as_deref(), Some("2023-11-14T22:13:20.000Z"));
        assert_eq!(a.envelope.source.as_deref(), Some("nats:topic.x"));
        let c = r
            .map("topic.y", br#"{"n":1,"timestamp":1700000000000}"#, 4096)
            .unwrap();
        assert_ne!(
            a.envelope.id, c.envelope.id,
            "the subject is part of the id"
        );
        let scalar = r.map("topic.x", b"42", 4096).unwrap();
        assert_eq!(scalar.envelope.data.unwrap().get(), "42");
        assert!(r.map("topic.x", b"not json", 4096).is_err());
    }
}
