//! The two browser transports, with one shape: the glue (`js/io.js`)
//! opens a WebSocket or an `EventSource` at a URL built in `outgoing.rs`,
//! and every signal of it reaches the channel as one call, tagged with
//! the generation it was opened with, so a transport that was let go can
//! never report again. An incoming frame is parsed by the browser's own
//! `JSON.parse` and its few fields arrive as strings in one call
//! (`frames.rs`); the frame itself stays a JS value. Emits over SSE go out
//! as POSTs (`http.rs`).
//!
//! WebSocket: text frames are `FRAME`, the end (with the close reason, the
//! gateway's code) `GONE`; binary frames are not part of the protocol and
//! are dropped.
//!
//! SSE: the stream is opened with `named=false`, so every event reaches
//! `onmessage` whatever its type (`FRAME`), and `heartbeat=event`, so
//! heartbeats are visible to the script (`HEARTBEAT`). `$welcome` comes as
//! `WELCOME`, `$close` as `CLOSED`. `EventSource`'s own reconnect is
//! switched off by closing it on the first error (`GONE`): the channel
//! reconnects with backoff and resumes from its own position instead.

/// The tags of what the glue reports (`js/io.js` has the same numbers).
/// `TOKEN` and `REAUTH` are passed to it, and a failure comes back as
/// tag + 1.
pub mod tag {
    pub const FRAME: u32 = 1;
    pub const WELCOME: u32 = 2;
    pub const HEARTBEAT: u32 = 3;
    pub const CLOSED: u32 = 4;
    pub const GONE: u32 = 5;
    pub const POSTED: u32 = 6;
    pub const TICK: u32 = 7;
    pub const TOKEN: u32 = 8;
    pub const TOKEN_FAILED: u32 = 9;
    pub const REAUTH: u32 = 10;
    pub const REAUTH_FAILED: u32 = 11;
    /// The browser refused to open the transport; its message comes along.
    pub const FAILED: u32 = 12;
    /// A frame (`FRAME` or `WELCOME`) that is not JSON.
    pub const NOT_JSON: u32 = 13;
    /// A frame that is JSON but not an object.
    pub const NOT_OBJECT: u32 = 14;
}
