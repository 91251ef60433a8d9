//! The reconnect/resume state machine, natively: no browser, no timers, just
//! inputs at chosen times and the actions they produce.

#![cfg(not(target_arch = "wasm32"))]

use eventwire_channel::machine::{Action, Config, Emit, Input, Kind, Machine, Preference, State};
use eventwire_protocol::Topic;
use eventwire_protocol::topic::{MAX_SEGMENT_LEN, MAX_SEGMENTS, MAX_TOPIC_LEN};

type M = Machine<String>;
type A = Action<String>;

fn machine(preference: Preference, topics: &[&str]) -> M {
    let mut m = Machine::new(Config {
        preference,
        outbox_max: 3,
        ..Config::default()
    });
    for t in topics {
        assert_eq!(act(&mut m, Input::AddPattern(t), 0.0), [], "before Start");
    }
    m
}

/// Drops the `Wake` bookkeeping, which almost every step produces.
fn act(m: &mut M, input: Input<String>, now: f64) -> Vec<A> {
    m.handle(input, now, 0.5)
        .into_iter()
        .filter(|a| !matches!(a, Action::Wake(_)))
        .collect()
}

fn welcome(recovered: Option<bool>) -> Input<'static, String> {
    Input::Welcome {
        heartbeat_ms: 1000.0,
        max_event_bytes: 100,
        recovered,
        position: None,
    }
}

fn subscribed(recovered: bool) -> Input<'static, String> {
    Input::Subscribed {
        recovered,
        position: None,
    }
}

fn ev<'a>(id: &'a str, seq: &'a str) -> Input<'a, String> {
    ev_from("s", id, seq)
}

fn ev_from<'a>(source: &'a str, id: &'a str, seq: &'a str) -> Input<'a, String> {
    Input::Event {
        id,
        source,
        ty: "a.b",
        seq,
        payload: id.into(),
    }
}

fn emit(reference: u64, ty: &str) -> Input<'_, String> {
    Input::Emit {
        ty,
        emit: Emit {
            reference,
            json: format!(r#"{{"id":"id{reference}","type":"{ty}"}}"#),
        },
    }
}

/// Feeds `input`, which must make the machine ask for a transport, and
/// answers which, with what its URL or subscribe frame is made from: the
/// patterns and the position to resume after.
fn opened<'a>(
    m: &'a mut M,
    input: Input<'_, String>,
    now: f64,
) -> (Kind, Vec<String>, Option<&'a str>) {
    let out = act(m, input, now);
    let [Action::Open { kind }] = out.as_slice() else {
        panic!("no Open: {out:?}");
    };
    (*kind, m.patterns().to_vec(), m.last_seq())
}

fn open_state(recovered: bool, kind: Kind) -> A {
    Action::State {
        state: State::Open,
        transport: Some(kind),
        recovered: Some(recovered),
        attempt: 0,
        delay_ms: None,
    }
}

/// A WebSocket channel that is open, subscribed to `a.*`.
fn open_ws() -> M {
    let mut m = machine(Preference::WebSocket, &["a.*"]);
    act(&mut m, Input::Start, 0.0);
    act(&mut m, welcome(None), 1.0);
    act(&mut m, subscribed(true), 2.0);
    assert_eq!(m.state(), State::Open);
    m
}

