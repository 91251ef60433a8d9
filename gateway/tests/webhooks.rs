//! Webhooks over real sockets: a real HTTP receiver on loopback (axum),
//! signed deliveries, retries after 500s, timeouts and `Retry-After`,
//! order under `max_inflight: 1`, dead letters and redrive, management
//! (201/200/409, no secret shown, refusals of metadata addresses),
//! `--webhooks FILE`, rights, the webhooks and their pending events kept
//! across a SIGKILL on the disk engine, and one webhook shared by two
//! gateways on a real nats-server. The 2,000-event flaky receiver, verified
//! with the reference `standardwebhooks` npm package, is
//! tests/webhooks/flaky.test.mjs.

mod common;
#[path = "common/nats.rs"]
mod nats_helper;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the receiver answers one request with.
#[derive(Clone, Copy)]
enum Reply {
    Status(u16),
    /// Sleep, then 200: the gateway has given up by then.
    Sleep(Duration),
    /// A status with `Retry-After: secs`.
    RetryAfter(u16, u64),
}

/// One request as the receiver saw it.
#[derive(Clone)]
struct Hit {
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
    reply: u16,
}

impl Hit {
    fn header(&self, name: &str) -> String {
        self.headers[name].to_str().unwrap().to_owned()
    }
    fn id(&self) -> String {
        self.header("webhook-id")
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

type Behaviour = Box<dyn FnMut(&Value, u32) -> Reply + Send>;

struct ReceiverState {
    hits: Mutex<Vec<Hit>>,
    /// Requests seen so far per webhook-id.
    seen: Mutex<HashMap<String, u32>>,
    behaviour: Mutex<Behaviour>,
}

/// A real HTTP server on loopback that records every request.
struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
}

async fn receive(State(s): State<Arc<ReceiverState>>, headers: HeaderMap, body: Bytes) -> Response {
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let nth = {
        let mut seen = s.seen.lock().unwrap();
        let n = seen.entry(id).or_default();
        *n += 1;
        *n
    };
    let reply = (s.behaviour.lock().unwrap())(&event, nth);
    let code = match reply {
        Reply::Status(c) | Reply::RetryAfter(c, _) => c,
        Reply::Sleep(_) => 0,
    };
    s.hits.lock().unwrap().push(Hit {
        headers,
        body,
        at: Instant::now(),
        reply: code,
    });
    match reply {
        Reply::Status(c) => StatusCode::from_u16(c).unwrap().into_response(),
        Reply::RetryAfter(c, secs) => (
            StatusCode::from_u16(c).unwrap(),
            [("retry-after", secs.to_string())],
        )
            .into_response(),
        Reply::Sleep(d) => {
            tokio::time::sleep(d).await;
            StatusCode::OK.into_response()
        }
    }
}

impl Receiver {
    async fn start(behaviour: impl FnMut(&Value, u32) -> Reply + Send + 'static) -> Receiver {
        let state = Arc::new(ReceiverState {
            hits: Mutex::new(Vec::new()),
            seen: Mutex::new(HashMap::new()),
            behaviour: Mutex::new(Box::new(behaviour)),
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().unwrap().clone()
    }

    fn set(&self, behaviour: impl FnMut(&Value, u32) -> Reply + Send + 'static) {
        *self.state.behaviour.lock().unwrap() = Box::new(behaviour);
    }

    /// The `webhook-id` of every request answered 200, repeats included.
    fn acked_ids(&self) -> Vec<String> {
        self.hits()
            .iter()
            .filter(|h| h.reply == 200)
            .map(|h| h.id())
            .collect()
    }

    /// Waits until every id in `ids` has been answered 200, failing after
    /// `within` with how many were.
    async fn wait_acked(&self, ids: &[String], within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let ok: HashSet<String> = self.acked_ids().into_iter().collect();
            if ids.iter().all(|id| ok.contains(id)) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {} events delivered",
                ids.iter().filter(|id| ok.contains(*id)).count(),
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Verifies a request the way a Standard Webhooks receiver does.
fn verify(hit: &Hit) {
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", hit.id(), hit.header("webhook-timestamp")).as_bytes());
    mac.update(&hit.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let sent = hit.header("webhook-signature");
    assert!(
        sent.split(' ').any(|s| s == expected),
        "signature {sent} does not verify (expected {expected})"
    );
    let ts: u64 = hit.header("webhook-timestamp").parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(ts.abs_diff(now) < 300, "timestamp {ts} is not now ({now})");
    assert_eq!(hit.header("content-type"), "application/cloudevents+json");
}

async fn call(
    gw: &TestGateway,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = gw.http.request(method, gw.url(path));
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn put(gw: &TestGateway, name: &str, config: Value) -> (u16, Value) {
    call(
        gw,
        reqwest::Method::PUT,
        &format!("/v1/webhooks/{name}"),
        Some(config),
    )
    .await
}

async fn info(gw: &TestGateway, name: &str) -> Value {
    let (s, v) = call(
        gw,
        reqwest::Method::GET,
        &format!("/v1/webhooks/{name}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v
}

/// Polls the webhook until `done` holds, or fails after `within`.
async fn until(
    gw: &TestGateway,
    name: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let v = info(gw, name).await;
        if done(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn delivers_signed_events_in_order_through_500s_and_timeouts() {
    let gw = start(config()).await;
    // Every third event fails its first attempt with a 500, every fifth
    // sleeps past the timeout on its first attempt.
    let rx = Receiver::start(|e, nth| {
        let n = e["data"]["n"].as_u64().unwrap();
        match nth {
            1 if n % 3 == 0 => Reply::Status(500),
            1 if n % 5 == 0 => Reply::Sleep(Duration::from_millis(1500)),
            _ => Reply::Status(204),
        }
    })
    .await;
    let (s, v) = put(
        &gw,
        "ordered",
        json!({"url": rx.url(), "topics": ["ui.>"], "secret": SECRET, "timeout": "500ms",
               "max_inflight": 1, "retry": {"initial": "20ms", "max": "100ms"}}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    for n in 0..30 {
        gw.publish(event("ui.click", n)).await;
    }
    gw.publish(event("other.topic", 99)).await;
    let v = until(&gw, "ordered", WAIT * 3, |v| v["delivered"] == 30).await;
    assert_eq!(v["pending"], 0, "{v}");
    // 10 events failed with 500 and 4 more (5, 10, 20, 25) timed out once.
    assert_eq!(v["failures"], 14, "{v}");
    assert_eq!(v["attempts"], 44, "{v}");
    let hits = rx.hits();
    assert_eq!(hits.len(), 44);
    let mut ids: HashMap<String, Vec<u32>> = HashMap::new();
    for h in &hits {
        verify(h);
        let attempt: u32 = h.header("eventwire-attempt").parse().unwrap();
        ids.entry(h.id()).or_default().push(attempt);
        assert_eq!(h.json()["type"], "ui.click");
        assert_eq!(h.id(), h.json()["id"], "webhook-id is the event id");
    }
    // The same webhook-id on every attempt, attempts counted up.
    for (id, attempts) in &ids {
        assert!(
            attempts == &[1] || attempts == &[1, 2],
            "{id}: {attempts:?}"
        );
    }
    // Successes in publish order: max_inflight 1 keeps order across retries.
    let ok: Vec<u64> = hits
        .iter()
        .filter(|h| h.reply == 204)
        .map(|h| h.json()["data"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ok, (0..30).collect::<Vec<_>>());
    // At most one request at a time: each starts after the previous failed
    // or answered (a timed-out one's sleep overlaps, which is fine).
    let (_, metrics) = gw.get("/metrics").await;
    assert!(
        metrics.contains("eventwire_webhook_delivered_total{webhook=\"ordered\"} 30"),
        "{metrics}"
    );
    assert!(metrics.contains("eventwire_webhook_failures_total{webhook=\"ordered\"} 14"));
    assert!(metrics.contains("eventwire_webhook_latency_seconds_count{webhook=\"ordered\"} 44"));
    assert!(v["last_failure"]["reason"].as_str().is_some(), "{v}");
}

#[tokio::test]
async fn always_failing_receiver_makes_dead_letters_and_redrive_delivers_them() {
    let gw = start(config()).await;
    let rx = Receiver::start(|_, _| Reply::Status(500)).await;
    let (s, v) = put(
        &gw,
        "down",
        json!({"url": rx.url(), "topics": ["jobs.*"], "secret": SECRET, "max_deliver": 3,
               "retry": {"initial": "10ms", "max": "40ms"}}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            gw.publish(event("jobs.run", n)).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    until(&gw, "down", WAIT, |v| v["dead"] == 5).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 15, "three attempts each, then no more");
    let (s, dead) = call(&gw, reqwest::Method::GET, "/v1/webhooks/down/dead", None).await;
    assert_eq!(s, 200);
    assert_eq!(dead["total"], 5, "{dead}");
    for d in dead["dead"].as_array().unwrap() {
        assert_eq!(d["attempts"], 3);
        assert_eq!(d["reason"], "HTTP 500");
        assert!(ids.contains(&d["id"].as_str().unwrap().to_owned()));
    }
    let (_, metrics) = gw.get("/metrics").await;
    assert!(
        metrics.contains("eventwire_webhook_dead_total{webhook=\"down\"} 5"),
        "{metrics}"
    );
    // The receiver recovers; one dead letter is redriven by id, then the rest.
    rx.set(|_, _| Reply::Status(200));
    let (s, r) = call(
        &gw,
        reqwest::Method::POST,
        "/v1/webhooks/down/dead/redrive",
        Some(json!({"ids": [ids[2], "no-such-id"]})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(r, json!({"redriven": 1, "unknown": ["no-such-id"]}));
    until(&gw, "down", WAIT, |v| v["delivered"] == 1 && v["dead"] == 4).await;
    let (_, r) = call(
        &gw,
        reqwest::Method::POST,
        "/v1/webhooks/down/dead/redrive",
        None,
    )
    .await;
    assert_eq!(r["redriven"], 4);
    let v = until(&gw, "down", WAIT, |v| v["delivered"] == 5).await;
    assert_eq!(v["dead"], 0, "{v}");
    assert_eq!(v["pending"], 0, "{v}");
    let delivered: Vec<String> = rx.hits()[15..].iter().map(|h| h.id()).collect();
    let mut sorted = delivered.clone();
    sorted.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(
        sorted, want,
        "each dead letter delivered once after redrive"
    );
}

#[tokio::test]
async fn retry_after_on_429_and_503_is_honoured() {
    let gw = start(config()).await;
    let rx = Receiver::start(|e, nth| match (e["data"]["n"].as_u64().unwrap(), nth) {
        (0, 1) => Reply::RetryAfter(429, 1),
        (1, 1) => Reply::RetryAfter(503, 1),
        _ => Reply::Status(200),
    })
    .await;
    put(
        &gw,
        "polite",
        json!({"url": rx.url(), "topics": ["p"], "secret": SECRET,
               "retry": {"initial": "10ms", "max": "10ms"}}),
    )
    .await;
    gw.publish(event("p", 0)).await;
    gw.publish(event("p", 1)).await;
    until(&gw, "polite", WAIT, |v| v["delivered"] == 2).await;
    let hits = rx.hits();
    for n in [0, 1] {
        let times: Vec<Instant> = hits
            .iter()
            .filter(|h| h.json()["data"]["n"] == n)
            .map(|h| h.at)
            .collect();
        assert_eq!(times.len(), 2);
        // The schedule alone would retry after 10 ms; Retry-After says 1 s.
        assert!(
            times[1] - times[0] >= Duration::from_millis(950),
            "retried after {:?}",
            times[1] - times[0]
        );
    }
}

#[tokio::test]
async fn managing_webhooks_and_refusing_metadata_targets() {
    let gw = start(config()).await;
    let rx = Receiver::start(|_, _| Reply::Status(200)).await;
    let spec = json!({"url": rx.url(), "topics": ["a.>", "b"], "secret": SECRET, "timeout": "2s"});
    let (s, v) = put(&gw, "crm", spec.clone()).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["config"]["group"], "webhooks.crm");
    assert_eq!(v["config"]["retry"], json!({"initial": "1s", "max": "10m"}));
    assert!(
        !v.to_string().contains("whsec_"),
        "the secret is never shown: {v}"
    );
    // The same meaning, spelt differently: 200. Another secret: 409.
    let (s, _) = put(
        &gw,
        "crm",
        json!({"url": rx.url(), "topics": ["b", "a.>"], "secret": SECRET, "timeout": "2000ms"}),
    )
    .await;
    assert_eq!(s, 200);
    let other = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    );
    let (s, v) = put(
        &gw,
        "crm",
        json!({"url": rx.url(), "topics": ["a.>", "b"], "secret": other}),
    )
    .await;
    assert_eq!(s, 409);
    assert_eq!(v["error"]["code"], "webhook_conflict");
    let (s, list) = call(&gw, reqwest::Method::GET, "/v1/webhooks", None).await;
    assert_eq!(s, 200);
    assert_eq!(list["webhooks"][0]["name"], "crm");
    assert!(!list.to_string().contains("whsec_"));
    // The backing group is a group like any other.
    let (s, g) = call(&gw, reqwest::Method::GET, "/v1/groups/webhooks.crm", None).await;
    assert_eq!(s, 200, "{g}");
    // A group of the same name with another configuration is a conflict.
    let (s, _) = call(
        &gw,
        reqwest::Method::PUT,
        "/v1/groups/webhooks.taken",
        Some(json!({"topics": ["x"]})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, v) = put(&gw, "taken", spec.clone()).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("webhook_conflict")),
        "{v}"
    );

    for (url, code) in [
        ("http://169.254.169.254/latest/meta-data/", "target_refused"),
        ("http://[fe80::1]:8080/hook", "target_refused"),
        ("http://[::ffff:169.254.169.254]/", "target_refused"),
        ("ftp://127.0.0.1/hook", "invalid_webhook"),
        ("http://user:pw@127.0.0.1/hook", "invalid_webhook"),
        ("not a url", "invalid_webhook"),
    ] {
        let (s, v) = put(
            &gw,
            "bad",
            json!({"url": url, "topics": ["a"], "secret": SECRET}),
        )
        .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (400, Some(code)),
            "{url}: {v}"
        );
    }
    let (s, v) = put(
        &gw,
        "meta",
        json!({"url": "http://169.254.169.254/", "topics": ["a"], "secret": SECRET}),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("169.254.169.254"),
        "{v}"
    );
    for (body, code) in [
        (
            json!({"url": rx.url(), "topics": ["a"], "secret": "not-whsec"}),
            "invalid_webhook",
        ),
        (
            json!({"url": rx.url(), "topics": ["a"], "secret": SECRET, "max_inflight": 0}),
            "invalid_webhook",
        ),
        (
            json!({"url": rx.url(), "topics": ["a"], "secret": SECRET, "nope": 1}),
            "invalid_webhook",
        ),
        (
            json!({"url": rx.url(), "topics": ["a..b"], "secret": SECRET}),
            "invalid_pattern",
        ),
    ] {
        let (s, v) = put(&gw, "bad", body.clone()).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (400, Some(code)),
            "{body}: {v}"
        );
    }
    let (s, v) = call(
        &gw,
        reqwest::Method::PUT,
        "/v1/webhooks/bad",
        Some(json!("{")),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = call(&gw, reqwest::Method::GET, "/v1/webhooks/nobody", None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("webhook_not_found"))
    );
    let (s, _) = call(&gw, reqwest::Method::DELETE, "/v1/webhooks/crm", None).await;
    assert_eq!(s, 200);
    let (s, _) = call(&gw, reqwest::Method::GET, "/v1/webhooks/crm", None).await;
    assert_eq!(s, 404);
    let (s, _) = call(&gw, reqwest::Method::GET, "/v1/groups/webhooks.crm", None).await;
    assert_eq!(s, 404, "the group goes with its webhook");
    // Nothing was ever sent to a refused target, and the gateway serves on.
    assert!(rx.hits().is_empty());
    // A webhook whose group is deleted under it makes the group again and
    // goes on sending.
    let (s, _) = put(
        &gw,
        "regrow",
        json!({"url": rx.url(), "topics": ["r"], "secret": SECRET}),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _) = call(
        &gw,
        reqwest::Method::DELETE,
        "/v1/groups/webhooks.regrow",
        None,
    )
    .await;
    assert_eq!(s, 200);
    let deadline = tokio::time::Instant::now() + WAIT;
    while call(
        &gw,
        reqwest::Method::GET,
        "/v1/groups/webhooks.regrow",
        None,
    )
    .await
    .0 != 200
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the group did not come back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.publish(event("r", 1)).await;
    until(&gw, "regrow", WAIT, |v| v["delivered"] == 1).await;
    gw.publish(event("a.b", 1)).await;
}

#[tokio::test]
async fn webhooks_file_declares_webhooks_at_startup() {
    let rx = Receiver::start(|_, _| Reply::Status(200)).await;
    let dir = std::env::temp_dir().join(format!("eventwire-webhooks-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("webhooks.json");
    std::fs::write(
        &file,
        json!({"webhooks": {"declared": {"url": rx.url(), "topics": ["d.*"], "secret": SECRET,
                                        "retry": {"initial": "50ms"}}}})
        .to_string(),
    )
    .unwrap();
    let mut c = config();
    c.webhooks = Some(file.clone());
    let gw = start(c).await;
    gw.publish(event("d.x", 1)).await;
    until(&gw, "declared", WAIT, |v| v["delivered"] == 1).await;
    verify(&rx.hits()[0]);
    // A file with a refused target stops the gateway from starting, saying why.
    std::fs::write(
        &file,
        json!({"webhooks": {"meta": {"url": "http://169.254.169.254/", "topics": ["d"], "secret": SECRET}}})
        .to_string(),
    )
    .unwrap();
    let mut c = config();
    c.webhooks = Some(file);
    let Err(e) = eventwire_gateway::Gateway::new(c).await else {
        panic!("a refused target in --webhooks must stop the start");
    };
    assert!(e.to_string().contains("169.254.169.254"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The real binary on the disk engine, killed with SIGKILL between runs.
struct DiskGateway {
    child: tokio::process::Child,
    base: String,
}

impl DiskGateway {
    async fn start(dir: &std::path::Path, port: u16) -> DiskGateway {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_eventwire-gateway"))
            .args(["--engine", "disk", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let gw = DiskGateway {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = tokio::time::Instant::now() + WAIT * 2;
        while reqwest::get(format!("{}/readyz", gw.base))
            .await
            .map_or(true, |r| r.status() != 200)
        {
            assert!(tokio::time::Instant::now() < deadline, "gateway not ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        gw
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn webhooks_survive_a_sigkill_on_the_disk_engine() {
    let rx = Receiver::start(|_, _| Reply::Status(200)).await;
    let dir = std::env::temp_dir().join(format!("eventwire-webhooks-disk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let spec = json!({"url": rx.url(), "topics": ["k.*"], "secret": SECRET,
                      "retry": {"initial": "50ms", "max": "200ms"}});
    let gw = DiskGateway::start(&dir, port).await;
    let (s, v) = gw
        .call(
            reqwest::Method::PUT,
            "/v1/webhooks/kept",
            Some(spec.clone()),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let kept = dir.join("webhooks.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kept).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the file holds secrets: owner only");
    }
    gw.kill().await;
    let gw = DiskGateway::start(&dir, port).await;
    let (s, v) = gw
        .call(reqwest::Method::GET, "/v1/webhooks/kept", None)
        .await;
    assert_eq!(s, 200, "the webhook is back after SIGKILL: {v}");
    assert_eq!(v["config"]["url"], rx.url());
    // The same PUT confirms it: same configuration, secret included.
    let (s, _) = gw
        .call(reqwest::Method::PUT, "/v1/webhooks/kept", Some(spec))
        .await;
    assert_eq!(s, 200);
    let (s, _) = gw
        .call(
            reqwest::Method::POST,
            "/v1/events",
            Some(event("k.after", 1)),
        )
        .await;
    assert_eq!(s, 200);
    let deadline = tokio::time::Instant::now() + WAIT;
    while rx.hits().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing delivered after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    verify(&rx.hits()[0]);
    // Deleted webhooks stay deleted.
    let (s, _) = gw
        .call(reqwest::Method::DELETE, "/v1/webhooks/kept", None)
        .await;
    assert_eq!(s, 200);
    gw.kill().await;
    let gw = DiskGateway::start(&dir, port).await;
    let (s, _) = gw
        .call(reqwest::Method::GET, "/v1/webhooks/kept", None)
        .await;
    assert_eq!(s, 404);
    gw.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The disk engine's durable group store keeps the webhook's group, and so
/// its pending events, across the crash.
#[tokio::test]
async fn pending_webhook_events_survive_a_sigkill_on_the_disk_engine() {
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = down.clone();
    let rx = Receiver::start(move |_, _| {
        if flag.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::Status(503)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let dir =
        std::env::temp_dir().join(format!("eventwire-webhooks-pending-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let gw = DiskGateway::start(&dir, port).await;
    let (s, v) = gw
        .call(
            reqwest::Method::PUT,
            "/v1/webhooks/pending",
            Some(
                json!({"url": rx.url(), "topics": ["q.*"], "secret": SECRET, "max_deliver": 100,
                        "retry": {"initial": "50ms", "max": "200ms"}}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let mut ids = Vec::new();
    for n in 0..200 {
        let (s, r) = gw
            .call(reqwest::Method::POST, "/v1/events", Some(event("q.job", n)))
            .await;
        assert_eq!(s, 200, "{r}");
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    // Some attempts have failed; then the gateway dies with all 200 pending.
    let deadline = tokio::time::Instant::now() + WAIT;
    while rx.hits().len() < 50 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.kill().await;
    down.store(false, std::sync::atomic::Ordering::SeqCst);
    let gw = DiskGateway::start(&dir, port).await;
    rx.wait_acked(&ids, WAIT * 3).await;
    gw.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn managing_a_webhook_needs_consume_on_its_group_and_subscribe_on_its_topics() {
    use common::tokens::{claims, hs, secured};
    let gw = secured().await;
    let rx = Receiver::start(|_, _| Reply::Status(200)).await;
    let mut c = claims("u1", 300);
    c["eventwire"] = json!({"subscribe": ["orders.>"], "consume": ["webhooks.{sub}.>"]});
    let user = hs(&c);
    let put_as = |name: &str, topics: Value, token: Option<&str>| {
        let mut req = gw
            .http
            .put(gw.url(&format!("/v1/webhooks/{name}")))
            .header("content-type", "application/json")
            .body(json!({"url": rx.url(), "topics": topics, "secret": SECRET}).to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let r = req.send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap())
        }
    };
    let (s, v) = put_as("u1.crm", json!(["orders.>"]), Some(&user)).await;
    assert_eq!(s, 201, "{v}");
    // Another name than the token's consume pattern allows.
    let (s, v) = put_as("u2.crm", json!(["orders.>"]), Some(&user)).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    // Topics the token may not read: the webhook would read them for it.
    let (s, v) = put_as("u1.all", json!(["payments.>"]), Some(&user)).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    // Anonymous clients may manage no webhook; the API key may do all.
    let (s, _) = put_as("u1.anon", json!(["orders.>"]), None).await;
    assert_eq!(s, 401);
    let (s, _) = put_as("svc", json!([">"]), Some("svc-key")).await;
    assert_eq!(s, 201);
    // The list shows what the caller may manage.
    let list: Value = gw
        .http
        .get(gw.url("/v1/webhooks"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["u1.crm"]);
    let r = gw
        .http
        .delete(gw.url("/v1/webhooks/svc"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// On NATS a webhook's group is a JetStream consumer every gateway shares:
/// the same webhook declared on two gateways sends each event once overall,
/// whichever gateway it was published on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_nats_two_gateways_declaring_one_webhook_send_each_event_once() {
    let nats = nats_helper::NatsServer::start().await;
    let rx = Receiver::start(|e, nth| {
        // Some first attempts fail, so retries cross gateways too.
        if nth == 1 && e["data"]["n"].as_u64().unwrap() % 4 == 0 {
            Reply::Status(500)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let g1 = start(nats_helper::gateway_config(&nats.url(), "WHNATS")).await;
    let g2 = start(nats_helper::gateway_config(&nats.url(), "WHNATS")).await;
    let spec = json!({"url": rx.url(), "topics": ["w.>"], "secret": SECRET,
                      "retry": {"initial": "50ms", "max": "200ms"}});
    let (s, v) = put(&g1, "shared", spec.clone()).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = put(&g2, "shared", spec).await;
    assert!(s == 201 || s == 200, "{s} {v}");
    let mut ids = Vec::new();
    for n in 0..100 {
        let gw = if n % 2 == 0 { &g1 } else { &g2 };
        ids.push(
            gw.publish(event("w.e", n)).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    rx.wait_acked(&ids, WAIT * 3).await;
    // A moment for a stray second copy to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ok = rx.acked_ids();
    assert_eq!(ok.len(), 100, "each event acknowledged once overall");
    ok.sort();
    ok.dedup();
    assert_eq!(ok.len(), 100);
    for h in rx.hits() {
        verify(&h);
    }
}
