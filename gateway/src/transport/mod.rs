//! The three ways in: SSE and WebSocket streams, and the HTTP events API
//! (publishing itself is [`crate::publish`]).
//!
//! SSE and WebSocket share one shape: acquire a permit, register a [`Conn`]
//! with the hub, subscribe through the hub (which handles resume), and run a
//! writer that drains the connection's queue. Only the framing differs.

pub mod ce_binary;
pub mod events;
pub mod frame;
pub mod sse;
pub mod ws;

use crate::auth::Identity;
use crate::conn::{Conn, Transport};
use crate::hub::Hub;
use crate::limits::ConnPermit;
use eventwire_protocol::frame::Welcome;
use eventwire_protocol::{ErrorCode, ProtocolError};
use std::sync::Arc;

/// Longest accepted `instance` query parameter.
const MAX_INSTANCE: usize = 64;

/// The key under which a connection's channel instance is known to the hub,
/// from the optional `instance` query parameter (§4.6).
///
/// Why: a client that reconnects while its old socket is still open (a
/// proxy that kept it, a network that never delivered the FIN) would
/// otherwise keep receiving every event on the stale stream until the
/// heartbeat or the write timeout noticed. Naming the instance lets the
/// gateway end the old stream the moment the new one arrives. The key is
/// scoped by the token's subject, so one user can never end another's
/// stream, whatever instance id they send.
pub fn instance_key(
    identity: &Identity,
    raw_query: Option<&str>,
) -> Result<Option<String>, ProtocolError> {
    let Some(instance) = form_urlencoded::parse(raw_query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "instance")
        .map(|(_, v)| v)
        .last()
    else {
        return Ok(None);
    };
    let valid = (8..=MAX_INSTANCE).contains(&instance.len())
        && instance
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(ProtocolError::new(
            ErrorCode::BadRequest,
            format!(
                "`instance` must be 8 to {MAX_INSTANCE} characters of A-Z, a-z, 0-9, `-` and `_`"
            ),
        ));
    }
    let subject = identity.sub.as_deref().unwrap_or_default();
    Ok(Some(format!("{}:{subject}:{instance}", subject.len())))
}

/// A live streaming connection. Dropping it unregisters the connection and
/// frees its permit, whichever way the connection ended.
pub struct Session {
    pub conn: Arc<Conn>,
    pub hub: Arc<Hub>,
    /// The channel instance this connection speaks for, from [`instance_key`].
    instance: Option<String>,
    _permit: ConnPermit,
}

impl Session {
    /// Registers the connection. With an `instance`, an older connection of
    /// the same instance is ended at once as `superseded`.
    pub fn open(
        hub: &Arc<Hub>,
        transport: Transport,
        permit: ConnPermit,
        instance: Option<String>,
    ) -> Session {
        let conn = hub.connect(transport);
        if let Some(key) = &instance {
            hub.claim_instance(key, &conn);
        }
        Session {
            conn,
            hub: hub.clone(),
            instance,
            _permit: permit,
        }
    }

    /// The welcome both transports send first.
    pub fn welcome(&self, config: &crate::Config, recovered: Option<bool>) -> Welcome {
        Welcome {
            conn_id: self.conn.id.clone(),
            engine: self.hub.engine().name().to_owned(),
            heartbeat_ms: config.heartbeat.as_millis() as u64,
            max_event_bytes: config.max_event_bytes,
            max_subscriptions: config.max_subscriptions,
            recovered,
            position: None,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.conn.abort();
        if let Some(key) = &self.instance {
            self.hub.release_instance(key, &self.conn);
        }
        self.hub.disconnect(&self.conn);
    }
}
