//! Resume: a client that reconnects with its last position gets exactly what
//! it missed, in order, once; and is told when that is impossible.

mod common;

use common::*;
use eventwire_protocol::frame::ServerFrame;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn sse_resume_with_last_event_id_gets_exactly_the_missed_events() {
    let gw = start(config()).await;
    let mut sse = SseClient::connect(&gw, "topic=feed.*", None).await;
    sse.welcome().await;
    gw.publish(event("feed.a", 0)).await;
    let last = sse.expect().await.id.unwrap();
    drop(sse);
    gw.wait_connections(0, WAIT).await;

    for n in 1..=100 {
        gw.publish(event(if n % 2 == 0 { "feed.a" } else { "feed.b" }, n))
            .await;
        gw.publish(event("unrelated", n)).await;
    }
    let mut sse = SseClient::connect(&gw, "topic=feed.*", Some(&last)).await;
    assert_eq!(sse.welcome().await.recovered, Some(true));
    let got = sse.take(100).await;
    assert_eq!(sse_ns(&got), (1..=100).collect::<Vec<_>>());
    let mut ids: Vec<_> = got
        .iter()
        .map(|e| e.json()["id"].as_str().unwrap().to_owned())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 100, "no duplicates");
    sse.expect_silence(Duration::from_millis(200)).await;
    // Live delivery continues after the replay.
    gw.publish(event("feed.a", 101)).await;
    assert_eq!(sse_ns(&sse.take(1).await), [101]);
}

#[tokio::test]
async fn resume_query_parameter_works_and_the_header_wins() {
    let gw = start(config()).await;
    let r1 = gw.publish(event("q", 1)).await;
    let r2 = gw.publish(event("q", 2)).await;
    gw.publish(event("q", 3)).await;
    let s1 = r1["seq"].as_str().unwrap();
    let s2 = r2["seq"].as_str().unwrap();
    let mut sse = SseClient::connect(&gw, &format!("topic=q&lastEventId={s1}"), None).await;
    assert_eq!(sse.welcome().await.recovered, Some(true));
    assert_eq!(sse_ns(&sse.take(2).await), [2, 3]);
    let mut sse = SseClient::connect(&gw, &format!("topic=q&lastEventId={s1}"), Some(s2)).await;
    sse.welcome().await;
    assert_eq!(sse_ns(&sse.take(1).await), [3]);
}

#[tokio::test]
async fn resume_beyond_history_or_from_another_epoch_is_not_recovered() {
    let mut cfg = config();
    cfg.engine.history_max_events = 10;
    let gw = start(cfg).await;
    let first = gw.publish(event("t", 0)).await;
    for n in 1..=20 {
        gw.publish(event("t", n)).await;
    }
    let mut sse = SseClient::connect(&gw, "topic=t", first["seq"].as_str()).await;
    assert_eq!(sse.welcome().await.recovered, Some(false));
    // What history still holds is delivered: the 10 newest.
    assert_eq!(sse_ns(&sse.take(10).await), (11..=20).collect::<Vec<_>>());

    // A position from another gateway incarnation (say, before a restart).
    let mut sse = SseClient::connect(&gw, "topic=t", Some("mdeadbeef-5")).await;
    assert_eq!(sse.welcome().await.recovered, Some(false));
    gw.publish(event("t", 21)).await;
    assert_eq!(sse_ns(&sse.take(1).await), [21]);
}

