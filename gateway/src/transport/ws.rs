//! `GET /v1/ws`: the WebSocket protocol (JSON text frames named by `op`).
//!
//! A reader handles client frames; a writer drains the connection's queue
//! and sends heartbeats. Either ending ends the other.

use super::Session;
use crate::auth::Identity;
use crate::conn::{Conn, Out, Taken, Transport};
use crate::error::ApiError;
use crate::groups::backend::Settle;
use crate::groups::consume::Consumes;
use crate::hub::record_batch;
use crate::limits::TokenBucket;
use crate::state::{Peer, Shared, peer_ip};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use eventwire_protocol::frame::{ClientMsg, FrameError, ServerFrame, parse_client_frame};
use eventwire_protocol::{ErrorCode, Pattern, ProtocolError};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Per-connection read buffer. tungstenite zero-fills its whole read buffer
/// before each read, and its 128 KiB default dominates an idle connection's
/// memory. Clients send little (subscribes, pongs, emits of a few hundred
/// bytes), so 1 KiB costs a big emit a few more reads and saves 3 KiB per
/// connection against 4 KiB (10.5 → 7.5 KiB RSS per idle connection).
const READ_BUFFER: usize = 1024;
/// Frames are gathered up to this size before a write; the writer flushes
/// after each batch anyway.
const WRITE_BUFFER: usize = 16 * 1024;

/// The WebSocket close code for a reason the gateway ends a connection with.
pub fn close_code(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::ShuttingDown => 1001,
        ErrorCode::EngineUnavailable => 1013,
        ErrorCode::SlowConsumer => 4000,
        ErrorCode::HeartbeatTimeout => 4001,
        ErrorCode::TokenExpired => 4002,
        ErrorCode::Superseded => 4003,
        ErrorCode::EventTooLarge => 1009,
        ErrorCode::InvalidJson => 1007,
        _ => 1011,
    }
}

fn encode(frame: &ServerFrame<()>) -> Bytes {
    Bytes::from(serde_json::to_vec(frame).expect("server frames serialize"))
}

fn error_frame(reference: Option<String>, error: ProtocolError) -> Bytes {
    encode(&ServerFrame::Error {
        reference,
        code: error.code,
        message: error.message,
    })
}

pub async fn handler(
    State(shared): State<Arc<Shared>>,
    peer: Peer,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    shared.connects.check(peer_ip(&peer), 1)?;
    let ws = ws.map_err(|e| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("this endpoint needs a WebSocket upgrade: {e}"),
        )
    })?;
    if shared.shutdown.is_cancelled() {
        return Err(ApiError::new(
            ErrorCode::ShuttingDown,
            "the gateway is shutting down; reconnect elsewhere",
        ));
    }
    let identity = shared.identify(&headers, query.as_deref())?;
    crate::origin::check(&shared.config.cors_origins, &headers, identity.by_cookie)?;
    let instance = super::instance_key(&identity, query.as_deref())?;
    let permit = shared.limit.try_acquire()?;
    let cfg = &shared.config;
    let max_message = cfg.ws_max_message_bytes;
    let shared2 = shared.clone();
    Ok(ws
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(cfg.outbox_bytes.max(max_message) + WRITE_BUFFER * 4)
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .on_upgrade(move |socket| async move {
            let session = Session::open(&shared2.hub, Transport::WebSocket, permit, instance);
            run(shared2, session, socket, identity).await
        }))
}

