//! Fuzzes the ONNX reader end to end: decode, import (with constant folding
//! by the reference), and a reference run when the graph is small. Any panic
//! is a bug; errors are the expected outcome for garbage.
#![no_main]

use kann_onnx::{decode_model, import_model, ImportOptions};
use kann_reference::Reference;
use kann_tensor::Tensor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(model) = decode_model(data, "fuzz") else { return };
    let Ok(imported) = import_model(&model, None, &ImportOptions::default(), Some(&Reference)) else { return };
    let g = &imported.graph;
    let total: usize = g.values.iter().map(|v| v.info.numel()).fold(0usize, |a, b| a.saturating_add(b));
    if total > 1_000_000 {
        return;
    }
    let inputs: Vec<Tensor> = g.inputs.iter().map(|&i| Tensor::zeros(g.value(i).info.dtype, g.value(i).info.shape.clone())).collect();
    let _ = kann_reference::run(g, &inputs);
});
