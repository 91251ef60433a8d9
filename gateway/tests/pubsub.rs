//! Publish and subscribe over real sockets: SSE, WebSocket and HTTP publish,
//! wildcard routing, and the cross-transport paths.

mod common;

use common::*;
use eventwire_protocol::frame::ServerFrame;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn sse_subscriber_receives_a_posted_event() {
    let gw = start(config()).await;
    let mut sse = SseClient::connect(&gw, "topic=order.*", None).await;
    let welcome = sse.welcome().await;
    assert_eq!(welcome.recovered, Some(true));
    assert_eq!(welcome.engine, "memory");
    let receipt = gw
        .publish(json!({"type": "order.placed", "data": {"total": 42}, "correlationid": "c-1"}))
        .await;
    let ev = sse.expect().await;
    assert_eq!(ev.event.as_deref(), Some("order.placed"));
    assert_eq!(ev.id.as_deref(), receipt["seq"].as_str());
    let env = ev.json();
    assert_eq!(env["data"]["total"], 42);
    assert_eq!(env["id"], receipt["id"]);
    assert_eq!(env["seq"], receipt["seq"]);
    assert_eq!(env["correlationid"], "c-1");
    assert_eq!(env["specversion"], "1.0");
    assert!(env["time"].as_str().is_some_and(|t| t.ends_with('Z')));
}

