use crate::ops::Op;
use kann_tensor::{DType, Shape, Tensor};
use std::fmt;
use std::sync::Arc;

/// Index of a [`Value`] in [`Graph::values`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

/// Index of a [`Node`] in [`Graph::nodes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl ValueId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Static type of a value: element type and shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorInfo {
    pub dtype: DType,
    pub shape: Shape,
}

impl TensorInfo {
    pub fn new(dtype: DType, shape: Shape) -> TensorInfo {
        TensorInfo { dtype, shape }
    }

    pub fn of(t: &Tensor) -> TensorInfo {
        TensorInfo { dtype: t.dtype(), shape: t.shape().clone() }
    }

    pub fn rank(&self) -> usize {
        self.shape.rank()
    }

    pub fn numel(&self) -> usize {
        self.shape.numel()
    }
}

impl fmt::Display for TensorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, self.shape)
    }
}

/// A tensor flowing through the graph: produced by one node, or a graph
/// input, or a constant (initializer / folded).
#[derive(Debug, Clone)]
pub struct Value {
    pub name: String,
    pub info: TensorInfo,
    pub producer: Option<NodeId>,
    pub constant: Option<Arc<Tensor>>,
}

/// One operation. `inputs` keeps ONNX's positional convention: `None` is an
/// omitted optional input.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<Option<ValueId>>,
    pub outputs: Vec<ValueId>,
}

/// A graph whose nodes are in topological order and whose values all carry
/// static shapes.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub name: String,
    pub values: Vec<Value>,
    pub nodes: Vec<Node>,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
}

impl Graph {
    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id.index()]
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    /// Human locator used in every error: `node #12 "Conv_3" (Conv)`.
    pub fn locate(&self, id: NodeId) -> String {
        let n = self.node(id);
        locator(id, &n.name, n.op.name())
    }

    pub fn find_value(&self, name: &str) -> Option<ValueId> {
        self.values.iter().position(|v| v.name == name).map(|i| ValueId(i as u32))
    }
}

pub(crate) fn locator(id: NodeId, name: &str, op: &str) -> String {
    format!("node #{} \"{}\" ({})", id.0, name, op)
}
