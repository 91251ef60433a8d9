//! The opt-in write delay (`--write-delay`): live events are written on a
//! gateway-wide tick instead of at once, so a subscriber's events that arrive
//! within one tick leave in one write.
//!
//! Why: on loopback and on real networks alike, most of the cost of a
//! delivery is the one `write` and one TCP segment per subscriber per event
//! (see `docs/bench/PROFILE.md`). Nothing can be coalesced without waiting
//! when events are spaced out, so this trades up to one tick of latency for
//! fewer, larger writes. Off by default: latency first.
//!
//! One ticker for all connections, not a timer per connection: a push that
//! would wake an idle writer hands the writer's waker to the ticker instead,
//! and the ticker wakes everything it collected once per period.

use parking_lot::Mutex;
use std::sync::{Arc, Weak};
use std::task::Waker;
use std::time::Duration;

#[derive(Default)]
pub struct Flusher {
    pending: Mutex<Vec<Waker>>,
}

impl Flusher {
    /// Starts the ticker; it stops once the last handle is dropped.
    pub fn start(period: Duration) -> Arc<Flusher> {
        let flusher = Arc::new(Flusher::default());
        let weak: Weak<Flusher> = Arc::downgrade(&flusher);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Swapped with the pending list each tick, so neither allocates
            // once they have grown.
            let mut due = Vec::new();
            loop {
                tick.tick().await;
                let Some(f) = weak.upgrade() else { break };
                std::mem::swap(&mut *f.pending.lock(), &mut due);
                drop(f);
                for w in due.drain(..) {
                    w.wake();
                }
            }
        });
        flusher
    }

    /// Wakes `waker` on the next tick.
    pub fn defer(&self, waker: Waker) {
        self.pending.lock().push(waker);
    }
}
