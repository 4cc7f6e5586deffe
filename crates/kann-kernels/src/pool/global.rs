//! GlobalMaxPool and GlobalAveragePool: one reduction per contiguous plane.
//!
//! A plane is reduced in blocks of 64 values into 64 independent lanes (four
//! AVX-512 or eight AVX2 accumulators, so the adds do not wait on each
//! other), the rest in blocks of 8, then one by one; the lanes are folded at
//! the end. Max propagates NaN (a NaN in the plane gives NaN) and gives
//! `-inf` for an empty plane; the average is the sum over the plane size.
//!
//! The plane reduction is one `#[inline(always)]` body compiled three times:
//! with AVX-512F, with AVX2 (`#[target_feature]`, chosen from the kernel's
//! [`Isa`] and checked at run time) and portable. Work items are the `N * C`
//! planes; Y holds one value per plane.

use super::PoolKind;
use crate::kernel::{expect_io, KernelImpl};
use crate::packed::Isa;
use crate::Io;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A global Max or Average pool over `planes` planes of `plane` values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlobalPool {
    /// `Max` or `Average` (`Lp` is not handled here).
    pub kind: PoolKind,
    /// `N * C`.
    pub planes: u64,
    /// Values per plane (the product of the spatial extents).
    pub plane: u64,
    pub isa: Isa,
}

/// Max that propagates NaN from either side.
#[inline(always)]
fn max_nan(a: f32, b: f32) -> f32 {
    if a > b || a.is_nan() {
        a
    } else {
        b
    }
}

/// Folds `x` into `N` lanes with `f`, block by block.
#[inline(always)]
fn fold_lanes<const N: usize>(acc: &mut [f32; N], x: &[f32], f: impl Fn(f32, f32) -> f32) {
    for block in x.chunks_exact(N) {
        for (a, &v) in acc.iter_mut().zip(block) {
            *a = f(*a, v);
        }
    }
}

/// The reduction of one plane with `f` from the neutral value `init`.
#[inline(always)]
fn reduce_plane(x: &[f32], init: f32, f: impl Fn(f32, f32) -> f32 + Copy) -> f32 {
    let mut wide = [init; 64];
    fold_lanes(&mut wide, x, f);
    let rest = &x[x.len() - x.len() % 64..];
    let mut narrow = [init; 8];
    fold_lanes(&mut narrow, rest, f);
    for block in wide.chunks_exact(8) {
        for (a, &v) in narrow.iter_mut().zip(block) {
            *a = f(*a, v);
        }
    }
    let tail = &rest[rest.len() - rest.len() % 8..];
    narrow.iter().chain(tail).fold(init, |a, &v| f(a, v))
}

/// One value per plane of `x` into `y`.
#[inline(always)]
fn planes(max: bool, x: &[f32], y: &mut [f32], plane: usize) {
    if plane == 0 {
        y.fill(if max { f32::NEG_INFINITY } else { f32::NAN });
        return;
    }
    for (v, xp) in y.iter_mut().zip(x.chunks_exact(plane)) {
        *v = if max { reduce_plane(xp, f32::NEG_INFINITY, max_nan) } else { reduce_plane(xp, 0.0, |a, b| a + b) / plane as f32 };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn planes_avx512(max: bool, x: &[f32], y: &mut [f32], plane: usize) {
    planes(max, x, y, plane)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn planes_avx2(max: bool, x: &[f32], y: &mut [f32], plane: usize) {
    planes(max, x, y, plane)
}

impl GlobalPool {
    /// The global kernel for a Max or Average pool.
    pub fn new(kind: PoolKind, planes: u64, plane: u64, isa: Isa) -> Option<GlobalPool> {
        (!matches!(kind, PoolKind::Lp { .. })).then_some(GlobalPool { kind, planes, plane, isa })
    }

    /// The ISA the planes run with: the requested one when the CPU has it.
    fn run_isa(&self) -> Isa {
        if self.isa.available() {
            self.isa
        } else {
            Isa::Generic
        }
    }
}

impl KernelImpl for GlobalPool {
    fn name(&self) -> String {
        let op = if self.kind == PoolKind::Max { "globalmaxpool" } else { "globalavgpool" };
        format!("f32_{op}_simd_{}", self.isa.name())
    }

    fn work_items(&self) -> u64 {
        self.planes
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)?;
        if matches!(self.kind, PoolKind::Lp { .. }) {
            return Err("global pooling kernel handles Max and Average only".into());
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let (p0, p1, plane) = (part.start as usize, part.end as usize, self.plane as usize);
        // SAFETY: inputs are not written during the step (the run contract).
        let x = unsafe { &io.inputs[0].f32()[p0 * plane..p1 * plane] };
        // SAFETY: this part owns planes p0..p1 of the output (the run contract).
        let y = unsafe { io.outputs[0].f32_part(p0..p1) };
        let max = self.kind == PoolKind::Max;
        match self.run_isa() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX-512F (checked by run_isa).
            Isa::Avx512 => unsafe { planes_avx512(max, x, y, plane) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX2 (checked by run_isa).
            Isa::Avx2 => unsafe { planes_avx2(max, x, y, plane) },
            _ => planes(max, x, y, plane),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Pool;
    use super::*;
    use crate::conv::testutil::*;

    #[test]
    fn matches_generic_on_random_planes_every_isa() {
        let mut rng = Rng(31);
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            for case in 0..120 {
                let kind = [PoolKind::Max, PoolKind::Average { count_include_pad: false }][case % 2];
                let (planes, dims) = (1 + rng.below(6), [1 + rng.below(40), 1 + rng.below(40)]);
                let g = Pool::global(kind, planes, &dims);
                let k = GlobalPool::new(kind, planes, dims[0] * dims[1], isa).unwrap();
                let mut x = rng.vec((planes * dims[0] * dims[1]) as usize);
                if case % 3 == 0 {
                    let i = rng.below(x.len() as u64) as usize;
                    x[i] = [f32::NAN, f32::NEG_INFINITY, f32::INFINITY][rng.below(3) as usize];
                }
                let want = run_parts(&g, std::slice::from_ref(&x), &[planes as usize], 1);
                for parts in [1, 2, 3] {
                    let got = run_parts(&k, std::slice::from_ref(&x), &[planes as usize], parts);
                    assert_close(&got[0], &want[0], 1e-5);
                    for (a, b) in got[0].iter().zip(&want[0]) {
                        assert_eq!(a.is_nan(), b.is_nan(), "{isa:?} {k:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn max_propagates_nan_at_any_position() {
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            for len in [1usize, 7, 8, 9, 63, 64, 65, 130] {
                for at in [0, len / 2, len - 1] {
                    let mut x = vec![1.0f32; len];
                    x[at] = f32::NAN;
                    let k = GlobalPool::new(PoolKind::Max, 1, len as u64, isa).unwrap();
                    assert!(run_parts(&k, &[x], &[1], 1)[0][0].is_nan(), "{isa:?} len {len} at {at}");
                }
            }
            let k = GlobalPool::new(PoolKind::Max, 1, 3, isa).unwrap();
            assert_eq!(run_parts(&k, &[vec![f32::NEG_INFINITY; 3]], &[1], 1)[0][0], f32::NEG_INFINITY);
        }
    }

    #[test]
    fn average_of_a_ramp() {
        let k = GlobalPool::new(PoolKind::Average { count_include_pad: false }, 2, 100, Isa::Avx512).unwrap();
        let x: Vec<f32> = (0..200).map(|i| i as f32).collect();
        assert_eq!(run_parts(&k, &[x], &[2], 2)[0], vec![49.5, 149.5]);
    }
}
