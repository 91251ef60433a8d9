//! A client that reconnects names its channel instance (`instance` query
//! parameter): the gateway ends the instance's older stream at once
//! (`superseded`) instead of writing to it until a heartbeat or write timeout
//! notices. Real gateway on a loopback listener, real sockets.

mod common;

use common::tokens::{claims, hs, secured, svc_publish};
use common::*;
use eventwire_protocol::frame::ServerFrame;
use futures_util::StreamExt;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const INSTANCE: &str = "tab-7f3a9c21";

/// Reads the old SSE stream to its end and returns the code of its `$close`.
async fn closing_code(sse: &mut SseClient) -> Option<String> {
    let mut code = None;
    while let Some(ev) = tokio::time::timeout(WAIT, sse.next())
        .await
        .expect("the superseded stream did not end")
    {
        if ev.event.as_deref() == Some("$close") {
            code = ev.json()["code"].as_str().map(str::to_owned);
        }
    }
    code
}

#[tokio::test]
async fn a_resumed_sse_stream_ends_the_stale_one_of_its_instance() {
    let gw = start(config()).await;
    let q = format!("topic=order.*&instance={INSTANCE}");
    let mut old = SseClient::connect(&gw, &q, None).await;
    old.welcome().await;
    gw.publish(event("order.created", 1)).await;
    let first = old.take(1).await;
    let position = first[0].id.clone().unwrap();

    // The client reconnects (its old socket still open) and resumes.
    let mut new = SseClient::connect(&gw, &q, Some(&position)).await;
    assert_eq!(new.welcome().await.recovered, Some(true));
    assert_eq!(
        closing_code(&mut old).await.as_deref(),
        Some("superseded"),
        "the stale stream is ended with a reason, not left to time out"
    );
    gw.wait_connections(1, WAIT).await;

    gw.publish(event("order.created", 2)).await;
    assert_eq!(sse_ns(&new.take(1).await), vec![2]);

    // Another instance is left alone.
    let other_q = "topic=order.*&instance=tab-other-0001".to_string();
    let mut other = SseClient::connect(&gw, &other_q, None).await;
    other.welcome().await;
    gw.wait_connections(2, WAIT).await;
    gw.publish(event("order.created", 3)).await;
    assert_eq!(sse_ns(&new.take(1).await), vec![3]);
    assert_eq!(sse_ns(&other.take(1).await), vec![3]);
}

#[tokio::test]
async fn a_websocket_of_the_same_instance_ends_the_stale_one_with_4003() {
    let gw = start(config()).await;
    let url = format!("{}?instance={INSTANCE}", gw.ws_url());
    let (ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let mut old = WsClient { ws };
    assert!(matches!(old.recv().await, ServerFrame::Welcome(_)));
    old.subscribe(&["order.*"], None).await;

    let (ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let mut new = WsClient { ws };
    assert!(matches!(new.recv().await, ServerFrame::Welcome(_)));
    new.subscribe(&["order.*"], None).await;

    let close = loop {
        match tokio::time::timeout(WAIT, old.ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame.expect("a close frame with a reason"),
            Some(Ok(_)) => continue,
            other => panic!("expected a Close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 4003);
    assert_eq!(close.reason.as_str(), "superseded");

    gw.publish(event("order.created", 1)).await;
    assert_eq!(new.expect_event().await["data"]["n"], 1);
    gw.wait_connections(1, WAIT).await;
}

#[tokio::test]
async fn the_same_instance_id_under_another_identity_supersedes_nothing() {
    let gw = secured().await;
    let alice = hs(&claims("alice", 300));
    let mallory = hs(&claims("mallory", 300));
    let q = |t: &str| format!("topic=public.%3E&instance={INSTANCE}&access_token={t}");
    let mut a = SseClient::connect(&gw, &q(&alice), None).await;
    a.welcome().await;
    let mut m = SseClient::connect(&gw, &q(&mallory), None).await;
    m.welcome().await;
    gw.wait_connections(2, WAIT).await;
    svc_publish(&gw, "public.news", 1).await;
    assert_eq!(sse_ns(&a.take(1).await), vec![1], "alice's stream lives on");
    assert_eq!(sse_ns(&m.take(1).await), vec![1]);
}

#[tokio::test]
async fn a_malformed_instance_is_refused_and_the_gateway_goes_on() {
    let gw = start(config()).await;
    for bad in ["short", "has%20space", &"x".repeat(65)] {
        let r = SseClient::request(&gw, &format!("topic=a&instance={bad}"), None).await;
        assert_eq!(r.status(), 400, "instance {bad:?}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_request");
    }
    let mut ok = SseClient::connect(&gw, "topic=a&instance=abcdefgh", None).await;
    ok.welcome().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    gw.publish(event("a", 1)).await;
    assert_eq!(sse_ns(&ok.take(1).await), vec![1]);
}
