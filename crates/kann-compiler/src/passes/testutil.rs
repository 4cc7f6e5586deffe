//! Helpers for the passes' unit tests: a terse graph builder, random data
//! and a before/after equivalence check through the reference interpreter.

pub use kann_ir::ops::elementwise::{BinaryKind, UnaryKind};
use kann_ir::ops::elementwise::{Binary, ElementwiseOp, Unary};
use kann_ir::ops::nn::{AutoPad, BatchNorm, Conv, ConvAttrs, NnOp, Window};
use kann_ir::{Graph, GraphBuilder, Op, TensorInfo, ValueId};
use kann_tensor::{DType, Shape, Tensor};

use super::{Pass, PassCx, PassReport};

pub struct B {
    b: GraphBuilder<'static>,
    n: usize,
}

/// A builder that folds nothing (so nodes on constants stay nodes).
pub fn builder() -> B {
    B { b: GraphBuilder::new("test", None), n: 0 }
}

impl B {
    pub fn input(&mut self, name: &str, dims: &[usize]) -> ValueId {
        self.b.add_input(name, TensorInfo::new(DType::F32, Shape::from(dims))).unwrap()
    }

    pub fn constant(&mut self, name: &str, dims: &[usize], v: Vec<f32>) -> ValueId {
        self.b.add_constant(name, Tensor::from_f32(Shape::from(dims), v).unwrap())
    }

    pub fn constant_i64(&mut self, name: &str, v: Vec<i64>) -> ValueId {
        self.b.add_constant(name, Tensor::vec_i64(v))
    }

    pub fn random(&mut self, name: &str, dims: &[usize]) -> ValueId {
        self.n += 1;
        let n = dims.iter().product();
        self.constant(name, dims, random(n, self.n as u64))
    }

    pub fn node(&mut self, name: &str, op: Op, inputs: &[Option<ValueId>]) -> Vec<ValueId> {
        self.b.add_node(name, op, inputs.to_vec(), &[name.to_string()]).unwrap()
    }

    pub fn unary(&mut self, name: &str, kind: UnaryKind, x: ValueId) -> ValueId {
        self.node(name, Op::Elementwise(ElementwiseOp::Unary(Unary { kind })), &[Some(x)])[0]
    }

    pub fn binary(&mut self, name: &str, kind: BinaryKind, a: ValueId, b: ValueId) -> ValueId {
        self.node(name, Op::Elementwise(ElementwiseOp::Binary(Binary { kind })), &[Some(a), Some(b)])[0]
    }

    /// A 3x3 (pads 1) or 1x1 convolution with random weights `[m, c, k, k]`.
    pub fn conv(&mut self, name: &str, x: ValueId, c: usize, m: usize, k: usize, bias: bool) -> ValueId {
        let w = self.random(&format!("{name}.w"), &[m, c, k, k]);
        let b = bias.then(|| self.random(&format!("{name}.b"), &[m]));
        let mut window = Window::new(AutoPad::NotSet);
        window.pads = vec![k / 2; 4];
        let op = Op::Nn(NnOp::Conv(Conv { attrs: ConvAttrs { window, group: 1 } }));
        self.node(name, op, &[Some(x), Some(w), b])[0]
    }

    /// BatchNormalization with random parameters (variance positive).
    pub fn batch_norm(&mut self, name: &str, x: ValueId, c: usize) -> ValueId {
        let scale = self.random(&format!("{name}.scale"), &[c]);
        let bias = self.random(&format!("{name}.bias"), &[c]);
        let mean = self.random(&format!("{name}.mean"), &[c]);
        self.n += 1;
        let var = self.constant(&format!("{name}.var"), &[c], random(c, self.n as u64).iter().map(|v| v.abs() + 0.5).collect());
        self.node(name, Op::Nn(NnOp::BatchNorm(BatchNorm { epsilon: 1e-5 })), &[Some(x), Some(scale), Some(bias), Some(mean), Some(var)])[0]
    }

    pub fn output(&mut self, v: ValueId) {
        self.b.add_output(v);
    }

    pub fn finish(self) -> Graph {
        self.b.finish().unwrap()
    }
}

/// Deterministic values in [-1, 1).
pub fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub fn op_names(g: &Graph) -> Vec<&'static str> {
    g.nodes.iter().map(|n| n.op.name()).collect()
}

/// Runs one pass with the reference as constant evaluator, verifying after.
pub fn run_pass(p: &dyn Pass, g: &mut Graph) -> PassReport {
    let mut cx = PassCx::new(Some(&kann_reference::Reference));
    let r = p.run(g, &mut cx).unwrap();
    kann_ir::verify(g).unwrap();
    r
}

/// Runs both graphs on the same random inputs and checks the outputs agree.
pub fn assert_same_outputs(before: &Graph, after: &Graph) {
    let inputs: Vec<Tensor> = before
        .inputs
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let info = &before.value(v).info;
            Tensor::from_f32(info.shape.clone(), random(info.numel(), 1000 + i as u64)).unwrap()
        })
        .collect();
    let a = kann_reference::run(before, &inputs).unwrap();
    let b = kann_reference::run(after, &inputs).unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.shape(), y.shape());
        let (x, y) = (x.to_f64_vec(), y.to_f64_vec());
        let scale = x.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
        let err = x.iter().zip(&y).fold(0f64, |m, (p, q)| m.max(if p.is_nan() || q.is_nan() { f64::INFINITY } else { (p - q).abs() }));
        assert!(err <= 1e-5 * scale, "outputs differ: max abs error {err} for max magnitude {scale}");
    }
    let names = |g: &Graph| g.outputs.iter().map(|&o| g.value(o).name.clone()).collect::<Vec<_>>();
    assert_eq!(names(before), names(after), "graph output names must survive");
}
