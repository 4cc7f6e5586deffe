//! `Attention` (opsets 23–25): scaled dot-product attention with multi-head,
//! grouped-query and multi-query variants, masks, a key/value cache, soft
//! capping and sliding windows.

use super::super::{broadcast, check_dtype, optional, required, InferInput, InferResult, FLOATS};
use crate::TensorInfo;
use kann_tensor::{DType, Shape};

/// Inputs: Q, K, V, attn_mask, past_key, past_value, nonpad_kv_seqlen.
/// Outputs: Y, present_key, present_value, qk_matmul_output.
#[derive(Debug, Clone, PartialEq)]
pub struct Attention {
    /// Heads of Q and of K/V for 3-D inputs (`None` for 4-D inputs).
    pub q_num_heads: Option<usize>,
    pub kv_num_heads: Option<usize>,
    /// Factor on `Q·Kᵀ`; `None`: `1/sqrt(head_size)`.
    pub scale: Option<f64>,
    pub is_causal: bool,
    /// `softcap · tanh(x / softcap)` on the logits when positive.
    pub softcap: f64,
    /// What the 4th output holds: 0 raw `Q·Kᵀ`, 1 after softcap, 2 with the
    /// bias added, 3 the softmax probabilities.
    pub qk_mode: u8,
    /// Dtype the softmax is computed in (`None`: the dtype of Q).
    pub softmax_precision: Option<DType>,
    /// Sliding window bounds around the absolute query position (-1: unbounded).
    pub left_window: i64,
    pub right_window: i64,
    /// Outputs the node names (1 to 4).
    pub outputs: usize,
}

/// The resolved sizes of one attention evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionDims {
    pub batch: usize,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub q_len: usize,
    /// Length of the new K/V (without the past).
    pub kv_len: usize,
    pub past_len: usize,
    pub head: usize,
    pub v_head: usize,
    /// Inputs are `[batch, seq, heads * head]` rather than `[batch, heads, seq, head]`.
    pub three_d: bool,
}

impl AttentionDims {
    /// Keys attended: past plus new.
    pub fn total_len(&self) -> usize {
        self.past_len + self.kv_len
    }
}

/// Splits `hidden` into `heads` heads.
fn head_size(hidden: usize, heads: Option<usize>, what: &str) -> Result<(usize, usize), String> {
    let h = heads.ok_or_else(|| format!("3-D {what} needs the q_num_heads and kv_num_heads attributes"))?;
    if h == 0 || hidden % h != 0 {
        return Err(format!("{what} hidden size {hidden} is not a multiple of {h} heads"));
    }
    Ok((h, hidden / h))
}

