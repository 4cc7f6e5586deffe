//! 2-D f32 MaxPool and AveragePool over NCHW planes, row by row with
//! contiguous vector work; the semantics of [`super::Pool`] for two spatial
//! axes without an Indices output (any kernel, strides, dilations, padding,
//! windows that run past the padding as `ceil_mode` makes them, and either
//! divisor of AveragePool).
//!
//! Each output row's window rows are first reduced vertically into a
//! padded row whose padding holds the neutral value (`-inf` for max, `0`
//! for sums), so no tap ever tests a border; read as one flat array, the
//! padded rows of a band make every horizontal window a set of fixed
//! offsets, one long vector loop (see [`plane_flat`]). An average divides
//! by the product of the row's and the column's tap counts.
//!
//! MaxPool propagates NaN: a NaN anywhere in a window gives NaN, as the
//! reference does; a window with no tap inside the input gives `-inf`.
//!
//! The plane loop is one `#[inline(always)]` body compiled three times: with
//! AVX-512F, with AVX2 (`#[target_feature]`, chosen from the kernel's [`Isa`]
//! and checked at run time) and portable. Work items are the `N * C` planes.
//!
//! With AVX-512 three paths replace it: planes at most 32 wide reduce each
//! row in registers ([`small`]), wider MaxPools with 2- or 3-wide windows
//! at horizontal stride 2 pick each output vector from X by lane permutes
//! ([`strided`]), other wide ones with a horizontal stride of 1 or 2 reduce
//! bands of output rows straight from X ([`rows`]); the flat
//! path's per-row set-up cost more than the reduction on small planes,
//! and its strided outputs were picked one by one. With AVX2 the strided
//! MaxPools take [`strided_avx2`], the same scheme 8 lanes wide (output rows
//! of at most 32 all in registers: [`small_strided_avx2`]), and the
//! "same" 3×3/1 max and average pools on planes at most 32 wide
//! [`small_avx2`] (rows in registers).

use super::{Pool, PoolKind};
use crate::kernel::{expect_io, KernelImpl};
use crate::packed::Isa;
use crate::Io;
use serde::{Deserialize, Serialize};
use std::ops::Range;

#[cfg(target_arch = "x86_64")]
mod rows;
#[cfg(target_arch = "x86_64")]
mod small;
#[cfg(target_arch = "x86_64")]
mod strided;
#[cfg(target_arch = "x86_64")]
mod strided_avx2;
#[cfg(target_arch = "x86_64")]
mod small_avx2;
#[cfg(target_arch = "x86_64")]
mod small_strided_avx2;

/// A path computing one output plane from one input plane (`unsafe`: it
/// needs its ISA).
#[cfg(target_arch = "x86_64")]
type PlaneFn = unsafe fn(&Pool2d, &[f32], &mut [f32]);

/// A MaxPool or AveragePool with two spatial axes `[h, w]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pool2d {
    /// `Max` or `Average` (`Lp` is not handled here).
    pub kind: PoolKind,
    /// `N * C`.
    pub planes: u64,
    pub input: [u64; 2],
    pub kernel: [u64; 2],
    pub strides: [u64; 2],
    pub dilations: [u64; 2],
    pub pad_begin: [u64; 2],
    pub pad_end: [u64; 2],
    pub output: [u64; 2],
    pub isa: Isa,
    /// Bands of output rows the work is split into (1: whole planes). Work
    /// items are `row_bands · planes`, band-major, so that clusters split
    /// the rows of every plane, as the convolutions around split positions
    /// (splitting planes, half of each cluster's input sat in the other's
    /// cache).
    pub row_bands: u64,
}

/// The taps of one window along one axis: `n` taps inside the input from
/// input position `first`, and `padded` taps inside the padded extent.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Span {
    first: usize,
    n: usize,
    padded: usize,
}

/// One axis of the geometry, in `usize`.
#[derive(Clone, Copy, Debug)]
struct Axis {
    size: usize,
    out: usize,
    k: usize,
    s: usize,
    d: usize,
    pb: usize,
    pe: usize,
}

impl Axis {
    /// The taps of the window at output position `o`.
    fn span(&self, o: usize) -> Span {
        let pos = |k: usize| (o * self.s + k * self.d) as i64 - self.pb as i64;
        let (size, lo_pad, hi_pad) = (self.size as i64, -(self.pb as i64), (self.size + self.pe) as i64);
        let mut span = Span { first: 0, n: 0, padded: 0 };
        for k in 0..self.k {
            let p = pos(k);
            if p >= 0 && p < size {
                if span.n == 0 {
                    span.first = p as usize;
                }
                span.n += 1;
            }
            span.padded += usize::from(p >= lo_pad && p < hi_pad);
        }
        span
    }
}

/// The buffers one plane works in (slices of the cluster's scratch).
struct Bufs<'a> {
    /// Per output column: its tap count (inside the input, or with
    /// `count_include_pad` inside the padded extent).
    col_count: &'a [f32],
    /// A band's vertical reduction, then its padded input rows and its
    /// horizontal reduction (see [`plane_flat`]).
    flat: &'a mut [f32],
}

/// Max that propagates NaN from either side. Two selects and no
/// short-circuit, so that blocks of it compile to vector compares and
/// blends (the `||` form stayed scalar).
#[inline(always)]
fn max_nan(a: f32, b: f32) -> f32 {
    // b when b is NaN or not below a (a NaN compares false).
    let m = if a > b { a } else { b };
    #[allow(clippy::eq_op)]
    let a_nan = a != a;
    if a_nan {
        a
    } else {
        m
    }
}

/// `acc[i] = max_nan(acc[i], x[i])` or `acc[i] += x[i]` over the common
/// length: in blocks of 16 and then 8 (fixed-size blocks become whole
/// vector operations even for short rows, where a compiler's unrolled loop
/// would leave everything to its scalar remainder), then for max one last
/// overlapping block of 8, for sums one by one.
#[inline(always)]
fn combine(max: bool, acc: &mut [f32], x: &[f32]) {
    let n = acc.len().min(x.len());
    let done = combine_blocks::<16>(max, &mut acc[..n], &x[..n]);
    if max && n >= 8 {
        // Max is idempotent: the rest is at most two blocks of 8, which may
        // overlap values already done.
        if n - done > 8 {
            combine_blocks::<8>(true, &mut acc[done..done + 8], &x[done..done + 8]);
        }
        if n > done {
            combine_blocks::<8>(true, &mut acc[n - 8..n], &x[n - 8..n]);
        }
        return;
    }
    let done = done + combine_blocks::<8>(max, &mut acc[done..n], &x[done..n]);
    for (a, &v) in acc[done..n].iter_mut().zip(&x[done..n]) {
        *a = if max { max_nan(*a, v) } else { *a + v };
    }
}

