//! One channel in the browser: it owns the browser resources (transports,
//! the timer, JS callbacks) and feeds the [`Machine`], carrying out its
//! actions. `exports.rs` hands it to `js/index.js`.
//!
//! Everything the browser reports comes through one JS function per
//! channel, `io(tag, n, data, status)` (see `js/io.js` and
//! `transport::tag`), which calls [`Channel::io`]: not a closure per
//! transport event, and no Rust closure at all (`index.js` makes the
//! function; it calls the wasm's `io` export with the channel's handle).
//!
//! Re-entrancy: a handler may call `emit`, `subscribe` or `close` while an
//! event is being delivered. The machine is never borrowed while JS runs:
//! `feed` takes the actions out first and only then performs them.

use crate::cell::{read, write};
use crate::frames::{self, Malformed};
use crate::machine::{Action, Config, Emit, Input, Kind, Machine, Preference, code};
use crate::outgoing;
use crate::prelude::*;
use crate::transport::http::{self, PostOutcome};
use crate::transport::{Signal, Transport, tag};
use alloc::rc::Rc;
use core::cell::{Cell, RefCell};
use eventwire_protocol::{ErrorCode, Pattern};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/io.js")]
extern "C" {
    /// Calls the `token` function (it may return a promise); `io` gets
    /// `(tag, generation, token)` once it settles, `tag + 1` on failure.
    fn token(source: &JsValue, tag: u32, generation: u32, io: &JsValue);
    /// `setTimeout(io, ms, TICK)`; returns the handle.
    fn wake(io: &JsValue, ms: u32) -> f64;
    /// An event id: `crypto.randomUUID()` where the page is a secure
    /// context, 32 random hex digits otherwise.
    /// (A JS string, read with `as_string`: a `String` return would bring
    /// wasm-bindgen's boxed-slice conversion along.)
    fn uuid() -> JsValue;
    /// `JSON.stringify(data)`, or what it threw (a cycle, a BigInt).
    fn stringify(data: &JsValue) -> JsValue;
    /// An `Error` with a `code`, as every rejection and `onError` carries.
    fn failure(code: &str, message: &str) -> JsValue;

    /// The app's side of a channel: listeners, pending emits' promises,
    /// errors as `Error`s with a `code`, and calls that isolate what an
    /// app function throws. `index.js` makes one per channel and keeps its
    /// listeners; the channel only reports to it.
    pub type Callbacks;
    #[wasm_bindgen(constructor)]
    pub fn new() -> Callbacks;
    /// Adds an `onState` (or, with `errors`, an `onError`) listener;
    /// returns the function that removes it.
    #[wasm_bindgen(method)]
    pub fn listen(this: &Callbacks, errors: bool, listener: &JsValue) -> JsValue;
    /// Sets the function of handler `id`; undefined removes it.
    #[wasm_bindgen(method)]
    fn handler(this: &Callbacks, id: u32, f: &JsValue);
    /// Calls handler `id` with `event`, if it is still there; a throw goes
    /// to `onError` as `handler_error`.
    #[wasm_bindgen(method)]
    fn handle(this: &Callbacks, id: u32, event: &JsValue);
    /// A state change, in numbers so that no names cross: `state` as
    /// [`State`](crate::machine::State) counts (0 connecting … 3 closed),
    /// `transport` 0 none, 1 WebSocket, 2 SSE, `recovered` 0 or 1 (2: not
    /// said), `delay_ms` NaN when not said. `Callbacks` keeps the state and
    /// transport for the `EventChannel` getters.
    #[wasm_bindgen(method)]
    fn state(
        this: &Callbacks,
        state: u32,
        transport: u32,
        attempt: u32,
        recovered: u32,
        delay_ms: f64,
    );
    /// Hands `e` to the `onError` listeners as it is.
    #[wasm_bindgen(method)]
    fn report(this: &Callbacks, e: &JsValue);
    /// An `Error` with `code` to the `onError` listeners.
    #[wasm_bindgen(method)]
    fn error(this: &Callbacks, code: &str, message: &str);
    /// The promise of emit `reference`.
    #[wasm_bindgen(method)]
    fn emit(this: &Callbacks, reference: f64) -> JsValue;
    /// Resolves emit `reference` with the `id`, `seq` and `duplicate` of
    /// the gateway's receipt (an ack frame or a POST's answer).
    #[wasm_bindgen(method)]
    fn resolve(this: &Callbacks, reference: f64, receipt: &JsValue);
    #[wasm_bindgen(method)]
    fn reject(this: &Callbacks, reference: f64, code: &str, message: &str);
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(handle: f64);
    #[wasm_bindgen(js_namespace = Date)]
    fn now() -> f64;
    #[wasm_bindgen(js_namespace = Math)]
    fn random() -> f64;
}

