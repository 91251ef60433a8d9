//! The embedded engine: an in-process ring of recent events, a dedupe window,
//! and direct hand-off to subscribers.
//!
//! Positions carry a random epoch chosen at start, so a client resuming
//! with a position from before a restart gets `recovered: false` instead of
//! a silent gap.

use super::dedupe::DedupeWindow;
use super::position::{Position, Window};
use super::{Accepted, Engine, EngineError, Event, History, HistoryQuery, NewEvent, Subscription};
use async_trait::async_trait;
use eventwire_protocol::Pattern;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub struct MemoryConfig {
    pub max_events: usize,
    pub max_bytes: usize,
    pub dedupe_window: Duration,
    /// Ids remembered at most, whatever the window, to bound memory.
    pub dedupe_max_ids: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            max_events: 10_000,
            max_bytes: 64 * 1024 * 1024,
            dedupe_window: Duration::from_secs(120),
            dedupe_max_ids: 100_000,
        }
    }
}

pub struct MemoryEngine {
    epoch: String,
    config: MemoryConfig,
    /// The dedupe window's clock: monotonic, so a wall-clock jump neither
    /// forgets ids early nor keeps them forever.
    started: Instant,
    state: Mutex<State>,
}

struct State {
    next_offset: u64,
    ring: VecDeque<Arc<Event>>,
    ring_bytes: usize,
    /// Accepted events by [`NewEvent::dedupe_key`], inside the window.
    seen: DedupeWindow,
    subscribers: Vec<(Pattern, mpsc::UnboundedSender<Arc<Event>>)>,
}

impl MemoryEngine {
    pub fn new(config: MemoryConfig) -> MemoryEngine {
        MemoryEngine {
            epoch: format!("m{:08x}", uuid::Uuid::new_v4().as_u128() as u32),
            started: Instant::now(),
            state: Mutex::new(State {
                next_offset: 1,
                ring: VecDeque::new(),
                ring_bytes: 0,
                seen: DedupeWindow::new(config.dedupe_window, config.dedupe_max_ids),
                subscribers: Vec::new(),
            }),
            config,
        }
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }
}

impl State {
    fn retain_within(&mut self, max_events: usize, max_bytes: usize) {
        while self.ring.len() > max_events || (self.ring_bytes > max_bytes && self.ring.len() > 1) {
            let old = self.ring.pop_front().expect("ring is not empty");
            self.ring_bytes -= old.json.len();
        }
    }

    fn first_offset(&self) -> u64 {
        self.ring.front().map_or(self.next_offset, |e| e.offset)
    }
}

#[async_trait]
impl Engine for MemoryEngine {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn publish(&self, mut event: NewEvent) -> Result<Accepted, EngineError> {
        let mut st = self.state.lock();
        let now = self.started.elapsed().as_millis() as u64;
        st.seen.expire(now, |_| {});
        let id = event.id().to_owned();
        let key = event.dedupe_key();
        if let Some(offset) = st.seen.get(&key) {
            return Ok(Accepted {
                id,
                seq: Position::format(&self.epoch, offset),
                duplicate: true,
            });
        }
        let offset = st.next_offset;
        st.next_offset += 1;
        let seq = Position::format(&self.epoch, offset);
        let json = event.encode(&seq);
        let ev = Arc::new(Event::new(
            offset,
            seq.clone(),
            id.clone(),
            event.topic,
            json,
        ));
        st.seen.insert(now, offset, key);
        st.ring_bytes += ev.json.len();
        st.ring.push_back(ev.clone());
        st.retain_within(self.config.max_events, self.config.max_bytes);
        // Sending under the lock keeps hand-off in offset order.
        st.subscribers.retain(|(pattern, tx)| {
            !pattern.matches(ev.topic.as_str()) || tx.send(ev.clone()).is_ok()
        });
        Ok(Accepted {
            id,
            seq,
            duplicate: false,
        })
    }

    async fn subscribe(&self, pattern: Pattern) -> Result<Subscription, EngineError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut st = self.state.lock();
        st.subscribers.push((pattern, tx));
        Ok(Subscription::lossless(
            rx,
            Position::format(&self.epoch, st.next_offset - 1),
        ))
    }

    async fn history(&self, query: HistoryQuery) -> Result<History, EngineError> {
        let since = query.since.as_deref().map(Position::parse).transpose()?;
        // Publishers need this lock: hold it only to copy out handles to the
        // events after `since` (one reference count each), and match them
        // against the patterns after letting go.
        let (candidates, recovered, after) = {
            let st = self.state.lock();
            let first = st.first_offset();
            let Some(Window {
                start,
                recovered,
                after,
            }) = Window::of(since.as_ref(), &self.epoch, first, st.next_offset - 1)
            else {
                return Ok(History::default());
            };
            let skip = (start - first) as usize;
            let candidates: Vec<Arc<Event>> = st.ring.range(skip..).cloned().collect();
            (candidates, recovered, after)
        };
        let mut events = Vec::new();
        let mut more = false;
        for (i, ev) in candidates.into_iter().enumerate() {
            // A long scan gives the runtime's threads back now and then, so
            // publishes and deliveries on the same thread are not held up.
            if i % 256 == 255 {
                tokio::task::yield_now().await;
            }
            if !query.patterns.iter().any(|p| p.matches(ev.topic.as_str())) {
                continue;
            }
            if events.len() == query.limit {
                more = true;
                break;
            }
            events.push(ev);
        }
        Ok(History {
            events,
            recovered,
            after,
            more,
        })
    }

    async fn ready(&self) -> Result<(), EngineError> {
        Ok(())
    }
}