/// [`combine`] over the whole blocks of `N`; returns how many values it did.
#[inline(always)]
fn combine_blocks<const N: usize>(max: bool, acc: &mut [f32], x: &[f32]) -> usize {
    for (a, v) in acc.chunks_exact_mut(N).zip(x.chunks_exact(N)) {
        let (a, v): (&mut [f32; N], &[f32; N]) = (a.try_into().unwrap(), v.try_into().unwrap());
        // On local copies: in place through the references the loop stayed scalar.
        let (mut t, v) = (*a, *v);
        if max {
            for i in 0..N {
                t[i] = max_nan(t[i], v[i]);
            }
        } else {
            for i in 0..N {
                t[i] += v[i];
            }
        }
        *a = t;
    }
    acc.len() - acc.len() % N
}

/// Taps reduced in one pass: a window wider or taller runs in groups.
const GROUP: usize = 16;

/// `dst[j] = op(base[offs[0] + j], base[offs[1] + j], ...)` over the
/// offsets, op the NaN-propagating max or the sum; with `onto`, `dst`'s own
/// values join the reduction first. Each output vector is reduced in a
/// register and stored once: chained in-place row updates stalled on
/// store-to-load forwarding (the masked tail of one update feeding the
/// next's load). Offsets satisfy `offs[t] + dst.len() <= base.len()`.
trait RowOps {
    fn reduce(max: bool, dst: &mut [f32], base: &[f32], offs: &[usize], onto: bool);

    /// `dst = src` (same length), inline: the library copy is a call, which
    /// costs more than the copy on rows of a few dozen floats.
    #[inline(always)]
    fn copy(dst: &mut [f32], src: &[f32]) {
        Self::reduce(true, dst, &src[..dst.len()], &[0], false)
    }
}

/// The portable rows.
struct PortableRows;

impl RowOps for PortableRows {
    #[inline(always)]
    fn reduce(max: bool, dst: &mut [f32], base: &[f32], offs: &[usize], onto: bool) {
        let n = dst.len();
        for (t, &o) in offs.iter().enumerate() {
            if t == 0 && !onto {
                dst.copy_from_slice(&base[o..o + n]);
            } else {
                combine(max, dst, &base[o..o + n]);
            }
        }
    }
}

/// Checks the offsets of a [`RowOps::reduce`] against `base`.
#[inline(always)]
fn check_offsets(n: usize, base: &[f32], offs: &[usize]) {
    assert!(offs.iter().all(|&o| o + n <= base.len()), "pool2d row tap out of bounds");
}

/// Defines the SIMD [`RowOps`] `$name` from the ISA's intrinsics; the last
/// partial vector is one more full vector ending at the row's end (computed
/// before anything is stored) or, for rows shorter than a vector, `$tail`.
#[cfg(target_arch = "x86_64")]
macro_rules! simd_rows {
    ($name:ident, $feat:literal, $lanes:literal, $vec:ty, $load:path, $store:path, $add:path, $max_nan:path, $tail:path) => {
        /// SIMD rows.
        struct $name;

        impl RowOps for $name {
            #[inline(always)]
            fn reduce(max: bool, dst: &mut [f32], base: &[f32], offs: &[usize], onto: bool) {
                check_offsets(dst.len(), base, offs);
                // SAFETY: only reached from the plane function of this ISA, whose caller checked it.
                unsafe { Self::run(max, dst, base, offs, onto) }
            }
        }

        impl $name {
            #[target_feature(enable = $feat)]
            #[inline]
            fn run(max: bool, dst: &mut [f32], base: &[f32], offs: &[usize], onto: bool) {
                let n = dst.len();
                if n < $lanes {
                    return $tail(max, dst, base, offs, onto);
                }
                // Every access below goes through d (writes) or base (reads).
                let d = dst.as_mut_ptr();
                match (onto, offs) {
                    // 3×3 windows: the taps unrolled, their offsets in registers.
                    (false, &[o0, o1, o2]) => Self::sweep(d, n, |j| {
                        let b = base.as_ptr();
                        // SAFETY: j + lanes <= n, and every offset + n is inside base (checked).
                        unsafe {
                            let (v0, v1, v2) = ($load(b.add(o0 + j)), $load(b.add(o1 + j)), $load(b.add(o2 + j)));
                            if max {
                                $max_nan($max_nan(v0, v1), v2)
                            } else {
                                $add($add(v0, v1), v2)
                            }
                        }
                    }),
                    _ => Self::sweep(d, n, |j| {
                        let b = base.as_ptr();
                        // SAFETY: j + lanes <= n, and every offset + n is inside base (checked).
                        unsafe {
                            let (mut r, rest) = if onto { ($load(d.add(j)), offs) } else { ($load(b.add(offs[0] + j)), &offs[1..]) };
                            for &o in rest {
                                let v = $load(b.add(o + j));
                                r = if max { $max_nan(r, v) } else { $add(r, v) };
                            }
                            r
                        }
                    }),
                }
            }

            /// Stores `at(j)` at every vector position `j` of the `n >= lanes`
            /// floats at `d`, the last one ending at the end; `at` may read
            /// them, so the last vector is computed first.
            #[target_feature(enable = $feat)]
            #[inline]
            fn sweep(d: *mut f32, n: usize, at: impl Fn(usize) -> $vec) {
                let last = n - $lanes;
                let tail = at(last);
                let mut j = 0;
                while j < last {
                    let r = at(j);
                    // SAFETY: j + lanes <= n.
                    unsafe { $store(d.add(j), r) };
                    j += $lanes;
                }
                // SAFETY: last + lanes == n.
                unsafe { $store(d.add(last), tail) };
            }
        }
    };
}

