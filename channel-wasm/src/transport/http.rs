//! Emitting over HTTP: one `fetch` POST per event, for a channel on SSE.
//! It sits beside the transports, not inside `sse.rs`: the POSTs are
//! requests of their own, and leaving them out gives both transport modules
//! the same shape (open, signal, close).

use crate::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

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
        set(&headers, "authorization", &crate::outgoing::bearer(t).into());
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
    let done = alloc::rc::Rc::new(core::cell::RefCell::new(Some(done)));
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
