//! The connection state machine: plain Rust with no browser in sight, so
//! every rule about reconnecting, resuming, dedupe and the outbox is unit
//! tested natively.
//!
//! The browser side feeds it [`Input`]s with the current time and a random
//! number, and carries out the [`Action`]s it returns. Payloads are opaque
//! (`P`): JS values in the browser, strings in tests.

use crate::backoff::Backoff;
use crate::list;
use crate::outgoing::{self, push_u64};
use crate::prelude::*;
use crate::recent::RecentIds;
use eventwire_protocol::{ErrorCode, Pattern};

/// A transport the machine can ask for. Its order is part of the browser
/// side: `js/io.js` (`TRANSPORTS`) names `kind as u32 + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    WebSocket,
    Sse,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::WebSocket => "websocket",
            Kind::Sse => "sse",
        }
    }
}

/// The `transport` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    /// WebSocket first; SSE for good once WebSocket cannot connect.
    Auto,
    WebSocket,
    Sse,
}

/// Its order is part of the browser side: `js/io.js` (`STATES`) names
/// `state as u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Connecting,
    Open,
    Reconnecting,
    Closed,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Connecting => "connecting",
            State::Open => "open",
            State::Reconnecting => "reconnecting",
            State::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub preference: Preference,
    pub min_backoff_ms: f64,
    pub max_backoff_ms: f64,
    /// Emits kept while offline, at most.
    pub outbox_max: usize,
    /// How long one connection attempt may take to be welcomed.
    pub connect_timeout_ms: f64,
    /// Event ids remembered for dedupe.
    pub dedupe_ids: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            preference: Preference::Auto,
            min_backoff_ms: 500.0,
            max_backoff_ms: 20_000.0,
            outbox_max: 1000,
            connect_timeout_ms: 10_000.0,
            dedupe_ids: 4096,
        }
    }
}

/// Client-side error codes; the gateway's codes pass through unchanged.
pub mod code {
    pub const OUTBOX_FULL: &str = "outbox_full";
    pub const CLOSED: &str = "closed";
    pub const CONNECT_TIMEOUT: &str = "connect_timeout";
    pub const MALFORMED_FRAME: &str = "malformed_frame";
    pub const HANDLER_ERROR: &str = "handler_error";
    pub const TRANSPORT: &str = "transport_error";
    pub const EVENT_TOO_LARGE: &str = "event_too_large";
}

/// One emit: the envelope is already JSON (its `id` included), so a resend
/// is byte-identical and the gateway dedupes it by `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Emit {
    pub reference: u64,
    pub json: String,
}

