//! Reading the gateway's frames. The browser's own `JSON.parse` does the
//! parsing; Rust only looks up the few fields the protocol needs, and the
//! event object itself goes to handlers untouched.

use crate::machine::Input;
use crate::prelude::*;
use eventwire_protocol::op;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/io.js")]
extern "C" {
    /// `JSON.parse` on the browser's own string (a `&str` would copy the
    /// frame into wasm memory and back); undefined, which JSON cannot
    /// express, when the text is not JSON. No exception crosses into wasm,
    /// so the glue needs no exception handling at all.
    fn parse(text: &JsValue) -> JsValue;
    /// `o[key]`; undefined where `o` has no such property or is not an
    /// object.
    #[wasm_bindgen(js_name = get)]
    pub fn field(o: &JsValue, key: &JsValue) -> JsValue;
}

/// The keys read from every event, made into JS strings once per channel
/// rather than once per lookup.
pub struct Keys {
    id: JsValue,
    source: JsValue,
    ty: JsValue,
    seq: JsValue,
    op: JsValue,
    event: JsValue,
}

impl Default for Keys {
    fn default() -> Keys {
        Keys {
            id: "id".into(),
            source: "source".into(),
            ty: "type".into(),
            seq: "seq".into(),
            op: "op".into(),
            event: "event".into(),
        }
    }
}

pub fn get(obj: &JsValue, key: &str) -> JsValue {
    field(obj, &JsValue::from_str(key))
}

fn string(obj: &JsValue, key: &str) -> Option<String> {
    get(obj, key).as_string()
}

fn number(obj: &JsValue, key: &str) -> Option<f64> {
    get(obj, key).as_f64()
}

/// A frame that is not what the protocol says: the reason, for `onError`.
pub struct Malformed(pub &'static str);

fn object(text: &JsValue) -> Result<JsValue, Malformed> {
    let v = parse(text);
    if v.is_object() {
        Ok(v)
    } else if v.is_undefined() {
        Err(Malformed("a frame is not valid JSON"))
    } else {
        Err(Malformed("a frame is not a JSON object"))
    }
}

/// An event envelope as delivered (SSE data, or a WebSocket `event`).
pub fn event(envelope: JsValue, k: &Keys) -> Result<Input<JsValue>, Malformed> {
    match (
        field(&envelope, &k.id).as_string(),
        field(&envelope, &k.ty).as_string(),
        field(&envelope, &k.seq).as_string(),
    ) {
        (Some(id), Some(ty), Some(seq)) => Ok(Input::Event {
            id,
            // The gateway always sets `source`; an event without one is
            // keyed by its id alone.
            source: field(&envelope, &k.source).as_string().unwrap_or_default(),
            ty,
            seq,
            payload: envelope,
        }),
        _ => Err(Malformed("an event lacks its id, type or seq")),
    }
}

/// The data of an SSE `$welcome`, or a WebSocket `welcome` frame.
pub fn welcome(obj: &JsValue) -> Input<JsValue> {
    Input::Welcome {
        heartbeat_ms: number(obj, "heartbeat_ms").unwrap_or(0.0),
        max_event_bytes: number(obj, "max_event_bytes").unwrap_or(65536.0) as usize,
        recovered: get(obj, "recovered").as_bool(),
        position: string(obj, "position"),
    }
}

/// An SSE message: its data is an envelope.
pub fn sse_message(text: &JsValue, keys: &Keys) -> Result<Input<JsValue>, Malformed> {
    event(object(text)?, keys)
}

pub fn sse_welcome(text: &JsValue) -> Result<Input<JsValue>, Malformed> {
    Ok(welcome(&object(text)?))
}

/// The `ref` of an answer: the decimal reference an emit was sent with.
/// Read digit by digit into an `f64`: `str::parse` would bring core's
/// general integer parser (signs, radixes, its error type) into the
/// download, and checked `u64` arithmetic is larger in wasm than a float.
fn reference(obj: &JsValue) -> Option<u64> {
    let r = string(obj, "ref")?;
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

/// The `code` in the data of an SSE `$close`, if it has one.
pub fn close_code(text: &JsValue) -> Option<String> {
    object(text).ok().and_then(|v| string(&v, "code"))
}

/// A WebSocket text frame.
pub fn ws_frame(text: &JsValue, k: &Keys) -> Result<Input<JsValue>, Malformed> {
    let v = object(text)?;
    let name = field(&v, &k.op)
        .as_string()
        .ok_or(Malformed("a frame has no op"))?;
    Ok(match name.as_str() {
        op::EVENT => return event(field(&v, &k.event), k),
        op::WELCOME => welcome(&v),
        op::SUBSCRIBED => match string(&v, "ref").as_deref() {
            Some("sub") => Input::Subscribed {
                recovered: get(&v, "recovered").as_bool().unwrap_or(false),
                position: string(&v, "position"),
            },
            _ => Input::Heard,
        },
        // The frame itself is the receipt: `Callbacks.resolve` reads its
        // `id`, `seq` and `duplicate` for the app.
        op::ACK => match reference(&v) {
            Some(reference) if get(&v, "id").is_string() && get(&v, "seq").is_string() => {
                Input::Ack {
                    reference,
                    receipt: v,
                }
            }
            _ => return Err(Malformed("an ack lacks its ref, id or seq")),
        },
        op::ERROR => Input::Refused {
            reference: reference(&v),
            code: string(&v, "code").unwrap_or_else(|| "unknown".into()),
            message: string(&v, "message").unwrap_or_default(),
        },
        op::PONG | op::UNSUBSCRIBED | op::AUTHENTICATED => Input::Heard,
        _ => return Err(Malformed("a frame has an unknown op")),
    })
}
