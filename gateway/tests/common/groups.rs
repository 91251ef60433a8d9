//! The consumer-group conformance suite: scenarios every groups backend
//! must pass (the gateway's own groups on memory and disk, JetStream
//! consumers on NATS), run over real sockets by groups.rs and
//! nats_groups.rs. Scenarios that take two gateways fetch on one and
//! settle on the other; with one gateway, pass it twice.
//!
//! Include it with `#[path = "common/groups.rs"] mod groups_suite;`.

#![allow(dead_code)]

use crate::common::*;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a backend reports beyond the common counts.
#[derive(Debug, Clone, Copy)]
pub struct Flavor {
    /// `redelivered` and `dead_total` are totals since creation (the
    /// gateway's own groups); on NATS they are JetStream's current counts.
    pub totals: bool,
}

/// A worker's view of the group API.
#[derive(Clone)]
pub struct Worker {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Worker {
    pub fn new(gw: &TestGateway, group: &str) -> Worker {
        Worker {
            http: reqwest::Client::new(),
            base: gw.url(&format!("/v1/groups/{group}")),
            token: None,
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn put(&self, config: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, "", Some(config.to_string()))
            .await
    }

    pub async fn post(&self, op: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, op, Some(body.to_string()))
            .await
    }

    pub async fn info(&self) -> Value {
        let (s, v) = self.call(reqwest::Method::GET, "", None).await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// Fetches, asserting 200; returns the deliveries.
    pub async fn fetch(&self, max: usize, wait: &str) -> Vec<Value> {
        let (s, v) = self.post("/fetch", json!({"max": max, "wait": wait})).await;
        assert_eq!(s, 200, "{v}");
        v["deliveries"].as_array().unwrap().clone()
    }

    /// Settles handles, asserting 200; returns each handle's result.
    pub async fn settle(&self, op: &str, handles: &[String], extra: Value) -> Vec<String> {
        let mut body = json!({ "handles": handles });
        if let Value::Object(m) = extra {
            body.as_object_mut().unwrap().extend(m);
        }
        let (s, v) = self.post(op, body).await;
        assert_eq!(s, 200, "{v}");
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["result"].as_str().unwrap().to_owned())
            .collect()
    }
}

pub fn handles(ds: &[Value]) -> Vec<String> {
    ds.iter()
        .map(|d| d["handle"].as_str().unwrap().to_owned())
        .collect()
}

pub fn n_of(d: &Value) -> u64 {
    d["event"]["data"]["n"].as_u64().unwrap()
}

/// Publishes `count` events `ty` numbered from `from`, in batches of 100.
pub async fn publish_many(gw: &TestGateway, ty: &str, from: u64, count: u64) {
    let mut n = from;
    while n < from + count {
        let batch: Vec<Value> = (n..(n + 100).min(from + count))
            .map(|i| event(ty, i))
            .collect();
        n += batch.len() as u64;
        let (s, v) = gw.post(Value::Array(batch).to_string()).await;
        assert_eq!(s, 200, "{v}");
    }
}

pub async fn competing_consumers(gws: &[&TestGateway], flavor: Flavor) {
    let gw = gws[0];
    let w = Worker::new(gw, "billing");
    let (s, v) = w.put(json!({"topics": ["job.>"], "ack_wait": "60s"})).await;
    assert_eq!(s, 201, "{v}");
    const TOTAL: u64 = 3000;
    let acked: Arc<Mutex<HashMap<u64, usize>>> = Arc::default();
    let mut tasks = Vec::new();
    for worker in 0..3 {
        // Workers spread over the gateways.
        let w = Worker::new(gws[worker % gws.len()], "billing");
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = 0;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while acked.lock().unwrap().len() < TOTAL as usize {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "worker {worker} timed out"
                );
                let ds = w.fetch(100, "500ms").await;
                if ds.is_empty() {
                    continue;
                }
                // Some work, so the others get a turn at the events.
                tokio::time::sleep(Duration::from_millis(5)).await;
                for d in &ds {
                    assert_eq!(d["attempt"], 1, "nothing timed out: {d}");
                    *acked.lock().unwrap().entry(n_of(d)).or_default() += 1;
                }
                let results = w.settle("/ack", &handles(&ds), json!({})).await;
                assert!(results.iter().all(|r| r == "acked"), "{results:?}");
                mine += ds.len();
            }
            mine
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    publish_many(gw, "job.run", 0, TOTAL).await;
    // Events outside the group's topics never reach it.
    publish_many(gw, "other.run", 0, 100).await;
    let mut per_worker = Vec::new();
    for t in tasks {
        per_worker.push(t.await.unwrap());
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), TOTAL as usize);
    assert!(
        acked.values().all(|&k| k == 1),
        "an event was handed out twice"
    );
    assert!((0..TOTAL).all(|n| acked.contains_key(&n)));
    assert!(
        per_worker.iter().all(|&m| m > 0),
        "every worker got some: {per_worker:?}"
    );
    let info = w.info().await;
    assert_eq!(info["pending"], 0, "{info}");
    assert_eq!(info["lag"], 0, "{info}");
    assert_eq!(info["acked"], TOTAL, "{info}");
    if flavor.totals {
        assert_eq!(info["redelivered"], 0, "{info}");
    }
}

