//! An SSE subscriber over a raw `TcpStream`: a GET, a chunked-body decoder
//! and a tiny SSE frame splitter. A few KiB per connection.

use crate::http::{Dechunk, read_head};
use crate::sub::{Leftover, Shared, Spec, Tracker, json_bool, json_str};
use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Runs until told to stop (Ok(None)), until `cut` fires (Ok with the open
/// socket), or until the stream ends or fails (Err).
pub async fn stream(
    spec: &Spec,
    shared: &Shared,
    t: &mut Tracker<'_>,
    cut: impl Future<Output = ()>,
) -> Result<Option<Leftover>, String> {
    tokio::pin!(cut);
    let mut stop = shared.stop.clone();
    let mut s = TcpStream::connect(shared.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).ok();
    let instance = spec
        .instance
        .as_deref()
        .map(|i| format!("&instance={i}"))
        .unwrap_or_default();
    let mut req = format!(
        "GET /v1/sse?topic={}&named=0{instance} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n",
        spec.topic, shared.addr
    );
    if let Some(since) = &spec.since {
        req.push_str(&format!("Last-Event-ID: {since}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut leftover = Vec::new();
    let head = tokio::select! {
        h = read_head(&mut s, &mut leftover) => h?,
        _ = stop.wait_for(|v| *v) => return Ok(None),
    };
    if head.status != 200 {
        return Err(format!("status {}", head.status));
    }
    let mut dechunk = head.chunked.then(Dechunk::default);
    let mut sse: Vec<u8> = Vec::new();
    let mut raw = vec![0u8; spec.read_buf];
    let mut input: &[u8] = &leftover;
    loop {
        let now = Tracker::now();
        let done = match &mut dechunk {
            Some(d) => d.feed(input, &mut sse)?,
            None => {
                sse.extend_from_slice(input);
                false
            }
        };
        if let Some(close) = frames(&mut sse, t, now) {
            return Err(close);
        }
        t.flush();
        if done {
            return Err("the stream ended".into());
        }
        let n = tokio::select! {
            biased;
            _ = stop.wait_for(|v| *v) => return Ok(None),
            _ = &mut cut => return Ok(Some(Leftover::Sse(s))),
            r = s.read(&mut raw) => r.map_err(|e| format!("read: {e}"))?,
        };
        if n == 0 {
            return Err("the connection closed".into());
        }
        input = &raw[..n];
    }
}

/// Handles every complete frame in `buf` and keeps the partial rest.
/// Returns the `$close` data if the gateway ended the stream.
fn frames(buf: &mut Vec<u8>, t: &mut Tracker<'_>, now: u64) -> Option<String> {
    let mut start = 0;
    let mut closed = None;
    while let Some(len) = memmem::find(&buf[start..], b"\n\n") {
        let frame = &buf[start..start + len];
        start += len + 2;
        if frame.starts_with(b"id: ") {
            t.event(frame, now);
        } else if memmem::find(frame, b"event: $welcome").is_some() {
            t.ready(
                json_bool(frame, "recovered"),
                json_str(frame, "position").map(str::to_owned),
            );
        } else if let Some(at) = memmem::find(frame, b"event: $close") {
            closed = Some(String::from_utf8_lossy(&frame[at..]).replace('\n', " "));
            break;
        }
        // Anything else is a heartbeat comment.
    }
    buf.drain(..start);
    closed
}
