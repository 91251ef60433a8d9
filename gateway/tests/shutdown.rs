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
    let child = Command::new(env!("CARGO_BIN_EXE_eventwire-gateway"))
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