impl Attention {
    /// Sizes from the shapes of Q, K, V and the optional past key.
    pub fn dims(&self, q: &[usize], k: &[usize], v: &[usize], past: Option<&[usize]>) -> Result<AttentionDims, String> {
        if q.len() != k.len() || q.len() != v.len() || !(q.len() == 3 || q.len() == 4) {
            return Err(format!("Q, K and V must all be 3-D or all 4-D, found ranks {}, {} and {}", q.len(), k.len(), v.len()));
        }
        let three_d = q.len() == 3;
        let (batch, q_heads, q_len, head, kv_heads, kv_len, k_head, v_heads, v_len, v_head);
        if three_d {
            (q_heads, head) = head_size(q[2], self.q_num_heads, "Q")?;
            (kv_heads, k_head) = head_size(k[2], self.kv_num_heads, "K")?;
            (v_heads, v_head) = head_size(v[2], self.kv_num_heads, "V")?;
            (batch, q_len, kv_len, v_len) = (q[0], q[1], k[1], v[1]);
        } else {
            (batch, q_heads, q_len, head) = (q[0], q[1], q[2], q[3]);
            (kv_heads, kv_len, k_head) = (k[1], k[2], k[3]);
            (v_heads, v_len, v_head) = (v[1], v[2], v[3]);
        }
        if k[0] != batch || v[0] != batch {
            return Err(format!("Q, K and V have different batch sizes ({batch}, {}, {})", k[0], v[0]));
        }
        if k_head != head || v_heads != kv_heads || v_len != kv_len {
            return Err(format!("K and V do not match Q: Q {q:?}, K {k:?}, V {v:?}"));
        }
        if kv_heads == 0 || q_heads % kv_heads != 0 {
            return Err(format!("q_num_heads {q_heads} is not a multiple of kv_num_heads {kv_heads}"));
        }
        let past_len = match past {
            None => 0,
            Some(p) if p.len() == 4 && p[0] == batch && p[1] == kv_heads && p[3] == head => p[2],
            Some(p) => return Err(format!("past_key must be [{batch}, {kv_heads}, past, {head}], found {p:?}")),
        };
        Ok(AttentionDims { batch, q_heads, kv_heads, q_len, kv_len, past_len, head, v_head, three_d })
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let [q, k, v] = [(0, "Q"), (1, "K"), (2, "V")].map(|(i, w)| required(inputs, i, w));
        let (q, k, v) = (q?.info, k?.info, v?.info);
        check_dtype(q, FLOATS, "Q")?;
        check_dtype(v, FLOATS, "V")?;
        if k.dtype != q.dtype {
            return Err(format!("K has dtype {}, Q has {}", k.dtype, q.dtype));
        }
        let (past_k, past_v) = (optional(inputs, 4), optional(inputs, 5));
        if past_k.is_some() != past_v.is_some() {
            return Err("past_key and past_value must be given together".into());
        }
        let d = self.dims(q.shape.dims(), k.shape.dims(), v.shape.dims(), past_k.map(|p| p.info.shape.dims()))?;
        let total = d.total_len();
        if let Some(pv) = past_v {
            let want = [d.batch, d.kv_heads, d.past_len, d.v_head];
            if pv.info.shape.dims() != want || pv.info.dtype != v.dtype || past_k.is_some_and(|p| p.info.dtype != k.dtype) {
                return Err(format!("past_value must be {} [{want:?}], found {}", v.dtype, pv.info.shape));
            }
        }
        if let Some(n) = optional(inputs, 6) {
            if past_k.is_some() {
                return Err("nonpad_kv_seqlen cannot be combined with past_key/past_value".into());
            }
            if n.info.dtype != DType::I64 || n.info.shape.dims() != [d.batch] {
                return Err(format!("nonpad_kv_seqlen must be i64 [{}], found {} {}", d.batch, n.info.dtype, n.info.shape));
            }
        }
        if let Some(m) = optional(inputs, 3) {
            check_mask(m.info, &d)?;
        }
        let y = if d.three_d { vec![d.batch, d.q_len, d.q_heads * d.v_head] } else { vec![d.batch, d.q_heads, d.q_len, d.v_head] };
        let outs = [
            TensorInfo::new(q.dtype, Shape::new(y)),
            TensorInfo::new(k.dtype, Shape::new(vec![d.batch, d.kv_heads, total, d.head])),
            TensorInfo::new(v.dtype, Shape::new(vec![d.batch, d.kv_heads, total, d.v_head])),
            TensorInfo::new(q.dtype, Shape::new(vec![d.batch, d.q_heads, d.q_len, total])),
        ];
        if !(1..=4).contains(&self.outputs) {
            return Err(format!("Attention has 1 to 4 outputs, not {}", self.outputs));
        }
        Ok(outs[..self.outputs].to_vec())
    }

    /// Multiply-adds of both products plus the softmax.
    pub fn flops(&self, q: Option<&TensorInfo>, k: Option<&TensorInfo>, v: Option<&TensorInfo>, past: Option<&TensorInfo>) -> u64 {
        let (Some(q), Some(k), Some(v)) = (q, k, v) else { return 0 };
        let Ok(d) = self.dims(q.shape.dims(), k.shape.dims(), v.shape.dims(), past.map(|p| p.shape.dims())) else { return 0 };
        let rows = (d.batch * d.q_heads * d.q_len * d.total_len()) as u64;
        rows.saturating_mul(2 * (d.head + d.v_head) as u64 + 5)
    }
}

/// The mask broadcasts to `[batch, q_heads, q_len, total]` once its last axis
/// is padded to `total`.
fn check_mask(m: &TensorInfo, d: &AttentionDims) -> Result<(), String> {
    if m.dtype != DType::Bool && !m.dtype.is_float() && !m.dtype.is_int() && m.dtype != DType::U8 {
        return Err(format!("attn_mask dtype {} is not supported", m.dtype));
    }
    let dims = m.shape.dims();
    let total = d.total_len();
    let (Some(&last), true) = (dims.last(), dims.len() <= 4) else {
        return Err(format!("attn_mask must have rank 1 to 4, found shape {}", m.shape));
    };
    if last > total {
        return Err(format!("attn_mask has {last} keys, more than the {total} attended"));
    }
    let mut padded = dims.to_vec();
    padded[dims.len() - 1] = total;
    let want = [d.batch, d.q_heads, d.q_len, total];
    if broadcast(&padded, &want)? != want {
        return Err(format!("attn_mask {} does not broadcast to {want:?}", m.shape));
    }
    Ok(())
}
