//! Reading the gateway's frames. The browser's own `JSON.parse` does the
//! parsing (`js/io.js`), which hands over the few fields the protocol
//! needs, the same for every frame, in one call; the frame itself stays a
//! JS value (the channel's [`Current`]) and goes to handlers untouched.
//! What a frame is, and whether it has what its kind needs, is decided
//! here, with the protocol crate's `op` names.

use crate::abi::Strings;
use crate::channel::Current;
use crate::machine::Input;
use crate::transport::tag;
use eventwire_protocol::op;

/// The strings the glue reads from every frame, in its order: `op`, the
/// envelope's `id`, `source`, `type` and `seq` (a WebSocket frame's
/// `event`, or the frame itself: an SSE message, an ack), and the frame's
/// `ref`, `code`, `message` and `position`. Other signals use the same
/// slots: a close reason is a `CODE`, a refused POST's answer a `CODE` and
/// a `MESSAGE`, a failed open's message a `MESSAGE`, a token the first.
pub mod field {
    pub const OP: usize = 0;
    pub const ID: usize = 1;
    pub const SOURCE: usize = 2;
    pub const TYPE: usize = 3;
    pub const SEQ: usize = 4;
    pub const REF: usize = 5;
    pub const CODE: usize = 6;
    pub const MESSAGE: usize = 7;
    pub const POSITION: usize = 8;
    pub const TOKEN: usize = 0;
}

/// One call from the glue: the numbers (a frame's `heartbeat_ms`,
/// `max_event_bytes` and `recovered` as `Number()` makes them; a POST's
/// status) and the strings.
pub struct Signal {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub s: Strings,
}

impl Signal {
    pub fn get(&self, i: usize) -> Option<&str> {
        self.s.get(i)
    }

    /// `recovered`: `true` and `false` become 1 and 0, anything else NaN.
    fn recovered(&self) -> Option<bool> {
        if self.c == 1.0 {
            Some(true)
        } else if self.c == 0.0 {
            Some(false)
        } else {
            None
        }
    }
}

/// A frame that is not what the protocol says: the reason, for `onError`.
pub struct Malformed(pub &'static str);

/// A frame (`tag::FRAME`, `WELCOME`, `NOT_JSON` or `NOT_OBJECT`) on an SSE
/// stream (`sse`) or a WebSocket.
pub fn read(tag: u32, sse: bool, f: &Signal) -> Result<Input<'_, Current>, Malformed> {
    let name = match tag {
        tag::NOT_JSON => return Err(Malformed("a frame is not valid JSON")),
        tag::NOT_OBJECT => return Err(Malformed("a frame is not a JSON object")),
        // SSE names its frames by event type: `$welcome`, or an event.
        tag::WELCOME => op::WELCOME,
        tag::FRAME if sse => op::EVENT,
        _ => f.get(field::OP).ok_or(Malformed("a frame has no op"))?,
    };
    Ok(match name {
        op::EVENT => match (f.get(field::ID), f.get(field::TYPE), f.get(field::SEQ)) {
            (Some(id), Some(ty), Some(seq)) => Input::Event {
                id,
                // The gateway always sets `source`; an event without one
                // is keyed by its id alone.
                source: f.get(field::SOURCE).unwrap_or_default(),
                ty,
                seq,
                payload: Current,
            },
            _ => return Err(Malformed("an event lacks its id, type or seq")),
        },
        op::WELCOME => Input::Welcome {
            heartbeat_ms: if f.a.is_nan() { 0.0 } else { f.a },
            max_event_bytes: if f.b.is_nan() { 65536.0 } else { f.b } as usize,
            recovered: f.recovered(),
            position: f.get(field::POSITION),
        },
        op::SUBSCRIBED => match f.get(field::REF) {
            Some("sub") => Input::Subscribed {
                recovered: f.recovered() == Some(true),
                position: f.get(field::POSITION),
            },
            _ => Input::Heard,
        },
        // The frame itself is the receipt: the glue reads its `id`, `seq`
        // and `duplicate` for the app.
        op::ACK => match reference(f.get(field::REF)) {
            Some(reference) if f.get(field::ID).is_some() && f.get(field::SEQ).is_some() => {
                Input::Ack {
                    reference,
                    receipt: Current,
                }
            }
            _ => return Err(Malformed("an ack lacks its ref, id or seq")),
        },
        op::ERROR => Input::Refused {
            reference: reference(f.get(field::REF)),
            code: f.get(field::CODE).unwrap_or("unknown"),
            message: f.get(field::MESSAGE).unwrap_or_default(),
        },
        op::PONG | op::UNSUBSCRIBED | op::AUTHENTICATED => Input::Heard,
        _ => return Err(Malformed("a frame has an unknown op")),
    })
}

/// The `ref` of an answer: the decimal reference an emit was sent with.
/// Read digit by digit into an `f64`: `str::parse` would bring core's
/// general integer parser (signs, radixes, its error type) into the
/// download, and checked `u64` arithmetic is larger in wasm than a float.
fn reference(r: Option<&str>) -> Option<u64> {
    let r = r?;
    // At most 15 digits: every such number is exact in an f64, and the
    // channel's references count up from 1.
    if r.is_empty() || r.len() > 15 {
        return None;
    }
    let mut n = 0.0;
    for b in r.bytes() {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n = n * 10.0 + f64::from(digit);
    }
    Some(n as u64)
}
