//! The WebSocket consume form of consumer groups, on real sockets:
//! `consume` → `delivery` frames within the worker's in-flight limit,
//! `ack`/`nack`/`extend` → `settled`, sharing the group with HTTP workers;
//! and its bad input.

mod common;
#[path = "common/groups.rs"]
mod groups_suite;

use common::*;
use futures_util::{SinkExt, StreamExt};
use groups_suite::{Worker, publish_many};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// The next text frame as JSON, or None if nothing comes within `within`.
async fn next(ws: &mut WsClient, within: Duration) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(within, ws.ws.next())
            .await
            .ok()??
            .ok()?;
        if let Message::Text(t) = msg {
            return Some(serde_json::from_str(&t).unwrap());
        }
    }
}

async fn send(ws: &mut WsClient, v: Value) {
    ws.ws.send(Message::text(v.to_string())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_worker_gets_deliveries_within_its_inflight_limit_and_settles_them() {
    let gw = start(config()).await;
    let http = Worker::new(&gw, "ws");
    let (s, v) = http
        .put(json!({"topics": ["job.>"], "ack_wait": "30s", "max_deliver": 2}))
        .await;
    assert_eq!(s, 201, "{v}");
    publish_many(&gw, "job.w", 0, 10).await;
    let (mut ws, _) = WsClient::connect(&gw).await;
    send(
        &mut ws,
        json!({"op": "consume", "group": "ws", "max_inflight": 3, "ref": "c1"}),
    )
    .await;
    let c = next(&mut ws, WAIT).await.unwrap();
    assert_eq!(
        c,
        json!({"op": "consuming", "ref": "c1", "group": "ws", "max_inflight": 3})
    );
    let mut first = Vec::new();
    for _ in 0..3 {
        let d = next(&mut ws, WAIT).await.unwrap();
        assert_eq!(d["op"], "delivery", "{d}");
        assert_eq!(
            (d["group"].as_str(), d["attempt"].as_u64()),
            (Some("ws"), Some(1))
        );
        first.push(d);
    }
    // The limit holds: nothing more until something is settled.
    assert_eq!(next(&mut ws, Duration::from_millis(700)).await, None);
    // The rest is there for an HTTP worker of the same group meanwhile.
    let other = http.fetch(3, "0s").await;
    assert_eq!(other.len(), 3);
    let h = |d: &Value| d["handle"].as_str().unwrap().to_owned();
    send(
        &mut ws,
        json!({"op": "extend", "group": "ws", "handles": [h(&first[0])], "ref": "e"}),
    )
    .await;
    let r = next(&mut ws, WAIT).await.unwrap();
    assert_eq!(r["op"], "settled");
    assert_eq!(r["results"][0]["result"], "extended");
    assert_eq!(
        next(&mut ws, Duration::from_millis(500)).await,
        None,
        "extend frees no slot"
    );
    send(&mut ws, json!({"op": "ack", "group": "ws", "handles": [h(&first[0]), h(&first[1]), "garbage"], "ref": "a"})).await;
    let mut settled = None;
    let mut more = Vec::new();
    while settled.is_none() || more.len() < 2 {
        let f = next(&mut ws, WAIT)
            .await
            .expect("two more deliveries after two acks");
        match f["op"].as_str() {
            Some("settled") => settled = Some(f),
            Some("delivery") => more.push(f),
            _ => panic!("{f}"),
        }
    }
    let settled = settled.unwrap();
    assert_eq!(settled["ref"], "a");
    let results: Vec<_> = settled["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].clone())
        .collect();
    assert_eq!(results, [json!("acked"), json!("acked"), json!("unknown")]);
    assert_eq!(
        next(&mut ws, Duration::from_millis(500)).await,
        None,
        "still at most 3 out"
    );
    // A nack on the last attempt: dead; a nack before: back for a retry.
    send(&mut ws, json!({"op": "nack", "group": "ws", "handles": [h(&first[2])], "delay": "0s", "reason": "no"})).await;
    let mut seen = HashSet::new();
    let retry = loop {
        let f = next(&mut ws, WAIT).await.unwrap();
        if f["op"] == "settled" {
            assert_eq!(f["results"][0]["result"], "nacked");
            continue;
        }
        assert_eq!(f["op"], "delivery");
        seen.insert(f["event"]["data"]["n"].as_u64().unwrap());
        if f["attempt"] == 2 {
            break f;
        }
        // Not the retry: settle it so the retry fits.
        send(
            &mut ws,
            json!({"op": "ack", "group": "ws", "handles": [h(&f)]}),
        )
        .await;
    };
    assert_eq!(retry["event"]["id"], first[2]["event"]["id"]);
    send(
        &mut ws,
        json!({"op": "nack", "group": "ws", "handles": [h(&retry)], "ref": "n2"}),
    )
    .await;
    loop {
        let f = next(&mut ws, WAIT).await.unwrap();
        if f["op"] == "settled" && f["ref"] == "n2" {
            assert_eq!(f["results"][0]["result"], "dead");
            break;
        }
    }
    let (s, dead) = http.call(reqwest::Method::GET, "/dead", None).await;
    assert_eq!((s, dead["total"].as_u64()), (200, Some(1)), "{dead}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_consume_bad_input_gets_error_frames_and_the_connection_stays() {
    let gw = start(config()).await;
    let http = Worker::new(&gw, "wsbad");
    let (s, v) = http.put(json!({"topics": ["job.>"]})).await;
    assert_eq!(s, 201, "{v}");
    let (mut ws, _) = WsClient::connect(&gw).await;
    let cases = [
        (json!({"op": "consume", "ref": "1"}), "bad_request"),
        (
            json!({"op": "consume", "group": "nope", "ref": "2"}),
            "group_not_found",
        ),
        (
            json!({"op": "consume", "group": "wsbad", "max_inflight": 0, "ref": "3"}),
            "bad_request",
        ),
        (
            json!({"op": "consume", "group": "wsbad", "max_inflight": 5000, "ref": "4"}),
            "bad_request",
        ),
        (
            json!({"op": "ack", "group": "wsbad", "ref": "5"}),
            "bad_request",
        ),
        (
            json!({"op": "ack", "group": "wsbad", "handles": [], "ref": "6"}),
            "bad_request",
        ),
        (
            json!({"op": "ack", "group": "wsbad", "handles": ["x"], "delay": "1s", "ref": "7"}),
            "bad_request",
        ),
        (
            json!({"op": "nack", "group": "wsbad", "handles": ["x"], "delay": "soon", "ref": "8"}),
            "bad_request",
        ),
        (
            json!({"op": "ack", "group": "nope", "handles": ["x"], "ref": "9"}),
            "group_not_found",
        ),
    ];
    for (frame, code) in cases {
        let r = frame["ref"].clone();
        send(&mut ws, frame).await;
        let e = next(&mut ws, WAIT).await.unwrap();
        assert_eq!(
            (e["op"].as_str(), e["code"].as_str()),
            (Some("error"), Some(code)),
            "{e}"
        );
        assert_eq!(e["ref"], r);
    }
    // Consuming twice on one connection is refused; the first goes on.
    send(
        &mut ws,
        json!({"op": "consume", "group": "wsbad", "ref": "a"}),
    )
    .await;
    assert_eq!(next(&mut ws, WAIT).await.unwrap()["op"], "consuming");
    send(
        &mut ws,
        json!({"op": "consume", "group": "wsbad", "ref": "b"}),
    )
    .await;
    let e = next(&mut ws, WAIT).await.unwrap();
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("bad_request"), Some("b")),
        "{e}"
    );
    publish_many(&gw, "job.x", 0, 1).await;
    let d = next(&mut ws, WAIT).await.unwrap();
    assert_eq!(
        (d["op"].as_str(), d["event"]["data"]["n"].as_u64()),
        (Some("delivery"), Some(0))
    );
    // Deleting the group ends the consume with an error frame naming it.
    let (s, _) = http.call(reqwest::Method::DELETE, "", None).await;
    assert_eq!(s, 200);
    let e = next(&mut ws, WAIT).await.unwrap();
    assert_eq!(
        (e["op"].as_str(), e["code"].as_str(), e["group"].as_str()),
        (Some("error"), Some("group_not_found"), Some("wsbad")),
        "{e}"
    );
}

/// `consume` and `ack` on a WebSocket need the token's `consume` right on
/// the group, as over HTTP: a user may work in `jobs.{sub}` and nowhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consuming_and_settling_need_the_consume_right_on_the_group() {
    use common::tokens::{claims, hs, secured};
    let gw = secured().await;
    let mut c = claims("u1", 300);
    c["eventwire"]["consume"] = json!(["jobs.{sub}"]);
    let token = hs(&c);
    let url = format!("{}?access_token={token}", gw.ws_url());
    let (socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let mut ws = WsClient { ws: socket };
    assert_eq!(next(&mut ws, WAIT).await.unwrap()["op"], "welcome");
    for frame in [
        json!({"op": "consume", "group": "jobs.u2", "ref": "c"}),
        json!({"op": "ack", "group": "jobs.u2", "handles": ["h"], "ref": "a"}),
    ] {
        send(&mut ws, frame.clone()).await;
        let e = next(&mut ws, WAIT).await.unwrap();
        assert_eq!(e["op"], "error", "{frame} → {e}");
        assert_eq!(e["code"], "forbidden", "{frame} → {e}");
        assert_eq!(e["ref"], frame["ref"]);
    }
    // Its own group is allowed: the refusal is about rights, not the op
    // (the group does not exist yet, so the answer is group_not_found).
    send(
        &mut ws,
        json!({"op": "consume", "group": "jobs.u1", "ref": "own"}),
    )
    .await;
    let e = next(&mut ws, WAIT).await.unwrap();
    assert_eq!(e["code"], "group_not_found", "{e}");
}
