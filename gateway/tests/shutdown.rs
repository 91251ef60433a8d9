//! Graceful shutdown of the real binary: SIGTERM stops new connections,
//! tells clients (WebSocket close 1001, SSE `$close`), drains and exits 0.

mod common;

use common::{SseEvent, WAIT};
use futures_util::StreamExt;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

async fn spawn_gateway() -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // `EVENTWIRE_HOSTILE_BIN` runs these against another build (e.g. to
    // check that a regression test fails on the old gateway).
    let bin = std::env::var("EVENTWIRE_HOSTILE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_eventwire-gateway").to_owned());
    let child = Command::new(bin)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--engine",
            "memory",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(format!("http://{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return (child, base);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("gateway did not become ready");
}

#[tokio::test]
async fn sigterm_tells_clients_drains_and_exits_zero() {
    let (mut child, base) = spawn_gateway().await;
    let http = reqwest::Client::new();

    let sse = http
        .get(format!("http://{base}/v1/sse?topic=s"))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let mut body = sse.bytes_stream();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{base}/v1/ws"))
        .await
        .unwrap();
    ws.next().await.unwrap().unwrap(); // welcome

    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());

    let close = loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no close frame")
        {
            Some(Ok(Message::Close(f))) => break f.expect("close with a code"),
            Some(Ok(_)) => continue,
            other => panic!("expected close 1001, got {other:?}"),
        }
    };
    assert_eq!(close.code, CloseCode::Away);
    assert_eq!(close.reason.as_str(), "shutting_down");

    let mut text = String::new();
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout(WAIT, body.next()).await {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let last = text.trim_end().rsplit("\n\n").next().unwrap().to_owned();
    let ev = SseEvent {
        id: None,
        event: last
            .lines()
            .find_map(|l| l.strip_prefix("event: "))
            .map(str::to_owned),
        data: last
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap_or_default()
            .to_owned(),
    };
    assert_eq!(ev.event.as_deref(), Some("$close"), "{text}");
    assert_eq!(ev.json()["code"], "shutting_down");

    let exit = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("did not exit")
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    assert!(
        http.get(format!("http://{base}/healthz"))
            .send()
            .await
            .is_err(),
        "no longer listening"
    );
}

/// What one POST got from a gateway that was shutting down.
#[derive(Debug)]
enum Outcome {
    /// A complete HTTP response: status, and body.
    Answered(u16, String),
    /// The connection closed or reset after the request was written.
    Dropped,
}

/// Writes a POST on `s` and reads the whole response.
async fn post_on(s: &mut tokio::net::TcpStream, body: &str) -> (Outcome, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return (Outcome::Dropped, true);
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, rest)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if rest.len() >= len {
                let status = head[9..12].parse().unwrap_or(0);
                let close = head.to_ascii_lowercase().contains("connection: close");
                return (Outcome::Answered(status, rest.to_owned()), close);
            }
        }
        match tokio::time::timeout(WAIT, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return (Outcome::Dropped, true),
        }
    }
}

/// POSTs in flight when SIGTERM arrives each get an answer, `200` with a
/// `seq` or `503 shutting_down`, never a dropped connection; and every event
/// answered `200` reaches a subscriber before its stream closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_in_flight_at_sigterm_are_answered_and_nothing_acknowledged_is_lost() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (mut child, base) = spawn_gateway().await;
    let http = reqwest::Client::new();
    let sse = http
        .get(format!("http://{base}/v1/sse?topic=sd.%3E"))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let received = tokio::spawn(async move {
        let mut ids = std::collections::HashSet::new();
        let mut body = sse.bytes_stream();
        let mut text = String::new();
        while let Ok(Some(Ok(chunk))) = tokio::time::timeout(WAIT, body.next()).await {
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        for line in text.lines() {
            if let Some(data) = line.strip_prefix("data: ")
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(data)
                && let Some(id) = v["id"].as_str()
            {
                ids.insert(id.to_owned());
            }
        }
        ids
    });
    let stop = Arc::new(AtomicBool::new(false));
    let mut loopers = Vec::new();
    for l in 0..16 {
        let base = base.clone();
        let stop = stop.clone();
        loopers.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            let mut conn: Option<tokio::net::TcpStream> = None;
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                let s = match conn.as_mut() {
                    Some(s) => s,
                    // Refused: the gateway stopped listening; nothing was sent.
                    None => match tokio::net::TcpStream::connect(&base).await {
                        Ok(s) => conn.insert(s),
                        Err(_) => break,
                    },
                };
                n += 1;
                let id = format!("l{l}-{n}");
                let (outcome, close) = post_on(
                    s,
                    &serde_json::json!({"type": "sd.x", "id": id}).to_string(),
                )
                .await;
                if close {
                    conn = None;
                }
                outcomes.push((id, outcome));
            }
            outcomes
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Keep publishing through the first moments of shutdown.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Release);
    let (mut acked, mut refused, mut dropped) = (Vec::new(), 0, Vec::new());
    for l in loopers {
        for (id, outcome) in l.await.unwrap() {
            match outcome {
                Outcome::Answered(200, body) => {
                    assert!(body.contains("\"seq\""), "{body}");
                    acked.push(id);
                }
                Outcome::Answered(503, body) => {
                    assert!(body.contains("shutting_down"), "{body}");
                    refused += 1;
                }
                Outcome::Answered(status, body) => panic!("{id}: {status} {body}"),
                Outcome::Dropped => dropped.push(id),
            }
        }
    }
    assert!(
        dropped.is_empty(),
        "{} POSTs were written and then dropped without an answer: {dropped:?}",
        dropped.len()
    );
    assert!(
        !acked.is_empty() && refused > 0,
        "{} acked, {refused} refused",
        acked.len()
    );
    let received = received.await.unwrap();
    let lost: Vec<_> = acked.iter().filter(|id| !received.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but never delivered: {lost:?}"
    );
    let exit = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("did not exit")
        .unwrap();
    assert_eq!(exit.code(), Some(0));
}
