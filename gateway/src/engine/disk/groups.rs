//! Consumer-group state on the disk engine: a [`GroupStore`] in the engine's
//! own database, so a group's cursor, pending deliveries and dead letters
//! survive a restart, SIGKILL included.
//!
//! The store keeps the group's current state, not its history of changes:
//! `record` applies the changes to a mirror of the group's ledger (with the
//! same [`Ledger::apply`] the group uses) and writes what they touched, as
//! one batch, to the OS. Under `--fsync always` the group's `sync` (before
//! it answers) syncs, once for every request recorded meanwhile. So nothing
//! needs compacting, loading is one scan, and an answered request is
//! durable as an acknowledged publish is.
//!
//! Keyspace `groups`, keys prefixed by the group name and a zero byte
//! (names are topics, so no name is a prefix of another's key):
//!
//! ```text
//! <name> 0 'h'             header: config, incarnation, cursor, counters (JSON)
//! <name> 0 'p' <offset BE> a pending delivery, its event included
//! <name> 0 'd' <offset BE> a dead letter, its event included
//! ```
//!
//! Events are stored with the delivery, so a pending event or dead letter
//! outlives the engine's retention of it.

use super::Fsync;
use super::store::{self, Store};
use crate::engine::{EngineError, Event};
use crate::groups::config::{GroupConfig, Start};
use crate::groups::ledger::{Change, DeadLetter, Ledger, MAX_DEAD, Pending, Stage};
use crate::groups::{GroupStore, StoredGroup};
use eventwire_protocol::Pattern;
use fjall::{Keyspace, PersistMode};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const HEADER: u8 = b'h';
const PENDING: u8 = b'p';
const DEAD: u8 = b'd';

pub struct DiskGroupStore {
    store: Arc<Store>,
    groups: Keyspace,
    /// `--fsync always`: `sync` syncs; otherwise changes are written to the
    /// OS by `record` and synced with the events.
    always: bool,
    /// Changes recorded so far, and how many of them a sync has covered:
    /// a `sync` that finds its changes covered by one that ran meanwhile
    /// returns without syncing again (group commit).
    recorded: AtomicU64,
    synced: Mutex<u64>,
    /// Each group's ledger as the store holds it, to know what a change
    /// leaves behind without reading it back.
    mirrors: Mutex<HashMap<String, Arc<Mutex<Mirror>>>>,
    /// Set when a write failed: the mirror may then be ahead of the disk,
    /// so every later change is refused rather than written from it.
    broken: OnceLock<String>,
}

struct Mirror {
    incarnation: String,
    config: StoredConfig,
    ledger: Ledger,
}

/// A group's configuration exactly as it was accepted (not re-checked on
/// load: a group made within other limits, e.g. by webhooks, loads too).
#[derive(Clone, Serialize, Deserialize)]
struct StoredConfig {
    topics: Vec<String>,
    ack_wait_ms: u64,
    max_deliver: u32,
    start: String,
    max_inflight: u32,
    backoff_ms: Vec<u64>,
}

impl StoredConfig {
    fn of(c: &GroupConfig) -> StoredConfig {
        StoredConfig {
            topics: c.topics.iter().map(|p| p.as_str().to_owned()).collect(),
            ack_wait_ms: c.ack_wait.as_millis() as u64,
            max_deliver: c.max_deliver,
            start: c.start.as_str().to_owned(),
            max_inflight: c.max_inflight,
            backoff_ms: c.backoff.iter().map(|d| d.as_millis() as u64).collect(),
        }
    }

    fn config(&self) -> Option<GroupConfig> {
        Some(GroupConfig {
            topics: self
                .topics
                .iter()
                .map(|t| Pattern::parse(t).ok())
                .collect::<Option<_>>()?,
            ack_wait: Duration::from_millis(self.ack_wait_ms),
            max_deliver: self.max_deliver,
            start: Start::parse(Some(&self.start)),
            max_inflight: self.max_inflight,
            backoff: self
                .backoff_ms
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
        })
        .filter(|c| !c.topics.is_empty() && !c.backoff.is_empty())
    }
}

/// The header, as stored.
#[derive(Serialize, Deserialize)]
struct Header {
    config: StoredConfig,
    incarnation: String,
    cursor: Option<String>,
    next_delivery: u64,
    delivered: u64,
    redelivered: u64,
    acked: u64,
    dead_total: u64,
    dead_dropped: u64,
    gaps: u64,
    missed: u64,
}

