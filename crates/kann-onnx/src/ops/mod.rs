//! Import functions, one module per op family (mirroring `kann_ir::ops`).
//! Each family's `register` adds its registry rows.

mod constant;
mod elementwise;
mod movement;
mod nn;
mod reduce;
mod resample;

use crate::registry::Registry;

pub(crate) fn register_all(r: &mut Registry) {
    constant::register(r);
    elementwise::register(r);
    nn::register(r);
    movement::register(r);
    reduce::register(r);
    resample::register(r);
}
