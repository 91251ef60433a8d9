//! `GET /v1/sse` as the server loop serves it without hyper (src/sse_socket.rs),
//! spoken to byte by byte over raw sockets: the HTTP framing, keep-alive after
//! a response, and the requests it leaves to hyper.

mod common;

use common::{SseClient, WAIT, config, event, start};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A client that writes raw bytes and reads the HTTP/1.1 answer itself.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

/// A response head: status and lower-cased header lines.
struct HeadOf {
    status: u16,
    headers: Vec<(String, String)>,
}

impl HeadOf {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Raw {
    async fn connect(gw: &common::TestGateway) -> Raw {
        Raw {
            s: TcpStream::connect(gw.addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &str) {
        self.s.write_all(bytes.as_bytes()).await.unwrap();
    }

    /// Reads until `n` bytes are buffered; false at EOF.
    async fn fill(&mut self, n: usize) -> bool {
        while self.buf.len() < n {
            let mut chunk = [0u8; 4096];
            let got = tokio::time::timeout(WAIT, self.s.read(&mut chunk))
                .await
                .expect("no answer")
                .unwrap_or(0);
            if got == 0 {
                return false;
            }
            self.buf.extend_from_slice(&chunk[..got]);
        }
        true
    }

    /// Takes everything up to and including `end`.
    async fn take_through(&mut self, end: &[u8]) -> String {
        loop {
            if let Some(i) = self.buf.windows(end.len()).position(|w| w == end) {
                let out: Vec<u8> = self.buf.drain(..i + end.len()).collect();
                return String::from_utf8(out).unwrap();
            }
            let want = self.buf.len() + 1;
            assert!(
                self.fill(want).await,
                "closed before {end:?}: {:?}",
                self.buf
            );
        }
    }

    async fn head(&mut self) -> HeadOf {
        let text = self.take_through(b"\r\n\r\n").await;
        let mut lines = text.lines();
        let status_line = lines.next().unwrap();
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
        let status = status_line[9..12].parse().unwrap();
        let headers = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        HeadOf { status, headers }
    }

    /// One chunk of a chunked body ("" for the last one).
    async fn chunk(&mut self) -> String {
        let line = self.take_through(b"\r\n").await;
        let len = usize::from_str_radix(line.trim_end(), 16).unwrap();
        assert!(self.fill(len + 2).await, "closed inside a chunk");
        let data: Vec<u8> = self.buf.drain(..len + 2).collect();
        assert_eq!(&data[len..], b"\r\n", "chunk end");
        String::from_utf8(data[..len].to_vec()).unwrap()
    }

    /// Chunks until one contains `needle`.
    async fn chunk_with(&mut self, needle: &str) -> String {
        loop {
            let c = self.chunk().await;
            assert!(!c.is_empty(), "the stream ended before {needle:?}");
            if c.contains(needle) {
                return c;
            }
        }
    }

    /// Every chunk read up to the first that contains `needle`, joined.
    async fn chunks_until(&mut self, needle: &str) -> String {
        let mut all = String::new();
        loop {
            let c = self.chunk().await;
            assert!(!c.is_empty(), "the stream ended before {needle:?}: {all}");
            all.push_str(&c);
            if c.contains(needle) {
                return all;
            }
        }
    }

    async fn body(&mut self, head: &HeadOf) -> String {
        let len: usize = head.get("content-length").unwrap().parse().unwrap();
        assert!(self.fill(len).await);
        String::from_utf8(self.buf.drain(..len).collect()).unwrap()
    }

    /// True if the server closes the socket within `within`.
    async fn closed_within(&mut self, within: Duration) -> bool {
        let mut chunk = [0u8; 64];
        matches!(
            tokio::time::timeout(within, self.s.read(&mut chunk)).await,
            Ok(Ok(0) | Err(_))
        )
    }
}

#[tokio::test]
async fn a_head_in_pieces_gets_the_stream_with_its_headers_and_events() {
    let gw = start(config()).await;
    let mut c = Raw::connect(&gw).await;
    // Split inside the path and inside a header: the server waits for all.
    for piece in [
        "GET /v1/s",
        "se?topic=order.*&named=0 HTTP/1.1\r\nHo",
        "st: x\r\nAccept: text/event-stream\r\n\r\n",
    ] {
        c.send(piece).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let head = c.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.get("content-type"), Some("text/event-stream"));
    assert_eq!(head.get("cache-control"), Some("no-cache"));
    assert_eq!(head.get("x-accel-buffering"), Some("no"));
    assert_eq!(head.get("transfer-encoding"), Some("chunked"));
    assert!(head.get("date").is_some(), "a date header, as hyper sends");
    assert!(head.get("content-length").is_none());
    let welcome = c.chunk_with("event: $welcome").await;
    assert!(welcome.starts_with("retry: "), "{welcome}");
    gw.publish(event("order.created", 7)).await;
    let ev = c.chunk_with("\"n\":7").await;
    assert!(ev.starts_with("id: "), "{ev}");
    // The client goes away: the gateway notices and lets the stream go.
    gw.wait_connections(1, WAIT).await;
    drop(c);
    gw.wait_connections(0, WAIT).await;
}

#[tokio::test]
async fn an_error_on_the_stream_route_keeps_the_socket_for_the_next_request() {
    let gw = start(config()).await;
    let mut c = Raw::connect(&gw).await;
    // A bad `heartbeat`: 400 bad_request. The next request is pipelined behind it.
    c.send(
        "GET /v1/sse?heartbeat=loud HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let head = c.head().await;
    assert_eq!(head.status, 400);
    assert_eq!(head.get("content-type"), Some("application/json"));
    let body = c.body(&head).await;
    assert!(body.contains("\"bad_request\""), "{body}");
    let head = c.head().await;
    assert_eq!(head.status, 200, "the pipelined request is answered");
    let _ = c.body(&head).await;
    // And the socket still takes requests.
    c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(c.head().await.status, 200);
}

#[tokio::test]
async fn malformed_heads_get_the_documented_400_and_the_server_keeps_serving() {
    let gw = start(config()).await;
    for bad in [
        // PROTOCOL §3: a raw `>` in the query is refused by the HTTP server
        // with an empty 400, before the gateway sees the request.
        "GET /v1/sse?topic=order.> HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /v1/sse?topic=a HTTP/1.1\r\nno colon here\r\n\r\n",
        "GET /v1/sse?topic=a HTTP/1.1\r\nHost: x\r\nX: \x01\r\n\r\n",
    ] {
        let mut c = Raw::connect(&gw).await;
        c.send(bad).await;
        let head = c.head().await;
        assert_eq!(head.status, 400, "{bad:?}");
        assert_eq!(head.get("content-length"), Some("0"), "{bad:?}");
        assert!(c.closed_within(WAIT).await, "{bad:?}: closed after");
    }
    let mut sse = SseClient::connect(&gw, "topic=order.*", None).await;
    sse.welcome().await;
    assert_eq!(gw.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn a_stream_that_ends_hands_its_socket_back_with_what_was_pipelined() {
    let gw = start(config()).await;
    let q = "topic=order.*&instance=tab-raw-00001";
    let mut c = Raw::connect(&gw).await;
    c.send(&format!("GET /v1/sse?{q} HTTP/1.1\r\nHost: x\r\n\r\n"))
        .await;
    assert_eq!(c.head().await.status, 200);
    c.chunk_with("event: $welcome").await;
    // A request written while the stream runs waits for its end.
    c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    // The same instance reconnects: the first stream ends (§4.6).
    let mut newer = SseClient::connect(&gw, q, None).await;
    newer.welcome().await;
    let close = c.chunk_with("event: $close").await;
    assert!(close.contains("superseded"), "{close}");
    assert_eq!(c.chunk().await, "", "the last chunk");
    let head = c.head().await;
    assert_eq!(head.status, 200, "then the pipelined request is answered");
    assert!(c.body(&head).await.contains("ok"));
}

#[tokio::test]
async fn connection_close_on_a_stream_closes_the_socket_when_it_ends() {
    let gw = start(config()).await;
    let q = "topic=order.*&instance=tab-raw-00002";
    let mut c = Raw::connect(&gw).await;
    c.send(&format!(
        "GET /v1/sse?{q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ))
    .await;
    assert_eq!(c.head().await.status, 200);
    c.chunk_with("event: $welcome").await;
    let mut newer = SseClient::connect(&gw, q, None).await;
    newer.welcome().await;
    c.chunk_with("event: $close").await;
    assert_eq!(c.chunk().await, "");
    assert!(c.closed_within(WAIT).await);
}

#[tokio::test]
async fn a_stream_head_that_never_ends_is_closed_by_the_header_timeout() {
    let mut cfg = config();
    cfg.header_timeout = Duration::from_millis(500);
    let gw = start(cfg).await;
    let mut c = Raw::connect(&gw).await;
    c.send("GET /v1/sse?topic=order.* HTTP/1.1\r\nHost: x\r\n")
        .await;
    assert!(c.closed_within(WAIT).await, "the half-sent head is dropped");
    assert_eq!(gw.shared.hub.connection_count(), 0);
    let mut sse = SseClient::connect(&gw, "topic=order.*", None).await;
    sse.welcome().await;
}

#[tokio::test]
async fn the_stream_carries_the_cors_headers_of_the_router() {
    let mut cfg = config();
    cfg.cors_origins = vec!["https://app.example".into()];
    let gw = start(cfg).await;
    let mut c = Raw::connect(&gw).await;
    c.send("GET /v1/sse?topic=order.* HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n\r\n")
        .await;
    let head = c.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.get("access-control-allow-origin"),
        Some("https://app.example")
    );
    c.chunk_with("event: $welcome").await;
}

#[tokio::test]
async fn a_stream_head_too_long_for_hyper_too_is_refused_at_once() {
    // A timeout would close the socket without a word: the 431 shows the
    // unfinished head went to hyper, which refused it for its size.
    let mut cfg = config();
    cfg.header_timeout = Duration::from_secs(120);
    let gw = start(cfg).await;
    let mut c = Raw::connect(&gw).await;
    let start = "GET /v1/sse?topic=order.* HTTP/1.1\r\nX-Long: ";
    let fill = "a".repeat(eventwire_gateway::sse_socket::MAX_HEAD - start.len());
    c.send(&format!("{start}{fill}")).await;
    let head = c.head().await;
    assert_eq!(head.status, 431);
    assert!(c.closed_within(WAIT).await);
    assert_eq!(gw.get("/healthz").await.0, 200);
}

/// PROTOCOL §5.1: a stream with no `topic` is a connection all the same
/// (an emit-only page's), as a WebSocket with no subscription is: it is
/// welcomed, gets heartbeats and no events, and is superseded when its
/// instance reopens with topics from the welcome's position, which then
/// replays what was published in between.
#[tokio::test]
async fn a_stream_without_topics_is_welcomed_and_reopens_with_topics() {
    let mut cfg = config();
    cfg.heartbeat = Duration::from_millis(100);
    let gw = start(cfg).await;
    let instance = "instance=tab-raw-00003";
    let mut c = Raw::connect(&gw).await;
    c.send(&format!(
        "GET /v1/sse?heartbeat=event&{instance} HTTP/1.1\r\nHost: x\r\n\r\n"
    ))
    .await;
    let head = c.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.get("content-type"), Some("text/event-stream"));
    let welcome = c.chunk_with("event: $welcome").await;
    let position = welcome
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap_or_else(|| panic!("no id in {welcome}"))
        .to_owned();
    assert!(!position.is_empty(), "{welcome}");
    gw.wait_connections(1, WAIT).await;
    gw.publish(event("order.created", 1)).await;
    // Heartbeats come; the event does not (nothing is subscribed).
    let hb = c.chunks_until("event: $heartbeat").await;
    assert!(!hb.contains("order.created"), "{hb}");
    // The same instance reopens with a topic from the welcome's position.
    let mut sse = SseClient::connect(
        &gw,
        &format!("topic=order.*&{instance}&since={position}"),
        None,
    )
    .await;
    assert_eq!(sse.welcome().await.recovered, Some(true));
    let replayed = sse.take(1).await;
    assert_eq!(replayed[0].json()["data"]["n"], 1, "{replayed:?}");
    let close = c.chunks_until("event: $close").await;
    assert!(close.contains("superseded"), "{close}");
    assert!(!close.contains("order.created"), "{close}");
    gw.wait_connections(1, WAIT).await;
    gw.publish(event("order.created", 2)).await;
    assert_eq!(sse.take(1).await[0].json()["data"]["n"], 2);

    // Resuming with no topics is welcomed at once: nothing was missed.
    let mut bare = SseClient::connect(&gw, "", Some(&position)).await;
    assert_eq!(bare.welcome().await.recovered, Some(true));
    // A malformed position is still refused.
    let r = SseClient::request(&gw, "since=bogus", None).await;
    assert_eq!(r.status(), 400);
    // History still needs a topic.
    let (status, body) = gw.get("/v1/events").await;
    assert_eq!(status, 400);
    assert!(body.contains("\"bad_request\""), "{body}");
}
