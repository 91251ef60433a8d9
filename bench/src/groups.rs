//! Consumer-group benchmark: workers fetch and ack in batches, first as fast
//! as they can over a backlog, then at a steady publish rate for
//! publish-to-worker latency. Every event must be acked exactly once.

use crate::gateway::{Needs, Target};
use crate::http::Conn;
use crate::publish::event_json;
use crate::stats::{Percentiles, now_ns, round};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Plan {
    pub workers: usize,
    pub batch: usize,
    /// Events in the backlog the throughput run drains.
    pub events: u64,
    /// Events per second in the latency run, and its length.
    pub rate: f64,
    pub duration: Duration,
    pub event_bytes: usize,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub engine: String,
    pub workers: usize,
    pub batch: usize,
    pub events: u64,
    pub events_per_s: f64,
    pub latency_rate: f64,
    pub latency_events: u64,
    pub publish_to_worker_ms: Percentiles,
    pub duplicates: u64,
    pub missing: u64,
    pub error: Option<String>,
}

/// What workers saw: acks per event (by the `s` counter in its data) and
/// publish-to-fetch latencies in microseconds.
#[derive(Default)]
struct Seen {
    acks: HashMap<u64, u32>,
    latencies_us: Vec<u64>,
}

pub async fn run(target: &Target, plan: &Plan) -> Outcome {
    let mut out = Outcome {
        engine: "?".into(),
        workers: plan.workers,
        batch: plan.batch,
        events: plan.events,
        events_per_s: 0.0,
        latency_rate: plan.rate,
        latency_events: 0,
        publish_to_worker_ms: Percentiles::default(),
        duplicates: 0,
        missing: 0,
        error: None,
    };
    let needs = Needs {
        history_events: plan.events as usize + (plan.rate * plan.duration.as_secs_f64()) as usize,
        ..Needs::default()
    };
    let (engine, error) = target
        .run_on("groups", &needs, |addr| measure(addr, plan, &mut out))
        .await;
    out.engine = engine;
    out.error = error;
    out
}

async fn measure(addr: SocketAddr, plan: &Plan, out: &mut Outcome) -> Result<(), String> {
    let mut admin = Conn::open(addr).await?;
    let (status, body) = admin
        .send(
            "PUT",
            "/v1/groups/bench",
            br#"{"topics":["bench.>"],"ack_wait":"60s","start":"earliest","max_inflight":10000}"#,
        )
        .await?;
    if status != 201 {
        return Err(format!(
            "PUT group: {status} {}",
            String::from_utf8_lossy(&body)
        ));
    }
    // Throughput: a backlog drained by the workers.
    publish(&mut admin, 0, plan.events, plan.event_bytes, None).await?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let start = Instant::now();
    work(addr, plan, plan.events, &seen).await?;
    out.events_per_s = round(plan.events as f64 / start.elapsed().as_secs_f64(), 0);
    // The backlog's waits say nothing about latency.
    seen.lock().expect("not poisoned").latencies_us.clear();
    // Latency: a steady rate, workers long-polling.
    let n = (plan.rate * plan.duration.as_secs_f64()) as u64;
    let workers = {
        let seen = seen.clone();
        let plan = plan.clone();
        tokio::spawn(async move { work(addr, &plan, plan.events + n, &seen).await })
    };
    // A fresh connection: the gateway closes keep-alive sockets idle
    // longer than --header-timeout (10 s), as the backlog run may take.
    let mut publisher = Conn::open(addr).await?;
    publish(
        &mut publisher,
        plan.events,
        n,
        plan.event_bytes,
        Some(plan.rate),
    )
    .await?;
    workers.await.map_err(|e| e.to_string())??;
    let seen = seen.lock().expect("not poisoned");
    let total = plan.events + n;
    out.latency_events = n;
    out.duplicates = seen
        .acks
        .values()
        .map(|&k| u64::from(k.saturating_sub(1)))
        .sum();
    out.missing = (0..total).filter(|s| !seen.acks.contains_key(s)).count() as u64;
    out.publish_to_worker_ms = Percentiles::of_values_us(&seen.latencies_us);
    Ok(())
}

/// Publishes `count` `bench.job` events numbered from `from` (data `s`,
/// and `t` the publish time), in batches of 100, at `rate` per second when
/// given. The webhooks scenario publishes with it too.
pub(crate) async fn publish(
    conn: &mut Conn,
    from: u64,
    count: u64,
    event_bytes: usize,
    rate: Option<f64>,
) -> Result<(), String> {
    let start = Instant::now();
    let mut event = String::new();
    let mut s = from;
    while s < from + count {
        let batch = match rate {
            // At a rate: one event per request, on time.
            Some(r) => {
                let due = start + Duration::from_secs_f64((s - from) as f64 / r);
                tokio::time::sleep_until(due.into()).await;
                1
            }
            None => 100.min(from + count - s),
        };
        let mut body = String::from("[");
        for i in 0..batch {
            if i > 0 {
                body.push(',');
            }
            event_json(
                &mut event,
                "bench.job",
                &format!("b{}", s + i),
                s + i,
                now_ns(),
                event_bytes,
            );
            body.push_str(&event);
        }
        body.push(']');
        let (status, resp) = conn.send("POST", "/v1/events", body.as_bytes()).await?;
        if status != 200 {
            return Err(format!(
                "publish: {status} {}",
                String::from_utf8_lossy(&resp)
            ));
        }
        s += batch;
    }
    Ok(())
}

/// Runs the workers until `until` events (counting from 0) have been acked.
async fn work(
    addr: SocketAddr,
    plan: &Plan,
    until: u64,
    seen: &Arc<Mutex<Seen>>,
) -> Result<(), String> {
    let mut tasks = Vec::new();
    for _ in 0..plan.workers {
        let seen = seen.clone();
        let fetch = format!(r#"{{"max":{},"wait":"1s"}}"#, plan.batch);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let deadline = Instant::now() + Duration::from_secs(300);
            while (seen.lock().expect("not poisoned").acks.len() as u64) < until {
                if Instant::now() > deadline {
                    return Err("the workers did not finish within 5 minutes".to_owned());
                }
                let (status, body) = conn
                    .send("POST", "/v1/groups/bench/fetch", fetch.as_bytes())
                    .await?;
                if status != 200 {
                    return Err(format!("fetch: {status}"));
                }
                let at = now_ns();
                let v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                let deliveries = v["deliveries"].as_array().cloned().unwrap_or_default();
                if deliveries.is_empty() {
                    continue;
                }
                let mut handles = Vec::with_capacity(deliveries.len());
                {
                    let mut seen = seen.lock().expect("not poisoned");
                    for d in &deliveries {
                        handles.push(d["handle"].clone());
                        let data = &d["event"]["data"];
                        let (s, t) = (data["s"].as_u64(), data["t"].as_u64());
                        if let (Some(s), Some(t)) = (s, t) {
                            *seen.acks.entry(s).or_default() += 1;
                            seen.latencies_us.push(at.saturating_sub(t) / 1000);
                        }
                    }
                }
                let ack = serde_json::json!({ "handles": handles }).to_string();
                let (status, _) = conn
                    .send("POST", "/v1/groups/bench/ack", ack.as_bytes())
                    .await?;
                if status != 200 {
                    return Err(format!("ack: {status}"));
                }
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}