use frames::get as opt;

fn new_id() -> String {
    uuid().as_string().unwrap_or_default()
}

/// A handler: its id and the pattern it was subscribed with. The function
/// itself stays on the JS side (`Callbacks.handlers`), which calls it by id.
struct Handler {
    id: u32,
    pattern: Pattern,
}

/// A transport the machine asked for, waiting for the token function.
struct Opening {
    kind: Kind,
    topics: Vec<String>,
    since: Option<String>,
}

struct Inner {
    machine: RefCell<Machine<JsValue>>,
    /// The gateway's base URL, without a trailing slash.
    base: String,
    /// This channel's random instance id, sent on every connection so the
    /// gateway ends a stale one at once (PROTOCOL §4.6).
    instance: String,
    /// The `token` option: a string, a function returning one (or a promise
    /// of one), or undefined.
    token_source: JsValue,
    token: RefCell<Option<String>>,
    transport: RefCell<Option<Transport>>,
    /// A connect waiting for the token function.
    opening: RefCell<Option<Opening>>,
    /// Bumped whenever a transport is opened or let go; signals from an
    /// older generation are ignored.
    generation: Cell<u32>,
    /// Never borrowed while JS runs: delivery first lists the handlers
    /// that match, then calls them, so a handler may subscribe or
    /// unsubscribe while it runs.
    handlers: RefCell<Vec<Handler>>,
    keys: frames::Keys,
    callbacks: Callbacks,
    /// The pending `setTimeout`: its handle and when it is due.
    timer: Cell<Option<(f64, f64)>>,
    /// The one function the browser side calls (see the module comment).
    io: JsValue,
    next_id: Cell<u32>,
    next_ref: Cell<u64>,
}

impl Inner {
    fn feed(self: &Rc<Self>, input: Input<JsValue>) {
        let actions = write(&self.machine).handle(input, now(), random());
        for a in actions {
            self.perform(a);
        }
    }

    fn perform(self: &Rc<Self>, action: Action<JsValue>) {
        match action {
            Action::Open {
                kind,
                topics,
                since,
            } => self.open(Opening {
                kind,
                topics,
                since,
            }),
            Action::CloseTransport => self.let_go(),
            Action::Send(text) => {
                if let Some(t) = &*read(&self.transport) {
                    t.send(&text);
                }
            }
            Action::Post { reference, json } => {
                let url = outgoing::events(&self.base);
                let auth = read(&self.token).as_deref().map(outgoing::bearer);
                http::post(&url, &json, auth.as_deref(), reference as f64, &self.io);
            }
            Action::Deliver { ty, payload } => self.deliver(&ty, &payload),
            Action::Resolve { reference, receipt } => {
                self.callbacks.resolve(reference as f64, &receipt)
            }
            Action::Reject {
                reference,
                code,
                message,
            } => self.callbacks.reject(reference as f64, &code, &message),
            Action::Wake(ms) => self.wake_in(ms),
            Action::State {
                state,
                transport,
                recovered,
                attempt,
                delay_ms,
            } => self.callbacks.state(
                state as u32,
                transport.map_or(0, |k| k as u32 + 1),
                attempt,
                recovered.map_or(2, u32::from),
                delay_ms.unwrap_or(f64::NAN),
            ),
            Action::Error { code, message } => self.callbacks.error(&code, &message),
            Action::Reauth => self.reauth(),
        }
    }

    /// Lets the transport go: its late signals carry an old generation.
    fn let_go(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        if let Some(t) = write(&self.transport).take() {
            t.close();
        }
    }

