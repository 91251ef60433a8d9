//! A group's working state and the changes that move it: the cursor,
//! pending deliveries, dead letters and counters.
//!
//! Every decision a group makes is first written down as a list of
//! [`Change`]s, handed to the [`GroupStore`](super::store::GroupStore), and
//! only then applied here. The store rebuilds a ledger by applying the same
//! changes with the same [`Ledger::apply`], so what a durable store replays
//! after a restart is exactly what the running group did.

use crate::engine::Event;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Dead letters kept per group. Beyond this the oldest are dropped (and
/// counted), so a poison flood cannot grow memory without bound.
pub const MAX_DEAD: usize = 10_000;

/// Where a pending delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// With a worker until `deadline` (Unix ms).
    Out { deadline: u64 },
    /// Waiting to be handed out again, not before `until` (Unix ms).
    Waiting { until: u64 },
}

/// An event handed out and not yet acked (or waiting to be handed out again).
#[derive(Debug, Clone)]
pub struct Pending {
    pub event: Arc<Event>,
    /// Attempts made so far: 1 after the first delivery, 0 after a redrive.
    pub attempt: u32,
    /// The current delivery, the one a handle must name to ack.
    pub delivery: Option<u64>,
    pub stage: Stage,
    pub reason: Option<String>,
}

impl Pending {
    fn at(&self) -> u64 {
        match self.stage {
            Stage::Out { deadline } => deadline,
            Stage::Waiting { until } => until,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub event: Arc<Event>,
    pub attempts: u32,
    pub reason: String,
    /// Unix ms.
    pub at: u64,
}

/// One step of a group's history. Offsets key events within a group: they
/// are the engine's order, so keying by them keeps pending events sorted.
#[derive(Debug, Clone)]
pub enum Change {
    /// Events up to this position have been handed out at least once
    /// (`None`: start over at the oldest retained event).
    Cursor(Option<String>),
    /// The cursor fell behind retention: up to `missed` events were lost
    /// before they could be handed out.
    Gap {
        missed: u64,
    },
    /// Hand an event out (first time, or again).
    Deliver {
        event: Arc<Event>,
        attempt: u32,
        delivery: u64,
        deadline: u64,
    },
    /// Take an event back to hand out again from `until`. `release` voids
    /// the current handle (nack); a timeout keeps it, so a late ack still
    /// counts until the event goes out again.
    Wait {
        offset: u64,
        until: u64,
        reason: Option<String>,
        release: bool,
    },
    Extend {
        offset: u64,
        deadline: u64,
    },
    Ack {
        offset: u64,
    },
    Dead {
        offset: u64,
        reason: String,
        at: u64,
    },
    Redrive {
        offset: u64,
        at: u64,
    },
}

#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// The position after which no event has been handed out yet; `None`
    /// starts at the oldest retained event.
    pub cursor: Option<String>,
    pub next_delivery: u64,
    pub pending: BTreeMap<u64, Pending>,
    /// (time, offset) of every pending event: deadlines and wake-ups.
    pub timers: BTreeSet<(u64, u64)>,
    /// Current delivery id → offset.
    pub deliveries: HashMap<u64, u64>,
    pub dead: BTreeMap<u64, DeadLetter>,
    pub delivered: u64,
    pub redelivered: u64,
    pub acked: u64,
    pub dead_total: u64,
    pub dead_dropped: u64,
    pub gaps: u64,
    pub missed: u64,
}

impl Ledger {
    pub fn new(cursor: Option<String>) -> Ledger {
        Ledger {
            cursor,
            next_delivery: 1,
            ..Ledger::default()
        }
    }

    fn unschedule(&mut self, offset: u64) -> Option<Pending> {
        let p = self.pending.remove(&offset)?;
        self.timers.remove(&(p.at(), offset));
        if let Some(d) = p.delivery {
            self.deliveries.remove(&d);
        }
        Some(p)
    }

    fn schedule(&mut self, offset: u64, p: Pending) {
        self.timers.insert((p.at(), offset));
        if let Some(d) = p.delivery {
            self.deliveries.insert(d, offset);
        }
        self.pending.insert(offset, p);
    }

    /// Puts back a pending event as a store kept it, when loading a group
    /// after a restart.
    pub fn restore(&mut self, offset: u64, p: Pending) {
        self.schedule(offset, p);
    }

