//! Webhook benchmark: a gateway POSTs events to a fast local receiver (a
//! minimal HTTP/1.1 server in this process that answers 204, or 500 to a
//! chosen share of requests). First a backlog as fast as the webhook
//! delivers it (events per second), then a steady publish rate for
//! publish-to-receiver latency. Every event must reach the receiver with a
//! 2xx; a repeat after a 2xx counts as a duplicate.

use crate::gateway::{Needs, Target};
use crate::groups::publish;
use crate::http::Conn;
use crate::stats::{Percentiles, now_ns, round};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
pub struct Plan {
    /// The webhook's `max_inflight`.
    pub inflight: u32,
    /// Events in the backlog of the throughput run.
    pub events: u64,
    /// Events per second in the latency run, and its length.
    pub rate: f64,
    pub duration: Duration,
    /// Share of requests the receiver answers 500 (0 to 1).
    pub fail: f64,
    pub event_bytes: usize,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub engine: String,
    pub max_inflight: u32,
    pub events: u64,
    pub fail_ratio: f64,
    pub events_per_s: f64,
    pub requests: u64,
    pub latency_rate: f64,
    pub latency_events: u64,
    pub publish_to_receiver_ms: Percentiles,
    pub duplicates: u64,
    pub missing: u64,
    pub error: Option<String>,
}

/// What the receiver saw: 2xx answers per event (by `s`), requests, and
/// publish-to-receive latencies in microseconds.
#[derive(Default)]
struct Seen {
    ok: HashMap<u64, u32>,
    requests: u64,
    latencies_us: Vec<u64>,
}

const SECRET: &str = "whsec_ZXZlbnR3aXJlLWJlbmNoLXdlYmhvb2stc2VjcmV0";

pub async fn run(target: &Target, plan: &Plan) -> Outcome {
    let mut out = Outcome {
        engine: "?".into(),
        max_inflight: plan.inflight,
        events: plan.events,
        fail_ratio: plan.fail,
        events_per_s: 0.0,
        requests: 0,
        latency_rate: plan.rate,
        latency_events: 0,
        publish_to_receiver_ms: Percentiles::default(),
        duplicates: 0,
        missing: 0,
        error: None,
    };
    let needs = Needs {
        history_events: plan.events as usize + (plan.rate * plan.duration.as_secs_f64()) as usize,
        ..Needs::default()
    };
    let (engine, error) = target
        .run_on("webhooks", &needs, |addr| measure(addr, plan, &mut out))
        .await;
    out.engine = engine;
    out.error = error;
    out
}

async fn measure(addr: SocketAddr, plan: &Plan, out: &mut Outcome) -> Result<(), String> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("receiver: {e}"))?;
    let receiver = listener.local_addr().map_err(|e| e.to_string())?;
    let receiving = tokio::spawn(receive(listener, seen.clone(), plan.fail));
    let mut admin = Conn::open(addr).await?;
    // The backlog first, then the webhook from the earliest event: the
    // throughput run measures delivery alone.
    publish(&mut admin, 0, plan.events, plan.event_bytes, None).await?;
    let spec = serde_json::json!({
        "url": format!("http://{receiver}/hook"), "topics": ["bench.>"], "secret": SECRET,
        "max_inflight": plan.inflight, "max_deliver": 100, "start": "earliest",
        "retry": {"initial": "10ms", "max": "100ms"},
    });
    let (status, body) = admin
        .send("PUT", "/v1/webhooks/bench", spec.to_string().as_bytes())
        .await?;
    if status != 201 {
        return Err(format!(
            "PUT webhook: {status} {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let start = Instant::now();
    wait_for(&seen, plan.events).await?;
    out.events_per_s = round(plan.events as f64 / start.elapsed().as_secs_f64(), 0);
    seen.lock().expect("not poisoned").latencies_us.clear();
    let n = (plan.rate * plan.duration.as_secs_f64()) as u64;
    publish(
        &mut admin,
        plan.events,
        n,
        plan.event_bytes,
        Some(plan.rate),
    )
    .await?;
    let total = plan.events + n;
    wait_for(&seen, total).await?;
    // Late repeats, if any, have a moment to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    receiving.abort();
    let seen = seen.lock().expect("not poisoned");
    out.latency_events = n;
    out.requests = seen.requests;
    out.duplicates = seen
        .ok
        .values()
        .map(|&k| u64::from(k.saturating_sub(1)))
        .sum();
    out.missing = (0..total).filter(|s| !seen.ok.contains_key(s)).count() as u64;
    out.publish_to_receiver_ms = Percentiles::of_values_us(&seen.latencies_us);
    Ok(())
}

async fn wait_for(seen: &Arc<Mutex<Seen>>, events: u64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(300);
    while (seen.lock().expect("not poisoned").ok.len() as u64) < events {
        if Instant::now() > deadline {
            return Err("the webhook did not deliver everything within 5 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

async fn receive(listener: TcpListener, seen: Arc<Mutex<Seen>>, fail: f64) {
    let mut n = 0u64;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        stream.set_nodelay(true).ok();
        n += 1;
        tokio::spawn(serve(stream, seen.clone(), fail, n));
    }
}

/// One keep-alive connection from the gateway: requests in, 204 or 500 out.
async fn serve(mut stream: TcpStream, seen: Arc<Mutex<Seen>>, fail: f64, salt: u64) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut k = salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    loop {
        // A request: head up to the blank line, then Content-Length bytes.
        let (head_end, length) = loop {
            if let Some(end) = memchr::memmem::find(&buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (end + 4, length);
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        while buf.len() < head_end + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let at = now_ns();
        let body: Value =
            serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or_default();
        buf.drain(..head_end + length);
        // A cheap per-connection pseudo-random stream for the failures.
        k ^= k << 13;
        k ^= k >> 7;
        k ^= k << 17;
        let failed = (k % 10_000) as f64 / 10_000.0 < fail;
        {
            let mut seen = seen.lock().expect("not poisoned");
            seen.requests += 1;
            if !failed
                && let (Some(s), Some(t)) = (body["data"]["s"].as_u64(), body["data"]["t"].as_u64())
            {
                *seen.ok.entry(s).or_default() += 1;
                seen.latencies_us.push(at.saturating_sub(t) / 1000);
            }
        }
        let answer: &[u8] = if failed {
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"
        } else {
            b"HTTP/1.1 204 No Content\r\n\r\n"
        };
        if stream.write_all(answer).await.is_err() {
            return;
        }
    }
}