    /// What the browser side reports (see the module comment).
    fn on_io(self: &Rc<Self>, what: u32, n: f64, data: JsValue, status: u32) {
        let current = n as u32 == self.generation.get();
        match what {
            tag::TICK => {
                self.timer.set(None);
                self.feed(Input::Tick);
            }
            tag::POSTED => self.posted(n as u64, status, data),
            tag::TOKEN if current => {
                *write(&self.token) = data.as_string();
                if let Some(o) = write(&self.opening).take() {
                    self.open_now(o);
                }
            }
            tag::TOKEN_FAILED if current => {
                self.callbacks.report(&data);
                self.feed(Input::Closed { code: None });
            }
            tag::REAUTH if current => {
                let Some(t) = data.as_string() else { return };
                let frame = outgoing::auth(&t);
                *write(&self.token) = Some(t);
                if let Some(tr) = &*read(&self.transport) {
                    tr.send(&frame);
                }
            }
            tag::REAUTH_FAILED => self.callbacks.report(&data),
            _ if current => {
                let kind = read(&self.machine).transport();
                if let (Some(kind), Some(signal)) = (kind, Signal::read(what, data)) {
                    self.on_signal(kind, signal);
                }
            }
            _ => {}
        }
    }

    /// Asks the token function for a fresh token and sends it in band.
    fn reauth(&self) {
        if self.token_source.is_function() {
            token(
                &self.token_source,
                tag::REAUTH,
                self.generation.get(),
                &self.io,
            );
        }
        // A fixed token cannot be refreshed; the gateway will close.
    }

    /// Calls the handlers whose pattern matches `ty`. One that is
    /// unsubscribed by an earlier one in the same delivery is not called
    /// (`Callbacks.handle` finds no function for its id).
    fn deliver(&self, ty: &str, payload: &JsValue) {
        let mut ids = Vec::new();
        for h in read(&self.handlers).iter() {
            if h.pattern.matches(ty) {
                ids.push(h.id);
            }
        }
        for id in ids {
            self.callbacks.handle(id, payload);
        }
    }

    /// Makes sure the machine gets a `Tick` within `ms`. A timer already due
    /// sooner is kept: the machine answers an early tick by asking for the
    /// next one. So the liveness deadline, which moves with every event, does
    /// not cost a `clearTimeout` + `setTimeout` per event.
    fn wake_in(&self, ms: f64) {
        let due = now() + ms;
        if self.timer.get().is_some_and(|(_, at)| at <= due) {
            return;
        }
        self.clear_timer();
        let handle = wake(&self.io, ceil_ms(ms));
        self.timer.set(Some((handle, due)));
    }

    /// Cancels the pending `setTimeout`, if any.
    fn clear_timer(&self) {
        if let Some((t, _)) = self.timer.take() {
            clear_timeout(t);
        }
    }

    /// Opens a transport once the token (if any) is known.
    fn open(self: &Rc<Self>, o: Opening) {
        self.let_go();
        let source = &self.token_source;
        if !source.is_function() {
            *write(&self.token) = source.as_string();
            return self.open_now(o);
        }
        // Called again on every connect, so a refreshed token is used.
        *write(&self.opening) = Some(o);
        token(source, tag::TOKEN, self.generation.get(), &self.io);
    }

    fn open_now(self: &Rc<Self>, o: Opening) {
        let token = read(&self.token).clone();
        let url = match o.kind {
            Kind::WebSocket => outgoing::websocket(&self.base, &self.instance, token.as_deref()),
            Kind::Sse => outgoing::sse(
                &self.base,
                &self.instance,
                &o.topics,
                o.since.as_deref(),
                token.as_deref(),
            ),
        };
        match Transport::open(o.kind, &url, self.generation.get(), &self.io) {
            Ok(t) => *write(&self.transport) = Some(t),
            Err(e) => {
                self.callbacks.error(code::TRANSPORT, &e);
                self.feed(Input::Closed { code: None });
            }
        }
    }

    fn on_signal(self: &Rc<Self>, kind: Kind, signal: Signal) {
        let parsed = match (signal, kind) {
            (Signal::Closed(code), _) => {
                self.let_go();
                Ok(Input::Closed { code })
            }
            (Signal::Heartbeat, _) => Ok(Input::Heard),
            (Signal::Welcome(data), _) => frames::sse_welcome(&data),
            (Signal::Frame(data), Kind::Sse) => frames::sse_message(&data, &self.keys),
            (Signal::Frame(data), Kind::WebSocket) => frames::ws_frame(&data, &self.keys),
        };
        match parsed {
            Ok(input) => self.feed(input),
            Err(Malformed(why)) => {
                // The connection is alive; only this frame is unusable.
                self.feed(Input::Heard);
                self.callbacks.error(code::MALFORMED_FRAME, why);
            }
        }
    }