#[test]
fn websocket_connects_subscribes_and_emits() {
    let mut m = machine(Preference::WebSocket, &["a.*"]);
    assert_eq!(
        opened(&mut m, Input::Start, 0.0),
        (Kind::WebSocket, vec!["a.*".into()], None)
    );
    assert_eq!(
        act(&mut m, welcome(None), 1.0),
        [Action::Send(
            r#"{"op":"subscribe","ref":"sub","topics":["a.*"]}"#.into()
        )]
    );
    assert_eq!(
        m.state(),
        State::Connecting,
        "not open before the subscription holds"
    );
    assert_eq!(
        act(&mut m, subscribed(true), 2.0),
        [open_state(true, Kind::WebSocket)]
    );
    assert_eq!(
        act(&mut m, emit(7, "ui.clicked"), 3.0),
        [Action::Send(
            r#"{"op":"emit","ref":"7","event":{"id":"id7","type":"ui.clicked"}}"#.into()
        )]
    );
    let receipt = String::from(r#"{"id":"id7","seq":"e-1","duplicate":false}"#);
    let ack = Input::Ack {
        reference: 7,
        receipt: receipt.clone(),
    };
    assert_eq!(
        act(&mut m, ack, 4.0),
        [Action::Resolve {
            reference: 7,
            receipt
        }]
    );
}

#[test]
fn events_are_deduplicated_by_source_and_id_and_advance_the_position() {
    let mut m = open_ws();
    assert_eq!(
        act(&mut m, ev("x", "e-1"), 3.0),
        [Action::Deliver {
            payload: "x".into()
        }]
    );
    assert_eq!(act(&mut m, ev("x", "e-1"), 4.0), []);
    assert_eq!(act(&mut m, ev("y", "e-2"), 5.0).len(), 1);
    assert_eq!(m.last_seq(), Some("e-2"));
    // The key is `source` + `id`, as on the gateway: another publisher's
    // event with the same id is delivered.
    assert_eq!(act(&mut m, ev_from("u2", "x", "e-3"), 6.0).len(), 1);
    assert_eq!(act(&mut m, ev_from("u2", "x", "e-3"), 7.0), []);
}

#[test]
fn reconnects_with_backoff_and_resumes_from_the_last_position() {
    let mut m = open_ws();
    act(&mut m, ev("x", "e-5"), 3.0);
    let lost = act(&mut m, Input::Closed { code: None }, 10.0);
    assert_eq!(
        lost,
        [Action::State {
            state: State::Reconnecting,
            transport: Some(Kind::WebSocket),
            recovered: None,
            attempt: 1,
            delay_ms: Some(500.0)
        }]
    );
    assert_eq!(act(&mut m, Input::Tick, 400.0), [], "not before the delay");
    assert_eq!(
        opened(&mut m, Input::Tick, 510.0),
        (Kind::WebSocket, vec!["a.*".into()], Some("e-5"))
    );
    assert_eq!(
        act(&mut m, welcome(None), 520.0),
        [Action::Send(
            r#"{"op":"subscribe","ref":"sub","topics":["a.*"],"since":"e-5"}"#.into()
        )]
    );
    assert_eq!(
        act(&mut m, subscribed(false), 530.0),
        [open_state(false, Kind::WebSocket)]
    );
}

#[test]
fn a_start_position_is_resumed_after_on_the_first_connection_of_either_transport() {
    let mut m = machine(Preference::WebSocket, &["a.*"]);
    m.resume_after("e-7");
    assert_eq!(
        opened(&mut m, Input::Start, 0.0),
        (Kind::WebSocket, vec!["a.*".into()], Some("e-7"))
    );
    assert_eq!(
        act(&mut m, welcome(None), 1.0),
        [Action::Send(
            r#"{"op":"subscribe","ref":"sub","topics":["a.*"],"since":"e-7"}"#.into()
        )]
    );
    // The gateway could not honour it: the channel says so, and goes on
    // from where the gateway started.
    let out = act(
        &mut m,
        Input::Subscribed {
            recovered: false,
            position: Some("e-9"),
        },
        2.0,
    );
    assert_eq!(out, [open_state(false, Kind::WebSocket)]);
    assert_eq!(m.last_seq(), Some("e-9"));

    let mut m = machine(Preference::Sse, &["a"]);
    m.resume_after("e-7");
    assert_eq!(
        opened(&mut m, Input::Start, 0.0),
        (Kind::Sse, vec!["a".into()], Some("e-7"))
    );
}

#[test]
fn delays_grow_while_failures_repeat_and_reset_after_success() {
    let mut m = machine(Preference::WebSocket, &["a"]);
    act(&mut m, Input::Start, 0.0);
    act(&mut m, welcome(None), 1.0);
    act(&mut m, subscribed(true), 1.0);
    let mut now = 10.0;
    let mut delays = Vec::new();
    for _ in 0..4 {
        let out = m.handle(Input::Closed { code: None }, now, 1.0);
        let d = out
            .iter()
            .find_map(|a| match a {
                Action::State {
                    delay_ms: Some(d), ..
                } => Some(*d),
                _ => None,
            })
            .unwrap();
        delays.push(d);
        now += d + 1.0;
        m.handle(Input::Tick, now, 1.0);
    }
    assert_eq!(delays, [500.0, 1000.0, 2000.0, 4000.0]);
    m.handle(welcome(None), now, 1.0);
    m.handle(subscribed(true), now, 1.0);
    let out = m.handle(Input::Closed { code: None }, now + 1.0, 1.0);
    assert!(
        out.iter().any(
            |a| matches!(a, Action::State { attempt: 1, delay_ms: Some(d), .. } if *d == 500.0)
        )
    );
}

#[test]
fn offline_emits_wait_in_a_bounded_outbox_and_flush_in_order() {
    let mut m = open_ws();
    // One emit in flight when the connection drops: it is sent again first.
    act(&mut m, emit(1, "ui.a"), 3.0);
    act(&mut m, Input::Closed { code: None }, 4.0);
    assert_eq!(act(&mut m, emit(2, "ui.b"), 5.0), []);
    assert_eq!(act(&mut m, emit(3, "ui.c"), 6.0), []);
    assert_eq!(m.outbox_len(), 3);
    match act(&mut m, emit(4, "ui.d"), 7.0).as_slice() {
        [
            Action::Reject {
                reference: 4, code, ..
            },
        ] => assert_eq!(code, "outbox_full"),
        other => panic!("{other:?}"),
    }
    act(&mut m, Input::Tick, 1000.0);
    act(&mut m, welcome(None), 1001.0);
    let out = act(&mut m, subscribed(true), 1002.0);
    let sent: Vec<&str> = out
        .iter()
        .filter_map(|a| match a {
            Action::Send(s) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 3);
    assert!(
        sent[0].contains(r#""ref":"1""#)
            && sent[1].contains(r#""ref":"2""#)
            && sent[2].contains(r#""ref":"3""#),
        "{sent:?}"
    );
    assert_eq!(m.outbox_len(), 0);
}

#[test]
fn auto_falls_back_to_sse_when_websocket_never_connects() {
    let mut m = machine(Preference::Auto, &["a"]);
    assert!(matches!(
        act(&mut m, Input::Start, 0.0).as_slice(),
        [Action::Open {
            kind: Kind::WebSocket,
            ..
        }]
    ));
    assert_eq!(
        opened(&mut m, Input::Closed { code: None }, 5.0),
        (Kind::Sse, vec!["a".into()], None),
        "straight to SSE, no backoff"
    );
    assert_eq!(
        act(&mut m, welcome(Some(true)), 6.0),
        [open_state(true, Kind::Sse)]
    );
    assert_eq!(m.transport(), Some(Kind::Sse));
    act(&mut m, Input::Closed { code: None }, 7.0);
    assert!(
        matches!(
            act(&mut m, Input::Tick, 10_000.0).as_slice(),
            [Action::Open {
                kind: Kind::Sse,
                ..
            }]
        ),
        "SSE sticks"
    );
}

#[test]
fn auto_keeps_websocket_once_it_has_worked() {
    let mut m = machine(Preference::Auto, &["a"]);
    act(&mut m, Input::Start, 0.0);
    act(&mut m, welcome(None), 1.0);
    act(&mut m, subscribed(true), 2.0);
    act(&mut m, Input::Closed { code: None }, 3.0);
    assert!(matches!(
        act(&mut m, Input::Tick, 10_000.0).as_slice(),
        [Action::Open {
            kind: Kind::WebSocket,
            ..
        }]
    ));
    // A failed reconnect is a network problem, not a blocked upgrade.
    act(&mut m, Input::Closed { code: None }, 10_001.0);
    assert!(matches!(
        act(&mut m, Input::Tick, 30_000.0).as_slice(),
        [Action::Open {
            kind: Kind::WebSocket,
            ..
        }]
    ));
}

#[test]
fn sse_posts_one_emit_at_a_time_in_order_and_retries_failures() {
    let mut m = machine(Preference::Sse, &["a"]);
    act(&mut m, Input::Start, 0.0);
    act(&mut m, welcome(Some(true)), 1.0);
    let first = act(&mut m, emit(1, "ui.a"), 2.0);
    assert!(matches!(
        first.as_slice(),
        [Action::Post { reference: 1, .. }]
    ));
    assert_eq!(act(&mut m, emit(2, "ui.b"), 3.0), [], "waits for the first");
    assert!(matches!(
        act(&mut m, Input::PostFailed { reference: 1 }, 4.0).as_slice(),
        []
    ));
    let retried = act(&mut m, Input::Tick, 1000.0);
    assert!(
        matches!(retried.as_slice(), [Action::Post { reference: 1, .. }]),
        "{retried:?}"
    );
    let ack = Input::Ack {
        reference: 1,
        receipt: "duplicate".into(),
    };
    let out = act(&mut m, ack, 1001.0);
    assert!(
        matches!(
            out.as_slice(),
            [
                Action::Resolve {
                    reference: 1,
                    receipt,
                },
                Action::Post { reference: 2, .. },
            ] if receipt == "duplicate"
        ),
        "{out:?}"
    );
    let refused = Input::Refused {
        reference: Some(2),
        code: "invalid_event",
        message: "no",
    };
    assert!(matches!(
        act(&mut m, refused, 1002.0).as_slice(),
        [Action::Reject { reference: 2, .. }]
    ));
}

#[test]
fn silence_past_two_heartbeats_means_dead_and_pings_keep_websocket_alive() {
    let mut m = open_ws();
    assert_eq!(
        act(&mut m, Input::Tick, 1002.0),
        [Action::Send(r#"{"op":"ping"}"#.into())]
    );
    act(&mut m, Input::Heard, 1500.0);
    assert_eq!(
        act(&mut m, Input::Tick, 2002.0),
        [Action::Send(r#"{"op":"ping"}"#.into())]
    );
    let out = act(&mut m, Input::Tick, 3600.0);
    assert_eq!(out[0], Action::CloseTransport);
    assert!(
        matches!(
            out.last(),
            Some(Action::State {
                state: State::Reconnecting,
                ..
            })
        ),
        "{out:?}"
    );
}

#[test]
fn a_welcome_that_never_comes_times_out() {
    let mut m = machine(Preference::Sse, &["a"]);
    act(&mut m, Input::Start, 0.0);
    let out = act(&mut m, Input::Tick, 10_001.0);
    assert_eq!(out[0], Action::CloseTransport);
    assert!(matches!(&out[1], Action::Error { code, .. } if code == "connect_timeout"));
    assert!(matches!(
        out.last(),
        Some(Action::State {
            state: State::Reconnecting,
            ..
        })
    ));
}

#[test]
fn bad_emits_are_rejected_before_they_leave() {
    let mut m = open_ws();
    assert!(
        matches!(act(&mut m, emit(1, "bad topic"), 3.0).as_slice(), [Action::Reject { code, .. }] if code == "invalid_topic")
    );
    let big = Input::Emit {
        ty: "ui.a",
        emit: Emit {
            reference: 2,
            json: "x".repeat(101),
        },
    };
    assert!(
        matches!(act(&mut m, big, 4.0).as_slice(), [Action::Reject { code, .. }] if code == "event_too_large")
    );
}

#[test]
fn an_emit_s_type_is_checked_as_the_protocol_checks_a_topic() {
    // The machine checks a type with the pattern grammar (a topic is a
    // pattern without wildcards): it must accept exactly what
    // `Topic::check`, the gateway's rule, accepts.
    let long_segment = "s".repeat(MAX_SEGMENT_LEN + 1);
    let long_topic = ["abcdefghijklmno"; 16].join(".");
    let types = [
        "a",
        "a.b",
        "A-Z_09.x",
        "a.*",
        "*",
        ">",
        "a.>",
        "a.>.b",
        "a..b",
        ".a",
        "a.",
        "",
        "bad topic",
        "a/b",
        "é",
        "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p",
        "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q",
        &long_segment,
        &long_topic,
    ];
    let mut m = open_ws();
    for (i, ty) in types.iter().enumerate() {
        let out = act(&mut m, emit(i as u64 + 10, ty), 3.0);
        let refused =
            matches!(out.as_slice(), [Action::Reject { code, .. }] if code == "invalid_topic");
        assert_eq!(refused, Topic::check(ty).is_err(), "{ty:?}: {out:?}");
        if let [Action::Reject { code, message, .. }] = out.as_slice()
            && code == "invalid_topic"
        {
            for limit in [MAX_SEGMENTS, MAX_SEGMENT_LEN, MAX_TOPIC_LEN] {
                assert!(message.contains(&limit.to_string()), "{message}");
            }
        }
    }
}

/// The emits that `out` rejects as `closed`, in order.
fn closed(out: &[A]) -> Vec<u64> {
    out.iter()
        .filter_map(|a| match a {
            Action::Reject {
                reference, code, ..
            } if code == "closed" => Some(*reference),
            _ => None,
        })
        .collect()
}

#[test]
fn close_rejects_everything_pending_and_later_emits() {
    let mut m = open_ws();
    act(&mut m, emit(1, "ui.a"), 3.0);
    act(&mut m, Input::Closed { code: None }, 4.0);
    act(&mut m, emit(2, "ui.a"), 5.0);
    assert_eq!(closed(&act(&mut m, Input::Close, 6.0)), [1, 2]);
    assert_eq!(m.state(), State::Closed);
    assert!(
        matches!(act(&mut m, emit(3, "ui.a"), 7.0).as_slice(), [Action::Reject { reference: 3, code, .. }] if code == "closed")
    );
    assert_eq!(
        act(&mut m, Input::Tick, 100_000.0),
        [],
        "no reconnect after close"
    );

    // On SSE, one POST in flight and one emit waiting: both rejected, in
    // the order they were emitted.
    let mut m = machine(Preference::Sse, &["a"]);
    act(&mut m, Input::Start, 0.0);
    act(&mut m, welcome(Some(true)), 1.0);
    act(&mut m, emit(1, "ui.a"), 2.0);
    act(&mut m, emit(2, "ui.b"), 3.0);
    assert_eq!(closed(&act(&mut m, Input::Close, 4.0)), [1, 2]);
}

#[test]
fn new_sse_topics_reopen_the_stream_quietly_from_the_last_position() {
    let mut m = machine(Preference::Sse, &["a"]);
    act(&mut m, Input::Start, 0.0);
    act(&mut m, welcome(Some(true)), 1.0);
    act(&mut m, ev("x", "e-3"), 2.0);
    assert_eq!(act(&mut m, Input::AddPattern("b.*"), 3.0), []);
    assert_eq!(
        act(&mut m, Input::AddPattern("c"), 3.0),
        [],
        "a burst coalesces"
    );
    assert_eq!(
        act(&mut m, Input::Tick, 3.0),
        [Action::CloseTransport, Action::Open { kind: Kind::Sse }]
    );
    assert_eq!(m.patterns(), ["a", "b.*", "c"]);
    assert_eq!(m.last_seq(), Some("e-3"));
    assert_eq!(
        act(&mut m, welcome(Some(true)), 4.0),
        [],
        "not reported as a reconnect"
    );
    assert_eq!(m.state(), State::Open);
}

#[test]
fn websocket_subscribes_and_unsubscribes_in_place() {
    let mut m = open_ws();
    assert_eq!(
        act(&mut m, Input::AddPattern("b.>"), 3.0),
        [Action::Send(
            r#"{"op":"subscribe","ref":"add","topics":["b.>"]}"#.into()
        )]
    );
    assert_eq!(
        act(&mut m, Input::AddPattern("b.>"), 3.0),
        [],
        "already held"
    );
    assert_eq!(
        act(&mut m, Input::RemovePattern("b.>"), 4.0),
        [Action::Send(
            r#"{"op":"unsubscribe","topics":["b.>"]}"#.into()
        )]
    );
}

#[test]
fn a_gateway_shutdown_is_followed_by_a_quick_reconnect() {
    let mut m = open_ws();
    for _ in 0..5 {
        m.handle(Input::Closed { code: None }, 5.0, 1.0);
        m.handle(Input::Tick, 1e9, 1.0);
    }
    m.handle(welcome(None), 1e9, 1.0);
    m.handle(subscribed(true), 1e9, 1.0);
    let out = m.handle(
        Input::Closed {
            code: Some("shutting_down"),
        },
        1e9 + 1.0,
        1.0,
    );
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::State { delay_ms: Some(d), .. } if *d == 500.0)),
        "{out:?}"
    );
}

/// An emit-only SSE channel still opens a stream (the gateway welcomes one
/// with no topic, PROTOCOL §5.1): it is open only once welcomed, a gateway
/// that never answers is a `connect_timeout` and a reconnect, and the first
/// subscription reopens the stream with its topic from the welcome's position.
#[test]
fn sse_without_topics_opens_a_stream_and_is_open_only_when_welcomed() {
    let mut m = machine(Preference::Sse, &[]);
    assert_eq!(
        opened(&mut m, Input::Start, 0.0),
        (Kind::Sse, vec![], None),
        "a stream even with nothing to subscribe to"
    );
    assert_eq!(m.state(), State::Connecting);
    assert_eq!(act(&mut m, emit(1, "ui.a"), 1.0), [], "held until welcomed");
    // Nothing answers: the attempt times out and the channel says so.
    let out = act(&mut m, Input::Tick, 10_001.0);
    assert!(
        matches!(
            out.as_slice(),
            [
                Action::CloseTransport,
                Action::Error { code, .. },
                Action::State {
                    state: State::Reconnecting,
                    transport: Some(Kind::Sse),
                    attempt: 1,
                    ..
                }
            ] if code == "connect_timeout"
        ),
        "{out:?}"
    );
    assert_eq!(
        opened(&mut m, Input::Tick, 20_000.0),
        (Kind::Sse, vec![], None)
    );
    let out = act(
        &mut m,
        Input::Welcome {
            heartbeat_ms: 1000.0,
            max_event_bytes: 100,
            recovered: Some(true),
            position: Some("e-9"),
        },
        20_001.0,
    );
    assert!(
        matches!(
            out.as_slice(),
            [s, Action::Post { reference: 1, .. }] if *s == open_state(true, Kind::Sse)
        ),
        "{out:?}"
    );
    // The first subscription reopens the stream with it, quietly.
    act(&mut m, Input::AddPattern("a"), 20_002.0);
    assert_eq!(
        act(&mut m, Input::Tick, 20_002.0),
        [Action::CloseTransport, Action::Open { kind: Kind::Sse }]
    );
    assert_eq!(m.patterns(), ["a".to_string()]);
    assert_eq!(m.last_seq(), Some("e-9"), "from the welcome's position");
    assert_eq!(act(&mut m, welcome(Some(true)), 20_003.0), []);
    assert_eq!(m.state(), State::Open);
    // A stream that goes silent is lost like any other.
    let out = act(&mut m, Input::Tick, 30_000.0);
    assert!(
        out.iter().any(|a| matches!(
            a,
            Action::State {
                state: State::Reconnecting,
                ..
            }
        )),
        "{out:?}"
    );
}

#[test]
fn a_connection_lost_before_its_first_event_resumes_from_the_welcome_position() {
    let mut m = machine(Preference::WebSocket, &["a"]);
    act(&mut m, Input::Start, 0.0);
    act(&mut m, welcome(None), 1.0);
    act(
        &mut m,
        Input::Subscribed {
            recovered: true,
            position: Some("e-41"),
        },
        2.0,
    );
    assert_eq!(m.last_seq(), Some("e-41"));
    act(
        &mut m,
        Input::Closed {
            code: Some("slow_consumer"),
        },
        3.0,
    );
    assert_eq!(
        opened(&mut m, Input::Tick, 10_000.0),
        (Kind::WebSocket, vec!["a".into()], Some("e-41"))
    );
    act(&mut m, welcome(None), 10_001.0);
    // Recovered: the channel's own position stands.
    act(
        &mut m,
        Input::Subscribed {
            recovered: true,
            position: Some("e-99"),
        },
        10_002.0,
    );
    assert_eq!(m.last_seq(), Some("e-41"));
    // Not recovered (say the gateway restarted): the new stream's position replaces it.
    act(&mut m, Input::Closed { code: None }, 10_003.0);
    act(&mut m, Input::Tick, 20_000.0);
    act(&mut m, welcome(None), 20_001.0);
    act(
        &mut m,
        Input::Subscribed {
            recovered: false,
            position: Some("n-7"),
        },
        20_002.0,
    );
    assert_eq!(m.last_seq(), Some("n-7"));
}

#[test]
fn an_expired_token_is_refreshed_in_band_on_websocket_and_by_reconnecting_on_sse() {
    let mut m = open_ws();
    let expired = Input::Refused {
        reference: None,
        code: "token_expired",
        message: "m",
    };
    assert_eq!(act(&mut m, expired, 3.0), [Action::Reauth]);
    let mut m = machine(Preference::Sse, &["a"]);
    act(&mut m, Input::Start, 0.0);
    act(&mut m, welcome(Some(true)), 1.0);
    for _ in 0..3 {
        m.handle(Input::Closed { code: None }, 2.0, 1.0);
        m.handle(Input::Tick, 1e6, 1.0);
    }
    let out = m.handle(
        Input::Closed {
            code: Some("token_expired"),
        },
        1e6,
        1.0,
    );
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::State { delay_ms: Some(d), .. } if *d == 500.0)),
        "{out:?}"
    );
}
