//! Test harness: a real gateway on a loopback listener, and minimal SSE and
//! WebSocket clients that speak to it over real sockets.

#![allow(dead_code)]

pub mod binary;
pub mod tokens;

use eventwire_gateway::state::Shared;
use eventwire_gateway::{Config, Gateway};
use eventwire_protocol::frame::{ServerFrame, Welcome};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// Generous bound for anything that should happen "now": machines here are noisy.
pub const WAIT: Duration = Duration::from_secs(10);

/// The defaults, on a free loopback port and the memory engine: tests of
/// the gateway itself share no data directory (tests/disk.rs covers that
/// engine on real files).
pub fn config() -> Config {
    let mut c = Config::defaults();
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.engine.kind = eventwire_gateway::engine::EngineKind::Memory;
    c
}

pub struct TestGateway {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    pub http: reqwest::Client,
}

pub async fn start(config: Config) -> TestGateway {
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let gateway = Gateway::new(config).await.unwrap();
    serve(gateway, listener)
}

/// Serves a gateway built elsewhere (e.g. over a given engine or store).
pub fn serve(gateway: Gateway, listener: tokio::net::TcpListener) -> TestGateway {
    let addr = listener.local_addr().unwrap();
    let shared = gateway.shared().clone();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(gateway.serve(listener, shutdown.clone()));
    TestGateway {
        addr,
        shared,
        shutdown,
        task,
        http: reqwest::Client::new(),
    }
}

