//! Handles of NATS groups: the delivery's JetStream ack subject, so that any
//! gateway can settle it (fetch on one, ack on another), wrapped so that a
//! client can name only ack subjects of the group it works in.
//!
//! A handle is `n` + the ack subject after `$JS.ACK.`, base64url without
//! padding. Decoding checks that it is an ack subject of one of the
//! group's two consumers (events, redriven letters) with numeric
//! sequences: anything else is `unknown`, so a handle can never make the
//! gateway publish to an arbitrary subject. (It can settle another
//! delivery of the same group, which a worker allowed to consume there can
//! do by fetching anyway.)

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const ACK_PREFIX: &str = "$JS.ACK.";
/// Longer handles are not decoded at all.
pub const MAX_HANDLE_LEN: usize = 600;

/// One delivery, as its ack subject tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The full ack subject, where settling messages go.
    pub subject: String,
    pub stream: String,
    pub consumer: String,
    /// The delivery count: this delivery's attempt.
    pub delivered: u32,
    pub stream_seq: u64,
}

pub fn encode(ack_subject: &str) -> Option<String> {
    let tail = ack_subject.strip_prefix(ACK_PREFIX)?;
    Some(format!("n{}", URL_SAFE_NO_PAD.encode(tail)))
}

/// The ack subject a handle carries, if it is one of `consumer` on one of
/// `streams`.
pub fn decode(handle: &str, streams: [&str; 2], consumer: &str) -> Option<Ack> {
    if handle.len() > MAX_HANDLE_LEN {
        return None;
    }
    let tail = URL_SAFE_NO_PAD.decode(handle.strip_prefix('n')?).ok()?;
    let tail = String::from_utf8(tail).ok()?;
    let tokens: Vec<&str> = tail.split('.').collect();
    // v1: <stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>
    // v2 (ADR-15): <domain>.<account hash>. before it, maybe a token after.
    let at = match tokens.len() {
        7 => 0,
        9 | 10 => 2,
        _ => return None,
    };
    let ok_token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !tokens.iter().all(|t| ok_token(t)) {
        return None;
    }
    let numbers = &tokens[at + 2..at + 7];
    if !numbers
        .iter()
        .all(|t| t.len() <= 20 && t.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let (stream, name) = (tokens[at], tokens[at + 1]);
    if !streams.contains(&stream) || name != consumer {
        return None;
    }
    Some(Ack {
        subject: format!("{ACK_PREFIX}{tail}"),
        stream: stream.to_owned(),
        consumer: name.to_owned(),
        delivered: numbers[0].parse().ok()?,
        stream_seq: numbers[1].parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAMS: [&str; 2] = ["EV", "EV_GROUPS"];

    #[test]
    fn round_trips_and_refuses_what_is_not_the_groups_ack_subject() {
        let subject = "$JS.ACK.EV.ewg-1.3.42.7.1700000000000000000.5";
        let h = encode(subject).unwrap();
        let ack = decode(&h, STREAMS, "ewg-1").unwrap();
        assert_eq!(ack.subject, subject);
        assert_eq!((ack.delivered, ack.stream_seq), (3, 42));
        assert_eq!(ack.stream, "EV");
        // Another group's consumer, another stream, garbage.
        assert_eq!(decode(&h, STREAMS, "ewg-2"), None);
        assert_eq!(decode(&h, ["X", "Y"], "ewg-1"), None);
        for bad in ["", "n", "nnot base64!", "g1234.5", &h[1..]] {
            assert_eq!(decode(bad, STREAMS, "ewg-1"), None, "{bad}");
        }
        // A well-formed encoding of a subject that is not an ack subject.
        let forged = format!("n{}", URL_SAFE_NO_PAD.encode("EV.ewg-1.x.y.z.1.2"));
        assert_eq!(decode(&forged, STREAMS, "ewg-1"), None);
        let wild = format!("n{}", URL_SAFE_NO_PAD.encode("EV.ewg-1.1.2.3.4.>"));
        assert_eq!(decode(&wild, STREAMS, "ewg-1"), None);
        // The v2 form, with domain and account hash.
        let v2 = "$JS.ACK.dom.acc.EV_GROUPS.ewg-1.1.9.1.17.0.tok";
        let ack = decode(&encode(v2).unwrap(), STREAMS, "ewg-1").unwrap();
        assert_eq!((ack.stream.as_str(), ack.stream_seq), ("EV_GROUPS", 9));
    }
}
