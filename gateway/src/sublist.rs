//! A trie of subscription patterns, so routing one event costs the depth of
//! its topic rather than the number of subscriptions.
//!
//! Shaped like NATS's sublist: literal children, one `*` child, and the
//! subscribers of a trailing `>` kept at the node where it starts.

use eventwire_protocol::Pattern;
use eventwire_protocol::topic::Segment;
use std::collections::HashMap;

pub struct Sublist<V> {
    root: Node<V>,
    len: usize,
}

struct Node<V> {
    literal: HashMap<Box<str>, Node<V>>,
    star: Option<Box<Node<V>>>,
    /// Subscribers whose pattern ends here.
    here: Vec<(u64, V)>,
    /// Subscribers whose pattern ends with `>` after this node.
    rest: Vec<(u64, V)>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            literal: HashMap::new(),
            star: None,
            here: Vec::new(),
            rest: Vec::new(),
        }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.literal.is_empty()
            && self.star.is_none()
            && self.here.is_empty()
            && self.rest.is_empty()
    }
}

impl<V> Default for Sublist<V> {
    fn default() -> Self {
        Sublist {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<V> Sublist<V> {
    /// Number of (pattern, subscriber) entries.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds subscriber `key` under `pattern`. The caller keeps (key, pattern) unique.
    pub fn insert(&mut self, pattern: &Pattern, key: u64, value: V) {
        let mut node = &mut self.root;
        for seg in pattern.segments() {
            node = match seg {
                Segment::Literal(s) => node.literal.entry(s.as_str().into()).or_default(),
                Segment::One => node.star.get_or_insert_with(Default::default),
                Segment::Rest => {
                    node.rest.push((key, value));
                    self.len += 1;
                    return;
                }
            };
        }
        node.here.push((key, value));
        self.len += 1;
    }

    /// Removes subscriber `key` from `pattern`; returns whether it was there.
    pub fn remove(&mut self, pattern: &Pattern, key: u64) -> bool {
        let removed = Self::remove_in(&mut self.root, pattern.segments(), key);
        if removed {
            self.len -= 1;
        }
        removed
    }

    fn remove_in(node: &mut Node<V>, segs: &[Segment], key: u64) -> bool {
        let take = |list: &mut Vec<(u64, V)>| match list.iter().position(|(k, _)| *k == key) {
            Some(i) => {
                list.swap_remove(i);
                true
            }
            None => false,
        };
        let Some((first, tail)) = segs.split_first() else {
            return take(&mut node.here);
        };
        match first {
            Segment::Rest => take(&mut node.rest),
            Segment::One => {
                let Some(child) = node.star.as_deref_mut() else {
                    return false;
                };
                let removed = Self::remove_in(child, tail, key);
                if child.is_empty() {
                    node.star = None;
                }
                removed
            }
            Segment::Literal(s) => {
                let Some(child) = node.literal.get_mut(s.as_str()) else {
                    return false;
                };
                let removed = Self::remove_in(child, tail, key);
                if child.is_empty() {
                    node.literal.remove(s.as_str());
                }
                removed
            }
        }
    }

    /// Calls `f` for every (key, value) whose pattern matches `topic`. A
    /// subscriber with several matching patterns is visited once per pattern.
    pub fn for_each_match(&self, topic: &str, mut f: impl FnMut(u64, &V)) {
        let segs: Vec<&str> = topic.split('.').collect();
        Self::match_in(&self.root, &segs, &mut f);
    }

    fn match_in(node: &Node<V>, segs: &[&str], f: &mut impl FnMut(u64, &V)) {
        let Some((first, tail)) = segs.split_first() else {
            node.here.iter().for_each(|(k, v)| f(*k, v));
            return;
        };
        node.rest.iter().for_each(|(k, v)| f(*k, v));
        if let Some(child) = node.literal.get(*first) {
            Self::match_in(child, tail, f);
        }
        if let Some(child) = &node.star {
            Self::match_in(child, tail, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(list: &Sublist<()>, topic: &str) -> Vec<u64> {
        let mut out = Vec::new();
        list.for_each_match(topic, |k, _| out.push(k));
        out.sort();
        out
    }

    #[test]
    fn routes_like_pattern_matches() {
        let pats = ["a.b", "a.*", "a.>", ">", "*.b", "a.b.c", "x"];
        let mut list = Sublist::default();
        for (i, p) in pats.iter().enumerate() {
            list.insert(&Pattern::parse(p).unwrap(), i as u64, ());
        }
        for topic in ["a", "a.b", "a.c", "a.b.c", "z.b", "x", "x.y"] {
            let expected: Vec<u64> = pats
                .iter()
                .enumerate()
                .filter(|(_, p)| Pattern::parse(p).unwrap().matches(topic))
                .map(|(i, _)| i as u64)
                .collect();
            assert_eq!(matches(&list, topic), expected, "topic {topic}");
        }
    }

    #[test]
    fn remove_prunes_and_reports() {
        let mut list = Sublist::default();
        let p = Pattern::parse("a.*.c").unwrap();
        list.insert(&p, 1, ());
        list.insert(&p, 2, ());
        assert!(list.remove(&p, 1));
        assert!(!list.remove(&p, 1));
        assert_eq!(matches(&list, "a.b.c"), vec![2]);
        assert!(list.remove(&p, 2));
        assert!(list.is_empty());
        assert!(list.root.is_empty(), "empty branches are pruned");
    }
}
