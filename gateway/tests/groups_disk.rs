//! Consumer groups on the disk engine, on the real binary and real files: a
//! group's cursor, pending deliveries and dead letters survive a SIGKILL
//! and a graceful restart; what was acked before the crash stays acked.
//! (The conformance scenarios run on disk in groups.rs.)

mod common;

use common::binary::{Gw, WAIT, temp_dir};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

impl Gw {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Fetches once: (event n → handle, attempt) for each delivery.
    async fn fetch(&self, group: &str, max: usize, wait: &str) -> BTreeMap<u64, (String, u64)> {
        let got = self
            .post(
                &format!("/v1/groups/{group}/fetch"),
                json!({"max": max, "wait": wait}),
            )
            .await;
        let mut out = BTreeMap::new();
        for d in got["deliveries"].as_array().unwrap() {
            let n = d["event"]["data"]["n"].as_u64().unwrap();
            let h = d["handle"].as_str().unwrap().to_owned();
            assert!(
                out.insert(n, (h, d["attempt"].as_u64().unwrap())).is_none(),
                "event {n} twice in one fetch"
            );
        }
        out
    }

    /// Acks `handles`; every one must be acked.
    async fn ack(&self, group: &str, handles: Vec<String>) {
        for chunk in handles.chunks(100) {
            let r = self
                .post(
                    &format!("/v1/groups/{group}/ack"),
                    json!({ "handles": chunk }),
                )
                .await;
            for res in r["results"].as_array().unwrap() {
                assert_eq!(res["result"], "acked", "{res}");
            }
        }
    }

    /// Fetches until `want` distinct events arrived (or WAIT passes).
    async fn fetch_all(&self, group: &str, want: usize) -> BTreeMap<u64, (String, u64)> {
        let mut got = BTreeMap::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        while got.len() < want && tokio::time::Instant::now() < deadline {
            for (n, d) in self.fetch(group, 100, "2s").await {
                assert!(got.insert(n, d).is_none(), "event {n} delivered twice");
            }
        }
        got
    }

