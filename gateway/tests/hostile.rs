//! Hostile input gets nowhere: each gets its documented error, nothing
//! dangerous reaches an SSE line, and the gateway stays healthy.

mod common;

use common::*;
use eventwire_protocol::ErrorCode;
use eventwire_protocol::frame::ServerFrame;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

async fn healthy(gw: &TestGateway) {
    assert_eq!(gw.get("/readyz").await.0, 200, "the gateway is still ready");
    gw.publish(event("still.ok", 1)).await;
}

#[tokio::test]
async fn nothing_that_could_break_a_line_reaches_an_sse_stream() {
    let gw = start(config()).await;
    let mut all = SseClient::connect(&gw, "topic=%3E", None).await;
    all.welcome().await;
    let (mut ws, _) = WsClient::connect(&gw).await;
    let evil = [
        "a\nevent: x",
        "a\rb",
        "a:b",
        "a\u{0}b",
        "a\u{7}b",
        "a b",
        "id: 1",
        "a.\u{2028}",
        "\u{feff}a",
    ];
    for ty in evil {
        let (status, body) = gw.post(json!({"type": ty}).to_string()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_topic")),
            "{ty:?}"
        );
        match ws.emit("e", json!({"type": ty})).await {
            ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::InvalidTopic, "{ty:?}"),
            other => panic!("{ty:?}: {other:?}"),
        }
        ws.send(json!({"op": "subscribe", "topics": [ty]})).await;
        assert!(
            matches!(
                ws.recv().await,
                ServerFrame::Error {
                    code: ErrorCode::InvalidPattern,
                    ..
                }
            ),
            "{ty:?}"
        );
    }
    // Ids and subjects with line breaks are refused too: they travel in the data line.
    let (status, _) = gw
        .post(json!({"type": "a", "id": "x\ny"}).to_string())
        .await;
    assert_eq!(status, 400);
    gw.publish(
        json!({"type": "ok.done", "data": {"text": "line\nbreak inside a string is escaped"}}),
    )
    .await;
    let ev = all.expect().await;
    assert_eq!(
        ev.event.as_deref(),
        Some("ok.done"),
        "the first event the stream carries is the valid one"
    );
    assert!(ev.data.lines().count() == 1);
    healthy(&gw).await;
}

#[tokio::test]
async fn deep_json_huge_subscriptions_and_bad_utf8_on_websocket() {
    let gw = start(config()).await;
    let (mut ws, _) = WsClient::connect(&gw).await;
    let deep = format!(
        r#"{{"op":"emit","ref":"d","event":{{"type":"a","data":{}{}}}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    ws.send_raw(Message::text(deep)).await;
    match ws.recv().await {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::InvalidJson),
        other => panic!("{other:?}"),
    }
    let topics: Vec<String> = (0..10_000).map(|i| format!("t{i}")).collect();
    ws.send(json!({"op": "subscribe", "topics": topics, "ref": "big"}))
        .await;
    assert!(matches!(
        ws.recv().await,
        ServerFrame::Error {
            code: ErrorCode::TooManySubscriptions,
            ..
        }
    ));
    // The same socket still works.
    assert!(ws.subscribe(&["fine"], None).await);

    // 1,000 topics on an SSE URL.
    let q: Vec<String> = (0..1000).map(|i| format!("topic=t{i}")).collect();
    let r = SseClient::request(&gw, &q.join("&"), None).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "too_many_subscriptions"
    );

    // A text frame that is not UTF-8 closes that socket with 1007, and only it.
    let (mut raw, _) = WsClient::connect(&gw).await;
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Text),
        ..FrameHeader::default()
    };
    raw.ws
        .send(Message::Frame(Frame::from_payload(
            header,
            vec![b'{', 0xff, 0xfe, b'}'].into(),
        )))
        .await
        .unwrap();
    let close = loop {
        match tokio::time::timeout(WAIT, raw.ws.next())
            .await
            .expect("no close")
        {
            Some(Ok(Message::Close(f))) => break f.expect("a close code"),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(close.code, CloseCode::Invalid);
    ws.send(json!({"op": "ping"})).await;
    assert_eq!(ws.recv().await, ServerFrame::Pong { reference: None });
    healthy(&gw).await;
}

#[tokio::test]
async fn a_burst_of_emits_is_rate_limited_and_the_connection_stays_up() {
    let gw = start(config()).await;
    let (mut ws, _) = WsClient::connect(&gw).await;
    let started = std::time::Instant::now();
    for i in 0..10_000 {
        ws.ws.feed(Message::text(json!({"op": "emit", "ref": i.to_string(), "event": {"type": "burst.x", "id": format!("b{i}")}}).to_string())).await.unwrap();
    }
    ws.ws.flush().await.unwrap();
    let (mut acked, mut limited) = (0, 0);
    while acked + limited < 10_000 {
        match ws.recv().await {
            ServerFrame::Ack { .. } => acked += 1,
            ServerFrame::Error {
                code: ErrorCode::RateLimited,
                ..
            } => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    let allowance = 200 + (started.elapsed().as_secs_f64() * 100.0).ceil() as usize;
    assert!(
        acked >= 200 && acked <= allowance,
        "acked {acked}, allowance {allowance}"
    );
    assert_eq!(acked + limited, 10_000);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        matches!(
            ws.emit("after", json!({"type": "burst.x"})).await,
            ServerFrame::Ack { .. }
        ),
        "tokens come back"
    );
    healthy(&gw).await;
}

#[tokio::test]
async fn a_flood_of_connections_from_one_address_is_limited() {
    let mut cfg = config();
    cfg.connect_rate = 5;
    cfg.connect_burst = 20;
    let gw = start(cfg).await;
    let mut ok = Vec::new();
    let mut limited = 0;
    for _ in 0..60 {
        let r = SseClient::request(&gw, "topic=a", None).await;
        match r.status().as_u16() {
            200 => ok.push(r),
            429 => {
                assert_eq!(
                    r.json::<Value>().await.unwrap()["error"]["code"],
                    "rate_limited"
                );
                limited += 1;
            }
            s => panic!("status {s}"),
        }
    }
    assert!((20..=25).contains(&ok.len()), "{} accepted", ok.len());
    assert_eq!(limited, 60 - ok.len());
    healthy(&gw).await;
}
