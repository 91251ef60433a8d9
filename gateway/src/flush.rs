//! Write coalescing: live events written on a gateway-wide tick instead of
//! at once, so a subscriber's events that arrive within one tick leave in
//! one write.
//!
//! Why: on loopback and on real networks alike, most of the cost of a
//! delivery is the one `write` and one TCP segment per subscriber per event
//! (see `docs/bench/PROFILE.md`). Nothing can be coalesced without waiting
//! when events are spaced out, so holding trades latency for fewer, larger
//! writes. Two modes (`--write-delay`):
//!
//! - a fixed delay: every live event may wait up to one tick;
//! - `auto` (the default), as Linux TCP autocorking does: while writers keep
//!   up, a live event is written at once; once a writer finds that the
//!   oldest event of its write waited longer than [`BUSY_LAG`] since the
//!   gateway saw it (the runtime is behind: events queue anyway), live
//!   events are held for [`AUTO_TICK`] ticks for [`HOLD_WINDOW`], after
//!   which the gateway writes at once again and looks afresh.
//!
//! One ticker for all connections, not a timer per connection: a push that
//! would wake an idle writer hands the writer's waker to the ticker instead,
//! and the ticker wakes everything it collected once per period.
//!
//! `auto` holds only what can gather: a connection whose writer last wrote
//! more than a tick ago (10,000 subscribers of an event every 100 ms, say)
//! would write one event per write whether held or not, so holding it would
//! add latency and save nothing; its events are written at once. The ticks
//! are counted ([`Flusher::epoch`]) so a push can tell without a clock.

use parking_lot::Mutex;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::Waker;
use std::time::Duration;
use tokio::sync::Notify;

/// `auto`: a write whose oldest live event waited longer than this since the
/// gateway saw it means the writers are behind.
pub const BUSY_LAG: Duration = Duration::from_millis(10);
/// `auto`: the tick while holding.
pub const AUTO_TICK: Duration = Duration::from_millis(20);
/// `auto`: how long holding lasts before the gateway looks again.
pub const HOLD_WINDOW: Duration = Duration::from_secs(1);

/// The `--write-delay` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteDelay {
    /// Write at once while writers keep up; hold briefly when they fall behind.
    Auto,
    /// Hold every live event up to this long (zero: always write at once).
    Fixed(Duration),
}

impl FromStr for WriteDelay {
    type Err = String;

    fn from_str(s: &str) -> Result<WriteDelay, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(WriteDelay::Auto);
        }
        humantime::parse_duration(s)
            .map(WriteDelay::Fixed)
            .map_err(|e| format!("`auto` or a duration such as 25ms: {e}"))
    }
}

impl std::fmt::Display for WriteDelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteDelay::Auto => f.write_str("auto"),
            WriteDelay::Fixed(d) => write!(f, "{}", humantime::format_duration(*d)),
        }
    }
}

pub struct Flusher {
    pending: Mutex<Pending>,
    /// `auto` only: whether live pushes are being held (read without the lock
    /// on every push; changed under it).
    holding: AtomicBool,
    /// `auto` only: starts a holding window. Shared with the ticker, which
    /// waits on it without keeping the flusher alive.
    kick: Arc<Notify>,
    adaptive: bool,
    /// Ticks so far (see [`Flusher::gathers`]).
    epoch: AtomicU64,
}

#[derive(Default)]
struct Pending {
    wakers: Vec<Waker>,
    holding: bool,
}

impl Flusher {
    /// The flusher for a setting; None when every write goes out at once.
    pub fn for_setting(delay: WriteDelay) -> Option<Arc<Flusher>> {
        match delay {
            WriteDelay::Fixed(d) if d.is_zero() => None,
            WriteDelay::Fixed(d) => Some(Flusher::start(d)),
            WriteDelay::Auto => Some(Flusher::adaptive()),
        }
    }

    fn new(adaptive: bool) -> Arc<Flusher> {
        Arc::new(Flusher {
            pending: Mutex::new(Pending {
                wakers: Vec::new(),
                holding: !adaptive,
            }),
            holding: AtomicBool::new(!adaptive),
            kick: Arc::new(Notify::new()),
            adaptive,
            epoch: AtomicU64::new(0),
        })
    }

