//! Interop: bare JSON from a producer that knows nothing of envelopes (here
//! shaped like @synet/realtime's NatsEventChannel, on `topic.<name>`)
//! reaches browsers as events, once, in order, with positions.

mod common;
#[path = "common/nats.rs"]
mod nats_helper;

use common::{SseClient, start};
use nats_helper::{NatsServer, gateway_config};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn bare_json_is_mapped_into_events_once() {
    let nats = NatsServer::start().await;
    let mut config = gateway_config(&nats.url(), "INTEROP");
    config.engine.nats_interop = vec!["topic.>=legacy".parse().unwrap()];
    // Two gateways both map every message; JetStream keeps one copy.
    let g1 = start(config.clone()).await;
    let g2 = start(config).await;
    let plain = start(gateway_config(&nats.url(), "INTEROP")).await;
    let mut sse = SseClient::connect(&g1, "topic=legacy.%3E", None).await;
    sse.welcome().await;

    let producer = async_nats::connect(nats.url()).await.unwrap();
    let first = json!({
        "type": "message", "id": "syn-1", "source": "chat-service",
        "timestamp": "2026-01-02T03:04:05.678Z", "data": {"text": "hi"}, "clientId": "c-1"
    });
    producer
        .publish("topic.chat", first.to_string().into())
        .await
        .unwrap();
    for n in 0..20 {
        let bare = json!({"type": "tick", "id": format!("syn-tick-{n}"), "data": {"n": n}});
        producer
            .publish("topic.clock.ticks", bare.to_string().into())
            .await
            .unwrap();
    }
    // No id: every gateway derives the same one from the bytes.
    producer
        .publish("topic.chat", r#"{"text":"anonymous"}"#.into())
        .await
        .unwrap();
    producer.flush().await.unwrap();

    let got = sse.take(22).await;
    let mapped = got[0].json();
    assert_eq!(got[0].event.as_deref(), Some("legacy.chat"));
    assert_eq!(mapped["type"], "legacy.chat");
    assert_eq!(mapped["id"], "syn-1");
    assert_eq!(mapped["source"], "chat-service");
    assert_eq!(mapped["time"], "2026-01-02T03:04:05.678Z");
    assert_eq!(
        mapped["data"], first,
        "the producer's whole message is `data`"
    );
    assert_eq!(mapped["seq"].as_str(), got[0].id.as_deref());
    let ticks: Vec<Value> = got[1..21].iter().map(|e| e.json()).collect();
    assert!(ticks.iter().all(|t| t["type"] == "legacy.clock.ticks"));
    let order: Vec<u64> = ticks
        .iter()
        .map(|t| t["data"]["data"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(
        order,
        (0..20).collect::<Vec<_>>(),
        "the producer's order is kept"
    );
    let anonymous = got[21].json();
    assert_eq!(anonymous["data"], json!({"text": "anonymous"}));
    assert_eq!(anonymous["source"], "nats:topic.chat");
    sse.expect_silence(Duration::from_millis(500)).await;

    // They are ordinary events now: any gateway, even one without the
    // mapping, replays them.
    let (_, text) = plain.get("/v1/events?topic=legacy.%3E&limit=100").await;
    let history: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(history["events"].as_array().unwrap().len(), 22, "{history}");
    drop((g2, plain));
}
