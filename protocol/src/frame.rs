//! WebSocket frames: JSON text objects whose `op` field names them.
//!
//! Client frames are parsed in two steps (a flat struct, then a typed
//! message) so an error can still carry the frame's `ref` and so `event`
//! stays raw JSON that the gateway measures and stores without re-encoding.

use crate::error::{ErrorCode, ProtocolError};
use crate::prelude::*;
use crate::topic::Pattern;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use crate::op;

/// A client → server frame, validated.
#[derive(Debug)]
pub enum ClientMsg<'a> {
    Subscribe {
        reference: Option<String>,
        topics: Vec<Pattern>,
        since: Option<String>,
    },
    Unsubscribe {
        reference: Option<String>,
        topics: Vec<Pattern>,
    },
    Emit {
        reference: Option<String>,
        /// The envelope exactly as sent, for size checks and parsing.
        event: &'a RawValue,
    },
    Ping {
        reference: Option<String>,
    },
    /// A fresh token for this connection, before or after the old one expires.
    Auth {
        reference: Option<String>,
        token: String,
    },
    /// Start receiving a consumer group's deliveries on this connection,
    /// at most `max_inflight` unsettled at a time.
    Consume {
        reference: Option<String>,
        group: String,
        max_inflight: Option<u32>,
    },
    /// `ack`, `nack` or `extend` (the `op`) of handles in a group.
    Settle {
        reference: Option<String>,
        op: SettleOp,
        group: String,
        handles: Vec<String>,
        delay: Option<String>,
        reason: Option<String>,
    },
}

/// What a client `ack`, `nack` or `extend` frame does to its handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleOp {
    Ack,
    Nack,
    Extend,
}

/// A frame that could not be accepted, with the `ref` to echo when known.
#[derive(Debug)]
pub struct FrameError {
    pub reference: Option<String>,
    pub error: ProtocolError,
}

#[derive(Deserialize)]
struct RawClientFrame<'a> {
    op: Option<String>,
    #[serde(rename = "ref", default)]
    reference: Option<String>,
    #[serde(default)]
    topics: Option<Vec<String>>,
    #[serde(default)]
    since: Option<String>,
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    max_inflight: Option<u32>,
    #[serde(default)]
    handles: Option<Vec<String>>,
    #[serde(default)]
    delay: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// Longest accepted `ref` (bytes); it is echoed back, so it is bounded.
pub const MAX_REF_LEN: usize = 128;

