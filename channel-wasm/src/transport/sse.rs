//! Server-Sent Events: an `EventSource` to receive (emits go out as POSTs,
//! see `http.rs`).
//!
//! The stream is opened with `named=false`, so every event reaches
//! `onmessage` whatever its type, and `heartbeat=event`, so heartbeats are
//! visible to the script. `EventSource`'s own reconnect is switched off by
//! closing it on the first error: the channel reconnects with backoff and
//! resumes from its own position instead.

use super::{OnSignal, Signal};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Event, EventSource, MessageEvent};

pub struct SseTransport {
    source: EventSource,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_welcome: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(MessageEvent)>,
    _on_heartbeat: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(Event)>,
}

impl SseTransport {
    pub fn open(url: &str, on: OnSignal) -> Result<SseTransport, JsValue> {
        let source = EventSource::new(url)?;
        let o = on.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            o(Signal::Frame(e.data()))
        });
        let o = on.clone();
        let on_welcome = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            o(Signal::Welcome(e.data()))
        });
        let o = on.clone();
        let on_heartbeat =
            Closure::<dyn FnMut(MessageEvent)>::new(move |_: MessageEvent| o(Signal::Heartbeat));
        let o = on.clone();
        let src = source.clone();
        let on_close = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            src.close();
            let code = crate::frames::close_code(&e.data());
            o(Signal::Closed(code));
        });
        let src = source.clone();
        let on_error = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            src.close();
            on(Signal::Closed(None));
        });
        source.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        for (name, f) in [
            (eventwire_protocol::sse_event::WELCOME, &on_welcome),
            (eventwire_protocol::sse_event::CLOSE, &on_close),
            (eventwire_protocol::sse_event::HEARTBEAT, &on_heartbeat),
        ] {
            source.add_event_listener_with_callback(name, f.as_ref().unchecked_ref())?;
        }
        Ok(SseTransport {
            source,
            _on_message: on_message,
            _on_welcome: on_welcome,
            _on_close: on_close,
            _on_heartbeat: on_heartbeat,
            _on_error: on_error,
        })
    }

    pub fn close(self) {
        self.source.set_onmessage(None);
        self.source.set_onerror(None);
        for (name, f) in [
            (eventwire_protocol::sse_event::WELCOME, &self._on_welcome),
            (eventwire_protocol::sse_event::CLOSE, &self._on_close),
            (
                eventwire_protocol::sse_event::HEARTBEAT,
                &self._on_heartbeat,
            ),
        ] {
            let _ = self
                .source
                .remove_event_listener_with_callback(name, f.as_ref().unchecked_ref());
        }
        self.source.close();
    }
}
