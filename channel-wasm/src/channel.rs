//! One channel in the browser: it feeds the [`Machine`] what the glue
//! reports and carries out its actions through the glue's imports
//! (`abi.rs`). `exports.rs` hands it to `js/index.js`.
//!
//! Everything the browser reports comes in through one export, `io`, as a
//! tag, a number (the connection generation, or an emit's reference) and
//! the fields of a [`Signal`]: not a callback per transport event.
//!
//! Re-entrancy: a handler may call `emit`, `subscribe` or `close` while an
//! event is being delivered. The machine is never borrowed while JS runs:
//! `feed` takes the actions out first and only then performs them.

use crate::abi;
use crate::cell::{read, write};
use crate::frames::{self, Malformed, Signal, field};
use crate::http::{self, PostOutcome};
use crate::list;
use crate::machine::{Action, Config, Emit, Input, Kind, Machine, Preference, code};
use crate::outgoing;
use crate::prelude::*;
use crate::transport::tag;
use core::cell::{Cell, RefCell};
use eventwire_protocol::{ErrorCode, Pattern};

/// The payload of an input or an action in the browser: the JS value the
/// glue holds for the signal being handled (an event, an ack frame, a
/// POST's answer). The machine's actions are carried out before that
/// signal returns, so the value a `Deliver` or `Resolve` refers to is
/// still the glue's current one; it never crosses into wasm.
#[derive(Debug, PartialEq)]
pub struct Current;

/// A handler: its id and the pattern it was subscribed with. The function
/// itself stays on the JS side, which calls it by id.
struct Handler {
    id: u32,
    /// A valid pattern's text (`Pattern::check`), matched with
    /// `Pattern::text_matches`: no parsed segments kept.
    pattern: String,
}

pub struct Channel {
    /// The handle the glue keeps its side of this channel under.
    h: u32,
    machine: RefCell<Machine<Current>>,
    /// The gateway's base URL, without a trailing slash.
    base: String,
    /// This channel's random instance id, sent on every connection so the
    /// gateway ends a stale one at once (PROTOCOL §4.6).
    instance: String,
    /// The `token` option is a function (called on every connect), not a
    /// fixed string.
    token_fn: bool,
    token: RefCell<Option<String>>,
    /// The transport open in the glue, if any.
    transport: Cell<Option<Kind>>,
    /// A transport the machine asked for, waiting for the token function.
    opening: Cell<Option<Kind>>,
    /// Bumped whenever a transport is opened or let go; signals from an
    /// older generation are ignored.
    generation: Cell<u32>,
    /// Never borrowed while JS runs: delivery first lists the handlers
    /// that match, then calls them, so a handler may subscribe or
    /// unsubscribe while it runs.
    handlers: RefCell<Vec<Handler>>,
    /// When the pending timer is due.
    due: Cell<Option<f64>>,
    next_id: Cell<u32>,
}

