//! The client's memory allocator: a free list per power-of-two size class,
//! fed from fresh pages of the wasm memory.
//!
//! Why not the standard library's dlmalloc: it is about 7 KB of wasm, a
//! sixth of what the package used to weigh, and a channel needs little of
//! it. The channel's memory is a handful of long-lived buffers (patterns,
//! the dedupe table, the outbox) and short-lived strings of a few sizes, so
//! blocks rounded up to a power of two and reused per size waste little,
//! and never splitting or merging blocks keeps this a few hundred bytes.
//! wasm memory never shrinks anyway, so nothing is given back.
//!
//! The browser runs a wasm instance on one thread; the module is built
//! without atomics, so there is no concurrent caller.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;

const PAGE: usize = 65_536;
/// Classes 2^0 … 2^31: every size a 32-bit address space can hold.
const CLASSES: usize = 32;
/// Smallest block: a free block holds the next pointer of its list.
const MIN_CLASS: u32 = 3;

/// The size class of a layout: the block is `1 << class` bytes, aligned to
/// its size (or to a page, for blocks larger than one), which satisfies any
/// alignment up to the size.
pub fn class(layout: Layout) -> u32 {
    let size = layout.size().max(layout.align());
    (usize::BITS - size.saturating_sub(1).leading_zeros()).max(MIN_CLASS)
}

/// Where a fresh block of class `c` starts, given the first free address;
/// `None` when the address space is exhausted.
pub fn place(next: usize, c: u32) -> Option<(usize, usize)> {
    let size = 1usize.checked_shl(c)?;
    let align = size.min(PAGE);
    let start = next.checked_add(align - 1)? & !(align - 1);
    Some((start, start.checked_add(size)?))
}

struct State {
    /// Head of each class's free list (0: empty).
    free: [usize; CLASSES],
    /// The first address never handed out, and the end of the memory this
    /// allocator owns.
    next: usize,
    end: usize,
}

pub struct Heap(UnsafeCell<State>);

// SAFETY: one thread per instance (see the module comment).
unsafe impl Sync for Heap {}

impl Heap {
    pub const fn new() -> Heap {
        Heap(UnsafeCell::new(State {
            free: [0; CLASSES],
            next: 0,
            end: 0,
        }))
    }
}

impl Default for Heap {
    fn default() -> Heap {
        Heap::new()
    }
}

/// Grows the wasm memory by `pages`; returns the address of the first new
/// byte, or `None` when the browser refuses.
#[cfg(target_arch = "wasm32")]
fn grow(pages: usize) -> Option<usize> {
    let before = core::arch::wasm32::memory_grow(0, pages);
    (before != usize::MAX).then(|| before * PAGE)
}

/// The address just past the memory the module has today.
#[cfg(target_arch = "wasm32")]
fn memory_end() -> usize {
    core::arch::wasm32::memory_size(0) * PAGE
}

// Natively the allocator is only unit tested for its arithmetic.
#[cfg(not(target_arch = "wasm32"))]
fn grow(_pages: usize) -> Option<usize> {
    None
}

#[cfg(not(target_arch = "wasm32"))]
fn memory_end() -> usize {
    0
}

/// `realloc` is the trait's own (allocate, copy, free): a vector or string
/// grows to at least twice its capacity, which always takes it past its
/// power-of-two block, so a keep-the-block shortcut was never taken and
/// only cost download.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: no other reference to the state is alive (one thread, and
        // nothing here calls back into the allocator).
        let s = unsafe { &mut *self.0.get() };
        let c = class(layout);
        let Some(head) = s.free.get_mut(c as usize) else {
            return ptr::null_mut();
        };
        if *head != 0 {
            let block = *head;
            // SAFETY: a free block starts with the address of the next one.
            *head = unsafe { *(block as *const usize) };
            return block as *mut u8;
        }
        if s.end == 0 {
            // First use: the heap starts where the memory ends today.
            s.end = memory_end();
            s.next = s.end;
        }
        loop {
            let Some((start, stop)) = place(s.next, c) else {
                return ptr::null_mut();
            };
            if stop <= s.end {
                s.next = stop;
                return start as *mut u8;
            }
            let pages = (stop - s.end).div_ceil(PAGE);
            let Some(fresh) = grow(pages) else {
                return ptr::null_mut();
            };
            if fresh != s.end {
                // Someone else grew the memory: skip their pages.
                s.next = fresh;
            }
            s.end = fresh + pages * PAGE;
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: as in `alloc`.
        let s = unsafe { &mut *self.0.get() };
        if let Some(head) = s.free.get_mut(class(layout) as usize) {
            // SAFETY: the block is ours again and at least a pointer wide.
            unsafe { *(block as *mut usize) = *head };
            *head = block as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn classes_round_up_to_powers_of_two() {
        assert_eq!(class(l(0, 1)), 3);
        assert_eq!(class(l(1, 1)), 3);
        assert_eq!(class(l(8, 8)), 3);
        assert_eq!(class(l(9, 1)), 4);
        assert_eq!(class(l(16, 1)), 4);
        assert_eq!(class(l(17, 4)), 5);
        assert_eq!(class(l(4, 64)), 6, "alignment counts as size");
        assert_eq!(class(l(65_536, 1)), 16);
        assert_eq!(class(l(65_537, 1)), 17);
    }

    #[test]
    fn blocks_are_aligned_to_their_size_up_to_a_page() {
        assert_eq!(place(0, 3), Some((0, 8)));
        assert_eq!(place(9, 4), Some((16, 32)));
        assert_eq!(place(65_536 + 8, 20), Some((131_072, 131_072 + (1 << 20))));
        assert_eq!(place(usize::MAX - 3, 3), None);
    }
}
