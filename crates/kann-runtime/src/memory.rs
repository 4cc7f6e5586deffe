//! Zeroed, 64-byte-aligned heap buffers: the arena and the scratch areas.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;

/// Alignment of every runtime buffer (a cache line, the widest SIMD load).
pub const ALIGN: usize = 64;

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
        let layout = Layout::from_size_align(len.max(ALIGN), ALIGN).map_err(|_| fail())?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(fail)?;
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
        for len in [0u64, 1, 63, 64, 1000] {
            let mut b = AlignedBuf::zeroed(len, "test").unwrap();
            assert_eq!(b.as_mut_ptr() as usize % ALIGN, 0);
            assert_eq!(b.as_mut_slice().len(), len as usize);
            assert!(b.as_mut_slice().iter().all(|&x| x == 0));
        }
        assert!(AlignedBuf::zeroed(u64::MAX, "arena").err().unwrap().contains("arena"));
    }
}
