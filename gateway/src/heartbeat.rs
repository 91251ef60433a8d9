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
        // Burst, not Delay: a late tick must not push the following ones
        // back, or the lateness of 16 ticks adds up within one period and a
        // connection waits far longer than a period for its heartbeat (a
        // WebSocket peer that answers every ping would then look silent).
        interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
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

    const PERIOD: Duration = Duration::from_millis(1600);

    /// A hub with a `PERIOD` heartbeat and `n` connections whose writers
    /// have written their welcome.
    async fn welcomed(n: usize) -> (Arc<Hub>, Vec<Arc<crate::conn::Conn>>) {
        let mut limits = HubLimits::from_config(&crate::Config::defaults());
        limits.heartbeat = PERIOD;
        let engine = Arc::new(MemoryEngine::new(MemoryConfig::default()));
        let hub = Hub::start(engine, Arc::new(Metrics::new()), limits)
            .await
            .unwrap();
        let conns: Vec<_> = (0..n).map(|_| hub.connect(Transport::Sse)).collect();
        let waker = futures_util::task::noop_waker();
        let mut buf = Vec::new();
        for c in &conns {
            c.push_control(bytes::Bytes::from_static(b"welcome"));
            assert!(
                c.poll_take(&mut Context::from_waker(&waker), &mut buf)
                    .is_ready()
            );
        }
        (hub, conns)
    }

    #[tokio::test(start_paused = true)]
    async fn late_ticks_do_not_stretch_the_period() {
        let tick = PERIOD / super::SLOTS as u32;
        let (_hub, conns) = welcomed(32).await;
        // A busy runtime: every tick runs half a tick late, 48 times over,
        // i.e. for 4.5 periods.
        let mut got = vec![0; conns.len()];
        for _ in 0..48 {
            tokio::time::advance(tick + tick / 2).await;
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
            for (n, h) in got.iter_mut().zip(heartbeats(&conns)) {
                *n += h;
            }
        }
        // Still one heartbeat per period each, not one per 1.5 periods.
        assert!(got.iter().all(|&n| n >= 4), "{got:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn every_connection_gets_one_heartbeat_per_period_from_the_one_tick() {
        let period = PERIOD;
        let (hub, conns) = welcomed(50).await;
        // A connection whose writer has not written its welcome yet is not
        // asked: the welcome is the first frame.
        let unwelcomed = hub.connect(Transport::Sse);
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
        assert_eq!(heartbeats(std::slice::from_ref(&unwelcomed)), [0]);
        // A connection that is gone is not visited.
        hub.disconnect(&conns[0]);
        drop(conns);
        drop(hub);
    }
}
