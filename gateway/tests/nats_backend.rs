//! Backend services talk to JetStream directly: they consume what browsers
//! emit with their own durable consumers, and publish envelopes that reach
//! browsers without going through a gateway.

mod common;
#[path = "common/nats.rs"]
mod nats_helper;

use async_nats::jetstream::{self, consumer::AckPolicy, consumer::pull};
use common::{SseClient, WsClient, start};
use eventwire_protocol::frame::ServerFrame;
use futures_util::StreamExt;
use nats_helper::{NatsServer, gateway_config};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn a_durable_backend_consumer_reads_what_browsers_emit() {
    let nats = NatsServer::start().await;
    let gw = start(gateway_config(&nats.url(), "BACK")).await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let worker = js
        .get_stream("BACK")
        .await
        .unwrap()
        .create_consumer(pull::Config {
            durable_name: Some("worker".into()),
            filter_subject: "back.ui.>".into(),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .unwrap();

    let (mut browser, _) = WsClient::connect(&gw).await;
    let mut acked = Vec::new();
    for n in 0..3 {
        match browser
            .emit(
                &format!("c{n}"),
                json!({"type": "ui.clicked", "data": {"n": n}}),
            )
            .await
        {
            ServerFrame::Ack {
                id, seq, duplicate, ..
            } => {
                assert!(!duplicate);
                acked.push((id, seq));
            }
            other => panic!("expected an ack, got {other:?}"),
        }
    }
    browser.emit("x", json!({"type": "notui.other"})).await;

    let mut batch = worker.fetch().max_messages(10).messages().await.unwrap();
    let mut got = Vec::new();
    while let Some(msg) = batch.next().await {
        got.push(msg.unwrap());
    }
    assert_eq!(got.len(), 3, "only ui.* and each once");
    for (msg, (id, seq)) in got.iter().zip(&acked) {
        let envelope: Value = serde_json::from_slice(&msg.payload).unwrap();
        assert_eq!(envelope["type"], "ui.clicked");
        assert_eq!(envelope["id"], id.as_str());
        assert!(
            envelope.get("seq").is_none(),
            "the stored envelope has no seq: {envelope}"
        );
        assert_eq!(
            msg.headers
                .as_ref()
                .unwrap()
                .get("Nats-Msg-Id")
                .unwrap()
                .as_str(),
            format!("12:eventwire/ws:{id}"),
            "the dedupe key: source and id"
        );
        let info = msg.info().unwrap();
        assert!(
            seq.ends_with(&format!("-{}", info.stream_sequence)),
            "seq {seq} is the stream sequence"
        );
    }
    // At least once: what is not acknowledged comes back.
    got[0].ack().await.unwrap();
    got[1].ack().await.unwrap();
    let mut again = worker
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .unwrap();
    let redelivered = tokio::time::timeout(common::WAIT, again.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(redelivered.payload, got[2].payload);
    assert_eq!(redelivered.info().unwrap().delivered, 2);
}

#[tokio::test]
async fn a_backend_publish_reaches_browsers() {
    let nats = NatsServer::start().await;
    let gw = start(gateway_config(&nats.url(), "PUBS")).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client.clone());
    let (mut ws, _) = WsClient::connect(&gw).await;
    assert!(ws.subscribe(&["notification.>"], None).await);
    let mut sse = SseClient::connect(&gw, "topic=notification.%3E", None).await;
    sse.welcome().await;

    // A JetStream publish of a full envelope, deduped on Nats-Msg-Id.
    let envelope = json!({"id": "n-1", "type": "notification.sent", "source": "billing", "data": {"to": "ann"}});
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "n-1");
    let ack = js
        .publish_with_headers(
            "pubs.notification.sent",
            headers.clone(),
            envelope.to_string().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let again = js
        .publish_with_headers(
            "pubs.notification.sent",
            headers,
            envelope.to_string().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(again.duplicate && again.sequence == ack.sequence);
    let ev = ws.expect_event().await;
    assert_eq!(ev["id"], "n-1");
    assert_eq!(ev["source"], "billing");
    assert_eq!(ev["data"], json!({"to": "ann"}));
    assert!(
        ev["seq"]
            .as_str()
            .unwrap()
            .ends_with(&format!("-{}", ack.sequence))
    );
    assert!(ev["time"].is_string(), "filled in: {ev}");

    // What a gateway would refuse is skipped, and does not stall the feed.
    client
        .publish(
            "pubs.notification.sent",
            r#"{"type":"notification.other"}"#.into(),
        )
        .await
        .unwrap();
    client
        .publish("pubs.notification.sent", "not json".into())
        .await
        .unwrap();

    // A plain core-NATS publish works too (the stream captures the subject);
    // the gateway fills in what is missing, the same on every read.
    client
        .publish(
            "pubs.notification.sent",
            r#"{"type":"notification.sent","data":2}"#.into(),
        )
        .await
        .unwrap();
    client.flush().await.unwrap();
    let ev = ws.expect_event().await;
    assert_eq!(ev["data"], 2);
    assert_eq!(ev["id"], ev["seq"], "no id: the position stands in");
    assert_eq!(ev["source"], "eventwire/nats");
    let over_sse = sse.take(2).await;
    assert_eq!(over_sse[1].json(), ev, "both transports, same event");
    let (_, text) = gw.get("/v1/events?topic=notification.%3E").await;
    let history: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        history["events"],
        json!([over_sse[0].json(), ev]),
        "history agrees"
    );
}
