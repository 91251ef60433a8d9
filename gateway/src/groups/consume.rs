//! The WebSocket consume form of consumer groups: `consume` starts a loop
//! that fetches through the [`GroupBackend`] (the same calls the HTTP
//! routes make) and pushes each delivery as a `delivery` frame; `ack`,
//! `nack` and `extend` frames settle through the same backend. A worker
//! never holds more than its `max_inflight` unsettled deliveries from one
//! group on one connection: the loop fetches only what fits.

use super::backend::{GroupBackend, Settle};
use super::group::Delivery;
use crate::conn::Conn;
use crate::state::Shared;
use bytes::Bytes;
use eventwire_protocol::{ErrorCode, ProtocolError, op};
use parking_lot::Mutex;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The in-flight limit when `consume` names none, and the highest allowed.
pub const DEFAULT_INFLIGHT: u32 = 10;
pub const MAX_INFLIGHT: u32 = super::http::MAX_FETCH as u32;
/// Groups one connection may consume at once.
pub const MAX_CONSUMES: usize = 16;
/// How long one fetch of the loop waits for an event.
const POLL: Duration = Duration::from_secs(20);

/// One group consumed on one connection: the handles out and not settled.
struct Consuming {
    out: Mutex<HashSet<String>>,
    room: Notify,
}

/// A connection's consumes. Dropping it stops their loops.
#[derive(Default)]
pub struct Consumes {
    groups: HashMap<String, Arc<Consuming>>,
    stop: CancellationToken,
}

impl Drop for Consumes {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn frame(v: serde_json::Value) -> Bytes {
    Bytes::from(v.to_string())
}

/// A `delivery` frame, the event's stored JSON spliced in as is.
fn delivery(group: &str, d: &Delivery) -> Bytes {
    let head =
        json!({ "op": op::DELIVERY, "group": group, "handle": d.handle, "attempt": d.attempt })
            .to_string();
    let mut out = Vec::with_capacity(head.len() + d.event.json.len() + 12);
    out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    out.extend_from_slice(b",\"event\":");
    out.extend_from_slice(&d.event.json);
    out.push(b'}');
    Bytes::from(out)
}

impl Consumes {
    /// Starts delivering `group` to `conn`. The caller has checked the
    /// `consume` right. Answers with the `consuming` frame.
    pub async fn start(
        &mut self,
        shared: &Arc<Shared>,
        conn: &Arc<Conn>,
        reference: Option<String>,
        group: String,
        max_inflight: Option<u32>,
    ) -> Result<Bytes, ProtocolError> {
        let bad = |m: String| ProtocolError::new(ErrorCode::BadRequest, m);
        let limit = max_inflight.unwrap_or(DEFAULT_INFLIGHT);
        if !(1..=MAX_INFLIGHT).contains(&limit) {
            return Err(bad(format!("`max_inflight` must be 1 to {MAX_INFLIGHT}")));
        }
        if self.groups.contains_key(&group) {
            return Err(bad(format!("already consuming {group} on this connection")));
        }
        if self.groups.len() >= MAX_CONSUMES {
            return Err(bad(format!("at most {MAX_CONSUMES} groups per connection")));
        }
        shared.groups.get(&group).await?;
        let consuming = Arc::new(Consuming {
            out: Mutex::new(HashSet::new()),
            room: Notify::new(),
        });
        self.groups.insert(group.clone(), consuming.clone());
        tokio::spawn(run(
            shared.clone(),
            conn.clone(),
            group.clone(),
            limit as usize,
            consuming,
            self.stop.child_token(),
        ));
        Ok(frame(json!({
            "op": op::CONSUMING,
            "ref": reference,
            "group": group,
            "max_inflight": limit,
        })))
    }

    /// Settles handles (checked with [`Settle::checked`]) of a group
    /// consumed or not on this connection (a
    /// worker may settle what it fetched elsewhere); those this connection
    /// was holding free their in-flight slots, whatever the outcome.
    pub async fn settle(
        &self,
        backend: &dyn GroupBackend,
        reference: Option<String>,
        group: String,
        handles: Vec<String>,
        settle: Settle,
    ) -> Result<Bytes, ProtocolError> {
        let keeps = matches!(settle, Settle::Extend);
        let outcomes = settle.apply(backend, &group, &handles).await?;
        if !keeps && let Some(c) = self.groups.get(&group) {
            let mut out = c.out.lock();
            for h in &handles {
                out.remove(h);
            }
            drop(out);
            c.room.notify_one();
        }
        let results: Vec<_> = handles
            .iter()
            .zip(&outcomes)
            .map(|(h, o)| json!({ "handle": h, "result": o.as_str() }))
            .collect();
        Ok(frame(json!({
            "op": op::SETTLED,
            "ref": reference,
            "group": group,
            "results": results,
        })))
    }
}

/// Fetches while there is room, until the connection ends or the group goes.
async fn run(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    group: String,
    limit: usize,
    consuming: Arc<Consuming>,
    stop: CancellationToken,
) {
    loop {
        let room = loop {
            let wait = consuming.room.notified();
            let room = limit.saturating_sub(consuming.out.lock().len());
            if room > 0 {
                break room;
            }
            tokio::select! {
                _ = wait => {}
                _ = stop.cancelled() => return,
            }
        };
        // `stop` ends the long poll early with what is ready.
        let got = shared.groups.fetch(&group, room, POLL, &stop).await;
        match got {
            Ok(ds) => {
                let mut out = consuming.out.lock();
                for d in &ds {
                    out.insert(d.handle.clone());
                }
                drop(out);
                for d in &ds {
                    conn.push_control(delivery(&group, d));
                }
            }
            Err(e) => {
                // The group was deleted, or the engine failed: say so and
                // stop; the worker consumes again when it is back.
                let mut v = serde_json::to_value(&e).unwrap_or_default();
                if let Some(m) = v.as_object_mut() {
                    m.insert("op".into(), op::ERROR.into());
                    m.insert("group".into(), group.clone().into());
                }
                conn.push_control(frame(v));
                return;
            }
        }
        if stop.is_cancelled() || shared.shutdown.is_cancelled() {
            return;
        }
    }
}
