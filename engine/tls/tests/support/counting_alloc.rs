//! A global allocator that counts live heap bytes and blocks, per thread, over the system
//! allocator; shared by `tests/heap.rs` and `examples/idle_memory.rs` (with `#[path]`).
//!
//! Per thread, so the test harness' other threads do not disturb a measurement: a block freed
//! on another thread than the one that allocated it is counted wrong, which the single-threaded
//! measurements here never do. It also keeps, process-wide, the live blocks by exact size
//! (up to 8 KiB) so a measurement can say which allocations a session keeps.

#![allow(dead_code)] // the test and the example use different parts

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

pub struct Counting;

thread_local! {
    // const-initialized and without a destructor: safe to touch from inside the allocator.
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
    static LIVE_BLOCKS: Cell<isize> = const { Cell::new(0) };
}

/// Largest size with its own bucket; bigger blocks share the last bucket.
pub const MAX_BUCKET_BYTES: usize = 8192;

#[allow(clippy::declare_interior_mutable_const)] // only used to initialise the array below
const ZERO: AtomicIsize = AtomicIsize::new(0);
static BY_SIZE: [AtomicIsize; MAX_BUCKET_BYTES + 1] = [ZERO; MAX_BUCKET_BYTES + 1];

fn note(size: usize, sign: isize) {
    let _ = LIVE_BYTES.try_with(|c| c.set(c.get() + sign * size as isize));
    let _ = LIVE_BLOCKS.try_with(|c| c.set(c.get() + sign));
    // Relaxed: a statistic read after the measured work, on the same thread.
    BY_SIZE[size.min(MAX_BUCKET_BYTES)].fetch_add(sign, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's layout and pointer unchanged,
// so `System`'s guarantees hold; the counting touches only const thread-locals without
// destructors and static atomics, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours, forwarded.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            note(layout.size(), 1);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours, forwarded.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            note(layout.size(), 1);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(layout.size(), -1);
        // SAFETY: same contract as ours, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours, forwarded.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            note(layout.size(), -1);
            note(new_size, 1);
        }
        new
    }
}

/// Live heap bytes allocated by this thread (minus those it freed).
pub fn live_bytes() -> isize {
    LIVE_BYTES.with(Cell::get)
}

/// Live heap blocks allocated by this thread (minus those it freed).
pub fn live_blocks() -> isize {
    LIVE_BLOCKS.with(Cell::get)
}

/// Process-wide live blocks per exact size (last entry: all larger blocks).
pub fn blocks_by_size() -> Vec<isize> {
    BY_SIZE.iter().map(|b| b.load(Ordering::Relaxed)).collect()
}
