//! Reference evaluation, one module per op family (mirroring `kann_ir::ops`).

pub mod elementwise;
pub mod movement;
pub mod nn;
pub mod reduce;
pub mod resample;