impl DiskGroupStore {
    /// Opens the `groups` keyspace of the engine's store. Writes are synced
    /// before they return under `--fsync always`, and otherwise written to
    /// the OS and synced with the events (the engine's writer syncs the
    /// whole database).
    pub fn open(store: Arc<Store>, fsync: Fsync) -> Result<DiskGroupStore, EngineError> {
        let groups = store.keyspace("groups")?;
        Ok(DiskGroupStore {
            store,
            groups,
            always: fsync == Fsync::Always,
            recorded: AtomicU64::new(0),
            synced: Mutex::new(0),
            mirrors: Mutex::new(HashMap::new()),
            broken: OnceLock::new(),
        })
    }

    fn check(&self) -> Result<(), EngineError> {
        match self.broken.get() {
            Some(why) => Err(EngineError::Unavailable(format!(
                "the group store failed ({why}); restart the gateway"
            ))),
            None => Ok(()),
        }
    }

    fn commit(&self, batch: fjall::OwnedWriteBatch) -> Result<(), EngineError> {
        batch.commit().map_err(|e| {
            let why = format!("writing group state failed: {e}");
            tracing::error!(error = %why, "disk engine: refusing group changes");
            let _ = self.broken.set(why.clone());
            EngineError::Unavailable(why)
        })
    }

    /// A batch written to the OS when committed: a gateway crash loses
    /// none of it; a machine crash may, until the next sync.
    fn batch(&self) -> fjall::OwnedWriteBatch {
        self.store.db.batch().durability(Some(PersistMode::Buffer))
    }

    /// Commits, then syncs at once: for `create` and `remove`, which are
    /// rare and answered straight after.
    fn commit_synced(&self, batch: fjall::OwnedWriteBatch) -> Result<(), EngineError> {
        self.commit(batch)?;
        self.recorded.fetch_add(1, Ordering::SeqCst);
        self.sync()
    }
}

fn key(name: &str, kind: u8, offset: Option<u64>) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 10);
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k.push(kind);
    if let Some(o) = offset {
        k.extend_from_slice(&o.to_be_bytes());
    }
    k
}

fn header(m: &Mirror) -> Vec<u8> {
    let l = &m.ledger;
    serde_json::to_vec(&Header {
        config: m.config.clone(),
        incarnation: m.incarnation.clone(),
        cursor: l.cursor.clone(),
        next_delivery: l.next_delivery,
        delivered: l.delivered,
        redelivered: l.redelivered,
        acked: l.acked,
        dead_total: l.dead_total,
        dead_dropped: l.dead_dropped,
        gaps: l.gaps,
        missed: l.missed,
    })
    .expect("a header always serializes")
}

/// The offsets a change may touch: its own, and for a new dead letter the
/// oldest one when the ledger holds as many as it keeps (it drops it).
fn touches(l: &Ledger, c: &Change, out: &mut Vec<u64>) {
    match c {
        Change::Cursor(_) | Change::Gap { .. } => {}
        Change::Deliver { event, .. } => out.push(event.offset),
        Change::Wait { offset, .. }
        | Change::Extend { offset, .. }
        | Change::Ack { offset }
        | Change::Redrive { offset, .. } => out.push(*offset),
        Change::Dead { offset, .. } => {
            out.push(*offset);
            if l.dead.len() >= MAX_DEAD {
                out.extend(l.dead.keys().next().copied());
            }
        }
    }
}