/// NaN-propagating max of two AVX-512 vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn max_nan_avx512(p: std::arch::x86_64::__m512, q: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    // maxps gives its second operand when either is NaN: q's NaN passes,
    // p's is put back by the blend.
    _mm512_mask_mov_ps(_mm512_max_ps(p, q), _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(p, p), p)
}

/// NaN-propagating max of two AVX vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn max_nan_avx2(p: std::arch::x86_64::__m256, q: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    _mm256_blendv_ps(_mm256_max_ps(p, q), p, _mm256_cmp_ps::<_CMP_UNORD_Q>(p, p))
}

/// A row shorter than an AVX-512 vector: masked loads and one masked store.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn short_avx512(max: bool, dst: &mut [f32], base: &[f32], offs: &[usize], onto: bool) {
    use std::arch::x86_64::*;
    let m = ((1u32 << dst.len()) - 1) as __mmask16;
    let (d, b) = (dst.as_mut_ptr(), base.as_ptr());
    // SAFETY: the masked lanes are the row's (checked offsets); masked-off lanes are not touched.
    unsafe {
        let (mut r, rest) = if onto { (_mm512_maskz_loadu_ps(m, d), offs) } else { (_mm512_maskz_loadu_ps(m, b.add(offs[0])), &offs[1..]) };
        for &o in rest {
            let v = _mm512_maskz_loadu_ps(m, b.add(o));
            r = if max { max_nan_avx512(r, v) } else { _mm512_add_ps(r, v) };
        }
        _mm512_mask_storeu_ps(d, m, r);
    }
}

#[cfg(target_arch = "x86_64")]
simd_rows!(Avx512Rows, "avx512f", 16, std::arch::x86_64::__m512, std::arch::x86_64::_mm512_loadu_ps, std::arch::x86_64::_mm512_storeu_ps, std::arch::x86_64::_mm512_add_ps, max_nan_avx512, short_avx512);
#[cfg(target_arch = "x86_64")]
simd_rows!(Avx2Rows, "avx2", 8, std::arch::x86_64::__m256, std::arch::x86_64::_mm256_loadu_ps, std::arch::x86_64::_mm256_storeu_ps, std::arch::x86_64::_mm256_add_ps, max_nan_avx2, short_portable);

/// A row shorter than a vector, value by value.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline(always)]
fn short_portable(max: bool, dst: &mut [f32], base: &[f32], offs: &[usize], onto: bool) {
    PortableRows::reduce(max, dst, base, offs, onto)
}

impl Pool2d {
    /// The 2-D kernel for `p` when it has two spatial axes, no Indices
    /// output and is a Max or Average pool.
    pub fn from_pool(p: &Pool, isa: Isa) -> Option<Pool2d> {
        if p.input.len() != 2 || p.indices.is_some() || matches!(p.kind, PoolKind::Lp { .. }) {
            return None;
        }
        let two = |v: &[u64]| [v[0], v[1]];
        Some(Pool2d {
            kind: p.kind,
            planes: p.planes,
            input: two(&p.input),
            kernel: two(&p.kernel),
            strides: two(&p.strides),
            dilations: two(&p.dilations),
            pad_begin: two(&p.pad_begin),
            pad_end: two(&p.pad_end),
            output: two(&p.output),
            isa,
            row_bands: 1,
        })
    }

    /// This pool split into `bands` bands of output rows, when every band
    /// reads at least one input row.
    pub fn with_row_bands(self, bands: u64) -> Option<Pool2d> {
        let k = Pool2d { row_bands: bands, ..self };
        (bands >= 1 && (0..k.bands()).all(|b| k.band(b).is_some())).then_some(k)
    }

    /// Bands with output rows (the last ones may have none when bands do
    /// not divide the rows).
    fn bands(&self) -> usize {
        let oh = self.axis(0).out;
        oh.div_ceil(oh.div_ceil(self.row_bands.max(1) as usize).max(1)).max(1)
    }

    /// Band `b`: its output rows, its input rows and the pool over just
    /// those rows (the padding kept where the band meets the plane's top or
    /// bottom; inside, the band's rows hold every tap of its windows).
    fn band(&self, b: usize) -> Option<(Range<usize>, Range<usize>, Pool2d)> {
        let h = self.axis(0);
        let per = h.out.div_ceil(self.row_bands.max(1) as usize).max(1);
        let rows = b * per..((b + 1) * per).min(h.out);
        let (inputs, pool) = self.rows_band(rows.clone())?;
        Some((rows, inputs, pool))
    }

    /// Output rows `rows` alone: the input rows they read and the pool over
    /// just those rows (see [`Pool2d::band`]); None when `rows` is empty or
    /// reads no input row.
    pub(crate) fn rows_band(&self, rows: Range<usize>) -> Option<(Range<usize>, Pool2d)> {
        let h = self.axis(0);
        if rows.is_empty() || rows.end > h.out {
            return None;
        }
        let first = (rows.start * h.s) as i64 - h.pb as i64;
        let last = ((rows.end - 1) * h.s + (h.k.max(1) - 1) * h.d) as i64 - h.pb as i64;
        let (a, e) = (first.max(0) as usize, ((last + 1).max(0) as usize).min(h.size));
        if e <= a {
            return None;
        }
        let pool = Pool2d {
            input: [(e - a) as u64, self.input[1]],
            output: [rows.len() as u64, self.output[1]],
            pad_begin: [(h.pb + a - rows.start * h.s) as u64, self.pad_begin[1]],
            pad_end: [if e == h.size { h.pe as u64 } else { 0 }, self.pad_end[1]],
            row_bands: 1,
            ..self.clone()
        };
        Some((a..e, pool))
    }

    fn axis(&self, a: usize) -> Axis {
        let u = |v: &[u64; 2]| v[a] as usize;
        Axis { size: u(&self.input), out: u(&self.output), k: u(&self.kernel), s: u(&self.strides), d: u(&self.dilations), pb: u(&self.pad_begin), pe: u(&self.pad_end) }
    }

    /// Width of a padded row: the padded input row and every tap any
    /// output column reads.
    fn row_len(&self) -> usize {
        let w = self.axis(1);
        let reach = if w.out == 0 || w.k == 0 { 0 } else { (w.out - 1) * w.s + (w.k - 1) * w.d + 1 };
        (w.pb + w.size).max(reach)
    }

