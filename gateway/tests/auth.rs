//! The auth matrix over real sockets, on both transports: who may subscribe
//! to, receive and emit what, and zero deliveries outside the rights.

mod common;

use common::tokens::*;
use common::*;
use eventwire_protocol::ErrorCode;
use eventwire_protocol::frame::ServerFrame;
use futures_util::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

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

/// `GET /v1/events` with an optional bearer token: (status, error code or
/// the event types returned).
async fn history(gw: &TestGateway, query: &str, token: Option<&str>) -> (u16, Vec<String>) {
    let mut r = gw.http.get(gw.url(&format!("/v1/events?{query}")));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    if status != 200 {
        return (status, vec![body["error"]["code"].as_str().unwrap().into()]);
    }
    let types = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    (status, types)
}

#[tokio::test]
async fn history_is_as_private_as_subscribing() {
    let gw = secured().await;
    for (n, ty) in ["user.u1.inbox", "user.u2.inbox", "public.news", "private.x"]
        .iter()
        .enumerate()
    {
        svc_publish(&gw, ty, n as u64).await;
    }
    let u1 = hs(&claims("u1", 600));
    let refused = |code: &str| {
        (
            if code == "unauthorized" { 401 } else { 403 },
            vec![code.to_owned()],
        )
    };
    // No token, or a bad one: nothing, with the codes SSE gives.
    assert_eq!(
        history(&gw, "topic=%3E", None).await,
        refused("unauthorized")
    );
    assert_eq!(
        history(&gw, "topic=%3E", Some("x.y.z")).await,
        refused("unauthorized")
    );
    assert_eq!(
        history(&gw, "topic=user.u1.%3E&access_token=garbage", None).await,
        refused("unauthorized")
    );
    // A user reads what their rights cover, and only that.
    assert_eq!(
        history(&gw, "topic=%3E", Some(&u1)).await,
        refused("forbidden")
    );
    assert_eq!(
        history(&gw, "topic=user.u2.%3E", Some(&u1)).await,
        refused("forbidden"),
        "another user's private topic"
    );
    assert_eq!(
        history(&gw, "topic=user.u1.%3E&topic=private.x", Some(&u1)).await,
        refused("forbidden"),
        "one uncovered pattern refuses the read"
    );
    assert_eq!(
        history(&gw, "topic=user.u1.%3E&topic=public.%3E", Some(&u1)).await,
        (200, vec!["user.u1.inbox".into(), "public.news".into()])
    );
    assert_eq!(
        history(&gw, &format!("topic=user.u1.%3E&access_token={u1}"), None).await,
        (200, vec!["user.u1.inbox".into()]),
        "the query token works as on SSE"
    );
    // The anonymous policy applies; the API key reads everything.
    assert_eq!(
        history(&gw, "topic=public.%3E", None).await,
        (200, vec!["public.news".into()])
    );
    assert_eq!(history(&gw, "topic=%3E", Some("svc-key")).await.1.len(), 4);
}

#[tokio::test]
async fn one_identity_can_neither_suppress_nor_probe_another_ones_ids() {
    let gw = secured().await;
    let u1 = hs(&claims("u1", 600));
    let u2 = hs(&claims("u2", 600));
    let publish = |token: &str, body: Value| {
        let r = gw
            .http
            .post(gw.url("/v1/events"))
            .bearer_auth(token)
            .body(body.to_string())
            .send();
        async move {
            let r = r.await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let mut inbox = SseClient::connect(&gw, "topic=user.u2.%3E&access_token=svc-key", None).await;
    inbox.welcome().await;
    // u1 (who may publish only `ui.>`) takes an id first...
    let first = publish(&u1, json!({"type": "ui.x", "id": "order-7"})).await;
    assert_eq!(first["duplicate"], false);
    // ...which neither suppresses a service's event for u2 with that id...
    let private = publish(
        "svc-key",
        json!({"type": "user.u2.inbox", "id": "order-7", "source": "billing"}),
    )
    .await;
    assert_eq!(private["duplicate"], false);
    assert_ne!(private["seq"], first["seq"]);
    assert_eq!(inbox.expect().await.json()["id"], "order-7", "delivered");
    // ...nor u2's own.
    let mine = publish(&u2, json!({"type": "ui.x", "id": "order-7"})).await;
    assert_eq!(mine["duplicate"], false);
    // Probing an id someone else used reveals nothing: a new event, new seq.
    let secret = publish(
        "svc-key",
        json!({"type": "user.u2.inbox", "id": "secret-9"}),
    )
    .await;
    let probe = publish(&u1, json!({"type": "ui.x", "id": "secret-9"})).await;
    assert_eq!(probe["duplicate"], false);
    assert_ne!(probe["seq"], secret["seq"]);
    // Claiming the service's source does not help: it is stamped u1.
    let claimed = publish(
        &u1,
        json!({"type": "ui.x", "id": "order-7", "source": "billing"}),
    )
    .await;
    assert_eq!(claimed["duplicate"], true, "u1's own id, retried");
    assert_eq!(claimed["seq"], first["seq"]);
    // Within one identity, dedupe works as before.
    let again = publish(&u2, json!({"type": "ui.y", "id": "order-7"})).await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["seq"], mine["seq"]);
}

#[tokio::test]
async fn a_configured_audience_or_issuer_must_be_present_in_the_token() {
    let mut cfg = secured_config();
    cfg.auth.jwt_issuer = Some("idp".into());
    let gw = start(cfg).await;
    let mut both = claims("u1", 600);
    both["iss"] = json!("idp");
    let mut no_aud = both.clone();
    no_aud.as_object_mut().unwrap().remove("aud");
    let mut no_iss = both.clone();
    no_iss.as_object_mut().unwrap().remove("iss");
    assert_eq!(
        sse_status(&gw, "topic=user.u1.inbox", Some(&hs(&both))).await,
        (200, String::new())
    );
    for (name, c, claim) in [("no aud", no_aud, "aud"), ("no iss", no_iss, "iss")] {
        let r = gw
            .http
            .get(gw.url("/v1/sse?topic=user.u1.inbox"))
            .bearer_auth(hs(&c))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{name}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{name}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("`{claim}`")), "{name}: {message}");
        // The same token is refused for publishing and on WebSocket.
        let (status, _) = history(&gw, "topic=user.u1.%3E", Some(&hs(&c))).await;
        assert_eq!(status, 401, "{name}");
        match tokio_tungstenite::connect_async(format!("{}?access_token={}", gw.ws_url(), hs(&c)))
            .await
        {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 401, "{name}")
            }
            other => panic!("{name}: WS not refused: {:?}", other.map(|_| ())),
        }
    }
}

#[tokio::test]
async fn anonymous_publishes_cannot_claim_a_source() {
    let mut cfg = secured_config();
    cfg.auth.anonymous_publish = vec!["public.>".into()];
    let gw = start(cfg).await;
    let mut watcher = SseClient::connect(&gw, "topic=public.%3E&access_token=svc-key", None).await;
    watcher.welcome().await;
    let (status, _) = gw
        .post(json!({"type": "public.chat", "source": "u1", "id": "a-1"}).to_string())
        .await;
    assert_eq!(status, 200);
    let (mut ws, _) = WsClient::connect(&gw).await;
    match ws
        .emit(
            "e",
            json!({"type": "public.chat", "source": "u1", "id": "a-2"}),
        )
        .await
    {
        ServerFrame::Ack { .. } => {}
        other => panic!("{other:?}"),
    }
    for _ in 0..2 {
        let ev = watcher.expect().await.json();
        assert_eq!(ev["source"], "eventwire/anonymous", "{ev}");
    }
}