impl GroupStore for DiskGroupStore {
    fn load(&self) -> Result<Vec<StoredGroup>, EngineError> {
        let mut found: BTreeMap<String, (Option<Header>, Ledger)> = BTreeMap::new();
        for item in self.groups.iter() {
            let (k, v) = item.into_inner().map_err(store::io)?;
            let bad = || EngineError::Unavailable(format!("group store: unreadable key {k:?}"));
            let zero = k.iter().position(|&b| b == 0).ok_or_else(bad)?;
            let name = std::str::from_utf8(&k[..zero]).map_err(|_| bad())?;
            let kind = *k.get(zero + 1).ok_or_else(bad)?;
            let offset = k.get(zero + 2..).map(store::be_u64).unwrap_or(0);
            let (head, ledger) = found.entry(name.to_owned()).or_default();
            let unreadable = || {
                EngineError::Unavailable(format!(
                    "group store: unreadable state of group {name} (offset {offset})"
                ))
            };
            match kind {
                HEADER => {
                    *head = Some(serde_json::from_slice(&v).map_err(|_| unreadable())?);
                }
                PENDING => {
                    let p = decode_pending(offset, &v).ok_or_else(unreadable)?;
                    ledger.restore(offset, p);
                }
                DEAD => {
                    let d = decode_dead(offset, &v).ok_or_else(unreadable)?;
                    ledger.dead.insert(offset, d);
                }
                _ => return Err(bad()),
            }
        }
        let mut out = Vec::with_capacity(found.len());
        let mut mirrors = self.mirrors.lock();
        mirrors.clear();
        for (name, (head, mut ledger)) in found {
            // A header is written first and removed last: without one, the
            // rest is left over from a removal cut short.
            let Some(h) = head else { continue };
            let config = h.config.config().ok_or_else(|| {
                EngineError::Unavailable(format!(
                    "group store: the configuration of group {name} is unreadable"
                ))
            })?;
            ledger.cursor = h.cursor;
            ledger.next_delivery = h.next_delivery;
            ledger.delivered = h.delivered;
            ledger.redelivered = h.redelivered;
            ledger.acked = h.acked;
            ledger.dead_total = h.dead_total;
            ledger.dead_dropped = h.dead_dropped;
            ledger.gaps = h.gaps;
            ledger.missed = h.missed;
            mirrors.insert(
                name.clone(),
                Arc::new(Mutex::new(Mirror {
                    incarnation: h.incarnation.clone(),
                    config: h.config,
                    ledger: ledger.clone(),
                })),
            );
            out.push(StoredGroup {
                name,
                config,
                incarnation: h.incarnation,
                ledger,
            });
        }
        Ok(out)
    }

    fn create(&self, group: &StoredGroup) -> Result<(), EngineError> {
        self.check()?;
        let mirror = Mirror {
            incarnation: group.incarnation.clone(),
            config: StoredConfig::of(&group.config),
            ledger: group.ledger.clone(),
        };
        let mut batch = self.batch();
        batch.insert(
            &self.groups,
            key(&group.name, HEADER, None),
            header(&mirror),
        );
        for (offset, p) in &group.ledger.pending {
            let k = key(&group.name, PENDING, Some(*offset));
            batch.insert(&self.groups, k, encode_pending(p));
        }
        for (offset, d) in &group.ledger.dead {
            batch.insert(
                &self.groups,
                key(&group.name, DEAD, Some(*offset)),
                encode_dead(d),
            );
        }
        self.commit(batch)?;
        self.mirrors
            .lock()
            .insert(group.name.clone(), Arc::new(Mutex::new(mirror)));
        Ok(())
    }

    fn record(&self, name: &str, changes: &[Change]) -> Result<(), EngineError> {
        self.check()?;
        let mirror = self.mirrors.lock().get(name).cloned().ok_or_else(|| {
            EngineError::Unavailable(format!("group {name} is not in the group store"))
        })?;
        let mut m = mirror.lock();
        // Whether each touched offset was pending / dead before the changes.
        let mut before: BTreeMap<u64, (bool, bool)> = BTreeMap::new();
        let mut touched = Vec::new();
        for c in changes {
            touched.clear();
            touches(&m.ledger, c, &mut touched);
            for &o in &touched {
                before.entry(o).or_insert_with(|| {
                    (
                        m.ledger.pending.contains_key(&o),
                        m.ledger.dead.contains_key(&o),
                    )
                });
            }
            m.ledger.apply(c);
        }
        let mut batch = self.batch();
        for (&offset, &(was_pending, was_dead)) in &before {
            let pk = key(name, PENDING, Some(offset));
            match m.ledger.pending.get(&offset) {
                Some(p) => batch.insert(&self.groups, pk, encode_pending(p)),
                None if was_pending => batch.remove(&self.groups, pk),
                None => {}
            }
            let dk = key(name, DEAD, Some(offset));
            match m.ledger.dead.get(&offset) {
                Some(d) => batch.insert(&self.groups, dk, encode_dead(d)),
                None if was_dead => batch.remove(&self.groups, dk),
                None => {}
            }
        }
        batch.insert(&self.groups, key(name, HEADER, None), header(&m));
        self.commit(batch)?;
        self.recorded.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn sync(&self) -> Result<(), EngineError> {
        if !self.always {
            return Ok(());
        }
        let want = self.recorded.load(Ordering::SeqCst);
        let mut synced = self.synced.lock();
        if *synced >= want {
            return Ok(());
        }
        let covers = self.recorded.load(Ordering::SeqCst);
        self.store.db.persist(PersistMode::SyncAll).map_err(|e| {
            let why = format!("syncing group state failed: {e}");
            tracing::error!(error = %why, "disk engine: refusing group changes");
            let _ = self.broken.set(why.clone());
            EngineError::Unavailable(why)
        })?;
        *synced = covers;
        Ok(())
    }

    fn remove(&self, name: &str) -> Result<(), EngineError> {
        self.check()?;
        let mut batch = self.batch();
        let mut head = Vec::new();
        head.extend_from_slice(name.as_bytes());
        head.push(0);
        for item in self.groups.prefix(&head) {
            let k = item.key().map_err(store::io)?;
            batch.remove(&self.groups, k);
        }
        self.commit_synced(batch)?;
        self.mirrors.lock().remove(name);
        Ok(())
    }
}

/// Appends `bytes` with a u32 length before it.
fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Reads what [`put`] wrote, advancing `rest`.
fn take<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let bytes = rest.get(4..4 + len)?;
    *rest = &rest[4 + len..];
    Some(bytes)
}

