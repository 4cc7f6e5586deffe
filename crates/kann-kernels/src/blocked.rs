//! Channel-blocked activations: NCHW8c, `[N][C/8][H][W][8]`.
//!
//! ONNX Runtime keeps this layout between the convolutions of a network,
//! and it is what its 1×1 and depthwise kernels gain on ours in NCHW: a
//! 1×1 convolution reads X in place (the 8 channels of a pixel are one
//! vector, the pixels of a tile 8 floats apart) with no packing, a
//! depthwise one has a block's channels in the lanes with no transposes,
//! and both store whole vectors. Tensors in this layout have a multiple of
//! 8 channels (the compiler only chooses it then), so they hold as many
//! floats as in NCHW and the memory plan is unchanged.

pub mod batch_norm;
pub mod conv;
pub mod depthwise;
pub mod global_pool;
pub mod pointwise;
pub mod pool;
pub mod reorder;

/// Channels of a block: the lanes of an AVX2 vector.
pub const BLOCK: usize = 8;

/// NCHW → NCHW8c of one image (`c` a multiple of [`BLOCK`]), portably.
pub fn to_blocked(x: &[f32], c: usize, hw: usize) -> Vec<f32> {
    let mut y = vec![0.0; c * hw];
    for ch in 0..c {
        for p in 0..hw {
            y[(ch / BLOCK) * hw * BLOCK + p * BLOCK + ch % BLOCK] = x[ch * hw + p];
        }
    }
    y
}

/// NCHW8c → NCHW of one image, portably.
pub fn to_planar(x: &[f32], c: usize, hw: usize) -> Vec<f32> {
    let mut y = vec![0.0; c * hw];
    for ch in 0..c {
        for p in 0..hw {
            y[ch * hw + p] = x[(ch / BLOCK) * hw * BLOCK + p * BLOCK + ch % BLOCK];
        }
    }
    y
}

/// Test helpers the blocked kernels' tests share.
#[cfg(test)]
pub(crate) mod testutil {
    use crate::kernel::KernelImpl;

    /// The `i`-th (cyclically) of every activation the kernels take.
    pub fn activation(i: usize) -> crate::Activation {
        let all = crate::packed::tests::all_activations();
        all[i % all.len()]
    }

    /// Each image of `x` (`c` channels of `hw`) through `f` ([`super::to_blocked`] or [`super::to_planar`]).
    pub fn per_image(x: &[f32], c: usize, hw: usize, f: fn(&[f32], usize, usize) -> Vec<f32>) -> Vec<f32> {
        x.chunks(c * hw).flat_map(|img| f(img, c, hw)).collect()
    }

    /// The median of 41 alternated runs of two kernels (one part each), in
    /// µs, for the blocked kernels' timing tests.
    pub fn alternate(a: &impl KernelImpl, ai: &mut [Vec<f32>], b: &impl KernelImpl, bi: &mut [Vec<f32>], out: usize) -> (f64, f64) {
        use crate::RawBuf;
        let (mut ya, mut yb) = (vec![0.0f32; out], vec![0.0f32; out]);
        let (mut sa, mut sb) = (vec![0u8; a.scratch_bytes(a.work_items()) + 64], vec![0u8; b.scratch_bytes(b.work_items()) + 64]);
        let (la, lb) = (sa.as_ptr().align_offset(64), sb.as_ptr().align_offset(64));
        let (mut ta, mut tb) = (Vec::new(), Vec::new());
        let ia: Vec<RawBuf> = ai.iter_mut().map(|v| RawBuf::from_f32(v)).collect();
        let ib: Vec<RawBuf> = bi.iter_mut().map(|v| RawBuf::from_f32(v)).collect();
        let (oa, ob) = ([RawBuf::from_f32(&mut ya)], [RawBuf::from_f32(&mut yb)]);
        for _ in 0..41 {
            let t = std::time::Instant::now();
            // SAFETY: the buffers outlive the call; one part.
            unsafe { a.run(&crate::Io { inputs: &ia, outputs: &oa }, 0..a.work_items(), &mut sa[la..]) };
            ta.push(t.elapsed().as_secs_f64() * 1e6);
            let t = std::time::Instant::now();
            // SAFETY: as above.
            unsafe { b.run(&crate::Io { inputs: &ib, outputs: &ob }, 0..b.work_items(), &mut sb[lb..]) };
            tb.push(t.elapsed().as_secs_f64() * 1e6);
        }
        ta.sort_by(f64::total_cmp);
        tb.sort_by(f64::total_cmp);
        (ta[20], tb[20])
    }
}
