//! What a backend that publishes on the stream directly can rely on (real
//! nats-server): the exact epoch of its positions, read from the stream, and
//! a report for every message the gateways refuse, never a silent drop.

mod common;
#[path = "common/nats.rs"]
mod nats_helper;

use async_nats::jetstream;
use common::{SseClient, start};
use futures_util::StreamExt;
use nats_helper::{NatsServer, gateway_config};
use serde_json::{Value, json};

#[tokio::test]
async fn the_epoch_is_in_the_stream_description_exactly() {
    let nats = NatsServer::start().await;
    let gw = start(gateway_config(&nats.url(), "EPOCH")).await;
    let receipt = gw.publish(json!({"type": "e", "id": "e-1"})).await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let mut stream = js.get_stream("EPOCH").await.unwrap();
    let info = stream.info().await.unwrap();
    let description = info.config.description.clone().expect("a description");
    let epoch = description.rsplit(' ').next().unwrap();
    // A backend builds positions from the epoch and the JetStream sequence.
    let ack = js
        .publish(
            "epoch.e",
            json!({"type": "e", "id": "e-2"}).to_string().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let built = format!("{epoch}-{}", ack.sequence);
    assert_eq!(receipt["seq"], format!("{epoch}-{}", ack.sequence - 1));
    let (_, text) = gw.get("/v1/events?topic=e").await;
    let history: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(history["events"][1]["seq"], built.as_str());
    // A second gateway on the same stream keeps the description as it is.
    let _again = start(gateway_config(&nats.url(), "EPOCH")).await;
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.config.description.as_deref(),
        Some(description.as_str())
    );
}

#[tokio::test]
async fn a_refused_stream_message_is_reported_not_dropped_in_silence() {
    let nats = NatsServer::start().await;
    let gw = start(gateway_config(&nats.url(), "REJ")).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut reports = client.subscribe("rej-rejected").await.unwrap();
    client.flush().await.unwrap();
    let js = jetstream::new(client.clone());
    let mut sse = SseClient::connect(&gw, "topic=order.%3E", None).await;
    sse.welcome().await;

    // The type is not the subject's: refused, and the publisher is told.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "o-1");
    let ack = js
        .publish_with_headers(
            "rej.order.placed",
            headers,
            json!({"type": "order.created", "id": "o-1"})
                .to_string()
                .into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let report = next_report(&mut reports).await;
    assert_eq!(report["subject"], "rej.order.placed");
    assert_eq!(report["stream"], "REJ");
    assert_eq!(report["stream_seq"], ack.sequence);
    assert_eq!(report["msg_id"], "o-1");
    assert_eq!(report["error"]["code"], "invalid_event");
    let message = report["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("order.created") && message.contains("rej.order.created"),
        "{message}"
    );

    // A reserved attribute name used wrongly is refused the same way.
    js.publish(
        "rej.order.placed",
        json!({"type": "order.placed", "data_base64": 7})
            .to_string()
            .into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let report = next_report(&mut reports).await;
    assert_eq!(report["error"]["code"], "invalid_event");
    assert_eq!(report["msg_id"], Value::Null);

    // The feed goes on: the next valid event reaches browsers.
    js.publish(
        "rej.order.placed",
        json!({"type": "order.placed", "id": "o-2"})
            .to_string()
            .into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    assert_eq!(sse.take(1).await[0].json()["id"], "o-2");
}

#[tokio::test]
async fn a_refused_interop_message_is_reported() {
    let nats = NatsServer::start().await;
    let mut config = gateway_config(&nats.url(), "REJI");
    config.engine.nats_interop = vec!["legacy.*=legacy".parse().unwrap()];
    let _gw = start(config).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut reports = client.subscribe("reji-rejected").await.unwrap();
    client.flush().await.unwrap();
    client
        .publish("legacy.chat", "not json".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let report = next_report(&mut reports).await;
    assert_eq!(report["subject"], "legacy.chat");
    assert_eq!(report["stream_seq"], Value::Null);
    assert_eq!(report["error"]["code"], "invalid_json");
}

/// The next rejection report a gateway published, as JSON.
async fn next_report(reports: &mut async_nats::Subscriber) -> Value {
    let msg = tokio::time::timeout(common::WAIT, reports.next())
        .await
        .expect("a report")
        .unwrap();
    serde_json::from_slice(&msg.payload).unwrap()
}
