//! The provided-buffer ring shared by every conn of one driver.
//!
//! Two allocations: the ring of entries (page aligned, `entries` x 16 bytes, a power of two),
//! read by the kernel, and the buffer memory (`count` x `size` bytes), written by the kernel.
//! A buffer is either *in the ring* (the kernel may write it at any moment: we hold no
//! reference into it) or *lent to us* by a CQE carrying `IORING_CQE_F_BUFFER` with its id (we
//! may read it; the kernel will not touch it) until [`BufRing::recycle`] puts it back.
//!
//! Rust-side aliasing: the memory is only reached through raw pointers, and a `&[u8]` is made
//! only for a lent buffer, for the duration of one handler call (see [`BufRing::lent`]).
//!
//! The tail lives in the `resv` field of entry 0 (kernel ABI); we write entry fields one by one
//! so that field is never clobbered, and publish the tail with a Release store so the kernel
//! sees the entry before the new tail. The head is private to the kernel.
//!
//! What it does not do: decide when to recycle (the driver does it right after the handler
//! returns), or free memory the kernel may still use (the driver reaps every op first, and
//! calls [`BufRing::leak`] if it could not).

use std::alloc::{self, Layout};
use std::io;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;

/// Buffer group id; each ring has its own namespace and this driver uses one group.
pub(crate) const BGID: u16 = 0;

/// Kernel ABI `struct io_uring_buf`.
#[repr(C)]
struct RawBuf {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

const _: () = assert!(std::mem::size_of::<RawBuf>() == 16);

pub(crate) struct BufRing {
    ring: NonNull<RawBuf>,
    ring_layout: Layout,
    data: NonNull<u8>,
    data_layout: Layout,
    count: u16,
    size: u32,
    mask: u16,
    /// Our copy of the tail (the shared one is only written, never read back).
    tail: u16,
    leaked: bool,
}

impl BufRing {
    /// Allocates `count` buffers of `size` bytes and a ring able to hold them all.
    pub fn new(count: u16, size: usize) -> io::Result<BufRing> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
        if count == 0 || count > 32768 {
            return Err(invalid("recv_buffers must be in 1..=32768"));
        }
        let size32 = u32::try_from(size)
            .ok()
            .filter(|&s| s > 0 && s <= i32::MAX as u32);
        let size = size32.ok_or_else(|| invalid("recv_buffer_bytes must be in 1..=2^31-1"))?;
        let entries = count.next_power_of_two();
        let page = crate::sys::page_size();
        let ring_bytes = (usize::from(entries) * 16).next_multiple_of(page);
        let ring_layout = Layout::from_size_align(ring_bytes, page).map_err(io::Error::other)?;
        let data_bytes = usize::from(count)
            .checked_mul(size as usize)
            .ok_or_else(|| invalid("recv_buffers x recv_buffer_bytes overflows"))?;
        let data_layout = Layout::from_size_align(data_bytes, 64).map_err(io::Error::other)?;
        // SAFETY: both layouts have a non-zero size (count > 0, size > 0, ring_bytes >= page).
        let (ring, data) = unsafe { (alloc::alloc_zeroed(ring_layout), alloc::alloc(data_layout)) };
        let (Some(ring), Some(data)) = (NonNull::new(ring.cast::<RawBuf>()), NonNull::new(data))
        else {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        };
        let mut bufs = BufRing {
            ring,
            ring_layout,
            data,
            data_layout,
            count,
            size,
            mask: entries - 1,
            tail: 0,
            leaked: false,
        };
        for bid in 0..count {
            bufs.write_entry(bid);
        }
        bufs.publish();
        Ok(bufs)
    }

