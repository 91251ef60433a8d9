//! Server-Sent Events: an `EventSource` to receive, `fetch` POSTs to emit.
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

/// What a POST of one event came to.
pub enum PostOutcome {
    /// 200: the receipt's `id`, `seq`, `duplicate`.
    Accepted(JsValue),
    /// The gateway refused the event: its code and message. Not retried.
    Refused(String, String),
    /// Network failure or a 5xx: worth retrying.
    Failed,
}

/// POSTs one envelope to `/v1/events`; `done` gets the outcome.
pub fn post(url: &str, json: &str, token: Option<&str>, done: impl FnOnce(PostOutcome) + 'static) {
    let init = js_sys::Object::new();
    let headers = js_sys::Object::new();
    let set = |o: &js_sys::Object, k: &str, v: &JsValue| {
        let _ = js_sys::Reflect::set(o, &k.into(), v);
    };
    set(&headers, "content-type", &"application/json".into());
    if let Some(t) = token {
        let mut auth = String::from("Bearer ");
        auth.push_str(t);
        set(&headers, "authorization", &auth.into());
    }
    set(&init, "method", &"POST".into());
    set(&init, "headers", &headers);
    set(&init, "body", &json.into());
    let global = js_sys::global();
    let fetch: js_sys::Function = match js_sys::Reflect::get(&global, &"fetch".into()) {
        Ok(f) if f.is_function() => f.unchecked_into(),
        _ => return done(PostOutcome::Failed),
    };
    let promise: js_sys::Promise = match fetch.call2(&global, &url.into(), &init) {
        Ok(p) => p.unchecked_into(),
        Err(_) => return done(PostOutcome::Failed),
    };
    // fetch → response.json() → outcome, each step a one-shot closure.
    let done = std::rc::Rc::new(std::cell::RefCell::new(Some(done)));
    let finish = {
        let done = done.clone();
        move |outcome: PostOutcome| {
            if let Some(d) = done.borrow_mut().take() {
                d(outcome);
            }
        }
    };
    let finish2 = finish.clone();
    let on_response = Closure::once_into_js(move |resp: JsValue| {
        let resp: web_sys::Response = resp.unchecked_into();
        let status = resp.status();
        let body = resp
            .json()
            .unwrap_or_else(|_| js_sys::Promise::resolve(&JsValue::NULL));
        let f = finish2.clone();
        let on_body = Closure::once_into_js(move |body: JsValue| {
            if status == 200 {
                return f(PostOutcome::Accepted(body));
            }
            if status >= 500 {
                return f(PostOutcome::Failed);
            }
            let err = js_sys::Reflect::get(&body, &"error".into()).unwrap_or(JsValue::NULL);
            let get = |k: &str| {
                js_sys::Reflect::get(&err, &k.into())
                    .ok()
                    .and_then(|v| v.as_string())
            };
            f(PostOutcome::Refused(
                get("code").unwrap_or_else(|| "bad_request".into()),
                get("message").unwrap_or_else(|| "the gateway refused the event".into()),
            ))
        });
        let f = finish2.clone();
        let on_bad_body = Closure::once_into_js(move |_: JsValue| f(PostOutcome::Failed));
        then(&body, &on_body, &on_bad_body);
    });
    let on_network_error = Closure::once_into_js(move |_: JsValue| finish(PostOutcome::Failed));
    then(&promise, &on_response, &on_network_error);
}

/// `promise.then(ok, err)` with functions made by `Closure::once_into_js`.
pub fn then(promise: &JsValue, ok: &JsValue, err: &JsValue) {
    if let Ok(f) = js_sys::Reflect::get(promise, &"then".into()) {
        let f: js_sys::Function = f.unchecked_into();
        let _ = f.call2(promise, ok, err);
    }
}
