//! The channel in headless Chromium against real gateways, over both
//! transports. `scripts/test` starts the gateways and passes their URLs at
//! compile time:
//!
//! - `EVENTWIRE_TEST_GATEWAY`: defaults, CORS open.
//! - `EVENTWIRE_TEST_GATEWAY_TIGHT`: an 8 KiB outbox, so a 100-event batch
//!   makes the gateway cut a connection as `slow_consumer`.
//! - `EVENTWIRE_TEST_GATEWAY_NO_WS`: `--websocket=false`.
//! - `EVENTWIRE_TEST_GATEWAY_AUTH`: `--jwt-secret $EVENTWIRE_TEST_JWT_SECRET`
//!   and a 1 s heartbeat (so an expired token's grace period is short).

#![cfg(target_arch = "wasm32")]

use eventwire_channel::{Callbacks, Channel};
use js_sys::{Function, Object, Promise, Reflect};
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn gateway(which: &str) -> &'static str {
    match which {
        "main" => option_env!("EVENTWIRE_TEST_GATEWAY"),
        "tight" => option_env!("EVENTWIRE_TEST_GATEWAY_TIGHT"),
        "auth" => option_env!("EVENTWIRE_TEST_GATEWAY_AUTH"),
        _ => option_env!("EVENTWIRE_TEST_GATEWAY_NO_WS"),
    }
    .expect("run through scripts/test, which starts the gateways and sets EVENTWIRE_TEST_GATEWAY*")
}

const TRANSPORTS: [&str; 2] = ["websocket", "sse"];

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &key.into()).unwrap()
}

fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

/// The promise an emit returned, to await.
fn settle(promise: JsValue) -> JsFuture {
    JsFuture::from(promise.unchecked_into::<Promise>())
}

/// A channel as `index.js` makes one from the `connect` options: backoff
/// 200 ms up to 1 s, the `topics` subscribed without a handler, and an
/// `io` function that hands every browser signal back to the channel
/// (`index.js` does that through the wasm's `io` export and a handle).
fn channel(base: &str, transport: &str, topics: &[&str], token: JsValue) -> Rc<Channel> {
    let kind = match transport {
        "websocket" => 1,
        "sse" => 2,
        _ => 0,
    };
    let nan = f64::NAN;
    let slot: Rc<RefCell<Weak<Channel>>> = Rc::new(RefCell::new(Weak::new()));
    let target = slot.clone();
    let io = Closure::<dyn Fn(u32, f64, JsValue, u32)>::new(
        move |what: u32, n: f64, data: JsValue, status: u32| {
            if let Some(c) = target.borrow().upgrade() {
                c.io(what, n, data, status);
            }
        },
    );
    let channel = Rc::new(Channel::new(
        base.into(),
        kind,
        200.0,
        1000.0,
        nan,
        nan,
        token,
        Callbacks::new(),
        io.into_js_value(),
    ));
    *slot.borrow_mut() = Rc::downgrade(&channel);
    for t in topics {
        channel.subscribe(t, &JsValue::UNDEFINED).unwrap();
    }
    channel
}

async fn sleep(ms: i32) {
    let p = Promise::new(&mut |resolve, _| {
        let set_timeout: Function = get(&js_sys::global(), "setTimeout").unchecked_into();
        set_timeout
            .call2(&JsValue::NULL, &resolve, &ms.into())
            .unwrap();
    });
    JsFuture::from(p).await.unwrap();
}

/// Waits up to 10 s for `cond`.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        sleep(20).await;
    }
    panic!("timed out waiting for {what}");
}

/// POSTs a JSON body to the gateway with the browser's fetch.
async fn post(base: &str, body: &str) -> JsValue {
    let f = Function::new_with_args(
        "url, body",
        "return fetch(url, {method: 'POST', headers: {'content-type': 'application/json'}, body}).then(async r => { if (!r.ok) throw new Error(await r.text()); return r.json(); })",
    );
    let p: Promise = f
        .call2(
            &JsValue::NULL,
            &format!("{base}/v1/events").into(),
            &body.into(),
        )
        .unwrap()
        .unchecked_into();
    JsFuture::from(p).await.expect("publish failed")
}

/// A unique topic root per test, so tests sharing a gateway cannot interfere.
fn root(name: &str, transport: &str) -> String {
    let n = (js_sys::Math::random() * 1e9) as u64;
    format!("t{n}.{name}.{transport}")
}

