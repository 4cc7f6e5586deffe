//! Import of `Attention` (opsets 23–25 and later).

use crate::node::NodeCx;
use crate::registry::{Imported, Registry, MAX_OPSET};
use crate::tensor::dtype_from_onnx;
use crate::ImportError;
use kann_ir::ops::nn::{Attention, NnOp};
use kann_ir::Op;

pub(super) fn register(r: &mut Registry) {
    r.add_range("Attention", 23, MAX_OPSET, attention, "f32 f16 bf16 f64 (mask: bool or numeric)", "qk_matmul_output_mode outside 0..3");
}

/// A non-negative count attribute, `None` when absent.
fn heads(cx: &NodeCx, name: &str) -> Result<Option<usize>, ImportError> {
    match cx.attr_i_opt(name)? {
        None => Ok(None),
        Some(h) if h > 0 => Ok(Some(h as usize)),
        Some(h) => Err(cx.error(format!("{name} must be positive, found {h}"))),
    }
}

/// A window bound: -1 (unbounded) or non-negative. Absent before opset 25.
fn window(cx: &NodeCx, name: &str) -> Result<i64, ImportError> {
    if cx.opset < 25 {
        return Ok(-1);
    }
    match cx.attr_i(name, -1)? {
        w if w >= -1 => Ok(w),
        w => Err(cx.error(format!("{name} must be -1 or non-negative, found {w}"))),
    }
}

fn attention(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let (q_num_heads, kv_num_heads) = (heads(cx, "q_num_heads")?, heads(cx, "kv_num_heads")?);
    if cx.opset >= 25 && cx.input_info(0).is_some_and(|q| q.rank() == 4) && (q_num_heads.is_some() || kv_num_heads.is_some()) {
        return Err(cx.error("q_num_heads and kv_num_heads must not be given with 4-D inputs"));
    }
    if cx.opset < 24 && cx.n_inputs() > 6 {
        return Err(cx.error("Attention before opset 24 has at most 6 inputs"));
    }
    let qk_mode = cx.attr_i("qk_matmul_output_mode", 0)?;
    if !(0..=3).contains(&qk_mode) {
        return Err(cx.unsupported("qk_matmul_output_mode", qk_mode));
    }
    let softmax_precision = match cx.attr_i_opt("softmax_precision")? {
        None => None,
        Some(code) => match dtype_from_onnx(code as i32, "softmax_precision") {
            Ok(d) if d.is_float() => Some(d),
            _ => return Err(cx.unsupported("softmax_precision", code)),
        },
    };
    let outputs = cx.n_outputs();
    if !(1..=4).contains(&outputs) {
        return Err(cx.error(format!("Attention has 1 to 4 outputs, the node names {outputs}")));
    }
    let a = Attention {
        q_num_heads,
        kv_num_heads,
        scale: cx.attr_f_opt("scale")?.map(f64::from),
        is_causal: cx.attr_i("is_causal", 0)? != 0,
        softcap: cx.attr_f("softcap", 0.0)? as f64,
        qk_mode: qk_mode as u8,
        softmax_precision,
        left_window: window(cx, "left_window_size")?,
        right_window: window(cx, "right_window_size")?,
        outputs,
    };
    Ok(Op::Nn(NnOp::Attention(a)).into())
}
