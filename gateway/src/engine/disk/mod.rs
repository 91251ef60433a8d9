//! The durable embedded engine: events on local disk, in a data directory
//! that one gateway owns.
//!
//! An event is acknowledged only once it is durable under `--fsync` (see
//! `writer`), and only then handed to live subscribers. Positions carry an
//! epoch stored in the data directory, so they stay valid across restarts:
//! a client resuming after a restart or a crash gets exactly what it
//! missed, `recovered: true`. The dedupe window is stored too, so a retry
//! across a restart is still recognised.

mod groups;
mod store;
mod writer;

pub use groups::DiskGroupStore;
pub use store::{FORMAT, Store};

use super::dedupe::DedupeWindow;
use super::position::{Position, Window};
use super::{Accepted, Engine, EngineError, Event, History, HistoryQuery, NewEvent, Subscription};
use async_trait::async_trait;
use eventwire_protocol::Pattern;
use parking_lot::Mutex;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, OnceLock, mpsc as std_mpsc};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// When a publish counts as durable (`--fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Synced to disk before the ack; concurrent publishers share a sync.
    Always,
    /// Written to the OS before the ack, synced at least this often: a
    /// machine crash may lose up to this much, a gateway crash nothing.
    Interval(Duration),
    /// Written to the OS before the ack, synced when the OS decides (and at
    /// shutdown): a gateway crash loses nothing, a machine crash may.
    Never,
}

impl FromStr for Fsync {
    type Err = String;

