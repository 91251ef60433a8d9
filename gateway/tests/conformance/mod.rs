//! The engine conformance suite: what every `Engine` must do, whatever the
//! broker behind it. Each engine has a test file that calls [`run_all`]
//! with a factory, so memory, NATS JetStream and any later engine are held
//! to exactly the same contract.

#![allow(dead_code)]

use eventwire_gateway::engine::{Engine, EngineError, Event, HistoryQuery, NewEvent};
use eventwire_gateway::publish::ingest;
use eventwire_protocol::Pattern;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How much history a fresh engine should retain for a test.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_events: usize,
}

fn new_event(ty: &str, id: Option<&str>, n: u64) -> NewEvent {
    new_event_from("test", ty, id, n)
}

fn new_event_from(source: &str, ty: &str, id: Option<&str>, n: u64) -> NewEvent {
    let id = id.map(|i| format!(r#""id":"{i}","#)).unwrap_or_default();
    ingest::prepare(
        &format!(r#"{{{id}"type":"{ty}","data":{{"n":{n}}}}}"#),
        1 << 16,
        source,
    )
    .unwrap()
}

fn pattern(p: &str) -> Pattern {
    Pattern::parse(p).unwrap()
}

fn n_of(e: &Arc<Event>) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(&e.json).unwrap();
    v["data"]["n"].as_u64().unwrap()
}

async fn recv(stream: &mut eventwire_gateway::engine::EventStream) -> Arc<Event> {
    tokio::time::timeout(Duration::from_secs(10), stream.recv())
        .await
        .expect("timed out waiting for a live event")
        .expect("stream ended")
}

/// Runs every check, each on a fresh engine from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn(Retention) -> Fut,
    Fut: Future<Output = Arc<dyn Engine>>,
{
    let roomy = Retention { max_events: 10_000 };
    publish_assigns_ordered_positions_and_delivers_live(make(roomy).await).await;
    subscribe_filters_by_pattern(make(roomy).await).await;
    history_reads_after_a_position(make(roomy).await).await;
    dedupe_by_id(make(roomy).await).await;
    positions_from_elsewhere_are_not_recovered(make(roomy).await).await;
    truncated_history_is_not_recovered(make(Retention { max_events: 5 }).await).await;
    concurrent_publishers_are_totally_ordered(make(roomy).await).await;
    stored_json_is_the_delivered_envelope(make(roomy).await).await;
    a_subscription_says_where_it_starts(make(roomy).await).await;
}

pub async fn a_subscription_says_where_it_starts(engine: Arc<dyn Engine>) {
    engine.publish(new_event("s", None, 0)).await.unwrap();
    let sub = engine.subscribe(pattern(">")).await.unwrap();
    engine
        .check_position(&sub.from)
        .expect("`from` is a position");
    let mut live = sub.events;
    for n in 1..=3 {
        engine.publish(new_event("s", None, n)).await.unwrap();
    }
    let h = engine
        .history(HistoryQuery {
            patterns: vec![pattern("s")],
            since: Some(sub.from.clone()),
            limit: 10,
        })
        .await
        .unwrap();
    assert!(h.recovered);
    assert_eq!(
        h.events.iter().map(n_of).collect::<Vec<_>>(),
        [1, 2, 3],
        "history after `from` is what the stream carries"
    );
    for n in 1..=3 {
        assert_eq!(n_of(&recv(&mut live).await), n);
    }
}

pub async fn publish_assigns_ordered_positions_and_delivers_live(engine: Arc<dyn Engine>) {
    engine.ready().await.expect("a fresh engine is ready");
    let mut live = engine.subscribe(pattern(">")).await.unwrap().events;
    let mut seqs = Vec::new();
    for n in 0..10 {
        let a = engine.publish(new_event("c.a", None, n)).await.unwrap();
        assert!(!a.duplicate);
        engine
            .check_position(&a.seq)
            .expect("issued positions are valid");
        seqs.push(a.seq);
    }
    let mut last = 0;
    for (n, seq) in seqs.iter().enumerate() {
        let ev = recv(&mut live).await;
        assert_eq!(&ev.seq, seq, "live order is publish order");
        assert_eq!(n_of(&ev), n as u64);
        assert!(ev.offset > last, "offsets increase");
        last = ev.offset;
    }
}

pub async fn subscribe_filters_by_pattern(engine: Arc<dyn Engine>) {
    let mut star = engine.subscribe(pattern("f.*")).await.unwrap().events;
    let mut exact = engine.subscribe(pattern("f.b.c")).await.unwrap().events;
    for (n, ty) in ["f.a", "g.a", "f.b.c", "f.b"].iter().enumerate() {
        engine.publish(new_event(ty, None, n as u64)).await.unwrap();
    }
    assert_eq!(n_of(&recv(&mut star).await), 0);
    assert_eq!(n_of(&recv(&mut star).await), 3);
    assert_eq!(n_of(&recv(&mut exact).await), 2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(star.try_recv().is_err(), "nothing else matched f.*");
    assert!(exact.try_recv().is_err(), "nothing else matched f.b.c");
}

pub async fn history_reads_after_a_position(engine: Arc<dyn Engine>) {
    let mut seqs = Vec::new();
    for n in 0..20 {
        let ty = if n % 2 == 0 { "h.even" } else { "h.odd" };
        seqs.push(engine.publish(new_event(ty, None, n)).await.unwrap().seq);
    }
    let all = engine
        .history(HistoryQuery {
            patterns: vec![pattern("h.*")],
            since: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert!(all.recovered);
    assert_eq!(
        all.events.iter().map(n_of).collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>()
    );

    let after5 = engine
        .history(HistoryQuery {
            patterns: vec![pattern("h.even")],
            since: Some(seqs[5].clone()),
            limit: 3,
        })
        .await
        .unwrap();
    assert!(after5.recovered);
    assert!(after5.more, "the limit cut the read short");
    assert_eq!(
        after5.events.iter().map(n_of).collect::<Vec<_>>(),
        [6, 8, 10]
    );

    let at_end = engine
        .history(HistoryQuery {
            patterns: vec![pattern(">")],
            since: Some(seqs[19].clone()),
            limit: 10,
        })
        .await
        .unwrap();
    assert!(
        at_end.recovered,
        "resuming from the newest position loses nothing"
    );
    assert!(at_end.events.is_empty());
    assert!(!at_end.more);
}

pub async fn dedupe_by_id(engine: Arc<dyn Engine>) {
    let mut live = engine.subscribe(pattern(">")).await.unwrap().events;
    let a = engine
        .publish(new_event("d", Some("dup-1"), 1))
        .await
        .unwrap();
    let b = engine
        .publish(new_event("d", Some("dup-1"), 2))
        .await
        .unwrap();
    let c = engine
        .publish(new_event("d", Some("dup-2"), 3))
        .await
        .unwrap();
    assert!(!a.duplicate && b.duplicate && !c.duplicate);
    assert_eq!(a.seq, b.seq, "a duplicate gets the original position");
    assert_eq!(a.id, "dup-1");
    assert_eq!(n_of(&recv(&mut live).await), 1);
    assert_eq!(
        n_of(&recv(&mut live).await),
        3,
        "the duplicate was not delivered"
    );
    // Dedupe is scoped by `source`: the same id from another source is
    // another event, and is itself deduped within its own source.
    let d = engine
        .publish(new_event_from("other", "d", Some("dup-1"), 4))
        .await
        .unwrap();
    assert!(!d.duplicate, "another source's id is not a duplicate");
    assert_ne!(d.seq, a.seq);
    let e = engine
        .publish(new_event_from("other", "d", Some("dup-1"), 5))
        .await
        .unwrap();
    assert!(e.duplicate && e.seq == d.seq);
    assert_eq!(n_of(&recv(&mut live).await), 4);
    let h = engine
        .history(HistoryQuery {
            patterns: vec![pattern("d")],
            since: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(h.events.len(), 3);
}

pub async fn positions_from_elsewhere_are_not_recovered(engine: Arc<dyn Engine>) {
    engine.publish(new_event("e", None, 1)).await.unwrap();
    for bad in ["", "garbage", "-1", "x-y", &"9".repeat(200)] {
        assert!(
            matches!(
                engine.check_position(bad),
                Err(EngineError::InvalidPosition(_))
            ),
            "{bad:?} accepted"
        );
    }
    let foreign = engine
        .history(HistoryQuery {
            patterns: vec![pattern(">")],
            since: Some("otherepoch-1".into()),
            limit: 10,
        })
        .await
        .unwrap();
    assert!(
        !foreign.recovered,
        "a position from another epoch cannot be trusted"
    );
}

pub async fn truncated_history_is_not_recovered(engine: Arc<dyn Engine>) {
    let first = engine.publish(new_event("t", None, 0)).await.unwrap();
    for n in 1..=10 {
        engine.publish(new_event("t", None, n)).await.unwrap();
    }
    let h = engine
        .history(HistoryQuery {
            patterns: vec![pattern("t")],
            since: Some(first.seq),
            limit: 100,
        })
        .await
        .unwrap();
    assert!(!h.recovered, "events after the position were evicted");
    let ns: Vec<u64> = h.events.iter().map(n_of).collect();
    assert_eq!(
        ns,
        (6..=10).collect::<Vec<_>>(),
        "what is retained is still returned"
    );
}

pub async fn concurrent_publishers_are_totally_ordered(engine: Arc<dyn Engine>) {
    let mut live = engine.subscribe(pattern(">")).await.unwrap().events;
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100u64 {
                engine
                    .publish(new_event("o", None, t * 1000 + i))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut live_order = Vec::new();
    for _ in 0..400 {
        live_order.push(recv(&mut live).await);
    }
    assert!(
        live_order.windows(2).all(|w| w[0].offset < w[1].offset),
        "live is in position order"
    );
    for t in 0..4u64 {
        let mine: Vec<u64> = live_order
            .iter()
            .map(n_of)
            .filter(|n| n / 1000 == t)
            .collect();
        assert_eq!(
            mine,
            (t * 1000..t * 1000 + 100).collect::<Vec<_>>(),
            "each publisher's order is kept"
        );
    }
    let h = engine
        .history(HistoryQuery {
            patterns: vec![pattern("o")],
            since: None,
            limit: 1000,
        })
        .await
        .unwrap();
    let hist: Vec<&str> = h.events.iter().map(|e| e.seq.as_str()).collect();
    let live: Vec<&str> = live_order.iter().map(|e| e.seq.as_str()).collect();
    assert_eq!(hist, live, "history and live agree on the order");
}

pub async fn stored_json_is_the_delivered_envelope(engine: Arc<dyn Engine>) {
    let a = engine
        .publish(new_event("j.k", Some("json-1"), 7))
        .await
        .unwrap();
    let h = engine
        .history(HistoryQuery {
            patterns: vec![pattern("j.k")],
            since: None,
            limit: 1,
        })
        .await
        .unwrap();
    let ev = &h.events[0];
    let v: serde_json::Value = serde_json::from_slice(&ev.json).unwrap();
    assert_eq!(v["seq"], a.seq.as_str());
    assert_eq!(v["id"], "json-1");
    assert_eq!(v["type"], "j.k");
    assert_eq!(ev.topic.as_str(), "j.k");
    assert_eq!(ev.id, "json-1");
    assert!(
        !ev.json.contains(&b'\n'),
        "one line, ready for an SSE data: field"
    );
}
