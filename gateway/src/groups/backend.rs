//! The one seam every way of working in a group goes through: the HTTP
//! routes, the WebSocket consume form and the webhooks call
//! [`GroupBackend`] and never a particular implementation.
//!
//! Two implementations stand behind it: [`super::Groups`], the gateway's
//! own groups (a ledger per group, journaled to a [`super::GroupStore`]:
//! memory and disk engines), and the NATS engine's, where a group is a
//! durable JetStream pull consumer that every gateway shares.
//!
//! Every call names its group, so an implementation may keep no state per
//! group at all. A group that does not exist (or was deleted meanwhile) is
//! `group_not_found`; a handle is reported per handle, never as an error.

use super::config::GroupConfig;
use super::group::{Counts, Delivery, Outcome};
use super::ledger::DeadLetter;
use async_trait::async_trait;
use eventwire_protocol::frame::SettleOp;
use eventwire_protocol::{ErrorCode, ProtocolError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[async_trait]
pub trait GroupBackend: Send + Sync + 'static {
    /// Creates a group, or confirms one with the same configuration
    /// (`group_conflict` for another one). True when it was created.
    async fn create(&self, name: &str, config: GroupConfig) -> Result<bool, ProtocolError>;

    /// The configuration of an existing group.
    async fn get(&self, name: &str) -> Result<GroupConfig, ProtocolError>;

    /// The names of all groups, sorted.
    async fn list(&self) -> Result<Vec<String>, ProtocolError>;

    /// Removes a group with its pending deliveries and dead letters; a
    /// fetch waiting in it ends with `group_not_found`.
    async fn delete(&self, name: &str) -> Result<(), ProtocolError>;

    /// Hands out up to `max` deliveries, waiting up to `wait` for the
    /// first; `stop` ends the wait early (shutdown, a closed socket) with
    /// whatever is ready, possibly nothing.
    async fn fetch(
        &self,
        name: &str,
        max: usize,
        wait: Duration,
        stop: &CancellationToken,
    ) -> Result<Vec<Delivery>, ProtocolError>;

    /// One outcome per handle, in order.
    async fn ack(&self, name: &str, handles: &[String]) -> Result<Vec<Outcome>, ProtocolError>;

    /// Gives deliveries back, to go out again after `delay` (or the
    /// group's backoff step), or to the dead letters on the last attempt.
    async fn nack(
        &self,
        name: &str,
        handles: &[String],
        delay: Option<Duration>,
        reason: Option<String>,
    ) -> Result<Vec<Outcome>, ProtocolError>;

    /// Gives deliveries another full `ack_wait` from now.
    async fn extend(&self, name: &str, handles: &[String]) -> Result<Vec<Outcome>, ProtocolError>;

    /// At most `limit` dead letters, oldest position first, and how many
    /// the group holds.
    async fn dead(
        &self,
        name: &str,
        limit: usize,
    ) -> Result<(Vec<DeadLetter>, usize), ProtocolError>;

    /// Puts dead letters back to be handed out at once, attempts starting
    /// over: all, or those whose event id is in `ids`. Returns how many
    /// went back and the ids that matched none.
    async fn redrive(
        &self,
        name: &str,
        ids: Option<&[String]>,
    ) -> Result<(usize, Vec<String>), ProtocolError>;

    /// Live counts, for `GET` and `/metrics`.
    async fn counts(&self, name: &str) -> Result<Counts, ProtocolError>;

    /// New dead letters, with their group's name, for the gateway to
    /// announce through the publish pipeline (so they are authorized,
    /// backpressured and counted like any event). Given once; `None` after.
    fn announcements(&self) -> Option<Announcements> {
        None
    }
}

/// New dead letters and their groups, in the order they died.
pub type Announcements = tokio::sync::mpsc::UnboundedReceiver<(String, DeadLetter)>;

/// How handles are settled: what ack, nack and extend requests carry,
/// whichever transport they came over.
#[derive(Debug, Clone)]
pub enum Settle {
    Ack,
    Nack {
        delay: Option<Duration>,
        reason: Option<String>,
    },
    Extend,
}

/// Most handles one ack, nack or extend names.
pub const MAX_HANDLES: usize = 1000;
/// Most bytes of a nack reason kept.
const MAX_REASON: usize = 512;

impl Settle {
    /// Checks what an ack, nack or extend request carries (HTTP body or
    /// WebSocket frame alike): 1 to [`MAX_HANDLES`] handles, `delay` and
    /// `reason` on nack only, the delay a duration, the reason cut to 512
    /// bytes.
    pub fn checked(
        op: SettleOp,
        handles: &[String],
        delay: Option<&str>,
        reason: Option<&str>,
    ) -> Result<Settle, ProtocolError> {
        let bad = |m: String| ProtocolError::new(ErrorCode::BadRequest, m);
        if handles.is_empty() || handles.len() > MAX_HANDLES {
            return Err(bad(format!(
                "`handles` must hold 1 to {MAX_HANDLES} handles"
            )));
        }
        if op != SettleOp::Nack && (delay.is_some() || reason.is_some()) {
            return Err(bad("`delay` and `reason` belong to nack".to_owned()));
        }
        Ok(match op {
            SettleOp::Ack => Settle::Ack,
            SettleOp::Extend => Settle::Extend,
            SettleOp::Nack => Settle::Nack {
                delay: delay
                    .map(|d| super::config::duration("delay", d, super::config::MAX_DELAY))
                    .transpose()
                    .map_err(|e| bad(e.message))?,
                reason: reason.map(|r| {
                    let mut end = r.len().min(MAX_REASON);
                    while !r.is_char_boundary(end) {
                        end -= 1;
                    }
                    r[..end].to_owned()
                }),
            },
        })
    }

    pub async fn apply(
        self,
        backend: &dyn GroupBackend,
        name: &str,
        handles: &[String],
    ) -> Result<Vec<Outcome>, ProtocolError> {
        match self {
            Settle::Ack => backend.ack(name, handles).await,
            Settle::Nack { delay, reason } => backend.nack(name, handles, delay, reason).await,
            Settle::Extend => backend.extend(name, handles).await,
        }
    }
}
