//! The two browser transports, with one shape: `open(url, on)` starts one,
//! every signal goes to `on`, `close()` detaches the handlers first so a
//! transport that was let go can never report again.

pub mod http;
pub mod sse;
pub mod websocket;

use crate::prelude::*;
use alloc::rc::Rc;
use wasm_bindgen::JsValue;

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

pub type OnSignal = Rc<dyn Fn(Signal)>;

/// The transport in use.
pub enum Transport {
    WebSocket(websocket::WebSocketTransport),
    Sse(sse::SseTransport),
}

impl Transport {
    pub fn close(self) {
        match self {
            Transport::WebSocket(t) => t.close(),
            Transport::Sse(t) => t.close(),
        }
    }
}