#[tokio::test]
async fn wildcards_route_as_specified() {
    let gw = start(config()).await;
    let mut star = SseClient::connect(&gw, "topic=order.*", None).await;
    let mut rest = SseClient::connect(&gw, "topic=order.%3E", None).await;
    let mut exact = SseClient::connect(&gw, "topic=order.placed.eu", None).await;
    for c in [&mut star, &mut rest, &mut exact] {
        c.welcome().await;
    }
    for (i, ty) in [
        "order",
        "order.placed",
        "order.placed.eu",
        "orders.placed",
        "order.shipped",
    ]
    .iter()
    .enumerate()
    {
        gw.publish(json!({"type": ty, "data": {"n": i}})).await;
    }
    let got = |evs: Vec<SseEvent>| {
        evs.iter()
            .map(|e| e.event.clone().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(got(star.take(2).await), ["order.placed", "order.shipped"]);
    assert_eq!(
        got(rest.take(3).await),
        ["order.placed", "order.placed.eu", "order.shipped"]
    );
    assert_eq!(got(exact.take(1).await), ["order.placed.eu"]);
    for c in [&mut star, &mut rest, &mut exact] {
        c.expect_silence(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn every_subscriber_gets_it_once_and_others_get_nothing() {
    let gw = start(config()).await;
    let mut subs = Vec::new();
    for _ in 0..5 {
        let mut c = SseClient::connect(&gw, "topic=a.*&topic=a.%3E&topic=a.b", None).await;
        c.welcome().await;
        subs.push(c);
    }
    let mut other = SseClient::connect(&gw, "topic=z", None).await;
    other.welcome().await;
    gw.publish(event("a.b", 1)).await;
    gw.publish(event("a.c", 2)).await;
    for c in subs.iter_mut() {
        // Three matching patterns, still one delivery each.
        assert_eq!(sse_ns(&c.take(2).await), [1, 2]);
        c.expect_silence(Duration::from_millis(100)).await;
    }
    other.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn websocket_subscribe_emit_and_ack() {
    let gw = start(config()).await;
    let (mut ws, welcome) = WsClient::connect(&gw).await;
    assert_eq!(welcome.recovered, None);
    assert!(ws.subscribe(&["ui.>"], None).await);
    match ws
        .emit(
            "r1",
            json!({"type": "ui.clicked", "id": "click-1", "data": {"target": "buy"}}),
        )
        .await
    {
        ServerFrame::Ack {
            reference,
            id,
            seq,
            duplicate,
        } => {
            assert_eq!(reference.as_deref(), Some("r1"));
            assert_eq!(id, "click-1");
            assert!(!seq.is_empty());
            assert!(!duplicate);
        }
        other => panic!("expected ack, got {other:?}"),
    }
    let ev = ws.expect_event().await;
    assert_eq!(ev["id"], "click-1");
    assert_eq!(ev["data"]["target"], "buy");
    assert_eq!(ev["source"], "eventwire/ws");

    ws.send(json!({"op": "ping", "ref": "p"})).await;
    assert_eq!(
        ws.recv().await,
        ServerFrame::Pong {
            reference: Some("p".into())
        }
    );

    ws.send(json!({"op": "unsubscribe", "topics": ["ui.>"], "ref": "u"}))
        .await;
    assert!(matches!(ws.recv().await, ServerFrame::Unsubscribed { .. }));
    gw.publish(event("ui.clicked", 2)).await;
    ws.send(json!({"op": "ping"})).await;
    // The pong proves the event published before it was not delivered.
    assert_eq!(ws.recv().await, ServerFrame::Pong { reference: None });
}

#[tokio::test]
async fn events_cross_transports() {
    let gw = start(config()).await;
    let mut sse = SseClient::connect(&gw, "topic=x.%3E", None).await;
    sse.welcome().await;
    let (mut ws, _) = WsClient::connect(&gw).await;
    assert!(ws.subscribe(&["x.>"], None).await);

    // Emitted on WebSocket, received on SSE (and by the emitter).
    assert!(matches!(
        ws.emit("1", event("x.from_ws", 1)).await,
        ServerFrame::Ack { .. }
    ));
    assert_eq!(ws.expect_event().await["type"], "x.from_ws");
    assert_eq!(sse.expect().await.event.as_deref(), Some("x.from_ws"));

    // POSTed, received on WebSocket and SSE.
    gw.publish(event("x.from_http", 2)).await;
    assert_eq!(ws.expect_event().await["type"], "x.from_http");
    assert_eq!(sse.expect().await.event.as_deref(), Some("x.from_http"));
}

#[tokio::test]
async fn unnamed_sse_events_carry_no_event_line() {
    let gw = start(config()).await;
    let mut sse = SseClient::connect(&gw, "topic=a&named=false", None).await;
    sse.welcome().await;
    gw.publish(event("a", 7)).await;
    let ev = sse.expect().await;
    assert_eq!(ev.event, None);
    assert_eq!(ev.json()["type"], "a");
}

#[tokio::test]
async fn batch_publish_and_history() {
    let gw = start(config()).await;
    let batch = json!([event("h.a", 1), event("h.b", 2), event("other", 3)]);
    let (status, receipts) = gw.post(batch.to_string()).await;
    assert_eq!(status, 200, "{receipts}");
    assert_eq!(receipts.as_array().unwrap().len(), 3);
    let (status, body) = gw.get("/v1/events?topic=h.*").await;
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ns(body["events"].as_array().unwrap()), [1, 2]);
    assert_eq!(body["recovered"], true);
    let since = receipts[0]["seq"].as_str().unwrap();
    let (_, body) = gw
        .get(&format!("/v1/events?topic=%3E&since={since}&limit=1"))
        .await;
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ns(body["events"].as_array().unwrap()), [2]);
    assert_eq!(body["more"], true);
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let gw = start(config()).await;
    assert_eq!(gw.get("/healthz").await.0, 200);
    let (status, body) = gw.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let mut sse = SseClient::connect(&gw, "topic=m", None).await;
    sse.welcome().await;
    gw.publish(event("m", 1)).await;
    sse.expect().await;
    let (status, text) = gw.get("/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "eventwire_connections{transport=\"sse\"}",
        "eventwire_events_published_total",
        "eventwire_events_delivered_total{transport=\"sse\"}",
        "eventwire_replay_total{result=\"hit\"}",
        "eventwire_publish_to_write_seconds_bucket",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
}

#[tokio::test]
async fn heartbeats_as_comments_or_as_events() {
    let mut cfg = config();
    cfg.heartbeat = Duration::from_millis(100);
    let gw = start(cfg).await;
    let mut sse = SseClient::connect(&gw, "topic=a", None).await;
    sse.welcome().await;
    sse.expect_silence(Duration::from_millis(350)).await;
    assert!(sse.heartbeats >= 2, "comments seen: {}", sse.heartbeats);
    let mut sse = SseClient::connect(&gw, "topic=a&heartbeat=event", None).await;
    sse.welcome().await;
    let hb = sse.expect().await;
    assert_eq!(hb.event.as_deref(), Some("$heartbeat"));
    assert!(hb.id.is_none(), "a heartbeat must not move Last-Event-ID");
    let r = SseClient::request(&gw, "topic=a&heartbeat=loud", None).await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn websocket_can_be_turned_off() {
    let mut cfg = config();
    cfg.websocket = false;
    let gw = start(cfg).await;
    match tokio_tungstenite::connect_async(gw.ws_url())
        .await
        .unwrap_err()
    {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 404),
        other => panic!("{other:?}"),
    }
    let mut sse = SseClient::connect(&gw, "topic=a", None).await;
    sse.welcome().await;
}

#[tokio::test]
async fn pretty_printed_data_arrives_on_one_sse_line() {
    let gw = start(config()).await;
    let mut sse = SseClient::connect(&gw, "topic=p", None).await;
    sse.welcome().await;
    let body = "{\"type\":\"p\",\"data\":{\r\n  \"text\": \"two\\nlines\",\n  \"list\": [\n    1,\n    2\n  ]\n}}";
    let (status, receipt) = gw.post(body).await;
    assert_eq!(status, 200, "{receipt}");
    let env = sse.expect().await.json();
    assert_eq!(env["data"], json!({"text": "two\nlines", "list": [1, 2]}));
    let nulled = gw.publish(json!({"type": "p", "data": null})).await;
    let env = sse.expect().await.json();
    assert_eq!(env["id"], nulled["id"]);
    assert!(
        env.as_object().unwrap().contains_key("data"),
        "explicit null data is kept: {env}"
    );
}

#[tokio::test]
async fn a_client_close_is_answered() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let gw = start(config()).await;
    let (mut ws, _) = WsClient::connect(&gw).await;
    ws.ws.send(Message::Close(None)).await.unwrap();
    let reply = tokio::time::timeout(WAIT, ws.ws.next())
        .await
        .expect("no reply to close");
    assert!(matches!(reply, Some(Ok(Message::Close(_)))), "{reply:?}");
    gw.wait_connections(0, WAIT).await;
}
