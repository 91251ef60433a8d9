//! Server-Sent Events: an `EventSource` to receive; emits go out as POSTs
//! (`http.rs`).
//!
//! The stream is opened with `named=false`, so every event reaches
//! `onmessage` whatever its type (`FRAME`), and `heartbeat=event`, so
//! heartbeats are visible to the script (`HEARTBEAT`). `$welcome` comes as
//! `WELCOME`, `$close` as `CLOSED`. `EventSource`'s own reconnect is
//! switched off by closing it on the first error (`GONE`): the channel
//! reconnects with backoff and resumes from its own position instead.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/io.js")]
extern "C" {
    /// The `EventSource`, or the browser's message when it refused.
    #[wasm_bindgen(js_name = openEventSource)]
    pub fn open(url: &str, generation: u32, io: &JsValue) -> JsValue;
}
