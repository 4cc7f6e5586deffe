//! The AVX2+FMA tiles of [`super::BlockedConv`]: a band's outputs of one
//! chunk, `P` consecutive pixels (across row ends) by `V` output blocks a
//! tile.

use super::BLOCK;
use crate::packed::PwAct;
use std::arch::x86_64::*;

/// One band of one chunk's output rows, as the tiles see it.
pub(super) struct Band {
    /// The source (padded copy or X) where the band's first output pixel
    /// reads its first tap.
    pub src: *const f32,
    /// Floats from one output row's source to the next's, and one column's.
    pub row_step: usize,
    pub col_step: usize,
    /// Each step's offset from a pixel's source: `steps` of them, one per
    /// (input block, tap), its 8 lanes the next 8 floats.
    pub offs: *const usize,
    pub steps: usize,
    /// The chunk's packed weights, `[steps][8][8V]`.
    pub w: *const f32,
    /// The chunk's first bias, or null.
    pub bias: *const f32,
    /// The residual at the band's first output of the chunk's first block,
    /// or null; Y's layout.
    pub residual: *const f32,
    /// Y at the band's first output of the chunk's first block; blocks
    /// `ys` floats apart, the band's outputs consecutive in each.
    pub y: *mut f32,
    pub ys: usize,
    /// Output columns a row, and outputs in the band.
    pub ow: usize,
    pub total: usize,
    pub act: PwAct,
    /// Whether the tiles start from the partial sums in Y (a later pass
    /// over the steps), and whether they finish them (bias, residual,
    /// activation) or store them raw for the next pass.
    pub accumulate: bool,
    pub finish: bool,
}

/// The band's next output: its index, row (from the band's first) and column.
struct Cursor {
    q: usize,
    row: usize,
    col: usize,
}

/// Runs the band for a chunk of `v` blocks.
///
/// # Safety
/// AVX2 and FMA; every pixel's source plus every step's offset plus 8
/// floats lies in the source; the weights hold `steps · 64 · v` floats;
/// the outputs (and residual) of the band's `v` blocks are valid.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn band(j: &Band, v: usize) {
    // SAFETY: the caller's contract.
    unsafe {
        match v {
            3 => run::<3>(j),
            2 => run::<2>(j),
            _ => run::<1>(j),
        }
    }
}

/// The band's outputs in tiles of 4, 6 or 8 pixels (3, 2 or 1 vectors:
/// 12, 12 or 8 sums), then one narrower tile for the rest.
///
/// # Safety
/// As [`band`], with `V` blocks.
#[target_feature(enable = "avx2,fma")]
unsafe fn run<const V: usize>(j: &Band) {
    let mut at = Cursor { q: 0, row: 0, col: 0 };
    let width = match V {
        3 => 4,
        2 => 6,
        _ => 8,
    };
    // SAFETY: the caller's contract; each tile's pixels lie in the band.
    unsafe {
        while at.q + width <= j.total {
            match V {
                3 => tile::<V, 4>(j, &mut at),
                2 => tile::<V, 6>(j, &mut at),
                _ => tile::<V, 8>(j, &mut at),
            }
        }
        match j.total - at.q {
            0 => {}
            1 => tile::<V, 1>(j, &mut at),
            2 => tile::<V, 2>(j, &mut at),
            3 => tile::<V, 3>(j, &mut at),
            4 => tile::<V, 4>(j, &mut at),
            5 => tile::<V, 5>(j, &mut at),
            6 => tile::<V, 6>(j, &mut at),
            _ => tile::<V, 7>(j, &mut at),
        }
    }
}

