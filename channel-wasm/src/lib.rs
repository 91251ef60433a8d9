//! eventwire browser client: a typed `EventChannel` over WebSocket or SSE.
//!
//! `machine` is the connection logic in plain Rust (tested natively);
//! `channel` is one channel in the browser, `frames`, `http` and
//! `transport` read what the browser reports, and `exports` is the small
//! surface that `js/index.js` wraps, over the hand-written boundary in
//! `abi` (plain wasm imports and exports, no wasm-bindgen).

#![no_std]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

/// What `std`'s prelude would give, from `alloc`.
#[allow(unused_imports)]
mod prelude {
    pub use alloc::borrow::ToOwned;
    pub use alloc::boxed::Box;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec;
    pub use alloc::vec::Vec;
}

/// The allocator, for every build of the client (the browser tests too).
#[cfg(target_arch = "wasm32")]
mod heap;
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static HEAP: heap::Heap = heap::Heap::new();

/// Without the standard library a panic traps: an `unreachable`
/// instruction, which the browser reports as a `RuntimeError`. The client
/// is written not to panic; this keeps `core::fmt`, which formatting a
/// panic message needs, out of the download.
#[cfg(all(target_arch = "wasm32", not(feature = "std")))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

pub mod backoff;
mod list;
pub mod machine;
pub mod outgoing;
pub mod recent;

#[cfg(target_arch = "wasm32")]
mod abi;
#[cfg(target_arch = "wasm32")]
mod cell;
#[cfg(target_arch = "wasm32")]
mod channel;
#[cfg(target_arch = "wasm32")]
mod exports;
#[cfg(target_arch = "wasm32")]
mod frames;
#[cfg(target_arch = "wasm32")]
mod http;
#[cfg(target_arch = "wasm32")]
mod transport;

/// The protocol version this client speaks.
pub fn protocol_version() -> u32 {
    eventwire_protocol::PROTOCOL_VERSION
}
