//! Everything the client puts on the wire, built in one place: the WebSocket
//! frames (named by the protocol crate's `op` constants), the event envelope
//! an emit carries, and the gateway URLs.
//!
//! Strings are assembled by hand, not with serde or `format!`: this module is
//! compiled into the browser client, where each of those costs kilobytes of
//! download. Everything here is plain Rust, so the native tests pin the
//! exact bytes.

use alloc::string::String;
use alloc::vec::Vec;
use eventwire_protocol::{PROTOCOL_VERSION, op};

/// The `ref` of the first `subscribe` on a connection: its `subscribed`
/// answer opens the channel.
pub const SUBSCRIBE_REF: &str = "sub";
/// The `ref` of a `subscribe` that adds a pattern to an open connection.
pub const ADD_REF: &str = "add";

/// `{"op":"<name>"` — the start of every frame.
fn frame(name: &str) -> String {
    let mut f = String::with_capacity(64);
    f.push_str("{\"op\":\"");
    f.push_str(name);
    ascii(&mut f, b'"');
    f
}

/// `subscribe` for `topics`, resuming after `since` when given.
pub fn subscribe(reference: &str, topics: &[String], since: Option<&str>) -> String {
    let mut f = frame(op::SUBSCRIBE);
    f.push_str(",\"ref\":");
    push_json_str(&mut f, reference);
    f.push_str(",\"topics\":[");
    for (i, t) in topics.iter().enumerate() {
        if i > 0 {
            ascii(&mut f, b',');
        }
        push_json_str(&mut f, t);
    }
    ascii(&mut f, b']');
    if let Some(s) = since {
        f.push_str(",\"since\":");
        push_json_str(&mut f, s);
    }
    ascii(&mut f, b'}');
    f
}

pub fn unsubscribe(topic: &str) -> String {
    let mut f = frame(op::UNSUBSCRIBE);
    f.push_str(",\"topics\":[");
    push_json_str(&mut f, topic);
    f.push_str("]}");
    f
}

/// `emit` of an envelope that is already JSON (see [`envelope`]).
pub fn emit(reference: u64, envelope: &str) -> String {
    let mut f = frame(op::EMIT);
    f.reserve(envelope.len() + 24);
    f.push_str(",\"ref\":\"");
    push_u64(&mut f, reference);
    f.push_str("\",\"event\":");
    f.push_str(envelope);
    ascii(&mut f, b'}');
    f
}

pub fn ping() -> String {
    let mut f = frame(op::PING);
    ascii(&mut f, b'}');
    f
}

/// In-band token refresh.
pub fn auth(token: &str) -> String {
    let mut f = frame(op::AUTH);
    f.push_str(",\"token\":");
    push_json_str(&mut f, token);
    ascii(&mut f, b'}');
    f
}

/// The optional envelope attributes an emit may set, in the order written.
pub const ENVELOPE_OPTIONS: [&str; 3] = ["correlationid", "subject", "source"];

/// An emit's envelope: `id`, `type`, the optional attributes that are set
/// (the values of [`ENVELOPE_OPTIONS`], in its order), and `data`, already
/// JSON, when there is any. Made once per emit, so a resend after a dropped
/// connection is byte-identical and the gateway dedupes it.
pub fn envelope(id: &str, ty: &str, options: [Option<&str>; 3], data: Option<&str>) -> String {
    let mut e = String::with_capacity(64 + data.map_or(0, str::len));
    e.push_str("{\"id\":");
    push_json_str(&mut e, id);
    e.push_str(",\"type\":");
    push_json_str(&mut e, ty);
    for (name, value) in ENVELOPE_OPTIONS.iter().zip(&options) {
        if let Some(value) = value {
            e.push_str(",\"");
            e.push_str(name);
            e.push_str("\":");
            push_json_str(&mut e, value);
        }
    }
    if let Some(d) = data {
        e.push_str(",\"data\":");
        e.push_str(d);
    }
    ascii(&mut e, b'}');
    e
}

/// `<scheme><base>/v1/<path>`.
fn endpoint(scheme: &str, base: &str, path: &str) -> String {
    let mut url = String::with_capacity(base.len() + path.len() + 64);
    url.push_str(scheme);
    url.push_str(base);
    url.push_str("/v");
    push_u64(&mut url, PROTOCOL_VERSION.into());
    ascii(&mut url, b'/');
    url.push_str(path);
    url
}

/// A stream's endpoint with its first parameter, `instance`, which names
/// the channel so the gateway ends a stale connection of it at once
/// (PROTOCOL §4.6).
fn stream(scheme: &str, base: &str, path: &str, instance: &str) -> String {
    let mut url = endpoint(scheme, base, path);
    url.push_str("?instance=");
    push_uri_component(&mut url, instance);
    url
}

/// Appends `&name=value` (every URL here has its first parameter already).
fn param(url: &mut String, name: &str, value: &str) {
    ascii(url, b'&');
    url.push_str(name);
    ascii(url, b'=');
    push_uri_component(url, value);
}

/// The WebSocket endpoint. `base` is `http://…` or `https://…`, which become
/// `ws://…` and `wss://…`. A token goes in the query: browsers cannot set
/// headers on a WebSocket.
pub fn websocket(base: &str, instance: &str, token: Option<&str>) -> String {
    let rest = base.strip_prefix("http").unwrap_or(base);
    let mut url = stream("ws", rest, "ws", instance);
    if let Some(t) = token {
        param(&mut url, "access_token", t);
    }
    url
}

