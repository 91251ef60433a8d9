//! The boundary with the hand-written glue, `js/io.js`: plain wasm
//! imports and exports, no wasm-bindgen. Only numbers cross it.
//!
//! - A channel is a handle, the index the glue keeps its side of the
//!   channel under (its transport, timer, listeners, handler functions,
//!   pending emits). Every import takes it first.
//! - A string into Rust is written by the glue into the argument buffer
//!   (the `b` export) with `TextEncoder.encodeInto`, after a header of the
//!   byte length of each (-1: not a string); the call that follows takes
//!   them with [`Strings::take`]. So an export's arguments are numbers only,
//!   the same few whatever strings come along. A string out of Rust is a pointer and a
//!   length, which the glue reads with `TextDecoder` during the call.
//! - A JS value Rust never needs to read (an event, an ack frame, a POST's
//!   answer, what the token function threw) stays in the glue as the
//!   channel's current value, `v`; see [`Current`](crate::channel::Current).
//!
//! Why not wasm-bindgen: its runtime (the externref table, string passing,
//! a generated JS shim per import) was about 2 KB of the wasm and most of
//! the JS, for a boundary this narrow. The import and export names are one
//! letter each because they are written out in both files and gzip cannot
//! shorten them; `js/io.js` lists the same letters.

use crate::prelude::*;
use core::cell::UnsafeCell;

#[link(wasm_import_module = "e")]
unsafe extern "C" {
    /// Opens a transport (`kind`: 0 WebSocket, 1 SSE) at the URL; its
    /// signals carry `generation`. When the browser refuses (a malformed
    /// URL, say) the glue signals `tag::FAILED` with its message at once.
    #[link_name = "o"]
    fn open_transport(h: u32, kind: u32, generation: u32, url: *const u8, len: usize);
    /// Sends a WebSocket text frame; a closing socket drops it.
    #[link_name = "s"]
    fn send_text(h: u32, text: *const u8, len: usize);
    /// Lets the transport go: detaches its handlers, then closes it.
    #[link_name = "x"]
    safe fn close_transport(h: u32);
    /// POSTs an envelope (`auth_len` 0: no `Authorization`); the answer
    /// comes back as `tag::POSTED` with the emit's `reference`.
    #[link_name = "p"]
    fn post_event(
        h: u32,
        reference: f64,
        url: *const u8,
        url_len: usize,
        body: *const u8,
        body_len: usize,
        auth: *const u8,
        auth_len: usize,
    );
    /// Calls the `token` function; `tag` (`TOKEN` or `REAUTH`) with the
    /// token once it settles, `tag + 1` with what it threw.
    #[link_name = "t"]
    safe fn ask_token(h: u32, tag: u32, generation: u32);
    /// `tag::TICK` after `ms` milliseconds, replacing the pending timer;
    /// a negative `ms` only cancels it.
    #[link_name = "w"]
    safe fn set_timer(h: u32, ms: f64);
    /// `Date.now()`.
    #[link_name = "n"]
    pub safe fn now() -> f64;
    /// `Math.random()`.
    #[link_name = "r"]
    pub safe fn random() -> f64;
    /// A state change, in numbers: `state` as
    /// [`State`](crate::machine::State) counts, `transport` 0 none,
    /// 1 WebSocket, 2 SSE, `recovered` 0 or 1 (2: not said), `delay_ms`
    /// NaN when not said. The glue names them for the `onState` listeners.
    #[link_name = "c"]
    safe fn report_state(
        h: u32,
        state: u32,
        transport: u32,
        attempt: u32,
        recovered: u32,
        delay_ms: f64,
    );
    /// Calls handler `id` with the current value (an event).
    #[link_name = "d"]
    safe fn call_handler(h: u32, id: u32);
    /// Resolves emit `reference` with the `id`, `seq` and `duplicate` of
    /// the current value (the gateway's receipt).
    #[link_name = "a"]
    safe fn resolve_emit(h: u32, reference: f64);
    /// An `Error` with `code` and `message`: rejects emit `reference`, or
    /// goes to the `onError` listeners ([`TO_LISTENERS`]), or is what the
    /// call in progress throws ([`TO_CALLER`]).
    #[link_name = "f"]
    fn fail(h: u32, reference: f64, code: *const u8, code_len: usize, msg: *const u8, len: usize);
    /// The current value (what the token function threw) to the `onError`
    /// listeners as it is.
    #[link_name = "g"]
    safe fn report_current(h: u32);
    /// The string answer of the call in progress (`lastSeq`).
    #[link_name = "q"]
    fn answer(h: u32, text: *const u8, len: usize);
}

/// Where [`failure`] sends an error that is not an emit's.
pub const TO_LISTENERS: f64 = -1.0;
pub const TO_CALLER: f64 = -2.0;

// Safe wrappers: each import only reads the bytes it is given, during the
// call.

pub fn open(h: u32, kind: u32, generation: u32, url: &str) {
    unsafe { open_transport(h, kind, generation, url.as_ptr(), url.len()) }
}

