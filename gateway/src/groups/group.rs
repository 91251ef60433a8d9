//! One consumer group at work: handing events out to competing workers,
//! taking acks, nacks and extensions, timing out deliveries, retiring
//! poison events to dead letters and redriving them.
//!
//! The group reads the engine through `history` pages after its cursor, so
//! it works on any engine; live events only wake waiting fetches. Each
//! decision is journaled to the group store before it is applied or
//! answered (see [`super::store`]).

use super::config::GroupConfig;
use super::ledger::{Change, DeadLetter, Ledger, Stage};
use super::store::{GroupStore, StoredGroup};
use crate::engine::{Engine, Event, HistoryQuery};
use eventwire_protocol::{ErrorCode, ProtocolError};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// Events counted per history read when measuring lag, and pages read at
/// most: lag above `LAG_PAGE * LAG_PAGES` is reported as that bound.
const LAG_PAGE: usize = 1000;
const LAG_PAGES: usize = 100;

/// Unix milliseconds: deadlines are wall-clock so that a durable store can
/// keep them across a restart.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

/// One event handed to one worker.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub handle: String,
    pub attempt: u32,
    pub event: Arc<Event>,
}

/// What became of one handle in an ack, nack or extend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Acked,
    Nacked,
    /// Nacked on its last attempt: it is now a dead letter.
    Dead,
    Extended,
    /// A handle this group issued that no longer names the current delivery
    /// of a pending event: it was acked or nacked already, or it timed out
    /// and went to another worker.
    Expired,
    /// Not a handle of this group.
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Acked => "acked",
            Outcome::Nacked => "nacked",
            Outcome::Dead => "dead",
            Outcome::Extended => "extended",
            Outcome::Expired => "expired",
            Outcome::Unknown => "unknown",
        }
    }
}

/// Live counts for `GET /v1/groups/{group}` and `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Matching events not yet handed out (at most the lag bound).
    pub lag: u64,
    pub lag_capped: bool,
    /// Handed out and not acked, including those waiting to go out again.
    pub pending: u64,
    pub delivered: u64,
    pub redelivered: u64,
    pub acked: u64,
    /// Dead letters held now.
    pub dead: u64,
    pub dead_total: u64,
    pub dead_dropped: u64,
    /// Times the cursor fell behind the engine's retention, and how many
    /// positions were skipped then (an upper bound on lost matching events).
    pub gaps: u64,
    pub missed: u64,
}

enum Handle {
    Current(u64),
    Expired,
    Unknown,
}

pub struct Group {
    pub name: String,
    pub config: GroupConfig,
    incarnation: String,
    ledger: Mutex<Ledger>,
    /// Held while reading the engine after the cursor, so two fetches never
    /// hand out the same new event.
    reader: tokio::sync::Mutex<()>,
    wake: Notify,
    deleted: AtomicBool,
    store: Arc<dyn GroupStore>,
    engine: Arc<dyn Engine>,
    /// Dead-letter announcements, published by the registry.
    announce: mpsc::UnboundedSender<(String, DeadLetter)>,
}

impl Group {
    pub fn new(
        stored: StoredGroup,
        store: Arc<dyn GroupStore>,
        engine: Arc<dyn Engine>,
        announce: mpsc::UnboundedSender<(String, DeadLetter)>,
    ) -> Group {
        Group {
            name: stored.name,
            config: stored.config,
            incarnation: stored.incarnation,
            ledger: Mutex::new(stored.ledger),
            reader: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            deleted: AtomicBool::new(false),
            store,
            engine,
            announce,
        }
    }

    /// Wakes every waiting fetch to look again.
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    pub fn delete(&self) {
        self.deleted.store(true, Ordering::SeqCst);
        self.wake();
    }

    fn gone(&self) -> ProtocolError {
        ProtocolError::new(
            ErrorCode::GroupNotFound,
            format!("group {} was deleted", self.name),
        )
    }