async fn run(shared: Arc<Shared>, session: Session, socket: WebSocket, identity: Identity) {
    let conn = session.conn.clone();
    let started = Instant::now();
    let last_heard = Arc::new(AtomicU64::new(0));
    conn.push_control(encode(&ServerFrame::Welcome(
        session.welcome(&shared.config, None),
    )));
    let (sink, mut stream) = socket.split();
    let mut writer = tokio::spawn(write_loop(
        shared.clone(),
        conn.clone(),
        sink,
        started,
        last_heard.clone(),
    ));
    let mut reader = Reader {
        shared: &shared,
        session: &session,
        subscribed: false,
        consumes: Consumes::default(),
        clock: TokenClock::start(&identity),
        identity,
        emits: TokenBucket::new(shared.config.emit_rate, shared.config.emit_burst),
    };
    let expiry = tokio::time::sleep_until(reader.clock.deadline());
    tokio::pin!(expiry);
    let mut writer_done = false;
    loop {
        tokio::select! {
            _ = &mut expiry, if reader.clock.is_running() => {
                reader.on_clock();
                expiry.as_mut().reset(reader.clock.deadline());
            }
            msg = stream.next() => {
                let msg = match msg {
                    Some(Ok(msg)) => msg,
                    Some(Err(e)) => {
                        if let Some(reason) = read_error_reason(e, shared.config.ws_max_message_bytes) {
                            shared.hub.end(&conn, reason, true);
                            if !writer_done {
                                let _ = (&mut writer).await;
                                writer_done = true;
                            }
                        }
                        break;
                    }
                    None => break,
                };
                last_heard.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                match msg {
                    Message::Text(text) => {
                        // Boxed: inline, the largest frame handler (publish,
                        // consume) would be part of every connection's task,
                        // idle or not (~2.5 KiB each).
                        Box::pin(reader.handle(&text)).await;
                        expiry.as_mut().reset(reader.clock.deadline());
                    }
                    Message::Binary(_) => conn.push_control(error_frame(
                        None,
                        ProtocolError::new(ErrorCode::UnsupportedFrame, "binary frames are not supported; send JSON text"),
                    )),
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            _ = &mut writer => {
                writer_done = true;
                break;
            }
        }
    }
    conn.abort();
    if !writer_done {
        let _ = writer.await;
    }
    drop(session);
}

/// Why a read failed, when the peer deserves to be told: a message over the
/// size limit (close 1009) or a text frame that is not UTF-8 (close 1007).
/// Other errors mean the socket is gone.
fn read_error_reason(e: axum::Error, max: usize) -> Option<ProtocolError> {
    use tungstenite::error::{CapacityError, Error};
    match e.into_inner().downcast::<Error>().ok().map(|b| *b)? {
        Error::Capacity(CapacityError::MessageTooLong { size, .. }) => Some(ProtocolError::new(
            ErrorCode::EventTooLarge,
            format!("message of {size} bytes is over the {max}-byte WebSocket limit"),
        )),
        Error::Capacity(_) => Some(ProtocolError::new(
            ErrorCode::EventTooLarge,
            "frame over the size limit",
        )),
        Error::Utf8(_) => Some(ProtocolError::new(
            ErrorCode::InvalidJson,
            "text frame is not valid UTF-8",
        )),
        _ => None,
    }
}

/// Where a connection's token stands.
#[derive(Debug, Clone, Copy)]
enum TokenClock {
    /// No expiry (open gateway, anonymous, API key).
    Unlimited,
    /// Valid until this instant.
    Valid(Instant),
    /// Expired; told so; closed at this instant unless refreshed.
    Grace(Instant),
}

impl TokenClock {
    fn start(identity: &Identity) -> TokenClock {
        match identity.time_left() {
            Some(left) => TokenClock::Valid(Instant::now() + left),
            None => TokenClock::Unlimited,
        }
    }

    fn is_running(&self) -> bool {
        !matches!(self, TokenClock::Unlimited)
    }

    fn deadline(&self) -> Instant {
        match self {
            TokenClock::Valid(t) | TokenClock::Grace(t) => *t,
            // Never fires: the select branch is disabled.
            TokenClock::Unlimited => Instant::now() + Duration::from_secs(86_400),
        }
    }
}

struct Reader<'a> {
    identity: Identity,
    /// This connection's emit allowance.
    emits: TokenBucket,
    clock: TokenClock,
    shared: &'a Arc<Shared>,
    session: &'a Session,
    /// Resume (`since`) is only meaningful on a connection's first subscribe:
    /// a connection has one position, and later replays would break its order.
    subscribed: bool,
    /// Consumer groups this connection consumes (`consume`).
    consumes: Consumes,
}

impl Reader<'_> {
    /// The token's time is up: first a `token_expired` error frame and a
    /// grace period for an `auth` frame, then the close.
    fn on_clock(&mut self) {
        // One heartbeat to send a fresh token: long enough for a round trip
        // to the token function, short enough to bound stale rights.
        let grace = self.shared.config.heartbeat.max(Duration::from_secs(1));
        let conn = &self.session.conn;
        match self.clock {
            TokenClock::Valid(_) => {
                conn.push_control(error_frame(
                    None,
                    ProtocolError::new(
                        ErrorCode::TokenExpired,
                        format!(
                            "the token has expired; send {{\"op\":\"auth\",\"token\":...}} within {} s to continue",
                            grace.as_secs()
                        ),
                    ),
                ));
                self.clock = TokenClock::Grace(Instant::now() + grace);
            }
            TokenClock::Grace(_) => {
                self.shared.hub.end(
                    conn,
                    ProtocolError::new(
                        ErrorCode::TokenExpired,
                        "the token expired and was not refreshed",
                    ),
                    true,
                );
                self.clock = TokenClock::Unlimited;
            }
            TokenClock::Unlimited => {}
        }
    }

    /// An in-band token refresh. The subject must stay the same; the new
    /// rights replace the old, and subscriptions they no longer cover end.
    fn refresh(&mut self, reference: Option<String>, token: &str) -> Bytes {
        // An open gateway reads no token, so `authenticated` would vouch for
        // any string; say plainly that there is nothing to refresh.
        if !self.shared.auth.enforced() {
            return error_frame(
                reference,
                ProtocolError::new(
                    ErrorCode::BadRequest,
                    "this gateway has no authentication: there is no token to refresh",
                ),
            );
        }
        let new = match self.shared.auth.identify(Some(token)) {
            Ok(new) => new,
            Err(e) => return error_frame(reference, e),
        };
        if new.sub != self.identity.sub {
            return error_frame(
                reference,
                ProtocolError::new(ErrorCode::Forbidden, "the new token is for another subject"),
            );
        }
        let conn = &self.session.conn;
        let lost: Vec<Pattern> = conn
            .patterns
            .lock()
            .iter()
            .filter(|p| !new.rights.may_subscribe(p))
            .cloned()
            .collect();
        if !lost.is_empty() {
            self.session.hub.unsubscribe(conn, &lost);
            let names: Vec<String> = lost.iter().map(|p| p.to_string()).collect();
            conn.push_control(error_frame(
                None,
                ProtocolError::new(
                    ErrorCode::Forbidden,
                    format!(
                        "the new token does not cover {}; unsubscribed",
                        names.join(", ")
                    ),
                ),
            ));
        }
        self.clock = TokenClock::start(&new);
        let expires_at = new.expires_at;
        self.identity = new;
        encode(&ServerFrame::Authenticated {
            reference,
            expires_at,
        })
    }

    async fn handle(&mut self, text: &str) {
        let conn = &self.session.conn;
        let cfg = &self.shared.config;
        let reply = match parse_client_frame(text, cfg.max_subscriptions) {
            Err(FrameError { reference, error }) => error_frame(reference, error),
            Ok(ClientMsg::Subscribe {
                reference,
                topics,
                since,
            }) => {
                let since = since.filter(|s| !s.is_empty());
                if let Err(e) = self.identity.check_subscribe(&topics) {
                    error_frame(reference, e)
                } else if since.is_some() && self.subscribed {
                    error_frame(
                        reference,
                        ProtocolError::new(
                            ErrorCode::BadRequest,
                            "`since` is only accepted on the first subscribe of a connection",
                        ),
                    )
                } else {
                    let names: Vec<String> = topics.iter().map(|p| p.to_string()).collect();
                    let r = reference.clone();
                    match self.session.hub.subscribe(
                        conn,
                        topics,
                        since,
                        move |recovered, position| {
                            encode(&ServerFrame::Subscribed {
                                reference: r,
                                topics: names,
                                recovered,
                                position,
                            })
                        },
                    ) {
                        Ok(()) => {
                            self.subscribed = true;
                            return;
                        }
                        Err(e) => error_frame(reference, e),
                    }
                }
            }
            Ok(ClientMsg::Unsubscribe { reference, topics }) => {
                self.session.hub.unsubscribe(conn, &topics);
                encode(&ServerFrame::Unsubscribed {
                    reference,
                    topics: topics.iter().map(|p| p.to_string()).collect(),
                })
            }
            Ok(ClientMsg::Emit { reference, .. }) if !self.emits.try_take(1) => error_frame(
                reference,
                ProtocolError::new(
                    ErrorCode::RateLimited,
                    format!(
                        "more than {} emits per second (bursts of {}); slow down",
                        cfg.emit_rate, cfg.emit_burst
                    ),
                ),
            ),
            Ok(ClientMsg::Emit { reference, event }) => {
                match crate::publish::accept(
                    self.shared,
                    event.get(),
                    "eventwire/ws",
                    &self.identity,
                )
                .await
                {
                    Ok(a) => encode(&ServerFrame::Ack {
                        reference,
                        id: a.id,
                        seq: a.seq,
                        duplicate: a.duplicate,
                    }),
                    Err(e) => error_frame(reference, e),
                }
            }
            Ok(ClientMsg::Ping { reference }) => encode(&ServerFrame::Pong { reference }),
            Ok(ClientMsg::Auth { reference, token }) => self.refresh(reference, &token),
            // Consuming and settling need the same right: one refusal.
            Ok(
                ClientMsg::Consume {
                    reference, group, ..
                }
                | ClientMsg::Settle {
                    reference, group, ..
                },
            ) if !self.identity.rights.may_consume(&group) => {
                let refusal = self
                    .identity
                    .refusal(format_args!("working in group {group}"));
                error_frame(reference, refusal)
            }
            Ok(ClientMsg::Consume {
                reference,
                group,
                max_inflight,
            }) => {
                let r = reference.clone();
                match self
                    .consumes
                    .start(self.shared, conn, reference, group, max_inflight)
                    .await
                {
                    Ok(frame) => frame,
                    Err(e) => error_frame(r, e),
                }
            }
            Ok(ClientMsg::Settle {
                reference,
                op,
                group,
                handles,
                delay,
                reason,
            }) => {
                let r = reference.clone();
                let settled =
                    match Settle::checked(op, &handles, delay.as_deref(), reason.as_deref()) {
                        Ok(settle) => {
                            self.consumes
                                .settle(
                                    self.shared.groups.as_ref(),
                                    reference,
                                    group,
                                    handles,
                                    settle,
                                )
                                .await
                        }
                        Err(e) => Err(e),
                    };
                match settled {
                    Ok(frame) => frame,
                    Err(e) => error_frame(r, e),
                }
            }
        };
        conn.push_control(reply);
    }
}