/// The tile of the band's next `P` outputs, moving the cursor past them.
///
/// # Safety
/// As [`band`]; the band has `P` outputs from the cursor.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile<const V: usize, const P: usize>(j: &Band, at: &mut Cursor) {
    let q = at.q;
    // Where each pixel reads its first tap: its row's source, its column.
    let x: [*const f32; P] = std::array::from_fn(|_| {
        let p = j.src.wrapping_add(at.row * j.row_step + at.col * j.col_step);
        at.col += 1;
        if at.col == j.ow {
            (at.row, at.col) = (at.row + 1, 0);
        }
        p
    });
    at.q += P;
    // SAFETY: the caller's contract.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); V]; P];
        if j.accumulate {
            for (p, row) in acc.iter_mut().enumerate() {
                for (v, a) in row.iter_mut().enumerate() {
                    *a = _mm256_loadu_ps(j.y.add(v * j.ys + (q + p) * BLOCK));
                }
            }
        }
        if V == 3 && P == 4 {
            sums_3x4(j, [x[0], x[1], x[2], x[3]], &mut *(acc.as_mut_ptr() as *mut [[__m256; 3]; 4]));
        } else {
            sums::<V, P>(j, x, &mut acc);
        }
        store::<V, P>(j, &acc, q);
    }
}

/// Adds to `acc[p][v]` (block `v` of pixel `p`) every step and lane.
///
/// # Safety
/// As [`band`]; `x` are the tile's pixels' sources.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn sums<const V: usize, const P: usize>(j: &Band, x: [*const f32; P], acc: &mut [[__m256; V]; P]) {
    for s in 0..j.steps {
        // SAFETY: step s's offset and weights; each pixel's 8 lanes there.
        unsafe {
            let off = *j.offs.add(s);
            let ws = j.w.add(s * BLOCK * BLOCK * V);
            for l in 0..BLOCK {
                let wv: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(ws.add((l * V + v) * BLOCK)));
                for (row, &xp) in acc.iter_mut().zip(&x) {
                    let b = _mm256_broadcast_ss(&*xp.add(off + l));
                    for (a, &w) in row.iter_mut().zip(&wv) {
                        *a = _mm256_fmadd_ps(w, b, *a);
                    }
                }
            }
        }
    }
}

/// One lane of a 3 × 4 step: the three weight vectors at byte `$w` of the
/// step's, the four pixels' input float at byte `$x` past their offset.
macro_rules! lane_3x4 {
    ($w0:literal, $w1:literal, $w2:literal, $x:literal) => {
        concat!(
            "vmovups {w0}, ymmword ptr [{a} + ", $w0, "]\n",
            "vmovups {w1}, ymmword ptr [{a} + ", $w1, "]\n",
            "vmovups {w2}, ymmword ptr [{a} + ", $w2, "]\n",
            "vbroadcastss {t}, dword ptr [{x0} + {o}*4 + ", $x, "]\n",
            "vfmadd231ps {c00}, {w0}, {t}\n",
            "vfmadd231ps {c01}, {w1}, {t}\n",
            "vfmadd231ps {c02}, {w2}, {t}\n",
            "vbroadcastss {t}, dword ptr [{x1} + {o}*4 + ", $x, "]\n",
            "vfmadd231ps {c10}, {w0}, {t}\n",
            "vfmadd231ps {c11}, {w1}, {t}\n",
            "vfmadd231ps {c12}, {w2}, {t}\n",
            "vbroadcastss {t}, dword ptr [{x2} + {o}*4 + ", $x, "]\n",
            "vfmadd231ps {c20}, {w0}, {t}\n",
            "vfmadd231ps {c21}, {w1}, {t}\n",
            "vfmadd231ps {c22}, {w2}, {t}\n",
            "vbroadcastss {t}, dword ptr [{x3} + {o}*4 + ", $x, "]\n",
            "vfmadd231ps {c30}, {w0}, {t}\n",
            "vfmadd231ps {c31}, {w1}, {t}\n",
            "vfmadd231ps {c32}, {w2}, {t}\n",
        )
    };
}

