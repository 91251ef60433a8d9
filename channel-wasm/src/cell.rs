//! `RefCell` borrows that trap instead of panicking. A double borrow is a
//! bug either way, and the browser reports a trap as a `RuntimeError` just
//! as it reports a panic; but each panicking borrow keeps its source
//! location and core's message in the download.

use core::cell::{Ref, RefCell, RefMut};

/// `cell.borrow()`.
pub fn read<T>(cell: &RefCell<T>) -> Ref<'_, T> {
    cell.try_borrow()
        .unwrap_or_else(|_| core::arch::wasm32::unreachable())
}

/// `cell.borrow_mut()`.
pub fn write<T>(cell: &RefCell<T>) -> RefMut<'_, T> {
    cell.try_borrow_mut()
        .unwrap_or_else(|_| core::arch::wasm32::unreachable())
}