/// Parses one client text frame. `max_topics` bounds how many patterns one
/// frame may carry, so a hostile frame cannot make the gateway parse 10,000.
pub fn parse_client_frame(text: &str, max_topics: usize) -> Result<ClientMsg<'_>, FrameError> {
    let raw: RawClientFrame<'_> = serde_json::from_str(text).map_err(|e| FrameError {
        reference: None,
        error: ProtocolError::new(
            ErrorCode::InvalidJson,
            format!("frame is not a JSON object of the expected shape: {e}"),
        ),
    })?;
    let reference = raw.reference;
    let fail = |reference: Option<String>, code, msg: String| FrameError {
        reference,
        error: ProtocolError::new(code, msg),
    };
    if let Some(r) = &reference
        && r.len() > MAX_REF_LEN
    {
        return Err(fail(
            None,
            ErrorCode::BadRequest,
            format!("`ref` is longer than {MAX_REF_LEN} bytes"),
        ));
    }
    let Some(op_name) = raw.op else {
        return Err(fail(
            reference,
            ErrorCode::BadRequest,
            "frame has no `op`".into(),
        ));
    };
    let topics = |reference: &Option<String>,
                  topics: Option<Vec<String>>|
     -> Result<Vec<Pattern>, FrameError> {
        let Some(topics) = topics else {
            return Err(fail(
                reference.clone(),
                ErrorCode::BadRequest,
                format!("`{op_name}` needs `topics`, an array of patterns"),
            ));
        };
        if topics.is_empty() {
            return Err(fail(
                reference.clone(),
                ErrorCode::BadRequest,
                "`topics` must not be empty".into(),
            ));
        }
        if topics.len() > max_topics {
            return Err(fail(
                reference.clone(),
                ErrorCode::TooManySubscriptions,
                format!("at most {max_topics} topics per frame"),
            ));
        }
        topics
            .iter()
            .map(|t| Pattern::parse(t))
            .collect::<Result<_, _>>()
            .map_err(|error| FrameError {
                reference: reference.clone(),
                error,
            })
    };
    match op_name.as_str() {
        op::SUBSCRIBE => Ok(ClientMsg::Subscribe {
            topics: topics(&reference, raw.topics)?,
            since: raw.since,
            reference,
        }),
        op::UNSUBSCRIBE => Ok(ClientMsg::Unsubscribe {
            topics: topics(&reference, raw.topics)?,
            reference,
        }),
        op::EMIT => match raw.event {
            Some(event) => Ok(ClientMsg::Emit { reference, event }),
            None => Err(fail(
                reference,
                ErrorCode::BadRequest,
                "`emit` needs `event`, an envelope object".into(),
            )),
        },
        op::PING => Ok(ClientMsg::Ping { reference }),
        op::AUTH => match raw.token {
            Some(token) => Ok(ClientMsg::Auth { reference, token }),
            None => Err(fail(
                reference,
                ErrorCode::BadRequest,
                "`auth` needs `token`".into(),
            )),
        },
        op::CONSUME => match raw.group {
            Some(group) => Ok(ClientMsg::Consume {
                reference,
                group,
                max_inflight: raw.max_inflight,
            }),
            None => Err(fail(
                reference,
                ErrorCode::BadRequest,
                "`consume` needs `group`".into(),
            )),
        },
        op::ACK | op::NACK | op::EXTEND => match (raw.group, raw.handles) {
            (Some(group), Some(handles)) => Ok(ClientMsg::Settle {
                reference,
                op: match op_name.as_str() {
                    op::ACK => SettleOp::Ack,
                    op::NACK => SettleOp::Nack,
                    _ => SettleOp::Extend,
                },
                group,
                handles,
                delay: raw.delay,
                reason: raw.reason,
            }),
            _ => Err(fail(
                reference,
                ErrorCode::BadRequest,
                format!("`{op_name}` needs `group` and `handles`"),
            )),
        },
        other => {
            let shown: String = other.chars().take(32).collect();
            Err(fail(
                reference,
                ErrorCode::UnknownOp,
                format!(
                    "unknown op {shown:?}; expected subscribe, unsubscribe, emit, ping, auth, consume, ack, nack or extend"
                ),
            ))
        }
    }
}

/// A server → client frame. `E` is the event payload type: the gateway
/// writes `event` frames from pre-encoded bytes, and Rust clients read them
/// with `E = serde_json::Value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ServerFrame<E = serde_json::Value> {
    Welcome(Welcome),
    Subscribed {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        topics: Vec<String>,
        /// False when a `since` was given and events after it may be missing.
        recovered: bool,
        /// Every matching event after this position will be delivered: a
        /// client that has received nothing yet resumes from here.
        position: String,
    },
    Unsubscribed {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        topics: Vec<String>,
    },
    Event {
        event: E,
    },
    Ack {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        id: String,
        seq: String,
        /// True when an event with this id had already been accepted.
        #[serde(default)]
        duplicate: bool,
    },
    Error {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        code: ErrorCode,
        message: String,
    },
    Pong {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// The answer to `auth`: the new token is in force.
    Authenticated {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// Unix seconds when the new token expires.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<u64>,
    },
}

/// The first frame on every connection (the `$welcome` event on SSE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub conn_id: String,
    /// The engine's name, e.g. `memory`.
    pub engine: String,
    /// How often the server sends a heartbeat; silence for twice this long
    /// means the connection is dead.
    pub heartbeat_ms: u64,
    pub max_event_bytes: usize,
    pub max_subscriptions: usize,
    /// SSE only: false when a resume position was given and events after it
    /// may be missing. On WebSocket this is on `subscribed` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
    /// SSE only: every matching event after this position will be
    /// delivered; a client that has received nothing yet resumes from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
}

/// The data of the SSE `$close` event. (A WebSocket close carries the bare
/// code string as its reason, since a close reason is limited to 123 bytes.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Close {
    pub code: ErrorCode,
    pub message: String,
}

