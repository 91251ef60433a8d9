//! The three ways in: SSE and WebSocket streams, and the HTTP publish API.
//!
//! SSE and WebSocket share one shape: acquire a permit, register a [`Conn`]
//! with the hub, subscribe through the hub (which handles resume), and run a
//! writer that drains the connection's queue. Only the framing differs.

pub mod ce_binary;
pub mod frame;
pub mod publish;
pub mod sse;
pub mod ws;

use crate::conn::{Conn, Transport};
use crate::hub::Hub;
use crate::limits::ConnPermit;
use eventwire_protocol::frame::Welcome;
use std::sync::Arc;

/// A live streaming connection. Dropping it unregisters the connection and
/// frees its permit, whichever way the connection ended.
pub struct Session {
    pub conn: Arc<Conn>,
    pub hub: Arc<Hub>,
    _permit: ConnPermit,
}

impl Session {
    pub fn open(hub: &Arc<Hub>, transport: Transport, permit: ConnPermit) -> Session {
        Session {
            conn: hub.connect(transport),
            hub: hub.clone(),
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
        self.hub.disconnect(&self.conn);
    }
}
