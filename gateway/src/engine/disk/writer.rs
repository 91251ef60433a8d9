//! The one writer of the store: a thread that group-commits publishes.
//!
//! Publishers queue their events; the writer takes everything queued, writes
//! it as one fjall batch (events, dedupe entries, evictions, counters) and,
//! under `--fsync always`, syncs once for the whole batch. Only then does it
//! hand the events to live subscribers and answer the publishers, so no
//! client ever sees or is acknowledged an event that a crash could lose.
//! Concurrent publishers therefore share one fsync, and the cost of a sync
//! is spread over as many events as arrive while the previous one runs.

use super::store::{self, Store};
use super::{DiskConfig, Fsync, Shared};
use crate::engine::dedupe::DedupeWindow;
use crate::engine::position::Position;
use crate::engine::{Accepted, EngineError, Event, NewEvent};
use fjall::PersistMode;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;

/// Events written in one batch, at most: bounds the latency a batch adds
/// to the publishers queued behind it.
const MAX_BATCH: usize = 1024;

/// How often an idle writer wakes to apply `--history-max-age` and the
/// dedupe window.
const TICK: Duration = Duration::from_millis(500);

/// Longest wait for the final flush at a clean stop.
const FLUSH_WITHIN: Duration = Duration::from_secs(10);

pub struct Request {
    pub event: NewEvent,
    pub reply: oneshot::Sender<Result<Accepted, EngineError>>,
}

