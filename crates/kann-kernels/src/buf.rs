//! Raw views of the buffers a step reads and writes.
//!
//! The runtime resolves each [`crate::BufRef`] to a [`RawBuf`] (arena or
//! mapped weights) before the frame starts. Several clusters run parts of
//! the same step at once, so kernels must not take a `&mut` of a whole
//! output: they take the sub-slice their part owns ([`RawBuf::f32_part`]).

use std::ops::Range;

/// A pointer and a length in bytes; the runtime keeps the memory alive and
/// the schedule keeps writers and readers apart.
#[derive(Clone, Copy, Debug)]
pub struct RawBuf {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: a RawBuf is only a view; who may touch which bytes when is decided
// by the schedule (barriers between dependent steps, disjoint parts).
unsafe impl Send for RawBuf {}
// SAFETY: as above.
unsafe impl Sync for RawBuf {}

impl RawBuf {
    /// # Safety
    /// `ptr` must be valid for reads (and writes, when used as an output) of
    /// `len` bytes for as long as kernels use the view, and 4-byte aligned
    /// when read as f32.
    pub unsafe fn new(ptr: *mut u8, len: usize) -> RawBuf {
        RawBuf { ptr, len }
    }

    /// A view of a slice (tests and single-threaded callers).
    pub fn from_f32(s: &mut [f32]) -> RawBuf {
        RawBuf { ptr: s.as_mut_ptr().cast(), len: std::mem::size_of_val(s) }
    }

    /// A view of bytes (tests and single-threaded callers).
    pub fn from_bytes(s: &mut [u8]) -> RawBuf {
        RawBuf { ptr: s.as_mut_ptr(), len: s.len() }
    }

    pub fn len_bytes(&self) -> usize {
        self.len
    }

    pub fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    /// Whether two views start at the same byte (an in-place step).
    pub fn same_as(&self, other: &RawBuf) -> bool {
        self.ptr == other.ptr
    }

    /// The whole buffer as f32, read-only.
    ///
    /// # Safety
    /// No one writes these bytes while the slice lives.
    pub unsafe fn f32(&self) -> &[f32] {
        // SAFETY: the caller guarantees validity and no concurrent writer;
        // the runtime aligns every buffer to 64 bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<f32>(), self.len / 4) }
    }

    /// Elements `range` as mutable f32: the part of an output one cluster owns.
    ///
    /// # Safety
    /// No one else reads or writes these elements while the slice lives.
    /// Panics when `range` exceeds the buffer.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn f32_part(&self, range: Range<usize>) -> &mut [f32] {
        assert!(range.start <= range.end && range.end <= self.len / 4, "part {range:?} outside a buffer of {} f32", self.len / 4);
        // SAFETY: in bounds (checked above); exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.cast::<f32>().add(range.start), range.end - range.start) }
    }

    /// The whole buffer as bytes, read-only.
    ///
    /// # Safety
    /// No one writes these bytes while the slice lives.
    pub unsafe fn bytes(&self) -> &[u8] {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Bytes `range` as mutable.
    ///
    /// # Safety
    /// No one else reads or writes these bytes while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn bytes_part(&self, range: Range<usize>) -> &mut [u8] {
        assert!(range.start <= range.end && range.end <= self.len, "part {range:?} outside a buffer of {} bytes", self.len);
        // SAFETY: in bounds (checked above); exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.end - range.start) }
    }
}

/// The buffers of one step, in the order of [`crate::Step::inputs`] and
/// [`crate::Step::outputs`].
#[derive(Clone, Copy, Debug)]
pub struct Io<'a> {
    pub inputs: &'a [RawBuf],
    pub outputs: &'a [RawBuf],
}
