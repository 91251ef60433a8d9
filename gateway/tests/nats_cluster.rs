//! A three-node NATS cluster loses a node under load. Every event the
//! gateway acknowledged reaches subscribers; every publish it could not
//! take was refused with `engine_unavailable`, and was taken on retry.

mod common;
#[path = "common/nats.rs"]
mod nats_helper;

use common::{SseClient, TestGateway, start};
use nats_helper::{NatsServer, gateway_config};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc};

const EVENTS: usize = 5_000;
const PUBLISHERS: usize = 8;
const KILL_AFTER: usize = 1_500;

/// Moves stream leadership to `node` (step-downs until it lands there).
async fn lead_on(js: &async_nats::jetstream::Context, stream: &str, node: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = js.get_stream(stream).await.unwrap().cached_info().clone();
        let leader = info.cluster.and_then(|c| c.leader).unwrap_or_default();
        if leader == node {
            return;
        }
        assert!(Instant::now() < deadline, "leadership never reached {node}");
        if !leader.is_empty() {
            let subject = format!("$JS.API.STREAM.LEADER.STEPDOWN.{stream}");
            let _ = js.client().request(subject, "".into()).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Follows the SSE stream like a browser: on a drop it reconnects with
/// the last id it saw, and expects to be told the resume was exact.
fn follow(gw: Arc<TestGateway>, out: mpsc::UnboundedSender<(String, String)>) {
    tokio::spawn(async move {
        let mut last: Option<String> = None;
        loop {
            let mut sse = SseClient::connect(&gw, "topic=load.%3E", last.as_deref()).await;
            let welcome = sse.welcome().await;
            assert_ne!(welcome.recovered, Some(false), "a resume lost events");
            while let Some(ev) = sse.next().await {
                if ev.event.as_deref().is_some_and(|e| e.starts_with('$')) {
                    continue;
                }
                let id = ev.json()["id"].as_str().unwrap().to_owned();
                last = ev.id.clone();
                if out.send((id, ev.id.unwrap())).is_err() {
                    return;
                }
            }
        }
    });
}

#[tokio::test]
async fn a_node_dies_under_load_and_no_acknowledged_event_is_lost() {
    let t0 = Instant::now();
    let mut nodes = NatsServer::cluster(3).await;
    let cluster_up = t0.elapsed();
    let mut config = gateway_config(&nodes[0].url(), "CLUSTER");
    config.engine.nats_replicas = 3;
    config.engine.nats_timeout = Duration::from_secs(3);
    let gw = Arc::new(start(config).await);
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    let admin = async_nats::jetstream::new(async_nats::connect(urls.as_slice()).await.unwrap());
    let info = admin
        .get_stream("CLUSTER")
        .await
        .unwrap()
        .cached_info()
        .clone();
    assert_eq!(info.config.num_replicas, 3);
    // The gateway is connected to n0; make n0 the stream leader too, so
    // killing it costs the gateway both its connection and the leader.
    lead_on(&admin, "CLUSTER", "n0").await;

    let setup = t0.elapsed();
    let (tx, mut delivered) = mpsc::unbounded_channel();
    follow(gw.clone(), tx);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(AtomicUsize::new(0));
    let receipts = Arc::new(Mutex::new(BTreeMap::<usize, Value>::new()));
    let refusals = Arc::new(Mutex::new(Vec::<(u16, Value)>::new()));
    let mut publishers = Vec::new();
    for _ in 0..PUBLISHERS {
        let (gw, next, acked, receipts, refusals) = (
            gw.clone(),
            next.clone(),
            acked.clone(),
            receipts.clone(),
            refusals.clone(),
        );
        publishers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= EVENTS {
                    return;
                }
                let event = json!({"id": format!("ev-{i}"), "type": "load.e", "data": {"i": i}});
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let (status, body) = gw.post(event.to_string()).await;
                    if status == 200 {
                        receipts.lock().await.insert(i, body);
                        acked.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    refusals.lock().await.push((status, body));
                    assert!(Instant::now() < deadline, "event {i} never accepted");
                    // A client resends with the same id: dedupe makes it safe.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    let started = Instant::now();
    while acked.load(Ordering::Relaxed) < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    nodes[0].kill();
    let killed_at = started.elapsed();
    for p in publishers {
        p.await.unwrap();
    }
    let published_in = started.elapsed();

    let refusals = refusals.lock().await.clone();
    for (status, body) in &refusals {
        assert_eq!(*status, 503, "{body}");
        assert_eq!(body["error"]["code"], "engine_unavailable", "{body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    let receipts = receipts.lock().await.clone();
    assert_eq!(
        receipts.len(),
        EVENTS,
        "every event was acknowledged in the end"
    );

    // Every acknowledged event arrives, once, at the position it was given.
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut order = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < EVENTS {
        let (id, seq) = tokio::time::timeout_at(deadline, delivered.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {EVENTS} delivered", seen.len()))
            .unwrap();
        assert!(
            seen.insert(id.clone(), seq.clone()).is_none(),
            "{id} delivered twice"
        );
        order.push(seq);
    }
    for (i, r) in &receipts {
        assert_eq!(
            seen.get(&format!("ev-{i}")),
            r["seq"].as_str().map(str::to_owned).as_ref(),
            "ev-{i}"
        );
    }
    let offsets: Vec<u64> = order
        .iter()
        .map(|s| s.rsplit_once('-').unwrap().1.parse().unwrap())
        .collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "delivered in position order"
    );
    let duplicates = receipts.values().filter(|r| r["duplicate"] == true).count();
    let mut messages: Vec<String> = refusals
        .iter()
        .map(|(_, b)| b["error"]["message"].as_str().unwrap().to_owned())
        .collect();
    messages.sort();
    messages.dedup();
    println!(
        "cluster: up in {cluster_up:?}, set up in {setup:?}, all delivered at {:?}; {EVENTS} events, node killed at {killed_at:?} after {KILL_AFTER} acks, all acknowledged by {published_in:?}; \
         {} refusals (retried), {duplicates} retries answered `duplicate`; refusal messages: {messages:?}",
        t0.elapsed(),
        refusals.len()
    );
}
