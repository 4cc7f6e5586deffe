//! LRN over one output plane with AVX2 + FMA, 8 elements a step: the
//! window's squares summed by FMAs, the base raised to `-beta` by
//! reciprocal square roots refined by a Newton step for the usual betas
//! (0.75, as AlexNet's and GoogLeNet's; 0.5), a division for 1, `powf` lane
//! by lane for any other. The portable
//! loops ran at ~8 cycles an element (GoogLeNet's two LRN layers 1.9 ms of
//! its 39, ZFNet's 3.1 of 50 on Zen 3).

use std::arch::x86_64::*;

/// The first `n` (< 8) lanes set.
#[target_feature(enable = "avx2")]
#[inline]
fn first_lanes(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}

/// `1 / sqrt(b)`: the 12-bit estimate and one Newton step (about 23 bits;
/// the correctly rounded square roots and division ran at ~20 cycles a
/// vector, 3 times the rest of the plane's work).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn rsqrt(b: __m256) -> __m256 {
    let y = _mm256_rsqrt_ps(b);
    let t = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5), b), y);
    _mm256_mul_ps(y, _mm256_fnmadd_ps(t, y, _mm256_set1_ps(1.5)))
}

/// `b^-beta` for a positive base, lane by lane.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn inverse_power(b: __m256, beta: f32) -> __m256 {
    if beta == 0.75 {
        // b^-0.75 = r^1.5 = r · r · r^-0.5, r = b^-0.5.
        let r = rsqrt(b);
        _mm256_mul_ps(_mm256_mul_ps(r, r), rsqrt(r))
    } else if beta == 0.5 {
        rsqrt(b)
    } else if beta == 1.0 {
        _mm256_div_ps(_mm256_set1_ps(1.0), b)
    } else {
        let mut v = [0.0f32; 8];
        // SAFETY: v holds 8 floats.
        unsafe { _mm256_storeu_ps(v.as_mut_ptr(), b) };
        v.iter_mut().for_each(|x| *x = x.powf(-beta));
        // SAFETY: as above.
        unsafe { _mm256_loadu_ps(v.as_ptr()) }
    }
}

/// `y = center · (bias + scale · Σ window²)^-beta`, element by element.
///
/// # Safety
/// The CPU has AVX2 and FMA; `center` and every window plane hold at least
/// `y.len()` floats.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn plane(window: &[&[f32]], center: &[f32], y: &mut [f32], bias: f32, scale: f32, beta: f32) {
    let n = y.len();
    assert!(center.len() >= n && window.iter().all(|w| w.len() >= n), "LRN plane sizes");
    let whole = n / 8 * 8;
    for i in (0..whole).step_by(8) {
        // SAFETY: elements i..i + 8 lie inside y and every plane.
        unsafe {
            let v = vector(window, center, i, None, bias, scale, beta);
            _mm256_storeu_ps(y.as_mut_ptr().add(i), v);
        }
    }
    if whole < n {
        // SAFETY: the mask covers elements whole..n, inside y and every plane.
        unsafe {
            let v = vector(window, center, whole, Some(first_lanes(n - whole)), bias, scale, beta);
            crate::avx2::store_first(y.as_mut_ptr().add(whole), v, n - whole);
        }
    }
}

/// The output vector of the 8 elements from `i` (with `mask`, those under it).
///
/// # Safety
/// The elements read (8 from `i`, or the mask's) lie inside every plane; AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn vector(window: &[&[f32]], center: &[f32], i: usize, mask: Option<__m256i>, bias: f32, scale: f32, beta: f32) -> __m256 {
    // SAFETY: the caller's contract.
    let load = |p: &[f32]| unsafe {
        match mask {
            None => _mm256_loadu_ps(p.as_ptr().add(i)),
            Some(m) => _mm256_maskload_ps(p.as_ptr().add(i), m),
        }
    };
    // Two sums: the squares' chain of FMAs is the vector's longest path.
    let (mut s, mut t) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let pairs = window.chunks_exact(2);
    if let [w] = pairs.remainder() {
        let v = load(w);
        s = _mm256_mul_ps(v, v);
    }
    for pair in pairs {
        let (v, u) = (load(pair[0]), load(pair[1]));
        s = _mm256_fmadd_ps(v, v, s);
        t = _mm256_fmadd_ps(u, u, t);
    }
    let s = _mm256_add_ps(s, t);
    _mm256_mul_ps(load(center), inverse_power(_mm256_fmadd_ps(_mm256_set1_ps(scale), s, _mm256_set1_ps(bias)), beta))
}
