//! Emitting over HTTP: one `fetch` POST per event, for a channel on SSE.
//! It sits beside the transports, not inside `sse.rs`: the POSTs are
//! requests of their own, and leaving them out gives both transport
//! modules the same shape. The browser sends the POST (`js/io.js`); what
//! its answer means is decided here.

use crate::frames::get;
use crate::prelude::*;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/io.js")]
extern "C" {
    /// POSTs `body`; the channel's `io` gets `(POSTED, reference, body,
    /// status)`, status 0 when the network failed or the answer was not
    /// JSON.
    pub fn post(url: &str, body: &str, authorization: Option<&str>, reference: f64, io: &JsValue);
}

/// What a POST of one event came to.
pub enum PostOutcome {
    /// 200: the receipt's `id`, `seq`, `duplicate`.
    Accepted(JsValue),
    /// The gateway refused the event: its code and message. Not retried.
    Refused(String, String),
    /// Network failure, an unreadable answer or a 5xx: worth retrying.
    Failed,
}

/// Reads the answer to a POST: its status and JSON body.
pub fn outcome(status: u32, body: JsValue) -> PostOutcome {
    match status {
        200 => PostOutcome::Accepted(body),
        0 | 500.. => PostOutcome::Failed,
        _ => {
            let err = get(&body, "error");
            PostOutcome::Refused(
                get(&err, "code")
                    .as_string()
                    .unwrap_or_else(|| "bad_request".into()),
                get(&err, "message")
                    .as_string()
                    .unwrap_or_else(|| "the gateway refused the event".into()),
            )
        }
    }
}