/// What the machine is told. Strings are borrowed from the caller (in the
/// browser, from the call that brought them): the machine copies only what
/// it keeps, so an event costs no allocation for its id, type and source.
#[derive(Debug)]
pub enum Input<'a, P> {
    Start,
    /// The gateway's welcome. `recovered` and `position` are set on SSE only.
    Welcome {
        heartbeat_ms: f64,
        max_event_bytes: usize,
        recovered: Option<bool>,
        position: Option<&'a str>,
    },
    /// WebSocket `subscribed`.
    Subscribed {
        recovered: bool,
        position: Option<&'a str>,
    },
    Event {
        id: &'a str,
        /// The envelope's `source`; with `id` it is the dedupe key.
        source: &'a str,
        ty: &'a str,
        seq: &'a str,
        payload: P,
    },
    /// Any other sign of life (pong, heartbeat).
    Heard,
    /// The gateway accepted emit `reference`. `receipt` holds its `id`,
    /// `seq` and `duplicate` (the ack frame, or the POST's answer): opaque
    /// like a payload, it goes to the app as it came.
    Ack {
        reference: u64,
        receipt: P,
    },
    /// The gateway refused something. With a reference it was an emit.
    Refused {
        reference: Option<u64>,
        code: &'a str,
        message: &'a str,
    },
    /// An SSE emit's POST failed in a way worth retrying (network, 5xx).
    PostFailed {
        reference: u64,
    },
    /// The transport closed or failed; `code` is the gateway's reason if it gave one.
    Closed {
        code: Option<&'a str>,
    },
    Tick,
    Emit {
        ty: &'a str,
        emit: Emit,
    },
    AddPattern(&'a str),
    RemovePattern(&'a str),
    Close,
}

#[derive(Debug, PartialEq)]
pub enum Action<P> {
    /// Open a transport. SSE subscribes with the [`patterns`](Machine::patterns)
    /// from the [`last_seq`](Machine::last_seq) in the URL (read them when
    /// the URL is made); WebSocket gets a `Send` of its subscribe frame
    /// after the welcome.
    Open {
        kind: Kind,
    },
    CloseTransport,
    /// A WebSocket text frame.
    Send(String),
    /// An SSE emit: POST the envelope.
    Post {
        reference: u64,
        json: String,
    },
    /// Hand the event just fed to the handlers whose pattern matches its
    /// type (the caller still has it).
    Deliver {
        payload: P,
    },
    Resolve {
        reference: u64,
        receipt: P,
    },
    Reject {
        reference: u64,
        code: String,
        message: String,
    },
    /// Feed `Input::Tick` after this many milliseconds (replaces any earlier request).
    Wake(f64),
    State {
        state: State,
        transport: Option<Kind>,
        recovered: Option<bool>,
        attempt: u32,
        delay_ms: Option<f64>,
    },
    Error {
        code: String,
        message: String,
    },
    /// The gateway says the token expired: get a fresh one from the token
    /// function and send it as a WebSocket `auth` frame.
    Reauth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    /// Transport requested, waiting for the welcome.
    Welcoming,
    /// WebSocket welcomed, waiting for `subscribed`.
    Subscribing,
    Open,
}

pub struct Machine<P> {
    cfg: Config,
    backoff: Backoff,
    state: State,
    phase: Phase,
    kind: Option<Kind>,
    ws_ever_worked: bool,
    ws_failed: bool,
    attempt: u32,
    patterns: Vec<String>,
    last_seq: Option<String>,
    seen: RecentIds,
    /// Plain vectors, not `VecDeque`s: one vector type less in the
    /// download, and the outbox is small (`outbox_max`).
    outbox: Vec<Emit>,
    /// Sent, waiting for the gateway's answer; oldest first.
    inflight: Vec<Emit>,
    heartbeat_ms: f64,
    max_event_bytes: usize,
    last_heard: f64,
    /// Deadlines, in ms; [`NEVER`] when not set. Plain numbers, not
    /// `Option`s: smaller in wasm, and "not set" is simply never due.
    reconnect_at: f64,
    attempt_deadline: f64,
    ping_at: f64,
    retry_post_at: f64,
    resubscribe_at: f64,
    /// A reopen to change SSE topics: its success is not reported as a new
    /// `open` (a failure is handled, and reported, like any other).
    quiet: bool,
    actions: Vec<Action<P>>,
}

/// Default heartbeat until the welcome says otherwise.
const DEFAULT_HEARTBEAT_MS: f64 = 15_000.0;

/// A deadline that is not set.
const NEVER: f64 = f64::INFINITY;

impl<P> Machine<P> {
    /// A machine with no patterns yet: they come as [`Input::AddPattern`]s
    /// (the `topics` option too), which before `Start` only records them.
    pub fn new(cfg: Config) -> Machine<P> {
        Machine {
            backoff: Backoff::new(cfg.min_backoff_ms, cfg.max_backoff_ms),
            seen: RecentIds::new(cfg.dedupe_ids),
            cfg,
            state: State::Connecting,
            phase: Phase::Idle,
            kind: None,
            ws_ever_worked: false,
            ws_failed: false,
            attempt: 0,
            patterns: Vec::new(),
            last_seq: None,
            outbox: Vec::new(),
            inflight: Vec::new(),
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
            max_event_bytes: 64 * 1024,
            last_heard: 0.0,
            reconnect_at: NEVER,
            attempt_deadline: NEVER,
            ping_at: NEVER,
            retry_post_at: NEVER,
            resubscribe_at: NEVER,
            quiet: false,
            actions: Vec::new(),
        }
    }

    /// Starts from `position` (the `since` option) instead of where the
    /// gateway would start: the first connection resumes after it, as a
    /// reconnect does.
    pub fn resume_after(&mut self, position: &str) {
        self.set_position(position);
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn transport(&self) -> Option<Kind> {
        self.kind
    }

    pub fn last_seq(&self) -> Option<&str> {
        self.last_seq.as_deref()
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Handles one input at time `now` (ms); `random` is uniform in [0, 1).
    pub fn handle(&mut self, input: Input<'_, P>, now: f64, random: f64) -> Vec<Action<P>> {
        if self.state == State::Closed {
            if let Input::Emit { emit, .. } = input {
                self.reject(emit.reference, code::CLOSED, "the channel is closed");
            }
            return core::mem::take(&mut self.actions);
        }
        match input {
            Input::Start => self.open(now),
            Input::Welcome {
                heartbeat_ms,
                max_event_bytes,
                recovered,
                position,
            } => {
                self.last_heard = now;
                if heartbeat_ms > 0.0 {
                    self.heartbeat_ms = heartbeat_ms;
                }
                self.max_event_bytes = max_event_bytes;
                if self.phase == Phase::Welcoming {
                    match (self.kind, recovered) {
                        (Some(Kind::WebSocket), _) if !self.patterns.is_empty() => {
                            let _ = position;
                            self.phase = Phase::Subscribing;
                            let frame = outgoing::subscribe(
                                outgoing::SUBSCRIBE_REF,
                                &self.patterns,
                                self.last_seq.as_deref(),
                            );
                            self.actions.push(Action::Send(frame));
                        }
                        (_, recovered) => self.go_open(now, recovered.unwrap_or(true), position),
                    }
                }
            }
            Input::Subscribed {
                recovered,
                position,
            } => {
                self.last_heard = now;
                if self.phase == Phase::Subscribing {
                    self.go_open(now, recovered, position);
                }
            }
            Input::Event {
                id,
                source,
                seq,
                payload,
                ..
            } => {
                self.last_heard = now;
                if self.seen.insert(source, id) {
                    self.set_position(seq);
                    self.actions.push(Action::Deliver { payload });
                }
            }
            Input::Heard => self.last_heard = now,
            Input::Ack { reference, receipt } => {
                self.last_heard = now;
                if self.take_inflight(Some(reference)).is_some() {
                    self.actions.push(Action::Resolve { reference, receipt });
                }
                if self.kind == Some(Kind::Sse) {
                    self.flush();
                }
            }
            Input::Refused {
                reference,
                code,
                message,
            } => {
                self.last_heard = now;
                match self.take_inflight(reference) {
                    Some(e) => {
                        self.reject(e.reference, code, message);
                        if self.kind == Some(Kind::Sse) {
                            self.flush();
                        }
                    }
                    None if code == "token_expired" && self.kind == Some(Kind::WebSocket) => {
                        self.actions.push(Action::Reauth);
                    }
                    None => self.actions.push(Action::Error {
                        code: code.into(),
                        message: message.into(),
                    }),
                }
            }
            Input::PostFailed { reference } => {
                // SSE has one POST in flight at a time, so this emit is all
                // the in-flight list holds: it goes back to the front.
                if self.inflight.iter().any(|e| e.reference == reference) {
                    self.requeue();
                    self.retry_post_at = now + self.backoff.delay(1, random);
                }
            }
            Input::Closed { code } => self.lost(now, random, code),
            Input::Tick => self.tick(now, random),
            Input::Emit { ty, emit } => self.emit(ty, emit),
            Input::AddPattern(p) => {
                if !self.patterns.iter().any(|x| x == p) {
                    let added = self.patterns.len();
                    self.patterns.push(p.into());
                    match (self.phase, self.kind) {
                        (Phase::Open | Phase::Subscribing, Some(Kind::WebSocket)) => {
                            let new = self.patterns.get(added..).unwrap_or_default();
                            let frame = outgoing::subscribe(outgoing::ADD_REF, new, None);
                            self.actions.push(Action::Send(frame));
                        }
                        (Phase::Open | Phase::Welcoming, Some(Kind::Sse)) => {
                            // Coalesce a burst of subscribes into one reopen.
                            self.resubscribe_at = earlier(self.resubscribe_at, now);
                        }
                        _ => {}
                    }
                }
            }
            Input::RemovePattern(p) => {
                let i = self.patterns.iter().position(|x| *x == p);
                // On SSE the stream keeps the topic until the next
                // reconnect; the channel simply stops delivering it.
                if i.and_then(|i| list::take(&mut self.patterns, i)).is_some()
                    && self.phase == Phase::Open
                    && self.kind == Some(Kind::WebSocket)
                {
                    self.actions.push(Action::Send(outgoing::unsubscribe(p)));
                }
            }
            Input::Close => {
                self.state = State::Closed;
                self.phase = Phase::Idle;
                self.actions.push(Action::CloseTransport);
                self.requeue();
                for e in &core::mem::take(&mut self.outbox) {
                    self.reject(
                        e.reference,
                        code::CLOSED,
                        "the channel was closed before the gateway accepted this event",
                    );
                }
                self.push_state(None, None);
            }
        }
        self.schedule(now);
        core::mem::take(&mut self.actions)
    }

    fn choose(&self) -> Kind {
        match self.cfg.preference {
            Preference::WebSocket => Kind::WebSocket,
            Preference::Sse => Kind::Sse,
            Preference::Auto if self.ws_failed => Kind::Sse,
            Preference::Auto => Kind::WebSocket,
        }
    }

    fn open(&mut self, now: f64) {
        let kind = self.choose();
        self.kind = Some(kind);
        self.phase = Phase::Welcoming;
        self.reconnect_at = NEVER;
        self.resubscribe_at = NEVER;
        self.ping_at = NEVER;
        self.attempt_deadline = now + self.cfg.connect_timeout_ms;
        self.actions.push(Action::Open { kind });
    }

    /// `position` is where the gateway's delivery starts: a channel that has
    /// no position of its own yet, or whose position could not be honoured,
    /// resumes from there next time, so even a connection that drops before
    /// its first event loses nothing.
    fn go_open(&mut self, now: f64, recovered: bool, position: Option<&str>) {
        if let Some(p) = position
            && (!recovered || self.last_seq.is_none())
        {
            self.set_position(p);
        }
        self.phase = Phase::Open;
        self.attempt = 0;
        self.attempt_deadline = NEVER;
        self.last_heard = now;
        if self.kind == Some(Kind::WebSocket) {
            self.ws_ever_worked = true;
            self.ping_at = now + self.heartbeat_ms;
        }
        let was_quiet = core::mem::take(&mut self.quiet);
        if !(was_quiet && self.state == State::Open && recovered) {
            self.state = State::Open;
            self.push_state(Some(recovered), None);
        }
        self.flush();
    }

    /// The position to resume after, copied into the buffer it had.
    fn set_position(&mut self, p: &str) {
        let s = self.last_seq.get_or_insert_default();
        s.clear();
        s.push_str(p);
    }

    fn push_state(&mut self, recovered: Option<bool>, delay_ms: Option<f64>) {
        self.actions.push(Action::State {
            state: self.state,
            transport: self.kind,
            recovered,
            attempt: self.attempt,
            delay_ms,
        });
    }

    /// The transport is gone: requeue what was in flight and schedule a reconnect.
    fn lost(&mut self, now: f64, random: f64, code: Option<&str>) {
        if self.phase == Phase::Idle {
            return;
        }
        let never_welcomed = self.phase == Phase::Welcoming;
        self.phase = Phase::Idle;
        self.quiet = false;
        self.ping_at = NEVER;
        self.attempt_deadline = NEVER;
        self.requeue();
        if self.cfg.preference == Preference::Auto
            && self.kind == Some(Kind::WebSocket)
            && never_welcomed
            && !self.ws_ever_worked
            && !self.ws_failed
        {
            // WebSocket never got through (a proxy that blocks upgrades, say):
            // fall back to SSE at once, and stay there.
            self.ws_failed = true;
            return self.open(now);
        }
        self.attempt += 1;
        let delay = match code {
            // The gateway is going away on purpose, or wants a fresh token
            // (asked for on every connect): come back quickly.
            Some("shutting_down" | "token_expired") => self.cfg.min_backoff_ms,
            _ => self.backoff.delay(self.attempt, random),
        };
        self.reconnect_at = now + delay;
        self.state = State::Reconnecting;
        self.push_state(None, Some(delay));
    }

    fn tick(&mut self, now: f64, random: f64) {
        if self.reconnect_at <= now {
            self.open(now);
        }
        if self.attempt_deadline <= now {
            self.actions.push(Action::CloseTransport);
            self.actions.push(Action::Error {
                code: code::CONNECT_TIMEOUT.into(),
                message: "the gateway did not welcome this connection in time".into(),
            });
            self.lost(now, random, None);
        }
        if self.phase == Phase::Open && now - self.last_heard > 2.0 * self.heartbeat_ms {
            self.actions.push(Action::CloseTransport);
            self.lost(now, random, Some("heartbeat_timeout"));
        }
        if self.ping_at <= now && self.phase == Phase::Open {
            self.actions.push(Action::Send(outgoing::ping()));
            self.ping_at = now + self.heartbeat_ms;
        }
        if self.retry_post_at <= now {
            self.retry_post_at = NEVER;
            self.flush();
        }
        if self.resubscribe_at <= now {
            self.resubscribe_at = NEVER;
            if self.kind == Some(Kind::Sse) && self.phase != Phase::Idle {
                // New SSE topics need a new stream. It resumes from the last
                // position, so nothing is missed, and while the channel was
                // open this is not reported as a reconnect. POSTs in flight
                // are separate requests and finish on their own.
                self.quiet = self.phase == Phase::Open;
                self.actions.push(Action::CloseTransport);
                self.open(now);
            }
        }
    }

    /// Asks for a wake-up at the earliest deadline.
    fn schedule(&mut self, now: f64) {
        let liveness = if self.phase == Phase::Open {
            self.last_heard + 2.0 * self.heartbeat_ms + 1.0
        } else {
            NEVER
        };
        let next = earlier(
            earlier(
                earlier(self.reconnect_at, self.attempt_deadline),
                earlier(self.ping_at, self.retry_post_at),
            ),
            earlier(self.resubscribe_at, liveness),
        );
        if next < NEVER {
            let ms = next - now;
            self.actions
                .push(Action::Wake(if ms > 0.0 { ms } else { 0.0 }));
        }
    }

    fn reject(&mut self, reference: u64, code: &str, message: &str) {
        self.actions.push(Action::Reject {
            reference,
            code: code.into(),
            message: message.into(),
        });
    }

    fn emit(&mut self, ty: &str, emit: Emit) {
        // A topic is a pattern without wildcards: the pattern grammar, which
        // `subscribe` needs anyway, checks it, so the client carries one
        // walker of it instead of two (`Topic::check` cost ~400 B gzip).
        // The code is named, not read from an error (see
        // `Channel::subscribe`).
        if Pattern::check(ty).is_err() || !Pattern::text_is_literal(ty) {
            let m = "an event's type must be a topic: up to 16 dot-separated segments of \
                     A-Z, a-z, 0-9, '_' and '-', each up to 64 bytes, 255 in all";
            return self.reject(emit.reference, ErrorCode::InvalidTopic.as_str(), m);
        }
        if emit.json.len() > self.max_event_bytes {
            let mut m = String::from("the event is larger than the gateway's limit of ");
            push_u64(&mut m, self.max_event_bytes as u64);
            m.push_str(" bytes");
            return self.reject(emit.reference, code::EVENT_TOO_LARGE, &m);
        }
        if self.outbox.len() >= self.cfg.outbox_max {
            let mut m = String::from("the outbox already holds ");
            push_u64(&mut m, self.cfg.outbox_max as u64);
            m.push_str(" events waiting for a connection");
            return self.reject(emit.reference, code::OUTBOX_FULL, &m);
        }
        self.outbox.push(emit);
        self.flush();
    }

    /// What was in flight goes back to the front of the outbox, in order.
    fn requeue(&mut self) {
        list::append(&mut self.inflight, &mut self.outbox);
        core::mem::swap(&mut self.outbox, &mut self.inflight);
    }

    /// Takes the emit `reference` out of the in-flight list, if it is there.
    fn take_inflight(&mut self, reference: Option<u64>) -> Option<Emit> {
        let i = self
            .inflight
            .iter()
            .position(|e| Some(e.reference) == reference)?;
        list::take(&mut self.inflight, i)
    }

    /// Sends what the outbox holds, if the connection is open. SSE sends one
    /// POST at a time so the gateway accepts emits in order.
    fn flush(&mut self) {
        if self.phase != Phase::Open {
            return;
        }
        match self.kind {
            Some(Kind::WebSocket) => {
                for e in &self.outbox {
                    let frame = outgoing::emit(e.reference, &e.json);
                    self.actions.push(Action::Send(frame));
                }
                // All of them are in flight now, after those already were.
                list::append(&mut self.inflight, &mut self.outbox);
            }
            Some(Kind::Sse) if self.inflight.is_empty() && self.retry_post_at == NEVER => {
                if let Some(e) = list::take(&mut self.outbox, 0) {
                    self.actions.push(Action::Post {
                        reference: e.reference,
                        json: e.json.clone(),
                    });
                    self.inflight.push(e);
                }
            }
            _ => {}
        }
    }
}

/// The earlier of two deadlines (never NaN): a compare, where `f64::min`
/// calls `fmin` for the NaN cases.
fn earlier(a: f64, b: f64) -> f64 {
    if b < a { b } else { a }
}