/// Builds an `event` frame around an already-encoded envelope without
/// re-serializing it: the gateway does this once per event, not per subscriber.
pub fn event_frame(envelope_json: &str) -> String {
    let mut s = String::with_capacity(envelope_json.len() + 24);
    s.push_str("{\"op\":\"event\",\"event\":");
    s.push_str(envelope_json);
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_each_client_op() {
        match parse_client_frame(
            r#"{"op":"subscribe","topics":["a.*"],"since":"x-1","ref":"r"}"#,
            8,
        )
        .unwrap()
        {
            ClientMsg::Subscribe {
                topics,
                since,
                reference,
            } => {
                assert_eq!(topics[0].as_str(), "a.*");
                assert_eq!(since.as_deref(), Some("x-1"));
                assert_eq!(reference.as_deref(), Some("r"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_client_frame(r#"{"op":"unsubscribe","topics":["a"]}"#, 8).unwrap(),
            ClientMsg::Unsubscribe { .. }
        ));
        match parse_client_frame(
            r#"{"op":"emit","ref":"1","event":{"type":"a","data":[1, 2]}}"#,
            8,
        )
        .unwrap()
        {
            ClientMsg::Emit { event, .. } => {
                assert_eq!(event.get(), r#"{"type":"a","data":[1, 2]}"#)
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_client_frame(r#"{"op":"ping"}"#, 8).unwrap(),
            ClientMsg::Ping { .. }
        ));
        assert!(matches!(
            parse_client_frame(r#"{"op":"auth","token":"t"}"#, 8).unwrap(),
            ClientMsg::Auth { .. }
        ));
    }

    #[test]
    fn bad_frames_get_codes_and_keep_their_ref() {
        let code = |s: &str| parse_client_frame(s, 2).unwrap_err().error.code;
        assert_eq!(code("not json"), ErrorCode::InvalidJson);
        assert_eq!(code("[1]"), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"ref":"1"}"#), ErrorCode::BadRequest);
        assert_eq!(code(r#"{"op":"subscribe"}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(r#"{"op":"subscribe","topics":[]}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"op":"subscribe","topics":["a b"]}"#),
            ErrorCode::InvalidPattern
        );
        assert_eq!(
            code(r#"{"op":"subscribe","topics":["a","b","c"]}"#),
            ErrorCode::TooManySubscriptions
        );
        assert_eq!(code(r#"{"op":"emit"}"#), ErrorCode::BadRequest);
        let e = parse_client_frame(r#"{"op":"jump","ref":"r9"}"#, 2).unwrap_err();
        assert_eq!(e.error.code, ErrorCode::UnknownOp);
        assert_eq!(e.reference.as_deref(), Some("r9"));
    }

    #[test]
    fn server_frames_round_trip() {
        let frames: Vec<ServerFrame> = vec![
            ServerFrame::Welcome(Welcome {
                conn_id: "c1".into(),
                engine: "memory".into(),
                heartbeat_ms: 15000,
                max_event_bytes: 65536,
                max_subscriptions: 64,
                recovered: None,
                position: None,
            }),
            ServerFrame::Subscribed {
                reference: Some("1".into()),
                topics: vec!["a.>".into()],
                recovered: true,
                position: "e-0".into(),
            },
            ServerFrame::Unsubscribed {
                reference: None,
                topics: vec!["a.>".into()],
            },
            ServerFrame::Event {
                event: json!({"type": "a", "seq": "e-1"}),
            },
            ServerFrame::Ack {
                reference: Some("2".into()),
                id: "i".into(),
                seq: "e-1".into(),
                duplicate: false,
            },
            ServerFrame::Error {
                reference: None,
                code: ErrorCode::UnknownOp,
                message: "m".into(),
            },
            ServerFrame::Pong { reference: None },
            ServerFrame::Authenticated {
                reference: Some("a".into()),
                expires_at: Some(1_800_000_000),
            },
        ];
        for f in frames {
            let text = serde_json::to_string(&f).unwrap();
            let back: ServerFrame = serde_json::from_str(&text).unwrap();
            assert_eq!(back, f, "{text}");
        }
    }

    #[test]
    fn op_names_match_the_serializer() {
        let text = serde_json::to_string(&ServerFrame::<()>::Pong { reference: None }).unwrap();
        assert_eq!(text, format!("{{\"op\":\"{}\"}}", op::PONG));
        let ev = event_frame(r#"{"type":"a"}"#);
        let back: ServerFrame = serde_json::from_str(&ev).unwrap();
        assert_eq!(
            back,
            ServerFrame::Event {
                event: json!({"type": "a"})
            }
        );
        assert!(ev.contains(&format!("\"op\":\"{}\"", op::EVENT)));
    }
}
