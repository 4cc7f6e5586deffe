//! The im2col rows of stride-1 "same" convolutions with AVX-512: such a
//! row of B is the input plane, flattened, shifted by the tap's offset,
//! with the window's edges zeroed. On 7×7 and 14×14 maps the run-by-run
//! copy of the portable gather spent ~25 cycles on each run of 7 or 14
//! floats (bounds, zero edges, copy dispatch): ResNet-50's layer4 packed
//! at ~1.4 floats/ns. Here 16 output columns at a time carry their input
//! row and column in vector lanes, and one masked load takes the lanes
//! whose window position lies inside the input (the others read nothing
//! and hold zero). AVX-512 gathers for the strided maps measured slower
//! than the runs.

use std::arch::x86_64::*;

/// The geometry one im2col row `k = (ci, ky, kx)` reads with: output
/// column `(oy, ox)` takes `plane[oy·sh + iy0][ox·sw + ix0]`, zero outside.
pub(super) struct Row<'a> {
    /// The input plane of channel `ci`, `ih × iw`.
    pub plane: &'a [f32],
    pub ih: usize,
    pub iw: usize,
    pub ow: usize,
    pub sh: usize,
    pub sw: usize,
    /// `ky·dh − ph`.
    pub iy0: isize,
    /// `kx·dw − pw`.
    pub ix0: isize,
}

/// The output row and column of the 16 lanes from column `pos` (the same
/// for every row of B a packer asks for from that column: computed once).
#[derive(Clone, Copy, Debug)]
pub(super) struct Start {
    pub pos: usize,
    pub ow: usize,
    oy: [i32; 16],
    ox: [i32; 16],
}

impl Start {
    pub(super) fn new(pos: usize, ow: usize) -> Start {
        let (mut oy, mut ox) = ([0i32; 16], [0i32; 16]);
        let (mut y, mut x) = ((pos / ow) as i32, (pos % ow) as i32);
        for l in 0..16 {
            (oy[l], ox[l]) = (y, x);
            x += 1;
            if x == ow as i32 {
                (y, x) = (y + 1, 0);
            }
        }
        Start { pos, ow, oy, ox }
    }
}

impl Row<'_> {
    /// Whether output column `o` reads input position `o + delta` of the
    /// flattened plane: stride 1 and an output the input's size ("same"
    /// padding), so a row of B is the plane shifted, its window's edges
    /// masked.
    pub(super) fn linear(&self) -> bool {
        self.sh == 1 && self.sw == 1 && self.ow == self.iw && self.ow > 0
    }
}

/// Columns `pos..pos + len` of the row into NR-column panels: column `j`
/// at `dst[(j / nr) · stride + j % nr]`, zeros from `len` to the end of the
/// last panel (`nr` a multiple of 16).
///
/// # Safety
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn fill_panels(r: &Row, pos: usize, start: &Start, len: usize, nr: usize, dst: &mut [f32], stride: usize) {
    assert!(r.linear() && r.plane.len() >= r.ih * r.iw && r.ih * r.iw < i32::MAX as usize / 2, "im2col gather geometry");
    let padded = len.next_multiple_of(nr);
    assert!(nr % 16 == 0 && (padded == 0 || dst.len() >= (padded / nr - 1) * stride + nr), "im2col gather panels");
    // Output column o reads flattened input position o + delta.
    let delta = r.iy0 * r.iw as isize + r.ix0;
    assert!(start.pos == pos && start.ow == r.ow, "im2col gather start");
    let (step_y, step_x) = ((16 / r.ow) as i32, (16 % r.ow) as i32);
    // Lane l starts at output column pos + l; every step moves 16 columns on.
    // SAFETY: 16 i32 each.
    let (mut oy, mut ox) = unsafe { (_mm512_loadu_si512(start.oy.as_ptr().cast()), _mm512_loadu_si512(start.ox.as_ptr().cast())) };
    let set = |v: usize| _mm512_set1_epi32(v as i32);
    let (iy0, ix0, ih, iw, ow) = (_mm512_set1_epi32(r.iy0 as i32), _mm512_set1_epi32(r.ix0 as i32), set(r.ih), set(r.iw), set(r.ow));
    let mut j = 0;
    while j < padded {
        let (iy, ix) = (_mm512_add_epi32(oy, iy0), _mm512_add_epi32(ox, ix0));
        // Unsigned compares: a negative row or column is out too.
        let inside = _mm512_cmplt_epu32_mask(iy, ih) & _mm512_cmplt_epu32_mask(ix, iw);
        let lanes = if len - j.min(len) >= 16 { 0xffff } else { ((1u32 << (len - j.min(len))) - 1) as __mmask16 };
        // SAFETY: the loaded lanes read row iy < ih, column ix < iw of the plane,
        // which for a same-size stride-1 map is position pos + j + delta of the
        // flattened plane; the 16 floats stored lie in one panel's row (checked above).
        unsafe {
            let v = _mm512_maskz_loadu_ps(inside & lanes, r.plane.as_ptr().wrapping_offset((pos + j) as isize + delta));
            _mm512_storeu_ps(dst.as_mut_ptr().add(j / nr * stride + j % nr), v);
        }
        // Next 16 columns: ox + 16 mod ow, carrying into oy.
        ox = _mm512_add_epi32(ox, _mm512_set1_epi32(step_x));
        oy = _mm512_add_epi32(oy, _mm512_set1_epi32(step_y));
        let wrap = _mm512_cmpge_epi32_mask(ox, ow);
        ox = _mm512_mask_sub_epi32(ox, wrap, ox, ow);
        oy = _mm512_mask_add_epi32(oy, wrap, oy, _mm512_set1_epi32(1));
        j += 16;
    }
}
