//! The `#[wasm_bindgen]` surface, all of it: `open` makes a channel and
//! answers its handle, `call` does everything else to the channel with that
//! handle, and `io` hands it what the browser reported. `js/index.js` wraps
//! them into the typed `EventChannel`.
//!
//! Three exports rather than a `#[wasm_bindgen]` struct with a method each
//! and a Rust closure for the browser's signals: every export costs a shim
//! in the wasm and a method in the glue, an exported struct brings
//! wasm-bindgen's ownership checks (and their messages) and a
//! `FinalizationRegistry`, and a closure the glue's closure machinery.
//!
//! A channel lives from `open` until `call(CLOSE)`, like the socket it
//! holds: an app that drops its `EventChannel` without closing it keeps a
//! channel that still delivers to its handlers.

use crate::cell::{read, write};
use crate::channel::{Callbacks, Channel};
use crate::prelude::*;
use alloc::rc::Rc;
use core::cell::RefCell;
use wasm_bindgen::prelude::*;

/// What `call` does, by its `op` (`js/index.js` has the same numbers).
mod op {
    pub const START: u32 = 0;
    pub const SUBSCRIBE: u32 = 1;
    pub const UNSUBSCRIBE: u32 = 2;
    pub const CLOSE: u32 = 3;
    pub const LAST_SEQ: u32 = 4;
    pub const EMIT: u32 = 5;
}

/// The open channels, by handle: the index of a slot. A slot is never
/// reused, so a handle kept after `close` reaches nothing rather than
/// another channel (a closed channel leaves a 4-byte `None`).
struct Channels(RefCell<Vec<Option<Rc<Channel>>>>);

// SAFETY: a wasm instance runs on one thread (built without atomics), and
// the cell is only borrowed for a push, a clone or a take, never while JS
// runs.
unsafe impl Sync for Channels {}

static CHANNELS: Channels = Channels(RefCell::new(Vec::new()));

/// A channel to the gateway at `base`, with the options `index.js` has
/// read and checked (see [`Channel::new`]); answers its handle for `call`.
#[wasm_bindgen]
#[allow(clippy::too_many_arguments)]
pub fn open(
    base: &str,
    transport: u32,
    min_backoff_ms: f64,
    max_backoff_ms: f64,
    outbox_size: f64,
    attempt_timeout_ms: f64,
    token: JsValue,
    callbacks: Callbacks,
    io: JsValue,
) -> u32 {
    let channel = Channel::new(
        base.to_owned(),
        transport,
        min_backoff_ms,
        max_backoff_ms,
        outbox_size,
        attempt_timeout_ms,
        token,
        callbacks,
        io,
    );
    let mut all = write(&CHANNELS.0);
    all.push(Some(Rc::new(channel)));
    (all.len() - 1) as u32
}

/// The open channel with `handle`: a clone, so no borrow is held while it
/// runs JS.
fn channel(handle: u32) -> Option<Rc<Channel>> {
    read(&CHANNELS.0).get(handle as usize).cloned().flatten()
}

/// What the browser reported to channel `handle` (see [`Channel::io`]);
/// nothing once the channel is closed.
#[wasm_bindgen]
pub fn io(handle: u32, what: u32, n: f64, data: JsValue, status: u32) {
    if let Some(channel) = channel(handle) {
        channel.io(what, n, data, status);
    }
}

/// Does `op` (see [`op`]) to channel `handle`; `a`, `b` and `c` are the
/// arguments of the method it stands for. A closed channel's handle does
/// nothing and answers undefined.
#[wasm_bindgen]
pub fn call(handle: u32, op: u32, a: JsValue, b: JsValue, c: JsValue) -> Result<JsValue, JsValue> {
    let Some(channel) = channel(handle) else {
        return Ok(JsValue::UNDEFINED);
    };
    let string = |v: JsValue| v.as_string().unwrap_or_default();
    Ok(match op {
        op::START => {
            channel.start();
            JsValue::UNDEFINED
        }
        op::SUBSCRIBE => channel.subscribe(&string(a), &b)?.into(),
        op::UNSUBSCRIBE => {
            channel.unsubscribe(a.as_f64().unwrap_or(0.0) as u32);
            JsValue::UNDEFINED
        }
        op::CLOSE => {
            channel.close();
            if let Some(slot) = write(&CHANNELS.0).get_mut(handle as usize) {
                *slot = None;
            }
            JsValue::UNDEFINED
        }
        op::LAST_SEQ => channel
            .last_seq()
            .as_deref()
            .map_or(JsValue::NULL, JsValue::from_str),
        op::EMIT => channel.emit(&string(a), &b, &c),
        _ => JsValue::UNDEFINED,
    })
}
