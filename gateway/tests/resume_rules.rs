//! The exact resume rules of PROTOCOL §4.1, §4.3, §4.4 and §5.1, on both
//! transports: which position a request resumes from (every header and query
//! combination), and that the start position a gateway announces is safe to
//! adopt the moment it arrives.

mod common;

use common::*;
use eventwire_protocol::ErrorCode;
use eventwire_protocol::frame::ServerFrame;
use serde_json::json;

/// A gateway holding three events on `r`; returns it and their positions.
async fn three() -> (TestGateway, [String; 3]) {
    let gw = start(config()).await;
    let mut seqs = Vec::new();
    for n in 1..=3 {
        let r = gw.publish(event("r", n)).await;
        seqs.push(r["seq"].as_str().unwrap().to_owned());
    }
    (gw, seqs.try_into().unwrap())
}

/// Which events an SSE request replays: it publishes a marker after the
/// welcome and collects everything before it. Returns the welcome too.
async fn sse_replay(
    gw: &TestGateway,
    query: &str,
    header: Option<&str>,
) -> (eventwire_protocol::frame::Welcome, Vec<u64>) {
    let mut sse = SseClient::connect(gw, &format!("topic=r&{query}"), header).await;
    let welcome = sse.welcome().await;
    gw.publish(event("r", 99)).await;
    let mut got = Vec::new();
    loop {
        let n = sse_ns(&sse.take(1).await)[0];
        if n == 99 {
            return (welcome, got);
        }
        got.push(n);
    }
}

#[tokio::test]
async fn sse_every_header_and_query_combination_of_5_1() {
    let (gw, [s1, s2, _]) = three().await;
    // (query, Last-Event-ID header, events replayed). "None" replays nothing.
    let cases: Vec<(String, Option<&str>, Vec<u64>)> = vec![
        (String::new(), None, vec![]),
        (format!("lastEventId={s1}"), None, vec![2, 3]),
        (format!("since={s1}"), None, vec![2, 3]),
        // Synonyms: the last one in the query wins.
        (format!("lastEventId={s1}&since={s2}"), None, vec![3]),
        (format!("since={s2}&lastEventId={s1}"), None, vec![2, 3]),
        // An empty value is "no position", and as the last one it wins (rule 2).
        (format!("lastEventId={s1}&since="), None, vec![]),
        (format!("since={s1}&lastEventId="), None, vec![]),
        (format!("since=&lastEventId={s2}"), None, vec![3]),
        ("since=".into(), None, vec![]),
        // A non-empty header wins over the query.
        (String::new(), Some(&s1), vec![2, 3]),
        (format!("lastEventId={s1}"), Some(&s2), vec![3]),
        (format!("since={s2}"), Some(&s1), vec![2, 3]),
        // An empty header (rule 1) or a blank one is no position: the query's holds.
        (format!("lastEventId={s1}"), Some(""), vec![2, 3]),
        (format!("since={s2}"), Some("   "), vec![3]),
        (format!("lastEventId={s1}&since="), Some(""), vec![]),
        (String::new(), Some(""), vec![]),
    ];
    for (query, header, want) in cases {
        let (welcome, got) = sse_replay(&gw, &query, header).await;
        assert_eq!(got, want, "query {query:?}, header {header:?}");
        assert_eq!(
            welcome.recovered,
            Some(true),
            "query {query:?}, header {header:?}"
        );
    }
}

#[tokio::test]
async fn sse_a_malformed_position_is_refused_wherever_it_comes_from() {
    let (gw, [s1, ..]) = three().await;
    for (query, header) in [
        ("since=bogus".to_owned(), None),
        ("lastEventId=bogus".to_owned(), None),
        (format!("lastEventId=bogus&since={s1}&lastEventId=x"), None),
        (format!("since={s1}"), Some("bogus")),
    ] {
        let r = SseClient::request(&gw, &format!("topic=r&{query}"), header).await;
        assert_eq!(r.status(), 400, "{query} {header:?}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_position", "{query}");
    }
    // A later empty value clears an earlier malformed one: no position.
    let (_, got) = sse_replay(&gw, "since=bogus&since=", None).await;
    assert!(got.is_empty());
}

#[tokio::test]
async fn history_reads_the_same_query_rules() {
    let (gw, [s1, s2, _]) = three().await;
    let ns = |body: &str| -> Vec<u64> {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["data"]["n"].as_u64().unwrap())
            .collect()
    };
    for (query, want) in [
        (format!("since={s1}"), vec![2, 3]),
        (format!("lastEventId={s1}&since={s2}"), vec![3]),
        (format!("lastEventId={s1}&since="), vec![1, 2, 3]),
        ("since=".to_owned(), vec![1, 2, 3]),
    ] {
        let (status, body) = gw.get(&format!("/v1/events?topic=r&{query}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(ns(&body), want, "{query}");
    }
}

#[tokio::test]
async fn websocket_since_rules() {
    let (gw, [s1, ..]) = three().await;
    // `""` is no position: live only.
    let (mut ws, _) = WsClient::connect(&gw).await;
    let (recovered, _) = ws.subscribe_at(&["r"], Some("")).await;
    assert!(recovered);
    gw.publish(event("r", 4)).await;
    assert_eq!(ws.expect_event().await["data"]["n"], 4);
    // A position replays what follows it.
    let (mut ws, _) = WsClient::connect(&gw).await;
    let (recovered, position) = ws.subscribe_at(&["r"], Some(&s1)).await;
    assert!(recovered);
    assert_eq!(position, s1, "a resumed start position is the client's own");
    for n in [2, 3, 4] {
        assert_eq!(ws.expect_event().await["data"]["n"], n);
    }
    // A malformed one is refused, and the next subscribe may still resume.
    let (mut ws, _) = WsClient::connect(&gw).await;
    ws.send(json!({"op": "subscribe", "topics": ["r"], "since": "bogus", "ref": "b"}))
        .await;
    match ws.recv().await {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::InvalidPosition),
        other => panic!("{other:?}"),
    }
    assert!(ws.subscribe(&["r"], Some(&s1)).await);
    assert_eq!(ws.expect_event().await["data"]["n"], 2);
}

