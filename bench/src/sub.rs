//! What every subscriber does, whatever its transport: check each event's
//! sequence number (loss, duplicates), record its latency, and report.
//!
//! Events carry `"data":{"s":<seq>,"t":<publish ns>,"p":"<padding>"}`; the
//! subscriber finds them with one substring search instead of a JSON parse,
//! so the load generator stays cheaper than the gateway it measures.

use crate::stats::{Latency, now_ns};
use futures_util::StreamExt;
use memchr::memmem::Finder;
use std::net::SocketAddr;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Sse,
    Ws,
}

/// One subscriber to start.
#[derive(Debug, Clone)]
pub struct Spec {
    pub idx: usize,
    pub transport: Transport,
    pub topic: String,
    /// Resume position (`Last-Event-ID` / `since`).
    pub since: Option<String>,
    /// The first sequence number this subscriber should see.
    pub first_seq: u64,
    /// Once this many events arrived, note the time (replay time).
    pub expect: Option<u64>,
    /// Remember the position of the last event (to resume from later).
    pub track_position: bool,
    /// Socket read size.
    pub read_buf: usize,
    /// The `instance` query parameter: a reconnect naming the same instance
    /// supersedes the stale stream (PROTOCOL §4.6).
    pub instance: Option<String>,
}

/// Shared by every subscriber of a run.
pub struct Shared {
    pub addr: SocketAddr,
    pub latency: Latency,
    /// Events received, per subscriber (the publisher's flow control reads it).
    pub progress: Vec<AtomicU64>,
    /// The next sequence number each subscriber expects (chaos: across its
    /// connections, so a run can wait until everyone has caught up).
    pub next: Vec<AtomicU64>,
    /// Subscribers that got `$welcome` / `subscribed`.
    pub ready: AtomicUsize,
    /// Subscribers that ended before being told to stop.
    pub ended: AtomicUsize,
    /// Latencies are recorded only while this is set (not during warm-up).
    pub measuring: std::sync::atomic::AtomicBool,
    pub stop: watch::Receiver<bool>,
}

impl Shared {
    pub fn new(addr: SocketAddr, subs: usize, stop: watch::Receiver<bool>) -> Shared {
        Shared {
            addr,
            latency: Latency::default(),
            progress: (0..subs).map(|_| AtomicU64::new(0)).collect(),
            next: (0..subs).map(|_| AtomicU64::new(0)).collect(),
            ready: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
            measuring: std::sync::atomic::AtomicBool::new(true),
            stop,
        }
    }

    pub fn delivered(&self) -> u64 {
        self.progress
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .sum()
    }
}

/// What one subscriber saw.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub idx: usize,
    /// From the start of the TCP connect to `$welcome` / `subscribed`.
    pub ready_after_us: Option<u64>,
    /// From the start of the TCP connect to the `expect`-th event.
    pub done_after_us: Option<u64>,
    pub recovered: Option<bool>,
    pub position: Option<String>,
    pub received: u64,
    /// The next sequence number expected.
    pub next_seq: u64,
    pub lost_in_gaps: u64,
    pub duplicated: u64,
    pub last_position: Option<String>,
    /// Why the connection ended before it was told to stop, if it did.
    pub ended: Option<String>,
}

/// Per-connection bookkeeping while events flow.
pub struct Tracker<'a> {
    pub spec: &'a Spec,
    pub shared: &'a Shared,
    pub out: Outcome,
    started: Instant,
    /// Latencies of the current read, recorded together.
    pending: Vec<u64>,
}

