//! Checks on single attribute values: the timestamp profile, URI syntax,
//! base64, extension names and values.
//!
//! Each rule is the one the official CloudEvents SDKs enforce when they parse
//! an event, so that nothing the gateway relays makes a consumer's SDK throw.

use crate::prelude::*;
use core::fmt;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};

/// Longest extension attribute name (the CloudEvents spec's "SHOULD NOT
/// exceed 20 characters").
pub const MAX_EXTENSION_NAME_LEN: usize = 20;
/// Longest string value of an extension attribute (bytes). W3C `tracestate`
/// may reach 512 characters; this leaves room for it.
pub const MAX_EXTENSION_VALUE_LEN: usize = 1024;
/// Most extension attributes on one event (`correlationid` not counted).
pub const MAX_EXTENSIONS: usize = 32;

/// Names an extension may not take. The CloudEvents context attributes and
/// `data`/`data_base64` are read as themselves; `seq` is the gateway's
/// position. None of them can be an extension, so none is listed as one.
pub const RESERVED_NAMES: &[&str] = &[
    "specversion",
    "id",
    "type",
    "source",
    "time",
    "datacontenttype",
    "dataschema",
    "subject",
    "data",
    "data_base64",
    "correlationid",
    "seq",
];

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A strict RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`,
/// with an upper-case `T` and `Z`, a day that exists in its month, and no
/// leap second. RFC 3339 also allows `t`, `z` and `:60`; JavaScript's `Date`
/// (and so the CloudEvents SDK for JavaScript) cannot read them, and every
/// browser consumer would.
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let digits = b.get(from..from + len)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let (Some(year), Some(month), Some(day)) = (num(0, 4), num(5, 2), num(8, 2)) else {
        return false;
    };
    if !(at(4, b'-') && at(7, b'-') && (1..=12).contains(&month)) {
        return false;
    }
    if !(1..=days_in_month(year, month)).contains(&day) {
        return false;
    }
    let (Some(hour), Some(minute), Some(second)) = (num(11, 2), num(14, 2), num(17, 2)) else {
        return false;
    };
    if !(at(10, b'T') && at(13, b':') && at(16, b':') && hour < 24 && minute < 60 && second < 60) {
        return false;
    }
    let mut i = 19;
    if at(i, b'.') {
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
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            num(i + 1, 2).is_some_and(|h| h < 24)
                && at(i + 3, b':')
                && num(i + 4, 2).is_some_and(|m| m < 60)
                && i + 6 == b.len()
        }
        _ => false,
    }
}

/// Characters RFC 3986 allows in a URI reference outside percent-escapes
/// (IP-literal brackets left out).
fn uri_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~:/?#@!$&'()*+,;=".contains(&c)
}

/// A URI reference (RFC 3986), as CloudEvents requires of `source`: only
/// URI characters, percent-escapes of two hex digits, at most one `#`.
pub fn is_uri_reference(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
                {
                    return false;
                }
                i += 3;
            }
            c if uri_char(c) => i += 1,
            _ => return false,
        }
    }
    s.matches('#').count() <= 1
}

/// An absolute URI (a scheme, then `:`), as CloudEvents requires of
/// `dataschema`.
pub fn is_absolute_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    scheme
        .bytes()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
        && !rest.is_empty()
        && is_uri_reference(rest)
}

/// Base64 of RFC 4648 §4 with padding, as `data_base64` requires.
pub fn is_base64(s: &str) -> bool {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return false;
    }
    let body = s.trim_end_matches('=');
    b.len() - body.len() <= 2
        && body
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
}

/// Whether `name` may be an extension attribute: 1 to
/// [`MAX_EXTENSION_NAME_LEN`] lower-case ASCII letters and digits, and not a
/// reserved name.
pub fn extension_name_error(name: &str) -> Option<String> {
    if name.is_empty()
        || name.len() > MAX_EXTENSION_NAME_LEN
        || !name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Some(format!(
            "unknown attribute `{name}`: it is no CloudEvents attribute, and extension names are 1 to {MAX_EXTENSION_NAME_LEN} lower-case letters a-z and digits 0-9"
        ));
    }
    RESERVED_NAMES
        .contains(&name)
        .then(|| format!("`{name}` is a reserved attribute name"))
}