    /// Scratch floats: the column counts, the padded plane, its vertical reduction.
    pub(crate) fn scratch_floats(&self) -> usize {
        let (p, v) = self.flat_floats();
        self.axis(1).out + self.flat_or_rows_floats(p + v)
    }

    /// The buffer after the column counts: the flat path's, or the rows path's row.
    fn flat_or_rows_floats(&self, flat: usize) -> usize {
        #[cfg(target_arch = "x86_64")]
        if self.takes_small() {
            return self.small_floats();
        }
        #[cfg(target_arch = "x86_64")]
        if self.takes_strided() || self.takes_strided_avx2() || self.takes_small_avx2() || self.takes_small_strided_avx2() {
            return 0;
        }
        #[cfg(target_arch = "x86_64")]
        if self.takes_rows() {
            return self.row_buffer_floats();
        }
        flat
    }

    /// Output rows per band: as many as keep the band's rows within about
    /// 16 KiB (L1), at least one.
    fn band_rows(&self) -> usize {
        (4096 / self.row_len().max(1)).clamp(1, self.axis(0).out.max(1))
    }

    /// Padded input rows a band of `rows` output rows reads (stride 1).
    fn band_inputs(&self, rows: usize) -> usize {
        let h = self.axis(0);
        rows.max(1) + (h.k.max(1) - 1) * h.d
    }

    /// Floats of a band's vertical reduction (with the horizontal reach
    /// past its last row start after it, which the horizontal pass reads)
    /// and of the buffer that holds, for stride 1, the band's padded input
    /// rows (with the same reach) and then the horizontal reduction.
    fn flat_floats(&self) -> (usize, usize) {
        let (w, wp, band) = (self.axis(1), self.row_len(), self.band_rows());
        let slack = w.k.saturating_sub(1) * w.d;
        let inputs = if self.axis(0).s == 1 { self.band_inputs(band) } else { band };
        (band * wp + slack, inputs * wp + slack)
    }

    /// The ISA the rows run with: the requested one when the CPU has it.
    fn run_isa(&self) -> Isa {
        if self.isa.available() {
            self.isa
        } else {
            Isa::Generic
        }
    }

