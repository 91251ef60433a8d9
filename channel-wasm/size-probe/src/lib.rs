//! Size probe for docs/CLIENT-SIZE.md: the same two jobs (receive a
//! stream's messages; read three fields of a frame) done the way the
//! eventwire client does them, and with gloo-net / serde-wasm-bindgen, to
//! measure what each would cost. Not part of the workspace; run
//! `bash measure.sh`, `bash measure.sh swb`, `bash measure.sh gloo`.
#![no_std]
extern crate alloc;
#[cfg(any(feature = "gloo", feature = "swb"))]
extern crate std;
#[path = "../../src/heap.rs"]
mod heap;
#[global_allocator]
static HEAP: heap::Heap = heap::Heap::new();
#[cfg(not(any(feature = "gloo", feature = "swb")))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
use alloc::string::String;
use wasm_bindgen::prelude::*;

// --- receiving: the eventwire way, a hand-written import per transport ---
#[cfg(not(feature = "gloo"))]
#[wasm_bindgen(
    inline_js = "export function sse(u, cb) { const s = new EventSource(u); s.onmessage = (e) => cb(e.data); return s; }
export function ws(u, cb) { const s = new WebSocket(u); s.onmessage = (e) => cb(e.data); return s; }"
)]
extern "C" {
    fn sse(url: &str, cb: &JsValue) -> JsValue;
    fn ws(url: &str, cb: &JsValue) -> JsValue;
}

#[cfg(not(feature = "gloo"))]
#[wasm_bindgen]
pub fn listen(url: &str, f: js_sys::Function) -> JsValue {
    let cb = Closure::<dyn FnMut(JsValue)>::new(move |d: JsValue| {
        let _ = f.call1(&JsValue::NULL, &d);
    })
    .into_js_value();
    if url.starts_with("ws") {
        ws(url, &cb)
    } else {
        sse(url, &cb)
    }
}

// --- receiving with gloo-net's EventSource and WebSocket streams ---
#[cfg(feature = "gloo")]
#[wasm_bindgen]
pub fn listen(url: &str, f: js_sys::Function) {
    use futures_util::StreamExt;
    let url = String::from(url);
    wasm_bindgen_futures::spawn_local(async move {
        if url.starts_with("ws") {
            let Ok(mut s) = gloo_net::websocket::futures::WebSocket::open(&url) else {
                return;
            };
            while let Some(Ok(gloo_net::websocket::Message::Text(t))) = s.next().await {
                let _ = f.call1(&JsValue::NULL, &t.into());
            }
        } else {
            let Ok(mut es) = gloo_net::eventsource::futures::EventSource::new(&url) else {
                return;
            };
            let Ok(mut s) = es.subscribe("message") else {
                return;
            };
            while let Some(Ok((_, m))) = s.next().await {
                let _ = f.call1(&JsValue::NULL, &m.data());
            }
        }
    });
}

// --- reading a frame: the eventwire way, field by field ---
#[cfg(not(feature = "swb"))]
#[wasm_bindgen]
pub fn read(v: &JsValue) -> Option<String> {
    let get = |k: &str| {
        js_sys::Reflect::get(v, &k.into())
            .ok()
            .and_then(|x| x.as_string())
    };
    let (id, ty, seq) = (get("id")?, get("type")?, get("seq")?);
    let mut s = id;
    s.push_str(&ty);
    s.push_str(&seq);
    Some(s)
}

// --- reading a frame with serde-wasm-bindgen ---
#[cfg(feature = "swb")]
#[derive(serde::Deserialize)]
struct Frame {
    id: String,
    #[serde(rename = "type")]
    ty: String,
    seq: String,
}

#[cfg(feature = "swb")]
#[wasm_bindgen]
pub fn read(v: JsValue) -> Option<String> {
    let f: Frame = serde_wasm_bindgen::from_value(v).ok()?;
    let mut s = f.id;
    s.push_str(&f.ty);
    s.push_str(&f.seq);
    Some(s)
}