struct Recorder {
    events: Rc<RefCell<Vec<JsValue>>>,
    f: Function,
    _keep: Closure<dyn FnMut(JsValue)>,
}

fn recorder() -> Recorder {
    let events = Rc::new(RefCell::new(Vec::new()));
    let e = events.clone();
    let c = Closure::<dyn FnMut(JsValue)>::new(move |v: JsValue| e.borrow_mut().push(v));
    Recorder {
        events,
        f: c.as_ref().unchecked_ref::<Function>().clone(),
        _keep: c,
    }
}

impl Recorder {
    fn len(&self) -> usize {
        self.events.borrow().len()
    }
    fn data_n(&self) -> Vec<u32> {
        self.events
            .borrow()
            .iter()
            .map(|e| get(&get(e, "data"), "n").as_f64().unwrap() as u32)
            .collect()
    }
    fn get(&self, i: usize) -> JsValue {
        self.events.borrow()[i].clone()
    }
}

struct Connected {
    channel: Rc<Channel>,
    states: Recorder,
    errors: Recorder,
}

async fn connect(base: &str, transport: &str, topics: &[&str]) -> Connected {
    let channel = channel(base, transport, topics, JsValue::UNDEFINED);
    let states = recorder();
    let st = states.events.clone();
    let on_state = Closure::<dyn FnMut(JsValue, JsValue)>::new(move |s: JsValue, info: JsValue| {
        st.borrow_mut().push(obj(&[("state", s), ("info", info)]));
    });
    channel.on_state(on_state.as_ref());
    on_state.forget();
    let errors = recorder();
    channel.on_error(&errors.f);
    channel.start();
    let c = Connected {
        channel,
        states,
        errors,
    };
    for _ in 0..500 {
        if c.channel.state() == "open" {
            return c;
        }
        sleep(20).await;
    }
    let errors: Vec<String> = c
        .errors
        .events
        .borrow()
        .iter()
        .map(|e| format!("{e:?}"))
        .collect();
    panic!(
        "the channel did not open over {transport}: states {:?}, errors {errors:?}",
        c.states()
    );
}

impl Connected {
    /// Subscribes a fresh recorder to `pattern`.
    fn record(&self, pattern: &str) -> Recorder {
        let r = recorder();
        self.channel.subscribe(pattern, &r.f).unwrap();
        r
    }

    fn states(&self) -> Vec<String> {
        self.states
            .events
            .borrow()
            .iter()
            .map(|s| get(s, "state").as_string().unwrap())
            .collect()
    }
    fn error_codes(&self) -> Vec<String> {
        self.errors
            .events
            .borrow()
            .iter()
            .map(|e| get(e, "code").as_string().unwrap_or_default())
            .collect()
    }
}

