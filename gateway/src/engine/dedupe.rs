//! The dedupe window of the embedded engines (memory and disk): which
//! dedupe keys were accepted recently, and at which offset.
//!
//! Ids are forgotten when they are older than the window or when more than
//! `max_ids` are held, oldest first. The caller supplies the clock in
//! milliseconds: memory uses a monotonic one, disk the wall clock it also
//! stores beside each id, so that the window survives a restart.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

pub struct DedupeWindow {
    window_ms: u64,
    max_ids: usize,
    /// Dedupe key → offset of the accepted event.
    seen: HashMap<String, u64>,
    /// (accepted at, offset, key), oldest first.
    order: VecDeque<(u64, u64, String)>,
}

impl DedupeWindow {
    pub fn new(window: Duration, max_ids: usize) -> DedupeWindow {
        DedupeWindow {
            window_ms: window.as_millis() as u64,
            max_ids,
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The offset an event with this key was accepted at, inside the window.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.seen.get(key).copied()
    }

    /// Remembers an accepted key. Calls come in offset order.
    pub fn insert(&mut self, at_ms: u64, offset: u64, key: String) {
        self.seen.insert(key.clone(), offset);
        self.order.push_back((at_ms, offset, key));
    }

    /// Forgets the ids that left the window, calling `forgotten` with the
    /// offset of each (disk deletes its stored entry).
    pub fn expire(&mut self, now_ms: u64, mut forgotten: impl FnMut(u64)) {
        while let Some((at, _, _)) = self.order.front() {
            if now_ms.saturating_sub(*at) <= self.window_ms && self.order.len() <= self.max_ids {
                break;
            }
            let Some((_, offset, key)) = self.order.pop_front() else {
                break;
            };
            // A key seen again later (possible in a stored window) stays.
            if self.seen.get(&key) == Some(&offset) {
                self.seen.remove(&key);
            }
            forgotten(offset);
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_by_age_and_by_count_oldest_first() {
        let mut w = DedupeWindow::new(Duration::from_millis(100), 2);
        w.insert(0, 1, "a".into());
        w.insert(50, 2, "b".into());
        let mut gone = Vec::new();
        w.expire(100, |o| gone.push(o));
        assert!(gone.is_empty(), "both are inside the window");
        w.insert(100, 3, "c".into());
        w.expire(100, |o| gone.push(o));
        assert_eq!(gone, [1], "over max_ids: the oldest goes");
        w.expire(151, |o| gone.push(o));
        assert_eq!(gone, [1, 2], "b is 101 ms old");
        assert_eq!(w.get("a"), None);
        assert_eq!(w.get("c"), Some(3));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn a_key_seen_again_stays_when_its_older_entry_expires() {
        let mut w = DedupeWindow::new(Duration::from_millis(10), 10);
        w.insert(0, 1, "a".into());
        w.insert(20, 2, "a".into());
        let mut gone = Vec::new();
        w.expire(20, |o| gone.push(o));
        assert_eq!(gone, [1]);
        assert_eq!(w.get("a"), Some(2));
    }
}