/// The value of an extension attribute: a CloudEvents String, Integer or
/// Boolean, relayed in the same JSON type it came in. (URI, timestamp and
/// binary values travel as strings in JSON.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtValue {
    String(String),
    /// CloudEvents integers are 32-bit signed.
    Integer(i32),
    Boolean(bool),
}

impl Serialize for ExtValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ExtValue::String(v) => s.serialize_str(v),
            ExtValue::Integer(v) => s.serialize_i32(*v),
            ExtValue::Boolean(v) => s.serialize_bool(*v),
        }
    }
}

struct ExtVisitor;

impl<'de> Visitor<'de> for ExtVisitor {
    type Value = ExtValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an extension value: a string, a 32-bit integer or a boolean")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<ExtValue, E> {
        Ok(ExtValue::Boolean(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ExtValue, E> {
        i32::try_from(v).map(ExtValue::Integer).map_err(|_| {
            E::custom("an integer extension value must fit in 32 bits (CloudEvents Integer)")
        })
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ExtValue, E> {
        self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<ExtValue, E> {
        Err(E::custom(
            "a number extension value must be an integer (CloudEvents has no fractions); send a string",
        ))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ExtValue, E> {
        Ok(ExtValue::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<ExtValue, E> {
        Ok(ExtValue::String(v))
    }
}

impl<'de> Deserialize<'de> for ExtValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ExtValue, D::Error> {
        d.deserialize_any(ExtVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_rfc3339() {
        for ok in [
            "2026-11-23T19:23:57Z",
            "2026-11-23T19:23:57.123456+02:00",
            "2024-02-29T00:00:00-00:00",
            "2000-02-29T23:59:59.9Z",
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
            "1999-12-31t23:59:59z",
            "1999-12-31 23:59:59Z",
            "1998-12-31T23:59:60Z",
            "2026-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-23T19:23:57+24:00",
            "+2026-11-23T19:23:57Z",
            "２０26-11-23T19:23:57Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }

    #[test]
    fn uris() {
        for ok in [
            "eventwire/http",
            "https://example.com/a?b=c#d",
            "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
            "/sensors/tn-1234567/alerts",
            "user%20one",
            "mailto:a@b.c",
        ] {
            assert!(is_uri_reference(ok), "{ok}");
        }
        for bad in ["a b", "a%2", "a%zz", "é", "a#b#c", "a\"b", "<x>"] {
            assert!(!is_uri_reference(bad), "{bad}");
        }
        assert!(is_absolute_uri("https://example.com/schema.json"));
        assert!(is_absolute_uri("urn:example:schema"));
        for bad in [
            "/schema.json",
            "schema",
            ":x",
            "1http://x",
            "http:",
            "https://a b",
        ] {
            assert!(!is_absolute_uri(bad), "{bad}");
        }
    }

    #[test]
    fn base64() {
        for ok in ["", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy", "+/+/"] {
            assert!(is_base64(ok), "{ok}");
        }
        for bad in ["Zm9vYg", "Zm9v=g==", "Zm9vY===", "Zm9v YmFy", "Zm9vYg-_"] {
            assert!(!is_base64(bad), "{bad}");
        }
    }

    #[test]
    fn extension_names() {
        for ok in [
            "traceparent",
            "tracestate",
            "partitionkey",
            "a",
            "x1",
            "abcdefghij0123456789",
        ] {
            assert_eq!(extension_name_error(ok), None, "{ok}");
        }
        for bad in [
            "",
            "Trace",
            "trace_parent",
            "trace-parent",
            "abcdefghij0123456789x",
            "é",
        ] {
            assert!(extension_name_error(bad).is_some(), "{bad}");
        }
        assert!(extension_name_error("seq").unwrap().contains("reserved"));
    }
}
