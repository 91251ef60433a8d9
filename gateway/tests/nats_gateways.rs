//! Two gateways on one NATS: what a browser sees when the load balancer
//! sends it to either of them.

mod common;
#[path = "common/nats.rs"]
mod nats_helper;

use common::{SseClient, WsClient, event, sse_ns, start};
use nats_helper::{NatsServer, gateway_config};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn events_posted_to_one_gateway_reach_subscribers_of_the_other() {
    let nats = NatsServer::start().await;
    let g1 = start(gateway_config(&nats.url(), "TWO")).await;
    let g2 = start(gateway_config(&nats.url(), "TWO")).await;
    let mut on_g1 = SseClient::connect(&g1, "topic=room.%3E", None).await;
    let welcome = on_g1.welcome().await;
    assert_eq!(welcome.engine, "nats");
    let (mut ws_on_g2, _) = WsClient::connect(&g2).await;
    assert!(ws_on_g2.subscribe(&["room.>"], None).await);

    let receipt = g2.publish(event("room.a", 1)).await;
    let got = on_g1.take(1).await;
    assert_eq!(
        got[0].id.as_deref(),
        receipt["seq"].as_str(),
        "positions are the stream's"
    );
    assert_eq!(sse_ns(&got), [1]);
    let same = ws_on_g2.expect_event().await;
    assert_eq!(same["seq"], receipt["seq"]);
    assert_eq!(same, got[0].json(), "every gateway delivers the same event");
    let mut sse_on_g2 =
        SseClient::connect(&g2, "topic=room.%3E", Some(&got[0].id.clone().unwrap())).await;
    sse_on_g2.welcome().await;

    let receipt = g1.publish(event("room.b", 2)).await;
    assert_eq!(ws_on_g2.expect_event().await["seq"], receipt["seq"]);
    let a = on_g1.take(1).await.remove(0);
    let b = sse_on_g2.take(1).await.remove(0);
    assert_eq!(a.data, b.data, "byte for byte");
    assert_eq!(a.id.as_deref(), receipt["seq"].as_str());
}

#[tokio::test]
async fn a_client_resumes_on_the_other_gateway_without_loss() {
    let nats = NatsServer::start().await;
    let g1 = start(gateway_config(&nats.url(), "RESUME")).await;
    let g2 = start(gateway_config(&nats.url(), "RESUME")).await;
    let mut sse = SseClient::connect(&g1, "topic=chat.%3E", None).await;
    sse.welcome().await;
    g1.publish(event("chat.msg", 0)).await;
    let last = sse.take(1).await.remove(0).id.unwrap();
    drop(sse);
    g1.wait_connections(0, common::WAIT).await;

    // 500 events while the client is away, through both gateways, plus
    // some it did not subscribe to.
    let mut seqs = Vec::new();
    for batch in 0..5u64 {
        let gw = if batch % 2 == 0 { &g1 } else { &g2 };
        let events: Vec<Value> = (0..100)
            .map(|i| event("chat.msg", 1 + batch * 100 + i))
            .collect();
        let (status, receipts) = gw.post(Value::Array(events).to_string()).await;
        assert_eq!(status, 200, "{receipts}");
        let receipts = receipts.as_array().unwrap();
        seqs.extend(
            receipts
                .iter()
                .map(|r| r["seq"].as_str().unwrap().to_owned()),
        );
        gw.publish(json!({"type": "other.thing"})).await;
    }

    let mut resumed = SseClient::connect(&g2, "topic=chat.%3E", Some(&last)).await;
    let welcome = resumed.welcome().await;
    assert_eq!(
        welcome.recovered,
        Some(true),
        "a position from the shared stream is recovered anywhere"
    );
    let got = resumed.take(500).await;
    assert_eq!(
        sse_ns(&got),
        (1..=500).collect::<Vec<_>>(),
        "exactly those 500, in order"
    );
    let got_seqs: Vec<String> = got.iter().map(|e| e.id.clone().unwrap()).collect();
    assert_eq!(got_seqs, seqs);
    resumed.expect_silence(Duration::from_millis(300)).await;

    // And live delivery carries on after the replay, from either gateway.
    g1.publish(event("chat.msg", 501)).await;
    assert_eq!(sse_ns(&resumed.take(1).await), [501]);
}
