//! Events per second through one gateway, memory engine versus NATS
//! JetStream, measured in one run. Not part of the normal test run:
//!
//!     cargo test --release -p eventwire-gateway --test nats_throughput -- --ignored --nocapture
//!
//! Publishers POST to the gateway; one SSE subscriber counts deliveries.
//! The rate is events delivered over the time from the first POST to the
//! last delivery. Everything (gateway, clients, nats-server) shares this
//! machine's cores, so read the figures as a ratio, not as capacity.

mod common;
#[path = "common/nats.rs"]
mod nats_helper;

use common::{SseClient, TestGateway, start};
use nats_helper::{NatsServer, gateway_config};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

const ROUNDS: usize = 5;

/// One round: `events` events in POSTs of `batch`, from `publishers` tasks.
async fn round(gw: &Arc<TestGateway>, events: usize, batch: usize, publishers: usize) -> f64 {
    let mut sse = SseClient::connect(gw, "topic=bench.%3E", None).await;
    sse.welcome().await;
    let per = events / publishers;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            let mut sent = 0;
            while sent < per {
                let n = batch.min(per - sent);
                let body: Vec<Value> = (0..n)
                    .map(|i| json!({"type": "bench.tick", "data": {"p": p, "i": sent + i, "pad": "x".repeat(100)}}))
                    .collect();
                let body = if batch == 1 { body[0].to_string() } else { Value::Array(body).to_string() };
                let (status, answer) = gw.post(body).await;
                assert_eq!(status, 200, "{answer}");
                sent += n;
            }
        }));
    }
    let mut got = 0;
    while got < per * publishers {
        let ev = sse.expect().await;
        assert!(
            ev.event.as_deref().is_none_or(|e| !e.starts_with('$')),
            "{ev:?}"
        );
        got += 1;
    }
    let rate = got as f64 / started.elapsed().as_secs_f64();
    for t in tasks {
        t.await.unwrap();
    }
    rate
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement: run it in release mode, see the file's doc"]
async fn events_per_second_memory_versus_nats() {
    let nats = NatsServer::start().await;
    let mut memory = common::config();
    memory.outbox_bytes = 64 << 20;
    let mut on_nats = gateway_config(&nats.url(), "BENCH");
    on_nats.outbox_bytes = 64 << 20;
    let memory = Arc::new(start(memory).await);
    let on_nats = Arc::new(start(on_nats).await);
    // (name, events per round, events per POST, concurrent publishers)
    let shapes = [
        ("batches of 100, 4 publishers", 20_000, 100, 4),
        ("single events, 16 publishers", 4_000, 1, 16),
    ];
    for (shape, events, batch, publishers) in shapes {
        round(&memory, events / 4, batch, publishers).await;
        round(&on_nats, events / 4, batch, publishers).await;
        let (mut m, mut n) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            m.push(round(&memory, events, batch, publishers).await);
            n.push(round(&on_nats, events, batch, publishers).await);
        }
        let (m, n) = (median(m), median(n));
        println!(
            "{shape}: memory {m:.0} events/s, nats {n:.0} events/s (median of {ROUNDS}; nats/memory = {:.2})",
            n / m
        );
    }
}
