//! `GET /v1/sse`: Server-Sent Events.
//!
//! Not axum's `Sse` type: that one builds each `Event` into a fresh buffer,
//! which would re-encode every event once per subscriber. Here each event's
//! SSE frame is built once (see [`super::frame`]) and the
//! body stream hands out those shared bytes, several queued frames per chunk.

use super::Session;
use super::events::StreamQuery;
use crate::conn::{Out, Taken, Transport};
use crate::error::ApiError;
use crate::hub::record_batch;
use crate::state::{Peer, Shared, peer_ip};
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use bytes::BytesMut;
use eventwire_protocol::frame::{Close, Welcome};
use eventwire_protocol::{ErrorCode, ProtocolError, sse_event};
use futures_util::Stream;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Reconnect delay suggested to `EventSource` (its `retry:` field).
pub const RETRY_MS: u64 = 1000;

/// An SSE control event (`$welcome`, `$close`) with JSON data.
fn control(name: &str, data: &impl serde::Serialize) -> Bytes {
    let json = serde_json::to_string(data).expect("control data serializes");
    Bytes::from(format!("event: {name}\ndata: {json}\n\n"))
}

/// `$welcome`, preceded by `retry:` and by `id: <position>`. The start
/// position is safe to adopt at once (§4.3), so it is given as the event id:
/// a plain `EventSource` dropped before its first event then reconnects
/// with `Last-Event-ID: <position>` instead of with nothing, and misses
/// nothing (§4.4).
fn welcome_event(w: &Welcome) -> Bytes {
    let json = serde_json::to_string(w).expect("welcome serializes");
    let position = w.position.as_deref().unwrap_or_default();
    Bytes::from(format!(
        "retry: {RETRY_MS}\nid: {position}\nevent: {}\ndata: {json}\n\n",
        sse_event::WELCOME
    ))
}

pub async fn handler(
    State(shared): State<Arc<Shared>>,
    peer: Peer,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    shared.connects.check(peer_ip(&peer), 1)?;
    if shared.shutdown.is_cancelled() {
        return Err(ApiError::new(
            ErrorCode::ShuttingDown,
            "the gateway is shutting down; reconnect elsewhere",
        ));
    }
    let q = StreamQuery::parse(raw.as_deref());
    let identity = shared.identify(&headers, raw.as_deref())?;
    let patterns = q.patterns_or_none(shared.config.max_subscriptions)?;
    identity.check_subscribe(&patterns)?;
    // A non-empty header wins: a browser's EventSource sends it on
    // reconnect, while the URL still carries the position it first
    // connected with. An empty one means "no position" and must not hide
    // the query's (§5.1): that would start live and skip the gap silently.
    let header = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .map_err(|_| ApiError::new(ErrorCode::InvalidPosition, "Last-Event-ID is not ASCII"))?
            .trim(),
        None => "",
    };
    let since = if header.is_empty() {
        q.since.clone()
    } else {
        Some(header.to_owned())
    };
    let named = !matches!(q.named.as_deref(), Some("0" | "false"));
    // `EventSource` hides comments from scripts; a client that wants to
    // detect a dead stream asks for heartbeats as `$heartbeat` events.
    let heartbeat_frame = match q.heartbeat.as_deref() {
        Some("event") => Bytes::from_static(b"event: $heartbeat\ndata: {}\n\n"),
        None | Some("comment") => Bytes::from_static(b": heartbeat\n\n"),
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "`heartbeat` must be `comment` or `event`",
            ));
        }
    };
    let instance = super::instance_key(&identity, raw.as_deref())?;
    let permit = shared.limit.try_acquire()?;
    let session = Session::open(&shared.hub, Transport::Sse, permit, instance);
    let welcome = session.welcome(&shared.config, None);
    shared.hub.subscribe(
        &session.conn,
        patterns,
        since,
        move |recovered, position| {
            let mut w = welcome;
            w.recovered = Some(recovered);
            w.position = Some(position);
            welcome_event(&w)
        },
    )?;
    // The stream ends when the token does; the client reconnects with a
    // fresh one and resumes.
    let expiry = identity
        .time_left()
        .map(|left| Box::pin(tokio::time::sleep(left)));
    let stream = SseStream {
        expiry,
        session,
        shared: shared.clone(),
        named,
        heartbeat_frame,
        buf: Vec::new(),
        done: false,
    };
    let mut response = Response::new(Body::from_stream(stream));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

struct SseStream {
    expiry: Option<Pin<Box<tokio::time::Sleep>>>,
    session: Session,
    shared: Arc<Shared>,
    named: bool,
    /// Sent when the gateway-wide heartbeat tick asks (`crate::heartbeat`).
    heartbeat_frame: Bytes,
    buf: Vec<Out>,
    done: bool,
}

impl SseStream {
    fn encode(&self, item: &Out) -> Bytes {
        match item {
            Out::Event(e) => super::frame::sse(e, self.named),
            Out::Control(b) => b.clone(),
        }
    }
}

impl Stream for SseStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(exp) = &mut this.expiry
            && exp.as_mut().poll(cx).is_ready()
        {
            this.expiry = None;
            this.shared.hub.end(
                &this.session.conn,
                ProtocolError::new(
                    ErrorCode::TokenExpired,
                    "the token has expired; reconnect with a fresh one",
                ),
                false,
            );
        }
        this.buf.clear();
        let mut buf = std::mem::take(&mut this.buf);
        let polled = this.session.conn.poll_take(cx, &mut buf);
        let out = match polled {
            Poll::Ready(Taken::Items) => {
                record_batch(&this.shared.metrics, Transport::Sse, &buf);
                let chunk = if buf.len() == 1 {
                    this.encode(&buf[0])
                } else {
                    // Coalesce: one chunk, one write, for everything queued,
                    // allocated once at its final size.
                    let frames: Vec<Bytes> = buf.iter().map(|item| this.encode(item)).collect();
                    let mut all = BytesMut::with_capacity(frames.iter().map(Bytes::len).sum());
                    for f in &frames {
                        all.extend_from_slice(f);
                    }
                    all.freeze()
                };
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Taken::Heartbeat) => Poll::Ready(Some(Ok(this.heartbeat_frame.clone()))),
            Poll::Ready(Taken::Closed(reason)) => {
                this.done = true;
                Poll::Ready(Some(Ok(close_event(reason))))
            }
            Poll::Ready(Taken::Aborted) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        };
        this.buf = buf;
        out
    }
}

fn close_event(reason: ProtocolError) -> Bytes {
    control(
        sse_event::CLOSE,
        &Close {
            code: reason.code,
            message: reason.message,
        },
    )
}