impl TestGateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    /// POSTs a body and returns (status, JSON body).
    pub async fn post(&self, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let r = self
            .http
            .post(self.url("/v1/events"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    /// Publishes one event and returns its receipt, asserting success.
    pub async fn publish(&self, event: Value) -> Value {
        let (status, body) = self.post(event.to_string()).await;
        assert_eq!(status, 200, "publish failed: {body}");
        body
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Waits until the gateway holds exactly `n` streaming connections.
    pub async fn wait_connections(&self, n: usize, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let now = self.shared.hub.connection_count();
            if now == n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} connections, still {now} after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn event(ty: &str, n: u64) -> Value {
    json!({ "type": ty, "data": { "n": n } })
}

/// One parsed SSE event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

type ByteStream = Pin<Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, String>> + Send>>;

pub struct SseClient {
    stream: ByteStream,
    buf: String,
    pub heartbeats: usize,
    /// HTTP chunks read so far: the gateway writes one chunk per wake of
    /// the connection's writer, so this counts its writes.
    pub chunks: usize,
}

impl SseClient {
    /// Opens `GET /v1/sse?{query}`, asserting 200.
    pub async fn connect(gw: &TestGateway, query: &str, last_event_id: Option<&str>) -> SseClient {
        let r = SseClient::request(gw, query, last_event_id).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        assert_eq!(r.headers()["cache-control"], "no-cache");
        assert_eq!(r.headers()["x-accel-buffering"], "no");
        SseClient::from_stream(Box::pin(
            r.bytes_stream().map(|c| c.map_err(|e| e.to_string())),
        ))
    }

    fn from_stream(stream: ByteStream) -> SseClient {
        SseClient {
            stream,
            buf: String::new(),
            heartbeats: 0,
            chunks: 0,
        }
    }

    /// Starts an SSE request over a socket with a tiny receive buffer and
    /// then reads nothing: the peer is alive but not reading, like a frozen tab.
    pub async fn connect_stalling(gw: &TestGateway, query: &str) -> StalledSse {
        use tokio::io::AsyncWriteExt;
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        sock.set_nonblocking(true).unwrap();
        let stream = tokio::net::TcpSocket::from_std_stream(sock.into());
        let mut stream = stream.connect(gw.addr).await.unwrap();
        let req = format!(
            "GET /v1/sse?{query} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            gw.addr
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        StalledSse { stream }
    }

    pub async fn request(
        gw: &TestGateway,
        query: &str,
        last_event_id: Option<&str>,
    ) -> reqwest::Response {
        let mut req = gw.http.get(gw.url(&format!("/v1/sse?{query}")));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        req.send().await.unwrap()
    }

    /// The next event, or `None` when the stream ends. Comments are counted
    /// as heartbeats and skipped.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = SseEvent {
                    id: None,
                    event: None,
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines() {
                    if line.is_empty() {
                        continue;
                    }
                    if line.starts_with(':') {
                        self.heartbeats += 1;
                        continue;
                    }
                    let (field, value) = line.split_once(": ").unwrap_or((line, ""));
                    match field {
                        "id" => ev.id = Some(value.to_owned()),
                        "event" => ev.event = Some(value.to_owned()),
                        "data" => ev.data.push_str(value),
                        "retry" => {}
                        other => panic!("unexpected SSE field {other:?} in {block:?}"),
                    }
                    any = true;
                }
                if any {
                    return Some(ev);
                }
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => {
                    self.chunks += 1;
                    self.buf.push_str(std::str::from_utf8(&chunk).unwrap())
                }
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next event within [`WAIT`], panicking otherwise.
    pub async fn expect(&mut self) -> SseEvent {
        tokio::time::timeout(WAIT, self.next())
            .await
            .expect("timed out waiting for an SSE event")
            .expect("SSE stream ended")
    }

    pub async fn welcome(&mut self) -> Welcome {
        let ev = self.expect().await;
        assert_eq!(ev.event.as_deref(), Some("$welcome"), "{ev:?}");
        let w: Welcome = serde_json::from_str(&ev.data).unwrap();
        assert_eq!(
            ev.id, w.position,
            "the welcome's id is its start position, so EventSource resumes from it (§4.4)"
        );
        w
    }

    /// Collects `n` data events (skipping nothing: any control event fails).
    pub async fn take(&mut self, n: usize) -> Vec<SseEvent> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let ev = self.expect().await;
            assert!(
                ev.event.as_deref().is_none_or(|e| !e.starts_with('$')),
                "unexpected {ev:?}"
            );
            out.push(ev);
        }
        out
    }

    /// Asserts no event arrives within `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        if let Ok(ev) = tokio::time::timeout(d, self.next()).await {
            panic!("expected nothing, got {ev:?}");
        }
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct WsClient {
    pub ws: Ws,
}

impl WsClient {
    pub async fn connect(gw: &TestGateway) -> (WsClient, Welcome) {
        let (ws, _) = tokio_tungstenite::connect_async(gw.ws_url()).await.unwrap();
        let mut c = WsClient { ws };
        match c.recv().await {
            ServerFrame::Welcome(w) => (c, w),
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.ws.send(msg).await.unwrap();
    }

    /// The next protocol frame within [`WAIT`].
    pub async fn recv(&mut self) -> ServerFrame {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a WebSocket frame")
                .expect("socket ended")
                .expect("socket error");
            match msg {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Subscribes and waits for `subscribed`; returns `recovered`.
    pub async fn subscribe(&mut self, topics: &[&str], since: Option<&str>) -> bool {
        self.subscribe_at(topics, since).await.0
    }

    /// Subscribes and waits for `subscribed`; returns `recovered` and the
    /// start position.
    pub async fn subscribe_at(&mut self, topics: &[&str], since: Option<&str>) -> (bool, String) {
        let mut frame = json!({"op": "subscribe", "topics": topics, "ref": "sub"});
        if let Some(s) = since {
            frame["since"] = json!(s);
        }
        self.send(frame).await;
        match self.recv().await {
            ServerFrame::Subscribed {
                recovered,
                reference,
                position,
                ..
            } => {
                assert_eq!(reference.as_deref(), Some("sub"));
                (recovered, position)
            }
            other => panic!("expected subscribed, got {other:?}"),
        }
    }

    pub async fn expect_event(&mut self) -> Value {
        match self.recv().await {
            ServerFrame::Event { event } => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// Emits and returns the ack or error frame for it.
    pub async fn emit(&mut self, reference: &str, event: Value) -> ServerFrame {
        self.send(json!({"op": "emit", "ref": reference, "event": event}))
            .await;
        self.recv().await
    }
}

/// The `n` field of each event's data.
pub fn ns(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["data"]["n"].as_u64().unwrap())
        .collect()
}

pub fn sse_ns(events: &[SseEvent]) -> Vec<u64> {
    ns(&events.iter().map(SseEvent::json).collect::<Vec<_>>())
}

/// An SSE client that has not read a byte since it sent its request.
pub struct StalledSse {
    stream: TcpStream,
}

impl StalledSse {
    /// Finally reads everything the gateway sent, up to the end of the
    /// connection, and parses it (HTTP/1.1 chunked) as an SSE stream.
    pub async fn read_to_end(mut self) -> SseClient {
        use tokio::io::AsyncReadExt;
        let mut raw = Vec::new();
        tokio::time::timeout(WAIT, self.stream.read_to_end(&mut raw))
            .await
            .expect("the gateway did not close the connection")
            .unwrap();
        let head_end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("response head")
            + 4;
        let head = String::from_utf8_lossy(&raw[..head_end]).to_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        let mut body = Vec::new();
        let mut rest = &raw[head_end..];
        loop {
            let line_end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size line");
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16)
                    .unwrap();
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            body.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        let chunk: Result<bytes::Bytes, String> = Ok(body.into());
        SseClient::from_stream(Box::pin(futures_util::stream::iter([chunk])))
    }
}