/// [`sums`] for 3 blocks by 4 pixels in inline assembly: 12 accumulators,
/// 3 weight vectors and a broadcast fill AVX2's 16 registers, which the
/// compiler, wanting a second broadcast register, spilled from
/// intrinsics (as in `conv_grouped.rs`). A step's 8 lanes in one block.
///
/// # Safety
/// As [`sums`] with `V = 3`, `P = 4`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn sums_3x4(j: &Band, x: [*const f32; 4], acc: &mut [[__m256; 3]; 4]) {
    let [[mut c00, mut c01, mut c02], [mut c10, mut c11, mut c12], [mut c20, mut c21, mut c22], [mut c30, mut c31, mut c32]] = *acc;
    for s in 0..j.steps {
        // SAFETY: the caller's contract: step s's 192 weights at `w + 192s`,
        // each pixel's 8 input floats at `x[p] + offs[s]`; only reads.
        unsafe {
            let off = *j.offs.add(s);
            let a = j.w.add(s * 3 * BLOCK * BLOCK);
            std::arch::asm!(
                lane_3x4!("0", "32", "64", "0"),
                lane_3x4!("96", "128", "160", "4"),
                lane_3x4!("192", "224", "256", "8"),
                lane_3x4!("288", "320", "352", "12"),
                lane_3x4!("384", "416", "448", "16"),
                lane_3x4!("480", "512", "544", "20"),
                lane_3x4!("576", "608", "640", "24"),
                lane_3x4!("672", "704", "736", "28"),
                a = in(reg) a,
                o = in(reg) off,
                x0 = in(reg) x[0],
                x1 = in(reg) x[1],
                x2 = in(reg) x[2],
                x3 = in(reg) x[3],
                w0 = out(ymm_reg) _,
                w1 = out(ymm_reg) _,
                w2 = out(ymm_reg) _,
                t = out(ymm_reg) _,
                c00 = inout(ymm_reg) c00,
                c01 = inout(ymm_reg) c01,
                c02 = inout(ymm_reg) c02,
                c10 = inout(ymm_reg) c10,
                c11 = inout(ymm_reg) c11,
                c12 = inout(ymm_reg) c12,
                c20 = inout(ymm_reg) c20,
                c21 = inout(ymm_reg) c21,
                c22 = inout(ymm_reg) c22,
                c30 = inout(ymm_reg) c30,
                c31 = inout(ymm_reg) c31,
                c32 = inout(ymm_reg) c32,
                options(nostack, readonly, preserves_flags),
            );
        }
    }
    *acc = [[c00, c01, c02], [c10, c11, c12], [c20, c21, c22], [c30, c31, c32]];
}

/// Stores the tile at the band's output `q`: bias, residual, activation,
/// one whole vector an output pixel of a block (the sums alone before the
/// last pass).
///
/// # Safety
/// As [`band`]; outputs `q..q + P` lie in the band.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn store<const V: usize, const P: usize>(j: &Band, acc: &[[__m256; V]; P], q: usize) {
    if !j.finish {
        for v in 0..V {
            for (p, row) in acc.iter().enumerate() {
                // SAFETY: outputs q..q + P of block v.
                unsafe { _mm256_storeu_ps(j.y.add(v * j.ys + (q + p) * BLOCK), row[v]) };
            }
        }
        return;
    }
    for v in 0..V {
        // SAFETY: the chunk's biases; outputs q..q + P of block v.
        unsafe {
            let bias = if j.bias.is_null() { _mm256_setzero_ps() } else { _mm256_loadu_ps(j.bias.add(v * BLOCK)) };
            for (p, row) in acc.iter().enumerate() {
                let at = v * j.ys + (q + p) * BLOCK;
                let mut s = _mm256_add_ps(row[v], bias);
                if !j.residual.is_null() {
                    s = _mm256_add_ps(s, _mm256_loadu_ps(j.residual.add(at)));
                }
                s = crate::packed::act_avx2(s, j.act);
                _mm256_storeu_ps(j.y.add(at), s);
            }
        }
    }
}