async fn write_loop(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    mut sink: SplitSink<WebSocket, Message>,
    started: Instant,
    last_heard: Arc<AtomicU64>,
) {
    let period = shared.config.heartbeat;
    let mut buf = Vec::new();
    loop {
        match conn.take(&mut buf).await {
            Taken::Items => {
                record_batch(&shared.metrics, Transport::WebSocket, &buf);
                for item in buf.drain(..) {
                    let text = match item {
                        Out::Event(e) => super::frame::ws(&e),
                        Out::Control(b) => {
                            Utf8Bytes::try_from(b).expect("control frames are JSON text")
                        }
                    };
                    if sink.feed(Message::Text(text)).await.is_err() {
                        return conn.abort();
                    }
                }
                if sink.flush().await.is_err() {
                    return conn.abort();
                }
            }
            Taken::Closed(reason) => {
                let frame = CloseFrame {
                    code: close_code(reason.code),
                    reason: Utf8Bytes::from(reason.code.as_str()),
                };
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    sink.send(Message::Close(Some(frame))),
                )
                .await;
                return;
            }
            Taken::Aborted => {
                // Completes a close the peer started (tungstenite queued the
                // reply) and flushes; bounded for peers that are gone.
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
                return;
            }
            Taken::Heartbeat => {
                let heard = Duration::from_millis(last_heard.load(Ordering::Relaxed));
                if started.elapsed().saturating_sub(heard) > period * 2 {
                    shared.hub.end(
                        &conn,
                        ProtocolError::new(
                            ErrorCode::HeartbeatTimeout,
                            format!("no frame or pong for {} ms", (period * 2).as_millis()),
                        ),
                        true,
                    );
                } else if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                    return conn.abort();
                }
            }
        }
    }
}