fn events_json(ty: &str, from: u32, to: u32, pad: usize) -> String {
    let items: Vec<String> = (from..=to)
        .map(|n| {
            format!(
                r#"{{"type":"{ty}","data":{{"n":{n},"pad":"{}"}}}}"#,
                "p".repeat(pad)
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

#[wasm_bindgen_test]
async fn subscribe_and_receive_on_both_transports() {
    for transport in TRANSPORTS {
        let base = gateway("main");
        let r = root("recv", transport);
        let c = connect(base, transport, &[]).await;
        assert_eq!(
            c.channel.transport().as_string().as_deref(),
            Some(transport)
        );
        let got = c.record(&format!("{r}.*"));
        // The subscription may need a moment (SSE reopens its stream).
        sleep(300).await;
        let receipt = post(
            base,
            &format!(
                r#"{{"type":"{r}.placed","data":{{"n":7,"total":42}},"correlationid":"c-1"}}"#
            ),
        )
        .await;
        until("the event", || got.len() == 1).await;
        let e = got.get(0);
        assert_eq!(get(&e, "type").as_string().unwrap(), format!("{r}.placed"));
        assert_eq!(get(&get(&e, "data"), "total").as_f64(), Some(42.0));
        assert_eq!(get(&e, "correlationid").as_string().as_deref(), Some("c-1"));
        assert_eq!(get(&e, "seq"), get(&receipt, "seq"));
        assert_eq!(c.channel.last_seq(), get(&receipt, "seq").as_string());
        c.channel.close();
        assert_eq!(c.channel.state(), "closed");
    }
}

#[wasm_bindgen_test]
async fn emit_resolves_with_the_gateway_receipt_on_both_transports() {
    for transport in TRANSPORTS {
        let base = gateway("main");
        let r = root("emit", transport);
        let c = connect(base, transport, &[&format!("{r}.>")]).await;
        let got = c.record(&format!("{r}.>"));
        let options = obj(&[("correlationid", "corr-9".into())]);
        let data = obj(&[("target", "buy".into()), ("n", 1.into())]);
        let receipt = settle(c.channel.emit(&format!("{r}.clicked"), &data, &options))
            .await
            .unwrap();
        let id = get(&receipt, "id").as_string().unwrap();
        assert!(!id.is_empty());
        assert!(
            get(&receipt, "seq")
                .as_string()
                .is_some_and(|s| !s.is_empty())
        );
        assert_eq!(get(&receipt, "duplicate").as_bool(), Some(false));
        until("our own event back", || got.len() == 1).await;
        let e = got.get(0);
        assert_eq!(get(&e, "id").as_string(), Some(id));
        assert_eq!(
            get(&e, "correlationid").as_string().as_deref(),
            Some("corr-9")
        );
        assert_eq!(
            get(&get(&e, "data"), "target").as_string().as_deref(),
            Some("buy")
        );

        // A bad type and an oversized payload are refused with codes, and
        // the channel carries on.
        let bad = settle(
            c.channel
                .emit("not a topic", &JsValue::NULL, &JsValue::UNDEFINED),
        )
        .await
        .unwrap_err();
        assert_eq!(
            get(&bad, "code").as_string().as_deref(),
            Some("invalid_topic")
        );
        let huge = JsValue::from_str(&"x".repeat(70_000));
        let big = settle(
            c.channel
                .emit(&format!("{r}.big"), &huge, &JsValue::UNDEFINED),
        )
        .await
        .unwrap_err();
        assert_eq!(
            get(&big, "code").as_string().as_deref(),
            Some("event_too_large")
        );
        settle(c.channel.emit(
            &format!("{r}.after"),
            &obj(&[("n", 2.into())]),
            &JsValue::UNDEFINED,
        ))
        .await
        .unwrap();
        until("the event after the refusals", || got.len() == 2).await;
        c.channel.close();
    }
}

#[wasm_bindgen_test]
async fn patterns_route_like_the_gateway() {
    for transport in TRANSPORTS {
        let base = gateway("main");
        let r = root("pat", transport);
        let c = connect(base, transport, &[]).await;
        let star = recorder();
        let rest = recorder();
        let exact = recorder();
        c.channel.subscribe(&format!("{r}.*"), &star.f).unwrap();
        c.channel.subscribe(&format!("{r}.>"), &rest.f).unwrap();
        c.channel.subscribe(&format!("{r}.a.b"), &exact.f).unwrap();
        assert!(
            c.channel.subscribe("bad pattern", &star.f).is_err(),
            "invalid patterns throw"
        );
        sleep(300).await;
        post(base, &format!(r#"[{{"type":"{r}.a","data":{{"n":1}}}},{{"type":"{r}.a.b","data":{{"n":2}}}},{{"type":"other.x","data":{{"n":3}}}}]"#)).await;
        until("routing", || rest.len() == 2).await;
        sleep(100).await;
        assert_eq!(star.data_n(), [1]);
        assert_eq!(rest.data_n(), [1, 2]);
        assert_eq!(exact.data_n(), [2]);
        c.channel.close();
    }
}

#[wasm_bindgen_test]
async fn a_connection_cut_by_the_gateway_resumes_without_loss_or_duplicates() {
    for transport in TRANSPORTS {
        let base = gateway("tight");
        let r = root("resume", transport);
        let c = connect(base, transport, &[&format!("{r}.>")]).await;
        let got = c.record(&format!("{r}.>"));
        sleep(200).await;
        // 200 events in two bursts of 100, each far over the 8 KiB outbox:
        // the gateway cuts the connection as a slow consumer.
        post(base, &events_json(&format!("{r}.e"), 1, 100, 200)).await;
        post(base, &events_json(&format!("{r}.e"), 101, 200, 200)).await;
        for _ in 0..500 {
            if got.len() >= 200 {
                break;
            }
            sleep(20).await;
        }
        assert!(
            got.len() >= 200,
            "{transport}: got {} events {:?}, states {:?}, errors {:?}",
            got.len(),
            got.data_n(),
            c.states(),
            c.error_codes()
        );
        sleep(300).await;
        assert_eq!(
            got.data_n(),
            (1..=200).collect::<Vec<_>>(),
            "every event once, in order"
        );
        let states = c.states();
        assert!(
            states.iter().any(|s| s == "reconnecting"),
            "the gateway did cut the connection: {states:?}"
        );
        assert_eq!(states.last().map(String::as_str), Some("open"));
        let last = c.states.events.borrow().last().cloned().unwrap();
        assert_eq!(get(&get(&last, "info"), "recovered").as_bool(), Some(true));
        c.channel.close();
    }
}

#[wasm_bindgen_test]
async fn emits_made_while_disconnected_are_flushed_in_order() {
    for transport in TRANSPORTS {
        let base = gateway("tight");
        let r = root("outbox", transport);
        let watcher = connect(gateway("tight"), "sse", &[&format!("{r}.ui.>")]).await;
        let seen = recorder();
        watcher
            .channel
            .subscribe(&format!("{r}.ui.>"), &seen.f)
            .unwrap();
        let c = connect(base, transport, &[&format!("{r}.kick")]).await;
        sleep(200).await;
        // Get the channel cut off, then emit while it is reconnecting.
        post(base, &events_json(&format!("{r}.kick"), 1, 100, 200)).await;
        until("the channel to notice", || {
            c.channel.state() == "reconnecting"
        })
        .await;
        let mut receipts = Vec::new();
        for n in 1..=20 {
            receipts.push(c.channel.emit(
                &format!("{r}.ui.clicked"),
                &obj(&[("n", n.into())]),
                &JsValue::UNDEFINED,
            ));
        }
        for p in receipts {
            settle(p).await.expect("every queued emit is accepted");
        }
        until("the 20 emits at the watcher", || seen.len() >= 20).await;
        sleep(300).await;
        assert_eq!(
            seen.data_n(),
            (1..=20).collect::<Vec<_>>(),
            "exactly once, in order"
        );
        c.channel.close();
        watcher.channel.close();
    }
}

#[wasm_bindgen_test]
async fn a_throwing_handler_does_not_stop_the_others() {
    for transport in TRANSPORTS {
        let base = gateway("main");
        let r = root("iso", transport);
        let c = connect(base, transport, &[&format!("{r}.x")]).await;
        let thrower = Function::new_with_args("e", "throw new Error('handler bug')");
        c.channel.subscribe(&format!("{r}.x"), &thrower).unwrap();
        let got = c.record(&format!("{r}.x"));
        post(base, &format!(r#"{{"type":"{r}.x","data":{{"n":1}}}}"#)).await;
        post(base, &format!(r#"{{"type":"{r}.x","data":{{"n":2}}}}"#)).await;
        until("both events at the healthy handler", || got.len() == 2).await;
        assert_eq!(c.error_codes(), ["handler_error", "handler_error"]);
        let e = c.errors.get(0);
        assert!(
            get(&get(&e, "cause"), "message")
                .as_string()
                .unwrap()
                .contains("handler bug")
        );
        c.channel.close();
    }
}

#[wasm_bindgen_test]
async fn a_malformed_frame_is_reported_and_the_channel_carries_on() {
    for transport in TRANSPORTS {
        let base = gateway("main");
        let r = root("bad", transport);
        let c = connect(base, transport, &[&format!("{r}.x")]).await;
        let got = c.record(&format!("{r}.x"));
        c.channel.inject_frame("{not json");
        c.channel
            .inject_frame(r#"{"op":"event","event":{"type":"x"}}"#);
        c.channel.inject_frame("[1,2]");
        assert_eq!(
            c.error_codes(),
            ["malformed_frame", "malformed_frame", "malformed_frame"]
        );
        post(base, &format!(r#"{{"type":"{r}.x","data":{{"n":1}}}}"#)).await;
        until("the next real event", || got.len() == 1).await;
        assert_eq!(c.channel.state(), "open");
        c.channel.close();
    }
}

#[wasm_bindgen_test]
async fn auto_falls_back_to_sse_when_websocket_is_refused() {
    let base = gateway("no_ws");
    let r = root("fallback", "auto");
    let c = connect(base, "auto", &[&format!("{r}.x")]).await;
    assert_eq!(c.channel.transport().as_string().as_deref(), Some("sse"));
    let got = c.record(&format!("{r}.x"));
    sleep(300).await;
    post(base, &format!(r#"{{"type":"{r}.x","data":{{"n":1}}}}"#)).await;
    until("the event over SSE", || got.len() == 1).await;
    let receipt = settle(c.channel.emit(
        &format!("{r}.x"),
        &obj(&[("n", 2.into())]),
        &JsValue::UNDEFINED,
    ))
    .await
    .unwrap();
    assert!(
        get(&receipt, "seq").is_string(),
        "emit works over the fallback too"
    );
    c.channel.close();
}

#[wasm_bindgen_test]
async fn the_token_function_is_called_again_on_every_connect() {
    for transport in TRANSPORTS {
        let base = gateway("tight");
        let r = root("token", transport);
        let calls = Rc::new(RefCell::new(0u32));
        let c2 = calls.clone();
        let token = Closure::<dyn FnMut() -> JsValue>::new(move || {
            *c2.borrow_mut() += 1;
            // An async token source: a promise of a string.
            let t = JsValue::from_str(&format!("token-{}", c2.borrow()));
            Promise::resolve(&t).into()
        });
        let channel = channel(
            base,
            transport,
            &[&format!("{r}.>")],
            token.as_ref().clone(),
        );
        channel.start();
        until("the channel to open", || channel.state() == "open").await;
        assert_eq!(*calls.borrow(), 1);
        // Make the gateway cut the connection; the reconnect asks for a fresh token.
        post(base, &events_json(&format!("{r}.kick"), 1, 100, 200)).await;
        until("a second token", || *calls.borrow() >= 2).await;
        until("the channel to reopen", || channel.state() == "open").await;
        channel.close();
    }
}

/// Mints an HS256 token in the page with WebCrypto, as an app's token
/// endpoint would; `exp_in` seconds from now.
async fn mint(sub: &str, exp_in: u32) -> String {
    let Some(secret) = option_env!("EVENTWIRE_TEST_JWT_SECRET") else {
        panic!("run through scripts/test, which sets EVENTWIRE_TEST_JWT_SECRET")
    };
    let f = Function::new_with_args(
        "secret, sub, expIn",
        r#"
        const enc = new TextEncoder();
        const b64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
        const part = (o) => b64(enc.encode(JSON.stringify(o)));
        const head = part({ alg: 'HS256', typ: 'JWT' });
        const body = part({ sub, exp: Math.floor(Date.now() / 1000) + expIn,
          eventwire: { subscribe: ['user.{sub}.>'], publish: ['user.{sub}.>'] } });
        return crypto.subtle.importKey('raw', enc.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
          .then((key) => crypto.subtle.sign('HMAC', key, enc.encode(`${head}.${body}`)))
          .then((sig) => `${head}.${body}.${b64(sig)}`);
        "#,
    );
    let p: Promise = f
        .call3(&JsValue::NULL, &secret.into(), &sub.into(), &exp_in.into())
        .unwrap()
        .unchecked_into();
    JsFuture::from(p).await.unwrap().as_string().unwrap()
}

#[wasm_bindgen_test]
async fn an_expiring_token_is_refreshed_and_nothing_is_lost() {
    let base = gateway("auth");
    for transport in TRANSPORTS {
        let sub = format!("u{}", (js_sys::Math::random() * 1e9) as u64);
        // The first token lives 2 s; later ones an hour.
        let short = mint(&sub, 2).await;
        let long = mint(&sub, 3600).await;
        let calls = Rc::new(RefCell::new(0u32));
        let c2 = calls.clone();
        let token = Closure::<dyn FnMut() -> JsValue>::new(move || {
            *c2.borrow_mut() += 1;
            let t = if *c2.borrow() == 1 { &short } else { &long };
            let t = JsValue::from_str(t);
            Promise::resolve(&t).into()
        });
        let channel = channel(
            base,
            transport,
            &[&format!("user.{sub}.>")],
            token.as_ref().clone(),
        );
        let got = recorder();
        channel.subscribe(&format!("user.{sub}.>"), &got.f).unwrap();
        channel.start();
        until("the channel to open", || channel.state() == "open").await;
        // Emit across the expiry: every one is accepted and delivered once.
        for n in 1..=8u32 {
            settle(channel.emit(
                &format!("user.{sub}.note"),
                &obj(&[("n", n.into())]),
                &JsValue::UNDEFINED,
            ))
            .await
            .unwrap_or_else(|e| panic!("{transport}: emit {n} failed: {e:?}"));
            sleep(500).await;
        }
        until("all 8 events", || got.len() >= 8).await;
        sleep(300).await;
        assert_eq!(got.data_n(), (1..=8).collect::<Vec<_>>(), "{transport}");
        assert!(
            *calls.borrow() >= 2,
            "{transport}: the token function was asked again"
        );
        assert_eq!(channel.state(), "open");
        channel.close();
    }
}
