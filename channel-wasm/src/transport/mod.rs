//! The two browser transports, with one shape: `open(url, generation, io)`
//! starts one, every signal goes to the channel's one `io` callback tagged
//! with the generation it was opened with, and `close` detaches the
//! handlers first so a transport that was let go can never report again.
//! The browser side of each is a few lines of `js/io.js`; emits over SSE
//! go out as POSTs (`http.rs`).

use crate::frames;
use crate::machine::Kind;
use crate::prelude::*;
use wasm_bindgen::prelude::*;

pub mod http;
pub mod sse;
pub mod websocket;

/// The tags `js/io.js` calls the channel's callback with; `TOKEN` and
/// `REAUTH` are passed to it, and a failure comes back as tag + 1.
pub mod tag {
    pub const FRAME: u32 = 1;
    pub const WELCOME: u32 = 2;
    pub const HEARTBEAT: u32 = 3;
    pub const CLOSED: u32 = 4;
    pub const GONE: u32 = 5;
    pub const POSTED: u32 = 6;
    pub const TICK: u32 = 7;
    pub const TOKEN: u32 = 8;
    pub const TOKEN_FAILED: u32 = 9;
    pub const REAUTH: u32 = 10;
    pub const REAUTH_FAILED: u32 = 11;
}

#[wasm_bindgen(module = "/js/io.js")]
extern "C" {
    /// Detaches a transport's handlers, then closes it.
    #[wasm_bindgen(js_name = close)]
    fn close_transport(transport: &JsValue);
}

/// What a transport reports.
pub enum Signal {
    /// A text frame (WebSocket) or an unnamed event's data (SSE), as the
    /// browser's own string: it goes to `JSON.parse` without ever being
    /// copied into wasm memory and back.
    Frame(JsValue),
    /// SSE `$welcome` data.
    Welcome(JsValue),
    /// SSE `$heartbeat`.
    Heartbeat,
    /// The transport ended; the gateway's reason code when it gave one.
    Closed(Option<String>),
}

impl Signal {
    /// The signal behind a transport's `(tag, data)`.
    pub fn read(tag: u32, data: JsValue) -> Option<Signal> {
        Some(match tag {
            tag::FRAME => Signal::Frame(data),
            tag::WELCOME => Signal::Welcome(data),
            tag::HEARTBEAT => Signal::Heartbeat,
            // SSE `$close`: its data says why.
            tag::CLOSED => Signal::Closed(frames::close_code(&data)),
            // WebSocket `close` (its reason, the gateway's code) or SSE `error`.
            tag::GONE => Signal::Closed(data.as_string().filter(|r| !r.is_empty())),
            _ => return None,
        })
    }
}

/// The transport in use: which kind, and the browser's object.
pub struct Transport {
    kind: Kind,
    handle: JsValue,
}

impl Transport {
    /// Opens `kind` at `url`; its signals go to `io` with `generation`.
    /// Fails with the browser's message when it refuses (a malformed URL,
    /// say): `io.js` answers a string then, never a transport.
    pub fn open(kind: Kind, url: &str, generation: u32, io: &JsValue) -> Result<Transport, String> {
        let handle = match kind {
            Kind::WebSocket => websocket::open(url, generation, io),
            Kind::Sse => sse::open(url, generation, io),
        };
        match handle.as_string() {
            Some(message) => Err(message),
            None => Ok(Transport { kind, handle }),
        }
    }

    /// Sends a WebSocket text frame (an SSE transport only receives).
    pub fn send(&self, text: &str) {
        if self.kind == Kind::WebSocket {
            websocket::send(&self.handle, text);
        }
    }

    pub fn close(self) {
        close_transport(&self.handle);
    }
}