    fn from_str(s: &str) -> Result<Fsync, String> {
        match s {
            "always" => Ok(Fsync::Always),
            "never" => Ok(Fsync::Never),
            _ => match s.strip_prefix("interval:").map(humantime::parse_duration) {
                Some(Ok(d)) if !d.is_zero() => Ok(Fsync::Interval(d)),
                _ => Err(
                    "expected always, never or interval:<duration> (e.g. interval:100ms)".into(),
                ),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct DiskConfig {
    pub dir: PathBuf,
    pub fsync: Fsync,
    /// Retention; 0 means no limit of that kind.
    pub max_events: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
    pub dedupe_window: Duration,
    /// Ids remembered at most, whatever the window, to bound memory.
    pub dedupe_max_ids: usize,
}

impl DiskConfig {
    pub fn new(dir: impl Into<PathBuf>) -> DiskConfig {
        DiskConfig {
            dir: dir.into(),
            fsync: Fsync::Always,
            max_events: 10_000,
            max_bytes: 64 * 1024 * 1024,
            max_age: Duration::ZERO,
            dedupe_window: Duration::from_secs(120),
            dedupe_max_ids: 100_000,
        }
    }
}

/// State the writer and the readers share.
pub(crate) struct Shared {
    state: Mutex<State>,
    broken: OnceLock<String>,
}

struct State {
    /// Retained events are the offsets `first..next`.
    first: u64,
    next: u64,
    bytes: u64,
    subscribers: Vec<(Pattern, mpsc::UnboundedSender<Arc<Event>>)>,
}

impl Shared {
    fn bounds(&self) -> (u64, u64, u64) {
        let st = self.state.lock();
        (st.first, st.next, st.bytes)
    }

    /// Publishes a written batch: new bounds, then the events to live
    /// subscribers, under one lock so a subscription sees each event
    /// exactly once, either in history or live.
    fn advance(&self, first: u64, next: u64, bytes: u64, events: impl Iterator<Item = Arc<Event>>) {
        let mut st = self.state.lock();
        st.first = first;
        st.next = next;
        st.bytes = bytes;
        for ev in events {
            st.subscribers.retain(|(pattern, tx)| {
                !pattern.matches(ev.topic.as_str()) || tx.send(ev.clone()).is_ok()
            });
        }
    }

    fn broken(&self) -> Option<&String> {
        self.broken.get()
    }

    fn break_with(&self, why: String) {
        let _ = self.broken.set(why);
    }

    fn unavailable(&self) -> EngineError {
        EngineError::Unavailable(format!(
            "the disk store failed ({}); restart the gateway",
            self.broken().map_or("unknown", String::as_str)
        ))
    }
}

pub struct DiskEngine {
    epoch: String,
    store: Arc<Store>,
    shared: Arc<Shared>,
    /// Each entry is one publish or one whole batch.
    queue: Option<std_mpsc::Sender<Vec<writer::Request>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DiskEngine {
    /// Opens the data directory (creating it when new) and recovers its
    /// state. Blocking: call it at startup.
    pub fn open(config: DiskConfig) -> Result<DiskEngine, EngineError> {
        let started = std::time::Instant::now();
        let store = Arc::new(Store::open(&config.dir)?);
        if store.torn_bytes > 0 {
            tracing::warn!(
                torn_bytes = store.torn_bytes,
                dir = %config.dir.display(),
                "disk engine: dropped a torn last write ({} bytes) left by a crash; it was never acknowledged",
                store.torn_bytes
            );
        }
        // Handles made before the recorder exists would count nothing.
        crate::metrics::recorder();
        metrics::counter!("eventwire_disk_torn_bytes_total").increment(store.torn_bytes);
        let epoch = match store.meta.get(store::META_EPOCH).map_err(store::io)? {
            Some(e) => String::from_utf8_lossy(&e).into_owned(),
            None => {
                let epoch = format!("d{:08x}", uuid::Uuid::new_v4().as_u128() as u32);
                let mut batch = store
                    .db
                    .batch()
                    .durability(Some(fjall::PersistMode::SyncAll));
                batch.insert(&store.meta, store::META_EPOCH, epoch.as_bytes());
                batch.commit().map_err(store::io)?;
                epoch
            }
        };
        let mut next = store.meta_u64(store::META_NEXT)?.unwrap_or(1);
        let bytes = store.meta_u64(store::META_BYTES)?.unwrap_or(0);
        let key_of = |g: fjall::Guard| g.key().map(|k| store::be_u64(&k)).map_err(store::io);
        if let Some(last) = store.events.last_key_value().map(key_of).transpose()? {
            next = next.max(last + 1);
        }
        // Data dirs written before `first` was stored find it by a scan.
        let first = match store.meta_u64(store::META_FIRST)? {
            Some(first) => first.min(next),
            None => match store.events.first_key_value() {
                Some(g) => key_of(g)?,
                None => next,
            },
        };
        let store_ms = started.elapsed().as_millis() as u64;
        let mut seen = DedupeWindow::new(config.dedupe_window, config.dedupe_max_ids);
        let dedupe_from = store.meta_u64(store::META_DEDUPE_FROM)?.unwrap_or(0);
        for item in store.dedupe.range(dedupe_from.to_be_bytes()..) {
            let (k, v) = item.into_inner().map_err(store::io)?;
            if v.len() < 8 {
                continue;
            }
            let offset = store::be_u64(&k);
            let key = String::from_utf8_lossy(&v[8..]).into_owned();
            seen.insert(store::be_u64(&v[..8]), offset, key);
        }
        tracing::info!(
            dir = %config.dir.display(),
            events = next - first,
            ids = seen.len(),
            store_ms,
            ms = started.elapsed().as_millis() as u64,
            "disk engine: data dir open"
        );
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                first,
                next,
                bytes,
                subscribers: Vec::new(),
            }),
            broken: OnceLock::new(),
        });
        let (queue, rx) = std_mpsc::channel();
        let w = writer::Writer {
            store: store.clone(),
            shared: shared.clone(),
            config,
            epoch: epoch.clone(),
            seen,
        };
        let thread = std::thread::Builder::new()
            .name("eventwire-disk-writer".into())
            .spawn(move || w.run(rx))
            .map_err(store::io)?;
        Ok(DiskEngine {
            epoch,
            store,
            shared,
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The store, for state that must live beside the events (e.g. consumer
    /// groups): open a keyspace with [`Store::keyspace`].
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn read(&self, w: Window, next: u64, query: &HistoryQuery) -> Result<History, EngineError> {
        let mut history = History {
            events: Vec::new(),
            recovered: w.recovered,
            after: w.after,
            more: false,
        };
        if w.start >= next {
            return Ok(history);
        }
        for item in self
            .store
            .events
            .range(w.start.to_be_bytes()..next.to_be_bytes())
        {
            let (k, v) = item.into_inner().map_err(store::io)?;
            let offset = store::be_u64(&k);
            let seq = Position::format(&self.epoch, offset);
            let Some(ev) = store::decode_record(offset, seq, &v) else {
                continue;
            };
            if !query.patterns.iter().any(|p| p.matches(ev.topic.as_str())) {
                continue;
            }
            if history.events.len() == query.limit {
                history.more = true;
                break;
            }
            history.events.push(Arc::new(ev));
        }
        Ok(history)
    }
}

impl Drop for DiskEngine {
    /// Lets the writer finish what is queued and sync, so the next open of
    /// the directory (in this process too) finds everything and the lock
    /// free.
    fn drop(&mut self) {
        self.queue.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[async_trait]
impl Engine for DiskEngine {
    fn name(&self) -> &'static str {
        "disk"
    }

    async fn publish(&self, event: NewEvent) -> Result<Accepted, EngineError> {
        if self.shared.broken().is_some() {
            return Err(self.shared.unavailable());
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .as_ref()
            .and_then(|q| q.send(vec![writer::Request { event, reply }]).ok())
            .ok_or_else(|| self.shared.unavailable())?;
        answer.await.map_err(|_| self.shared.unavailable())?
    }

    /// One queue entry for the whole batch: its events are written (and
    /// synced) together, in order.
    async fn publish_batch(&self, events: Vec<NewEvent>) -> Vec<Result<Accepted, EngineError>> {
        if self.shared.broken().is_some() {
            return vec![Err(self.shared.unavailable())];
        }
        let (requests, answers): (Vec<_>, Vec<_>) = events
            .into_iter()
            .map(|event| {
                let (reply, answer) = oneshot::channel();
                (writer::Request { event, reply }, answer)
            })
            .unzip();
        if self
            .queue
            .as_ref()
            .and_then(|q| q.send(requests).ok())
            .is_none()
        {
            return vec![Err(self.shared.unavailable())];
        }
        let mut out = Vec::with_capacity(answers.len());
        for answer in answers {
            let r = answer
                .await
                .unwrap_or_else(|_| Err(self.shared.unavailable()));
            let failed = r.is_err();
            out.push(r);
            if failed {
                break;
            }
        }
        out
    }

    async fn subscribe(&self, pattern: Pattern) -> Result<Subscription, EngineError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut st = self.shared.state.lock();
        st.subscribers.push((pattern, tx));
        Ok(Subscription::lossless(
            rx,
            Position::format(&self.epoch, st.next - 1),
        ))
    }

    async fn history(&self, query: HistoryQuery) -> Result<History, EngineError> {
        let since = query.since.as_deref().map(Position::parse).transpose()?;
        let (first, next, _) = self.shared.bounds();
        let Some(w) = Window::of(since.as_ref(), &self.epoch, first, next - 1) else {
            return Ok(History::default());
        };
        // Inline: a page is a short range scan, mostly from fjall's cache.
        let mut history = self.read(w, next, &query)?;
        // Retention may have evicted from under the read: then events
        // may be missing, and the reader must be told.
        if since.is_some() && history.recovered && self.shared.bounds().0 > w.start {
            history.recovered = false;
        }
        Ok(history)
    }

    async fn ready(&self) -> Result<(), EngineError> {
        match self.shared.broken() {
            Some(_) => Err(self.shared.unavailable()),
            None => Ok(()),
        }
    }
}