/// The SSE endpoint: the channel instance, unnamed events (every event
/// reaches `onmessage`), heartbeats as events (a script cannot see
/// comments), the topics, the position to resume after, and the token
/// (`EventSource` cannot set headers either).
pub fn sse(
    base: &str,
    instance: &str,
    topics: &[String],
    since: Option<&str>,
    token: Option<&str>,
) -> String {
    let mut url = stream("", base, "sse", instance);
    url.push_str("&named=false&heartbeat=event");
    for t in topics {
        param(&mut url, "topic", t);
    }
    if let Some(s) = since {
        param(&mut url, "lastEventId", s);
    }
    if let Some(t) = token {
        param(&mut url, "access_token", t);
    }
    url
}

/// The publish endpoint an SSE channel POSTs its emits to.
pub fn events(base: &str) -> String {
    endpoint("", base, "events")
}

/// `Bearer <token>`, the `Authorization` header of a POST.
pub fn bearer(token: &str) -> String {
    let mut h = String::from("Bearer ");
    h.push_str(token);
    h
}

/// Appends `s` as a JSON string. Topics and positions are plain ASCII by
/// grammar, but escaping keeps a bad one from corrupting the frame.
pub fn push_json_str(out: &mut String, s: &str) {
    // SAFETY: the bytes of `s` are copied whole and in order, and all else
    // pushed is ASCII, so `out` is UTF-8 again when the borrow ends.
    let v = unsafe { out.as_mut_vec() };
    v.extend_from_slice(b"\"");
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => v.extend_from_slice(&[b'\\', b]),
            ..0x20 => {
                v.extend_from_slice(b"\\u00");
                push_hex(v, b);
            }
            b => v.extend_from_slice(&[b]),
        }
    }
    v.extend_from_slice(b"\"");
}

/// Appends `s` as `encodeURIComponent` would: everything but letters,
/// digits and `-_.!~*'()` as `%XX` of its UTF-8 bytes.
pub fn push_uri_component(out: &mut String, s: &str) {
    // SAFETY: only ASCII is pushed.
    let v = unsafe { out.as_mut_vec() };
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            )
        {
            v.extend_from_slice(&[b]);
        } else {
            v.extend_from_slice(b"%");
            push_hex(v, b);
        }
    }
}

/// Two hex digits, upper case as URLs have them (JSON accepts either).
fn push_hex(out: &mut Vec<u8>, b: u8) {
    let digit = |n: u8| if n < 10 { b'0' + n } else { b'A' + n - 10 };
    out.extend_from_slice(&[digit(b >> 4), digit(b & 15)]);
}

/// Appends a decimal number without pulling in the formatting machinery.
pub fn push_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    while let Some(slot) = i.checked_sub(1).and_then(|j| buf.get_mut(j)) {
        *slot = b'0' + (n % 10) as u8;
        i -= 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // SAFETY: only ASCII digits are pushed.
    unsafe { out.as_mut_vec() }.extend_from_slice(buf.get(i..).unwrap_or_default());
}

/// Appends one ASCII byte (anything else is dropped). Not `String::push`,
/// whose UTF-8 encoding of any `char` would be compiled in once more for
/// this crate.
fn ascii(out: &mut String, b: u8) {
    if b.is_ascii() {
        // SAFETY: an ASCII byte is a whole UTF-8 character.
        unsafe { out.as_mut_vec() }.extend_from_slice(&[b]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn frames_are_the_protocol_s_bytes() {
        let topics = vec![String::from("a.*"), String::from("b\"c")];
        assert_eq!(
            subscribe(SUBSCRIBE_REF, &topics, Some("m1-2")),
            r#"{"op":"subscribe","ref":"sub","topics":["a.*","b\"c"],"since":"m1-2"}"#
        );
        assert_eq!(
            unsubscribe("a.*"),
            r#"{"op":"unsubscribe","topics":["a.*"]}"#
        );
        assert_eq!(
            emit(18_446_744_073_709_551_615, "{}"),
            r#"{"op":"emit","ref":"18446744073709551615","event":{}}"#
        );
        assert_eq!(emit(0, "{}"), r#"{"op":"emit","ref":"0","event":{}}"#);
        assert_eq!(ping(), r#"{"op":"ping"}"#);
        assert_eq!(auth("t\n"), r#"{"op":"auth","token":"t\u000A"}"#);
        assert_eq!(auth("é\\€"), r#"{"op":"auth","token":"é\\€"}"#);
    }

    #[test]
    fn the_envelope_carries_the_set_options_and_data() {
        assert_eq!(
            envelope("i", "a.b", [Some("c"), None, Some("s")], Some("[1]")),
            r#"{"id":"i","type":"a.b","correlationid":"c","source":"s","data":[1]}"#
        );
        assert_eq!(
            envelope("i", "a", [None; 3], None),
            r#"{"id":"i","type":"a"}"#
        );
    }

    #[test]
    fn urls_encode_every_value() {
        assert_eq!(
            websocket("https://h:1/p", "i-1", Some("a b&c")),
            "wss://h:1/p/v1/ws?instance=i-1&access_token=a%20b%26c"
        );
        assert_eq!(websocket("http://h", "i", None), "ws://h/v1/ws?instance=i");
        assert_eq!(
            sse(
                "http://h",
                "i",
                &[String::from("a.>"), String::from("é")],
                Some("m1-2"),
                Some("t")
            ),
            "http://h/v1/sse?instance=i&named=false&heartbeat=event&topic=a.%3E&topic=%C3%A9&lastEventId=m1-2&access_token=t"
        );
        assert_eq!(events("http://h"), "http://h/v1/events");
        let mut s = String::new();
        push_uri_component(&mut s, "-_.!~*'()azAZ09/?#");
        assert_eq!(s, "-_.!~*'()azAZ09%2F%3F%23");
    }
}
