//! Emitting over HTTP: one `fetch` POST per event, for a channel on SSE.
//! It sits beside the transports: the POSTs are requests of their own. The
//! glue sends the POST (`js/io.js`); what its answer means is decided
//! here.

use crate::frames::{Signal, field};

/// What a POST of one event came to.
pub enum PostOutcome<'a> {
    /// 200: the answer (the channel's current value) is the receipt.
    Accepted,
    /// The gateway refused the event: its code and message. Not retried.
    Refused(&'a str, &'a str),
    /// Network failure, an unreadable answer or a 5xx: worth retrying.
    Failed,
}

/// Reads the answer to a POST: its status (`a`, 0 when the network failed
/// or the answer was not JSON) and the `code` and `message` of its
/// `error`.
pub fn outcome(answer: &Signal) -> PostOutcome<'_> {
    match answer.a as u32 {
        200 => PostOutcome::Accepted,
        0 | 500.. => PostOutcome::Failed,
        _ => PostOutcome::Refused(
            answer.get(field::CODE).unwrap_or("bad_request"),
            answer
                .get(field::MESSAGE)
                .unwrap_or("the gateway refused the event"),
        ),
    }
}