pub struct Writer {
    pub store: Arc<Store>,
    pub shared: Arc<Shared>,
    pub config: DiskConfig,
    pub epoch: String,
    /// Accepted dedupe keys inside the window, timed by the wall clock
    /// stored beside each one.
    pub seen: DedupeWindow,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Writer {
    pub fn run(mut self, rx: Receiver<Vec<Request>>) {
        let tick = match self.config.fsync {
            Fsync::Interval(d) => d.min(TICK),
            _ => TICK,
        };
        let mut unsynced = false;
        let mut last_sync = Instant::now();
        loop {
            let mut batch = match rx.recv_timeout(tick) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => Vec::new(),
                Err(RecvTimeoutError::Disconnected) => break,
            };
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.extend(r),
                    Err(_) => break,
                }
            }
            if self.shared.broken().is_some() {
                for r in batch {
                    let _ = r.reply.send(Err(self.shared.unavailable()));
                }
                continue;
            }
            if self.commit(batch) {
                unsynced = true;
            }
            if let Fsync::Interval(d) = self.config.fsync
                && unsynced
                && last_sync.elapsed() >= d
            {
                if let Err(e) = self.store.db.persist(PersistMode::SyncAll) {
                    self.shared.break_with(format!("fsync failed: {e}"));
                }
                unsynced = false;
                last_sync = Instant::now();
            }
        }
        if let Err(e) = self.store.db.persist(PersistMode::SyncAll) {
            tracing::error!(error = %e, "disk engine: final fsync failed");
        }
        let started = Instant::now();
        match self.store.flush(FLUSH_WITHIN) {
            Ok(true) => tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                "disk engine: flushed for a quick next start"
            ),
            Ok(false) => tracing::warn!(
                "disk engine: the final flush did not finish in {} s; the next start replays the journal",
                FLUSH_WITHIN.as_secs()
            ),
            Err(e) => {
                tracing::warn!(error = %e, "disk engine: final flush failed; the next start replays the journal")
            }
        }
    }

    /// Writes one batch; returns whether anything was written.
    fn commit(&mut self, requests: Vec<Request>) -> bool {
        let now = now_ms();
        let db = &self.store.db;
        let mut batch = db.batch().durability(match self.config.fsync {
            Fsync::Always => Some(PersistMode::SyncAll),
            // Written to the operating system before the ack either way:
            // a crash of the gateway alone loses nothing.
            _ => Some(PersistMode::Buffer),
        });
        let mut wrote = false;

        // Forget ids that left the dedupe window. They go oldest first, so
        // every stored id below the last one forgotten is gone too: opening
        // starts reading there instead of stepping over their tombstones.
        let mut dedupe_from = None;
        self.seen.expire(now, |off| {
            batch.remove(&self.store.dedupe, off.to_be_bytes());
            dedupe_from = Some(off + 1);
            wrote = true;
        });
        if let Some(from) = dedupe_from {
            batch.insert(
                &self.store.meta,
                store::META_DEDUPE_FROM,
                from.to_be_bytes(),
            );
        }

        let (mut first, mut next, mut bytes) = self.shared.bounds();
        let batch_start = next;
        let mut replies = Vec::with_capacity(requests.len());
        let mut fresh: Vec<(Arc<Event>, Vec<u8>)> = Vec::new();
        for Request { mut event, reply } in requests {
            let key = event.dedupe_key();
            let id = event.id().to_owned();
            if let Some(off) = self.seen.get(&key) {
                replies.push((
                    reply,
                    Accepted {
                        id,
                        seq: Position::format(&self.epoch, off),
                        duplicate: true,
                    },
                ));
                continue;
            }
            let offset = next;
            next += 1;
            let seq = Position::format(&self.epoch, offset);
            let json = event.encode(&seq);
            let record = store::encode_record(now, event.topic.as_str(), &id, &json);
            let mut entry = now.to_be_bytes().to_vec();
            entry.extend_from_slice(key.as_bytes());
            batch.insert(&self.store.dedupe, offset.to_be_bytes(), entry);
            self.seen.insert(now, offset, key);
            bytes += json.len() as u64;
            let ev = Arc::new(Event::new(
                offset,
                seq.clone(),
                id.clone(),
                event.topic,
                json,
            ));
            fresh.push((ev, record));
            replies.push((
                reply,
                Accepted {
                    id,
                    seq,
                    duplicate: false,
                },
            ));
        }

        // Retention, before the batch is written, so the store never holds
        // more than the limits allow.
        let c = &self.config;
        let max_age = c.max_age.as_millis() as u64;
        loop {
            let count = next - first;
            if count == 0 {
                break;
            }
            let (ms, len) = if first >= batch_start {
                (now, fresh[(first - batch_start) as usize].0.json.len())
            } else {
                match self.store.events.get(first.to_be_bytes()) {
                    Ok(Some(rec)) => store::record_header(&rec).unwrap_or((now, 0)),
                    Ok(None) => (now, 0),
                    Err(e) => {
                        self.fail(replies, format!("reading for retention: {e}"));
                        return false;
                    }
                }
            };
            let over = (c.max_events > 0 && count > c.max_events as u64)
                || (c.max_bytes > 0 && bytes > c.max_bytes as u64 && count > 1)
                || (max_age > 0 && ms.saturating_add(max_age) < now);
            if !over {
                break;
            }
            if first < batch_start {
                batch.remove(&self.store.events, first.to_be_bytes());
            }
            bytes = bytes.saturating_sub(len as u64);
            first += 1;
            wrote = true;
        }
        for (ev, record) in &fresh {
            if ev.offset >= first {
                batch.insert(&self.store.events, ev.offset.to_be_bytes(), record.clone());
            }
        }
        if !fresh.is_empty() || wrote {
            batch.insert(&self.store.meta, store::META_FIRST, first.to_be_bytes());
            batch.insert(&self.store.meta, store::META_NEXT, next.to_be_bytes());
            batch.insert(&self.store.meta, store::META_BYTES, bytes.to_be_bytes());
            if let Err(e) = batch.commit() {
                self.fail(replies, format!("writing failed: {e}"));
                return false;
            }
        }
        // Durable: now subscribers may see the events and publishers hear back.
        self.shared
            .advance(first, next, bytes, fresh.into_iter().map(|(ev, _)| ev));
        for (reply, accepted) in replies {
            let _ = reply.send(Ok(accepted));
        }
        next > batch_start || wrote
    }

    /// A write failed: the store's state is unknown, so the engine stops
    /// taking publishes (`/readyz` fails) instead of acknowledging events
    /// it may not hold.
    fn fail(
        &self,
        replies: Vec<(oneshot::Sender<Result<Accepted, EngineError>>, Accepted)>,
        why: String,
    ) {
        tracing::error!(error = %why, "disk engine: the store failed; refusing publishes");
        self.shared.break_with(why);
        for (reply, _) in replies {
            let _ = reply.send(Err(self.shared.unavailable()));
        }
    }
}