    /// Registers the ring as buffer group [`BGID`] of `ring`.
    ///
    /// # Safety
    /// `self` must outlive every operation of `ring` that selects from group [`BGID`] (the
    /// driver guarantees it by reaping all operations before dropping the `BufRing`).
    pub unsafe fn register(&self, ring: &IoUring) -> io::Result<()> {
        let entries = self.mask + 1;
        // SAFETY: the ring memory is valid, page aligned, `entries` long, and lives as long as
        // the caller promised above.
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                self.ring.as_ptr() as u64,
                entries,
                BGID,
                0,
            )
        }
    }

    /// The first `len` bytes of buffer `bid`.
    ///
    /// # Safety
    /// `bid` must have been lent to us by a CQE and not recycled since, so the kernel does not
    /// write it while the returned slice lives; `len` is the CQE's result.
    pub unsafe fn lent(&self, bid: u16, len: usize) -> &[u8] {
        assert!(
            bid < self.count && len <= self.size as usize,
            "kernel named a bad buffer"
        );
        // SAFETY: in bounds (checked above); not written by the kernel while lent (caller).
        unsafe { std::slice::from_raw_parts(self.buf_ptr(bid), len) }
    }

    /// Gives buffer `bid` back to the kernel. The caller must hold no slice into it.
    pub fn recycle(&mut self, bid: u16) {
        assert!(bid < self.count, "kernel named a bad buffer");
        self.write_entry(bid);
        self.publish();
    }

    /// Keeps the memory allocated forever: used when the driver could not reap every
    /// operation, so the kernel might still write into it.
    pub fn leak(&mut self) {
        self.leaked = true;
    }

    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        // SAFETY: bid < count, so the offset stays inside the `count * size` allocation.
        unsafe {
            self.data
                .as_ptr()
                .add(usize::from(bid) * self.size as usize)
        }
    }

    /// Writes buffer `bid` at the tail slot (not yet visible to the kernel).
    fn write_entry(&mut self, bid: u16) {
        let slot = usize::from(self.tail & self.mask);
        // SAFETY: slot <= mask < entries, inside the ring allocation. The kernel never reads
        // slots at or past the published tail, so writing here races with nothing; fields are
        // written one by one so entry 0's `resv` (the shared tail) is left alone.
        unsafe {
            let entry = self.ring.as_ptr().add(slot);
            ptr::addr_of_mut!((*entry).addr).write(self.buf_ptr(bid) as u64);
            ptr::addr_of_mut!((*entry).len).write(self.size);
            ptr::addr_of_mut!((*entry).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every written entry visible to the kernel.
    fn publish(&self) {
        // SAFETY: `resv` of entry 0 is the shared tail: u16-aligned, inside the allocation, and
        // only ever accessed atomically by us and by the kernel (which only reads it).
        let tail = unsafe { &*(ptr::addr_of!((*self.ring.as_ptr()).resv) as *const AtomicU16) };
        // Release: the kernel must see the entry fields written before it sees the new tail.
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.leaked {
            return;
        }
        // SAFETY: both pointers came from `alloc` with these layouts and are freed once; the
        // driver has reaped every operation that could use them (else `leaked` is set).
        unsafe {
            alloc::dealloc(self.ring.as_ptr().cast(), self.ring_layout);
            alloc::dealloc(self.data.as_ptr(), self.data_layout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail_of(b: &BufRing) -> u16 {
        // SAFETY: reads the tail field of entry 0 of a live ring.
        unsafe { ptr::addr_of!((*b.ring.as_ptr()).resv).read() }
    }

    #[test]
    fn fills_every_buffer_and_publishes_tail() {
        let b = BufRing::new(5, 100).unwrap();
        assert_eq!(b.mask, 7, "ring rounded up to a power of two");
        assert_eq!(tail_of(&b), 5);
        for slot in 0..5u16 {
            // SAFETY: reading initialised entries of a live ring.
            let (addr, len, bid) = unsafe {
                let e = b.ring.as_ptr().add(usize::from(slot));
                ((*e).addr, (*e).len, (*e).bid)
            };
            assert_eq!(bid, slot);
            assert_eq!(len, 100);
            assert_eq!(addr, b.buf_ptr(slot) as u64);
        }
    }

    #[test]
    fn recycle_wraps_and_keeps_tail_field() {
        let mut b = BufRing::new(4, 8).unwrap();
        for i in 0..10u16 {
            b.recycle(i % 4);
        }
        assert_eq!(tail_of(&b), 14);
        // SAFETY: reading an initialised entry of a live ring.
        let bid = unsafe { (*b.ring.as_ptr().add(13 & 3)).bid };
        assert_eq!(bid, 9 % 4);
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(BufRing::new(0, 10).is_err());
        assert!(BufRing::new(40000, 10).is_err());
        assert!(BufRing::new(4, 0).is_err());
    }
}
