//! Import of the nn family: convolutions and pooling (`conv`), matrix
//! products, normalisations, softmax and quantisation (`other`).

mod attention;
mod conv;
mod extra;
mod other;
mod recurrent;

use crate::registry::Registry;

const FLOAT_TYPES: &str = "f32 f16 bf16 f64";

pub(super) fn register(r: &mut Registry) {
    attention::register(r);
    conv::register(r);
    extra::register(r);
    other::register(r);
    recurrent::register(r);
}