/// Rule 3: a client that adopts the start position at once, then drops in
/// the middle of the replay, must not lose the rest of the replay.
#[tokio::test]
async fn the_start_position_is_safe_to_adopt_during_a_replay() {
    let (gw, [s1, ..]) = three().await;
    // SSE: resume from s1, adopt the welcome's position, drop before
    // processing anything, resume from it: the replay comes again.
    let mut sse = SseClient::connect(&gw, "topic=r", Some(&s1)).await;
    let position = sse.welcome().await.position.unwrap();
    assert_eq!(position, s1);
    drop(sse);
    let (welcome, got) = sse_replay(&gw, "", Some(&position)).await;
    assert_eq!(welcome.recovered, Some(true));
    assert_eq!(got, [2, 3]);
    // The same on WebSocket.
    let (mut ws, _) = WsClient::connect(&gw).await;
    let (_, position) = ws.subscribe_at(&["r"], Some(&s1)).await;
    drop(ws);
    let (mut ws, _) = WsClient::connect(&gw).await;
    assert!(ws.subscribe(&["r"], Some(&position)).await);
    for n in [2, 3, 99] {
        assert_eq!(ws.expect_event().await["data"]["n"], n);
    }
}

#[tokio::test]
async fn after_a_truncated_history_the_start_position_keeps_the_replay() {
    let mut cfg = config();
    cfg.engine.history_max_events = 3;
    let gw = start(cfg).await;
    let first = gw.publish(event("t", 0)).await["seq"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in 1..=5 {
        gw.publish(event("t", n)).await;
    }
    for transport in ["sse", "ws"] {
        let position = if transport == "sse" {
            let mut sse = SseClient::connect(&gw, "topic=t", Some(&first)).await;
            let w = sse.welcome().await;
            assert_eq!(w.recovered, Some(false));
            w.position.unwrap()
        } else {
            let (mut ws, _) = WsClient::connect(&gw).await;
            let (recovered, position) = ws.subscribe_at(&["t"], Some(&first)).await;
            assert!(!recovered);
            position
        };
        // Adopting it and dropping at once: the retained events come again,
        // announced as a gap again, never skipped in silence.
        let mut sse = SseClient::connect(&gw, "topic=t", Some(&position)).await;
        assert_eq!(sse.welcome().await.recovered, Some(false), "{transport}");
        assert_eq!(sse_ns(&sse.take(3).await), [3, 4, 5], "{transport}");
    }
}

/// A foreign position replays nothing, so the live start is exact: adopting
/// it spares the client a second `recovered:false`.
#[tokio::test]
async fn after_a_foreign_position_the_start_position_is_the_live_start() {
    let (gw, _) = three().await;
    let mut sse = SseClient::connect(&gw, "topic=r", Some("mdeadbeef-5")).await;
    let w = sse.welcome().await;
    assert_eq!(w.recovered, Some(false));
    drop(sse);
    let (mut ws, _) = WsClient::connect(&gw).await;
    let (recovered, ws_position) = ws.subscribe_at(&["r"], Some("mdeadbeef-5")).await;
    assert!(!recovered);
    drop(ws);
    gw.publish(event("r", 4)).await;
    for position in [w.position.unwrap(), ws_position] {
        let (welcome, got) = sse_replay(&gw, "", Some(&position)).await;
        assert_eq!(welcome.recovered, Some(true));
        assert!(got.starts_with(&[4]), "{got:?}");
    }
}

/// Rule 4: a plain `EventSource` dropped before its first event reconnects
/// with the `Last-Event-ID` the welcome's `id:` line gave it.
#[tokio::test]
async fn a_plain_event_source_dropped_before_its_first_event_misses_nothing() {
    let (gw, _) = three().await;
    let mut sse = SseClient::connect(&gw, "topic=r", None).await;
    let welcome = sse.expect().await;
    assert_eq!(welcome.event.as_deref(), Some("$welcome"));
    let last_event_id = welcome.id.expect("the welcome has an id: line");
    drop(sse);
    gw.publish(event("r", 4)).await;
    gw.publish(event("r", 5)).await;
    let (w, got) = sse_replay(&gw, "", Some(&last_event_id)).await;
    assert_eq!(w.recovered, Some(true));
    assert_eq!(got, [4, 5]);
}
