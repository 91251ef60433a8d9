//! eventwire browser client (work in progress).
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
pub fn protocol_version() -> u32 {
    eventwire_protocol::PROTOCOL_VERSION
}
