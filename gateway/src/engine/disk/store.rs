//! The data directory: its format marker, its lock, and the fjall database
//! inside it, with the record layout of each keyspace.
//!
//! ```text
//! <data-dir>/FORMAT   "eventwire-disk 1": refused when it says anything else
//! <data-dir>/LOCK     held (flock) while a gateway has the directory open
//! <data-dir>/store/   the fjall database
//! ```
//!
//! Keyspaces: `events` (offset → record), `dedupe` (offset → time and
//! dedupe key of an id still remembered), `meta` (epoch, first and next
//! offset, retained bytes, where stored dedupe ids start), `groups`
//! (consumer-group state, `groups.rs`). Every write the engine makes is one fjall batch, so
//! these keyspaces change together or not at all.

use crate::engine::EngineError;
use crate::engine::Event;
use bytes::Bytes;
use eventwire_protocol::Topic;
use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// What `FORMAT` holds for the layout this code reads and writes.
pub const FORMAT: &str = "eventwire-disk 1";

pub const META_EPOCH: &[u8] = b"epoch";
pub const META_NEXT: &[u8] = b"next";
pub const META_BYTES: &[u8] = b"bytes";
/// The oldest retained offset: evicted events leave tombstones at the
/// front of `events` that finding the first key would step over.
pub const META_FIRST: &[u8] = b"first";
/// No dedupe entry below this offset is still stored.
pub const META_DEDUPE_FROM: &[u8] = b"dedupe_from";

/// Journal bytes kept at most before fjall flushes the keyspaces that pin
/// the oldest journal (fjall's least). Opening after a crash replays what
/// the journals hold, about 80 MB/s here, and the small keyspaces (`meta`,
/// `dedupe`) would otherwise pin fjall's default of 512 MiB.
const MAX_JOURNALS: u64 = 64 * 1024 * 1024;

/// An open data directory. Holding it holds the lock.
pub struct Store {
    pub db: Database,
    pub events: Keyspace,
    pub dedupe: Keyspace,
    pub meta: Keyspace,
    /// Bytes of a torn last write that recovery dropped from the journal.
    pub torn_bytes: u64,
    _lock: File,
}

fn refuse(dir: &Path, why: impl std::fmt::Display) -> EngineError {
    EngineError::Unavailable(format!("data dir {}: {why}", dir.display()))
}

