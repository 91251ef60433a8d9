//! NATS goes away and comes back: the gateway says it is not ready, refuses
//! publishes with a clear error instead of hanging or half-accepting them,
//! and then recovers on its own, with its browsers still connected and no
//! acknowledged event lost.

mod common;
#[path = "common/nats.rs"]
mod nats_helper;

use common::{SseClient, WsClient, event, sse_ns, start};
use eventwire_protocol::frame::ServerFrame;
use nats_helper::{NatsServer, gateway_config, wait_ready};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::test]
async fn nats_down_and_back() {
    let mut nats = NatsServer::start().await;
    let mut config = gateway_config(&nats.url(), "OUTAGE");
    config.engine.nats_timeout = Duration::from_secs(2);
    let gw = start(config).await;
    let base = gw.url("");
    wait_ready(&gw.http, &base, 200, common::WAIT).await;
    let mut sse = SseClient::connect(&gw, "topic=o.%3E", None).await;
    sse.welcome().await;
    let (mut ws, _) = WsClient::connect(&gw).await;
    assert!(ws.subscribe(&["o.>"], None).await);

    // Acknowledged right before NATS dies, possibly before the gateway's
    // feed has read them.
    let batch: Vec<Value> = (0..20).map(|n| event("o.e", n)).collect();
    let (status, receipts) = gw.post(Value::Array(batch).to_string()).await;
    assert_eq!(status, 200, "{receipts}");
    nats.kill();

    let body = wait_ready(&gw.http, &base, 503, common::WAIT).await;
    assert!(body.contains("engine_unavailable"), "{body}");

    let started = Instant::now();
    let (status, body) = gw
        .post(json!({"id": "refused-1", "type": "o.e", "data": {"n": -1}}).to_string())
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "engine_unavailable", "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused promptly, not after a timeout: {:?}",
        started.elapsed()
    );
    let (status, body) = gw
        .post(Value::Array(vec![event("o.refused", 999)]).to_string())
        .await;
    assert_eq!(status, 503);
    assert_eq!(
        body["accepted"],
        json!([]),
        "a batch says nothing was taken: {body}"
    );
    // Events already on their way may come first; keep them.
    let mut over_ws = Vec::new();
    ws.send(json!({"op": "emit", "ref": "e1", "event": {"type": "o.e", "data": {"n": -3}}}))
        .await;
    loop {
        match ws.recv().await {
            ServerFrame::Event { event } => over_ws.push(event),
            ServerFrame::Error {
                code, reference, ..
            } => {
                assert_eq!(code.as_str(), "engine_unavailable");
                assert_eq!(reference.as_deref(), Some("e1"));
                break;
            }
            other => panic!("expected an error frame, got {other:?}"),
        }
    }

    nats.restart().await;
    wait_ready(&gw.http, &base, 200, Duration::from_secs(30)).await;
    let batch: Vec<Value> = (20..40).map(|n| event("o.e", n)).collect();
    let (status, receipts) = gw.post(Value::Array(batch).to_string()).await;
    assert_eq!(status, 200, "{receipts}");

    // The same connections get everything acknowledged, once, in order.
    assert_eq!(sse_ns(&sse.take(40).await), (0..40).collect::<Vec<_>>());
    while over_ws.len() < 40 {
        over_ws.push(ws.expect_event().await);
    }
    assert_eq!(common::ns(&over_ws), (0..40).collect::<Vec<u64>>());
    sse.expect_silence(Duration::from_millis(300)).await;

    // Nothing refused was stored.
    let (status, text) = gw.get("/v1/events?topic=o.%3E&limit=1000").await;
    assert_eq!(status, 200, "{text}");
    let history: Value = serde_json::from_str(&text).unwrap();
    let stored = history["events"].as_array().unwrap();
    assert_eq!(common::ns(stored), (0..40).collect::<Vec<u64>>());
}
