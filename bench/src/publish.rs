//! The publisher: events of a chosen size at a fixed rate, or as fast as the
//! slowest subscriber keeps up with (flow control, so nothing is lost), over
//! `POST /v1/events` batches or WebSocket `emit`.
//!
//! One connection, one request at a time: the gateway accepts events in the
//! order they were sent, so each topic's sequence numbers reach every
//! subscriber in order and any gap or repeat is the gateway's doing.

use crate::http;
use crate::stats::now_ns;
use crate::sub::Shared;
use futures_util::{SinkExt, StreamExt};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// `POST /v1/events`, batches of up to 100.
    Http,
    /// WebSocket `emit`, one frame per event, acks awaited per batch.
    Ws,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub via: Via,
    /// Events go round-robin over these topics.
    pub topics: Vec<String>,
    /// Events per second in total; None: as fast as flow control allows.
    pub rate: Option<f64>,
    pub duration: Duration,
    /// Stop after this many events, whatever the duration.
    pub max_events: Option<u64>,
    /// Size of each published envelope, in bytes (at least ~70).
    pub event_bytes: usize,
    pub batch: usize,
    /// Flow control: most events any subscriber may lag behind.
    pub window: u64,
    /// Makes event ids unique across runs against one gateway.
    pub run_id: String,
    /// The sequence number of each topic's first event (a later phase of a run).
    pub first_seq: u64,
    /// Set to the number of events accepted so far after each answered
    /// request, for readers that need "published before now" while it runs.
    pub acked: Option<Arc<AtomicU64>>,
}

#[derive(Debug, Default)]
pub struct Published {
    /// The next sequence number, per topic: events accepted plus `first_seq`.
    pub per_topic: Vec<u64>,
    pub total: u64,
    pub duplicates: u64,
    pub elapsed: Duration,
    /// Time spent waiting for subscribers to catch up (max-rate mode).
    pub throttled: Duration,
    pub error: Option<String>,
}

/// Which topic each subscriber listens to, for flow control.
pub struct Flow<'a> {
    pub shared: &'a Shared,
    pub sub_topic: &'a [usize],
}

impl Flow<'_> {
    /// The largest number of events any subscriber still has to receive.
    fn max_lag(&self, per_topic: &[u64]) -> u64 {
        self.sub_topic
            .iter()
            .zip(&self.shared.progress)
            .map(|(&t, p)| per_topic[t].saturating_sub(p.load(Ordering::Relaxed)))
            .max()
            .unwrap_or(0)
    }
}

enum Sender {
    Http(http::Conn),
    Ws(Box<tokio_tungstenite::WebSocketStream<TcpStream>>),
}

impl Sender {
    async fn open(via: Via, addr: SocketAddr) -> Result<Sender, String> {
        Ok(match via {
            Via::Http => Sender::Http(http::Conn::open(addr).await?),
            Via::Ws => {
                let s = TcpStream::connect(addr)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                s.set_nodelay(true).ok();
                let (ws, _) = tokio_tungstenite::client_async_with_config(
                    format!("ws://{addr}/v1/ws"),
                    s,
                    Some(crate::ws::config(64 * 1024)),
                )
                .await
                .map_err(|e| format!("handshake: {e}"))?;
                Sender::Ws(Box::new(ws))
            }
        })
    }

