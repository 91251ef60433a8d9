//! Clients that cannot keep up, and clients that vanish without closing.
//! Either way the gateway frees the connection within a bounded time, other
//! subscribers are unaffected, and the client resumes without loss.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Publishes `events` in batches of 100 and returns when all are accepted.
async fn publish_batches(
    gw: &TestGateway,
    ty: &str,
    range: std::ops::RangeInclusive<u64>,
    pad: usize,
) {
    let all: Vec<Value> = range
        .map(|n| json!({"type": ty, "data": {"n": n, "pad": "p".repeat(pad)}}))
        .collect();
    for chunk in all.chunks(100) {
        let (status, body) = gw.post(Value::Array(chunk.to_vec()).to_string()).await;
        assert_eq!(status, 200, "{body}");
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test]
async fn slow_consumer_is_cut_off_others_get_everything_and_it_resumes() {
    let mut cfg = config();
    // Room for one 100-event batch burst, far less than the whole run.
    cfg.outbox_bytes = 256 * 1024;
    cfg.engine.history_max_events = 100_000;
    let gw = start(cfg).await;
    let before = metric(
        &gw.get("/metrics").await.1,
        "eventwire_disconnects_total{reason=\"slow_consumer\"}",
    );
    let mut fast = SseClient::connect(&gw, "topic=s", None).await;
    fast.welcome().await;
    let slow = SseClient::connect_stalling(&gw, "topic=s").await;
    gw.wait_connections(2, WAIT).await;

    // Enough to fill the kernel's and hyper's buffers several times over.
    const N: u64 = 10_000;
    let publishing = publish_batches(&gw, "s", 1..=N, 1024);
    let reading = async {
        let got = fast.take(N as usize).await;
        assert_eq!(
            sse_ns(&got),
            (1..=N).collect::<Vec<_>>(),
            "the fast subscriber lost nothing"
        );
    };
    tokio::join!(publishing, reading);
    gw.wait_connections(1, WAIT).await;
    let after = metric(
        &gw.get("/metrics").await.1,
        "eventwire_disconnects_total{reason=\"slow_consumer\"}",
    );
    assert!(after > before, "the slow consumer was counted");

    // The slow client reads what reached it: a gap-free prefix, then the reason.
    let mut slow = slow.read_to_end().await;
    slow.welcome().await;
    let mut seen = Vec::new();
    let close = loop {
        let ev = slow.expect().await;
        if ev.event.as_deref() == Some("$close") {
            break ev.json();
        }
        seen.push(ev);
    };
    assert_eq!(close["code"], "slow_consumer");
    let prefix = sse_ns(&seen);
    assert!((prefix.len() as u64) < N, "it really was cut off");
    eprintln!(
        "the slow consumer had received {} of {N} events when it was cut off",
        prefix.len()
    );
    assert_eq!(prefix, (1..=prefix.len() as u64).collect::<Vec<_>>());
    assert!(slow.next().await.is_none(), "the stream ended");

    // Resume from the last event it processed: the rest, once each.
    let last = seen.last().and_then(|e| e.id.clone());
    let mut again = SseClient::connect(&gw, "topic=s", last.as_deref()).await;
    assert_eq!(again.welcome().await.recovered, Some(true));
    let rest = again.take((N as usize) - prefix.len()).await;
    assert_eq!(
        sse_ns(&rest),
        ((prefix.len() as u64 + 1)..=N).collect::<Vec<_>>()
    );
    again.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn silent_websocket_peer_is_dropped_after_missed_heartbeats() {
    let mut cfg = config();
    cfg.heartbeat = Duration::from_millis(300);
    let gw = start(cfg).await;
    let (mut ws, _) = WsClient::connect(&gw).await;
    // The gateway times silence from the last frame it heard: the
    // `subscribe` below is the client's last one, so the clock starts here.
    let t0 = Instant::now();
    assert!(ws.subscribe(&["v"], None).await);
    gw.publish(event("v", 0)).await;
    let last = ws.expect_event().await["seq"].as_str().unwrap().to_owned();
    // The "Wi-Fi drops": the socket stays open but nothing is read or
    // answered from now on, so pings go unanswered.
    let vanished = ws;

    // Meanwhile the client comes back on a new connection and resumes.
    let publisher = {
        let gw_http = gw.http.clone();
        let url = gw.url("/v1/events");
        tokio::spawn(async move {
            for n in 1..=200u64 {
                let r = gw_http
                    .post(&url)
                    .body(event("v", n).to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        })
    };
    let (mut back, _) = WsClient::connect(&gw).await;
    assert!(back.subscribe(&["v"], Some(&last)).await);
    let mut got = Vec::new();
    for _ in 0..200 {
        got.push(back.expect_event().await);
    }
    publisher.await.unwrap();
    assert_eq!(ns(&got), (1..=200).collect::<Vec<_>>());

    // Documented bound: silence for 2 heartbeats, noticed at the next one.
    // `back` keeps reading meanwhile, so it answers pings and stays.
    let keep_reading = async {
        loop {
            match futures_util::StreamExt::next(&mut back.ws).await {
                Some(Ok(m)) if m.is_ping() || m.is_pong() => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    let freed = tokio::select! {
        _ = gw.wait_connections(1, Duration::from_secs(5)) => t0.elapsed(),
        _ = keep_reading => unreachable!(),
    };
    assert!(
        freed >= Duration::from_millis(600),
        "dropped too early: {freed:?}"
    );
    eprintln!("silent WebSocket peer freed after {freed:?} (heartbeat 300 ms)");
    let text = gw.get("/metrics").await.1;
    assert!(
        metric(
            &text,
            "eventwire_disconnects_total{reason=\"heartbeat_timeout\"}"
        ) >= 1.0,
        "{text}"
    );
    drop(vanished);
}

#[tokio::test]
async fn sse_peer_that_stops_reading_is_dropped_by_the_write_timeout() {
    let mut cfg = config();
    cfg.write_timeout = Duration::from_secs(1);
    // So large that only the write timeout, not the slow-consumer limit, can act.
    cfg.outbox_bytes = 256 * 1024 * 1024;
    let gw = start(cfg).await;
    let stalled = SseClient::connect_stalling(&gw, "topic=w").await;
    gw.wait_connections(1, WAIT).await;
    // The client processed this one before it froze.
    let last = gw.publish(event("w", 0)).await["seq"]
        .as_str()
        .unwrap()
        .to_owned();

    publish_batches(&gw, "w", 1..=3000, 1024).await;
    let t0 = Instant::now();
    gw.wait_connections(0, Duration::from_secs(10)).await;
    let freed = t0.elapsed();

    let mut back = SseClient::connect(&gw, "topic=w", Some(&last)).await;
    assert_eq!(back.welcome().await.recovered, Some(true));
    assert_eq!(
        sse_ns(&back.take(3000).await),
        (1..=3000).collect::<Vec<_>>()
    );
    back.expect_silence(Duration::from_millis(200)).await;
    eprintln!("stalled SSE connection freed {freed:?} after the last publish");
    drop(stalled);
}
