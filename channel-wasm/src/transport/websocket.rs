//! WebSocket: subscribe, emit and acks over one socket. Text frames come
//! back as `FRAME`, the end (with the close reason, the gateway's code) as
//! `GONE`; binary frames are not part of the protocol and are dropped.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/io.js")]
extern "C" {
    #[wasm_bindgen(js_name = openWebSocket, catch)]
    pub fn open(url: &str, generation: u32, io: &JsValue) -> Result<JsValue, JsValue>;

    /// `socket.send(text)`; a closed socket drops it, and its `close`
    /// signal requeues whatever was in flight.
    #[wasm_bindgen(js_name = send, catch)]
    fn send_text(socket: &JsValue, text: &str) -> Result<(), JsValue>;
}

pub fn send(socket: &JsValue, text: &str) {
    let _ = send_text(socket, text);
}
