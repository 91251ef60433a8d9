//! The eventwire wire protocol: what the gateway and every client agree on.
//!
//! This crate owns the event envelope, the topic and pattern grammar, the error
//! codes and the frames of the WebSocket protocol. It has no runtime: the
//! gateway and the wasm client both depend on it, so the two sides cannot drift.
//! `docs/PROTOCOL.md` is the prose version of what is here.
//!
//! Without the `std` feature the crate is `no_std` (with `alloc`): the
//! browser client is built that way, so the standard library's panic and
//! formatting machinery stays out of the download.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

/// What `std`'s prelude would give, from `alloc`, so every module reads the
/// same with or without the standard library.
#[allow(unused_imports)]
mod prelude {
    pub use alloc::borrow::ToOwned;
    pub use alloc::boxed::Box;
    pub use alloc::format;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec;
    pub use alloc::vec::Vec;
}

pub mod attr;
pub mod envelope;
pub mod error;
#[cfg(feature = "json")]
pub mod frame;
pub mod topic;

pub use envelope::Envelope;
pub use error::{ErrorCode, ProtocolError};
pub use topic::{Pattern, Topic};

/// The protocol version carried in the URL (`/v1/...`).
pub const PROTOCOL_VERSION: u32 = 1;

/// The CloudEvents spec version every envelope carries.
pub const SPEC_VERSION: &str = "1.0";

/// The `op` names, shared by the parser, the serializer and the docs tests.
pub mod op {
    pub const SUBSCRIBE: &str = "subscribe";
    pub const UNSUBSCRIBE: &str = "unsubscribe";
    pub const EMIT: &str = "emit";
    pub const PING: &str = "ping";
    pub const WELCOME: &str = "welcome";
    pub const SUBSCRIBED: &str = "subscribed";
    pub const UNSUBSCRIBED: &str = "unsubscribed";
    pub const EVENT: &str = "event";
    pub const ACK: &str = "ack";
    pub const ERROR: &str = "error";
    pub const PONG: &str = "pong";
    pub const AUTH: &str = "auth";
    pub const AUTHENTICATED: &str = "authenticated";
    /// The consume form of consumer groups (PROTOCOL §15.11).
    pub const CONSUME: &str = "consume";
    pub const CONSUMING: &str = "consuming";
    pub const DELIVERY: &str = "delivery";
    pub const NACK: &str = "nack";
    pub const EXTEND: &str = "extend";
    pub const SETTLED: &str = "settled";
}

/// Names of the SSE control events. They start with `$`, which no topic may
/// contain, so they can never collide with an event type.
pub mod sse_event {
    /// First event of every stream: connection id and whether resume worked.
    pub const WELCOME: &str = "$welcome";
    /// Last event of a stream the gateway ends on purpose, with the reason.
    pub const CLOSE: &str = "$close";
    /// Heartbeat as an event, for `?heartbeat=event` (scripts cannot see comments).
    pub const HEARTBEAT: &str = "$heartbeat";
}
