//! eventwire browser client: a typed `EventChannel` over WebSocket or SSE.
//!
//! `machine` is the connection logic in plain Rust (tested natively);
//! `transport` holds the two browser transports with the same shape;
//! `channel` is the thin `#[wasm_bindgen]` surface that `js/index.js` wraps.

extern crate alloc;

pub mod backoff;
pub mod machine;
pub mod outgoing;
pub mod recent;

#[cfg(target_arch = "wasm32")]
mod channel;
#[cfg(target_arch = "wasm32")]
pub use channel::Channel;
#[cfg(target_arch = "wasm32")]
mod frames;
#[cfg(target_arch = "wasm32")]
mod transport;

/// The protocol version this client speaks.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen::prelude::wasm_bindgen(js_name = protocolVersion))]
pub fn protocol_version() -> u32 {
    eventwire_protocol::PROTOCOL_VERSION
}
