//! The publish pipeline: how an event gets in, whoever brings it. HTTP
//! `POST /v1/events`, WebSocket `emit` and the gateway's own events (the
//! groups' dead-letter announcements) all go through here, so they are
//! validated (`ingest`), authorized, backpressured, stored and counted the
//! same way. The transports only read requests and write answers.

pub mod ingest;

use crate::auth::Identity;
use crate::engine::{Accepted, NewEvent};
use crate::state::Shared;
use eventwire_protocol::{ErrorCode, ProtocolError};

/// Validates, authorizes and publishes one raw envelope. Both `POST` and
/// WebSocket `emit` go through here, so they accept and count events
/// identically.
pub async fn accept(
    shared: &Shared,
    raw: &str,
    source: &str,
    identity: &Identity,
) -> Result<Accepted, ProtocolError> {
    let mut event = ingest::prepare(raw, shared.config.max_event_bytes, source)?;
    authorize(identity, &mut event)?;
    accept_prepared(shared, event).await
}

/// Checks the publish right, and stamps `source` with the token's subject
/// (or the anonymous source) so that nobody can emit in someone else's name,
/// nor dedupe against another identity's ids (see [`NewEvent::dedupe_key`]).
pub fn authorize(identity: &Identity, event: &mut NewEvent) -> Result<(), ProtocolError> {
    if !identity.rights.may_publish(event.topic.as_str()) {
        return Err(identity.refusal(format_args!("publishing {}", event.topic)));
    }
    if let Some(source) = identity.source() {
        event.envelope.source = Some(source);
    }
    Ok(())
}

pub async fn accept_prepared(shared: &Shared, event: NewEvent) -> Result<Accepted, ProtocolError> {
    let mut results = accept_batch(shared, vec![event]).await;
    results
        .pop()
        .expect("one result per event, up to the first failure")
}

/// A validated batch, in order, in one engine call (the disk engine writes
/// and syncs it once); stops at the first failure, like one call per event.
pub async fn accept_batch(
    shared: &Shared,
    events: Vec<NewEvent>,
) -> Vec<Result<Accepted, ProtocolError>> {
    let shutting_down =
        || ProtocolError::new(ErrorCode::ShuttingDown, "the gateway is shutting down");
    if shared.shutdown.is_cancelled() {
        return vec![Err(shutting_down())];
    }
    // Backpressure: while the hub is behind, publishers wait here (then get
    // `overloaded`) rather than growing the queue in front of it.
    let reservation = match shared.hub.reserve(&events).await {
        Ok(r) => r,
        Err(e) => return vec![Err(e)],
    };
    let _open = shared.publishing.read().await;
    if shared.shutdown.is_cancelled() {
        return vec![Err(shutting_down())];
    }
    let results = shared.hub.engine().publish_batch(events).await;
    shared.hub.routing(reservation, results.iter().flatten());
    for a in results.iter().flatten() {
        if a.duplicate {
            shared.metrics.duplicates.increment(1);
        } else {
            shared.metrics.published.increment(1);
        }
    }
    results
        .into_iter()
        .map(|r| r.map_err(ProtocolError::from))
        .collect()
}
