//! `Vec::remove` without its panic, and `Vec::append` without its second
//! helper. The standard `remove` checks the index and panics with a
//! formatted message when it is out of range; even though the client's
//! panic handler never formats it, the message, its arguments and the
//! source location stay in the download. `take` answers `None` instead,
//! which a caller has to handle anyway (the index came from a search).

use crate::prelude::*;
use core::ptr;

/// Removes and returns element `i`, shifting the rest down; `None` when
/// there is no element `i`.
pub fn take<T>(v: &mut Vec<T>, i: usize) -> Option<T> {
    let len = v.len();
    if i >= len {
        return None;
    }
    // SAFETY: `i < len`: element `i` is read out once, the `len - i - 1`
    // elements after it move down one place within the allocation, and
    // the length drops by one, so nothing is dropped twice or lost.
    unsafe {
        let at = v.as_mut_ptr().add(i);
        let x = ptr::read(at);
        ptr::copy(at.add(1), at, len - i - 1);
        v.set_len(len - 1);
        Some(x)
    }
}

/// Moves every element of `from`, in order, after those of `v`, leaving
/// `from` empty: what `Vec::append` does, without the second compiled
/// helper it brings.
pub fn append<T>(v: &mut Vec<T>, from: &mut Vec<T>) {
    let (n, len) = (from.len(), v.len());
    v.reserve(n);
    // SAFETY: `reserve` made room for `n` more after the `len` elements of
    // `v`; the `n` of `from` are copied there and `from` forgets them (its
    // length 0), so each is owned once.
    unsafe {
        ptr::copy_nonoverlapping(from.as_ptr(), v.as_mut_ptr().add(len), n);
        from.set_len(0);
        v.set_len(len + n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_keeps_the_order() {
        let mut v: Vec<String> = ["a", "b", "c"].iter().map(|s| (*s).into()).collect();
        assert_eq!(take(&mut v, 1).as_deref(), Some("b"));
        assert_eq!(v, ["a", "c"]);
        assert_eq!(take(&mut v, 2), None);
        assert_eq!(take(&mut v, 1).as_deref(), Some("c"));
        assert_eq!(take(&mut v, 0).as_deref(), Some("a"));
        assert_eq!(take(&mut v, 0), None);
    }

    #[test]
    fn append_keeps_both_orders() {
        let mut v: Vec<String> = vec!["a".into(), "b".into()];
        let mut from: Vec<String> = vec!["c".into(), "d".into()];
        append(&mut v, &mut from);
        assert_eq!(v, ["a", "b", "c", "d"]);
        assert!(from.is_empty());
        append(&mut v, &mut from);
        assert_eq!(v, ["a", "b", "c", "d"]);
        let mut empty = Vec::new();
        append(&mut empty, &mut v);
        assert_eq!(empty, ["a", "b", "c", "d"]);
        assert!(v.is_empty());
    }
}