fn take_u64(rest: &mut &[u8]) -> Option<u64> {
    let v = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    *rest = &rest[8..];
    Some(v)
}

fn take_u32(rest: &mut &[u8]) -> Option<u32> {
    let v = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    *rest = &rest[4..];
    Some(v)
}

/// The event: its seq, then the engine's record (topic, id, JSON).
fn put_event(out: &mut Vec<u8>, ev: &Event) {
    put(out, ev.seq.as_bytes());
    out.extend(store::encode_record(0, ev.topic.as_str(), &ev.id, &ev.json));
}

fn take_event(offset: u64, rest: &[u8]) -> Option<Arc<Event>> {
    let mut rest = rest;
    let seq = std::str::from_utf8(take(&mut rest)?).ok()?.to_owned();
    store::decode_record(offset, seq, rest).map(Arc::new)
}

/// `[attempt u32][delivery u64, 0: none][stage: 'o' deadline | 'w' until]
/// [reason flag u8][reason][event]`.
fn encode_pending(p: &Pending) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.event.json.len() + 96);
    out.extend_from_slice(&p.attempt.to_be_bytes());
    out.extend_from_slice(&p.delivery.unwrap_or(0).to_be_bytes());
    let (tag, at) = match p.stage {
        Stage::Out { deadline } => (b'o', deadline),
        Stage::Waiting { until } => (b'w', until),
    };
    out.push(tag);
    out.extend_from_slice(&at.to_be_bytes());
    out.push(p.reason.is_some() as u8);
    put(&mut out, p.reason.as_deref().unwrap_or_default().as_bytes());
    put_event(&mut out, &p.event);
    out
}

fn decode_pending(offset: u64, v: &[u8]) -> Option<Pending> {
    let mut rest = v;
    let attempt = take_u32(&mut rest)?;
    let delivery = Some(take_u64(&mut rest)?).filter(|d| *d != 0);
    let tag = *rest.first()?;
    rest = &rest[1..];
    let at = take_u64(&mut rest)?;
    let stage = match tag {
        b'o' => Stage::Out { deadline: at },
        b'w' => Stage::Waiting { until: at },
        _ => return None,
    };
    let has_reason = *rest.first()? == 1;
    rest = &rest[1..];
    let reason = std::str::from_utf8(take(&mut rest)?).ok()?.to_owned();
    Some(Pending {
        event: take_event(offset, rest)?,
        attempt,
        delivery,
        stage,
        reason: has_reason.then_some(reason),
    })
}

/// `[attempts u32][at u64][reason][event]`.
fn encode_dead(d: &DeadLetter) -> Vec<u8> {
    let mut out = Vec::with_capacity(d.event.json.len() + 96);
    out.extend_from_slice(&d.attempts.to_be_bytes());
    out.extend_from_slice(&d.at.to_be_bytes());
    put(&mut out, d.reason.as_bytes());
    put_event(&mut out, &d.event);
    out
}

