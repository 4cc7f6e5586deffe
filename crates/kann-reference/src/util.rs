//! Index helpers shared by the reference ops: plain, allocation-happy, clear.

/// Row-major strides of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Multi-index of flat index `i` in `shape`.
pub fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        if shape[d] > 0 {
            idx[d] = i % shape[d];
            i /= shape[d];
        }
    }
    idx
}

/// For each element of `out_shape`, the flat index of the element of an
/// input of `in_shape` that numpy broadcasting maps onto it.
pub fn broadcast_index(in_shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let n: usize = out_shape.iter().product();
    let rank = out_shape.len();
    let offset = rank - in_shape.len();
    let in_strides = strides(in_shape);
    // Stride 0 on broadcast axes.
    let mut eff = vec![0; rank];
    for d in 0..in_shape.len() {
        eff[d + offset] = if in_shape[d] == 1 { 0 } else { in_strides[d] };
    }
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; rank];
    let mut flat = 0usize;
    for _ in 0..n {
        out.push(flat);
        for d in (0..rank).rev() {
            idx[d] += 1;
            flat += eff[d];
            if idx[d] < out_shape[d] {
                break;
            }
            flat -= eff[d] * idx[d];
            idx[d] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_index_matches_numpy() {
        assert_eq!(broadcast_index(&[3], &[2, 3]), vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(broadcast_index(&[2, 1], &[2, 3]), vec![0, 0, 0, 1, 1, 1]);
        assert_eq!(broadcast_index(&[], &[2]), vec![0, 0]);
        assert_eq!(unravel(5, &[2, 3]), vec![1, 2]);
    }
}