    /// A fixed delay: starts the ticker; it stops once the last handle is dropped.
    pub fn start(period: Duration) -> Arc<Flusher> {
        let flusher = Flusher::new(false);
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
                f.take_due(&mut due);
                drop(f);
                for w in due.drain(..) {
                    w.wake();
                }
            }
        });
        flusher
    }

    /// `auto`: the ticker sleeps until a writer reports that it fell behind,
    /// ticks through one holding window, then lets writes go out at once again.
    fn adaptive() -> Arc<Flusher> {
        let flusher = Flusher::new(true);
        let weak: Weak<Flusher> = Arc::downgrade(&flusher);
        let kick = flusher.kick.clone();
        tokio::spawn(async move {
            let mut due = Vec::new();
            loop {
                kick.notified().await;
                let Some(f) = weak.upgrade() else { break };
                f.set_holding(true);
                let until = tokio::time::Instant::now() + HOLD_WINDOW;
                let mut tick =
                    tokio::time::interval_at(tokio::time::Instant::now() + AUTO_TICK, AUTO_TICK);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let last = tokio::time::Instant::now() >= until;
                    if last {
                        // Under the lock: a push either deferred before
                        // this (and is woken below) or sees `false`.
                        f.set_holding(false);
                    }
                    f.take_due(&mut due);
                    for w in due.drain(..) {
                        w.wake();
                    }
                    if last {
                        break;
                    }
                }
                drop(f);
            }
        });
        flusher
    }

    fn set_holding(&self, on: bool) {
        let mut p = self.pending.lock();
        p.holding = on;
        self.holding.store(on, Ordering::Relaxed);
        if on {
            // Writes from before this window are not recent.
            self.epoch.fetch_add(2, Ordering::Relaxed);
        }
    }

    fn take_due(&self, due: &mut Vec<Waker>) {
        std::mem::swap(&mut self.pending.lock().wakers, due);
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// The tick count, for a writer to note when it wrote.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Whether holding a live event for a connection whose writer last
    /// wrote at `wrote_at` (an [`Flusher::epoch`]) can gather anything: with
    /// a fixed delay always; with `auto` only when it wrote during this tick
    /// or the one before, i.e. its events come faster than the ticks.
    pub fn gathers(&self, wrote_at: u64) -> bool {
        !self.adaptive || self.epoch() <= wrote_at + 1
    }

    /// Whether a live push that finds its writer idle should leave the wake
    /// to the ticker. A hint: [`Flusher::defer`] decides under the lock.
    pub fn holds(&self) -> bool {
        self.holding.load(Ordering::Relaxed)
    }

    /// Wakes `waker` on the next tick, or hands it back when not holding
    /// (the caller wakes it at once).
    pub fn defer(&self, waker: Waker) -> Result<(), Waker> {
        let mut p = self.pending.lock();
        if p.holding {
            p.wakers.push(waker);
            Ok(())
        } else {
            Err(waker)
        }
    }

    /// Whether [`Flusher::observe`] would use a reading now (so a writer can
    /// skip reading the clock).
    pub fn wants_lag(&self) -> bool {
        self.adaptive && !self.holds()
    }

    /// `auto`: a writer writing at once reports how long the oldest live
    /// event of its write waited since the gateway saw it.
    pub fn observe(&self, waited: Duration) {
        if waited > BUSY_LAG && self.wants_lag() {
            self.kick.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse() {
        assert_eq!("auto".parse(), Ok(WriteDelay::Auto));
        assert_eq!(
            "25ms".parse(),
            Ok(WriteDelay::Fixed(Duration::from_millis(25)))
        );
        assert_eq!("0s".parse(), Ok(WriteDelay::Fixed(Duration::ZERO)));
        assert!("soon".parse::<WriteDelay>().is_err());
        assert_eq!(WriteDelay::Auto.to_string(), "auto");
    }

    fn counting_waker(n: &Arc<std::sync::atomic::AtomicUsize>) -> Waker {
        struct W(Arc<std::sync::atomic::AtomicUsize>);
        impl std::task::Wake for W {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        Waker::from(Arc::new(W(n.clone())))
    }

    #[tokio::test(start_paused = true)]
    async fn auto_writes_at_once_until_a_writer_falls_behind_then_holds_for_a_window() {
        let f = Flusher::for_setting(WriteDelay::Auto).expect("a flusher");
        let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // Keeping up: nothing is held.
        f.observe(BUSY_LAG / 2);
        tokio::time::sleep(AUTO_TICK * 2).await;
        assert!(!f.holds());
        assert!(f.defer(counting_waker(&woken)).is_err());
        // Behind: pushes are held and woken on the tick.
        f.observe(BUSY_LAG * 2);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(f.holds());
        assert!(f.defer(counting_waker(&woken)).is_ok());
        assert_eq!(woken.load(Ordering::SeqCst), 0);
        tokio::time::sleep(AUTO_TICK + Duration::from_millis(1)).await;
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        // After the window, writes go out at once again.
        tokio::time::sleep(HOLD_WINDOW + AUTO_TICK * 2).await;
        assert!(!f.holds());
        assert!(f.defer(counting_waker(&woken)).is_err());
    }
}
