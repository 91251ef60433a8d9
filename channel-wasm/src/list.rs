//! `Vec::remove` and `Vec::insert` at the front, without their panics. The
//! standard ones check the index and panic with a formatted message when it
//! is out of range; even though the client's panic handler never formats
//! it, the message, its arguments and the source location stay in the
//! download. These answer `None` instead, which a caller has to handle
//! anyway (the index came from a search).

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

/// Inserts `x` before the first element.
pub fn push_front<T>(v: &mut Vec<T>, x: T) {
    v.reserve(1);
    let len = v.len();
    // SAFETY: `reserve` made room for one more; the `len` elements move up
    // one place, `x` is written into the gap, and the length grows by one.
    unsafe {
        let at = v.as_mut_ptr();
        ptr::copy(at, at.add(1), len);
        ptr::write(at, x);
        v.set_len(len + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_and_push_front_keep_the_order() {
        let mut v: Vec<String> = ["a", "b", "c"].iter().map(|s| (*s).into()).collect();
        assert_eq!(take(&mut v, 1).as_deref(), Some("b"));
        assert_eq!(v, ["a", "c"]);
        assert_eq!(take(&mut v, 2), None);
        push_front(&mut v, "z".into());
        assert_eq!(v, ["z", "a", "c"]);
        assert_eq!(take(&mut v, 0).as_deref(), Some("z"));
        assert_eq!(take(&mut v, 1).as_deref(), Some("c"));
        assert_eq!(take(&mut v, 0).as_deref(), Some("a"));
        assert_eq!(take(&mut v, 0), None);
        push_front(&mut v, "y".into());
        assert_eq!(v, ["y"]);
    }
}
