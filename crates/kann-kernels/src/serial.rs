//! A single-threaded executor of a [`Program`], for tests and tools: it
//! runs every cluster's commands one barrier phase at a time (cluster 0's
//! part of the phase, then cluster 1's…), which is one valid ordering of
//! the parallel schedule. The runtime's pinned workers must give the same
//! bytes.

use crate::{BufRef, Command, Io, Program, RawBuf};

/// 64-byte blocks, so every buffer offset the plan gives is 64-aligned.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Block([u8; 64]);

/// Zeroed, 64-byte-aligned bytes.
pub struct AlignedBytes {
    blocks: Vec<Block>,
    len: usize,
}

impl AlignedBytes {
    pub fn zeroed(len: usize) -> AlignedBytes {
        AlignedBytes { blocks: vec![Block([0; 64]); len.div_ceil(64)], len }
    }

    pub fn copy_of(bytes: &[u8]) -> AlignedBytes {
        let mut a = AlignedBytes::zeroed(bytes.len());
        a.as_mut_slice().copy_from_slice(bytes);
        a
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the blocks hold at least `len` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr().cast::<u8>(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

/// Runs the program once on `inputs` (raw little-endian bytes, in
/// [`Program::inputs`] order) and returns the outputs' bytes.
pub fn run(program: &Program, weights: &[u8], inputs: &[&[u8]]) -> Result<Vec<Vec<u8>>, String> {
    program.validate(weights.len() as u64)?;
    if inputs.len() != program.inputs.len() {
        return Err(format!("the program takes {} inputs, {} were given", program.inputs.len(), inputs.len()));
    }
    let mut arena = AlignedBytes::zeroed(program.arena_bytes as usize);
    let mut weights = AlignedBytes::copy_of(weights);
    for (t, bytes) in program.inputs.iter().zip(inputs) {
        if bytes.len() != t.bytes() {
            return Err(format!("input '{}' needs {} bytes, {} were given", t.name, t.bytes(), bytes.len()));
        }
        let BufRef::Arena { offset, len } = t.buf else { return Err(format!("input '{}' is not in the arena", t.name)) };
        arena.as_mut_slice()[offset as usize..(offset + len) as usize].copy_from_slice(bytes);
    }
    let arena_ptr = arena.as_mut_slice().as_mut_ptr();
    let weights_ptr = weights.as_mut_slice().as_mut_ptr();
    let resolve = |b: &BufRef| -> RawBuf {
        // SAFETY: `validate` checked every reference lies inside its region.
        unsafe {
            match *b {
                BufRef::Arena { offset, len } => RawBuf::new(arena_ptr.add(offset as usize), len as usize),
                BufRef::Weights { offset, len } => RawBuf::new(weights_ptr.add(offset as usize), len as usize),
            }
        }
    };
    let mut scratch = AlignedBytes::zeroed(program.scratch_bytes as usize);
    let mut cursors = vec![0usize; program.n_clusters()];
    loop {
        let mut progressed = false;
        for (c, cmds) in program.clusters.iter().enumerate() {
            while let Some(cmd) = cmds.get(cursors[c]) {
                cursors[c] += 1;
                progressed = true;
                match *cmd {
                    Command::Barrier { .. } => break,
                    Command::Run { step, begin, end } => {
                        let s = &program.steps[step as usize];
                        let ins: Vec<RawBuf> = s.inputs.iter().map(resolve).collect();
                        let outs: Vec<RawBuf> = s.outputs.iter().map(resolve).collect();
                        // SAFETY: one thread; buffers validated; scratch sized by the program.
                        unsafe { s.kernel.run(&Io { inputs: &ins, outputs: &outs }, begin..end, scratch.as_mut_slice()) };
                    }
                }
            }
        }
        if !progressed {
            break;
        }
    }
    let arena = arena.as_slice();
    let weights = weights.as_slice();
    Ok(program
        .outputs
        .iter()
        .map(|t| match t.buf {
            BufRef::Arena { offset, len } => arena[offset as usize..(offset + len) as usize].to_vec(),
            BufRef::Weights { offset, len } => weights[offset as usize..(offset + len) as usize].to_vec(),
        })
        .collect())
}
