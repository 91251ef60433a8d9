//! WebSocket: subscribe, emit and acks over one socket.

use super::{OnSignal, Signal};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

pub struct WebSocketTransport {
    socket: WebSocket,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl WebSocketTransport {
    pub fn open(url: &str, on: OnSignal) -> Result<WebSocketTransport, JsValue> {
        let socket = WebSocket::new(url)?;
        let on_msg = on.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let data = e.data();
            // Binary frames are not part of the protocol.
            if data.is_string() {
                on_msg(Signal::Frame(data));
            }
        });
        // `error` is always followed by `close`, so `close` alone reports.
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
            let reason = e.reason();
            on(Signal::Closed((!reason.is_empty()).then_some(reason)));
        });
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(WebSocketTransport {
            socket,
            _on_message: on_message,
            _on_close: on_close,
        })
    }

    pub fn send(&self, text: &str) -> bool {
        self.socket.send_with_str(text).is_ok()
    }

    pub fn close(self) {
        self.socket.set_onmessage(None);
        self.socket.set_onclose(None);
        let _ = self.socket.close();
    }
}
