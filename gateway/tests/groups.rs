//! Consumer groups over real sockets: competing workers, a crashed worker,
//! poison events and dead letters, order, long polls, rights, bad input,
//! and a second gateway rebuilt from the first one's group store.

mod common;
#[path = "common/groups.rs"]
mod groups_suite;

use common::*;
use eventwire_gateway::Gateway;
use eventwire_gateway::engine::{Engine, MemoryEngine};
use eventwire_gateway::groups::{GroupStore, MemoryGroupStore};
use groups_suite::{Flavor, Worker, handles, n_of, publish_many};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

const LOCAL: Flavor = Flavor { totals: true };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_consumers_ack_each_event_exactly_once() {
    let gw = start(config()).await;
    groups_suite::competing_consumers(&[&gw], LOCAL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_workers_events_go_to_another_as_attempt_two() {
    let gw = start(config()).await;
    groups_suite::crashed_worker(&gw, &gw, LOCAL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_becomes_a_dead_letter_and_redrive_hands_it_out_again() {
    let gw = start(config()).await;
    groups_suite::poison_and_redrive(&gw, &gw, LOCAL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_back_off_and_end_in_dead_letters_without_a_worker() {
    let gw = start(config()).await;
    let w = Worker::new(&gw, "slow");
    let (s, v) = w
        .put(json!({"topics": ["t"], "ack_wait": "500ms", "max_deliver": 2, "backoff": ["2s"]}))
        .await;
    assert_eq!(s, 201, "{v}");
    gw.publish(event("t", 1)).await;
    let first = w.fetch(1, "5s").await;
    assert_eq!(first.len(), 1);
    // Inside ack_wait + backoff nobody gets it again.
    assert!(w.fetch(1, "1s").await.is_empty());
    let second = w.fetch(1, "10s").await;
    assert_eq!(second[0]["attempt"], 2);
    // The first handle was superseded; extend keeps the second alive.
    assert_eq!(
        w.settle("/ack", &handles(&first), json!({})).await,
        vec!["expired"]
    );
    assert_eq!(
        w.settle("/extend", &handles(&second), json!({})).await,
        vec!["extended"]
    );
    // Nobody fetches now: the gateway still times the last attempt out.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let info = w.info().await;
        if info["dead"] == 1 {
            assert_eq!(info["pending"], 0);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{info}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, dead) = w.call(reqwest::Method::GET, "/dead", None).await;
    assert_eq!(dead["dead"][0]["reason"], "not acked within ack_wait");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_inflight_one_keeps_strict_order() {
    let gw = start(config()).await;
    let w = Worker::new(&gw, "ordered");
    let (s, v) = w
        .put(json!({"topics": ["o"], "max_inflight": 1, "start": "earliest"}))
        .await;
    assert_eq!(s, 201, "{v}");
    publish_many(&gw, "o", 0, 5).await;
    let mut got = Vec::new();
    let mut nacked_once = false;
    while got.len() < 5 {
        let ds = w.fetch(10, "5s").await;
        assert_eq!(ds.len(), 1, "one at a time");
        let n = n_of(&ds[0]);
        if n == 2 && !nacked_once {
            nacked_once = true;
            assert_eq!(
                w.settle("/nack", &handles(&ds), json!({"delay": "100ms"}))
                    .await,
                vec!["nacked"]
            );
            continue;
        }
        got.push(n);
        w.settle("/ack", &handles(&ds), json!({})).await;
    }
    assert_eq!(
        got,
        vec![0, 1, 2, 3, 4],
        "a retry does not let later events pass"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_answers_when_an_event_arrives() {
    let gw = start(config()).await;
    let w = Worker::new(&gw, "poll");
    w.put(json!({"topics": ["p.>"]})).await;
    let waiting = {
        let w = w.clone();
        tokio::spawn(async move { w.fetch(10, "60s").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "nothing to hand out yet");
    gw.publish(event("p.q", 7)).await;
    let ds = tokio::time::timeout(WAIT * 3, waiting)
        .await
        .expect("the fetch answers once an event is ready")
        .unwrap();
    assert_eq!(ds.len(), 1);
    assert_eq!(n_of(&ds[0]), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managing_groups() {
    let gw = start(config()).await;
    publish_many(&gw, "m.a", 0, 3).await;
    let w = Worker::new(&gw, "mgmt");
    let cfg = json!({"topics": ["m.*"], "ack_wait": "30s", "max_deliver": 5, "start": "new"});
    assert_eq!(w.put(cfg.clone()).await.0, 201);
    let (s, v) = w
        .put(json!({"topics": ["m.*"], "ack_wait": "30000ms", "max_deliver": 5}))
        .await;
    assert_eq!(s, 200, "the same config, spelt differently: {v}");
    assert_eq!(v["config"]["ack_wait"], "30s");
    let (s, v) = w.put(json!({"topics": ["m.*"], "ack_wait": "10s"})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("group_conflict"))
    );
    // "new": the three published before are not the group's.
    assert!(w.fetch(10, "0s").await.is_empty());
    publish_many(&gw, "m.a", 3, 2).await;
    let info = w.info().await;
    assert_eq!(info["lag"], 2, "{info}");
    let ds = w.fetch(10, "5s").await;
    assert_eq!(ds.iter().map(n_of).collect::<Vec<_>>(), vec![3, 4]);
    let info = w.info().await;
    assert_eq!(
        (info["lag"].as_u64(), info["pending"].as_u64()),
        (Some(0), Some(2))
    );
    // "earliest" starts at the oldest retained event.
    let e = Worker::new(&gw, "from-start");
    assert_eq!(
        e.put(json!({"topics": ["m.*"], "start": "earliest"}))
            .await
            .0,
        201
    );
    assert_eq!(e.info().await["lag"], 5);
    let (s, list) = gw.get("/v1/groups").await;
    assert_eq!(s, 200);
    let list: Value = serde_json::from_str(&list).unwrap();
    let names: Vec<&str> = list["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["from-start", "mgmt"]);
    let (_, metrics) = gw.get("/metrics").await;
    assert!(
        metrics.contains("eventwire_group_pending{group=\"mgmt\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("eventwire_group_lag{group=\"from-start\"} 5"),
        "{metrics}"
    );
    // Delete: gone for its waiting fetches and for everyone after.
    let waiting = {
        let w = w.clone();
        tokio::spawn(async move { w.post("/fetch", json!({"max": 1, "wait": "30s"})).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (s, _) = w.call(reqwest::Method::DELETE, "", None).await;
    assert_eq!(s, 200);
    let (s, v) = waiting.await.unwrap();
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("group_not_found"))
    );
    let (s, v) = w.call(reqwest::Method::GET, "", None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("group_not_found"))
    );
    // A start position that this engine never issued is refused.
    let x = Worker::new(&gw, "x");
    let (s, v) = x.put(json!({"topics": ["m.*"], "start": "zz-5"})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_position")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_its_documented_error_and_nothing_is_lost() {
    let gw = start(config()).await;
    let w = Worker::new(&gw, "strict");
    let code = |r: (u16, Value)| (r.0, r.1["error"]["code"].as_str().unwrap_or("").to_owned());
    let ghost = Worker::new(&gw, "ghost");
    assert_eq!(
        code(ghost.post("/fetch", json!({})).await),
        (404, "group_not_found".into())
    );
    assert_eq!(
        code(ghost.post("/ack", json!({"handles": ["x"]})).await),
        (404, "group_not_found".into())
    );
    assert_eq!(
        code(ghost.call(reqwest::Method::GET, "/dead", None).await),
        (404, "group_not_found".into())
    );
    for bad in [
        json!({"topics": []}),
        json!({"topics": ["a"], "ack_wait": "soon"}),
        json!({"topics": ["a"], "ack_wait": "1ms"}),
        json!({"topics": ["a"], "max_deliver": 0}),
        json!({"topics": ["a"], "max_inflight": 100000}),
        json!({"topics": ["a"], "backoff": ["1 fortnight"]}),
        json!({"topics": ["a"], "retries": 3}),
        json!({"topics": "a"}),
    ] {
        assert_eq!(
            code(w.put(bad.clone()).await),
            (400, "invalid_group".into()),
            "{bad}"
        );
    }
    assert_eq!(
        code(w.put(json!({"topics": ["a..b"]})).await),
        (400, "invalid_pattern".into())
    );
    let bad_name = Worker::new(&gw, "no%20spaces");
    assert_eq!(
        code(bad_name.put(json!({"topics": ["a"]})).await),
        (400, "invalid_group".into())
    );
    let (s, v) = w
        .call(reqwest::Method::PUT, "", Some("{\"topics\": [".into()))
        .await;
    assert_eq!(code((s, v)), (400, "invalid_json".into()));
    assert_eq!(
        w.put(json!({"topics": ["s.>"], "start": "earliest"}))
            .await
            .0,
        201
    );
    gw.publish(event("s.a", 1)).await;
    assert_eq!(
        code(w.post("/fetch", json!({"max": 1001})).await),
        (400, "bad_request".into())
    );
    assert_eq!(
        code(w.post("/fetch", json!({"max": 0})).await),
        (400, "bad_request".into())
    );
    assert_eq!(
        code(w.post("/fetch", json!({"wait": "3h"})).await),
        (400, "bad_request".into())
    );
    assert_eq!(
        code(w.post("/fetch", json!({"mux": 1})).await),
        (400, "bad_request".into())
    );
    let (s, v) = w
        .call(reqwest::Method::POST, "/fetch", Some("max=1".into()))
        .await;
    assert_eq!(code((s, v)), (400, "invalid_json".into()));
    let (s, v) = w
        .call(reqwest::Method::POST, "/ack", Some("[".into()))
        .await;
    assert_eq!(code((s, v)), (400, "invalid_json".into()));
    assert_eq!(
        code(w.post("/ack", json!({"handles": []})).await),
        (400, "bad_request".into())
    );
    assert_eq!(
        code(w.post("/ack", json!({"handles": [1, 2]})).await),
        (400, "bad_request".into())
    );
    let many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    assert_eq!(
        code(w.post("/ack", json!({"handles": many})).await),
        (400, "bad_request".into())
    );
    assert_eq!(
        code(
            w.post("/ack", json!({"handles": ["a"], "delay": "1s"}))
                .await
        ),
        (400, "bad_request".into())
    );
    assert_eq!(
        code(
            w.post("/nack", json!({"handles": ["a"], "delay": "often"}))
                .await
        ),
        (400, "bad_request".into())
    );
    assert_eq!(
        code(w.call(reqwest::Method::GET, "/dead?limit=0", None).await),
        (400, "bad_request".into())
    );
    assert_eq!(
        code(w.call(reqwest::Method::PATCH, "", None).await),
        (405, "method_not_allowed".into())
    );
    // Nothing was lost: the event is still there, and garbage handles are
    // answered per handle next to a real one.
    let ds = w.fetch(10, "5s").await;
    assert_eq!(ds.len(), 1);
    let real = handles(&ds)[0].clone();
    let (prefix, _) = real.rsplit_once('.').unwrap();
    let garbage = vec![
        "garbage".to_owned(),
        String::new(),
        format!("{prefix}.99999"),
        format!("{prefix}.1x"),
        "\u{0}\n".to_owned(),
        real.clone(),
        real.clone(),
    ];
    assert_eq!(
        w.settle("/ack", &garbage, json!({})).await,
        vec![
            "unknown", "unknown", "unknown", "unknown", "unknown", "acked", "expired"
        ]
    );
    assert_eq!(w.settle("/nack", &[real], json!({})).await, vec!["expired"]);
    assert_eq!(w.info().await["acked"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_rights_come_from_the_token_and_creating_needs_subscribe_rights() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes";
    let mut cfg = config();
    cfg.auth.jwt_secret = Some(SECRET.into());
    cfg.auth.api_keys = vec!["svc-key".into()];
    let gw = start(cfg).await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "u1", "exp": exp, "eventwire": {
            "subscribe": ["orders.>"], "consume": ["jobs.{sub}"]
        }}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let as_user = |group: &str| Worker {
        token: Some(token.clone()),
        ..Worker::new(&gw, group)
    };
    let code = |r: (u16, Value)| (r.0, r.1["error"]["code"].as_str().unwrap_or("").to_owned());
    assert_eq!(
        as_user("jobs.u1")
            .put(json!({"topics": ["orders.>"]}))
            .await
            .0,
        201
    );
    assert_eq!(
        code(
            as_user("jobs.u2")
                .put(json!({"topics": ["orders.>"]}))
                .await
        ),
        (403, "forbidden".into())
    );
    assert_eq!(
        code(
            as_user("jobs.u1")
                .put(json!({"topics": ["secrets.>"]}))
                .await
        ),
        (403, "forbidden".into()),
        "creating needs subscribe rights on the topics"
    );
    let svc = Worker {
        token: Some("svc-key".into()),
        ..Worker::new(&gw, "jobs.u2")
    };
    assert_eq!(
        svc.put(json!({"topics": [">"]})).await.0,
        201,
        "API keys may do anything"
    );
    assert_eq!(
        code(as_user("jobs.u2").post("/fetch", json!({})).await),
        (403, "forbidden".into())
    );
    assert_eq!(
        code(Worker::new(&gw, "jobs.u1").post("/fetch", json!({})).await),
        (401, "unauthorized".into())
    );
    assert_eq!(as_user("jobs.u1").fetch(1, "0s").await.len(), 0);
    let r = gw
        .http
        .get(gw.url("/v1/groups"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let list: Value = r.json().await.unwrap();
    assert_eq!(
        list["groups"].as_array().unwrap().len(),
        1,
        "only the groups it may work in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_rebuilt_from_the_group_store_carries_on() {
    let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new(Default::default()));
    let store = Arc::new(MemoryGroupStore::new());
    let boot = |engine: Arc<dyn Engine>, store: Arc<MemoryGroupStore>| async move {
        let cfg = config();
        let listener = tokio::net::TcpListener::bind(cfg.listen).await.unwrap();
        let gateway = Gateway::with_stores(cfg, engine, store as Arc<dyn GroupStore>)
            .await
            .unwrap();
        serve(gateway, listener)
    };
    let gw1 = boot(engine.clone(), store.clone()).await;
    let w1 = Worker::new(&gw1, "durable");
    w1.put(json!({"topics": ["d"], "ack_wait": "1s", "backoff": ["0s"]}))
        .await;
    publish_many(&gw1, "d", 0, 20).await;
    let ds = w1.fetch(10, "5s").await;
    assert_eq!(ds.len(), 10);
    let hs = handles(&ds);
    w1.settle("/ack", &hs[..5], json!({})).await;
    w1.settle(
        "/nack",
        &hs[5..6],
        json!({"delay": "0s", "reason": "later"}),
    )
    .await;
    // Stop the first gateway and let go of it, groups and all.
    drop(w1);
    let TestGateway {
        shutdown,
        task,
        shared,
        ..
    } = gw1;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    drop(shared);

    let gw2 = boot(engine, store).await;
    let w2 = Worker::new(&gw2, "durable");
    let info = w2.info().await;
    assert_eq!(
        (info["pending"].as_u64(), info["acked"].as_u64()),
        (Some(5), Some(5)),
        "{info}"
    );
    assert_eq!(info["lag"], 10);
    // Handles issued before carry over: acked ones are expired, live ones ack.
    assert_eq!(
        w2.settle("/ack", &hs[..1], json!({})).await,
        vec!["expired"]
    );
    assert_eq!(w2.settle("/ack", &hs[6..7], json!({})).await, vec!["acked"]);
    let mut seen = HashMap::new();
    let deadline = tokio::time::Instant::now() + WAIT * 3;
    while seen.len() < 14 {
        assert!(tokio::time::Instant::now() < deadline, "{seen:?}");
        let ds = w2.fetch(20, "2s").await;
        for d in &ds {
            assert!(
                seen.insert(n_of(d), d["attempt"].as_u64().unwrap())
                    .is_none()
            );
        }
        w2.settle("/ack", &handles(&ds), json!({})).await;
    }
    let acked_before: HashSet<u64> = (0..5).chain([6]).collect();
    assert!(
        seen.keys().all(|n| !acked_before.contains(n)),
        "acked events do not come back"
    );
    assert_eq!(seen[&5], 2, "the nacked one");
    for n in 7..10 {
        assert_eq!(seen[&n], 2, "pending across the rebuild, timed out");
    }
    for n in 10..20 {
        assert_eq!(seen[&n], 1);
    }
}

/// The same conformance scenarios on the disk engine, whose groups keep
/// their state in the engine's database (tests/groups_disk.rs covers its
/// restarts).
mod on_disk {
    use super::*;

    fn disk_config(tag: &str) -> eventwire_gateway::Config {
        let mut c = config();
        c.engine.kind = eventwire_gateway::engine::EngineKind::Disk;
        c.engine.data_dir = common::binary::temp_dir(&format!("groups-suite-{tag}"));
        c
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn competing_consumers_ack_each_event_exactly_once() {
        let gw = start(disk_config("competing")).await;
        groups_suite::competing_consumers(&[&gw], LOCAL).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crashed_workers_events_go_to_another_as_attempt_two() {
        let gw = start(disk_config("crash")).await;
        groups_suite::crashed_worker(&gw, &gw, LOCAL).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_poison_event_becomes_a_dead_letter_and_redrive_hands_it_out_again() {
        let gw = start(disk_config("poison")).await;
        groups_suite::poison_and_redrive(&gw, &gw, LOCAL).await;
    }
}
