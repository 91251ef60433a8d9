//! The recently delivered events, for dedupe: a fixed-size set that forgets
//! the oldest once full. An event is known by its `source` and `id`
//! together (CloudEvents; the gateway dedupes the same way), so two
//! publishers using the same id are two events.
//!
//! Keys are stored as 64-bit FNV-1a hashes in an open-addressing table, so
//! each check costs one hash and a probe or two, and the wasm binary does
//! not carry a general hash map.

use crate::prelude::*;

pub struct RecentIds {
    /// The remembered hashes, oldest at `oldest` once the ring is full: a
    /// plain vector used as a ring, one collection type less in the wasm.
    order: Vec<u64>,
    oldest: usize,
    slots: Vec<u64>,
    cap: usize,
    tombs: usize,
}

const EMPTY: u64 = 0;
const TOMB: u64 = 1;

/// Hashes `source`, a separator and `id`. The separator 0xff never occurs
/// in UTF-8, so ("a", "bc") and ("ab", "c") hash different bytes.
fn fnv1a(source: &str, id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    // Plain loops, not a `chain` with an array in it: its iterator is
    // compiled in for that one byte.
    let mut eat = |b: u8| {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    for b in source.bytes() {
        eat(b);
    }
    eat(0xff);
    for b in id.bytes() {
        eat(b);
    }
    // 0 and 1 mark empty and deleted slots.
    h.max(2)
}

impl RecentIds {
    pub fn new(cap: usize) -> RecentIds {
        let cap = cap.max(1);
        RecentIds {
            order: Vec::new(),
            oldest: 0,
            slots: vec![EMPTY; (cap * 2).next_power_of_two()],
            cap,
            tombs: 0,
        }
    }

    /// Records the event `source` + `id`; returns false when it was
    /// already there.
    pub fn insert(&mut self, source: &str, id: &str) -> bool {
        let h = fnv1a(source, id);
        let (found, free) = find(&self.slots, h);
        if found.is_some() {
            return false;
        }
        let evicted = if self.order.len() == self.cap {
            let slot = self.order.get_mut(self.oldest);
            self.oldest += 1;
            if self.oldest == self.cap {
                self.oldest = 0;
            }
            slot.map(|old| core::mem::replace(old, h))
        } else {
            self.order.push(h);
            None
        };
        if let Some((Some(i), _)) = evicted.map(|old| find(&self.slots, old))
            && let Some(slot) = self.slots.get_mut(i)
        {
            *slot = TOMB;
            self.tombs += 1;
        }
        // Marking a slot deleted never takes `free` away.
        if let Some(slot) = self.slots.get_mut(free) {
            if *slot == TOMB {
                self.tombs -= 1;
            }
            *slot = h;
        }
        if self.tombs > self.slots.len() / 4 {
            self.rebuild();
        }
        true
    }

    fn rebuild(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = EMPTY);
        self.tombs = 0;
        for &h in &self.order {
            let (_, free) = find(&self.slots, h);
            if let Some(slot) = self.slots.get_mut(free) {
                *slot = h;
            }
        }
    }
}

/// Where `h` is (if it is there) and the slot it would go in. Slots
/// are read with `get`, never indexed: an index that could panic
/// brings core's panic messages and their formatting into the wasm,
/// and the table is never full, so a free slot always ends the probe.
fn find(slots: &[u64], h: u64) -> (Option<usize>, usize) {
    let mask = slots.len().wrapping_sub(1);
    let mut i = (h as usize) & mask;
    let mut free = None;
    loop {
        match slots.get(i).copied().unwrap_or(EMPTY) {
            EMPTY => return (None, free.unwrap_or(i)),
            TOMB => {
                free.get_or_insert(i);
            }
            x if x == h => return (Some(i), i),
            _ => {}
        }
        i = (i + 1) & mask;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn remembers_then_forgets_the_oldest() {
        let mut r = RecentIds::new(3);
        assert!(r.insert("s", "a"));
        assert!(!r.insert("s", "a"));
        assert!(r.insert("s", "b"));
        assert!(r.insert("s", "c"));
        assert!(r.insert("s", "d"), "evicts a");
        assert!(!r.insert("s", "b"));
        assert!(r.insert("s", "a"), "a was forgotten");
    }

    #[test]
    fn the_same_id_from_another_source_is_another_event() {
        let mut r = RecentIds::new(8);
        assert!(r.insert("u1", "x"));
        assert!(r.insert("u2", "x"));
        assert!(!r.insert("u1", "x"));
        assert!(r.insert("a", "bc"));
        assert!(r.insert("ab", "c"), "the boundary is part of the key");
    }

    #[test]
    fn many_ids_stay_consistent() {
        let mut r = RecentIds::new(100);
        for round in 0..5 {
            for i in 0..1000 {
                let id = format!("id-{round}-{i}");
                assert!(r.insert("s", &id), "{id}");
                assert!(!r.insert("s", &id), "{id}");
            }
        }
        // The last 100 are still remembered.
        for i in 900..1000 {
            assert!(!r.insert("s", &format!("id-4-{i}")));
        }
    }
}