pub fn send(h: u32, text: &str) {
    unsafe { send_text(h, text.as_ptr(), text.len()) }
}

pub fn close(h: u32) {
    close_transport(h)
}

pub fn post(h: u32, reference: f64, url: &str, body: &str, auth: &str) {
    unsafe {
        post_event(
            h,
            reference,
            url.as_ptr(),
            url.len(),
            body.as_ptr(),
            body.len(),
            auth.as_ptr(),
            auth.len(),
        )
    }
}

pub fn token(h: u32, tag: u32, generation: u32) {
    ask_token(h, tag, generation)
}

pub fn timer(h: u32, ms: f64) {
    set_timer(h, ms)
}

pub fn state(h: u32, state: u32, transport: u32, attempt: u32, recovered: u32, delay_ms: f64) {
    report_state(h, state, transport, attempt, recovered, delay_ms)
}

pub fn deliver(h: u32, id: u32) {
    call_handler(h, id)
}

pub fn resolve(h: u32, reference: f64) {
    resolve_emit(h, reference)
}

pub fn failure(h: u32, reference: f64, code: &str, message: &str) {
    unsafe {
        fail(
            h,
            reference,
            code.as_ptr(),
            code.len(),
            message.as_ptr(),
            message.len(),
        )
    }
}

pub fn report(h: u32) {
    report_current(h)
}

pub fn reply(h: u32, text: &str) {
    unsafe { answer(h, text.as_ptr(), text.len()) }
}

/// The argument buffer. One thread per instance (the module is built
/// without atomics), and it is only touched by `buffer` and
/// [`Strings::take`]/drop, never across a call into JS.
struct Buffer(UnsafeCell<Vec<u8>>);

// SAFETY: see above.
unsafe impl Sync for Buffer {}

static ARGS: Buffer = Buffer(UnsafeCell::new(Vec::new()));

/// Export `b`: room for `len` bytes (the [`HEAD`] included) of strings for
/// the next call, which the glue writes at the address answered. The
/// allocator aligns every block to at least 8 bytes (`heap.rs`), so the
/// glue writes the header as 32-bit words.
#[unsafe(export_name = "b")]
pub extern "C" fn buffer(len: usize) -> *mut u8 {
    // SAFETY: single-threaded, and no reference to ARGS outlives this call.
    let v = unsafe { &mut *ARGS.0.get() };
    v.clear();
    v.reserve(len.max(HEAD));
    v.as_mut_ptr()
}

/// At most this many strings come with one call (a frame's fields, see
/// `frames::field`). One size for every export.
pub const SLOTS: usize = 9;

/// The header of the argument buffer: the byte length of each string, as
/// a little-endian `i32` (-1: absent), before the strings themselves.
const HEAD: usize = 4 * SLOTS;

/// The strings the glue wrote for one call, owned by that call: a call it
/// makes into JS may lead to another call in, which gets a buffer of its
/// own.
pub struct Strings {
    bytes: Vec<u8>,
    /// Where each string starts in `bytes`, and its length (-1: absent).
    spans: [(usize, i32); SLOTS],
}

impl Strings {
    /// Takes the buffer: the header, then strings of the lengths it gives
    /// one after the other (-1: absent, no bytes).
    pub fn take() -> Strings {
        // SAFETY: as in `buffer`.
        let mut bytes = core::mem::take(unsafe { &mut *ARGS.0.get() });
        let mut spans = [(0, -1); SLOTS];
        let mut total = HEAD;
        if bytes.capacity() >= HEAD {
            for (i, span) in spans.iter_mut().enumerate() {
                // SAFETY: the glue wrote the header, and `buffer` made room
                // for it.
                let len = unsafe { bytes.as_ptr().cast::<i32>().add(i).read_unaligned() };
                *span = (total, len);
                total += len.max(0) as usize;
            }
        }
        // SAFETY: the glue wrote `total` bytes from the start of the
        // buffer, which `buffer` made at least that large; `min` keeps a
        // wrong length from reaching past the allocation.
        unsafe { bytes.set_len(total.min(bytes.capacity())) };
        Strings { bytes, spans }
    }

    /// String `i`, if the glue gave one.
    pub fn get(&self, i: usize) -> Option<&str> {
        let &(start, len) = self.spans.get(i)?;
        if len < 0 {
            return None;
        }
        let bytes = self.bytes.get(start..start + len as usize)?;
        // SAFETY: `TextEncoder.encodeInto` writes whole UTF-8 sequences
        // and reports how many bytes it wrote, which is `len`.
        Some(unsafe { core::str::from_utf8_unchecked(bytes) })
    }
}

impl Drop for Strings {
    /// Hands the allocation back for the next call (one a nested call left
    /// there is freed).
    fn drop(&mut self) {
        // SAFETY: as in `buffer`.
        core::mem::swap(unsafe { &mut *ARGS.0.get() }, &mut self.bytes);
    }
}