#[tokio::test]
async fn websocket_resume_with_since() {
    let gw = start(config()).await;
    let (mut ws, _) = WsClient::connect(&gw).await;
    assert!(ws.subscribe(&["w.*"], None).await);
    gw.publish(event("w.a", 0)).await;
    let last = ws.expect_event().await["seq"].as_str().unwrap().to_owned();
    drop(ws);
    for n in 1..=100 {
        gw.publish(event("w.a", n)).await;
    }
    let (mut ws, _) = WsClient::connect(&gw).await;
    assert!(ws.subscribe(&["w.*"], Some(&last)).await);
    let mut got = Vec::new();
    for _ in 0..100 {
        got.push(ws.expect_event().await);
    }
    assert_eq!(ns(&got), (1..=100).collect::<Vec<_>>());
    ws.send(json!({"op": "ping"})).await;
    assert_eq!(
        ws.recv().await,
        ServerFrame::Pong { reference: None },
        "no duplicates after the replay"
    );

    // `since` on a later subscribe is refused: a connection has one position.
    ws.send(json!({"op": "subscribe", "topics": ["other"], "since": last, "ref": "s2"}))
        .await;
    match ws.recv().await {
        ServerFrame::Error {
            code, reference, ..
        } => {
            assert_eq!(code, eventwire_protocol::ErrorCode::BadRequest);
            assert_eq!(reference.as_deref(), Some("s2"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn publishing_during_a_replay_loses_and_duplicates_nothing() {
    let gw = start(config()).await;
    let first = gw.publish(event("r", 0)).await;
    for n in 1..=2000 {
        gw.publish(event("r", n)).await;
    }
    let since = first["seq"].as_str().unwrap().to_owned();
    let publisher = {
        let http = gw.http.clone();
        let url = gw.url("/v1/events");
        tokio::spawn(async move {
            for n in 2001..=2500 {
                let r = http
                    .post(&url)
                    .body(event("r", n).to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        })
    };
    let mut sse = SseClient::connect(&gw, "topic=r", Some(&since)).await;
    assert_eq!(sse.welcome().await.recovered, Some(true));
    let got = sse.take(2500).await;
    publisher.await.unwrap();
    assert_eq!(sse_ns(&got), (1..=2500).collect::<Vec<_>>());
    sse.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn the_same_id_twice_is_delivered_once_with_one_seq() {
    let gw = start(config()).await;
    let mut sse = SseClient::connect(&gw, "topic=d", None).await;
    sse.welcome().await;
    let a = gw
        .publish(json!({"type": "d", "id": "same", "source": "p", "data": {"n": 1}}))
        .await;
    let b = gw
        .publish(json!({"type": "d", "id": "same", "source": "p", "data": {"n": 2}}))
        .await;
    assert_eq!(a["seq"], b["seq"]);
    assert_eq!(a["duplicate"], false);
    assert_eq!(b["duplicate"], true);
    // The same producer (`source`) over the other transport: still a duplicate.
    let (mut ws, _) = WsClient::connect(&gw).await;
    match ws
        .emit("e", json!({"type": "d", "id": "same", "source": "p"}))
        .await
    {
        ServerFrame::Ack { seq, duplicate, .. } => {
            assert_eq!(seq, a["seq"].as_str().unwrap());
            assert!(duplicate);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sse_ns(&sse.take(1).await), [1]);
    sse.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_position_from_the_future_is_not_recovered_and_hides_nothing() {
    let gw = start(config()).await;
    let r = gw.publish(event("f", 1)).await;
    let epoch = r["seq"]
        .as_str()
        .unwrap()
        .rsplit_once('-')
        .unwrap()
        .0
        .to_owned();
    let mut sse = SseClient::connect(&gw, "topic=f", Some(&format!("{epoch}-999999"))).await;
    assert_eq!(sse.welcome().await.recovered, Some(false));
    gw.publish(event("f", 2)).await;
    assert_eq!(sse_ns(&sse.take(1).await), [2], "live events still flow");
}

#[tokio::test]
async fn an_empty_position_means_none_everywhere() {
    let gw = start(config()).await;
    let r = gw.publish(event("z", 1)).await;
    let seq = r["seq"].as_str().unwrap();
    // An empty header does not hide the query's position.
    let mut sse = SseClient::connect(&gw, &format!("topic=z&lastEventId={seq}"), Some("")).await;
    assert_eq!(sse.welcome().await.recovered, Some(true));
    let (status, _) = gw.get("/v1/events?topic=z&since=").await;
    assert_eq!(status, 200);
    let (mut ws, _) = WsClient::connect(&gw).await;
    assert!(ws.subscribe(&["z"], Some("")).await);
}

#[tokio::test]
async fn a_client_that_received_nothing_resumes_from_the_welcome_position() {
    let gw = start(config()).await;
    gw.publish(event("early", 0)).await;
    let mut sse = SseClient::connect(&gw, "topic=p", None).await;
    let position = sse
        .welcome()
        .await
        .position
        .expect("SSE welcome carries a position");
    drop(sse);
    for n in 1..=5 {
        gw.publish(event("p", n)).await;
    }
    let mut sse = SseClient::connect(&gw, "topic=p", Some(&position)).await;
    assert_eq!(sse.welcome().await.recovered, Some(true));
    assert_eq!(sse_ns(&sse.take(5).await), [1, 2, 3, 4, 5]);

    let (mut ws, _) = WsClient::connect(&gw).await;
    ws.send(json!({"op": "subscribe", "topics": ["p"], "ref": "a"}))
        .await;
    let position = match ws.recv().await {
        ServerFrame::Subscribed { position, .. } => position,
        other => panic!("{other:?}"),
    };
    drop(ws);
    gw.publish(event("p", 6)).await;
    let (mut ws, _) = WsClient::connect(&gw).await;
    assert!(ws.subscribe(&["p"], Some(&position)).await);
    assert_eq!(ws.expect_event().await["data"]["n"], 6);
}
