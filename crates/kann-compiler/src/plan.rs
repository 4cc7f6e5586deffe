//! The memory plan: every activation and temp gets a place in one arena,
//! reusing bytes between buffers whose lifetimes do not overlap, and
//! computing in place where the kernel allows it. Constants go to the
//! weights section.
//!
//! Lifetimes are step intervals: a buffer is live from the step that
//! writes it (graph inputs: before the first step) to the last step that
//! reads it (graph outputs: after the last step). Views (aliases) share
//! their root's storage and extend its lifetime. Placement is greedy:
//! largest storage first, at the lowest 64-aligned offset that overlaps no
//! placed storage with an intersecting lifetime.

use crate::lower::{Lowered, Operand};
use kann_ir::{Graph, ValueId};
use kann_kernels::BufRef;
use std::collections::HashMap;

const ALIGN: u64 = 64;

/// Where each operand lives, and what the plan saved.
#[derive(Debug, Default)]
pub struct MemoryPlan {
    pub arena_bytes: u64,
    /// Sum of every activation and temp buffer (no reuse), for the log.
    pub naive_bytes: u64,
    /// Steps computed in place.
    pub in_place: usize,
    /// Number of arena buffers placed.
    pub buffers: usize,
    values: HashMap<ValueId, BufRef>,
    temps: Vec<BufRef>,
}

impl MemoryPlan {
    /// The buffer of an operand.
    pub fn resolve(&self, op: &Operand) -> Option<BufRef> {
        match *op {
            Operand::Value(v) => self.values.get(&v).copied(),
            Operand::Weights { offset, len } => Some(BufRef::Weights { offset, len }),
            Operand::Temp(t) => self.temps.get(t as usize).copied(),
        }
    }

    /// The buffer of a graph value.
    pub fn value(&self, v: ValueId) -> Option<BufRef> {
        self.values.get(&v).copied()
    }
}

/// A key for anything that needs arena bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Value(ValueId),
    Temp(u32),
}

struct Storage {
    bytes: u64,
    first: i64,
    last: i64,
    offset: u64,
}

fn round_up(x: u64) -> u64 {
    x.next_multiple_of(ALIGN)
}