impl<'a> Tracker<'a> {
    pub fn new(spec: &'a Spec, shared: &'a Shared) -> Tracker<'a> {
        Tracker {
            spec,
            shared,
            out: Outcome {
                idx: spec.idx,
                next_seq: spec.first_seq,
                ..Outcome::default()
            },
            started: Instant::now(),
            pending: Vec::new(),
        }
    }

    pub fn ready(&mut self, recovered: Option<bool>, position: Option<String>) {
        if self.out.ready_after_us.is_none() {
            self.out.ready_after_us = Some(self.started.elapsed().as_micros() as u64);
            self.out.recovered = recovered;
            self.out.position = position;
            self.shared.ready.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One delivered event: `envelope` is its JSON; `now` the read time.
    pub fn event(&mut self, envelope: &[u8], now: u64) {
        let Some((s, t)) = parse_payload(envelope) else {
            // Not one of ours: a bench that shares a gateway must not count it.
            return;
        };
        let o = &mut self.out;
        if s == o.next_seq {
            o.next_seq += 1;
        } else if s > o.next_seq {
            o.lost_in_gaps += s - o.next_seq;
            o.next_seq = s + 1;
        } else {
            o.duplicated += 1;
        }
        o.received += 1;
        if self.spec.expect == Some(o.received) {
            o.done_after_us = Some(self.started.elapsed().as_micros() as u64);
        }
        if self.spec.track_position
            && let Some(p) = envelope_seq(envelope)
        {
            o.last_position = Some(String::from_utf8_lossy(p).into_owned());
        }
        self.pending.push(now.saturating_sub(t));
    }

    /// Ends one read: publishes progress and records its latencies.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.shared.progress[self.spec.idx].store(self.out.received, Ordering::Relaxed);
        self.shared.next[self.spec.idx].store(self.out.next_seq, Ordering::Relaxed);
        if self.shared.measuring.load(Ordering::Relaxed) {
            self.shared.latency.record_ns(self.spec.idx, &self.pending);
        }
        self.pending.clear();
    }

    pub fn end(mut self, why: Option<String>) -> Outcome {
        self.flush();
        if why.is_some() {
            self.shared.ended.fetch_add(1, Ordering::Relaxed);
        }
        self.out.ended = why;
        self.out
    }

    pub fn now() -> u64 {
        now_ns()
    }
}

const MARKER: &[u8] = br#""data":{"s":"#;
static FIND_MARKER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(MARKER));
static FIND_SEQ: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""seq":""#));

/// `(s, t)` from a bench event's envelope.
pub fn parse_payload(envelope: &[u8]) -> Option<(u64, u64)> {
    let at = FIND_MARKER.find(envelope)? + MARKER.len();
    let (s, rest) = digits(&envelope[at..])?;
    let rest = rest.strip_prefix(br#","t":"#)?;
    let (t, _) = digits(rest)?;
    Some((s, t))
}

fn digits(b: &[u8]) -> Option<(u64, &[u8])> {
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 19 {
        return None;
    }
    let mut v = 0u64;
    for &c in &b[..n] {
        v = v * 10 + u64::from(c - b'0');
    }
    Some((v, &b[n..]))
}

/// The envelope's `seq` (its position), without a JSON parse.
pub fn envelope_seq(envelope: &[u8]) -> Option<&[u8]> {
    let at = FIND_SEQ.find(envelope)? + 7;
    let len = memchr::memchr(b'"', &envelope[at..])?;
    Some(&envelope[at..at + len])
}

/// A string field of a small control frame, e.g. `"position":"…"`.
pub fn json_str<'b>(frame: &'b [u8], field: &str) -> Option<&'b str> {
    let key = format!("\"{field}\":\"");
    let at = memchr::memmem::find(frame, key.as_bytes())? + key.len();
    let len = memchr::memchr(b'"', &frame[at..])?;
    std::str::from_utf8(&frame[at..at + len]).ok()
}

/// A boolean field of a small control frame.
pub fn json_bool(frame: &[u8], field: &str) -> Option<bool> {
    let key = format!("\"{field}\":");
    let at = memchr::memmem::find(frame, key.as_bytes())? + key.len();
    let rest = &frame[at..];
    if rest.starts_with(b"true") {
        Some(true)
    } else if rest.starts_with(b"false") {
        Some(false)
    } else {
        None
    }
}

