//! The event envelope: CloudEvents 1.0 attribute names, JSON on the wire.
//!
//! The payload type `D` is generic so each side keeps `data` in its cheapest
//! form: the gateway as raw JSON bytes it never re-parses, a browser as a JS value.

use crate::attr::{self, ExtValue, MAX_EXTENSION_VALUE_LEN, MAX_EXTENSIONS};
use crate::error::{ErrorCode, ProtocolError};
use crate::prelude::*;
use crate::topic::Topic;
use core::fmt;
use core::marker::PhantomData;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};

pub use crate::attr::is_rfc3339;

/// Longest accepted `id` (bytes).
pub const MAX_ID_LEN: usize = 128;
/// Longest accepted `source`, `subject`, `correlationid`, `datacontenttype`
/// or `dataschema` (bytes).
pub const MAX_ATTR_LEN: usize = 256;

/// One event. On input only `type` is required; the gateway fills in
/// `specversion`, `id`, `source` and `time` when absent and always assigns
/// `seq`. On output every attribute the gateway fills is present.
///
/// Serialized by hand rather than derived: extension attributes are any
/// other lower-case name (a derive cannot both collect them and keep `data`
/// as raw JSON), and the output order is fixed (PROTOCOL §2.1).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<D> {
    pub specversion: Option<String>,
    /// Unique per event; the idempotency key for dedupe.
    pub id: Option<String>,
    /// The topic, e.g. `order.placed`.
    pub ty: String,
    pub source: Option<String>,
    /// RFC 3339 timestamp.
    pub time: Option<String>,
    pub datacontenttype: Option<String>,
    /// An absolute URI naming the schema `data` follows.
    pub dataschema: Option<String>,
    pub subject: Option<String>,
    /// Extension attribute tying a reaction to the event that caused it.
    pub correlationid: Option<String>,
    /// Every other extension attribute, in the order it was sent.
    pub extensions: Vec<(String, ExtValue)>,
    /// Stream position assigned by the gateway's engine. Opaque to clients;
    /// ignored on input.
    pub seq: Option<String>,
    /// `None` when absent; an explicit `null` is kept as data.
    pub data: Option<D>,
    /// Binary data in base64, relayed as sent; never together with `data`.
    pub data_base64: Option<String>,
}

impl<D: Serialize> Serialize for Envelope<D> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        let strings = [("specversion", &self.specversion), ("id", &self.id)];
        for (k, v) in strings {
            if let Some(v) = v {
                m.serialize_entry(k, v)?;
            }
        }
        m.serialize_entry("type", &self.ty)?;
        let strings = [
            ("source", &self.source),
            ("time", &self.time),
            ("datacontenttype", &self.datacontenttype),
            ("dataschema", &self.dataschema),
            ("subject", &self.subject),
            ("correlationid", &self.correlationid),
        ];
        for (k, v) in strings {
            if let Some(v) = v {
                m.serialize_entry(k, v)?;
            }
        }
        for (k, v) in &self.extensions {
            m.serialize_entry(k, v)?;
        }
        if let Some(v) = &self.seq {
            m.serialize_entry("seq", v)?;
        }
        if let Some(v) = &self.data {
            m.serialize_entry("data", v)?;
        }
        if let Some(v) = &self.data_base64 {
            m.serialize_entry("data_base64", v)?;
        }
        m.end()
    }
}

struct EnvelopeVisitor<D>(PhantomData<D>);

/// Stores an attribute once; a second occurrence is an error, as a JSON
/// object with two equal keys is ambiguous.
fn once<T, E: de::Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = Some(value);
    Ok(())
}

