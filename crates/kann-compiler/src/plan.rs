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
//!
//! A Concat whose inputs are contiguous slabs of its output (nothing
//! outside the concatenated axis: batch 1 along channels) is zero-copy: its
//! producers write straight into their slab of the output buffer and the
//! step is dropped. A slab's storage is its concat output's (lifetimes
//! merge); an input qualifies when only arena steps write it (not a graph
//! input or output, not a constant, not another concat's slab, listed
//! once) and it takes no part in an in-place step. An input that is itself
//! a zero-copy concat's output becomes a slab with its own slabs inside:
//! DenseNet's dense blocks, where each layer's concat takes the previous
//! concat whole, then live in one buffer, every layer writing its new
//! channels after the ones before.

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
    /// Concat steps made zero-copy (their producers write into the output).
    pub zero_copy_concats: usize,
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

    let key_of = |op: &Operand| match *op {
        Operand::Value(v) => Some(Key::Value(root(v))),
        Operand::Temp(t) => Some(Key::Temp(t)),
        Operand::Weights { .. } => None,
    };
    let is_const = |k: Key| matches!(k, Key::Value(v) if g.value(v).constant.is_some());
    let graph_input_roots: Vec<ValueId> = g.inputs.iter().map(|&v| root(v)).collect();
    let graph_output_roots: Vec<ValueId> = g.outputs.iter().map(|&v| root(v)).collect();
    let fixed = |k: Key| matches!(k, Key::Value(v) if graph_input_roots.contains(&v) || graph_output_roots.contains(&v));

    // Zero-copy concats: slab key -> (the concat output's key, byte offset).
    let slabs = zero_copy_slabs(lowered, &key_of, &|k| is_const(k) || fixed(k), &bytes_of);
    let dropped: Vec<usize> = slabs.1;
    let slabs: HashMap<Key, (Key, u64)> = slabs.0;
    plan.zero_copy_concats = dropped.len();
    let mut step_no = 0;
    lowered.steps.retain(|_| {
        step_no += 1;
        !dropped.contains(&(step_no - 1))
    });
    let n_steps = lowered.steps.len() as i64;
    // The storage a key lives in, and its byte offset there: a slab's is
    // its concat output's, which may itself be a slab of a later concat
    // (DenseNet's chains: each layer's concat takes the previous one whole).
    let place = |k: Key| {
        let (mut at, mut within) = (k, 0);
        while let Some(&(p, off)) = slabs.get(&at) {
            (at, within) = (p, within + off);
        }
        (at, within)
    };
    let home = |k: Key| place(k).0;

    // Lifetimes of arena storages.
    let mut storage_of: HashMap<Key, usize> = HashMap::new();
    let mut storages: Vec<Storage> = Vec::new();
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
    for (i, s) in lowered.steps.iter().enumerate() {
        let i = i as i64;
        // In place: output 0 takes input 0's storage when input 0 dies here.
        if s.kernel.in_place_ok() && !s.inputs.is_empty() && !s.outputs.is_empty() {
            if let (Some(ki), Some(ko)) = (key_of(&s.inputs[0]), key_of(&s.outputs[0])) {
                let input_dies_here = last_use(lowered, &key_of, ki) == Some(i as usize);
                let read_twice = s.inputs[1..].iter().any(|o| key_of(o) == Some(ki));
                let in_slab = slabs.contains_key(&ki) || slabs.contains_key(&ko);
                if input_dies_here
                    && !in_slab
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
                    touch(home(k), i, &mut storages, &mut storage_of);
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
        let (at, within) = place(k);
        let s = &storages[storage_of[&at]];
        BufRef::Arena { offset: s.offset + within, len: size_of(k) }
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

/// The concats to make zero-copy: each qualifying input's key with its
/// concat output's key and byte offset, and the concat steps to drop (see
/// the module doc). `excluded` says which keys may not move (constants,
/// graph inputs and outputs).
#[allow(clippy::type_complexity)]
fn zero_copy_slabs(lowered: &Lowered, key_of: &dyn Fn(&Operand) -> Option<Key>, excluded: &dyn Fn(Key) -> bool, bytes_of: &dyn Fn(ValueId) -> u64) -> (HashMap<Key, (Key, u64)>, Vec<usize>) {
    let mut slabs: HashMap<Key, (Key, u64)> = HashMap::new();
    let mut dropped = Vec::new();
    // Keys written by steps (the only ones a producer can write into a slab).
    let written: std::collections::HashSet<Key> = lowered.steps.iter().flat_map(|s| s.outputs.iter().filter_map(key_of)).collect();
    for (i, s) in lowered.steps.iter().enumerate() {
        let kann_kernels::Kernel::Concat(c) = &s.kernel else { continue };
        let (Some(Operand::Value(y)), true) = (s.outputs.first(), c.outer == 1) else { continue };
        let ky = Key::Value(*y);
        if key_of(&s.outputs[0]) != Some(ky) || excluded(ky) || slabs.contains_key(&ky) {
            continue;
        }
        let keys: Vec<Option<Key>> = s.inputs.iter().map(key_of).collect();
        let es = if c.chunks.iter().sum::<u64>() == 0 { 0 } else { bytes_of(*y) / c.chunks.iter().sum::<u64>() };
        let ok = keys.iter().enumerate().all(|(j, k)| match (*k, s.inputs[j]) {
            (Some(k @ Key::Value(r)), Operand::Value(v)) => {
                written.contains(&k)
                    && !excluded(k)
                    && !slabs.contains_key(&k)
                    && k != ky
                    && keys.iter().filter(|&&o| o == Some(k)).count() == 1
                    && bytes_of(v) == c.chunks[j] * es
                    && bytes_of(r) == bytes_of(v)
            }
            _ => false,
        });
        if !ok || es == 0 {
            continue;
        }
        let mut at = 0;
        // Every key is present (checked by `ok`).
        for (k, &chunk) in keys.iter().flatten().zip(&c.chunks) {
            slabs.insert(*k, (ky, at));
            at += chunk * es;
        }
        dropped.push(i);
    }
    (slabs, dropped)
}

/// The last step reading storage key `k`.
fn last_use(lowered: &Lowered, key_of: &dyn Fn(&Operand) -> Option<Key>, k: Key) -> Option<usize> {
    lowered.steps.iter().enumerate().rev().find(|(_, s)| s.inputs.iter().any(|o| key_of(o) == Some(k))).map(|(i, _)| i)
}
