//! Topics (event types) and subscription patterns, with NATS wildcard semantics.
//!
//! Topics end up verbatim on SSE `event:` lines and in broker subjects, so the
//! grammar is strict: only `[A-Za-z0-9_-]` segments joined by dots. Nothing
//! that could break a line, a header or a subject can get through.

use crate::error::{ErrorCode, ProtocolError};
use crate::prelude::*;
use core::fmt;

/// At most this many dot-separated segments in a topic or pattern.
pub const MAX_SEGMENTS: usize = 16;
/// At most this many bytes in one segment.
pub const MAX_SEGMENT_LEN: usize = 64;
/// At most this many bytes in a whole topic or pattern.
pub const MAX_TOPIC_LEN: usize = 255;

fn is_segment_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// The dot-separated segments of `s`, as `s.split('.')` gives them. By
/// hand, because `str::split` brings a generic searcher and `memchr` into
/// the browser client, which matches every delivered event's type.
fn segments(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    core::iter::from_fn(move || {
        let r = rest?;
        match r.bytes().position(|b| b == b'.') {
            Some(i) => {
                rest = r.get(i + 1..);
                r.get(..i)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Checks the shared limits and calls `segment` for each segment, reporting
/// errors with `code` so topics and patterns share one grammar walker.
///
/// Messages are assembled by hand rather than with `format!`: this crate is
/// compiled into the browser client, where the formatting machinery costs
/// download size.
fn walk(
    s: &str,
    what: &str,
    code: ErrorCode,
    mut segment: impl FnMut(usize, usize, &str) -> Result<(), &'static str>,
) -> Result<(), ProtocolError> {
    let err = |msg: &str| {
        let mut m = String::with_capacity(s.len().min(80) + msg.len() + 16);
        m.push_str(what);
        m.push(' ');
        push_quoted(&mut m, s);
        m.push_str(": ");
        m.push_str(msg);
        ProtocolError::new(code, m)
    };
    if s.is_empty() {
        return Err(err("must not be empty"));
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(err("is longer than 255 bytes"));
    }
    // As many segments as dots, plus one (what `segments` yields).
    let count = s.bytes().filter(|&b| b == b'.').count() + 1;
    if count > MAX_SEGMENTS {
        return Err(err("has more than 16 segments"));
    }
    // By position, not with `segments`: the browser client then compiles
    // no segment iterator at all (`Pattern::text_matches` reads bytes).
    let mut rest = s;
    for i in 0..count {
        let end = rest.bytes().position(|b| b == b'.').unwrap_or(rest.len());
        let seg = rest.get(..end).unwrap_or_default();
        rest = rest.get(end + 1..).unwrap_or_default();
        if seg.is_empty() {
            return Err(err("has an empty segment"));
        }
        if seg.len() > MAX_SEGMENT_LEN {
            return Err(err("has a segment longer than 64 bytes"));
        }
        segment(i, count, seg).map_err(err)?;
    }
    Ok(())
}

/// Shows a rejected string safely: quoted, control characters and quotes
/// escaped, length capped, so an error message can never smuggle a newline
/// into a log or a frame.
fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    for (i, c) in s.chars().enumerate() {
        if i == 64 {
            out.push('\u{2026}');
            break;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                out.push_str("\\u{");
                let n = c as u32;
                let digits = if n > 0xff { 4 } else { 2 };
                for shift in (0..digits).rev() {
                    out.push(char::from(
                        b"0123456789abcdef"[((n >> (shift * 4)) & 15) as usize],
                    ));
                }
                out.push('}');
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

const LITERAL_ONLY: &str = "segments may only contain A-Z, a-z, 0-9, '_' and '-'";

fn literal_segment(seg: &str) -> Result<(), &'static str> {
    if seg.bytes().all(is_segment_byte) {
        Ok(())
    } else {
        Err(LITERAL_ONLY)
    }
}

/// A concrete topic such as `order.placed`: the `type` of an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(String);

impl Topic {
    pub fn parse(s: &str) -> Result<Topic, ProtocolError> {
        Topic::check(s)?;
        Ok(Topic(s.to_owned()))
    }

    /// Whether `s` is a valid topic, without keeping a copy of it (the
    /// browser client only checks an emit's type).
    pub fn check(s: &str) -> Result<(), ProtocolError> {
        walk(s, "topic", ErrorCode::InvalidTopic, |_, _, seg| {
            if seg == "*" || seg == ">" {
                Err("wildcards are only allowed in subscription patterns")
            } else {
                literal_segment(seg)
            }
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        segments(&self.0)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One segment of a parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Matches exactly this segment.
    Literal(String),
    /// `*`: matches exactly one segment.
    One,
    /// `>`: matches one or more trailing segments. Only ever last.
    Rest,
}

/// A subscription pattern: a topic in which `*` stands for one segment and a
/// final `>` for one or more segments, exactly as NATS subjects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    text: String,
    segments: Vec<Segment>,
}

impl Pattern {
    pub fn parse(s: &str) -> Result<Pattern, ProtocolError> {
        Pattern::check(s)?;
        let segments = segments(s)
            .map(|seg| match seg {
                "*" => Segment::One,
                ">" => Segment::Rest,
                _ => Segment::Literal(seg.to_owned()),
            })
            .collect();
        Ok(Pattern {
            text: s.to_owned(),
            segments,
        })
    }

    /// Whether `s` is a valid pattern, without building one: the browser
    /// client keeps a pattern as its text and matches it with
    /// [`Pattern::text_matches`], so neither the segment vector nor its
    /// strings are compiled into the download.
    pub fn check(s: &str) -> Result<(), ProtocolError> {
        walk(
            s,
            "pattern",
            ErrorCode::InvalidPattern,
            |i, count, seg| match seg {
                "*" => Ok(()),
                ">" if i + 1 == count => Ok(()),
                ">" => Err("'>' may only be the last segment"),
                _ => literal_segment(seg),
            },
        )
    }

    /// Whether the valid pattern `pattern`, as text, has no wildcard (a
    /// valid pattern's segments are literal, `*` or `>`).
    pub fn text_is_literal(pattern: &str) -> bool {
        !pattern.bytes().any(|b| b == b'*' || b == b'>')
    }

    /// [`Pattern::matches`] on the text of the valid pattern `pattern`,
    /// byte by byte: each pattern segment against the topic's next one,
    /// `*` skipping one and `>`, always last, needing at least one.
    pub fn text_matches(pattern: &str, topic: &str) -> bool {
        let (p, t) = (pattern.as_bytes(), topic.as_bytes());
        let (mut i, mut j) = (0, 0);
        loop {
            // At the start of a segment on both sides.
            match p.get(i) {
                Some(b'>') => return j < t.len(),
                Some(b'*') if j < t.len() => {
                    i += 1;
                    while t.get(j).is_some_and(|&b| b != b'.') {
                        j += 1;
                    }
                }
                Some(b'*') => return false,
                _ => {
                    while let Some(&b) = p.get(i).filter(|&&b| b != b'.') {
                        if t.get(j) != Some(&b) {
                            return false;
                        }
                        i += 1;
                        j += 1;
                    }
                }
            }
            // At the end of a segment on both sides, or a mismatch.
            match (p.get(i), t.get(j)) {
                (None, None) => return true,
                (Some(b'.'), Some(b'.')) => {
                    i += 1;
                    j += 1;
                }
                _ => return false,
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// True when the pattern has no wildcard, so it names one topic.
    pub fn is_literal(&self) -> bool {
        Pattern::text_is_literal(&self.text)
    }

    /// Whether every topic that `other` matches is also matched by `self`:
    /// `order.>` covers `order.*.eu`, `order.*` does not cover `order.>`.
    /// Used to decide whether a subscription stays inside granted rights.
    pub fn covers(&self, other: &Pattern) -> bool {
        let mut mine = self.segments.iter();
        let mut theirs = other.segments.iter();
        loop {
            match (mine.next(), theirs.next()) {
                // `>` takes one or more segments: the other side needs at least one left.
                (Some(Segment::Rest), Some(_)) => return true,
                (Some(Segment::Rest), None) => return false,
                // A `>` on the other side reaches deeper than anything but `>`.
                (Some(_), Some(Segment::Rest)) => return false,
                (Some(Segment::One), Some(_)) => {}
                (Some(Segment::Literal(a)), Some(Segment::Literal(b))) if a == b => {}
                (Some(Segment::Literal(_)), Some(_)) => return false,
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    /// Whether `topic` (assumed valid) matches this pattern.
    /// One matcher for the gateway and the browser client (which keeps
    /// only the text): [`Pattern::text_matches`].
    pub fn matches(&self, topic: &str) -> bool {
        Pattern::text_matches(&self.text, topic)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_matches_exactly_one_segment() {
        let p = Pattern::parse("order.*").unwrap();
        assert!(p.matches("order.placed"));
        assert!(!p.matches("order"));
        assert!(!p.matches("order.placed.eu"));
        assert!(!p.matches("orders.placed"));
        let mid = Pattern::parse("a.*.c").unwrap();
        assert!(mid.matches("a.b.c"));
        assert!(!mid.matches("a.b.d"));
    }

    #[test]
    fn gt_matches_one_or_more_trailing_segments() {
        let p = Pattern::parse("order.>").unwrap();
        assert!(p.matches("order.placed"));
        assert!(p.matches("order.placed.eu.west"));
        assert!(!p.matches("order"));
        assert!(Pattern::parse(">").unwrap().matches("x"));
        assert!(Pattern::parse(">").unwrap().matches("x.y.z"));
    }

    #[test]
    fn literal_pattern_matches_only_itself() {
        let p = Pattern::parse("order.placed").unwrap();
        assert!(p.is_literal());
        assert!(p.matches("order.placed"));
        assert!(!p.matches("order.placed.x"));
        assert!(!p.matches("order"));
    }

    #[test]
    fn rejects_what_could_break_a_line() {
        for bad in [
            "", "a..b", ".a", "a.", "a b", "a\nb", "a\rb", "a:b", "a\0b", "é", "a.>.b", "a*",
            "a.b>",
        ] {
            assert!(Pattern::parse(bad).is_err(), "pattern {bad:?} accepted");
            assert!(Topic::parse(bad).is_err(), "topic {bad:?} accepted");
        }
        assert_eq!(
            Topic::parse("order.*").unwrap_err().code,
            ErrorCode::InvalidTopic
        );
        assert_eq!(
            Pattern::parse("a\nb").unwrap_err().code,
            ErrorCode::InvalidPattern
        );
    }

    /// The text-only checks the browser client uses say what a parsed
    /// `Pattern` says, for valid and invalid patterns alike.
    #[test]
    fn text_checks_agree_with_parsed_patterns() {
        // The byte-wise matcher against NATS semantics stated segment by
        // segment, on the parsed pattern.
        fn by_segments(pattern: &[Segment], topic: &str) -> bool {
            let mut parts = topic.split('.');
            for seg in pattern {
                let part = parts.next();
                match seg {
                    Segment::Rest => return part.is_some(),
                    Segment::One if part.is_some() => {}
                    Segment::Literal(lit) if part == Some(lit.as_str()) => {}
                    _ => return false,
                }
            }
            parts.next().is_none()
        }
        let patterns = [
            "a", "a.b", "a.*", "*.b", "a.>", ">", "*", "a.*.c", "a.b.>", "", "a..b", ".a", "a.>.b",
            ">.a", "a b", "a.**", "a.>>", "a*", "a.b>",
        ];
        let topics = [
            "a", "a.b", "a.c", "b", "a.b.c", "a.x.c", "a.b.c.d", "x.b", "ab",
        ];
        for p in patterns {
            let parsed = Pattern::parse(p);
            assert_eq!(Pattern::check(p).is_ok(), parsed.is_ok(), "{p:?}");
            if let Err(e) = &parsed {
                assert_eq!(Pattern::check(p).unwrap_err().message, e.message);
            }
            let Ok(parsed) = parsed else { continue };
            let literal = parsed
                .segments()
                .iter()
                .all(|s| matches!(s, Segment::Literal(_)));
            assert_eq!(Pattern::text_is_literal(p), literal, "{p:?}");
            for t in topics {
                assert_eq!(
                    Pattern::text_matches(p, t),
                    by_segments(parsed.segments(), t),
                    "{p:?} on {t:?}"
                );
            }
        }
    }

    #[test]
    fn limits_are_enforced() {
        let many = vec!["a"; MAX_SEGMENTS + 1].join(".");
        assert!(Topic::parse(&many).is_err());
        assert!(Topic::parse(&vec!["a"; MAX_SEGMENTS].join(".")).is_ok());
        assert!(Topic::parse(&"x".repeat(MAX_SEGMENT_LEN + 1)).is_err());
        assert!(Topic::parse(&"x".repeat(MAX_SEGMENT_LEN)).is_ok());
    }

    #[test]
    fn covers_is_pattern_containment() {
        let c = |a: &str, b: &str| {
            Pattern::parse(a)
                .unwrap()
                .covers(&Pattern::parse(b).unwrap())
        };
        assert!(c("order.>", "order.*"));
        assert!(c("order.>", "order.*.eu"));
        assert!(c("order.>", "order.>"));
        assert!(c("order.*", "order.placed"));
        assert!(c(">", "a.b.>"));
        assert!(c("user.u1.>", "user.u1.inbox"));
        assert!(!c("order.*", "order.>"));
        assert!(!c("order.*", "order.a.b"));
        assert!(!c("order.placed", "order.*"));
        assert!(
            !c("user.u1.>", "user.*.inbox"),
            "a wildcard where a literal was granted widens"
        );
        assert!(!c("order.>", "order"));
        assert!(!c("a.b", "a"));
    }

    #[test]
    fn messages_state_the_real_limits() {
        let long = "x".repeat(MAX_TOPIC_LEN + 1);
        assert!(
            Topic::parse(&long)
                .unwrap_err()
                .message
                .contains(&MAX_TOPIC_LEN.to_string())
        );
        let many = vec!["a"; MAX_SEGMENTS + 1].join(".");
        assert!(
            Topic::parse(&many)
                .unwrap_err()
                .message
                .contains(&MAX_SEGMENTS.to_string())
        );
        let seg = "x".repeat(MAX_SEGMENT_LEN + 1);
        assert!(
            Topic::parse(&seg)
                .unwrap_err()
                .message
                .contains(&MAX_SEGMENT_LEN.to_string())
        );
        let e = Pattern::parse("a b").unwrap_err();
        assert_eq!(
            e.message,
            "pattern \"a b\": segments may only contain A-Z, a-z, 0-9, '_' and '-'"
        );
    }

    #[test]
    fn error_messages_escape_control_characters() {
        let e = Topic::parse("evil\nevent: x").unwrap_err();
        assert!(!e.message.contains('\n'), "{}", e.message);
    }
}
