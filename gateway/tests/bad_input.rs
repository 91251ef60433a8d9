//! Bad input gets its documented error code, and the same connection or
//! server then serves the next good request.

mod common;

use common::*;
use eventwire_protocol::ErrorCode;
use eventwire_protocol::frame::ServerFrame;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

#[tokio::test]
async fn http_publish_errors_and_the_server_keeps_serving() {
    let mut cfg = config();
    cfg.max_batch = 3;
    let gw = start(cfg).await;
    let mut sse = SseClient::connect(&gw, "topic=%3E", None).await;
    sse.welcome().await;

    let big = json!({"type": "a", "data": "x".repeat(70 * 1024)}).to_string();
    let deep = format!(
        r#"{{"type":"a","data":{}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (big.into_bytes(), 413, "event_too_large"),
        (b"{not json".to_vec(), 400, "invalid_json"),
        (b"42".to_vec(), 400, "invalid_json"),
        (vec![b'{', 0xff, 0xfe, b'}'], 400, "invalid_json"),
        (deep.into_bytes(), 400, "invalid_json"),
        (br#"{"data":1}"#.to_vec(), 400, "invalid_event"),
        (
            br#"{"type":"a","Colour":"red"}"#.to_vec(),
            400,
            "invalid_event",
        ),
        (
            br#"{"type":"a","time":"yesterday"}"#.to_vec(),
            400,
            "invalid_event",
        ),
        (br#"{"type":"a\nevent: x"}"#.to_vec(), 400, "invalid_topic"),
        (br#"{"type":"order.*"}"#.to_vec(), 400, "invalid_topic"),
        (b"[]".to_vec(), 400, "bad_request"),
        (
            json!([event("a", 1), event("a", 2), event("a", 3), event("a", 4)])
                .to_string()
                .into_bytes(),
            413,
            "batch_too_large",
        ),
        // One bad event rejects the whole batch before anything is published.
        (
            json!([event("a", 1), {"type": "bad topic"}])
                .to_string()
                .into_bytes(),
            400,
            "invalid_topic",
        ),
    ];
    for (body, status, expected) in cases {
        let (got_status, got) = gw.post(body).await;
        assert_eq!((got_status, code(&got)), (status, expected), "{got}");
        assert!(!got["error"]["message"].as_str().unwrap().is_empty());
    }
    // A body beyond the whole-batch limit is refused without being read in full.
    let (status, got) = gw.post(vec![b' '; 4 * 64 * 1024 + 2048]).await;
    assert_eq!((status, code(&got)), (413, "batch_too_large"));

    // Nothing above reached subscribers; the next good event does.
    gw.publish(event("ok", 1)).await;
    let ev = sse.expect().await;
    assert_eq!(ev.event.as_deref(), Some("ok"));
}

#[tokio::test]
async fn stream_request_errors() {
    let mut cfg = config();
    cfg.max_subscriptions = 2;
    let gw = start(cfg).await;
    let cases = [
        // No topic is a stream of its own (PROTOCOL §5.1), not an error.
        ("heartbeat=", None, "bad_request"),
        ("lastEventId=garbage", None, "invalid_position"),
        ("topic=a%20b", None, "invalid_pattern"),
        ("topic=a.%3E.b", None, "invalid_pattern"),
        ("topic=a&topic=b&topic=c", None, "too_many_subscriptions"),
        ("topic=a&lastEventId=garbage", None, "invalid_position"),
        ("topic=a", Some("x".repeat(10_000)), "invalid_position"),
    ];
    for (query, last, expected) in cases {
        let r = SseClient::request(&gw, query, last.as_deref()).await;
        assert_eq!(r.status(), 400, "{query}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(code(&body), expected, "{query}: {body}");
    }
    for (query, expected) in [
        ("/v1/events", "bad_request"),
        ("/v1/events?topic=a&limit=0", "bad_request"),
        ("/v1/events?topic=a&since=nope", "invalid_position"),
    ] {
        let (status, body) = gw.get(query).await;
        assert_eq!(status, 400);
        assert_eq!(code(&serde_json::from_str(&body).unwrap()), expected);
    }
    let (status, body) = gw.get("/nowhere").await;
    assert_eq!(
        (status, code(&serde_json::from_str(&body).unwrap())),
        (404, "not_found")
    );
    let r = gw.http.delete(gw.url("/v1/events")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(code(&r.json().await.unwrap()), "method_not_allowed");
    let (status, body) = gw.get("/v1/ws").await;
    assert_eq!(
        (status, code(&serde_json::from_str(&body).unwrap())),
        (400, "bad_request"),
        "plain GET on the WebSocket route"
    );
    let mut ok = SseClient::connect(&gw, "topic=a&topic=b", None).await;
    ok.welcome().await;
}

#[tokio::test]
async fn websocket_errors_keep_the_socket_open() {
    let mut cfg = config();
    cfg.max_subscriptions = 3;
    let gw = start(cfg).await;
    let (mut ws, _) = WsClient::connect(&gw).await;
    let big = json!({"type": "a", "data": "x".repeat(70 * 1024)});
    let cases: Vec<(Value, ErrorCode)> = vec![
        (
            json!({"op": "emit", "ref": "1", "event": big}),
            ErrorCode::EventTooLarge,
        ),
        (
            json!({"op": "emit", "ref": "2", "event": {"data": 1}}),
            ErrorCode::InvalidEvent,
        ),
        (
            json!({"op": "emit", "ref": "3", "event": {"type": "a b"}}),
            ErrorCode::InvalidTopic,
        ),
        (json!({"op": "emit", "ref": "4"}), ErrorCode::BadRequest),
        (
            json!({"op": "subscribe", "ref": "5", "topics": ["a\r\nb"]}),
            ErrorCode::InvalidPattern,
        ),
        (
            json!({"op": "subscribe", "ref": "6", "topics": ["a", "b", "c", "d"]}),
            ErrorCode::TooManySubscriptions,
        ),
        (
            json!({"op": "subscribe", "ref": "7", "topics": ["a"], "since": "bogus"}),
            ErrorCode::InvalidPosition,
        ),
        (json!({"op": "fly", "ref": "8"}), ErrorCode::UnknownOp),
        (json!({"ref": "9"}), ErrorCode::BadRequest),
    ];
    for (frame, expected) in cases {
        let r = frame["ref"].clone();
        ws.send(frame).await;
        match ws.recv().await {
            ServerFrame::Error {
                code,
                reference,
                message,
            } => {
                assert_eq!(code, expected, "{message}");
                assert_eq!(reference.as_deref(), r.as_str());
            }
            other => panic!("expected {expected}, got {other:?}"),
        }
    }
    ws.send_raw(Message::text("{oops")).await;
    assert!(matches!(
        ws.recv().await,
        ServerFrame::Error {
            code: ErrorCode::InvalidJson,
            ..
        }
    ));
    ws.send_raw(Message::binary(vec![1, 2, 3])).await;
    assert!(matches!(
        ws.recv().await,
        ServerFrame::Error {
            code: ErrorCode::UnsupportedFrame,
            ..
        }
    ));

    // Subscriptions accumulate across frames up to the limit.
    assert!(ws.subscribe(&["s.a", "s.b"], None).await);
    ws.send(json!({"op": "subscribe", "topics": ["s.c", "s.d"]}))
        .await;
    assert!(matches!(
        ws.recv().await,
        ServerFrame::Error {
            code: ErrorCode::TooManySubscriptions,
            ..
        }
    ));
    // Re-subscribing to a held pattern does not count twice.
    assert!(ws.subscribe(&["s.a", "s.c"], None).await);

    // Same socket still works end to end.
    assert!(matches!(
        ws.emit("ok", event("s.a", 1)).await,
        ServerFrame::Ack { .. }
    ));
    assert_eq!(ws.expect_event().await["data"]["n"], 1);
}

#[tokio::test]
async fn websocket_message_over_the_frame_limit_closes_with_1009() {
    let mut cfg = config();
    cfg.ws_max_message_bytes = 128 * 1024;
    let gw = start(cfg).await;
    let (mut ws, _) = WsClient::connect(&gw).await;
    let huge = json!({"op": "emit", "event": {"type": "a", "data": "x".repeat(200 * 1024)}});
    ws.send(huge).await;
    use futures_util::StreamExt;
    let close = loop {
        match tokio::time::timeout(WAIT, ws.ws.next())
            .await
            .expect("no close")
        {
            Some(Ok(Message::Close(frame))) => break frame.expect("close frame has a code"),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.code, CloseCode::Size);
    assert_eq!(close.reason.as_str(), "event_too_large");
    // The gateway is unharmed.
    gw.publish(event("a", 1)).await;
    gw.wait_connections(0, WAIT).await;
}

#[tokio::test]
async fn too_many_connections_is_503_until_one_leaves() {
    let mut cfg = config();
    cfg.max_connections = 2;
    let gw = start(cfg).await;
    let mut a = SseClient::connect(&gw, "topic=a", None).await;
    a.welcome().await;
    let (ws, _) = WsClient::connect(&gw).await;
    let r = SseClient::request(&gw, "topic=a", None).await;
    assert_eq!(r.status(), 503);
    assert_eq!(code(&r.json().await.unwrap()), "too_many_connections");
    let err = tokio_tungstenite::connect_async(gw.ws_url())
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 503),
        other => panic!("{other:?}"),
    }
    drop(ws);
    gw.wait_connections(1, WAIT).await;
    let mut b = SseClient::connect(&gw, "topic=a", None).await;
    b.welcome().await;
}