    /// The answer to an SSE emit's POST.
    fn posted(self: &Rc<Self>, reference: u64, status: u32, body: JsValue) {
        let input = match http::outcome(status, body) {
            PostOutcome::Accepted(receipt) => Input::Ack { reference, receipt },
            // An expired token is not the event's fault: get a fresh one
            // and send the event again.
            PostOutcome::Refused(code, _) if code == "token_expired" => {
                self.reauth();
                Input::PostFailed { reference }
            }
            PostOutcome::Refused(code, message) => Input::Refused {
                reference: Some(reference),
                code,
                message,
            },
            PostOutcome::Failed => Input::PostFailed { reference },
        };
        self.feed(input);
    }
}

/// Whole milliseconds, rounded up (`f64::ceil` is not in `core`): a
/// browser truncates a `setTimeout` delay, which would wake the machine
/// just before its deadline.
fn ceil_ms(ms: f64) -> u32 {
    let whole = ms as u32;
    if (whole as f64) < ms {
        whole.saturating_add(1)
    } else {
        whole
    }
}

/// The message of what JS threw: an `Error`'s, or the thing itself.
fn js_err_message(e: &JsValue) -> String {
    opt(e, "message")
        .as_string()
        .or_else(|| e.as_string())
        .unwrap_or_default()
}

/// The raw channel. `js/index.js` reads the `connect` options and wraps
/// it as the typed `EventChannel`, through the exports in `exports.rs`;
/// the browser tests use it directly.
pub struct Channel {
    inner: Rc<Inner>,
}

