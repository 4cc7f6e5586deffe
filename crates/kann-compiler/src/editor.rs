//! A small graph editor: the only way passes mutate a [`Graph`].
//!
//! Edits are recorded lazily: removed nodes are only marked, new constants
//! are appended, and every value keeps its id until [`Editor::finish`]
//! compacts the graph (drops removed nodes and values nothing refers to,
//! renumbers both keeping the topological order, the graph inputs and the
//! graph outputs) and runs [`kann_ir::verify`]. The editor keeps the list of
//! users of every value up to date, so passes can chain rewrites (Conv → BN →
//! Mul → Add) in one sweep.
//!
//! Nodes are never inserted: passes rewrite a node in place
//! ([`Editor::set_input`], [`Editor::set_op`]) or redirect uses to a value
//! that is already defined earlier, which keeps the topological order
//! without a sort.

use crate::CompileError;
use kann_ir::{Graph, InferInput, Node, NodeId, Op, TensorInfo, Value, ValueId};
use kann_tensor::Tensor;
use std::sync::Arc;

/// Mutable view of a graph for one pass. Drop it without [`Editor::finish`]
/// only when nothing was edited.
pub struct Editor<'g> {
    g: &'g mut Graph,
    removed: Vec<bool>,
    /// Live nodes reading each value, once per input slot.
    users: Vec<Vec<NodeId>>,
}