    async fn publish_jobs(&self, from: u64, to: u64) {
        let batch: Vec<Value> = (from..to)
            .map(|n| json!({"type": "job.run", "id": format!("job-{n}"), "data": {"n": n}}))
            .collect();
        for chunk in batch.chunks(100) {
            let r = self
                .http
                .post(self.url("/v1/events"))
                .json(&chunk)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    }
}

const JOBS: &str = r#"{"topics":["job.>"],"ack_wait":"5s","max_deliver":5,"start":"earliest","backoff":["100ms"]}"#;
const POISON: &str = r#"{"topics":["bad.>"],"max_deliver":1,"start":"earliest"}"#;

fn counts(g: &Value) -> (u64, u64, u64) {
    (
        g["pending"].as_u64().unwrap(),
        g["lag"].as_u64().unwrap(),
        g["dead"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_state_survives_sigkill_and_graceful_restarts() {
    let dir = temp_dir("groups");
    let gw = Gw::start(&dir, &[]).await;
    let put = |name: &'static str, spec: &'static str| {
        let (http, url) = (gw.http.clone(), gw.url(&format!("/v1/groups/{name}")));
        async move {
            let r = http
                .put(url)
                .header("content-type", "application/json")
                .body(spec)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    assert_eq!(put("jobs", JOBS).await, 201);
    assert_eq!(put("poison", POISON).await, 201);
    gw.publish_jobs(0, 300).await;

    // A dead letter: one attempt allowed, nacked.
    gw.publish(&json!({"type": "bad.input", "id": "bad-1", "data": {"n": 0}}))
        .await
        .unwrap();
    let bad = gw.fetch("poison", 1, "5s").await;
    let (_, (handle, _)) = bad.into_iter().next().expect("the poison event");
    let r = gw
        .post(
            "/v1/groups/poison/nack",
            json!({"handles": [handle], "reason": "cannot parse"}),
        )
        .await;
    assert_eq!(r["results"][0]["result"], "dead");

    // 300 handed out, the first 100 acked: 200 pending at the kill.
    let out = gw.fetch_all("jobs", 300).await;
    assert_eq!(out.len(), 300);
    assert!(out.values().all(|(_, attempt)| *attempt == 1));
    let acked: BTreeSet<u64> = (0..100).collect();
    gw.ack("jobs", acked.iter().map(|n| out[n].0.clone()).collect())
        .await;
    let g = gw.get("/v1/groups/jobs").await;
    assert_eq!(counts(&g), (200, 0, 0), "{g}");
    gw.kill().await;

    // After the SIGKILL: the group, its cursor and its 200 pending events
    // are there; the 100 acked ones never come back.
    let gw = Gw::start(&dir, &[]).await;
    let g = gw.get("/v1/groups/jobs").await;
    assert_eq!(counts(&g), (200, 0, 0), "after SIGKILL: {g}");
    assert_eq!(g["delivered"], 300, "{g}");
    let again = gw.fetch_all("jobs", 200).await;
    let pending: BTreeSet<u64> = (100..300).collect();
    assert_eq!(again.keys().copied().collect::<BTreeSet<_>>(), pending);
    assert!(again.values().all(|(_, attempt)| *attempt >= 2));
    // Nothing else is due: not the acked, not a second copy.
    assert!(gw.fetch("jobs", 100, "1s").await.is_empty());
    let dead = gw.get("/v1/groups/poison/dead").await;
    assert_eq!(dead["total"], 1, "{dead}");
    assert_eq!(dead["dead"][0]["id"], "bad-1");
    assert_eq!(dead["dead"][0]["reason"], "cannot parse");
    assert_eq!(dead["dead"][0]["event"]["data"]["n"], 0);

    // The handles handed out before a restart still ack after it.
    gw.ack("jobs", again.values().map(|(h, _)| h.clone()).collect())
        .await;
    // New events after the restart: 50 pending at a graceful stop.
    gw.publish_jobs(300, 400).await;
    let fresh = gw.fetch_all("jobs", 100).await;
    assert_eq!(
        fresh.keys().copied().collect::<BTreeSet<_>>(),
        (300..400).collect()
    );
    gw.ack(
        "jobs",
        fresh.range(300..350).map(|(_, (h, _))| h.clone()).collect(),
    )
    .await;
    gw.stop().await;

    let gw = Gw::start(&dir, &[]).await;
    let g = gw.get("/v1/groups/jobs").await;
    assert_eq!(counts(&g), (50, 0, 0), "after a graceful restart: {g}");
    let back = gw.fetch_all("jobs", 50).await;
    assert_eq!(
        back.keys().copied().collect::<BTreeSet<_>>(),
        (350..400).collect()
    );
    // The old handles of the events handed out again are void now.
    let r = gw
        .post(
            "/v1/groups/jobs/ack",
            json!({"handles": [fresh[&350].0.clone()]}),
        )
        .await;
    assert_eq!(r["results"][0]["result"], "expired");
    gw.ack("jobs", back.values().map(|(h, _)| h.clone()).collect())
        .await;
    // Redriving the dead letter after two restarts hands it out again.
    let r = gw.post("/v1/groups/poison/dead/redrive", json!({})).await;
    assert_eq!(r["redriven"], 1);
    let bad = gw.fetch("poison", 1, "5s").await;
    assert_eq!(bad.keys().copied().collect::<Vec<_>>(), [0]);
    gw.kill().await;

    // A deleted group stays deleted.
    let gw = Gw::start(&dir, &[]).await;
    let g = gw.get("/v1/groups/jobs").await;
    assert_eq!(counts(&g), (0, 0, 0), "{g}");
    let r = gw
        .http
        .delete(gw.url("/v1/groups/poison"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    gw.kill().await;
    let gw = Gw::start(&dir, &[]).await;
    let list = gw.get("/v1/groups").await;
    assert_eq!(list["groups"].as_array().unwrap().len(), 1, "{list}");
    let r = gw
        .http
        .get(gw.url("/v1/groups/poison"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