    /// Applies one change. Changes that name an event no longer pending
    /// do nothing, so replaying a journal twice is harmless.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Cursor(c) => self.cursor = c.clone(),
            Change::Gap { missed } => {
                self.gaps += 1;
                self.missed += missed;
            }
            Change::Deliver {
                event,
                attempt,
                delivery,
                deadline,
            } => {
                let reason = self.unschedule(event.offset).and_then(|p| p.reason);
                self.next_delivery = self.next_delivery.max(delivery + 1);
                self.delivered += 1;
                if *attempt > 1 {
                    self.redelivered += 1;
                }
                self.schedule(
                    event.offset,
                    Pending {
                        event: event.clone(),
                        attempt: *attempt,
                        delivery: Some(*delivery),
                        stage: Stage::Out {
                            deadline: *deadline,
                        },
                        reason,
                    },
                );
            }
            Change::Wait {
                offset,
                until,
                reason,
                release,
            } => {
                if let Some(mut p) = self.unschedule(*offset) {
                    p.stage = Stage::Waiting { until: *until };
                    if reason.is_some() {
                        p.reason = reason.clone();
                    }
                    if *release {
                        p.delivery = None;
                    }
                    self.schedule(*offset, p);
                }
            }
            Change::Extend { offset, deadline } => {
                if let Some(mut p) = self.unschedule(*offset) {
                    p.stage = Stage::Out {
                        deadline: *deadline,
                    };
                    self.schedule(*offset, p);
                }
            }
            Change::Ack { offset } => {
                if self.unschedule(*offset).is_some() {
                    self.acked += 1;
                }
            }
            Change::Dead { offset, reason, at } => {
                if let Some(p) = self.unschedule(*offset) {
                    self.dead_total += 1;
                    self.dead.insert(
                        *offset,
                        DeadLetter {
                            event: p.event,
                            attempts: p.attempt,
                            reason: reason.clone(),
                            at: *at,
                        },
                    );
                    while self.dead.len() > MAX_DEAD {
                        self.dead.pop_first();
                        self.dead_dropped += 1;
                    }
                }
            }
            Change::Redrive { offset, at } => {
                if let Some(d) = self.dead.remove(offset) {
                    self.schedule(
                        *offset,
                        Pending {
                            event: d.event,
                            attempt: 0,
                            delivery: None,
                            stage: Stage::Waiting { until: *at },
                            reason: Some(d.reason),
                        },
                    );
                }
            }
        }
    }

    /// The earliest deadline or wake-up, if anything is pending.
    pub fn next_timer(&self) -> Option<u64> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Pending events whose time has come, in time order.
    pub fn due(&self, now: u64) -> impl Iterator<Item = (u64, &Pending)> {
        self.timers
            .range(..=(now, u64::MAX))
            .map(|(_, o)| (*o, &self.pending[o]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(offset: u64) -> Arc<Event> {
        Event::sample(offset, "a")
    }

    #[test]
    fn deliver_wait_redeliver_dead_redrive() {
        let mut l = Ledger::new(None);
        l.apply(&Change::Deliver {
            event: ev(7),
            attempt: 1,
            delivery: 1,
            deadline: 100,
        });
        assert_eq!(l.deliveries.get(&1), Some(&7));
        assert_eq!(l.due(99).count(), 0);
        assert_eq!(l.due(100).count(), 1);
        l.apply(&Change::Wait {
            offset: 7,
            until: 150,
            reason: Some("boom".into()),
            release: true,
        });
        assert!(l.deliveries.is_empty(), "a nack voids the handle");
        l.apply(&Change::Deliver {
            event: ev(7),
            attempt: 2,
            delivery: 2,
            deadline: 300,
        });
        assert_eq!((l.delivered, l.redelivered), (2, 1));
        assert_eq!(l.pending[&7].reason.as_deref(), Some("boom"));
        l.apply(&Change::Dead {
            offset: 7,
            reason: "boom".into(),
            at: 310,
        });
        assert!(l.pending.is_empty() && l.timers.is_empty() && l.deliveries.is_empty());
        assert_eq!(l.dead[&7].attempts, 2);
        l.apply(&Change::Redrive { offset: 7, at: 400 });
        assert_eq!(l.pending[&7].attempt, 0);
        assert_eq!(l.next_timer(), Some(400));
        assert!(l.dead.is_empty());
        l.apply(&Change::Deliver {
            event: ev(7),
            attempt: 1,
            delivery: 3,
            deadline: 500,
        });
        l.apply(&Change::Ack { offset: 7 });
        l.apply(&Change::Ack { offset: 7 });
        assert_eq!(l.acked, 1, "acking twice counts once");
        assert_eq!(l.next_delivery, 4);
    }
}