impl Store {
    /// Opens (or creates) the data directory. Refuses one of another format,
    /// one that is not empty and has no `FORMAT` marker, and one another
    /// gateway holds; in each case nothing in it is written.
    pub fn open(dir: &Path) -> Result<Store, EngineError> {
        std::fs::create_dir_all(dir).map_err(|e| refuse(dir, e))?;
        let marker = dir.join("FORMAT");
        match std::fs::read_to_string(&marker) {
            Ok(found) if found.trim_end() == FORMAT => {}
            Ok(found) => {
                let shown: String = found.trim_end().chars().take(64).collect();
                return Err(refuse(
                    dir,
                    format!(
                        "has format \"{shown}\", and this gateway reads only \"{FORMAT}\"; \
                         run the gateway version that wrote it, or point --data-dir elsewhere \
                         (nothing was changed)"
                    ),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut entries = std::fs::read_dir(dir).map_err(|e| refuse(dir, e))?;
                if entries.next().is_some() {
                    return Err(refuse(
                        dir,
                        "is not empty and has no FORMAT file, so it is not an eventwire data \
                         dir; point --data-dir at an empty or new directory (nothing was changed)",
                    ));
                }
                write_synced(&marker, format!("{FORMAT}\n").as_bytes())
                    .map_err(|e| refuse(dir, e))?;
            }
            Err(e) => return Err(refuse(dir, e)),
        }
        let lock = lock(dir)?;
        let store_dir = dir.join("store");
        let written = journals(&store_dir)
            .into_iter()
            .map(|p| {
                let end = written_end(&p).unwrap_or(0);
                (p, end)
            })
            .collect::<Vec<_>>();
        let db = Database::builder(&store_dir)
            .max_journaling_size(MAX_JOURNALS)
            .open()
            .map_err(|e| refuse(dir, format!("cannot open the store: {e}")))?;
        // Recovery cuts a journal back to its last whole batch: whatever was
        // written past that point was a torn write.
        let torn_bytes = written
            .iter()
            .filter_map(|(p, end)| Some(end.saturating_sub(std::fs::metadata(p).ok()?.len())))
            .sum();
        let open = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(|e| refuse(dir, format!("cannot open keyspace {name}: {e}")))
        };
        Ok(Store {
            events: open("events")?,
            dedupe: open("dedupe")?,
            meta: open("meta")?,
            db,
            torn_bytes,
            _lock: lock,
        })
    }

    /// A keyspace of its own for another part of the gateway (e.g. consumer
    /// group state), in the same database: a batch may write it together
    /// with events.
    pub fn keyspace(&self, name: &str) -> Result<Keyspace, EngineError> {
        self.db
            .keyspace(name, KeyspaceCreateOptions::default)
            .map_err(|e| EngineError::Unavailable(format!("cannot open keyspace {name}: {e}")))
    }

    /// Writes every keyspace's memtable to its tables, so that the next open
    /// has no journal to replay (a clean stop). Waits at most `within`:
    /// fjall's workers flush, and one that fails (disk full, directory
    /// gone) would leave a memtable sealed forever. Returns whether the
    /// flush finished; if not, nothing is lost: the next open replays.
    pub fn flush(&self, within: Duration) -> Result<bool, EngineError> {
        use fjall::AbstractTree;
        let keyspaces = self
            .db
            .list_keyspace_names()
            .iter()
            .map(|name| self.keyspace(name))
            .collect::<Result<Vec<_>, _>>()?;
        for ks in &keyspaces {
            ks.rotate_memtable().map_err(io)?;
        }
        let deadline = Instant::now() + within;
        while keyspaces
            .iter()
            .any(|ks| ks.tree.sealed_memtable_count() > 0)
        {
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(true)
    }

    pub fn meta_u64(&self, key: &[u8]) -> Result<Option<u64>, EngineError> {
        Ok(self.meta.get(key).map_err(io)?.map(|v| be_u64(&v)))
    }
}

/// Takes the directory's lock, or says who holds it.
fn lock(dir: &Path) -> Result<File, EngineError> {
    let path = dir.join("LOCK");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| refuse(dir, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            return Err(refuse(
                dir,
                format!(
                    "is in use by another gateway{}; stop it first, or give this one its own --data-dir",
                    if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {holder})")
                    }
                ),
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(refuse(dir, e)),
    }
    // Only for the message above: the lock itself is the flock.
    let _ = file.set_len(0);
    let _ = write!(file, "{}", std::process::id());
    Ok(file)
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// fjall's journal files.
fn journals(store: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(store) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jnl"))
        .collect()
}

/// Where the written part of a journal ends: fjall preallocates journals
/// with zeros, so a journal left by a crash is its batches, then zeros.
fn written_end(path: &Path) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    let mut end = f.metadata()?.len();
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b != 0) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

pub fn io(e: impl std::fmt::Display) -> EngineError {
    EngineError::Unavailable(format!("disk store: {e}"))
}

pub fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let n = b.len().min(8);
    a[..n].copy_from_slice(&b[..n]);
    u64::from_be_bytes(a)
}

/// One stored event: `[ms since epoch: u64][topic len: u16][topic]
/// [id len: u16][id][envelope JSON]`. The topic and id are stored apart
/// from the JSON so a read never parses JSON.
pub fn encode_record(ms: u64, topic: &str, id: &str, json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + topic.len() + id.len() + json.len());
    out.extend_from_slice(&ms.to_be_bytes());
    out.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(&(id.len() as u16).to_be_bytes());
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(json);
    out
}

/// The parts of a stored record, borrowed from it.
struct Record<'a> {
    ms: u64,
    topic: &'a [u8],
    id: &'a [u8],
    json: &'a [u8],
}

/// The header of a record: its time and the length of its JSON.
pub fn record_header(rec: &[u8]) -> Option<(u64, usize)> {
    split_record(rec).map(|r| (r.ms, r.json.len()))
}

fn split_record(rec: &[u8]) -> Option<Record<'_>> {
    let ms = be_u64(rec.get(..8)?);
    let tl = u16::from_be_bytes(rec.get(8..10)?.try_into().ok()?) as usize;
    let topic = rec.get(10..10 + tl)?;
    let at = 10 + tl;
    let il = u16::from_be_bytes(rec.get(at..at + 2)?.try_into().ok()?) as usize;
    let id = rec.get(at + 2..at + 2 + il)?;
    let json = rec.get(at + 2 + il..)?;
    Some(Record {
        ms,
        topic,
        id,
        json,
    })
}

/// Rebuilds an event from its record; `None` for a record this code did not
/// write (never served).
pub fn decode_record(offset: u64, seq: String, rec: &[u8]) -> Option<Event> {
    let r = split_record(rec)?;
    let topic = Topic::parse(std::str::from_utf8(r.topic).ok()?).ok()?;
    let id = std::str::from_utf8(r.id).ok()?.to_owned();
    Some(Event::new(
        offset,
        seq,
        id,
        topic,
        Bytes::copy_from_slice(r.json),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let rec = encode_record(7, "a.b", "id1", br#"{"x":1}"#);
        assert_eq!(record_header(&rec), Some((7, 7)));
        let ev = decode_record(3, "e-3".into(), &rec).unwrap();
        assert_eq!((ev.topic.as_str(), ev.id.as_str()), ("a.b", "id1"));
        assert_eq!(&ev.json[..], br#"{"x":1}"#);
        assert!(decode_record(3, "e-3".into(), &rec[..rec.len() - 9]).is_none());
    }
}