    /// Publishes `events` (each an envelope JSON); returns how many were duplicates.
    async fn send(&mut self, events: &[String], body: &mut Vec<u8>) -> Result<u64, String> {
        match self {
            Sender::Http(c) => {
                body.clear();
                body.push(b'[');
                for (i, e) in events.iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(e.as_bytes());
                }
                body.push(b']');
                let (status, reply) = c.post("/v1/events", body).await?;
                if status != 200 {
                    return Err(format!(
                        "POST /v1/events: {status} {}",
                        String::from_utf8_lossy(&reply)
                    ));
                }
                Ok(memchr::memmem::find_iter(&reply, br#""duplicate":true"#).count() as u64)
            }
            Sender::Ws(ws) => {
                for e in events {
                    let frame = format!(r#"{{"op":"emit","event":{e}}}"#);
                    ws.feed(Message::text(frame))
                        .await
                        .map_err(|e| format!("emit: {e}"))?;
                }
                ws.flush().await.map_err(|e| format!("emit: {e}"))?;
                let mut acks = 0;
                let mut dups = 0;
                while acks < events.len() {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) => {
                            let b = t.as_bytes();
                            if b.starts_with(br#"{"op":"ack""#) {
                                acks += 1;
                                if memchr::memmem::find(b, br#""duplicate":true"#).is_some() {
                                    dups += 1;
                                }
                            } else if b.starts_with(br#"{"op":"error""#) {
                                return Err(format!("emit: {}", t.as_str()));
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Err(format!("emit: {e}")),
                        None => return Err("emit: the connection closed".into()),
                    }
                }
                Ok(dups)
            }
        }
    }
}

/// One bench event: `{"type":…,"id":…,"data":{"s":…,"t":…,"p":"…"}}`,
/// padded to `size` bytes.
pub fn event_json(out: &mut String, topic: &str, id: &str, s: u64, t: u64, size: usize) {
    out.clear();
    let _ = write!(
        out,
        r#"{{"type":"{topic}","id":"{id}","data":{{"s":{s},"t":{t},"p":""#
    );
    let pad = size.saturating_sub(out.len() + 3);
    out.extend(std::iter::repeat_n('x', pad));
    out.push_str("\"}}");
}

/// Publishes according to `plan`; with `flow`, never lets a subscriber lag
/// more than `plan.window` events behind.
pub async fn run(addr: SocketAddr, plan: &Plan, flow: Option<Flow<'_>>) -> Published {
    let mut out = Published {
        per_topic: vec![plan.first_seq; plan.topics.len()],
        ..Published::default()
    };
    let mut sender = match Sender::open(plan.via, addr).await {
        Ok(s) => s,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    let batch_max = plan.batch.clamp(1, 100);
    let mut events: Vec<String> = (0..batch_max).map(|_| String::new()).collect();
    let mut body = Vec::new();
    let mut id = String::new();
    let start = Instant::now();
    let mut next_topic = 0usize;
    loop {
        let elapsed = start.elapsed();
        let left = plan.max_events.map_or(u64::MAX, |m| m - out.total);
        if elapsed >= plan.duration || left == 0 {
            break;
        }
        let mut n = (batch_max as u64).min(left);
        match plan.rate {
            Some(rate) => {
                let due = (elapsed.as_secs_f64() * rate) as u64 + 1;
                if due <= out.total {
                    let at = start + Duration::from_secs_f64(out.total as f64 / rate);
                    tokio::time::sleep_until(at.into()).await;
                    continue;
                }
                n = n.min(due - out.total);
            }
            None => {
                if let Some(flow) = &flow
                    && flow.max_lag(&out.per_topic) + n > plan.window
                {
                    let t0 = Instant::now();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    out.throttled += t0.elapsed();
                    continue;
                }
            }
        }
        let t = now_ns();
        for e in events.iter_mut().take(n as usize) {
            let topic = next_topic;
            next_topic = (next_topic + 1) % plan.topics.len();
            id.clear();
            let _ = write!(id, "{}-{}-{}", plan.run_id, plan.first_seq, out.total);
            let s = out.per_topic[topic];
            event_json(e, &plan.topics[topic], &id, s, t, plan.event_bytes);
            out.per_topic[topic] += 1;
            out.total += 1;
        }
        match sender.send(&events[..n as usize], &mut body).await {
            Ok(d) => {
                out.duplicates += d;
                if let Some(a) = &plan.acked {
                    a.store(out.total, Ordering::Relaxed);
                }
            }
            Err(e) => {
                out.error = Some(e);
                break;
            }
        }
    }
    out.elapsed = start.elapsed();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_padded_to_size_and_parse_back() {
        let mut s = String::new();
        event_json(&mut s, "bench.t0", "r-1", 42, 1234, 120);
        assert_eq!(s.len(), 120);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["data"]["s"], 42);
        // The gateway relays `data` verbatim, so the subscriber's search finds it.
        assert_eq!(crate::sub::parse_payload(s.as_bytes()), Some((42, 1234)));
    }
}
