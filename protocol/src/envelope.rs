//! The event envelope: CloudEvents 1.0 attribute names, JSON on the wire.
//!
//! The payload type `D` is generic so each side keeps `data` in its cheapest
//! form: the gateway as raw JSON bytes it never re-parses, a browser as a JS value.

use crate::error::{ErrorCode, ProtocolError};
use crate::prelude::*;
use crate::topic::Topic;
use serde::{Deserialize, Serialize};

/// Longest accepted `id` (bytes).
pub const MAX_ID_LEN: usize = 128;
/// Longest accepted `source`, `subject`, `correlationid` or `datacontenttype` (bytes).
pub const MAX_ATTR_LEN: usize = 256;

/// One event. On input only `type` is required; the gateway fills in
/// `specversion`, `id`, `source` and `time` when absent and always assigns
/// `seq`. On output every attribute the gateway fills is present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope<D> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specversion: Option<String>,
    /// Unique per event; the idempotency key for dedupe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The topic, e.g. `order.placed`.
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// RFC 3339 timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Extension attribute tying a reaction to the event that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlationid: Option<String>,
    /// Stream position assigned by the gateway's engine. Opaque to clients;
    /// ignored on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<String>,
    /// `None` when absent; an explicit `null` is kept as data.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present",
        bound(deserialize = "D: Deserialize<'de>")
    )]
    pub data: Option<D>,
}

/// Deserializes a field that is present as `Some`, even when it is `null`,
/// so that `"data": null` survives a round trip.
fn present<'de, T: Deserialize<'de>, De: serde::Deserializer<'de>>(
    d: De,
) -> Result<Option<T>, De::Error> {
    T::deserialize(d).map(Some)
}