    /// Computes one output plane `y` from input plane `x`.
    fn plane(&self, x: &[f32], y: &mut [f32], bufs: &mut Bufs) {
        match self.run_isa() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX-512F (checked by run_isa).
            Isa::Avx512 => unsafe { plane_avx512(self, x, y, bufs) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX2 (checked by run_isa).
            Isa::Avx2 => unsafe { plane_avx2(self, x, y, bufs) },
            _ => plane_flat::<PortableRows>(self, x, y, bufs),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn plane_avx512(k: &Pool2d, x: &[f32], y: &mut [f32], bufs: &mut Bufs) {
    plane_flat::<Avx512Rows>(k, x, y, bufs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn plane_avx2(k: &Pool2d, x: &[f32], y: &mut [f32], bufs: &mut Bufs) {
    plane_flat::<Avx2Rows>(k, x, y, bufs)
}

/// One output plane in bands of output rows ([`Pool2d::band_rows`]). The
/// vertical pass reduces, for each output row, the window's input rows that
/// lie inside the input into one row of `V`, `row_len` wide, whose padding
/// columns hold the neutral value (`-inf` for max, `0` for sums), so no tap
/// ever tests a border. Read as one flat array, `V` makes every horizontal
/// window a set of fixed offsets: `H[i] = op_t V[i + t·dw]` is one long
/// vector loop over the whole band, and output `(oy, ox)` is
/// `H[oy·row_len + ox·sw]` (the positions in between, and past `ow`, are
/// computed and dropped). An average divides by the product of the row's
/// and the column's tap counts.
#[inline(always)]
fn plane_flat<O: RowOps>(k: &Pool2d, x: &[f32], y: &mut [f32], bufs: &mut Bufs) {
    let (h, w) = (k.axis(0), k.axis(1));
    let (max, include_pad) = match k.kind {
        PoolKind::Average { count_include_pad } => (false, count_include_pad),
        _ => (true, false),
    };
    let neutral = if max { f32::NEG_INFINITY } else { 0.0 };
    let (wp, band, slack) = (k.row_len(), k.band_rows(), w.k.saturating_sub(1) * w.d);
    let (v_len, _) = k.flat_floats();
    let (v_all, p_all) = bufs.flat.split_at_mut(v_len);
    let mut offs = [0usize; GROUP];
    for oy0 in (0..h.out).step_by(band) {
        let rows = band.min(h.out - oy0);
        let v = &mut v_all[..rows * wp + slack];
        if h.s == 1 {
            // The band's padded input rows (row i is input row oy0 + i − pb)
            // in P, then one vertical pass over the band flattened.
            let p = &mut p_all[..k.band_inputs(rows) * wp + slack];
            p.fill(neutral);
            for i in 0..k.band_inputs(rows) {
                let r = (oy0 + i).wrapping_sub(h.pb);
                if r < h.size {
                    O::copy(&mut p[i * wp + w.pb..][..w.size], &x[r * w.size..][..w.size]);
                }
            }
            for t0 in (0..h.k).step_by(GROUP) {
                let group = GROUP.min(h.k - t0);
                for (t, o) in offs[..group].iter_mut().enumerate() {
                    *o = (t0 + t) * h.d * wp;
                }
                O::reduce(max, v, p, &offs[..group], t0 > 0);
            }
        } else {
            // Output rows far apart: each reduces its rows straight from X.
            v.fill(neutral);
            for r in 0..rows {
                let span = h.span(oy0 + r);
                let dst = &mut v[r * wp + w.pb..][..w.size];
                for t0 in (0..span.n).step_by(GROUP) {
                    let group = GROUP.min(span.n - t0);
                    for (t, o) in offs[..group].iter_mut().enumerate() {
                        *o = (span.first + (t0 + t) * h.d) * w.size;
                    }
                    O::reduce(max, dst, x, &offs[..group], t0 > 0);
                }
            }
        }
        let hor = &mut p_all[..rows * wp];
        for t0 in (0..w.k).step_by(GROUP) {
            let group = GROUP.min(w.k - t0);
            for (t, o) in offs[..group].iter_mut().enumerate() {
                *o = (t0 + t) * w.d;
            }
            O::reduce(max, hor, v, &offs[..group], t0 > 0);
        }
        for (r, yr) in y[oy0 * w.out..][..rows * w.out].chunks_exact_mut(w.out).enumerate() {
            let row = &hor[r * wp..][..wp];
            let scale = if max {
                None
            } else {
                let span = h.span(oy0 + r);
                Some((if include_pad { span.padded } else { span.n }) as f32)
            };
            match (scale, w.s) {
                (None, 1) => O::copy(yr, row),
                (None, s) => yr.iter_mut().zip(row.iter().step_by(s)).for_each(|(o, &v)| *o = v),
                (Some(n), s) => yr.iter_mut().zip(row.iter().step_by(s)).zip(bufs.col_count).for_each(|((o, &v), &c)| *o = v / (n * c)),
            }
        }
    }
}

impl KernelImpl for Pool2d {
    fn name(&self) -> String {
        let op = if self.kind == PoolKind::Max { "maxpool2d" } else { "avgpool2d" };
        format!("f32_{op}_simd_{}", self.isa.name())
    }

    fn work_items(&self) -> u64 {
        self.planes * self.bands() as u64
    }

    fn scratch_bytes(&self, _items: u64) -> usize {
        let bands = (0..self.bands()).filter_map(|b| self.band(b)).map(|(_, _, k)| k.scratch_floats());
        bands.fold(self.scratch_floats(), usize::max) * 4
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)?;
        if matches!(self.kind, PoolKind::Lp { .. }) || self.strides.contains(&0) || self.dilations.contains(&0) {
            return Err(format!("2-D pooling needs Max or Average and nonzero strides and dilations: {self:?}"));
        }
        if self.row_bands == 0 || (self.axis(0).out > 0 && (0..self.bands()).any(|b| self.band(b).is_none())) {
            return Err(format!("2-D pooling row bands must each read an input row: {self:?}"));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, scratch: &mut [u8]) {
        let (h, w) = (self.axis(0), self.axis(1));
        let (in_plane, out_plane) = (h.size * w.size, h.out * w.out);
        if out_plane == 0 {
            return;
        }
        // SAFETY: inputs are not written during the step (the run contract).
        let x = unsafe { io.inputs[0].f32() };
        // SAFETY: any bit pattern is a valid f32; the slice is only reinterpreted.
        let (pre, scratch, _) = unsafe { scratch.align_to_mut::<f32>() };
        assert!(pre.is_empty(), "pool2d scratch is not 4-byte aligned");
        let planes = self.planes as usize;
        let (p0, p1) = (part.start as usize, part.end as usize);
        if planes == 0 {
            return;
        }
        let y = &io.outputs[0];
        for b in p0 / planes..p1.div_ceil(planes) {
            let (rows, inputs, band) = match self.bands() {
                1 => (0..h.out, 0..h.size, self.clone()),
                _ => match self.band(b) {
                    Some(band) => band,
                    None => continue,
                },
            };
            let (q0, q1) = (p0.max(b * planes) - b * planes, p1.min((b + 1) * planes) - b * planes);
            let xb = &x[q0 * in_plane + inputs.start * w.size..(q1 - 1) * in_plane + inputs.end * w.size];
            let at = q0 * out_plane + rows.start * w.out;
            assert!((q1 - 1) * out_plane + rows.end * w.out <= y.len_bytes() / 4, "pool2d output is too small");
            // SAFETY: inside the output (asserted); this part owns items
            // b · planes + q0..q1: these rows of planes q0..q1.
            let yb = unsafe { (y.as_ptr() as *mut f32).add(at) };
            // SAFETY: as above.
            unsafe { band.run_planes(xb, [in_plane, out_plane], yb, scratch) };
        }
    }
}

impl Pool2d {
    /// Pools the planes of `x` (`steps[0]` floats apart, each this pool's
    /// input) into the output planes at `y` (`steps[1]` apart).
    ///
    /// # Safety
    /// The caller owns those output planes' floats.
    pub(crate) unsafe fn run_planes(&self, x: &[f32], steps: [usize; 2], y: *mut f32, scratch: &mut [f32]) {
        let (h, w) = (self.axis(0), self.axis(1));
        let (in_plane, out_plane) = (h.size * w.size, h.out * w.out);
        let [x_step, y_step] = steps;
        let (p0, p1) = (0, (x.len() + x_step - in_plane) / x_step);
        assert!(scratch.len() >= self.scratch_floats() && in_plane <= x_step && out_plane <= y_step, "pool2d scratch or plane sizes");
        // SAFETY: the caller's contract: output plane pl's floats.
        let y_plane = |pl: usize| unsafe { std::slice::from_raw_parts_mut(y.add(pl * y_step), out_plane) };
        let (col_count, rest) = scratch.split_at_mut(w.out);
        let (p, v) = self.flat_floats();
        let flat = &mut rest[..self.flat_or_rows_floats(p + v)];
        let include_pad = self.kind == PoolKind::Average { count_include_pad: true };
        for (ox, c) in col_count.iter_mut().enumerate() {
            let span = w.span(ox);
            *c = (if include_pad { span.padded } else { span.n }) as f32;
        }
        #[cfg(target_arch = "x86_64")]
        if self.takes_small() {
            // SAFETY: takes_small checked the CPU has AVX-512F.
            unsafe { small::planes(self, x, steps, y, flat, col_count, &small::Taps::of(self)) };
            return;
        }
        // The paths that take one plane at a time from X, no buffer.
        #[cfg(target_arch = "x86_64")]
        let per_plane: Option<PlaneFn> = if self.takes_strided() {
            Some(strided::plane)
        } else if self.takes_small_avx2() {
            Some(small_avx2::plane)
        } else if self.takes_small_strided_avx2() {
            Some(small_strided_avx2::plane)
        } else if self.takes_strided_avx2() {
            Some(strided_avx2::plane)
        } else {
            None
        };
        #[cfg(target_arch = "x86_64")]
        if let Some(plane) = per_plane {
            for pl in p0..p1 {
                // SAFETY: each takes_* checked the CPU has the path's ISA.
                unsafe { plane(self, &x[pl * x_step..][..in_plane], y_plane(pl)) };
            }
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if self.takes_rows() {
            rows::reset(self, flat);
            for pl in p0..p1 {
                // SAFETY: takes_rows checked the CPU has AVX-512F.
                unsafe { rows::plane(self, &x[pl * x_step..][..in_plane], y_plane(pl), flat, col_count) };
            }
            return;
        }
        let mut bufs = Bufs { col_count, flat };
        for pl in p0..p1 {
            self.plane(&x[pl * x_step..][..in_plane], y_plane(pl), &mut bufs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::testutil::*;

    /// A random 2-D geometry: planes 1×1 to 60×60, kernels 1–4, strides
    /// 1–3, dilations 1–2, pads below the kernel, and half the time the
    /// `ceil_mode` output (windows may run past the end padding).
    fn random_pool(rng: &mut Rng, kind: PoolKind) -> Pool {
        let mut k = Pool { kind, planes: 1 + rng.below(5), input: vec![], kernel: vec![], strides: vec![], dilations: vec![], pad_begin: vec![], pad_end: vec![], output: vec![], indices: None };
        let ceil = rng.below(2) == 1;
        for _ in 0..2 {
            let (kk, s, d) = (1 + rng.below(4), 1 + rng.below(3), 1 + rng.below(2));
            let (pb, pe) = (rng.below(kk), rng.below(kk));
            let eff = (kk - 1) * d + 1;
            let inp = if rng.below(4) == 0 { eff.max(1) + rng.below(3) } else { (eff + rng.below(60)).min(60).max(eff) };
            let span = inp + pb + pe - eff;
            let mut out = span / s + 1;
            // ceil_mode: one more window when it starts inside the input or the begin padding.
            if ceil && span % s != 0 && (out * s) < inp + pb {
                out += 1;
            }
            k.input.push(inp);
            k.kernel.push(kk);
            k.strides.push(s);
            k.dilations.push(d);
            k.pad_begin.push(pb);
            k.pad_end.push(pe);
            k.output.push(out);
        }
        k
    }

    const KINDS: [PoolKind; 3] = [PoolKind::Max, PoolKind::Average { count_include_pad: true }, PoolKind::Average { count_include_pad: false }];

    /// A random MaxPool the strided path takes: any vertical geometry, a
    /// horizontal window of 2 or 3 at stride 2 over rows 33–140 wide.
    fn random_strided(rng: &mut Rng, kind: PoolKind) -> Pool {
        if kind != PoolKind::Max {
            return random_strided_average(rng, kind);
        }
        let mut k = random_pool(rng, PoolKind::Max);
        let (kk, pe) = (2 + rng.below(2), rng.below(3));
        let pb = rng.below(kk);
        let inp = 33 + rng.below(108);
        let span = inp + pb + pe.min(kk - 1) - kk;
        let ceil = rng.below(2) == 1 && span % 2 != 0 && (span / 2 + 1) * 2 < inp + pb;
        k.input[1] = inp;
        k.kernel[1] = kk;
        k.strides[1] = 2;
        k.dilations[1] = 1;
        k.pad_begin[1] = pb;
        k.pad_end[1] = pe.min(kk - 1);
        k.output[1] = span / 2 + 1 + u64::from(ceil);
        k
    }

    /// An AveragePool the AVX2 strided path takes: width 2 or 3 at stride
    /// 2, any height and vertical stride, padding short of a window, and
    /// `ceil_mode` windows at the edges while they start inside the input.
    fn random_strided_average(rng: &mut Rng, kind: PoolKind) -> Pool {
        let mut k = random_pool(rng, kind);
        let (kh, kw) = (1 + rng.below(3), 2 + rng.below(2));
        let (ih, iw) = (kh + rng.below(12), 17 + rng.below(60));
        let sh = 1 + rng.below(3);
        let mut axis = |size: u64, kk: u64, s: u64| {
            let (pb, pe) = (rng.below(kk), rng.below(kk));
            let span = size + pb + pe - kk;
            let ceil = span / s + 1 + u64::from(span % s != 0);
            let out = if rng.below(2) == 1 && s * (ceil - 1) < size + pb { ceil } else { span / s + 1 };
            (pb, pe, out)
        };
        let ((hb, he, oh), (wb, we, ow)) = (axis(ih, kh, sh), axis(iw, kw, 2));
        (k.input, k.kernel, k.strides, k.dilations) = (vec![ih, iw], vec![kh, kw], vec![sh, 2], vec![1, 1]);
        (k.pad_begin, k.pad_end, k.output) = (vec![hb, wb], vec![he, we], vec![oh, ow]);
        k
    }

    /// A "same" 3×3/1 pool of `kind` on a plane up to 33 wide (AVX2's
    /// small path up to 32).
    fn random_same(rng: &mut Rng, kind: PoolKind) -> Pool {
        let mut k = random_pool(rng, kind);
        let (h, w) = (1 + rng.below(20), 1 + rng.below(33));
        (k.input, k.output) = (vec![h, w], vec![h, w]);
        (k.kernel, k.strides, k.dilations, k.pad_begin, k.pad_end) = (vec![3, 3], vec![1, 1], vec![1, 1], vec![1, 1], vec![1, 1]);
        k
    }

    fn check_against_generic(seed: u64, cases: usize, special: bool) {
        check_geometries(seed, cases, special, random_pool)
    }

    fn check_geometries(seed: u64, cases: usize, special: bool, geometry: fn(&mut Rng, PoolKind) -> Pool) {
        let mut rng = Rng(seed);
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            for case in 0..cases {
                let g = geometry(&mut rng, KINDS[case % 3]);
                let k = Pool2d::from_pool(&g, isa).unwrap();
                // Row bands where every band reads a row (1 otherwise).
                let k = k.clone().with_row_bands(1 + rng.below(4)).unwrap_or(k);
                let mut x = rng.vec(g.planes as usize * (g.input[0] * g.input[1]) as usize);
                if special {
                    for _ in 0..1 + x.len() / 50 {
                        let i = rng.below(x.len() as u64) as usize;
                        x[i] = [f32::NAN, f32::NEG_INFINITY, f32::INFINITY][rng.below(3) as usize];
                    }
                }
                let n_out = g.planes as usize * (g.output[0] * g.output[1]) as usize;
                let want = run_parts(&g, std::slice::from_ref(&x), &[n_out], 1);
                for parts in [1, 2, 3] {
                    let got = run_parts(&k, std::slice::from_ref(&x), &[n_out], parts);
                    for (i, (&a, &b)) in got[0].iter().zip(&want[0]).enumerate() {
                        let ok = a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-5 * (1.0 + b.abs());
                        assert!(ok, "{isa:?} {k:?} element {i}: got {a}, want {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn row_bands_match_whole_planes() {
        // Bands of output rows (2-6, so some bands may be empty or one row)
        // against the same pool over whole planes, split in parts across
        // band boundaries; and the stems' pools, which must band.
        let mut rng = Rng(27);
        let stems = [([111u64, 111u64], [0u64, 0u64], [1u64, 1u64], [55u64, 55u64]), ([112, 112], [1, 1], [1, 1], [56, 56])];
        let mut banded = 0;
        for case in 0..300 {
            let g = match case {
                0 | 1 => {
                    let (input, pb, pe, output) = stems[case];
                    Pool { kind: PoolKind::Max, planes: 3, input: input.to_vec(), kernel: vec![3, 3], strides: vec![2, 2], dilations: vec![1, 1], pad_begin: pb.to_vec(), pad_end: pe.to_vec(), output: output.to_vec(), indices: None }
                }
                _ => random_pool(&mut rng, KINDS[case % 3]),
            };
            let whole = Pool2d::from_pool(&g, Isa::ALL.into_iter().rfind(|i| i.available()).unwrap()).unwrap();
            let bands = 2 + rng.below(5);
            let Some(k) = whole.clone().with_row_bands(bands) else {
                assert!(case >= 2, "the stem pool {g:?} did not band");
                continue;
            };
            banded += 1;
            assert_eq!(k.work_items(), g.planes * k.bands() as u64);
            let x = rng.vec(g.planes as usize * (g.input[0] * g.input[1]) as usize);
            let n_out = g.planes as usize * (g.output[0] * g.output[1]) as usize;
            let want = run_parts(&whole, std::slice::from_ref(&x), &[n_out], 1);
            for parts in [1, 2, 5] {
                let got = run_parts(&k, std::slice::from_ref(&x), &[n_out], parts);
                assert_eq!(got, want, "{k:?} in {parts} parts");
            }
        }
        assert!(banded > 200, "only {banded} geometries banded");
    }

    #[test]
    fn matches_generic_on_random_geometries_every_isa_part1() {
        check_against_generic(21, 150, false);
    }

    #[test]
    fn matches_generic_on_random_geometries_every_isa_part2() {
        check_against_generic(22, 150, false);
    }

    #[test]
    fn matches_generic_with_nan_and_infinities_every_isa() {
        check_against_generic(23, 150, true);
    }

    #[test]
    fn strided_path_matches_generic() {
        check_geometries(25, 120, true, random_strided);
    }

    /// A MaxPool AVX2's small strided path takes: 2×2 or 3×3 at stride 2,
    /// padding before of 0 or 1, after up to a window less one, `ceil_mode`
    /// windows while they start inside, output rows of 1 to 33 (33: past
    /// the path, the general one).
    fn random_small_strided(rng: &mut Rng, _kind: PoolKind) -> Pool {
        let mut k = random_pool(rng, PoolKind::Max);
        let kk = 2 + rng.below(2);
        let (ih, iw) = (kk + rng.below(30), kk + rng.below(66));
        let mut axis = |size: u64| {
            let (pb, pe) = (rng.below(2), rng.below(kk));
            let span = size + pb + pe - kk;
            let ceil = span / 2 + 1 + u64::from(span % 2 != 0);
            let out = if rng.below(2) == 1 && 2 * (ceil - 1) < size + pb { ceil } else { span / 2 + 1 };
            (pb, pe, out)
        };
        let ((hb, he, oh), (wb, we, ow)) = (axis(ih), axis(iw));
        (k.input, k.kernel, k.strides, k.dilations) = (vec![ih, iw], vec![kk, kk], vec![2, 2], vec![1, 1]);
        (k.pad_begin, k.pad_end, k.output) = (vec![hb, wb], vec![he, we], vec![oh, ow]);
        k
    }

    #[test]
    fn small_strided_path_matches_generic() {
        check_geometries(29, 200, true, random_small_strided);
        // The generator reaches the path where the CPU has AVX2.
        let mut rng = Rng(29);
        let taken = (0..200).filter(|_| Pool2d::from_pool(&random_small_strided(&mut rng, PoolKind::Max), Isa::Avx2).is_some_and(|k| k.takes_small_strided_avx2())).count();
        assert!(!Isa::Avx2.available() || taken > 150, "the small strided path took {taken} of 200");
    }

    #[test]
    fn small_same_path_matches_generic() {
        check_geometries(27, 120, true, random_same);
    }

    #[test]
    fn wide_planes_run_in_several_bands() {
        // Rows of 300+ floats: a band holds about a dozen output rows, so
        // these planes cross band boundaries (strides 1 and 2, both kinds).
        let mut rng = Rng(24);
        for (s, kind) in [(1, PoolKind::Max), (2, PoolKind::Max), (1, PoolKind::Average { count_include_pad: false }), (2, PoolKind::Average { count_include_pad: true })] {
            let (ih, iw, kk, p) = (77u64, 301u64, 3u64, 1u64);
            let out = |n: u64| (n + 2 * p - kk) / s + 1;
            let g = Pool { kind, planes: 2, input: vec![ih, iw], kernel: vec![kk, kk], strides: vec![s, s], dilations: vec![1, 1], pad_begin: vec![p, p], pad_end: vec![p, p], output: vec![out(ih), out(iw)], indices: None };
            let x = rng.vec((2 * ih * iw) as usize);
            let n_out = (2 * out(ih) * out(iw)) as usize;
            let want = run_parts(&g, std::slice::from_ref(&x), &[n_out], 1);
            for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
                let k = Pool2d::from_pool(&g, isa).unwrap();
                assert!(k.band_rows() * 2 < out(ih) as usize, "{g:?} runs in fewer than three bands");
                let got = run_parts(&k, std::slice::from_ref(&x), &[n_out], 2);
                assert_close(&got[0], &want[0], 1e-5);
            }
        }
    }

    #[test]
    fn max_propagates_nan_and_keeps_neg_infinity() {
        // 1×4 plane, 1×2 windows, stride 2: (NaN, 1) and (-inf, -inf).
        let g = Pool {
            kind: PoolKind::Max,
            planes: 1,
            input: vec![1, 4],
            kernel: vec![1, 2],
            strides: vec![1, 2],
            dilations: vec![1, 1],
            pad_begin: vec![0, 0],
            pad_end: vec![0, 0],
            output: vec![1, 2],
            indices: None,
        };
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            let k = Pool2d::from_pool(&g, isa).unwrap();
            for x in [vec![f32::NAN, 1.0, f32::NEG_INFINITY, f32::NEG_INFINITY], vec![1.0, f32::NAN, f32::NEG_INFINITY, f32::NEG_INFINITY]] {
                let got = run_parts(&k, &[x], &[2], 1);
                assert!(got[0][0].is_nan(), "{isa:?}: {:?}", got[0]);
                assert_eq!(got[0][1], f32::NEG_INFINITY);
            }
        }
    }

    #[test]
    fn hand_made_average_with_padding() {
        // 1×3 row 1,2,3; 1×3 windows, stride 2, pads 1/1 → (0+1+2), (2+3+0).
        for (include, want) in [(true, [1.0, 5.0 / 3.0]), (false, [1.5, 2.5])] {
            let g = Pool {
                kind: PoolKind::Average { count_include_pad: include },
                planes: 1,
                input: vec![1, 3],
                kernel: vec![1, 3],
                strides: vec![1, 2],
                dilations: vec![1, 1],
                pad_begin: vec![0, 1],
                pad_end: vec![0, 1],
                output: vec![1, 2],
                indices: None,
            };
            let k = Pool2d::from_pool(&g, Isa::Generic).unwrap();
            let got = run_parts(&k, &[vec![1.0, 2.0, 3.0]], &[2], 1);
            assert_eq!(got[0], want);
        }
    }

    #[test]
    fn lp_and_indices_stay_generic() {
        let mut g = random_pool(&mut Rng(1), PoolKind::Lp { p: 2.0 });
        assert!(Pool2d::from_pool(&g, Isa::Generic).is_none());
        g.kind = PoolKind::Max;
        g.indices = Some(super::super::Indices::RowMajor);
        assert!(Pool2d::from_pool(&g, Isa::Generic).is_none());
    }

    /// Microseconds of GoogLeNet's and ResNet-50's max pools per ISA; not a
    /// test of correctness:
    /// `cargo test --release -p kann-kernels --lib plane2d::tests::pool_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn pool_speed() {
        // (planes, size, kernel, stride, pad)
        for (c, hw, kk, s, p) in [(192, 28, 3, 1, 1), (64, 112, 3, 2, 1), (832, 7, 3, 1, 1)] {
            let out = (hw + 2 * p - kk) / s + 1;
            let g = Pool {
                kind: PoolKind::Max,
                planes: c,
                input: vec![hw, hw],
                kernel: vec![kk, kk],
                strides: vec![s, s],
                dilations: vec![1, 1],
                pad_begin: vec![p, p],
                pad_end: vec![p, p],
                output: vec![out, out],
                indices: None,
            };
            let x = Rng(5).vec((c * hw * hw) as usize);
            for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
                let k = Pool2d::from_pool(&g, isa).unwrap();
                let (mut xin, mut y) = (x.clone(), vec![0.0f32; (c * out * out) as usize]);
                let (ins, outs) = ([crate::buf::RawBuf::from_f32(&mut xin)], [crate::buf::RawBuf::from_f32(&mut y)]);
                let io = Io { inputs: &ins, outputs: &outs };
                let mut scratch = vec![0u8; k.scratch_bytes(c)];
                let mut best = f64::INFINITY;
                for _ in 0..50 {
                    let t = std::time::Instant::now();
                    // SAFETY: the buffers outlive the call; one part.
                    unsafe { k.run(&io, 0..c, &mut scratch) };
                    best = best.min(t.elapsed().as_secs_f64());
                }
                println!("maxpool {c}x{hw}x{hw} k{kk} s{s} {}: {:.1} us", isa.name(), best * 1e6);
            }
        }
    }

    /// Microseconds of max pools on hot inputs (ResNet-50's stem 3×3/2,
    /// GoogLeNet's second stride-2 one, an inception branch's 3×3/1):
    /// not a test of correctness:
    /// `cargo test --release -p kann-kernels --lib pool::plane2d::tests::pool_timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn pool_timing() {
        let mut rng = Rng(5);
        // KANN_POOL_SHAPES=C,HW,K,S,P;... measures others.
        let shapes: Vec<[u64; 5]> = std::env::var("KANN_POOL_SHAPES").map_or(
            vec![[64, 112, 3, 2, 1], [192, 56, 3, 2, 1], [256, 28, 3, 1, 1], [64, 111, 3, 2, 0], [128, 55, 3, 2, 0], [256, 27, 3, 2, 0], [480, 14, 3, 1, 1], [832, 14, 2, 2, 0], [8, 111, 3, 2, 0], [32, 55, 3, 2, 0], [16, 112, 2, 2, 0], [64, 111, 2, 2, 0]],
            |v| v.split(';').map(|t| std::array::from_fn(|i| t.split(',').nth(i).and_then(|x| x.parse().ok()).expect("KANN_POOL_SHAPES: C,HW,K,S,P;..."))).collect(),
        );
        for [c, hw, k, s, p] in shapes {
            let out = (hw + 2 * p - k) / s + 1;
            let g = Pool { kind: PoolKind::Max, planes: c, input: vec![hw, hw], kernel: vec![k, k], strides: vec![s, s], dilations: vec![1, 1], pad_begin: vec![p, p], pad_end: vec![p, p], output: vec![out, out], indices: None };
            let pool = Pool2d::from_pool(&g, Isa::ALL.into_iter().rev().find(|i| i.available()).unwrap_or(Isa::Generic)).unwrap();
            let mut x = vec![rng.vec((c * hw * hw) as usize)];
            let us = time_kernel(&pool, &mut x, (c * out * out) as usize);
            let banded = pool.clone().with_row_bands(2).map_or(f64::NAN, |b| time_kernel(&b, &mut x, (c * out * out) as usize));
            println!("maxpool {c}x{hw}x{hw} k{k} s{s}: {us:.1} us ({:.1} GB/s read), in 2 row bands {banded:.1} us", (c * hw * hw * 4) as f64 / us / 1e3);
        }
    }
}