/// Places every buffer of `lowered`; constants read by steps are appended
/// to `lowered.weights`.
pub fn plan_memory(g: &Graph, lowered: &mut Lowered) -> Result<MemoryPlan, String> {
    let root = |v: ValueId| lowered.aliases.get(&v).copied().unwrap_or(v);
    let bytes_of = |v: ValueId| {
        let i = &g.value(v).info;
        (i.numel() * i.dtype.size()) as u64
    };
    let n_steps = lowered.steps.len() as i64;
    let mut plan = MemoryPlan::default();

    // Constants (or views of constants) go to the weights, once each.
    let mut const_refs: HashMap<ValueId, BufRef> = HashMap::new();
    let mut used_values: Vec<ValueId> = Vec::new();
    for s in &lowered.steps {
        for op in s.inputs.iter().chain(&s.outputs) {
            if let Operand::Value(v) = *op {
                used_values.push(v);
            }
        }
    }
    used_values.extend(g.outputs.iter().copied());
    used_values.extend(g.inputs.iter().copied());
    for &v in &used_values {
        let r = root(v);
        if let Some(t) = g.value(r).constant.as_deref() {
            if let std::collections::hash_map::Entry::Vacant(e) = const_refs.entry(r) {
                let w = &mut lowered.weights;
                w.resize(w.len().next_multiple_of(ALIGN as usize), 0);
                let offset = w.len() as u64;
                let data = kann_tensor::npy::raw_le_bytes(t);
                w.extend_from_slice(&data);
                e.insert(BufRef::Weights { offset, len: data.len() as u64 });
            }
            plan.values.insert(v, const_refs[&r]);
        }
    }

    // Lifetimes of arena storages.
    let mut storage_of: HashMap<Key, usize> = HashMap::new();
    let mut storages: Vec<Storage> = Vec::new();
    let key_of = |op: &Operand| match *op {
        Operand::Value(v) => Some(Key::Value(root(v))),
        Operand::Temp(t) => Some(Key::Temp(t)),
        Operand::Weights { .. } => None,
    };
    let is_const = |k: Key| matches!(k, Key::Value(v) if g.value(v).constant.is_some());
    let size_of = |k: Key| match k {
        Key::Value(v) => bytes_of(v),
        Key::Temp(t) => lowered.temps[t as usize],
    };
    let touch = |k: Key, at: i64, storages: &mut Vec<Storage>, storage_of: &mut HashMap<Key, usize>| {
        let idx = *storage_of.entry(k).or_insert_with(|| {
            storages.push(Storage { bytes: size_of(k), first: at, last: at, offset: 0 });
            storages.len() - 1
        });
        let s = &mut storages[idx];
        s.first = s.first.min(at);
        s.last = s.last.max(at);
    };
    for &v in &g.inputs {
        touch(Key::Value(root(v)), -1, &mut storages, &mut storage_of);
    }
    let graph_input_roots: Vec<ValueId> = g.inputs.iter().map(|&v| root(v)).collect();
    let graph_output_roots: Vec<ValueId> = g.outputs.iter().map(|&v| root(v)).collect();
    for (i, s) in lowered.steps.iter().enumerate() {
        let i = i as i64;
        // In place: output 0 takes input 0's storage when input 0 dies here.
        if s.kernel.in_place_ok() && !s.inputs.is_empty() && !s.outputs.is_empty() {
            if let (Some(ki), Some(ko)) = (key_of(&s.inputs[0]), key_of(&s.outputs[0])) {
                let input_dies_here = last_use(lowered, &key_of, ki) == Some(i as usize);
                let read_twice = s.inputs[1..].iter().any(|o| key_of(o) == Some(ki));
                let fixed = |k: Key| matches!(k, Key::Value(v) if graph_input_roots.contains(&v) || graph_output_roots.contains(&v));
                if input_dies_here
                    && !read_twice
                    && !is_const(ki)
                    && !fixed(ki)
                    && !storage_of.contains_key(&ko)
                    && size_of(ki) == size_of(ko)
                    && storage_of.contains_key(&ki)
                {
                    let idx = storage_of[&ki];
                    storage_of.insert(ko, idx);
                    plan.in_place += 1;
                }
            }
        }
        for op in s.inputs.iter().chain(&s.outputs) {
            if let Some(k) = key_of(op) {
                if !is_const(k) {
                    touch(k, i, &mut storages, &mut storage_of);
                }
            }
        }
    }
    for &v in &g.outputs {
        let k = Key::Value(root(v));
        if !is_const(k) {
            touch(k, n_steps, &mut storages, &mut storage_of);
        }
    }

    // Greedy placement, largest first.
    plan.naive_bytes = storage_of.keys().map(|&k| round_up(size_of(k))).sum();
    let mut order: Vec<usize> = (0..storages.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(storages[i].bytes), storages[i].first));
    let mut placed: Vec<usize> = Vec::new();
    for &i in &order {
        let (first, last, bytes) = (storages[i].first, storages[i].last, round_up(storages[i].bytes));
        let mut busy: Vec<(u64, u64)> = placed
            .iter()
            .filter(|&&j| storages[j].first <= last && first <= storages[j].last)
            .map(|&j| (storages[j].offset, storages[j].offset + round_up(storages[j].bytes)))
            .collect();
        busy.sort();
        let mut offset = 0;
        for (b, e) in busy {
            if offset + bytes <= b {
                break;
            }
            offset = offset.max(e);
        }
        storages[i].offset = offset;
        plan.arena_bytes = plan.arena_bytes.max(offset + bytes);
        placed.push(i);
    }
    plan.buffers = storages.len();

    let arena_ref = |k: Key| -> BufRef {
        let s = &storages[storage_of[&k]];
        BufRef::Arena { offset: s.offset, len: size_of(k) }
    };
    for &v in &used_values {
        let k = Key::Value(root(v));
        if !is_const(k) {
            plan.values.insert(v, arena_ref(k));
        }
    }
    plan.temps = (0..lowered.temps.len() as u32).map(|t| arena_ref(Key::Temp(t))).collect();
    Ok(plan)
}

/// The last step reading storage key `k`.
fn last_use(lowered: &Lowered, key_of: &dyn Fn(&Operand) -> Option<Key>, k: Key) -> Option<usize> {
    lowered.steps.iter().enumerate().rev().find(|(_, s)| s.inputs.iter().any(|o| key_of(o) == Some(k))).map(|(i, _)| i)
}