fn check_attr(name: &str, value: Option<&str>, max: usize) -> Result<(), ProtocolError> {
    let Some(v) = value else { return Ok(()) };
    if v.is_empty() || v.len() > max {
        return Err(ProtocolError::new(
            ErrorCode::InvalidEvent,
            format!("`{name}` must be 1 to {max} bytes"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(ProtocolError::new(
            ErrorCode::InvalidEvent,
            format!("`{name}` must not contain control characters"),
        ));
    }
    Ok(())
}

/// Syntax check for RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`,
/// with field ranges checked (leap seconds allowed, days not checked per month).
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |from: usize, len: usize, max: u32| -> bool {
        b.len() >= from + len
            && b[from..from + len].iter().all(u8::is_ascii_digit)
            && s[from..from + len].parse::<u32>().is_ok_and(|v| v <= max)
    };
    let at = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(num(0, 4, 9999) && at(4, b"-") && num(5, 2, 12) && at(7, b"-") && num(8, 2, 31)) {
        return false;
    }
    if s[5..7] == *"00" || s[8..10] == *"00" {
        return false;
    }
    if !(at(10, b"Tt ") && num(11, 2, 23) && at(13, b":") && num(14, 2, 59) && at(16, b":")) {
        return false;
    }
    if !num(17, 2, 60) {
        return false;
    }
    let mut i = 19;
    if at(i, b".") {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match b.get(i) {
        Some(b'Z' | b'z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            num(i + 1, 2, 23) && at(i + 3, b":") && num(i + 4, 2, 59) && i + 6 == b.len()
        }
        _ => false,
    }
}

impl<D> Envelope<D> {
    /// A minimal envelope of `ty` carrying `data`.
    pub fn new(ty: impl Into<String>, data: D) -> Self {
        Envelope {
            specversion: None,
            id: None,
            ty: ty.into(),
            source: None,
            time: None,
            datacontenttype: None,
            subject: None,
            correlationid: None,
            seq: None,
            data: Some(data),
        }
    }

    /// Checks what a producer sent: the topic grammar, the spec version and
    /// the attribute limits. Returns the parsed topic.
    pub fn validate(&self) -> Result<Topic, ProtocolError> {
        let topic = Topic::parse(&self.ty)?;
        if let Some(v) = &self.specversion
            && v != crate::SPEC_VERSION
        {
            return Err(ProtocolError::new(
                ErrorCode::InvalidEvent,
                format!("`specversion` must be \"{}\"", crate::SPEC_VERSION),
            ));
        }
        check_attr("id", self.id.as_deref(), MAX_ID_LEN)?;
        check_attr("source", self.source.as_deref(), MAX_ATTR_LEN)?;
        check_attr("subject", self.subject.as_deref(), MAX_ATTR_LEN)?;
        check_attr("correlationid", self.correlationid.as_deref(), MAX_ATTR_LEN)?;
        check_attr(
            "datacontenttype",
            self.datacontenttype.as_deref(),
            MAX_ATTR_LEN,
        )?;
        check_attr("time", self.time.as_deref(), 64)?;
        if let Some(t) = &self.time
            && !is_rfc3339(t)
        {
            return Err(ProtocolError::new(
                ErrorCode::InvalidEvent,
                "`time` must be an RFC 3339 timestamp such as 2026-01-02T03:04:05Z",
            ));
        }
        Ok(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn minimal_input_needs_only_type() {
        let e: Envelope<Value> = serde_json::from_value(json!({"type": "a.b"})).unwrap();
        assert_eq!(e.validate().unwrap().as_str(), "a.b");
        assert_eq!(e.data, None);
    }

    #[test]
    fn explicit_null_data_is_kept() {
        let e: Envelope<Value> =
            serde_json::from_value(json!({"type": "a", "data": null})).unwrap();
        assert_eq!(e.data, Some(Value::Null));
        assert_eq!(serde_json::to_value(&e).unwrap()["data"], Value::Null);
        let e: Envelope<Box<serde_json::value::RawValue>> =
            serde_json::from_str(r#"{"type":"a","data":null}"#).unwrap();
        assert_eq!(e.data.unwrap().get(), "null");
    }

    #[test]
    fn missing_type_and_unknown_attributes_are_rejected() {
        assert!(serde_json::from_value::<Envelope<Value>>(json!({"data": 1})).is_err());
        let err = serde_json::from_value::<Envelope<Value>>(json!({"type": "a", "colour": 1}))
            .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn attributes_are_checked() {
        let mut e = Envelope::new("a", json!(1));
        e.specversion = Some("0.3".into());
        assert_eq!(e.validate().unwrap_err().code, ErrorCode::InvalidEvent);
        e.specversion = None;
        e.id = Some("x\ny".into());
        assert_eq!(e.validate().unwrap_err().code, ErrorCode::InvalidEvent);
        e.id = Some("x".repeat(MAX_ID_LEN + 1));
        assert!(e.validate().is_err());
        e.id = Some("ok".into());
        e.ty = "bad topic".into();
        assert_eq!(e.validate().unwrap_err().code, ErrorCode::InvalidTopic);
    }

    #[test]
    fn rfc3339_times() {
        for ok in [
            "2026-11-23T19:23:57Z",
            "2026-11-23T19:23:57.123456+02:00",
            "1999-12-31t23:59:60z",
        ] {
            assert!(is_rfc3339(ok), "{ok}");
        }
        for bad in [
            "",
            "2026-11-23",
            "2026-13-01T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T19:23:57",
            "2026-11-23T19:23:57.Z",
            "2026-11-23T19:23:57+0200",
            "2026-00-10T00:00:00Z",
            "2026-11-23T19:23:57Zx",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }

    #[test]
    fn attribute_names_are_cloudevents() {
        let mut e = Envelope::new("order.placed", json!({"n": 1}));
        e.id = Some("1".into());
        e.correlationid = Some("c".into());
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "order.placed");
        assert_eq!(v["correlationid"], "c");
        assert!(v.get("time").is_none(), "absent attributes are omitted");
    }
}
