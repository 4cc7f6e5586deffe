//! Zeroed, 64-byte-aligned heap buffers: the arena and the scratch areas.

use std::alloc::{alloc, alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;

/// Alignment of every runtime buffer (a cache line, the widest SIMD load).
pub const ALIGN: usize = 64;

/// Buffers from this size sit on 2 MiB pages where the kernel offers them.
const HUGE_FROM: usize = 1 << 20;
const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back `len` bytes at `ptr` (2 MiB aligned) with
/// transparent huge pages: kernels reading a channel plane apart touch one
/// 4 KiB page per row, more than the TLB holds.
fn huge_pages(ptr: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: the range is this allocation; the advice changes no contents
    // (a refusal, e.g. THP off, leaves the buffer as it is).
    unsafe {
        libc::madvise(ptr.cast(), len, libc::MADV_HUGEPAGE);
    }
}

/// An owned, zeroed byte buffer starting on a 64-byte boundary.
pub(crate) struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    layout: Layout,
}

// SAFETY: the buffer is plain owned memory; who touches which bytes when is
// ruled by the service (workers between the start and finish of a frame,
// the caller outside).
unsafe impl Send for AlignedBuf {}
// SAFETY: as above.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// `len` zero bytes; Err(reason) when it cannot be allocated.
    pub(crate) fn zeroed(len: u64, what: &str) -> Result<AlignedBuf, String> {
        let fail = || format!("cannot allocate the {what} ({len} bytes)");
        let len = usize::try_from(len).map_err(|_| fail())?;
        // At least one cache line, so the allocation is never zero-sized.
        let align = if len >= HUGE_FROM { HUGE_PAGE } else { ALIGN };
        let size = len.max(ALIGN).checked_next_multiple_of(align).ok_or_else(fail)?;
        let layout = Layout::from_size_align(size, align).map_err(|_| fail())?;
        let ptr = if align == HUGE_PAGE {
            // Advised before the first touch (the zeroing), so the pages
            // fault in huge.
            // SAFETY: the layout has a non-zero size.
            let ptr = NonNull::new(unsafe { alloc(layout) }).ok_or_else(fail)?;
            huge_pages(ptr.as_ptr(), layout.size());
            // SAFETY: the allocation holds layout.size() bytes.
            unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0, layout.size()) };
            ptr
        } else {
            // SAFETY: the layout has a non-zero size.
            NonNull::new(unsafe { alloc_zeroed(layout) }).ok_or_else(fail)?
        };
        Ok(AlignedBuf { ptr, len, layout })
    }

    pub(crate) fn as_mut_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `len` bytes were allocated and zeroed; `&mut self` is unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zeroed() {
        for len in [0u64, 1, 63, 64, 1000, HUGE_FROM as u64, 3 * HUGE_PAGE as u64 + 5] {
            let mut b = AlignedBuf::zeroed(len, "test").unwrap();
            assert_eq!(b.as_mut_ptr() as usize % ALIGN, 0);
            assert_eq!(b.as_mut_slice().len(), len as usize);
            assert!(b.as_mut_slice().iter().all(|&x| x == 0));
        }
        assert!(AlignedBuf::zeroed(u64::MAX, "arena").err().unwrap().contains("arena"));
    }
}
