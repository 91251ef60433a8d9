//! Consumer groups on NATS: durable JetStream pull consumers shared by
//! gateways on one stream, through the same conformance scenarios as the
//! gateway's own groups (tests/common/groups.rs), each fetching on one
//! gateway and settling on the other; plus a gateway that dies with
//! deliveries out, and the NATS-specific bad input.

mod common;
#[path = "common/groups.rs"]
mod groups_suite;
#[path = "common/nats.rs"]
mod nats_helper;

use common::*;
use groups_suite::{Flavor, Worker, handles, n_of, publish_many};
use nats_helper::{NatsServer, gateway_config};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

const NATS: Flavor = Flavor { totals: false };

async fn two_gateways(stream: &str) -> (NatsServer, TestGateway, TestGateway) {
    let nats = NatsServer::start().await;
    let g1 = start(gateway_config(&nats.url(), stream)).await;
    let g2 = start(gateway_config(&nats.url(), stream)).await;
    (nats, g1, g2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_consumers_on_two_gateways_ack_each_event_exactly_once() {
    let (_nats, g1, g2) = two_gateways("GCOMP").await;
    groups_suite::competing_consumers(&[&g1, &g2], NATS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_workers_events_go_to_a_worker_on_the_other_gateway() {
    let (_nats, g1, g2) = two_gateways("GCRASH").await;
    groups_suite::crashed_worker(&g1, &g2, NATS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_on_one_gateway_settled_on_the_other_poison_dead_letter_redrive() {
    let (_nats, g1, g2) = two_gateways("GPOISON").await;
    groups_suite::poison_and_redrive(&g1, &g2, NATS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_with_deliveries_out_loses_nothing() {
    let (_nats, g1, g2) = two_gateways("GKILL").await;
    let w1 = Worker::new(&g1, "kill");
    let (s, v) = w1.put(json!({"topics": ["job.>"], "ack_wait": "1s"})).await;
    assert_eq!(s, 201, "{v}");
    publish_many(&g2, "job.k", 0, 40).await;
    let out: HashSet<u64> = w1.fetch(20, "5s").await.iter().map(n_of).collect();
    assert_eq!(out.len(), 20);
    // The gateway goes away with those 20 out and not acked.
    g1.shutdown.cancel();
    g1.task.abort();
    drop(w1);
    drop(g1);
    let w2 = Worker::new(&g2, "kill");
    let mut got = std::collections::HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < 40 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} came back",
            got.len()
        );
        let ds = w2.fetch(100, "2s").await;
        for d in &ds {
            assert!(
                got.insert(n_of(d), d["attempt"].as_u64().unwrap())
                    .is_none(),
                "{d} twice"
            );
        }
        if !ds.is_empty() {
            let r = w2.settle("/ack", &handles(&ds), json!({})).await;
            assert!(r.iter().all(|r| r == "acked"), "{r:?}");
        }
    }
    for (n, attempt) in &got {
        assert_eq!(*attempt, if out.contains(n) { 2 } else { 1 }, "event {n}");
    }
    let info = w2.info().await;
    assert_eq!(
        (info["pending"].as_u64(), info["lag"].as_u64()),
        (Some(0), Some(0)),
        "{info}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managing_and_bad_input_on_nats() {
    let (_nats, g1, g2) = two_gateways("GBAD").await;
    let w1 = Worker::new(&g1, "shop.orders");
    let w2 = Worker::new(&g2, "shop.orders");
    let spec =
        json!({"topics": ["shop.>"], "ack_wait": "30s", "max_deliver": 4, "start": "earliest"});
    let (s, v) = w1.put(spec.clone()).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["config"]["max_deliver"], 4);
    // The same config on the other gateway: it is one group.
    let (s, v) = w2.put(spec.clone()).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = w2
        .put(json!({"topics": ["shop.>"], "max_deliver": 2}))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("group_conflict")),
        "{v}"
    );
    // Several patterns: one JetStream filter subject per group here.
    let (s, v) = Worker::new(&g1, "multi")
        .put(json!({"topics": ["a.>", "b.>"]}))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_group")),
        "{v}"
    );
    // A start position from another engine.
    let (s, v) = Worker::new(&g1, "foreign")
        .put(json!({"topics": ["a.>"], "start": "m1-5"}))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_position")),
        "{v}"
    );
    // Listed on both gateways.
    for gw in [&g1, &g2] {
        let r = gw.http.get(gw.url("/v1/groups")).send().await.unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        let names: Vec<_> = v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].clone())
            .collect();
        assert_eq!(names, vec![json!("shop.orders")], "{v}");
    }
    publish_many(&g1, "shop.buy", 0, 5).await;
    let info = w2.info().await;
    assert_eq!(info["lag"], 5, "{info}");
    let ds = w1.fetch(5, "5s").await;
    assert_eq!(ds.len(), 5);
    let mut hs = handles(&ds);
    // Garbage, a handle of another group, a duplicate: each reported.
    hs.push("g1234.5".into());
    hs.push(hs[0].clone());
    let r = w2.settle("/ack", &hs, json!({})).await;
    assert_eq!(&r[..5], ["acked"; 5]);
    assert_eq!(&r[5..], ["unknown", "expired"]);
    // Acked already: below the consumer's ack floor, so spent.
    let again = w1.settle("/ack", &hs[..5], json!({})).await;
    assert_eq!(again, ["expired"; 5]);
    let (s, v) = w2.post("/fetch", json!({"max": 5000})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "{v}"
    );
    let (s, v) = w2
        .call(reqwest::Method::POST, "/ack", Some("{nope".into()))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_json")),
        "{v}"
    );
    let info = w1.info().await;
    assert_eq!(
        (info["pending"].as_u64(), info["lag"].as_u64()),
        (Some(0), Some(0)),
        "{info}"
    );
    // Deleted on one gateway: gone on the other.
    let (s, _) = w2.call(reqwest::Method::DELETE, "", None).await;
    assert_eq!(s, 200);
    let (s, v) = w1.post("/fetch", json!({})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("group_not_found")),
        "{v}"
    );
    let (s, v) = Worker::new(&g1, "never").post("/fetch", json!({})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("group_not_found")),
        "{v}"
    );
}
