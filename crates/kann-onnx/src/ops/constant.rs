//! `Constant`: becomes a constant value of the graph, no node.

use crate::node::NodeCx;
use crate::registry::{Imported, Registry};
use crate::ImportError;
use kann_tensor::{Shape, Tensor};

pub(super) fn register(r: &mut Registry) {
    r.add("Constant", constant, "all", "sparse_value, value_string(s)");
}

fn constant(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    if cx.has_attr("sparse_value") {
        return Err(cx.unsupported("sparse_value", "(sparse tensors)"));
    }
    if cx.has_attr("value_string") || cx.has_attr("value_strings") {
        return Err(cx.unsupported("value_string", "(string tensors)"));
    }
    let t = if let Some(t) = cx.attr_t("value")? {
        t
    } else if let Some(f) = cx.attr_f_opt("value_float")? {
        Tensor::scalar_f32(f)
    } else if let Some(v) = cx.attr_floats("value_floats")? {
        Tensor::from_f32(Shape::from([v.len()]), v).map_err(|e| cx.error(e))?
    } else if let Some(i) = cx.attr_i_opt("value_int")? {
        Tensor::scalar_i64(i)
    } else if let Some(v) = cx.attr_ints("value_ints")? {
        Tensor::vec_i64(v)
    } else {
        return Err(cx.error("Constant has no value attribute"));
    };
    Ok(Imported::Constant(t))
}