impl<'de, D: Deserialize<'de>> Visitor<'de> for EnvelopeVisitor<D> {
    type Value = Envelope<D>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event envelope (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<D>, A::Error> {
        let mut e = Envelope::<D>::new_empty();
        let mut ty = None;
        let mut seq_seen = None;
        while let Some(key) = map.next_key::<String>()? {
            // `null` for an optional attribute means absent, as before.
            macro_rules! string {
                ($field:expr, $name:literal) => {{
                    let v: Option<String> = map.next_value()?;
                    if $field.is_some() {
                        return Err(de::Error::duplicate_field($name));
                    }
                    $field = v;
                }};
            }
            match key.as_str() {
                "type" => once(&mut ty, map.next_value::<String>()?, "type")?,
                "specversion" => string!(e.specversion, "specversion"),
                "id" => string!(e.id, "id"),
                "source" => string!(e.source, "source"),
                "time" => string!(e.time, "time"),
                "datacontenttype" => string!(e.datacontenttype, "datacontenttype"),
                "dataschema" => string!(e.dataschema, "dataschema"),
                "subject" => string!(e.subject, "subject"),
                "correlationid" => string!(e.correlationid, "correlationid"),
                "data_base64" => string!(e.data_base64, "data_base64"),
                // The gateway's position: a producer's value is discarded.
                "seq" => once(&mut seq_seen, map.next_value::<Option<String>>()?, "seq")?,
                "data" => once(&mut e.data, map.next_value::<D>()?, "data")?,
                name => {
                    if let Some(why) = attr::extension_name_error(name) {
                        return Err(de::Error::custom(why));
                    }
                    if e.extensions.iter().any(|(k, _)| k == name) {
                        return Err(de::Error::custom(format_args!(
                            "duplicate attribute `{name}`"
                        )));
                    }
                    if e.extensions.len() == MAX_EXTENSIONS {
                        return Err(de::Error::custom(format_args!(
                            "more than {MAX_EXTENSIONS} extension attributes"
                        )));
                    }
                    let value = map.next_value::<ExtValue>()?;
                    e.extensions.push((key, value));
                }
            }
        }
        e.ty = ty.ok_or_else(|| de::Error::missing_field("type"))?;
        Ok(e)
    }
}

impl<'de, D: Deserialize<'de>> Deserialize<'de> for Envelope<D> {
    fn deserialize<De: Deserializer<'de>>(d: De) -> Result<Envelope<D>, De::Error> {
        d.deserialize_map(EnvelopeVisitor(PhantomData))
    }
}

fn invalid(message: String) -> ProtocolError {
    ProtocolError::new(ErrorCode::InvalidEvent, message)
}

fn check_attr(name: &str, value: Option<&str>, max: usize) -> Result<(), ProtocolError> {
    let Some(v) = value else { return Ok(()) };
    if v.is_empty() || v.len() > max {
        return Err(invalid(format!("`{name}` must be 1 to {max} bytes")));
    }
    if v.chars().any(char::is_control) {
        return Err(invalid(format!(
            "`{name}` must not contain control characters"
        )));
    }
    Ok(())
}

impl<D> Envelope<D> {
    fn new_empty() -> Self {
        Envelope {
            specversion: None,
            id: None,
            ty: String::new(),
            source: None,
            time: None,
            datacontenttype: None,
            dataschema: None,
            subject: None,
            correlationid: None,
            extensions: Vec::new(),
            seq: None,
            data: None,
            data_base64: None,
        }
    }

    /// A minimal envelope of `ty` carrying `data`.
    pub fn new(ty: impl Into<String>, data: D) -> Self {
        Envelope {
            ty: ty.into(),
            data: Some(data),
            ..Envelope::new_empty()
        }
    }

