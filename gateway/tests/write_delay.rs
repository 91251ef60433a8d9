//! `--write-delay`: live events wait for the gateway-wide tick, so events
//! published one by one reach a subscriber in a few writes instead of one
//! write each; nothing is lost, reordered or held back for good.

mod common;

use common::*;
use std::time::Duration;

fn delayed(ms: u64) -> eventwire_gateway::config::Config {
    let mut c = config();
    c.write_delay = eventwire_gateway::flush::WriteDelay::Fixed(Duration::from_millis(ms));
    c
}

/// Publishes `n` events one POST at a time on `ty`.
async fn publish_one_by_one(gw: &TestGateway, ty: &str, n: u64) {
    for i in 0..n {
        gw.publish(event(ty, i)).await;
    }
}

#[tokio::test]
async fn sse_events_published_one_by_one_leave_in_a_few_writes() {
    let gw = start(delayed(400)).await;
    let mut sse = SseClient::connect(&gw, "topic=d.sse", None).await;
    sse.welcome().await;
    let before = sse.chunks;
    publish_one_by_one(&gw, "d.sse", 20).await;
    let got = sse.take(20).await;
    assert_eq!(sse_ns(&got), (0..20).collect::<Vec<_>>());
    // 20 POSTs on loopback take far less than the 400 ms tick, so they span
    // at most two or three ticks. Without the delay this is 20 writes.
    let writes = sse.chunks - before;
    assert!(writes <= 4, "20 events took {writes} writes");
}

#[tokio::test]
async fn websocket_events_and_acks_flow_with_a_delay() {
    let gw = start(delayed(100)).await;
    let (mut ws, _) = WsClient::connect(&gw).await;
    assert!(ws.subscribe(&["d.ws"], None).await);
    let mut sse = SseClient::connect(&gw, "topic=d.ws", None).await;
    sse.welcome().await;
    // Emitted on a second socket, so each reply read is the emit's ack.
    let (mut emitter, _) = WsClient::connect(&gw).await;
    for i in 0..5 {
        let ack = emitter.emit(&format!("e{i}"), event("d.ws", i)).await;
        assert!(
            matches!(ack, eventwire_protocol::frame::ServerFrame::Ack { .. }),
            "{ack:?}"
        );
    }
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(ws.expect_event().await);
    }
    assert_eq!(ns(&got), (0..5).collect::<Vec<_>>());
    assert_eq!(sse_ns(&sse.take(5).await), (0..5).collect::<Vec<_>>());
}
