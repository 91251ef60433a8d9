//! The exports, all of them (with `b`, the argument buffer, in `abi.rs`):
//! `o` makes a channel and answers its handle, `c` does everything else
//! to the channel with that handle, and `i` hands it what the browser
//! reported. `js/index.js` wraps them into the typed `EventChannel`.
//!
//! A channel lives from `o` until `c(CLOSE)`, like the socket it holds:
//! an app that drops its `EventChannel` without closing it keeps a
//! channel that still delivers to its handlers.

use crate::abi::Strings;
use crate::cell::{read, write};
use crate::channel::Channel;
use crate::frames::Signal;
use crate::machine::Input;
use crate::prelude::*;
use alloc::rc::Rc;
use core::cell::RefCell;

/// What `c` does, by its `op` (`js/index.js` has the same numbers).
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

/// A channel to the gateway at the base URL (string 0), with the options
/// `index.js` has read and checked (see [`Channel::new`]), its instance id
/// (string 1), a fixed token (string 2) or `token_fn`, and the `since`
/// option (string 3); answers its handle.
#[unsafe(export_name = "o")]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn open(
    transport: u32,
    min_backoff_ms: f64,
    max_backoff_ms: f64,
    outbox_size: f64,
    attempt_timeout_ms: f64,
    token_fn: u32,
) -> u32 {
    let s = Strings::take();
    let mut all = write(&CHANNELS.0);
    let h = all.len() as u32;
    let channel = Channel::new(
        h,
        s.get(0).unwrap_or_default(),
        s.get(1).unwrap_or_default(),
        transport,
        min_backoff_ms,
        max_backoff_ms,
        outbox_size,
        attempt_timeout_ms,
        s.get(2),
        token_fn != 0,
        s.get(3),
    );
    all.push(Some(Rc::new(channel)));
    h
}

/// The open channel with `handle`: a clone, so no borrow is held while it
/// runs JS.
fn channel(handle: u32) -> Option<Rc<Channel>> {
    match read(&CHANNELS.0).get(handle as usize) {
        Some(Some(c)) => Some(Rc::clone(c)),
        _ => None,
    }
}

/// What the browser reported to channel `handle`: `what` (a
/// `transport::tag`), `n` (the generation, or an emit's reference) and a
/// [`Signal`]'s numbers and string lengths. Nothing once the channel is
/// closed.
#[unsafe(export_name = "i")]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn io(handle: u32, what: u32, n: f64, a: f64, b: f64, c: f64) {
    let s = Strings::take();
    if let Some(channel) = channel(handle) {
        channel.io(what, n, Signal { a, b, c, s });
    }
}

/// Does `op` (see [`op`]) to channel `handle`; `a` and the strings are
/// the arguments of the method it stands for. Answers a subscription's
/// id, 0 otherwise (and for a closed channel's handle, which does
/// nothing).
#[unsafe(export_name = "c")]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn call(handle: u32, op: u32, a: f64) -> u32 {
    let s = Strings::take();
    let Some(channel) = channel(handle) else {
        return 0;
    };
    match op {
        op::START => channel.feed(Input::Start),
        op::SUBSCRIBE => return channel.subscribe(s.get(0).unwrap_or_default(), a != 0.0),
        op::UNSUBSCRIBE => channel.unsubscribe(a as u32),
        op::CLOSE => {
            channel.close();
            if let Some(slot) = write(&CHANNELS.0).get_mut(handle as usize) {
                *slot = None;
            }
        }
        op::LAST_SEQ => channel.last_seq(),
        // The type, the id (the glue makes one when the app gave none),
        // the envelope options in their order, and the data as JSON.
        op::EMIT => channel.emit(
            a as u64,
            s.get(0).unwrap_or_default(),
            s.get(1).unwrap_or_default(),
            [s.get(2), s.get(3), s.get(4)],
            s.get(5),
        ),
        _ => {}
    }
    0
}