    /// Checks what a producer sent: the topic grammar, the spec version and
    /// the attribute limits. Returns the parsed topic.
    pub fn validate(&self) -> Result<Topic, ProtocolError> {
        let topic = Topic::parse(&self.ty)?;
        if let Some(v) = &self.specversion
            && v != crate::SPEC_VERSION
        {
            return Err(invalid(format!(
                "`specversion` must be \"{}\"",
                crate::SPEC_VERSION
            )));
        }
        check_attr("id", self.id.as_deref(), MAX_ID_LEN)?;
        check_attr("source", self.source.as_deref(), MAX_ATTR_LEN)?;
        if let Some(v) = &self.source
            && !attr::is_uri_reference(v)
        {
            return Err(invalid(
                "`source` must be a URI reference (RFC 3986): percent-encode spaces and other characters outside URIs".into(),
            ));
        }
        check_attr("subject", self.subject.as_deref(), MAX_ATTR_LEN)?;
        check_attr("correlationid", self.correlationid.as_deref(), MAX_ATTR_LEN)?;
        check_attr(
            "datacontenttype",
            self.datacontenttype.as_deref(),
            MAX_ATTR_LEN,
        )?;
        check_attr("dataschema", self.dataschema.as_deref(), MAX_ATTR_LEN)?;
        if let Some(v) = &self.dataschema
            && !attr::is_absolute_uri(v)
        {
            return Err(invalid(
                "`dataschema` must be an absolute URI, e.g. https://example.com/schemas/order.json"
                    .into(),
            ));
        }
        check_attr("time", self.time.as_deref(), 64)?;
        if let Some(t) = &self.time
            && !is_rfc3339(t)
        {
            return Err(invalid(
                "`time` must be an RFC 3339 timestamp with an upper-case T and Z, a real date and no leap second, such as 2026-01-02T03:04:05.678Z".into(),
            ));
        }
        if let Some(b) = &self.data_base64 {
            if self.data.is_some() {
                return Err(invalid(
                    "an event carries `data` or `data_base64`, not both".into(),
                ));
            }
            if !attr::is_base64(b) {
                return Err(invalid(
                    "`data_base64` must be base64 (RFC 4648, with padding)".into(),
                ));
            }
        }
        for (name, value) in &self.extensions {
            if let Some(why) = attr::extension_name_error(name) {
                return Err(invalid(why));
            }
            if let ExtValue::String(v) = value {
                if v.len() > MAX_EXTENSION_VALUE_LEN {
                    return Err(invalid(format!(
                        "extension `{name}` is over {MAX_EXTENSION_VALUE_LEN} bytes"
                    )));
                }
                if v.chars().any(char::is_control) {
                    return Err(invalid(format!(
                        "extension `{name}` must not contain control characters"
                    )));
                }
            }
        }
        if self.extensions.len() > MAX_EXTENSIONS {
            return Err(invalid(format!(
                "more than {MAX_EXTENSIONS} extension attributes"
            )));
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
    fn missing_type_and_bad_attribute_names_are_rejected() {
        assert!(serde_json::from_value::<Envelope<Value>>(json!({"data": 1})).is_err());
        for bad in ["Colour", "trace_parent", "x-y", "abcdefghij0123456789x"] {
            let err =
                serde_json::from_str::<Envelope<Value>>(&format!(r#"{{"type":"a","{bad}":1}}"#))
                    .unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
        let dup = serde_json::from_str::<Envelope<Value>>(r#"{"type":"a","x":1,"x":2}"#);
        assert!(dup.unwrap_err().to_string().contains("duplicate"));
        let dup = serde_json::from_str::<Envelope<Value>>(r#"{"type":"a","id":"1","id":"2"}"#);
        assert!(dup.unwrap_err().to_string().contains("duplicate"));
    }

    #[test]
    fn extensions_are_relayed_as_sent() {
        let text = r#"{"type":"a","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","partitionkey":"p1","n":7,"on":true,"data":{"x":1}}"#;
        let e: Envelope<Box<serde_json::value::RawValue>> = serde_json::from_str(text).unwrap();
        e.validate().unwrap();
        assert_eq!(e.extensions.len(), 4);
        assert_eq!(serde_json::to_string(&e).unwrap(), text);
        for bad in [r#"1.5"#, r#"4294967296"#, r#"null"#, r#"[1]"#, r#"{"a":1}"#] {
            let r =
                serde_json::from_str::<Envelope<Value>>(&format!(r#"{{"type":"a","x":{bad}}}"#));
            assert!(r.is_err(), "{bad}");
        }
        let many: String = (0..=MAX_EXTENSIONS)
            .map(|i| format!(r#","e{i}":1"#))
            .collect();
        let r = serde_json::from_str::<Envelope<Value>>(&format!(r#"{{"type":"a"{many}}}"#));
        assert!(r.unwrap_err().to_string().contains("extension"));
        let long = "x".repeat(MAX_EXTENSION_VALUE_LEN + 1);
        let e: Envelope<Value> =
            serde_json::from_str(&format!(r#"{{"type":"a","x":"{long}"}}"#)).unwrap();
        assert_eq!(e.validate().unwrap_err().code, ErrorCode::InvalidEvent);
    }

    #[test]
    fn data_base64_and_dataschema() {
        let text =
            r#"{"type":"a","dataschema":"https://example.com/s.json","data_base64":"AAEC/w=="}"#;
        let e: Envelope<Value> = serde_json::from_str(text).unwrap();
        e.validate().unwrap();
        assert_eq!(serde_json::to_string(&e).unwrap(), text);
        for bad in [
            r#"{"type":"a","data":1,"data_base64":"AA=="}"#,
            r#"{"type":"a","data_base64":"not base64"}"#,
            r#"{"type":"a","dataschema":"relative/path"}"#,
            r#"{"type":"a","source":"has space"}"#,
        ] {
            let e: Envelope<Value> = serde_json::from_str(bad).unwrap();
            assert_eq!(
                e.validate().unwrap_err().code,
                ErrorCode::InvalidEvent,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_producers_seq_is_discarded() {
        let e: Envelope<Value> = serde_json::from_str(r#"{"type":"a","seq":"m1-1"}"#).unwrap();
        assert_eq!(e.seq, None);
        assert!(serde_json::from_str::<Envelope<Value>>(r#"{"type":"a","seq":1}"#).is_err());
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
