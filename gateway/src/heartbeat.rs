//! Heartbeats from one gateway-wide tick instead of a timer per connection.
//!
//! Why: a timer per connection is one more entry in the runtime's timer
//! wheel per connection, and its writer polled it on every wake, i.e. once
//! per write (about 5 % of user instructions when every write carries one
//! event; see `docs/bench/PROFILE.md`). Here one task ticks for all of them.
//!
//! The connections are split into [`SLOTS`] groups by key, and each tick
//! visits one group, so every connection still gets a heartbeat once per
//! period, and a gateway with 10,000 connections spreads its heartbeats over
//! the period instead of writing 10,000 of them at the same instant.

use crate::conn::Conn;
use crate::hub::Hub;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::time::MissedTickBehavior;

/// Groups of connections visited in turn, one per tick.
pub const SLOTS: u64 = 16;

/// Starts the tick; it stops once the hub is gone. Every connection is asked
/// for a heartbeat ([`Conn::heartbeat`]) once per `period`, the first within
/// one period of connecting.
pub fn start(hub: Weak<Hub>, period: Duration) {
    let tick = (period / SLOTS as u32).max(Duration::from_millis(1));
    tokio::spawn(async move {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut due: Vec<Arc<Conn>> = Vec::new();
        for slot in (0..SLOTS).cycle() {
            interval.tick().await;
            let Some(hub) = hub.upgrade() else { break };
            hub.connections_in_slot(slot, SLOTS, &mut due);
            drop(hub);
            for conn in due.drain(..) {
                conn.heartbeat();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use crate::conn::{Taken, Transport};
    use crate::engine::memory::{MemoryConfig, MemoryEngine};
    use crate::hub::{Hub, HubLimits};
    use crate::metrics::Metrics;
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use std::time::Duration;

    /// How many heartbeats each connection has been asked for since the last call.
    fn heartbeats(conns: &[Arc<crate::conn::Conn>]) -> Vec<usize> {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut buf = Vec::new();
        conns
            .iter()
            .map(|c| {
                let mut n = 0;
                while let Poll::Ready(Taken::Heartbeat) = c.poll_take(&mut cx, &mut buf) {
                    n += 1;
                }
                n
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn every_connection_gets_one_heartbeat_per_period_from_the_one_tick() {
        let period = Duration::from_millis(1600);
        let mut limits = HubLimits::from_config(&crate::Config::defaults());
        limits.heartbeat = period;
        let engine = Arc::new(MemoryEngine::new(MemoryConfig::default()));
        let hub = Hub::start(engine, Arc::new(Metrics::new()), limits)
            .await
            .unwrap();
        let conns: Vec<_> = (0..50).map(|_| hub.connect(Transport::Sse)).collect();
        // Spread over the period: after half of it, some but not all were asked.
        tokio::time::sleep(period / 2).await;
        let first = heartbeats(&conns);
        assert!(first.iter().all(|&n| n <= 1), "{first:?}");
        let asked = first.iter().sum::<usize>();
        assert!(asked > 0 && asked < conns.len(), "{first:?}");
        // By the end of the first period every connection was asked once,
        // and once more in each period after that.
        tokio::time::sleep(period / 2 + Duration::from_millis(10)).await;
        let rest = heartbeats(&conns);
        let total: Vec<usize> = first.iter().zip(&rest).map(|(a, b)| a + b).collect();
        assert!(total.iter().all(|&n| n == 1), "{total:?}");
        tokio::time::sleep(period).await;
        assert!(heartbeats(&conns).iter().all(|&n| n == 1));
        // A connection that is gone is not visited.
        hub.disconnect(&conns[0]);
        drop(conns);
        drop(hub);
    }
}
