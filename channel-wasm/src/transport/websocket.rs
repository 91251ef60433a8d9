//! WebSocket: subscribe, emit and acks over one socket. Text frames come
//! back as `FRAME`, the end (with the close reason, the gateway's code) as
//! `GONE`; binary frames are not part of the protocol and are dropped.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/io.js")]
extern "C" {
    /// The `WebSocket`, or the browser's message when it refused.
    #[wasm_bindgen(js_name = openWebSocket)]
    pub fn open(url: &str, generation: u32, io: &JsValue) -> JsValue;

    /// `socket.send(text)`; a closed socket drops it, and its `close`
    /// signal requeues whatever was in flight.
    pub fn send(socket: &JsValue, text: &str);
}