impl Channel {
    /// A channel to the gateway at `base` (`http://` or `https://`, no
    /// trailing slash), with the options `index.js` has read and checked:
    /// `transport` 0 auto, 1 WebSocket, 2 SSE; a number that is NaN takes
    /// its default; `token` is a string, a function returning one (or a
    /// promise of one), or undefined. `io` is the function every signal
    /// goes to, which must call [`Channel::io`] on this channel (`index.js`
    /// makes it). Nothing happens on the network until `start`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        base: String,
        transport: u32,
        min_backoff_ms: f64,
        max_backoff_ms: f64,
        outbox_size: f64,
        attempt_timeout_ms: f64,
        token: JsValue,
        callbacks: Callbacks,
        io: JsValue,
    ) -> Channel {
        let or = |n: f64, default: f64| if n.is_nan() { default } else { n };
        let defaults = Config::default();
        let cfg = Config {
            preference: match transport {
                1 => Preference::WebSocket,
                2 => Preference::Sse,
                _ => Preference::Auto,
            },
            min_backoff_ms: or(min_backoff_ms, defaults.min_backoff_ms),
            max_backoff_ms: or(max_backoff_ms, defaults.max_backoff_ms),
            outbox_max: or(outbox_size, defaults.outbox_max as f64).max(0.0) as usize,
            connect_timeout_ms: or(attempt_timeout_ms, defaults.connect_timeout_ms),
            dedupe_ids: defaults.dedupe_ids,
        };
        let inner = Rc::new(Inner {
            machine: RefCell::new(Machine::new(cfg, Vec::new())),
            base,
            instance: new_id(),
            token_source: token,
            token: RefCell::new(None),
            transport: RefCell::new(None),
            opening: RefCell::new(None),
            generation: Cell::new(0),
            handlers: RefCell::new(Vec::new()),
            keys: frames::Keys::default(),
            callbacks,
            timer: Cell::new(None),
            io,
            next_id: Cell::new(1),
            next_ref: Cell::new(1),
        });
        Channel { inner }
    }

    /// Emits an event; resolves with `{id, seq, duplicate}` once the gateway
    /// has accepted it, or rejects with an `Error` that has a `code`.
    /// `options` may set the event's `id`, `correlationid`, `subject` and
    /// `source`.
    pub fn emit(&self, ty: &str, data: &JsValue, options: &JsValue) -> JsValue {
        let reference = self.inner.next_ref.get();
        self.inner.next_ref.set(reference + 1);
        let id = opt(options, "id").as_string().unwrap_or_else(new_id);
        let mut set_options = Vec::new();
        for name in outgoing::ENVELOPE_OPTIONS {
            if let Some(v) = opt(options, name).as_string() {
                set_options.push((name, v));
            }
        }
        let promise = self.inner.callbacks.emit(reference as f64);
        let json = stringify(data);
        let data = json.as_string();
        if data.is_none() && !json.is_undefined() {
            self.inner
                .callbacks
                .reject(reference as f64, "invalid_event", &js_err_message(&json));
            return promise;
        }
        let json = outgoing::envelope(&id, ty, &set_options, data.as_deref());
        self.inner.feed(Input::Emit {
            ty: ty.to_owned(),
            emit: Emit {
                reference,
                id,
                json,
            },
        });
        promise
    }

    /// What the browser reports, through the channel's `io` function.
    pub fn io(&self, what: u32, n: f64, data: JsValue, status: u32) {
        self.inner.on_io(what, n, data, status);
    }

    /// Starts connecting.
    pub fn start(&self) {
        self.inner.feed(Input::Start);
    }

    pub fn state(&self) -> &'static str {
        read(&self.inner.machine).state().name()
    }

    /// `websocket`, `sse`, or null before the first attempt.
    pub fn transport(&self) -> JsValue {
        read(&self.inner.machine)
            .transport()
            .map_or(JsValue::NULL, |k| k.name().into())
    }

    /// The position of the last event delivered.
    pub fn last_seq(&self) -> Option<String> {
        read(&self.inner.machine).last_seq().map(str::to_owned)
    }

    /// Calls `handler(event)` for every event whose type matches `pattern`
    /// and returns an id for `unsubscribe`; a `handler` that is not a
    /// function only adds the pattern (the `topics` option). Throws on an
    /// invalid pattern.
    pub fn subscribe(&self, pattern: &str, handler: &JsValue) -> Result<u32, JsValue> {
        // The code is named, not read from the error: `Pattern::parse`
        // only fails with it, and `ErrorCode::as_str` on a value would
        // bring every code the gateway has into the download.
        let parsed = Pattern::parse(pattern)
            .map_err(|e| failure(ErrorCode::InvalidPattern.as_str(), &e.message))?;
        let id = self.inner.next_id.get();
        self.inner.next_id.set(id.wrapping_add(1));
        if handler.is_function() {
            self.inner.callbacks.handler(id, handler);
            let handler = Handler {
                id,
                pattern: parsed,
            };
            write(&self.inner.handlers).push(handler);
        }
        self.inner.feed(Input::AddPattern(pattern.to_owned()));
        Ok(id)
    }

    pub fn unsubscribe(&self, id: u32) {
        let removed = {
            let mut hs = write(&self.inner.handlers);
            let Some(i) = hs.iter().position(|h| h.id == id) else {
                return;
            };
            let h = hs.remove(i);
            let still_used = hs.iter().any(|o| o.pattern == h.pattern);
            (!still_used).then_some(h.pattern.as_str().to_owned())
        };
        self.inner.callbacks.handler(id, &JsValue::UNDEFINED);
        if let Some(p) = removed {
            self.inner.feed(Input::RemovePattern(p));
        }
    }

    /// Calls `listener(state, info)` on every state change.
    pub fn on_state(&self, listener: &JsValue) {
        self.inner.callbacks.listen(false, listener);
    }

    /// Calls `listener(error)` for errors not tied to an emit: malformed
    /// frames, handler exceptions, refused subscriptions, transport trouble.
    pub fn on_error(&self, listener: &JsValue) {
        self.inner.callbacks.listen(true, listener);
    }

    /// Closes the channel: pending emits reject with `closed`.
    pub fn close(&self) {
        self.inner.feed(Input::Close);
        self.inner.clear_timer();
    }

    /// Feeds `text` to the channel as if the current transport had received
    /// it. For tests of malformed input; not part of the public API.
    pub fn inject_frame(&self, text: &str) {
        let Some(kind) = read(&self.inner.machine).transport() else {
            return;
        };
        self.inner.on_signal(kind, Signal::Frame(text.into()));
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.close();
    }
}