    /// Journals `changes`, then applies them. Nothing is applied when the
    /// store refuses, so memory never runs ahead of the journal. Whoever
    /// answers a request calls the store's `sync` after releasing the lock
    /// and before answering, so concurrent requests share one fsync.
    fn commit(&self, ledger: &mut Ledger, changes: Vec<Change>) -> Result<(), ProtocolError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.store.record(&self.name, &changes)?;
        for c in &changes {
            ledger.apply(c);
            if let Change::Dead { offset, .. } = c
                && let Some(d) = ledger.dead.get(offset)
            {
                let _ = self.announce.send((self.name.clone(), d.clone()));
            }
        }
        Ok(())
    }

    fn handle(&self, delivery: u64) -> String {
        format!("{}.{delivery}", self.incarnation)
    }

    fn resolve(&self, ledger: &Ledger, handle: &str) -> Handle {
        let Some(id) = handle
            .strip_prefix(self.incarnation.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .filter(|id| !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|id| id.parse::<u64>().ok())
        else {
            return Handle::Unknown;
        };
        match ledger.deliveries.get(&id) {
            Some(_) => Handle::Current(id),
            None if id < ledger.next_delivery => Handle::Expired,
            None => Handle::Unknown,
        }
    }

    /// Times out deliveries whose `ack_wait` has passed: each goes back to
    /// wait for its backoff, or, on its last attempt, to the dead letters.
    pub fn expire(&self, now: u64) -> Result<(), ProtocolError> {
        let mut l = self.ledger.lock();
        self.expire_locked(&mut l, now)
    }

    fn expire_locked(&self, l: &mut Ledger, now: u64) -> Result<(), ProtocolError> {
        let changes: Vec<Change> = l
            .due(now)
            .filter_map(|(offset, p)| match p.stage {
                Stage::Out { deadline } if p.attempt >= self.config.max_deliver => {
                    Some(Change::Dead {
                        offset,
                        reason: p
                            .reason
                            .clone()
                            .unwrap_or_else(|| "not acked within ack_wait".to_owned()),
                        at: deadline,
                    })
                }
                Stage::Out { deadline } => Some(Change::Wait {
                    offset,
                    until: deadline + ms(self.config.backoff_after(p.attempt)),
                    reason: None,
                    release: false,
                }),
                Stage::Waiting { .. } => None,
            })
            .collect();
        self.commit(l, changes)
    }

    /// Hands out up to `max` deliveries, waiting up to `wait` for the first.
    pub async fn fetch(
        &self,
        max: usize,
        wait: Duration,
        shutdown: &CancellationToken,
    ) -> Result<Vec<Delivery>, ProtocolError> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            // Registered before looking, so a wake between the look and
            // the wait is not lost.
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.deleted.load(Ordering::SeqCst) {
                return Err(self.gone());
            }
            let out = self.take(max).await?;
            if !out.is_empty() {
                self.store.sync()?;
            }
            let now = tokio::time::Instant::now();
            if !out.is_empty() || now >= until || shutdown.is_cancelled() {
                return Ok(out);
            }
            let timer = self
                .ledger
                .lock()
                .next_timer()
                .map(|t| now + Duration::from_millis(t.saturating_sub(now_ms()).max(1)));
            let sleep_until = timer.map_or(until, |t| t.min(until));
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(sleep_until) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }

    /// One look: redeliveries that are due first (in position order), then
    /// new events after the cursor, within `max` and `max_inflight`.
    async fn take(&self, max: usize) -> Result<Vec<Delivery>, ProtocolError> {
        let _reader = self.reader.lock().await;
        let now = now_ms();
        let deadline = now + ms(self.config.ack_wait);
        let mut out = Vec::new();
        let (room, cursor) = {
            let mut l = self.ledger.lock();
            self.expire_locked(&mut l, now)?;
            let mut due: Vec<u64> = l
                .due(now)
                .filter(|(_, p)| matches!(p.stage, Stage::Waiting { .. }))
                .map(|(o, _)| o)
                .collect();
            due.sort_unstable();
            due.truncate(max);
            let mut changes = Vec::with_capacity(due.len());
            for (i, offset) in due.into_iter().enumerate() {
                let p = &l.pending[&offset];
                let delivery = l.next_delivery + i as u64;
                out.push(Delivery {
                    handle: self.handle(delivery),
                    attempt: p.attempt + 1,
                    event: p.event.clone(),
                });
                changes.push(Change::Deliver {
                    event: p.event.clone(),
                    attempt: p.attempt + 1,
                    delivery,
                    deadline,
                });
            }
            self.commit(&mut l, changes)?;
            let room = (max - out.len())
                .min((self.config.max_inflight as usize).saturating_sub(l.pending.len()));
            (room, l.cursor.clone())
        };
        if room == 0 {
            return Ok(out);
        }
        let page = self
            .engine
            .history(HistoryQuery {
                patterns: self.config.topics.clone(),
                since: cursor.clone(),
                limit: room,
            })
            .await?;
        let mut l = self.ledger.lock();
        if self.deleted.load(Ordering::SeqCst) {
            return Err(self.gone());
        }
        let mut changes = Vec::with_capacity(page.events.len() + 2);
        if cursor.is_some() && !page.recovered {
            match (page.after, page.events.first()) {
                // The cursor is not this engine's (another incarnation):
                // start over at the oldest retained event.
                (None, _) => {
                    tracing::error!(group = %self.name, "group cursor is not a position of this engine; reading from the oldest retained event");
                    changes.push(Change::Gap { missed: 0 });
                    changes.push(Change::Cursor(None));
                }
                (Some(after), Some(first)) => {
                    let missed = first.offset.saturating_sub(after + 1);
                    tracing::warn!(group = %self.name, missed, "group cursor fell behind retention; events were lost before delivery");
                    changes.push(Change::Gap { missed });
                }
                // Nothing retained matches yet: the gap is recorded when
                // the first event after it is read.
                (Some(_), None) => {}
            }
        }
        for (i, ev) in page.events.iter().enumerate() {
            let delivery = l.next_delivery + i as u64;
            out.push(Delivery {
                handle: self.handle(delivery),
                attempt: 1,
                event: ev.clone(),
            });
            changes.push(Change::Deliver {
                event: ev.clone(),
                attempt: 1,
                delivery,
                deadline,
            });
        }
        if let Some(last) = page.events.last() {
            changes.push(Change::Cursor(Some(last.seq.clone())));
        }
        self.commit(&mut l, changes)?;
        Ok(out)
    }

    /// Applies `settle` to each handle's current delivery; every handle gets
    /// an outcome, in order.
    fn settle(
        &self,
        handles: &[String],
        mut settle: impl FnMut(u64, u32, u64) -> (Change, Outcome),
    ) -> Result<Vec<Outcome>, ProtocolError> {
        let now = now_ms();
        let mut l = self.ledger.lock();
        let mut seen = HashSet::new();
        let mut changes = Vec::new();
        let outcomes = handles
            .iter()
            .map(|h| match self.resolve(&l, h) {
                Handle::Current(id) => {
                    let offset = l.deliveries[&id];
                    if !seen.insert(offset) {
                        return Outcome::Expired;
                    }
                    let (change, outcome) = settle(offset, l.pending[&offset].attempt, now);
                    changes.push(change);
                    outcome
                }
                Handle::Expired => Outcome::Expired,
                Handle::Unknown => Outcome::Unknown,
            })
            .collect();
        let any = !changes.is_empty();
        self.commit(&mut l, changes)?;
        drop(l);
        if any {
            self.store.sync()?;
            self.wake();
        }
        Ok(outcomes)
    }

    pub fn ack(&self, handles: &[String]) -> Result<Vec<Outcome>, ProtocolError> {
        self.settle(handles, |offset, _, _| {
            (Change::Ack { offset }, Outcome::Acked)
        })
    }

    /// Gives deliveries back: each is handed out again after `delay` (or
    /// its backoff step), or becomes a dead letter if that was its last
    /// attempt.
    pub fn nack(
        &self,
        handles: &[String],
        delay: Option<Duration>,
        reason: Option<String>,
    ) -> Result<Vec<Outcome>, ProtocolError> {
        self.settle(handles, |offset, attempt, now| {
            if attempt >= self.config.max_deliver {
                let reason = reason.clone().unwrap_or_else(|| "nacked".to_owned());
                (
                    Change::Dead {
                        offset,
                        reason,
                        at: now,
                    },
                    Outcome::Dead,
                )
            } else {
                let wait = delay.unwrap_or_else(|| self.config.backoff_after(attempt));
                (
                    Change::Wait {
                        offset,
                        until: now + ms(wait),
                        reason: reason.clone(),
                        release: true,
                    },
                    Outcome::Nacked,
                )
            }
        })
    }

    /// Gives deliveries another full `ack_wait` from now.
    pub fn extend(&self, handles: &[String]) -> Result<Vec<Outcome>, ProtocolError> {
        let wait = ms(self.config.ack_wait);
        self.settle(handles, |offset, _, now| {
            (
                Change::Extend {
                    offset,
                    deadline: now + wait,
                },
                Outcome::Extended,
            )
        })
    }

    /// The dead letters, oldest position first, at most `limit`.
    pub fn dead(&self, limit: usize) -> (Vec<DeadLetter>, usize) {
        let l = self.ledger.lock();
        (l.dead.values().take(limit).cloned().collect(), l.dead.len())
    }

    /// Puts dead letters back to be handed out at once, attempts starting
    /// over: all of them, or those whose event id is in `ids`. Returns how
    /// many went back and which ids matched none.
    pub fn redrive(&self, ids: Option<&[String]>) -> Result<(usize, Vec<String>), ProtocolError> {
        let now = now_ms();
        let mut l = self.ledger.lock();
        let chosen: Vec<u64> = l
            .dead
            .iter()
            .filter(|(_, d)| ids.is_none_or(|ids| ids.iter().any(|i| *i == d.event.id)))
            .map(|(o, _)| *o)
            .collect();
        let unknown = ids
            .unwrap_or_default()
            .iter()
            .filter(|i| !l.dead.values().any(|d| d.event.id == **i))
            .cloned()
            .collect();
        let n = chosen.len();
        let changes = chosen
            .into_iter()
            .map(|offset| Change::Redrive { offset, at: now })
            .collect();
        self.commit(&mut l, changes)?;
        drop(l);
        self.store.sync()?;
        self.wake();
        Ok((n, unknown))
    }

    pub async fn counts(&self) -> Result<Counts, ProtocolError> {
        let (cursor, mut c) = {
            let l = self.ledger.lock();
            (
                l.cursor.clone(),
                Counts {
                    pending: l.pending.len() as u64,
                    delivered: l.delivered,
                    redelivered: l.redelivered,
                    acked: l.acked,
                    dead: l.dead.len() as u64,
                    dead_total: l.dead_total,
                    dead_dropped: l.dead_dropped,
                    gaps: l.gaps,
                    missed: l.missed,
                    ..Counts::default()
                },
            )
        };
        let mut since = cursor;
        for _ in 0..LAG_PAGES {
            let page = self
                .engine
                .history(HistoryQuery {
                    patterns: self.config.topics.clone(),
                    since: since.clone(),
                    limit: LAG_PAGE,
                })
                .await?;
            c.lag += page.events.len() as u64;
            match page.events.last() {
                Some(last) if page.more => since = Some(last.seq.clone()),
                _ => return Ok(c),
            }
        }
        c.lag_capped = true;
        Ok(c)
    }
}
