//! CloudEvents HTTP binary content mode on `POST /v1/events`: attributes in
//! `ce-*` headers, the data as the body. It is turned into the structured
//! envelope text that every other publish path takes, so validation, size
//! limits and dedupe are the same for both modes.

use base64::Engine as _;
use eventwire_protocol::attr::extension_name_error;
use eventwire_protocol::{ErrorCode, ProtocolError};
use serde_json::Value;
use serde_json::value::RawValue;

/// Header that marks a binary-mode request (CloudEvents HTTP binding §3.1).
pub const SPECVERSION_HEADER: &str = "ce-specversion";

/// Attributes a `ce-` header may carry besides extensions.
const ATTRIBUTES: &[&str] = &[
    "specversion",
    "id",
    "type",
    "source",
    "time",
    "subject",
    "dataschema",
    "correlationid",
];

/// Whether a request is in binary mode: it has `ce-specversion`, and its
/// content type does not say it is a structured event or batch.
pub fn is_binary(headers: &axum::http::HeaderMap) -> bool {
    let media = media_type(headers);
    headers.contains_key(SPECVERSION_HEADER)
        && media != "application/cloudevents+json"
        && media != "application/cloudevents-batch+json"
}

fn media_type(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn invalid(message: String) -> ProtocolError {
    ProtocolError::new(ErrorCode::InvalidEvent, message)
}

/// The structured envelope of a binary-mode request: one JSON object whose
/// `data` is the body (verbatim for JSON content types, a JSON string for
/// UTF-8 text, `data_base64` for anything else).
pub fn envelope_text(
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<String, ProtocolError> {
    let mut attrs = serde_json::Map::new();
    for (name, value) in headers {
        let Some(attr) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        if attr == "datacontenttype" {
            return Err(invalid(
                "in binary mode `datacontenttype` is the Content-Type header, not ce-datacontenttype".into(),
            ));
        }
        if !ATTRIBUTES.contains(&attr)
            && let Some(why) = extension_name_error(attr)
        {
            return Err(invalid(format!("header ce-{attr}: {why}")));
        }
        let raw = value
            .to_str()
            .map_err(|_| invalid(format!("header ce-{attr} is not visible ASCII")))?;
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| invalid(format!("header ce-{attr} does not percent-decode to UTF-8")))?;
        if attrs
            .insert(attr.to_owned(), Value::String(decoded.into_owned()))
            .is_some()
        {
            return Err(invalid(format!("header ce-{attr} is given twice")));
        }
    }
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| invalid("Content-Type is not visible ASCII".into()))
        })
        .transpose()?;
    let media = media_type(headers);
    if let Some(ct) = &content_type {
        attrs.insert("datacontenttype".into(), Value::String(ct.clone()));
    }
    let json_body = media.is_empty() || media == "application/json" || media.ends_with("+json");
    let mut text = serde_json::to_string(&attrs).expect("strings serialize");
    if body.is_empty() {
        return Ok(text);
    }
    text.pop(); // the closing brace
    if json_body {
        let body = std::str::from_utf8(body).map_err(|_| {
            ProtocolError::new(ErrorCode::InvalidJson, "the JSON body is not UTF-8")
        })?;
        let data: &RawValue = serde_json::from_str(body).map_err(|e| {
            ProtocolError::new(ErrorCode::InvalidJson, format!("the body is not JSON: {e}"))
        })?;
        text.push_str(",\"data\":");
        text.push_str(data.get());
    } else if let Some(s) = media
        .starts_with("text/")
        .then(|| std::str::from_utf8(body).ok())
        .flatten()
    {
        text.push_str(",\"data\":");
        text.push_str(&serde_json::to_string(s).expect("strings serialize"));
    } else {
        text.push_str(",\"data_base64\":\"");
        text.push_str(&base64::engine::general_purpose::STANDARD.encode(body));
        text.push('"');
    }
    text.push('}');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn builds_the_structured_envelope() {
        let h = headers(&[
            ("ce-specversion", "1.0"),
            ("ce-type", "a.b"),
            ("ce-id", "1"),
            ("ce-subject", "caf%C3%A9%201"),
            ("ce-traceparent", "00-abc-def-01"),
            ("content-type", "application/json; charset=utf-8"),
        ]);
        assert!(is_binary(&h));
        let v: Value = serde_json::from_str(&envelope_text(&h, br#" {"x": 1} "#).unwrap()).unwrap();
        assert_eq!(v["subject"], "café 1");
        assert_eq!(v["traceparent"], "00-abc-def-01");
        assert_eq!(v["datacontenttype"], "application/json; charset=utf-8");
        assert_eq!(v["data"], serde_json::json!({"x": 1}));
    }

    #[test]
    fn text_and_binary_bodies() {
        let text = headers(&[("ce-specversion", "1.0"), ("content-type", "text/plain")]);
        let v: Value = serde_json::from_str(&envelope_text(&text, b"hi\n").unwrap()).unwrap();
        assert_eq!(v["data"], "hi\n");
        let bin = headers(&[
            ("ce-specversion", "1.0"),
            ("content-type", "application/octet-stream"),
        ]);
        let v: Value = serde_json::from_str(&envelope_text(&bin, &[0, 1, 255]).unwrap()).unwrap();
        assert_eq!(v["data_base64"], "AAH/");
        let none: Value = serde_json::from_str(&envelope_text(&bin, b"").unwrap()).unwrap();
        assert!(none.get("data").is_none() && none.get("data_base64").is_none());
    }

    #[test]
    fn refuses_what_cannot_be_an_attribute() {
        for (k, v) in [
            ("ce-data", "1"),
            ("ce-seq", "m1-1"),
            ("ce-trace_id", "x"),
            ("ce-datacontenttype", "text/plain"),
            ("ce-subject", "%FF"),
        ] {
            let h = {
                let mut h = headers(&[("ce-specversion", "1.0")]);
                h.insert(k, HeaderValue::from_static(v));
                h
            };
            assert_eq!(
                envelope_text(&h, b"").unwrap_err().code,
                ErrorCode::InvalidEvent,
                "{k}"
            );
        }
        let h = headers(&[
            ("ce-specversion", "1.0"),
            ("content-type", "application/json"),
        ]);
        assert_eq!(
            envelope_text(&h, b"{").unwrap_err().code,
            ErrorCode::InvalidJson
        );
        let structured = headers(&[
            ("ce-specversion", "1.0"),
            ("content-type", "application/cloudevents+json"),
        ]);
        assert!(!is_binary(&structured));
    }
}
