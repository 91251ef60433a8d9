//! A WebSocket subscriber (tokio-tungstenite): a `subscribe` frame, then
//! `event` frames. The read buffer is kept small, as the gateway's is.

use crate::sub::{Leftover, Shared, Spec, Tracker, json_bool, json_str};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub fn config(read_buf: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read_buf)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// Runs until told to stop (Ok(None)), until `cut` fires (Ok with the open
/// socket), or until the connection ends or fails (Err).
pub async fn stream(
    spec: &Spec,
    shared: &Shared,
    t: &mut Tracker<'_>,
    cut: impl Future<Output = ()>,
) -> Result<Option<Leftover>, String> {
    tokio::pin!(cut);
    let mut stop = shared.stop.clone();
    let s = TcpStream::connect(shared.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).ok();
    let url = match &spec.instance {
        Some(i) => format!("ws://{}/v1/ws?instance={i}", shared.addr),
        None => format!("ws://{}/v1/ws", shared.addr),
    };
    let (mut ws, _) = tokio::select! {
        r = tokio_tungstenite::client_async_with_config(url, s, Some(config(spec.read_buf))) => {
            r.map_err(|e| format!("handshake: {e}"))?
        }
        _ = stop.wait_for(|v| *v) => return Ok(None),
    };
    let topics = serde_json::to_string(&[&spec.topic]).expect("strings serialize");
    let subscribe = match &spec.since {
        Some(since) => {
            format!(r#"{{"op":"subscribe","ref":"s","topics":{topics},"since":"{since}"}}"#)
        }
        None => format!(r#"{{"op":"subscribe","ref":"s","topics":{topics}}}"#),
    };
    ws.send(Message::text(subscribe))
        .await
        .map_err(|e| format!("send: {e}"))?;
    loop {
        let msg = tokio::select! {
            biased;
            _ = stop.wait_for(|v| *v) => return Ok(None),
            _ = &mut cut => return Ok(Some(Leftover::Ws(Box::new(ws)))),
            m = ws.next() => m,
        };
        // Handle everything already buffered before recording latencies.
        let now = Tracker::now();
        let mut next = msg;
        loop {
            match next {
                None => return Err("the connection closed".into()),
                Some(Err(e)) => return Err(format!("read: {e}")),
                Some(Ok(m)) => handle(m, t, now)?,
            }
            match ws.next().now_or_never() {
                Some(m) => next = m,
                None => break,
            }
        }
        t.flush();
    }
}

fn handle(m: Message, t: &mut Tracker<'_>, now: u64) -> Result<(), String> {
    match m {
        Message::Text(text) => {
            let b = text.as_bytes();
            if b.starts_with(br#"{"op":"event""#) {
                t.event(b, now);
            } else if b.starts_with(br#"{"op":"subscribed""#) {
                t.ready(
                    json_bool(b, "recovered"),
                    json_str(b, "position").map(str::to_owned),
                );
            } else if b.starts_with(br#"{"op":"error""#) {
                return Err(format!("error frame: {}", text.as_str()));
            }
            Ok(())
        }
        Message::Close(c) => Err(format!(
            "closed: {}",
            c.map(|c| format!("{} {}", u16::from(c.code), c.reason))
                .unwrap_or_default()
        )),
        _ => Ok(()),
    }
}
