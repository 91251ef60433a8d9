//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): the
//! receiver's reference libraries (npm and PyPI `standardwebhooks`) verify
//! them unchanged.
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the
//! key is the base64 after `whsec_`; the header is `v1,` and the base64 of
//! the HMAC-SHA256.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `webhook-signature` header value for one request.
pub fn signature(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The `webhook-id`: the event's id, the same on every retry so receivers
/// can deduplicate. An id that cannot travel in a header (it is the
/// publisher's choice) is replaced by the event's position.
pub fn message_id(event_id: &str, seq: &str) -> String {
    let fits = !event_id.is_empty()
        && event_id.len() <= 256
        && event_id.bytes().all(|b| b.is_ascii_graphic());
    if fits {
        event_id.to_owned()
    } else {
        format!("seq_{seq}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in the Standard Webhooks reference libraries' tests:
    /// secret, id, timestamp and body as there, and the signature they
    /// expect.
    #[test]
    fn matches_the_reference_example() {
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let sig = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn ids_that_cannot_be_headers_fall_back_to_the_position() {
        assert_eq!(message_id("evt-1", "5"), "evt-1");
        assert_eq!(message_id("with space", "5"), "seq_5");
        assert_eq!(message_id("", "5"), "seq_5");
    }
}
