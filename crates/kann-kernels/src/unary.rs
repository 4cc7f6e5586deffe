//! Element-wise f32 functions of one input (the worked example of a kernel).

use crate::kernel::{expect_io, KernelImpl};
use crate::Io;
use serde::{Deserialize, Serialize};
use std::ops::Range;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum UnaryKind {
    Relu,
}

/// `y[i] = f(x[i])` over `len` elements; work items are elements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unary {
    pub kind: UnaryKind,
    pub len: u64,
}

impl KernelImpl for Unary {
    fn name(&self) -> String {
        format!("f32_{:?}_generic", self.kind).to_lowercase()
    }

    fn work_items(&self) -> u64 {
        self.len
    }

    fn in_place_ok(&self) -> bool {
        true
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let r = part.start as usize..part.end as usize;
        let f = match self.kind {
            UnaryKind::Relu => |x: f32| x.max(0.0),
        };
        // SAFETY: this part owns these output elements (the run contract).
        let out = unsafe { io.outputs[0].f32_part(r.clone()) };
        if io.inputs[0].same_as(&io.outputs[0]) {
            out.iter_mut().for_each(|v| *v = f(*v));
        } else {
            // SAFETY: no one writes the input during the step.
            let x = unsafe { &io.inputs[0].f32()[r] };
            out.iter_mut().zip(x).for_each(|(o, &v)| *o = f(v));
        }
    }
}
