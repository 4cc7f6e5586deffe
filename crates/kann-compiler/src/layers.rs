//! Small networks built in code, with random weights: a chain of
//! convolutions, pools and fully connected layers on one input. The layer
//! benches (`cargo bench -p kann-cli --bench layers`) time one layer each;
//! the cost model's calibration probes ([`crate::calibrate`]) time a few
//! networks' typical blocks.

use kann_ir::ops::elementwise::{Binary, BinaryKind, ElementwiseOp, Unary, UnaryKind};
use kann_ir::ops::nn::{AutoPad, Conv, ConvAttrs, Gemm, NnOp, Pool, PoolKind, Window};
use kann_ir::{Graph, GraphBuilder, Op, TensorInfo, ValueId};
use kann_tensor::{DType, Shape, Tensor};

/// The activation after a layer (fused by the compiler).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    None,
    Relu,
    Relu6,
    Silu,
}

/// Deterministic values in [-1, 1).
pub fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            ((s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A square window of side `k`, `pad` on every side.
fn window(k: usize, stride: usize, pad: usize) -> Window {
    let mut w = Window::new(AutoPad::NotSet);
    w.kernel_shape = vec![k, k];
    w.strides = vec![stride, stride];
    w.pads = vec![pad; 4];
    w
}

/// A network under construction: its builder and its last value, with
/// that value's channels and side (NCHW, batch 1; a vector has side 0).
pub struct Chain {
    b: GraphBuilder<'static>,
    y: ValueId,
    channels: usize,
    side: usize,
    layers: usize,
}

impl Chain {
    /// An input image `[1, channels, side, side]`.
    pub fn image(channels: usize, side: usize) -> Chain {
        Chain::input(channels, side, vec![1, channels, side, side])
    }

    /// An input vector `[1, features]`.
    pub fn vector(features: usize) -> Chain {
        Chain::input(features, 0, vec![1, features])
    }

    fn input(channels: usize, side: usize, dims: Vec<usize>) -> Chain {
        let mut b = GraphBuilder::new("layers", None);
        let y = b.add_input("x", TensorInfo::new(DType::F32, Shape::new(dims))).expect("a fresh input");
        Chain { b, y, channels, side, layers: 0 }
    }

    /// A node named after its position in the chain.
    fn node(&mut self, kind: &str, op: Op, inputs: Vec<Option<ValueId>>) -> ValueId {
        self.layers += 1;
        let name = format!("{kind}{}", self.layers);
        self.b.add_node(&name, op, inputs, &[format!("{name}_y")]).expect("a valid node")[0]
    }

    fn constant(&mut self, dims: Vec<usize>, seed: u64) -> ValueId {
        let n = dims.iter().product();
        let name = format!("c{}_{seed}", self.layers);
        self.b.add_constant(&name, Tensor::from_f32(Shape::new(dims), random(n, seed)).expect("sized values"))
    }

    /// A `k × k` convolution to `out` channels in `group` groups, padded to
    /// keep the side at stride 1, with a bias and `act`.
    pub fn conv(mut self, out: usize, k: usize, stride: usize, group: usize, act: Act) -> Chain {
        let seed = 2 * self.layers as u64 + 1;
        let w = self.constant(vec![out, self.channels / group, k, k], seed);
        let bias = self.constant(vec![out], seed + 1);
        let op = Op::Nn(NnOp::Conv(Conv { attrs: ConvAttrs { window: window(k, stride, k / 2), group } }));
        self.y = self.node("conv", op, vec![Some(self.y), Some(w), Some(bias)]);
        self.side = (self.side + 2 * (k / 2) - k) / stride + 1;
        self.channels = out;
        self.activate(act)
    }

    /// A depthwise `k × k` convolution.
    pub fn depthwise(self, k: usize, stride: usize, act: Act) -> Chain {
        let c = self.channels;
        self.conv(c, k, stride, c, act)
    }

    /// A `k × k` max pool.
    pub fn max_pool(mut self, k: usize, stride: usize, pad: usize) -> Chain {
        let op = Op::Nn(NnOp::Pool(Pool { kind: PoolKind::Max, window: window(k, stride, pad), column_major_indices: false, with_indices: false }));
        self.y = self.node("pool", op, vec![Some(self.y)]);
        self.side = (self.side + 2 * pad - k) / stride + 1;
        self
    }

    /// A fully connected layer (`Gemm`, weights `[out, in]`) on a vector.
    pub fn fc(mut self, out: usize, act: Act) -> Chain {
        assert_eq!(self.side, 0, "a fully connected layer takes a vector");
        let seed = 2 * self.layers as u64 + 1;
        let w = self.constant(vec![out, self.channels], seed);
        let bias = self.constant(vec![out], seed + 1);
        let op = Op::Nn(NnOp::Gemm(Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: true }));
        self.y = self.node("fc", op, vec![Some(self.y), Some(w), Some(bias)]);
        self.channels = out;
        self.activate(act)
    }

    fn activate(mut self, act: Act) -> Chain {
        let unary = |kind| Op::Elementwise(ElementwiseOp::Unary(Unary { kind }));
        self.y = match act {
            Act::None => self.y,
            Act::Relu => self.node("relu", unary(UnaryKind::Relu), vec![Some(self.y)]),
            Act::Relu6 => {
                let lo = self.b.add_constant(&format!("lo{}", self.layers), Tensor::from_f32(Shape::from([]), vec![0.0]).expect("scalar"));
                let hi = self.b.add_constant(&format!("hi{}", self.layers), Tensor::from_f32(Shape::from([]), vec![6.0]).expect("scalar"));
                self.node("clip", Op::Elementwise(ElementwiseOp::Clip), vec![Some(self.y), Some(lo), Some(hi)])
            }
            Act::Silu => {
                let s = self.node("sigmoid", unary(UnaryKind::Sigmoid), vec![Some(self.y)]);
                let mul = Op::Elementwise(ElementwiseOp::Binary(Binary { kind: BinaryKind::Mul }));
                self.node("mul", mul, vec![Some(self.y), Some(s)])
            }
        };
        self
    }

    /// The graph, its last value the output.
    pub fn finish(mut self) -> Graph {
        self.b.add_output(self.y);
        self.b.finish().expect("a valid graph")
    }
}