/// Runs one subscriber until it is told to stop or its connection ends.
pub async fn run(spec: Spec, shared: std::sync::Arc<Shared>) -> Outcome {
    run_until(&spec, &shared, std::future::pending()).await.0
}

/// Runs one subscriber until it is told to stop, its connection ends, or
/// `cut` fires; on a cut the socket is handed back still open, so the
/// caller decides what becomes of it (see [`Leftover`]).
pub async fn run_until(
    spec: &Spec,
    shared: &Shared,
    cut: impl Future<Output = ()>,
) -> (Outcome, Option<Leftover>) {
    let mut t = Tracker::new(spec, shared);
    let r = match spec.transport {
        Transport::Sse => crate::sse::stream(spec, shared, &mut t, cut).await,
        Transport::Ws => crate::ws::stream(spec, shared, &mut t, cut).await,
    };
    match r {
        Ok(left) => (t.end(None), left),
        Err(why) => (t.end(Some(why)), None),
    }
}

/// A connection the client walked away from, still open.
pub enum Leftover {
    Sse(TcpStream),
    Ws(Box<WebSocketStream<TcpStream>>),
}

impl Leftover {
    /// A clean close: a WebSocket close handshake (bounded), or a FIN.
    pub async fn close(self) {
        match self {
            Leftover::Sse(s) => drop(s),
            Leftover::Ws(mut ws) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
            }
        }
    }

    /// Reads and discards until the gateway ends the stream or `stop` is
    /// set, as a proxy that keeps a dead client's upstream open would.
    pub async fn drain(self, mut stop: watch::Receiver<bool>) {
        match self {
            Leftover::Sse(mut s) => {
                let mut buf = vec![0u8; 4096];
                loop {
                    tokio::select! {
                        _ = stop.wait_for(|v| *v) => return,
                        r = s.read(&mut buf) => if !matches!(r, Ok(n) if n > 0) { return },
                    }
                }
            }
            Leftover::Ws(mut ws) => loop {
                tokio::select! {
                    _ = stop.wait_for(|v| *v) => return,
                    m = ws.next() => if !matches!(m, Some(Ok(_))) { return },
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EV: &[u8] = br#"{"specversion":"1.0","id":"r1-7","type":"bench.t0","source":"eventwire/http","time":"2026-11-23T19:49:07.705Z","datacontenttype":"application/json","seq":"m8e1184c9-17","data":{"s":7,"t":123456789,"p":"xx"}}"#;

    #[test]
    fn payload_and_position_are_found() {
        assert_eq!(parse_payload(EV), Some((7, 123456789)));
        assert_eq!(envelope_seq(EV), Some(&b"m8e1184c9-17"[..]));
        assert_eq!(parse_payload(br#"{"data":{"x":1}}"#), None);
    }

    #[test]
    fn control_fields() {
        let w = br#"{"conn_id":"a-1","recovered":false,"position":"m1-0"}"#;
        assert_eq!(json_str(w, "position"), Some("m1-0"));
        assert_eq!(json_bool(w, "recovered"), Some(false));
    }

    #[test]
    fn tracker_counts_gaps_and_duplicates() {
        let (_tx, rx) = watch::channel(false);
        let shared = Shared::new(([127, 0, 0, 1], 1).into(), 1, rx);
        let spec = Spec {
            idx: 0,
            transport: Transport::Sse,
            topic: "t".into(),
            since: None,
            first_seq: 0,
            expect: None,
            track_position: false,
            read_buf: 4096,
            instance: None,
        };
        let mut t = Tracker::new(&spec, &shared);
        for s in [0u64, 1, 3, 3, 4] {
            let ev = format!(r#"{{"data":{{"s":{s},"t":0,"p":""}}}}"#);
            t.event(ev.as_bytes(), 10);
        }
        let o = t.end(None);
        assert_eq!(
            (o.received, o.next_seq, o.lost_in_gaps, o.duplicated),
            (5, 5, 1, 1)
        );
    }
}
