//! Attacks on a gateway with auth, over real sockets: cross-site requests
//! riding on a cookie, tokens that expire in the far future, escapes from
//! `--static-dir`, and tokens leaking into trace logs of the real binary.

mod common;

use common::tokens::*;
use common::*;
use eventwire_protocol::frame::ServerFrame;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn with_cookie(mut cfg: eventwire_gateway::Config) -> eventwire_gateway::Config {
    cfg.auth.auth_cookie = Some("ew".into());
    cfg
}

/// A cookie-authenticated `POST` as a foreign page's form or `fetch` would
/// send it: `text/plain`, no preflight.
async fn cookie_post(
    gw: &TestGateway,
    origin: Option<&str>,
    token: &str,
    id: &str,
) -> (u16, Value) {
    let mut r = gw
        .http
        .post(gw.url("/v1/events"))
        .header("content-type", "text/plain")
        .header("cookie", format!("ew={token}"))
        .body(json!({"type": "ui.clicked", "id": id}).to_string());
    if let Some(o) = origin {
        r = r.header("origin", o);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_cookie_authenticated_post_from_a_foreign_origin_is_refused() {
    let gw = start(with_cookie(secured_config())).await;
    let u1 = hs(&claims("u1", 600));
    let own = format!("http://{}", gw.addr);
    let mut watcher = SseClient::connect(&gw, "topic=ui.%3E&access_token=svc-key", None).await;
    watcher.welcome().await;
    for (origin, why) in [
        (Some("http://evil.example"), "a foreign origin"),
        (None, "no Origin"),
        (Some("null"), "an opaque origin (sandboxed page)"),
    ] {
        let (status, body) = cookie_post(&gw, origin, &u1, "csrf").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{why}"
        );
    }
    // Every route that changes something is guarded, consumer groups too.
    for (method, path) in [
        (reqwest::Method::PUT, "/v1/groups/g"),
        (reqwest::Method::POST, "/v1/groups/g/ack"),
        (reqwest::Method::DELETE, "/v1/groups/g"),
    ] {
        let r = gw
            .http
            .request(method.clone(), gw.url(path))
            .header("content-type", "text/plain")
            .header("cookie", format!("ew={u1}"))
            .header("origin", "http://evil.example")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method} {path}");
    }
    // The allow-listed origin and the gateway's own pages may.
    assert_eq!(
        cookie_post(&gw, Some("http://good.example"), &u1, "ok-1")
            .await
            .0,
        200
    );
    assert_eq!(cookie_post(&gw, Some(&own), &u1, "ok-2").await.0, 200);
    // A bearer token is not sent by the browser on its own: no Origin rule.
    let r = gw
        .http
        .post(gw.url("/v1/events"))
        .bearer_auth(&u1)
        .header("origin", "http://evil.example")
        .body(json!({"type": "ui.clicked", "id": "bearer"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ids: Vec<Value> = watcher
        .take(3)
        .await
        .iter()
        .map(|e| e.json()["id"].clone())
        .collect();
    assert_eq!(
        ids,
        ["ok-1", "ok-2", "bearer"],
        "the refused POSTs published nothing"
    );
    watcher.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_cookie_authenticated_websocket_from_a_foreign_origin_is_refused() {
    // No --cors-origin at all: token-authenticated upgrades from any origin
    // pass as before, but a cookie is only honoured from the gateway's own.
    let mut cfg = with_cookie(secured_config());
    cfg.cors_origins.clear();
    let gw = start(cfg).await;
    let u1 = hs(&claims("u1", 600));
    let upgrade = |origin: &str, cookie: bool| {
        let url = if cookie {
            gw.ws_url()
        } else {
            format!("{}?access_token={u1}", gw.ws_url())
        };
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        if cookie {
            req.headers_mut()
                .insert("cookie", format!("ew={u1}").parse().unwrap());
        }
        async move {
            match tokio_tungstenite::connect_async(req).await {
                Ok(_) => 101,
                Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
                Err(e) => panic!("{e}"),
            }
        }
    };
    assert_eq!(upgrade("http://evil.example", true).await, 403);
    assert_eq!(upgrade(&format!("http://{}", gw.addr), true).await, 101);
    assert_eq!(upgrade("http://evil.example", false).await, 101);
}

/// Far-future expiries: `u64::MAX`, the largest `i64`, and 50 years.
fn far_future_tokens() -> Vec<(String, String)> {
    [u64::MAX, i64::MAX as u64, now() + 50 * 365 * 86_400]
        .into_iter()
        .map(|exp| {
            let mut c = claims("u1", 600);
            c["exp"] = json!(exp);
            (format!("exp {exp}"), hs(&c))
        })
        .collect()
}

#[tokio::test]
async fn a_token_expiring_in_the_far_future_does_not_panic_anything() {
    let gw = secured().await;
    for (name, token) in far_future_tokens() {
        let mut sse = SseClient::connect(
            &gw,
            &format!("topic=user.u1.%3E&access_token={token}"),
            None,
        )
        .await;
        sse.welcome().await;
        let (ws, _) =
            tokio_tungstenite::connect_async(format!("{}?access_token={token}", gw.ws_url()))
                .await
                .unwrap();
        let mut ws = WsClient { ws };
        assert!(matches!(ws.recv().await, ServerFrame::Welcome(_)), "{name}");
        assert!(ws.subscribe(&["user.u1.>"], None).await, "{name}");
        // In-band refresh from an ordinary token to the far-future one.
        let (short, _) = tokio_tungstenite::connect_async(format!(
            "{}?access_token={}",
            gw.ws_url(),
            hs(&claims("u1", 600))
        ))
        .await
        .unwrap();
        let mut short = WsClient { ws: short };
        short.recv().await;
        assert!(short.subscribe(&["user.u1.>"], None).await);
        short
            .send(json!({"op": "auth", "ref": "r", "token": token}))
            .await;
        assert!(
            matches!(short.recv().await, ServerFrame::Authenticated { .. }),
            "{name}"
        );
        svc_publish(&gw, "user.u1.inbox", 1).await;
        assert_eq!(sse.expect().await.json()["data"]["n"], 1, "SSE, {name}");
        assert_eq!(ws.expect_event().await["data"]["n"], 1, "WS, {name}");
        assert_eq!(
            short.expect_event().await["data"]["n"],
            1,
            "refreshed WS, {name}"
        );
    }
    assert_eq!(gw.get("/healthz").await.0, 200, "still serving");
}

/// A raw `GET`, so the path reaches the gateway exactly as written
/// (HTTP clients normalise `..` and `%2e` away).
async fn raw_get(gw: &TestGateway, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    let status = out[9..12].parse().unwrap();
    (status, out)
}

#[tokio::test]
async fn static_files_stay_inside_the_directory_and_hide_dotfiles() {
    let base = std::env::temp_dir().join(format!("ew-static-{}", std::process::id()));
    let (root, outside) = (base.join("www"), base.join("outside"));
    for d in [root.join(".git"), root.join("sub"), outside.clone()] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(root.join("index.html"), "<h1>demo</h1>").unwrap();
    std::fs::write(root.join("sub/page.html"), "page").unwrap();
    std::fs::write(root.join(".env"), "SECRET=dotenv").unwrap();
    std::fs::write(root.join(".git/config"), "SECRET=git").unwrap();
    std::fs::write(outside.join("secret.txt"), "SECRET=outside").unwrap();
    std::fs::write(outside.join("index.html"), "SECRET=outside-index").unwrap();
    let link = |target: &std::path::Path, name: &str| {
        let _ = std::fs::remove_file(root.join(name));
        std::os::unix::fs::symlink(target, root.join(name)).unwrap();
    };
    link(&outside.join("secret.txt"), "leak.txt");
    link(&outside, "leakdir");
    link(&root.join("sub/page.html"), "inner.html");
    let mut cfg = config();
    cfg.static_dir = Some(root.clone());
    let gw = start(cfg).await;

    for path in ["/", "/index.html", "/sub/page.html", "/inner.html"] {
        let (status, body) = raw_get(&gw, path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    for path in [
        "/.env",
        "/%2eenv",
        "/.git/config",
        "/sub/../.env",
        "/sub/%2e%2e/.env",
        "/leak.txt",
        "/leakdir/secret.txt",
        "/leakdir/",
        "/leakdir",
        "/sub/%2e%2e/leak.txt",
    ] {
        let (status, body) = raw_get(&gw, path).await;
        assert!(!body.contains("SECRET"), "{path} leaked: {body}");
        assert!(status == 404 || status == 400, "{path}: {status}");
        if status == 404 {
            assert!(body.contains("not_found"), "{path}: {body}");
        }
    }
    std::fs::remove_dir_all(&base).unwrap();
}

/// Starts the real binary at `RUST_LOG=trace` with its output in `log`.
async fn traced_gateway(log: &std::path::Path) -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = std::fs::File::create(log).unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_eventwire-gateway"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--engine",
            "memory",
        ])
        .args(["--jwt-secret", SECRET, "--jwt-audience", "eventwire"])
        .args(["--auth-cookie", "ew"])
        .env("RUST_LOG", "trace")
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("127.0.0.1:{port}");
    for _ in 0..400 {
        if reqwest::get(format!("http://{base}/healthz"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return (child, base);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("gateway did not start");
}

#[tokio::test]
async fn tokens_never_reach_the_logs_even_at_trace() {
    let log = std::env::temp_dir().join(format!("ew-trace-{}.log", std::process::id()));
    let (mut child, base) = traced_gateway(&log).await;
    let token = |n: i64| hs(&claims("u1", 600 + n));
    let (header, query, cookie, frame) = (token(1), token(2), token(3), token(4));
    let garbage = "not-a-jwt-but-secret-all-the-same";
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{base}{p}");
    let r = http
        .post(url("/v1/events"))
        .bearer_auth(&header)
        .body(json!({"type": "ui.x"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(url(&format!(
            "/v1/events?topic=user.u1.%3E&access_token={query}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(url("/v1/events?topic=user.u1.%3E"))
        .header("cookie", format!("ew={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(url("/v1/sse?topic=user.u1.%3E"))
        .bearer_auth(garbage)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{base}/v1/ws?access_token={query}"))
            .await
            .unwrap();
    ws.next().await.unwrap().unwrap();
    ws.send(Message::text(
        json!({"op": "auth", "ref": "r", "token": frame}).to_string(),
    ))
    .await
    .unwrap();
    let reply = loop {
        if let Message::Text(t) = ws.next().await.unwrap().unwrap() {
            break t;
        }
    };
    assert!(reply.contains("authenticated"), "{reply}");
    ws.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().await.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("TRACE"), "the log is at trace level");
    for (name, secret) in [
        ("header", header.as_str()),
        ("query", &query),
        ("cookie", &cookie),
        ("WS auth frame", &frame),
        ("garbage", garbage),
    ] {
        // A signature alone is as good as the token: look for it too.
        let signature = secret.rsplit('.').next().unwrap();
        assert!(
            !text.contains(signature),
            "the {name} token is in the trace log"
        );
    }
    let _ = std::fs::remove_file(&log);
}
