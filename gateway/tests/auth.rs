//! The auth matrix over real sockets, on both transports: who may subscribe
//! to, receive and emit what, and zero deliveries outside the rights.

mod common;

use common::*;
use eventwire_gateway::auth::KeyAlgorithm;
use eventwire_protocol::ErrorCode;
use eventwire_protocol::frame::ServerFrame;
use futures_util::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes";
const RSA_PRIVATE: &[u8] = include_bytes!("fixtures/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("fixtures/rsa_public.pem");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(sub: &str, exp_in: i64) -> Value {
    json!({
        "sub": sub,
        "aud": "eventwire",
        "exp": (now() as i64 + exp_in) as u64,
        "eventwire": {"subscribe": ["user.{sub}.>", "public.>"], "publish": ["ui.>"]}
    })
}

fn hs(c: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        c,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn rs(c: &Value) -> String {
    encode(
        &Header::new(Algorithm::RS256),
        c,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    )
    .unwrap()
}

async fn secured() -> TestGateway {
    let mut cfg = config();
    cfg.heartbeat = Duration::from_millis(500);
    cfg.cors_origins = vec!["http://good.example".into()];
    let a = &mut cfg.auth;
    a.jwt_secret = Some(SECRET.into());
    let dir = std::env::temp_dir().join(format!("ew-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rsa_public.pem"), RSA_PUBLIC).unwrap();
    a.jwt_public_key = Some(dir.join("rsa_public.pem"));
    a.jwt_algorithm = Some(KeyAlgorithm::Rs256);
    a.jwt_audience = Some("eventwire".into());
    a.anonymous_subscribe = vec!["public.>".into()];
    a.api_keys = vec!["svc-key".into()];
    start(cfg).await
}

/// Publishes with the service API key (full rights).
async fn svc_publish(gw: &TestGateway, ty: &str, n: u64) {
    let r = gw
        .http
        .post(gw.url("/v1/events"))
        .bearer_auth("svc-key")
        .body(event(ty, n).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

async fn sse_status(gw: &TestGateway, query: &str, token: Option<&str>) -> (u16, String) {
    let mut q = query.to_string();
    if let Some(t) = token {
        q.push_str(&format!("&access_token={t}"));
    }
    let r = SseClient::request(gw, &q, None).await;
    let status = r.status().as_u16();
    if status == 200 {
        return (200, String::new());
    }
    let body: Value = r.json().await.unwrap();
    (status, body["error"]["code"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn every_kind_of_token_is_judged_correctly() {
    let gw = secured().await;
    let good = claims("u1", 600);
    let mut expired = claims("u1", -3600);
    expired["exp"] = json!(now() - 3600);
    let mut early = claims("u1", 600);
    early["nbf"] = json!(now() + 3600);
    let mut other_aud = claims("u1", 600);
    other_aud["aud"] = json!("another-service");
    let wrong_key = encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(b"not-the-secret-but-32-bytes-long!!"),
    )
    .unwrap();
    // The classic confusion attack: HS256 with the RSA *public* key as secret.
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(RSA_PUBLIC),
    )
    .unwrap();
    let b64 = |v: &Value| {
        let s = serde_json::to_vec(v).unwrap();
        base64url(&s)
    };
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&good)
    );

    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("HS256 user", Some(hs(&good)), 200, ""),
        ("RS256 user", Some(rs(&good)), 200, ""),
        ("anonymous", None, 401, "unauthorized"),
        ("expired", Some(hs(&expired)), 401, "token_expired"),
        ("nbf in the future", Some(hs(&early)), 401, "unauthorized"),
        ("wrong audience", Some(hs(&other_aud)), 401, "unauthorized"),
        ("wrong signature", Some(wrong_key), 401, "unauthorized"),
        ("alg none", Some(none), 401, "unauthorized"),
        (
            "HS256 signed with the RSA public key",
            Some(confused),
            401,
            "unauthorized",
        ),
        ("garbage", Some("x.y.z".into()), 401, "unauthorized"),
    ];
    for (name, token, status, code) in cases {
        // Everyone but the valid users is refused a private topic...
        let got = sse_status(&gw, "topic=user.u1.inbox", token.as_deref()).await;
        assert_eq!(got, (status, code.to_owned()), "SSE, {name}");
        // ...and the same on WebSocket, before the upgrade.
        let mut url = gw.ws_url();
        if let Some(t) = &token {
            url.push_str(&format!("?access_token={t}"));
        }
        match tokio_tungstenite::connect_async(url).await {
            Ok((mut ws, _)) => {
                assert!(
                    status == 200 || code == "unauthorized" && token.is_none(),
                    "WS accepted {name}"
                );
                let _welcome = ws.next().await;
                ws.send(Message::text(
                    json!({"op": "subscribe", "topics": ["user.u1.inbox"], "ref": "s"}).to_string(),
                ))
                .await
                .unwrap();
                let frame: ServerFrame = loop {
                    if let Some(Ok(Message::Text(t))) = ws.next().await {
                        break serde_json::from_str(&t).unwrap();
                    }
                };
                match (status, frame) {
                    (200, ServerFrame::Subscribed { .. }) => {}
                    (_, ServerFrame::Error { code: c, .. }) => {
                        assert_eq!(c.as_str(), code, "WS, {name}")
                    }
                    (_, other) => panic!("WS, {name}: {other:?}"),
                }
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), status, "WS, {name}");
            }
            Err(e) => panic!("WS, {name}: {e}"),
        }
    }
    // Anonymous clients may read what the policy opens up.
    assert_eq!(sse_status(&gw, "topic=public.news", None).await.0, 200);
}

