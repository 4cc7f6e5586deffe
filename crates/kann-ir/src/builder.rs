use crate::graph::{locator, Graph, Node, NodeId, TensorInfo, Value, ValueId};
use crate::ops::{InferInput, Op};
use crate::IrError;
use kann_tensor::Tensor;
use std::collections::HashMap;
use std::sync::Arc;

/// Evaluates one op on constant inputs. The IR computes nothing itself; the
/// caller supplies this (usually the reference interpreter) so that shape
/// subgraphs (`Shape → Gather → Concat → Reshape`) fold to constants and the
/// graph keeps static shapes.
pub trait ConstEval {
    fn eval(&self, op: &Op, inputs: &[Option<&Tensor>], outputs: &[TensorInfo]) -> Result<Vec<Tensor>, String>;
}

/// Nodes whose outputs all hold at most this many elements are folded when
/// their inputs are constant. Bigger results (weight transforms) stay nodes:
/// folding them is the compiler's job, not the importer's.
pub const FOLD_LIMIT: usize = 1 << 16;

/// Builds a [`Graph`] node by node, inferring each node's output types as it
/// is added and folding constant nodes.
pub struct GraphBuilder<'a> {
    graph: Graph,
    names: HashMap<String, ValueId>,
    const_eval: Option<&'a dyn ConstEval>,
}

impl<'a> GraphBuilder<'a> {
    pub fn new(name: &str, const_eval: Option<&'a dyn ConstEval>) -> GraphBuilder<'a> {
        let graph = Graph { name: name.to_string(), ..Graph::default() };
        GraphBuilder { graph, names: HashMap::new(), const_eval }
    }

    fn push_value(&mut self, name: &str, info: TensorInfo, producer: Option<NodeId>, constant: Option<Arc<Tensor>>) -> ValueId {
        let id = ValueId(self.graph.values.len() as u32);
        self.graph.values.push(Value { name: name.to_string(), info, producer, constant });
        if !name.is_empty() {
            self.names.insert(name.to_string(), id);
        }
        id
    }

    /// Declares a graph input. Names must be unique.
    pub fn add_input(&mut self, name: &str, info: TensorInfo) -> Result<ValueId, IrError> {
        if self.names.contains_key(name) {
            return Err(IrError::Invalid(format!("input '{name}' is declared twice")));
        }
        let id = self.push_value(name, info, None, None);
        self.graph.inputs.push(id);
        Ok(id)
    }

    /// Adds a constant value (initializer, Constant node, folded result).
    pub fn add_constant(&mut self, name: &str, tensor: Tensor) -> ValueId {
        let info = TensorInfo::of(&tensor);
        self.push_value(name, info, None, Some(Arc::new(tensor)))
    }

    pub fn lookup(&self, name: &str) -> Option<ValueId> {
        self.names.get(name).copied()
    }

    pub fn value(&self, id: ValueId) -> &Value {
        &self.graph.values[id.index()]
    }

    /// Number of nodes added so far (folded nodes are not counted).
    pub fn node_count(&self) -> usize {
        self.graph.nodes.len()
    }

    /// Adds a node, infers its outputs and returns their ids, one per output
    /// the op produces. `output_names` may be shorter than that (omitted
    /// optional outputs) or hold empty names; such outputs get generated names.
    pub fn add_node(&mut self, name: &str, op: Op, inputs: Vec<Option<ValueId>>, output_names: &[String]) -> Result<Vec<ValueId>, IrError> {
        let id = NodeId(self.graph.nodes.len() as u32);
        let here = || locator(id, name, op.name());
        let infer_inputs: Vec<Option<InferInput>> = inputs
            .iter()
            .map(|i| {
                i.map(|v| {
                    let val = &self.graph.values[v.index()];
                    InferInput { info: &val.info, value: val.constant.as_deref() }
                })
            })
            .collect();
        let infos = op.infer(&infer_inputs).map_err(|reason| IrError::Infer { node: here(), reason })?;
        for info in &infos {
            Tensor::check_size(info.shape.dims()).map_err(|e| IrError::Infer { node: here(), reason: e.to_string() })?;
        }
        let out_name = |i: usize| match output_names.get(i) {
            Some(n) if !n.is_empty() => n.clone(),
            _ => format!("{name}:out{i}"),
        };

        if let Some(folded) = self.try_fold(&op, &infer_inputs, &infos).map_err(|reason| IrError::Fold { node: here(), reason })? {
            return Ok(folded.into_iter().enumerate().map(|(i, t)| self.add_constant(&out_name(i), t)).collect());
        }
        let outputs: Vec<ValueId> = infos.into_iter().enumerate().map(|(i, info)| self.push_value(&out_name(i), info, Some(id), None)).collect();
        self.graph.nodes.push(Node { name: name.to_string(), op, inputs, outputs: outputs.clone() });
        Ok(outputs)
    }

    fn try_fold(&self, op: &Op, inputs: &[Option<InferInput>], infos: &[TensorInfo]) -> Result<Option<Vec<Tensor>>, String> {
        let Some(eval) = self.const_eval else { return Ok(None) };
        let all_const = inputs.iter().all(|i| i.as_ref().is_none_or(|i| i.value.is_some()));
        let small = infos.iter().all(|i| i.numel() <= FOLD_LIMIT);
        if !all_const || !small || !op.is_deterministic() {
            return Ok(None);
        }
        let values: Vec<Option<&Tensor>> = inputs.iter().map(|i| i.as_ref().and_then(|i| i.value)).collect();
        let out = eval.eval(op, &values, infos)?;
        for (t, info) in out.iter().zip(infos) {
            if TensorInfo::of(t) != *info {
                return Err(format!("evaluated {} but inference said {}", TensorInfo::of(t), info));
            }
        }
        Ok(Some(out))
    }

    /// Marks a value as a graph output.
    pub fn add_output(&mut self, id: ValueId) {
        self.graph.outputs.push(id);
    }

    /// Finishes and verifies the graph.
    pub fn finish(self) -> Result<Graph, IrError> {
        crate::verify(&self.graph)?;
        Ok(self.graph)
    }
}