pub async fn crashed_worker(a_on: &TestGateway, b_on: &TestGateway, flavor: Flavor) {
    let gw = a_on;
    let a = Worker::new(a_on, "crash");
    let b = Worker::new(b_on, "crash");
    let (s, v) = a
        .put(json!({"topics": ["job.*"], "ack_wait": "1s", "backoff": ["0s"]}))
        .await;
    assert_eq!(s, 201, "{v}");
    publish_many(gw, "job.x", 0, 100).await;
    // A takes 50 and vanishes without a word.
    let lost: HashSet<u64> = a.fetch(50, "5s").await.iter().map(n_of).collect();
    assert_eq!(lost.len(), 50);
    drop(a);
    let mut seen: HashMap<u64, Vec<u64>> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < 100 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} came back",
            seen.len()
        );
        let ds = b.fetch(100, "2s").await;
        for d in &ds {
            seen.entry(n_of(d))
                .or_default()
                .push(d["attempt"].as_u64().unwrap());
        }
        if !ds.is_empty() {
            let results = b.settle("/ack", &handles(&ds), json!({})).await;
            assert!(results.iter().all(|r| r == "acked"), "{results:?}");
        }
    }
    for (n, attempts) in &seen {
        let want = if lost.contains(n) { 2 } else { 1 };
        assert_eq!(attempts, &vec![want], "event {n}");
    }
    // Nothing else repeats.
    assert!(b.fetch(100, "1500ms").await.is_empty());
    let info = b.info().await;
    if flavor.totals {
        assert_eq!(info["redelivered"], 50, "{info}");
    }
    assert_eq!(info["pending"], 0, "{info}");
}

pub async fn poison_and_redrive(fetch_on: &TestGateway, settle_on: &TestGateway, flavor: Flavor) {
    let gw = fetch_on;
    let w = Worker::new(fetch_on, "poison");
    // Settles (and reads dead letters) through the other gateway.
    let s2 = Worker::new(settle_on, "poison");
    let (s, v) = w
        .put(json!({"topics": ["job.>"], "ack_wait": "30s", "max_deliver": 3}))
        .await;
    assert_eq!(s, 201, "{v}");
    let mut monitor = SseClient::connect(gw, "topic=eventwire.groups.poison.dead", None).await;
    monitor.welcome().await;
    let receipt = gw
        .publish(json!({"type": "job.bad", "id": "bad-1", "data": {"n": 1}}))
        .await;
    for attempt in 1..=3 {
        let ds = w.fetch(10, "5s").await;
        assert_eq!(ds.len(), 1);
        assert_eq!(ds[0]["attempt"], attempt);
        assert_eq!(ds[0]["event"]["id"], "bad-1");
        let r = s2
            .settle(
                "/nack",
                &handles(&ds),
                json!({"delay": "0s", "reason": format!("boom {attempt}")}),
            )
            .await;
        assert_eq!(r, vec![if attempt < 3 { "nacked" } else { "dead" }]);
    }
    assert!(
        w.fetch(10, "300ms").await.is_empty(),
        "a dead letter is not handed out"
    );
    let (s, dead) = s2.call(reqwest::Method::GET, "/dead", None).await;
    assert_eq!(s, 200);
    assert_eq!(dead["total"], 1, "{dead}");
    let d = &dead["dead"][0];
    assert_eq!(d["id"], "bad-1");
    assert_eq!(d["seq"], receipt["seq"]);
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["reason"], "boom 3");
    assert_eq!(d["event"]["data"]["n"], 1);
    assert!(d["time"].as_str().unwrap().ends_with('Z'));
    // Monitoring saw it too, as an event.
    let ann = monitor.expect().await;
    assert_eq!(ann.event.as_deref(), Some("eventwire.groups.poison.dead"));
    let ann = ann.json();
    assert_eq!(ann["type"], "eventwire.groups.poison.dead");
    assert_eq!(ann["data"]["id"], "bad-1");
    assert_eq!(ann["data"]["attempts"], 3);
    assert_eq!(ann["data"]["reason"], "boom 3");
    // Redrive one unknown id and the real one.
    let (s, r) = s2
        .post("/dead/redrive", json!({"ids": ["bad-1", "nope"]}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r, json!({"redriven": 1, "unknown": ["nope"]}));
    let ds = w.fetch(10, "5s").await;
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0]["attempt"], 1, "attempts start over");
    assert_eq!(ds[0]["event"]["id"], "bad-1");
    assert_eq!(
        s2.settle("/ack", &handles(&ds), json!({})).await,
        vec!["acked"]
    );
    let info = w.info().await;
    assert_eq!(info["dead"], 0, "{info}");
    assert_eq!(info["pending"], 0, "{info}");
    if flavor.totals {
        assert_eq!(info["dead_total"], 1, "{info}");
        assert_eq!(info["redelivered"], 2);
    }
}