fn base64url(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | b as u32) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

use futures_util::SinkExt;

#[tokio::test]
async fn nobody_receives_outside_their_rights_on_either_transport() {
    let gw = secured().await;
    let a = hs(&claims("u1", 600));
    let b = rs(&claims("u2", 600));
    let mut sse_a = SseClient::connect(
        &gw,
        &format!("topic=user.u1.%3E&topic=public.%3E&access_token={a}"),
        None,
    )
    .await;
    sse_a.welcome().await;
    let mut sse_anon = SseClient::connect(&gw, "topic=public.%3E", None).await;
    sse_anon.welcome().await;
    // Partial overlap is refused, not narrowed.
    assert_eq!(
        sse_status(&gw, "topic=user.*.inbox", Some(&a)).await,
        (403, "forbidden".into())
    );
    assert_eq!(
        sse_status(&gw, "topic=%3E", Some(&a)).await,
        (403, "forbidden".into())
    );

    let mut req = format!("{}?access_token={b}", gw.ws_url())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("origin", "http://good.example".parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut ws_b = WsClient { ws };
    assert!(matches!(ws_b.recv().await, ServerFrame::Welcome(_)));
    assert!(ws_b.subscribe(&["user.u2.>", "public.>"], None).await);
    ws_b.send(json!({"op": "subscribe", "topics": ["user.u1.>"], "ref": "x"}))
        .await;
    assert!(matches!(
        ws_b.recv().await,
        ServerFrame::Error {
            code: ErrorCode::Forbidden,
            ..
        }
    ));

    for (n, ty) in [
        "user.u1.inbox",
        "user.u2.inbox",
        "public.news",
        "user.u3.inbox",
        "private.x",
    ]
    .iter()
    .enumerate()
    {
        svc_publish(&gw, ty, n as u64).await;
    }
    let types = |evs: Vec<SseEvent>| {
        evs.iter()
            .map(|e| e.event.clone().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(types(sse_a.take(2).await), ["user.u1.inbox", "public.news"]);
    assert_eq!(types(sse_anon.take(1).await), ["public.news"]);
    assert_eq!(ws_b.expect_event().await["type"], "user.u2.inbox");
    assert_eq!(ws_b.expect_event().await["type"], "public.news");
    sse_a.expect_silence(Duration::from_millis(300)).await;
    sse_anon.expect_silence(Duration::from_millis(100)).await;
    ws_b.send(json!({"op": "ping"})).await;
    assert_eq!(
        ws_b.recv().await,
        ServerFrame::Pong { reference: None },
        "nothing else reached B"
    );
}

#[tokio::test]
async fn emits_are_checked_and_stamped_with_the_subject() {
    let gw = secured().await;
    let a = hs(&claims("u1", 600));
    let (ws, _) = tokio_tungstenite::connect_async(format!("{}?access_token={a}", gw.ws_url()))
        .await
        .unwrap();
    let mut ws_a = WsClient { ws };
    ws_a.recv().await;
    assert!(ws_a.subscribe(&["public.>"], None).await);
    let mut watcher = SseClient::connect(&gw, "topic=ui.%3E&access_token=svc-key", None).await;
    watcher.welcome().await;
    // A source claiming to be someone else is overwritten with the subject.
    match ws_a
        .emit("1", json!({"type": "ui.clicked", "source": "u2"}))
        .await
    {
        ServerFrame::Ack { .. } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(watcher.expect().await.json()["source"], "u1");
    match ws_a.emit("2", json!({"type": "order.placed"})).await {
        ServerFrame::Error {
            code, reference, ..
        } => {
            assert_eq!(code, ErrorCode::Forbidden);
            assert_eq!(reference.as_deref(), Some("2"));
        }
        other => panic!("{other:?}"),
    }
    // HTTP: the token's rights apply; anonymous gets 401; the API key may do anything.
    let post = |auth: Option<String>, body: Value| {
        let mut r = gw.http.post(gw.url("/v1/events")).body(body.to_string());
        if let Some(a) = auth {
            r = r.bearer_auth(a);
        }
        r.send()
    };
    assert_eq!(
        post(Some(a.clone()), json!({"type": "ui.x"}))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        post(Some(a.clone()), json!({"type": "order.x"}))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        post(
            Some(a.clone()),
            json!([{"type": "ui.y"}, {"type": "order.y"}])
        )
        .await
        .unwrap()
        .status(),
        403,
        "a batch is all or nothing"
    );
    assert_eq!(
        post(None, json!({"type": "ui.x"})).await.unwrap().status(),
        401
    );
    assert_eq!(
        post(
            Some("svc-key".into()),
            json!({"type": "order.x", "source": "billing"})
        )
        .await
        .unwrap()
        .status(),
        200
    );
    let got: Vec<Value> = watcher.take(1).await.iter().map(SseEvent::json).collect();
    assert_eq!(
        got[0]["type"], "ui.x",
        "the refused batch published nothing (ui.y is absent)"
    );
    watcher.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn an_expiring_websocket_token_is_refreshed_in_band_without_losing_subscriptions() {
    let gw = secured().await;
    let short = hs(&claims("u1", 1));
    let (ws, _) = tokio_tungstenite::connect_async(format!("{}?access_token={short}", gw.ws_url()))
        .await
        .unwrap();
    let mut c = WsClient { ws };
    c.recv().await;
    assert!(c.subscribe(&["user.u1.>"], None).await);
    match c.recv().await {
        ServerFrame::Error {
            code: ErrorCode::TokenExpired,
            reference: None,
            ..
        } => {}
        other => panic!("expected token_expired, got {other:?}"),
    }
    c.send(json!({"op": "auth", "ref": "r", "token": hs(&claims("u1", 600))}))
        .await;
    match c.recv().await {
        ServerFrame::Authenticated {
            reference,
            expires_at,
        } => {
            assert_eq!(reference.as_deref(), Some("r"));
            assert!(expires_at.unwrap() > now() + 500);
        }
        other => panic!("{other:?}"),
    }
    svc_publish(&gw, "user.u1.inbox", 1).await;
    assert_eq!(
        c.expect_event().await["data"]["n"],
        1,
        "the subscription survived the refresh"
    );
    // Another subject's token is refused.
    c.send(json!({"op": "auth", "token": hs(&claims("u2", 600))}))
        .await;
    assert!(matches!(
        c.recv().await,
        ServerFrame::Error {
            code: ErrorCode::Forbidden,
            ..
        }
    ));
}

#[tokio::test]
async fn an_unrefreshed_token_ends_the_connection() {
    let gw = secured().await;
    let short = hs(&claims("u1", 1));
    let (ws, _) = tokio_tungstenite::connect_async(format!("{}?access_token={short}", gw.ws_url()))
        .await
        .unwrap();
    let mut ws = ws;
    let close = loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no close")
        {
            Some(Ok(Message::Close(f))) => break f.unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 4002);
    assert_eq!(close.reason.as_str(), "token_expired");

    let mut sse = SseClient::connect(
        &gw,
        &format!("topic=user.u1.%3E&access_token={short}"),
        None,
    )
    .await;
    sse.welcome().await;
    let last = sse.expect().await;
    assert_eq!(last.event.as_deref(), Some("$close"));
    assert_eq!(last.json()["code"], "token_expired");
}

#[tokio::test]
async fn websocket_origins_outside_the_allow_list_are_refused() {
    let gw = secured().await;
    let token = hs(&claims("u1", 600));
    let mut req = format!("{}?access_token={token}", gw.ws_url())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await.unwrap_err() {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 403),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_open_gateway_refuses_a_public_address_unless_told_otherwise() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eventwire-gateway"))
        .args(["--listen", "0.0.0.0:0"])
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("--insecure"), "{text}");
}
