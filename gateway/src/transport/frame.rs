//! The SSE and WebSocket frames of an event, each built at most once.
//!
//! An event is framed the first time a connection sends it, and every other
//! subscriber gets a reference-counted handle to the same bytes. The cache
//! lives in the event (see [`crate::engine::Event::frames`]), but only this
//! module knows what is in it: engines know nothing of the wire.

use crate::engine::Event;
use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use eventwire_protocol::frame;
use std::sync::OnceLock;

/// An event's frames, filled on first use.
#[derive(Debug, Default)]
pub struct Frames {
    sse_named: OnceLock<Bytes>,
    sse_unnamed: OnceLock<Bytes>,
    ws: OnceLock<Utf8Bytes>,
}

/// The SSE frame. `named` puts the type on an `event:` line; unnamed
/// frames reach `EventSource.onmessage`, which a client listening to
/// wildcard patterns needs because it cannot know every type in advance.
pub fn sse(ev: &Event, named: bool) -> Bytes {
    let cell = if named {
        &ev.frames.sse_named
    } else {
        &ev.frames.sse_unnamed
    };
    cell.get_or_init(|| {
        // No CR or LF in any of the three fields: the topic grammar and
        // the position format forbid them, serde_json writes compact
        // JSON, and ingest strips line breaks from `data`.
        let mut out =
            Vec::with_capacity(ev.json.len() + ev.seq.len() + ev.topic.as_str().len() + 24);
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(ev.seq.as_bytes());
        if named {
            out.extend_from_slice(b"\nevent: ");
            out.extend_from_slice(ev.topic.as_str().as_bytes());
        }
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(&ev.json);
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    })
    .clone()
}

/// The WebSocket `event` frame.
pub fn ws(ev: &Event) -> Utf8Bytes {
    ev.frames
        .ws
        .get_or_init(|| {
            let json = std::str::from_utf8(&ev.json).expect("serde_json writes UTF-8");
            Utf8Bytes::from(frame::event_frame(json))
        })
        .clone()
}
