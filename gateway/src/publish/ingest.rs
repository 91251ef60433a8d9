//! Turning what a producer sent into a [`NewEvent`]: size check, parse,
//! validate, fill defaults. Shared by `POST /v1/events` and WebSocket `emit`
//! so both transports accept exactly the same events.

use crate::engine::NewEvent;
use eventwire_protocol::{Envelope, ErrorCode, ProtocolError, SPEC_VERSION};
use serde_json::value::RawValue;
use std::time::SystemTime;

/// Deepest nesting of arrays and objects accepted in an event. Browsers and
/// many JSON libraries parse recursively; a 10,000-deep payload would be a
/// stack-overflow bomb for them even though the gateway never parses `data`.
pub const MAX_DEPTH: usize = 64;

/// Measures nesting with a byte scan (strings skipped), no allocation.
fn depth_within(raw: &str, max: usize) -> bool {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for b in raw.bytes() {
        if in_str {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

/// `data` minus whitespace outside strings. `data` is otherwise kept
/// verbatim, but a line break in it would end an SSE `data:` line early.
/// (JSON strings cannot hold raw line breaks, so any there are formatting.)
fn one_line(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let (mut in_str, mut escaped) = (false, false);
    for c in raw.chars() {
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
        } else if c == '"' {
            in_str = true;
        } else if c.is_ascii_whitespace() {
            continue;
        }
        out.push(c);
    }
    out
}

/// Parses one envelope given as raw JSON text.
///
/// The size counted is the object's own text: JSON whitespace around it is
/// not part of the event, so the same event measures the same as a single
/// POST body, as a batch item and as a WebSocket `emit`.
pub fn prepare(
    raw: &str,
    max_event_bytes: usize,
    default_source: &str,
) -> Result<NewEvent, ProtocolError> {
    let raw = raw.trim_matches([' ', '\t', '\n', '\r']);
    if raw.len() > max_event_bytes {
        return Err(ProtocolError::new(
            ErrorCode::EventTooLarge,
            format!(
                "event is {} bytes; the limit is {max_event_bytes}",
                raw.len()
            ),
        ));
    }
    if !depth_within(raw, MAX_DEPTH) {
        return Err(ProtocolError::new(
            ErrorCode::InvalidJson,
            format!("event nests arrays or objects deeper than {MAX_DEPTH} levels"),
        ));
    }
    let mut envelope: Envelope<Box<RawValue>> = serde_json::from_str(raw).map_err(|e| {
        let code = match e.classify() {
            serde_json::error::Category::Data => ErrorCode::InvalidEvent,
            _ => ErrorCode::InvalidJson,
        };
        ProtocolError::new(code, format!("event: {e}"))
    })?;
    let topic = envelope.validate()?;
    if let Some(data) = &envelope.data
        && data.get().contains(['\n', '\r'])
    {
        envelope.data =
            Some(RawValue::from_string(one_line(data.get())).expect("minifying keeps JSON valid"));
    }
    envelope.specversion = Some(SPEC_VERSION.to_owned());
    envelope.seq = None;
    if envelope.id.is_none() {
        envelope.id = Some(uuid::Uuid::new_v4().to_string());
    }
    if envelope.source.is_none() {
        envelope.source = Some(default_source.to_owned());
    }
    if envelope.time.is_none() {
        envelope.time = Some(humantime::format_rfc3339_millis(SystemTime::now()).to_string());
    }
    if envelope.data.is_some() && envelope.datacontenttype.is_none() {
        envelope.datacontenttype = Some("application/json".to_owned());
    }
    Ok(NewEvent { topic, envelope })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_defaults_and_keeps_data_verbatim() {
        let ev = prepare(r#"{"type":"a.b","data":{"x": [1, 2.50]}}"#, 1024, "src").unwrap();
        let e = &ev.envelope;
        assert_eq!(e.specversion.as_deref(), Some("1.0"));
        assert_eq!(e.source.as_deref(), Some("src"));
        assert!(e.id.as_deref().is_some_and(|id| id.len() == 36));
        assert!(eventwire_protocol::envelope::is_rfc3339(
            e.time.as_deref().unwrap()
        ));
        assert_eq!(e.data.as_ref().unwrap().get(), r#"{"x": [1, 2.50]}"#);
    }

    #[test]
    fn line_breaks_in_data_are_removed_and_strings_kept() {
        let ev = prepare(
            "{\"type\":\"a\",\"data\":{\r\n  \"s\": \"x y\\n\",\n  \"n\": [1,\n 2]\n}}",
            1024,
            "s",
        )
        .unwrap();
        assert_eq!(
            ev.envelope.data.unwrap().get(),
            r#"{"s":"x y\n","n":[1,2]}"#
        );
        let ev = prepare(r#"{"type":"a","data":{"keep": "a  b"}}"#, 1024, "s").unwrap();
        assert_eq!(
            ev.envelope.data.unwrap().get(),
            r#"{"keep": "a  b"}"#,
            "no line break: verbatim"
        );
    }

    #[test]
    fn whitespace_around_the_object_is_not_counted() {
        let event = r#"{"type":"a","data":"xxxx"}"#;
        let limit = event.len();
        assert!(prepare(event, limit, "s").is_ok());
        let padded = format!("\n  {event} \r\n\t");
        assert!(prepare(&padded, limit, "s").is_ok(), "as in a batch");
        assert_eq!(
            prepare(&format!("{event} "), limit - 1, "s")
                .unwrap_err()
                .code,
            ErrorCode::EventTooLarge
        );
    }

    #[test]
    fn classifies_errors() {
        let code = |s: &str| prepare(s, 64, "s").unwrap_err().code;
        assert_eq!(code("{"), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"data":1}"#), ErrorCode::InvalidEvent);
        assert_eq!(code(r#"{"type":"a b"}"#), ErrorCode::InvalidTopic);
        assert_eq!(
            code(&format!(r#"{{"type":"a","data":"{}"}}"#, "x".repeat(64))),
            ErrorCode::EventTooLarge
        );
        let deep = format!(
            r#"{{"type":"a","data":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert_eq!(
            prepare(&deep, 1 << 20, "s").unwrap_err().code,
            ErrorCode::InvalidJson
        );
        let ok = format!(
            r#"{{"type":"a","data":{}"[[[\"]]]"{}}}"#,
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(
            prepare(&ok, 1 << 20, "s").is_ok(),
            "brackets inside strings do not count"
        );
    }
}