fn decode_dead(offset: u64, v: &[u8]) -> Option<DeadLetter> {
    let mut rest = v;
    let attempts = take_u32(&mut rest)?;
    let at = take_u64(&mut rest)?;
    let reason = std::str::from_utf8(take(&mut rest)?).ok()?.to_owned();
    Some(DeadLetter {
        event: take_event(offset, rest)?,
        attempts,
        reason,
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::config::GroupSpec;

    fn config() -> GroupConfig {
        serde_json::from_str::<GroupSpec>(
            r#"{"topics":["a.>","b.*"],"ack_wait":"7s","start":"earliest","backoff":["1s","250ms"]}"#,
        )
        .unwrap()
        .check(16)
        .unwrap()
    }

    /// What a ledger holds, comparable.
    fn summary(l: &Ledger) -> String {
        let pending: Vec<_> = l
            .pending
            .iter()
            .map(|(o, p)| {
                let json = String::from_utf8_lossy(&p.event.json).into_owned();
                (
                    *o,
                    p.attempt,
                    p.delivery,
                    p.stage,
                    p.reason.clone(),
                    p.event.seq.clone(),
                    json,
                )
            })
            .collect();
        let dead: Vec<_> = l
            .dead
            .iter()
            .map(|(o, d)| (*o, d.attempts, d.reason.clone(), d.at, d.event.id.clone()))
            .collect();
        let mut deliveries: Vec<_> = l.deliveries.iter().collect();
        deliveries.sort();
        format!(
            "{:?} {} {pending:?} {:?} {deliveries:?} {dead:?} {:?}",
            l.cursor,
            l.next_delivery,
            l.timers,
            (
                l.delivered,
                l.redelivered,
                l.acked,
                l.dead_total,
                l.dead_dropped,
                l.gaps,
                l.missed
            )
        )
    }

    #[test]
    fn a_reopened_store_loads_what_the_changes_made() {
        let dir =
            std::env::temp_dir().join(format!("eventwire-disk-groups-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let deliver = |offset: u64, attempt: u32, delivery: u64| Change::Deliver {
            event: Event::sample(offset, "a.b"),
            attempt,
            delivery,
            deadline: 1000 + offset,
        };
        let changes = vec![
            vec![
                Change::Cursor(Some("d1-3".into())),
                deliver(1, 1, 1),
                deliver(2, 1, 2),
                deliver(3, 1, 3),
            ],
            vec![Change::Ack { offset: 1 }],
            vec![Change::Wait {
                offset: 2,
                until: 5000,
                reason: Some("busy".into()),
                release: true,
            }],
            vec![
                Change::Extend {
                    offset: 3,
                    deadline: 9000,
                },
                Change::Gap { missed: 4 },
            ],
            vec![
                deliver(2, 2, 4),
                Change::Dead {
                    offset: 2,
                    reason: "poison".into(),
                    at: 6000,
                },
            ],
            vec![
                Change::Redrive {
                    offset: 2,
                    at: 7000,
                },
                deliver(4, 1, 5),
            ],
            vec![Change::Dead {
                offset: 4,
                reason: "bad".into(),
                at: 8000,
            }],
        ];
        let mut reference = Ledger::new(None);
        {
            let store = Arc::new(Store::open(&dir).unwrap());
            let groups = DiskGroupStore::open(store, Fsync::Always).unwrap();
            let group = StoredGroup {
                name: "g.one".into(),
                config: config(),
                incarnation: "gabc".into(),
                ledger: Ledger::new(None),
            };
            groups.create(&group).unwrap();
            // A second group whose name is a prefix of the first's.
            groups
                .create(&StoredGroup {
                    name: "g".into(),
                    ..group
                })
                .unwrap();
            for batch in &changes {
                groups.record("g.one", batch).unwrap();
                for c in batch {
                    reference.apply(c);
                }
            }
            groups.record("g", &changes[0]).unwrap();
        }
        let store = Arc::new(Store::open(&dir).unwrap());
        let groups = DiskGroupStore::open(store, Fsync::Never).unwrap();
        let loaded = groups.load().unwrap();
        assert_eq!(loaded.len(), 2);
        let one = loaded.iter().find(|g| g.name == "g.one").unwrap();
        assert_eq!(one.incarnation, "gabc");
        assert_eq!(one.config, config());
        assert_eq!(summary(&one.ledger), summary(&reference));
        assert_eq!(one.ledger.pending.len(), 2, "3 out again, 2 redriven");
        assert_eq!(one.ledger.dead.len(), 1);
        let g = loaded.iter().find(|g| g.name == "g").unwrap();
        assert_eq!(g.ledger.pending.len(), 3);

        // Changes after a reload build on what was loaded.
        groups
            .record("g.one", &[Change::Ack { offset: 3 }])
            .unwrap();
        reference.apply(&Change::Ack { offset: 3 });
        groups.remove("g").unwrap();
        drop(groups);
        let store = Arc::new(Store::open(&dir).unwrap());
        let loaded = DiskGroupStore::open(store, Fsync::Never)
            .unwrap()
            .load()
            .unwrap();
        assert_eq!(loaded.len(), 1, "the removed group is gone");
        assert_eq!(summary(&loaded[0].ledger), summary(&reference));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