impl Channel {
    /// A channel to the gateway at `base` (`http://` or `https://`, no
    /// trailing slash), with the options `index.js` has read and checked:
    /// `transport` 0 auto, 1 WebSocket, 2 SSE; a number that is NaN takes
    /// its default; `token` a fixed token, or `token_fn` when it is a
    /// function; `since` a position to resume after. Nothing happens on the
    /// network until `START`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        h: u32,
        base: &str,
        instance: &str,
        transport: u32,
        min_backoff_ms: f64,
        max_backoff_ms: f64,
        outbox_size: f64,
        attempt_timeout_ms: f64,
        token: Option<&str>,
        token_fn: bool,
        since: Option<&str>,
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
            // `as` saturates: a negative size is 0.
            outbox_max: or(outbox_size, defaults.outbox_max as f64) as usize,
            connect_timeout_ms: or(attempt_timeout_ms, defaults.connect_timeout_ms),
            dedupe_ids: defaults.dedupe_ids,
        };
        let mut machine = Machine::new(cfg);
        if let Some(p) = since {
            machine.resume_after(p);
        }
        Channel {
            h,
            machine: RefCell::new(machine),
            base: base.to_owned(),
            instance: instance.to_owned(),
            token_fn,
            token: RefCell::new(token.map(str::to_owned)),
            transport: Cell::new(None),
            opening: Cell::new(None),
            generation: Cell::new(0),
            handlers: RefCell::new(Vec::new()),
            due: Cell::new(None),
            next_id: Cell::new(1),
        }
    }

    pub fn feed(&self, input: Input<'_, Current>) {
        // An event's type, for `Deliver`.
        let ty = match input {
            Input::Event { ty, .. } => ty,
            _ => "",
        };
        let actions = write(&self.machine).handle(input, abi::now(), abi::random());
        // By reference: no by-value iterator over the actions (and its drop
        // glue) in the download.
        for a in &actions {
            self.perform(a, ty);
        }
    }

    /// Carries out `action`; `ty` is the type of the event just fed.
    fn perform(&self, action: &Action<Current>, ty: &str) {
        let h = self.h;
        match *action {
            Action::Open { kind } => self.open(kind),
            Action::CloseTransport => self.let_go(),
            Action::Send(ref text) => self.send(text),
            Action::Post {
                reference,
                ref json,
            } => {
                let url = outgoing::events(&self.base);
                let auth = read(&self.token).as_deref().map(outgoing::bearer);
                abi::post(
                    h,
                    reference as f64,
                    &url,
                    json,
                    auth.as_deref().unwrap_or(""),
                );
            }
            Action::Deliver { .. } => self.deliver(ty),
            Action::Resolve { reference, .. } => abi::resolve(h, reference as f64),
            Action::Reject {
                reference,
                ref code,
                ref message,
            } => abi::failure(h, reference as f64, code, message),
            Action::Wake(ms) => self.wake_in(ms),
            Action::State {
                state,
                transport,
                recovered,
                attempt,
                delay_ms,
            } => abi::state(
                h,
                state as u32,
                transport.map_or(0, |k| k as u32 + 1),
                attempt,
                recovered.map_or(2, u32::from),
                delay_ms.unwrap_or(f64::NAN),
            ),
            Action::Error {
                ref code,
                ref message,
            } => abi::failure(h, abi::TO_LISTENERS, code, message),
            Action::Reauth => self.reauth(),
        }
    }

    /// A WebSocket text frame, if a WebSocket is open (an SSE transport
    /// only receives).
    fn send(&self, text: &str) {
        if self.transport.get() == Some(Kind::WebSocket) {
            abi::send(self.h, text);
        }
    }

    /// Lets the transport go: its late signals carry an old generation.
    fn let_go(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        if self.transport.take().is_some() {
            abi::close(self.h);
        }
    }

    /// What the glue reports (see the module comment).
    pub fn io(&self, what: u32, n: f64, signal: Signal) {
        let current = n as u32 == self.generation.get();
        match what {
            tag::TICK => {
                self.due.set(None);
                self.feed(Input::Tick);
            }
            tag::POSTED => self.posted(n as u64, &signal),
            tag::TOKEN if current => {
                *write(&self.token) = signal.get(field::TOKEN).map(str::to_owned);
                if let Some(kind) = self.opening.take() {
                    self.open_now(kind);
                }
            }
            tag::TOKEN_FAILED if current => {
                abi::report(self.h);
                self.feed(Input::Closed { code: None });
            }
            tag::REAUTH if current => {
                let Some(t) = signal.get(field::TOKEN) else {
                    return;
                };
                *write(&self.token) = Some(t.to_owned());
                self.send(&outgoing::auth(t));
            }
            tag::REAUTH_FAILED => abi::report(self.h),
            _ if current => {
                // Read first: the machine must not be borrowed while the
                // signal is handled.
                let kind = read(&self.machine).transport();
                if let Some(kind) = kind {
                    self.on_signal(kind, what, &signal);
                }
            }
            _ => {}
        }
    }

    /// Asks the token function for a fresh token and sends it in band.
    fn reauth(&self) {
        if self.token_fn {
            abi::token(self.h, tag::REAUTH, self.generation.get());
        }
        // A fixed token cannot be refreshed; the gateway will close.
    }

    /// Calls the handlers whose pattern matches `ty`. One that is
    /// unsubscribed by an earlier one in the same delivery is not called
    /// (the glue finds no function for its id).
    fn deliver(&self, ty: &str) {
        let mut ids = Vec::new();
        for h in read(&self.handlers).iter() {
            if Pattern::text_matches(&h.pattern, ty) {
                ids.push(h.id);
            }
        }
        for &id in &ids {
            abi::deliver(self.h, id);
        }
    }

    /// Makes sure the machine gets a `Tick` within `ms`. A timer already due
    /// sooner is kept: the machine answers an early tick by asking for the
    /// next one. So the liveness deadline, which moves with every event, does
    /// not cost a `clearTimeout` + `setTimeout` per event.
    fn wake_in(&self, ms: f64) {
        let due = abi::now() + ms;
        if self.due.get().is_some_and(|at| at <= due) {
            return;
        }
        self.due.set(Some(due));
        abi::timer(self.h, ceil_ms(ms));
    }

    /// Opens a transport once the token (if any) is known.
    fn open(&self, kind: Kind) {
        self.let_go();
        if !self.token_fn {
            return self.open_now(kind);
        }
        // Called again on every connect, so a refreshed token is used.
        self.opening.set(Some(kind));
        abi::token(self.h, tag::TOKEN, self.generation.get());
    }

    /// Opens `kind` with the machine's patterns and position as they are
    /// now (a token function may have taken a while).
    fn open_now(&self, kind: Kind) {
        let url = {
            let token = read(&self.token);
            let m = read(&self.machine);
            match kind {
                Kind::WebSocket => {
                    outgoing::websocket(&self.base, &self.instance, token.as_deref())
                }
                Kind::Sse => outgoing::sse(
                    &self.base,
                    &self.instance,
                    m.patterns(),
                    m.last_seq(),
                    token.as_deref(),
                ),
            }
        };
        self.transport.set(Some(kind));
        abi::open(self.h, kind as u32, self.generation.get(), &url);
    }

    fn on_signal(&self, kind: Kind, what: u32, signal: &Signal) {
        let parsed = match what {
            tag::FAILED => {
                self.let_go();
                let message = signal.get(field::MESSAGE).unwrap_or_default();
                abi::failure(self.h, abi::TO_LISTENERS, code::TRANSPORT, message);
                Ok(Input::Closed { code: None })
            }
            // SSE `$close` (its data says why), WebSocket `close` (its
            // reason, the gateway's code) or SSE `error`.
            tag::CLOSED | tag::GONE => {
                self.let_go();
                let code = signal.get(field::CODE).filter(|c| !c.is_empty());
                Ok(Input::Closed { code })
            }
            tag::HEARTBEAT => Ok(Input::Heard),
            _ => frames::read(what, kind == Kind::Sse, signal),
        };
        match parsed {
            Ok(input) => self.feed(input),
            Err(Malformed(why)) => {
                // The connection is alive; only this frame is unusable.
                self.feed(Input::Heard);
                abi::failure(self.h, abi::TO_LISTENERS, code::MALFORMED_FRAME, why);
            }
        }
    }

    /// The answer to an SSE emit's POST.
    fn posted(&self, reference: u64, answer: &Signal) {
        let input = match http::outcome(answer) {
            PostOutcome::Accepted => Input::Ack {
                reference,
                receipt: Current,
            },
            // An expired token is not the event's fault: get a fresh one
            // and send the event again.
            PostOutcome::Refused("token_expired", _) => {
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

    /// Emits an event as emit `reference` (the glue holds its promise):
    /// `ty`, the event's `id`, the [`outgoing::ENVELOPE_OPTIONS`] that are
    /// set, and `data`, already JSON, when there is any.
    pub fn emit(
        &self,
        reference: u64,
        ty: &str,
        id: &str,
        options: [Option<&str>; 3],
        data: Option<&str>,
    ) {
        let json = outgoing::envelope(id, ty, options, data);
        self.feed(Input::Emit {
            ty,
            emit: Emit { reference, json },
        });
    }

    /// The position of the last event delivered, as the call's answer.
    pub fn last_seq(&self) {
        if let Some(s) = read(&self.machine).last_seq() {
            abi::reply(self.h, s);
        }
    }

    /// Adds `pattern` and answers an id for `unsubscribe`; with `handler`
    /// the glue calls the function it holds under that id for every event
    /// whose type matches, without only the pattern is added (the `topics`
    /// option). An invalid pattern answers 0 and has the call throw.
    pub fn subscribe(&self, pattern: &str, handler: bool) -> u32 {
        // The code is named, not read from the error: `Pattern::check`
        // only fails with it, and `ErrorCode::as_str` on a value would
        // bring every code the gateway has into the download.
        if let Err(e) = Pattern::check(pattern) {
            let code = ErrorCode::InvalidPattern.as_str();
            abi::failure(self.h, abi::TO_CALLER, code, &e.message);
            return 0;
        }
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        if handler {
            let handler = Handler {
                id,
                pattern: pattern.to_owned(),
            };
            write(&self.handlers).push(handler);
        }
        self.feed(Input::AddPattern(pattern));
        id
    }

    pub fn unsubscribe(&self, id: u32) {
        let removed = {
            let mut hs = write(&self.handlers);
            let i = hs.iter().position(|h| h.id == id);
            let Some(h) = i.and_then(|i| list::take(&mut hs, i)) else {
                return;
            };
            // The same text is the same pattern.
            let still_used = hs.iter().any(|o| o.pattern == h.pattern);
            (!still_used).then_some(h)
        };
        if let Some(h) = removed {
            self.feed(Input::RemovePattern(&h.pattern));
        }
    }

    /// Closes the channel: pending emits reject with `closed`.
    pub fn close(&self) {
        self.feed(Input::Close);
        if self.due.take().is_some() {
            abi::timer(self.h, -1.0);
        }
    }
}

/// Whole milliseconds, rounded up (`f64::ceil` is not in `core`): a
/// browser truncates a `setTimeout` delay, which would wake the machine
/// just before its deadline.
fn ceil_ms(ms: f64) -> f64 {
    let whole = ms as u32;
    if (whole as f64) < ms {
        whole.saturating_add(1) as f64
    } else {
        whole as f64
    }
}
