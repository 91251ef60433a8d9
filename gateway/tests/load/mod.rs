//! The hostile-load scenarios and what they need: the real gateway binary
//! in a child process (configured through `EVENTWIRE_*` variables, so a
//! binary that predates a setting still runs), samplers of its RSS and open
//! sockets from /proc, and a `/healthz` prober on fresh connections.

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

/// Generous: this machine's two cores are shared.
pub const WAIT: Duration = Duration::from_secs(10);

/// Scenarios run one at a time: each measures a process's RSS and sockets,
/// and two floods at once on two cores would measure each other.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Gateway {
    child: Child,
    pub base: String,
    pub pid: u32,
}

impl Gateway {
    /// This build's gateway binary, or `EVENTWIRE_HOSTILE_BIN` (to check
    /// that a scenario fails on an older gateway, or to measure a release
    /// build).
    pub fn binary() -> String {
        std::env::var("EVENTWIRE_HOSTILE_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_eventwire-gateway").to_owned())
    }

    /// Starts `bin` on a free loopback port with `env` set, optionally with
    /// at most `nofile` file descriptors, and waits until it is ready.
    pub async fn spawn(bin: &str, env: &[(&str, &str)], nofile: Option<u64>) -> Gateway {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = format!("127.0.0.1:{port}");
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\""), bin]);
                c
            }
            None => Command::new(bin),
        };
        // The memory engine: the scenarios bound the gateway, not a disk.
        cmd.env("EVENTWIRE_LISTEN", &base)
            .env("EVENTWIRE_ENGINE", "memory")
            .env("RUST_LOG", "error")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        let child = cmd.spawn().unwrap();
        let pid = child.id().unwrap();
        let gw = Gateway { child, base, pid };
        for _ in 0..400 {
            if gw.get_status("/readyz").await == Some(200) {
                return gw;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("gateway {bin} did not become ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.base)
    }

    /// One request on a fresh connection; the status, if any came.
    pub async fn get_status(&self, path: &str) -> Option<u16> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        self.raw_exchange(&req).await.map(|(s, _)| s)
    }

    /// Writes `request` on a fresh connection and reads the answer to its
    /// end (or for at most [`WAIT`]): (status, whole response text).
    pub async fn raw_exchange(&self, request: &str) -> Option<(u16, String)> {
        let go = async {
            let mut s = TcpStream::connect(&self.base).await.ok()?;
            s.write_all(request.as_bytes()).await.ok()?;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                if complete(&buf) {
                    break;
                }
            }
            let text = String::from_utf8_lossy(&buf).into_owned();
            Some((status_of(&text)?, text))
        };
        tokio::time::timeout(WAIT, go).await.ok().flatten()
    }

    pub fn rss_mib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024)
    }

    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map_or(0, |d| d.count())
    }

    /// Samples RSS and open descriptors every 50 ms, and probes `/healthz`
    /// every 200 ms, until the returned monitor is finished.
    pub fn monitor(self: &Arc<Self>) -> Monitor {
        let mut m = Monitor {
            inner: Arc::new(MonitorInner::default()),
            prober: None,
        };
        let inner = m.inner.clone();
        let gw = self.clone();
        tokio::spawn(async move {
            while !inner.done.load(Ordering::Acquire) {
                inner.peak_rss.fetch_max(gw.rss_mib(), Ordering::Relaxed);
                inner
                    .peak_fds
                    .fetch_max(gw.open_fds() as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let inner = m.inner.clone();
        let gw = self.clone();
        m.prober = Some(tokio::spawn(async move {
            while !inner.done.load(Ordering::Acquire) {
                let t = Instant::now();
                // A client under attack retries on a fresh connection; three
                // tries, each within the generous WAIT.
                let mut ok = false;
                for _ in 0..3 {
                    if gw.get_status("/healthz").await == Some(200) {
                        ok = true;
                        break;
                    }
                }
                let ms = t.elapsed().as_millis() as u64;
                inner.healthz_max_ms.fetch_max(ms, Ordering::Relaxed);
                if !ok {
                    inner.healthz_failures.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
        m
    }
}

fn status_of(text: &str) -> Option<u16> {
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Whether `buf` holds a whole response with a `Content-Length` body.
fn complete(buf: &[u8]) -> bool {
    let text = String::from_utf8_lossy(buf);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .is_some_and(|n| body.len() >= n)
}

#[derive(Default)]
struct MonitorInner {
    done: AtomicBool,
    peak_rss: AtomicU64,
    peak_fds: AtomicU64,
    healthz_failures: AtomicU64,
    healthz_max_ms: AtomicU64,
}

pub struct Monitor {
    inner: Arc<MonitorInner>,
    prober: Option<tokio::task::JoinHandle<()>>,
}

impl Monitor {
    /// Stops sampling; a `/healthz` probe still in flight is waited for, so
    /// one stuck behind the attack counts.
    pub async fn finish(&mut self, r: &mut Report) {
        self.inner.done.store(true, Ordering::Release);
        if let Some(p) = self.prober.take() {
            let _ = p.await;
        }
        r.peak_rss_mib = self.inner.peak_rss.load(Ordering::Relaxed);
        r.peak_fds = self.inner.peak_fds.load(Ordering::Relaxed) as usize;
        r.healthz_failures = self.inner.healthz_failures.load(Ordering::Relaxed);
        r.healthz_max_ms = self.inner.healthz_max_ms.load(Ordering::Relaxed);
    }
}

/// What a scenario saw; each test asserts on the fields its bound concerns.
#[derive(Debug, Default)]
pub struct Report {
    pub peak_rss_mib: u64,
    pub rss_after_mib: u64,
    pub peak_fds: usize,
    pub healthz_failures: u64,
    pub healthz_max_ms: u64,
    pub closed_by_header_timeout: bool,
    pub unanswered: usize,
    pub statuses: BTreeMap<u16, usize>,
    pub wide_pattern_refused: bool,
    pub acked: usize,
    pub lost: usize,
    pub probe_max_ms: u64,
    pub overloaded: usize,
    pub other_errors: usize,
    pub publish_failures: usize,
    pub publish_p50_ms: f64,
    pub publish_p99_ms: f64,
}

impl Report {
    pub fn print(&self, name: &str) {
        println!("{name}: {self:#?}");
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Item 3 of issue 11: sockets that send half a request line and stop. The
/// gateway gets 1,024 descriptors; the attack opens 3,000 × `scale`.
pub async fn slowloris(bin: &str, scale: usize) -> Report {
    let gw = Arc::new(
        Gateway::spawn(
            bin,
            &[
                ("EVENTWIRE_MAX_IDLE_CONNECTIONS", "200"),
                ("EVENTWIRE_HEADER_TIMEOUT", "3s"),
            ],
            Some(1024),
        )
        .await,
    );
    let mut monitor = gw.monitor();
    let total = 3000 * scale;
    let opened = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let base = gw.base.clone();
        let opened = opened.clone();
        tasks.push(tokio::spawn(async move {
            let mut held = Vec::new();
            while opened.fetch_add(1, Ordering::Relaxed) < total {
                if let Ok(Ok(mut s)) =
                    tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&base)).await
                {
                    let _ = s.write_all(b"GET /healthz HT").await;
                    held.push(s);
                }
            }
            held
        }));
    }
    let mut held = Vec::new();
    for t in tasks {
        held.extend(t.await.unwrap());
    }
    // Hold them a while longer: /healthz must keep answering.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut r = Report::default();
    monitor.finish(&mut r).await;
    drop(held);
    // One more half-open socket, with no attack around it: closed by the
    // header timeout (3 s), not by eviction.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut s = TcpStream::connect(&gw.base).await.unwrap();
    s.write_all(b"GET /healthz HT").await.unwrap();
    // The gateway may answer `408` before closing; either way the socket
    // must end.
    let mut sink = Vec::new();
    r.closed_by_header_timeout =
        tokio::time::timeout(Duration::from_secs(3) + WAIT, s.read_to_end(&mut sink))
            .await
            .is_ok();
    r
}

/// Item 4: requests that declare a full-size body and send all of it but
/// one byte, 60 × `scale` at once.
pub async fn unfinished_bodies(bin: &str, scale: usize) -> Report {
    let gw = Arc::new(
        Gateway::spawn(
            bin,
            &[
                ("EVENTWIRE_MAX_BODY_BUFFER_BYTES", "16777216"),
                ("EVENTWIRE_BODY_TIMEOUT", "3s"),
                ("EVENTWIRE_QUEUE_TIMEOUT", "1s"),
            ],
            None,
        )
        .await,
    );
    let mut monitor = gw.monitor();
    // The default body limit: 100 events of 64 KiB, plus 1 KiB.
    let declared = 64 * 1024 * 100 + 1024;
    let chunk = Arc::new(vec![b' '; 64 * 1024]);
    let mut tasks = Vec::new();
    for _ in 0..60 * scale {
        let base = gw.base.clone();
        let chunk = chunk.clone();
        tasks.push(tokio::spawn(async move {
            let s = TcpStream::connect(&base).await.ok()?;
            let (mut rd, mut wr) = s.into_split();
            let writer = tokio::spawn(async move {
                let head = format!(
                    "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
                );
                wr.write_all(head.as_bytes()).await?;
                let mut left = declared - 1;
                while left > 0 {
                    let n = left.min(chunk.len());
                    wr.write_all(&chunk[..n]).await?;
                    left -= n;
                }
                // Hold the socket open, one byte short.
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, std::io::Error>(wr)
            });
            let mut buf = Vec::new();
            let mut b = [0u8; 1024];
            let read = tokio::time::timeout(Duration::from_secs(20), async {
                loop {
                    match rd.read(&mut b).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&b[..n]),
                    }
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            })
            .await;
            writer.abort();
            let _ = read;
            status_of(&String::from_utf8_lossy(&buf))
        }));
    }
    let mut r = Report::default();
    for t in tasks {
        match t.await.unwrap() {
            Some(s) => *r.statuses.entry(s).or_default() += 1,
            None => r.unanswered += 1,
        }
    }
    monitor.finish(&mut r).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    r.rss_after_mib = gw.rss_mib();
    r
}

/// The topic every flood event has: 16 segments of `a`.
const DEEP_TOPIC: &str = "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a";

/// The `k`th distinct 16-segment pattern with 4 `*` among the first 15
/// segments, ending in `b` so that it never matches the flood's topic but
/// routing still walks every prefix of it.
fn deep_pattern(k: usize) -> String {
    let mut picks = Vec::new();
    'outer: for a in 0..15 {
        for b in a + 1..15 {
            for c in b + 1..15 {
                for d in c + 1..15 {
                    picks.push([a, b, c, d]);
                    if picks.len() > k {
                        break 'outer;
                    }
                }
            }
        }
    }
    let stars = picks[k % picks.len()];
    let mut segs: Vec<&str> = (0..15)
        .map(|i| if stars.contains(&i) { "*" } else { "a" })
        .collect();
    segs.push("b");
    segs.join(".")
}

/// Item 2: 20 × `scale` WebSocket connections with 64 distinct deep
/// wildcard patterns each, 4 publishers flooding batches of 50 events of
/// 8 KB for 5 s, and a probe publisher whose events an unrelated SSE
/// subscriber must all receive.
pub async fn routing_flood(bin: &str, scale: usize) -> Report {
    let gw = Arc::new(
        Gateway::spawn(
            bin,
            &[
                ("EVENTWIRE_HISTORY_MAX_BYTES", "8388608"),
                ("EVENTWIRE_ROUTE_BACKLOG_BYTES", "4194304"),
                ("EVENTWIRE_QUEUE_TIMEOUT", "2s"),
                ("EVENTWIRE_CONNECT_RATE", "0"),
            ],
            None,
        )
        .await,
    );
    let mut r = Report::default();
    let ws_url = format!("ws://{}/v1/ws", gw.base);
    // The attack's own patterns (`a.*.a.*…b`, 7 wildcards) are refused.
    {
        let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
        ws.next().await; // welcome
        let wide = "a.*.a.*.a.*.a.*.a.*.a.*.a.*.b";
        ws.send(Message::text(
            json!({"op":"subscribe","ref":"w","topics":[wide]}).to_string(),
        ))
        .await
        .unwrap();
        let reply = next_json(&mut ws).await;
        r.wide_pattern_refused = reply["op"] == "error" && reply["code"] == "invalid_pattern";
    }
    let mut holders = Vec::new();
    for c in 0..20 * scale {
        let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
        ws.next().await; // welcome
        let topics: Vec<String> = (0..64).map(|k| deep_pattern(c * 64 + k)).collect();
        ws.send(Message::text(
            json!({"op":"subscribe","ref":"s","topics":topics}).to_string(),
        ))
        .await
        .unwrap();
        let reply = next_json(&mut ws).await;
        assert_eq!(reply["op"], "subscribed", "{reply}");
        holders.push(ws);
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // The unrelated subscriber.
    let sse = http
        .get(gw.url("/v1/sse?topic=probe.%3E"))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let received = Arc::new(parking_lot_free::Set::default());
    let sse_task = {
        let received = received.clone();
        tokio::spawn(async move {
            let mut body = sse.bytes_stream();
            let mut buf = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(i) = buf.find("\n\n") {
                    let frame: String = buf.drain(..i + 2).collect();
                    for line in frame.lines() {
                        if let Some(data) = line.strip_prefix("data: ")
                            && let Ok(v) = serde_json::from_str::<Value>(data)
                            && let Some(id) = v["id"].as_str()
                        {
                            received.insert(id.to_owned());
                        }
                    }
                }
            }
        })
    };
    let mut monitor = gw.monitor();
    let flood_for = Duration::from_secs(5);
    let stop = Arc::new(AtomicBool::new(false));
    let payload = "x".repeat(8 * 1024);
    let batch: Value = (0..50)
        .map(|_| json!({"type": DEEP_TOPIC, "data": {"s": payload}}))
        .collect();
    let batch = Arc::new(batch.to_string());
    let statuses = Arc::new(parking_lot_free::Counts::default());
    let mut floods = Vec::new();
    for _ in 0..4 {
        let http = http.clone();
        let url = gw.url("/v1/events");
        let batch = batch.clone();
        let stop = stop.clone();
        let statuses = statuses.clone();
        floods.push(tokio::spawn(async move {
            while !stop.load(Ordering::Acquire) {
                let status = match http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(batch.as_str().to_owned())
                    .send()
                    .await
                {
                    Ok(res) => res.status().as_u16(),
                    Err(_) => 0,
                };
                statuses.add(status);
            }
        }));
    }
    let probes = {
        let http = http.clone();
        let url = gw.url("/v1/events");
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut acked = HashMap::new();
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                n += 1;
                let id = format!("probe-{n}");
                let res = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(json!({"type": "probe.x", "id": id}).to_string())
                    .send()
                    .await;
                if res.is_ok_and(|r| r.status() == 200) {
                    acked.insert(id, Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            acked
        })
    };
    tokio::time::sleep(flood_for).await;
    stop.store(true, Ordering::Release);
    for f in floods {
        f.await.unwrap();
    }
    let acked = probes.await.unwrap();
    r.acked = acked.len();
    // Every acknowledged probe must arrive; the backlog behind it is bounded.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && acked.keys().any(|id| !received.contains(id)) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    r.lost = acked.keys().filter(|id| !received.contains(id)).count();
    r.probe_max_ms = acked
        .values()
        .map(|t| t.elapsed().as_millis() as u64)
        .max()
        .unwrap_or(0);
    monitor.finish(&mut r).await;
    r.statuses = statuses.snapshot();
    sse_task.abort();
    drop(holders);
    tokio::time::sleep(Duration::from_secs(1)).await;
    r.rss_after_mib = gw.rss_mib();
    r
}

async fn next_json<S>(ws: &mut S) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).unwrap(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no frame: {other:?}"),
        }
    }
}

/// Item 5: a full ring (10,000 events), then 50 × `scale` concurrent reads
/// with 64 non-matching patterns and `limit=1000`, three each, while a
/// publisher keeps publishing.
pub async fn history_storm(bin: &str, scale: usize) -> Report {
    let gw = Arc::new(
        Gateway::spawn(
            bin,
            &[
                ("EVENTWIRE_MAX_HISTORY_READS", "1"),
                ("EVENTWIRE_QUEUE_TIMEOUT", "20ms"),
            ],
            None,
        )
        .await,
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let post = |body: String| {
        http.post(gw.url("/v1/events"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for b in 0..100 {
        let batch: Value = (0..100)
            .map(|i| json!({"type": "fill.x", "data": {"n": b * 100 + i}}))
            .collect();
        assert_eq!(post(batch.to_string()).await.unwrap().status(), 200);
    }
    let mut monitor = gw.monitor();
    let query: String = (0..64)
        .map(|i| format!("topic=nomatch{i}.*.%3E"))
        .collect::<Vec<_>>()
        .join("&");
    let url = gw.url(&format!("/v1/events?{query}&limit=1000"));
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let http = http.clone();
        let url = gw.url("/v1/events");
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut failures = 0;
            let mut n = 0;
            while !stop.load(Ordering::Acquire) || n < 20 {
                n += 1;
                let t = Instant::now();
                let ok = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(json!({"type": "live.x", "data": {"n": n}}).to_string())
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                if !ok {
                    failures += 1;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (lat, failures)
        })
    };
    let mut readers = Vec::new();
    for _ in 0..50 * scale {
        let http = http.clone();
        let url = url.clone();
        readers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for _ in 0..3 {
                let res = http.get(&url).send().await;
                out.push(match res {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let text = r.text().await.unwrap_or_default();
                        (status, text.contains("\"overloaded\""))
                    }
                    Err(_) => (0, false),
                });
            }
            out
        }));
    }
    let mut r = Report::default();
    for t in readers {
        for (status, overloaded) in t.await.unwrap() {
            *r.statuses.entry(status).or_default() += 1;
            match status {
                200 => {}
                503 if overloaded => r.overloaded += 1,
                _ => r.other_errors += 1,
            }
        }
    }
    stop.store(true, Ordering::Release);
    let (mut lat, failures) = publisher.await.unwrap();
    lat.sort_by(f64::total_cmp);
    r.publish_failures = failures;
    r.publish_p50_ms = percentile(&lat, 0.5);
    r.publish_p99_ms = percentile(&lat, 0.99);
    monitor.finish(&mut r).await;
    r
}

/// Small shared collections for the scenarios' tasks.
mod parking_lot_free {
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct Set(Mutex<HashSet<String>>);

    impl Set {
        pub fn insert(&self, s: String) {
            self.0.lock().unwrap().insert(s);
        }
        pub fn contains(&self, s: &str) -> bool {
            self.0.lock().unwrap().contains(s)
        }
    }

    #[derive(Default)]
    pub struct Counts(Mutex<BTreeMap<u16, usize>>);

    impl Counts {
        pub fn add(&self, status: u16) {
            *self.0.lock().unwrap().entry(status).or_default() += 1;
        }
        pub fn snapshot(&self) -> BTreeMap<u16, usize> {
            self.0.lock().unwrap().clone()
        }
    }
}
