//! Edges a second implementation (a client written from PROTOCOL.md, or a
//! CloudEvents SDK) trips on, over real sockets: HTTP binary content mode,
//! the batch content type, extensions relayed unchanged, one size rule for
//! every publish path, and `auth` on a gateway without authentication.

mod common;

use common::*;
use eventwire_protocol::ErrorCode;
use eventwire_protocol::frame::ServerFrame;
use serde_json::{Value, json};

async fn post_with(
    gw: &TestGateway,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut req = gw.http.post(gw.url("/v1/events")).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn binary_mode_publishes_the_event_its_headers_describe() {
    let gw = start(config()).await;
    let mut sse = SseClient::connect(&gw, "topic=bin.%3E", None).await;
    sse.welcome().await;
    let (status, receipt) = post_with(
        &gw,
        &[
            ("ce-specversion", "1.0"),
            ("ce-type", "bin.json"),
            ("ce-id", "b-1"),
            ("ce-source", "/shop"),
            ("ce-time", "2026-01-02T03:04:05.678Z"),
            ("ce-subject", "caf%C3%A9"),
            (
                "ce-traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("content-type", "application/json"),
        ],
        r#"{"total": 2.50}"#,
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["id"], "b-1");
    let ev = sse.take(1).await[0].json();
    assert_eq!(ev["type"], "bin.json");
    assert_eq!(ev["source"], "/shop");
    assert_eq!(ev["subject"], "café");
    assert_eq!(ev["time"], "2026-01-02T03:04:05.678Z");
    assert_eq!(
        ev["traceparent"],
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );
    assert_eq!(ev["datacontenttype"], "application/json");
    assert_eq!(ev["seq"], receipt["seq"]);
    assert!(
        sse_raw_data(&gw, "b-1")
            .await
            .contains(r#""data":{"total": 2.50}"#),
        "JSON data kept verbatim"
    );

    let (status, _) = post_with(
        &gw,
        &[
            ("ce-specversion", "1.0"),
            ("ce-type", "bin.raw"),
            ("content-type", "application/octet-stream"),
        ],
        vec![0u8, 1, 2, 255],
    )
    .await;
    assert_eq!(status, 200);
    let ev = sse.take(1).await[0].json();
    assert_eq!(ev["data_base64"], "AAEC/w==");
    assert!(ev.get("data").is_none());

    for (header, value, code) in [
        ("ce-seq", "m1-1", "invalid_event"),
        ("ce-Trace_Id", "x", "invalid_event"),
        ("ce-time", "2026-02-30T00:00:00Z", "invalid_event"),
    ] {
        let (status, body) = post_with(
            &gw,
            &[
                ("ce-specversion", "1.0"),
                ("ce-type", "bin.x"),
                (header, value),
            ],
            "",
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{header}"
        );
    }
    let (status, body) = post_with(
        &gw,
        &[
            ("ce-specversion", "1.0"),
            ("ce-type", "bin.x"),
            ("content-type", "application/json"),
        ],
        "{not json",
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
}

/// The JSON of the event with `id`, as history returns it (not re-encoded).
async fn sse_raw_data(gw: &TestGateway, id: &str) -> String {
    let (_, text) = gw.get("/v1/events?topic=%3E&limit=1000").await;
    let start = text.find(&format!(r#""id":"{id}""#)).expect("the event");
    text[start..].to_owned()
}

#[tokio::test]
async fn structured_and_batch_content_types_and_extensions() {
    let gw = start(config()).await;
    let mut sse = SseClient::connect(&gw, "topic=ext", None).await;
    sse.welcome().await;
    let one = r#"{"specversion":"1.0","type":"ext","id":"x-1","source":"/s","dataschema":"https://example.com/s.json","partitionkey":"p-7","attempt":3,"sampled":true,"data":{"a":1}}"#;
    let (status, _) = post_with(
        &gw,
        &[(
            "content-type",
            "application/cloudevents+json; charset=utf-8",
        )],
        one,
    )
    .await;
    assert_eq!(status, 200);
    let batch = format!(
        "[{},{}]",
        r#"{"type":"ext","id":"x-2","tracestate":"congo=t61rcWkgMzE"}"#,
        r#"{"type":"ext","id":"x-3","data_base64":"aGk="}"#
    );
    let (status, receipts) = post_with(
        &gw,
        &[
            ("content-type", "application/cloudevents-batch+json"),
            // A structured request stays structured even with a ce- header.
            ("ce-specversion", "1.0"),
        ],
        batch,
    )
    .await;
    assert_eq!(status, 200, "{receipts}");
    let got = sse.take(3).await;
    let first = got[0].json();
    for (k, v) in [
        ("dataschema", json!("https://example.com/s.json")),
        ("partitionkey", json!("p-7")),
        ("attempt", json!(3)),
        ("sampled", json!(true)),
    ] {
        assert_eq!(first[k], v, "{k}");
    }
    assert!(
        got[0]
            .data
            .contains(r#""partitionkey":"p-7","attempt":3,"sampled":true,"seq":"#),
        "extensions in the order sent, before seq: {}",
        got[0].data
    );
    assert_eq!(got[1].json()["tracestate"], "congo=t61rcWkgMzE");
    assert_eq!(got[2].json()["data_base64"], "aGk=");
    assert!(got[2].json().get("datacontenttype").is_none());

    // Refused with a clear error, on HTTP and on WebSocket alike.
    let (mut ws, _) = WsClient::connect(&gw).await;
    for bad in [
        json!({"type": "ext", "Trace": "x"}),
        json!({"type": "ext", "n": 1.5}),
        json!({"type": "ext", "n": null}),
        json!({"type": "ext", "source": "not a uri"}),
        json!({"type": "ext", "data": 1, "data_base64": "AA=="}),
        json!({"type": "ext", "time": "1998-12-31T23:59:60Z"}),
    ] {
        let (status, body) = gw.post(bad.to_string()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_event")),
            "{bad}"
        );
        match ws.emit("e", bad.clone()).await {
            ServerFrame::Error { code, message, .. } => {
                assert_eq!(code, ErrorCode::InvalidEvent, "{bad}");
                assert!(!message.is_empty());
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn one_size_rule_for_a_post_a_batch_item_and_an_emit() {
    let mut cfg = config();
    let event = json!({"type": "size", "data": "x".repeat(100)}).to_string();
    cfg.max_event_bytes = event.len();
    let gw = start(cfg).await;
    let padded = format!("\n   {event}\r\n\t ");
    let (status, body) = gw.post(padded.clone()).await;
    assert_eq!(
        status, 200,
        "whitespace around the object is not counted: {body}"
    );
    let (status, body) = gw.post(format!("[{padded}]")).await;
    assert_eq!(status, 200, "{body}");
    let (mut ws, _) = WsClient::connect(&gw).await;
    let v: Value = serde_json::from_str(&event).unwrap();
    assert!(matches!(ws.emit("s", v).await, ServerFrame::Ack { .. }));
    // One byte more inside the object is over the limit everywhere.
    let bigger = json!({"type": "size", "data": "x".repeat(101)});
    let (status, body) = gw.post(bigger.to_string()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("event_too_large"))
    );
    let (status, body) = gw.post(format!("[{bigger}]")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("event_too_large"))
    );
    match ws.emit("b", bigger).await {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::EventTooLarge),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn auth_on_a_gateway_without_authentication_is_refused_and_changes_nothing() {
    let gw = start(config()).await;
    let (mut ws, _) = WsClient::connect(&gw).await;
    assert!(ws.subscribe(&["open"], None).await);
    ws.send(json!({"op": "auth", "ref": "r1", "token": "anything at all"}))
        .await;
    match ws.recv().await {
        ServerFrame::Error {
            code, reference, ..
        } => {
            assert_eq!(code, ErrorCode::BadRequest);
            assert_eq!(reference.as_deref(), Some("r1"));
        }
        other => panic!("expected an error, not {other:?}"),
    }
    gw.publish(event("open", 1)).await;
    assert_eq!(ws.expect_event().await["data"]["n"], 1, "still subscribed");
}