impl<'g> Editor<'g> {
    pub fn new(g: &'g mut Graph) -> Editor<'g> {
        let mut users = vec![Vec::new(); g.values.len()];
        for (i, n) in g.nodes.iter().enumerate() {
            for v in n.inputs.iter().flatten() {
                if let Some(u) = users.get_mut(v.index()) {
                    u.push(NodeId(i as u32));
                }
            }
        }
        let removed = vec![false; g.nodes.len()];
        Editor { g, removed, users }
    }

    /// The graph as edited so far (removed nodes are still present; check
    /// [`Editor::is_removed`]).
    pub fn graph(&self) -> &Graph {
        self.g
    }

    pub fn node(&self, id: NodeId) -> &Node {
        self.g.node(id)
    }

    pub fn value(&self, id: ValueId) -> &Value {
        self.g.value(id)
    }

    /// Ids of the nodes not removed, in topological order (a snapshot: nodes
    /// removed while iterating are still listed).
    pub fn live_nodes(&self) -> Vec<NodeId> {
        (0..self.g.nodes.len()).filter(|&i| !self.removed[i]).map(|i| NodeId(i as u32)).collect()
    }

    pub fn is_removed(&self, id: NodeId) -> bool {
        self.removed[id.index()]
    }

    /// Live nodes reading `v`, once per input slot that reads it.
    pub fn users(&self, v: ValueId) -> &[NodeId] {
        &self.users[v.index()]
    }

    pub fn is_graph_output(&self, v: ValueId) -> bool {
        self.g.outputs.contains(&v)
    }

    pub fn is_graph_input(&self, v: ValueId) -> bool {
        self.g.inputs.contains(&v)
    }

    /// Whether anything reads `v`: a live node or the graph's outputs.
    pub fn is_used(&self, v: ValueId) -> bool {
        !self.users[v.index()].is_empty() || self.is_graph_output(v)
    }

    /// `v`'s data when it is a constant.
    pub fn constant(&self, v: ValueId) -> Option<&Arc<Tensor>> {
        self.g.value(v).constant.as_ref()
    }

    /// The live node producing `v`, if any.
    pub fn producer(&self, v: ValueId) -> Option<NodeId> {
        self.g.value(v).producer.filter(|p| !self.removed[p.index()])
    }

    /// Locator of a node for errors: `node #12 "Conv_3" (Conv)`.
    pub fn locate(&self, id: NodeId) -> String {
        self.g.locate(id)
    }

    /// Appends a constant value and returns its id.
    pub fn add_constant(&mut self, name: &str, tensor: Tensor) -> ValueId {
        let id = ValueId(self.g.values.len() as u32);
        self.g.values.push(Value { name: name.to_string(), info: TensorInfo::of(&tensor), producer: None, constant: Some(Arc::new(tensor)) });
        self.users.push(Vec::new());
        id
    }

    /// Sets input slot `slot` of `node` (growing the input list with `None`s
    /// if needed). The new value must be defined before `node`.
    pub fn set_input(&mut self, node: NodeId, slot: usize, v: Option<ValueId>) {
        let inputs = &mut self.g.nodes[node.index()].inputs;
        if inputs.len() <= slot {
            inputs.resize(slot + 1, None);
        }
        let old = std::mem::replace(&mut inputs[slot], v);
        if let Some(old) = old {
            remove_one(&mut self.users[old.index()], node);
        }
        if let Some(v) = v {
            self.users[v.index()].push(node);
        }
    }

    /// Drops the input slots of `node` from `len` on.
    pub fn truncate_inputs(&mut self, node: NodeId, len: usize) {
        for slot in len..self.g.node(node).inputs.len() {
            self.set_input(node, slot, None);
        }
        self.g.nodes[node.index()].inputs.truncate(len);
    }

    /// Replaces a node's op (its inputs stay; call [`Editor::check_node`]).
    pub fn set_op(&mut self, node: NodeId, op: Op) {
        self.g.nodes[node.index()].op = op;
    }

    /// Re-runs inference on `node` and checks that it still produces exactly
    /// the types its outputs carry. Passes call this after rewriting a node.
    pub fn check_node(&self, node: NodeId) -> Result<(), CompileError> {
        let n = self.g.node(node);
        let inputs: Vec<Option<InferInput>> = n
            .inputs
            .iter()
            .map(|i| {
                i.map(|v| {
                    let val = self.g.value(v);
                    InferInput { info: &val.info, value: val.constant.as_deref() }
                })
            })
            .collect();
        let infos = n.op.infer(&inputs).map_err(|reason| CompileError::Edit { node: self.locate(node), reason })?;
        let have: Vec<&TensorInfo> = n.outputs.iter().map(|&o| &self.g.value(o).info).collect();
        if infos.len() != have.len() || infos.iter().zip(&have).any(|(a, b)| a != *b) {
            let infos: Vec<String> = infos.iter().map(|i| i.to_string()).collect();
            let have: Vec<String> = have.iter().map(|i| i.to_string()).collect();
            return Err(CompileError::Edit { node: self.locate(node), reason: format!("rewritten node infers [{}] but its outputs are [{}]", infos.join(", "), have.join(", ")) });
        }
        Ok(())
    }

    /// Whether [`Editor::replace_uses`]`(from, to)` would succeed: same type,
    /// and, when `from` is a graph output, `to` can take its place (it is
    /// produced by a node and is not already an output, so it can take the
    /// output's name).
    pub fn can_replace(&self, from: ValueId, to: ValueId) -> bool {
        if from == to || self.g.value(from).info != self.g.value(to).info {
            return false;
        }
        !self.is_graph_output(from) || (self.producer(to).is_some() && !self.is_graph_output(to))
    }

    /// Makes every reader of `from` (live nodes and graph outputs) read `to`
    /// instead. `to` must be defined before every reader of `from`. A graph
    /// output keeps its name: `to` is renamed after it.
    pub fn replace_uses(&mut self, from: ValueId, to: ValueId) -> Result<(), CompileError> {
        if !self.can_replace(from, to) {
            let (f, t) = (self.g.value(from), self.g.value(to));
            return Err(CompileError::Edit { node: format!("value '{}'", f.name), reason: format!("cannot replace {} by '{}' ({})", f.info, t.name, t.info) });
        }
        for user in std::mem::take(&mut self.users[from.index()]) {
            for slot in self.g.nodes[user.index()].inputs.iter_mut() {
                if *slot == Some(from) {
                    *slot = Some(to);
                    self.users[to.index()].push(user);
                }
            }
        }
        // `users[from]` may hold a node twice (two slots); the loop above
        // rewrote both slots on the first visit and pushed `to` twice then,
        // so dedupe pushes from repeated visits.
        dedupe_slots(&self.g.nodes, &mut self.users[to.index()], to);
        if self.is_graph_output(from) {
            let name = self.g.value(from).name.clone();
            for o in self.g.outputs.iter_mut().filter(|o| **o == from) {
                *o = to;
            }
            self.g.values[from.index()].name = format!("{name}:replaced");
            self.g.values[to.index()].name = name;
        }
        Ok(())
    }

    /// Removes a node whose outputs nothing reads.
    pub fn remove_node(&mut self, node: NodeId) -> Result<(), CompileError> {
        if self.removed[node.index()] {
            return Ok(());
        }
        if let Some(&o) = self.g.node(node).outputs.iter().find(|&&o| self.is_used(o)) {
            return Err(CompileError::Edit { node: self.locate(node), reason: format!("cannot remove it: output '{}' is still used", self.g.value(o).name) });
        }
        self.removed[node.index()] = true;
        for v in self.g.nodes[node.index()].inputs.iter().flatten() {
            remove_one(&mut self.users[v.index()], node);
        }
        Ok(())
    }

    /// Removes the producer of `v` when nothing reads its outputs any more,
    /// and then, recursively, the producers that this leaves unused. Returns
    /// how many nodes went.
    pub fn remove_if_unused(&mut self, v: ValueId) -> usize {
        let Some(p) = self.producer(v) else { return 0 };
        if self.g.node(p).outputs.iter().any(|&o| self.is_used(o)) {
            return 0;
        }
        let inputs: Vec<ValueId> = self.g.node(p).inputs.iter().flatten().copied().collect();
        if self.remove_node(p).is_err() {
            return 0;
        }
        1 + inputs.into_iter().map(|i| self.remove_if_unused(i)).sum::<usize>()
    }

    /// Turns a node into constants: its outputs become constant values
    /// holding `tensors` (same ids and names), and the node is removed.
    pub fn fold_to_constants(&mut self, node: NodeId, tensors: Vec<Tensor>) -> Result<(), CompileError> {
        let outputs = self.g.node(node).outputs.clone();
        if tensors.len() != outputs.len() {
            return Err(CompileError::Edit { node: self.locate(node), reason: format!("{} tensors for {} outputs", tensors.len(), outputs.len()) });
        }
        for (t, &o) in tensors.iter().zip(&outputs) {
            let want = &self.g.value(o).info;
            if TensorInfo::of(t) != *want {
                return Err(CompileError::Edit { node: self.locate(node), reason: format!("folded to {} but the output is {}", TensorInfo::of(t), want) });
            }
        }
        self.removed[node.index()] = true;
        for v in self.g.nodes[node.index()].inputs.iter().flatten() {
            remove_one(&mut self.users[v.index()], node);
        }
        for (t, o) in tensors.into_iter().zip(outputs) {
            let v = &mut self.g.values[o.index()];
            v.producer = None;
            v.constant = Some(Arc::new(t));
        }
        Ok(())
    }

    /// Compacts the graph (drops removed nodes and unreferenced values,
    /// renumbers, keeps inputs and outputs) and verifies it.
    pub fn finish(self) -> Result<(), CompileError> {
        compact(self.g, &self.removed);
        kann_ir::verify(self.g).map_err(|source| CompileError::Invalid { source })
    }
}

fn remove_one(list: &mut Vec<NodeId>, node: NodeId) {
    if let Some(i) = list.iter().position(|&n| n == node) {
        list.swap_remove(i);
    }
}

/// Makes `users` hold each node exactly as often as it reads `v`.
fn dedupe_slots(nodes: &[Node], users: &mut Vec<NodeId>, v: ValueId) {
    users.sort_unstable();
    users.dedup();
    let expanded: Vec<NodeId> = users.iter().flat_map(|&u| std::iter::repeat_n(u, nodes[u.index()].inputs.iter().filter(|&&i| i == Some(v)).count())).collect();
    *users = expanded;
}

/// Drops removed nodes and the values that no live node, graph input or
/// graph output refers to; renumbers values and nodes in their old order.
fn compact(g: &mut Graph, removed: &[bool]) {
    let mut keep = vec![false; g.values.len()];
    for &v in g.inputs.iter().chain(&g.outputs) {
        keep[v.index()] = true;
    }
    for (i, n) in g.nodes.iter().enumerate() {
        if removed[i] {
            continue;
        }
        for &v in n.inputs.iter().flatten().chain(&n.outputs) {
            keep[v.index()] = true;
        }
    }
    let mut node_map = vec![None; g.nodes.len()];
    let mut next = 0u32;
    for (i, r) in removed.iter().enumerate() {
        if !r {
            node_map[i] = Some(NodeId(next));
            next += 1;
        }
    }
    let mut value_map = vec![None; g.values.len()];
    let mut values = Vec::with_capacity(g.values.len());
    for (i, v) in std::mem::take(&mut g.values).into_iter().enumerate() {
        if keep[i] {
            value_map[i] = Some(ValueId(values.len() as u32));
            let producer = v.producer.and_then(|p| node_map[p.index()]);
            values.push(Value { producer, ..v });
        }
    }
    g.values = values;
    let map_v = |v: ValueId| value_map[v.index()].expect("kept values are mapped");
    let nodes = std::mem::take(&mut g.nodes);
    g.nodes = nodes
        .into_iter()
        .zip(removed)
        .filter(|(_, &r)| !r)
        .map(|(n, _)| Node { inputs: n.inputs.iter().map(|i| i.map(map_v)).collect(), outputs: n.outputs.iter().map(|&o| map_v(o)).collect(), ..n })
        .collect();
    g.inputs = g.inputs.iter().map(|&v| map_v(v)).collect();
    g.outputs = g.outputs.iter().map(|&v| map_v(v)).collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testutil::*;

    #[test]
    fn compact_renumbers_and_keeps_inputs_outputs_and_order() {
        let mut b = builder();
        let x = b.input("x", &[2]);
        let a = b.unary("a", UnaryKind::Relu, x);
        let n = b.unary("n", UnaryKind::Neg, a);
        let e = b.unary("e", UnaryKind::Exp, n);
        b.output(e);
        let mut g = b.finish();
        let mut ed = Editor::new(&mut g);
        let (na, nn) = (NodeId(0), NodeId(1));
        assert_eq!(ed.users(a), [nn]);
        ed.replace_uses(n, a).unwrap();
        assert!(ed.users(n).is_empty());
        assert_eq!(ed.users(a), [nn, NodeId(2)]);
        ed.remove_node(nn).unwrap();
        let err = ed.remove_node(na).unwrap_err();
        assert_eq!(err.to_string(), "node #0 \"a\" (Relu): invalid edit: cannot remove it: output 'a' is still used");
        let c = ed.add_constant("unused", kann_tensor::Tensor::scalar_f32(1.0));
        assert_eq!(c, ValueId(4));
        ed.finish().unwrap();
        assert_eq!(op_names(&g), ["Relu", "Exp"]);
        assert_eq!(g.values.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["x", "a", "e"]);
        assert_eq!(g.nodes[1].inputs, [Some(ValueId(1))]);
        assert_eq!(g.value(ValueId(2)).producer, Some(NodeId(1)));
        assert_eq!((g.inputs.clone(), g.outputs.clone()), (vec![ValueId(0)], vec![ValueId(2)]));
    }

    #[test]
    fn replacing_a_graph_output_moves_its_name_and_refuses_inputs() {
        let mut b = builder();
        let x = b.input("x", &[2]);
        let a = b.unary("a", UnaryKind::Relu, x);
        let y = b.unary("y", UnaryKind::Identity, a);
        let z = b.binary("z", BinaryKind::Add, y, y);
        b.output(y);
        b.output(z);
        let mut g = b.finish();
        let mut ed = Editor::new(&mut g);
        assert!(!ed.can_replace(y, x), "a graph input cannot become an output under another name");
        assert!(ed.replace_uses(y, x).is_err());
        assert_eq!(ed.users(y).len(), 2, "a node reading twice is counted twice");
        ed.replace_uses(y, a).unwrap();
        assert_eq!(ed.users(a).len(), 3);
        ed.remove_node(NodeId(1)).unwrap();
        ed.finish().unwrap();
        assert_eq!(op_names(&g), ["Relu", "Add"]);
        assert_eq!(g.value(g.outputs[0]).name, "y");
        assert_eq!(g.nodes[1].inputs, [Some(g.outputs[0]), Some(g.outputs[0])]);
    }

    #[test]
    fn check_node_catches_a_rewrite_that_changes_types() {
        let mut b = builder();
        let x = b.input("x", &[2, 3]);
        let r = b.unary("r", UnaryKind::Relu, x);
        let shape = b.constant_i64("shape", vec![3, 2]);
        let _ = r;
        let mut g = b.finish();
        let mut ed = Editor::new(&mut g);
        ed.set_op(NodeId(0), kann_ir::Op::Movement(kann_ir::ops::movement::MovementOp::Reshape { allowzero: false }));
        ed.set_input(NodeId(0), 1, Some(shape));
        let err = ed.check_node(NodeId(0)).unwrap_err();
        assert!(err.to_string().contains("infers [f32[3, 2]] but its outputs are [f32[2, 3]]"), "{err}");
    }
}
