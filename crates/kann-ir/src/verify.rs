use crate::graph::{Graph, NodeId, ValueId};
use crate::IrError;

/// Checks the structural invariants every pass relies on: ids in range, each
/// value produced at most once, nodes in topological order, constants whose
/// data match their static type.
pub fn verify(g: &Graph) -> Result<(), IrError> {
    let n_values = g.values.len();
    let in_range = |v: ValueId| v.index() < n_values;
    let mut defined = vec![false; n_values];
    for (i, v) in g.values.iter().enumerate() {
        if let Some(c) = &v.constant {
            if c.dtype() != v.info.dtype || c.shape() != &v.info.shape {
                return Err(IrError::Invalid(format!("constant '{}' holds {}{} but is typed {}", v.name, c.dtype(), c.shape(), v.info)));
            }
            defined[i] = true;
        }
    }
    for &i in &g.inputs {
        if !in_range(i) {
            return Err(IrError::Invalid(format!("graph input id {} out of range", i.0)));
        }
        defined[i.index()] = true;
    }
    for (ni, node) in g.nodes.iter().enumerate() {
        let here = || g.locate(NodeId(ni as u32));
        for inp in node.inputs.iter().flatten() {
            if !in_range(*inp) || !defined[inp.index()] {
                return Err(IrError::Invalid(format!("{}: input {} is used before it is defined", here(), inp.0)));
            }
        }
        for &out in &node.outputs {
            if !in_range(out) || defined[out.index()] {
                return Err(IrError::Invalid(format!("{}: output {} is defined twice", here(), out.0)));
            }
            if g.values[out.index()].producer != Some(NodeId(ni as u32)) {
                return Err(IrError::Invalid(format!("{}: output {} names another producer", here(), out.0)));
            }
            defined[out.index()] = true;
        }
    }
    for &o in &g.outputs {
        if !in_range(o) || !defined[o.index()] {
            return Err(IrError::Invalid(format!("graph output id {} is never defined", o.0)));
        }
    }
    Ok(())
}
