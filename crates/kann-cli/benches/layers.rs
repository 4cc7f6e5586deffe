//! Criterion benches of kann's kernels on the layer shapes of ResNet-50,
//! MobileNetV2 and YOLOv8n (640×640), one layer per bench, through the real
//! path: a one-layer graph is compiled for this CPU (`native` arch, the
//! compiler's own choice of kernel), written as an artifact, loaded by the
//! runtime service on one cluster, and timed frame by frame. Throughput is
//! reported in FLOP (criterion prints it as `elem/s`: read Gelem/s as
//! GFLOP/s); weights and inputs are random.
//!
//!     cargo bench -p kann-cli --bench layers            # every layer
//!     cargo bench -p kann-cli --bench layers -- resnet50 # one network's

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kann_artifact::{Arch, CpuFeatures};
use kann_ir::ops::elementwise::{BinaryKind, ElementwiseOp, UnaryKind};
use kann_ir::ops::nn::{AutoPad, Conv, ConvAttrs, NnOp, Pool, PoolKind, Window};
use kann_ir::{Graph, GraphBuilder, Op, TensorInfo, ValueId};
use kann_runtime::{Device, Service};
use kann_tensor::{DType, Shape, Tensor};

/// What follows the layer's main op (fused by the compiler).
#[derive(Clone, Copy)]
enum Act {
    None,
    Relu,
    Relu6,
    Silu,
}

/// One benchmarked layer.
enum Layer {
    /// `Conv` of `c_in → c_out` channels on an `hw × hw` input.
    Conv { c_in: usize, c_out: usize, hw: usize, k: usize, stride: usize, group: usize, act: Act },
    /// `MaxPool` `k × k` with `pad`, on `c` channels of `hw × hw`.
    MaxPool { c: usize, hw: usize, k: usize, stride: usize, pad: usize },
}

fn conv(c_in: usize, c_out: usize, hw: usize, k: usize, stride: usize, act: Act) -> Layer {
    Layer::Conv { c_in, c_out, hw, k, stride, group: 1, act }
}

fn depthwise(c: usize, hw: usize, stride: usize, act: Act) -> Layer {
    Layer::Conv { c_in: c, c_out: c, hw, k: 3, stride, group: c, act }
}

/// Layers of each network: (bench name, layer).
fn layers() -> Vec<(&'static str, Layer)> {
    use Act::*;
    vec![
        ("resnet50/conv1_7x7s2_3-64_224", conv(3, 64, 224, 7, 2, Relu)),
        ("resnet50/1x1_64-256_56", conv(64, 256, 56, 1, 1, None)),
        ("resnet50/3x3_64-64_56", conv(64, 64, 56, 3, 1, Relu)),
        ("resnet50/1x1_256-64_56", conv(256, 64, 56, 1, 1, Relu)),
        ("resnet50/3x3s2_128-128_56", conv(128, 128, 56, 3, 2, Relu)),
        ("resnet50/3x3_256-256_14", conv(256, 256, 14, 3, 1, Relu)),
        ("resnet50/1x1_1024-256_14", conv(1024, 256, 14, 1, 1, Relu)),
        ("resnet50/3x3_512-512_7", conv(512, 512, 7, 3, 1, Relu)),
        ("resnet50/1x1_512-2048_7", conv(512, 2048, 7, 1, 1, None)),
        ("resnet50/maxpool_3x3s2_64_112", Layer::MaxPool { c: 64, hw: 112, k: 3, stride: 2, pad: 1 }),
        ("mobilenetv2/dw3x3_32_112", depthwise(32, 112, 1, Relu6)),
        ("mobilenetv2/dw3x3s2_96_112", depthwise(96, 112, 2, Relu6)),
        ("mobilenetv2/dw3x3_144_56", depthwise(144, 56, 1, Relu6)),
        ("mobilenetv2/dw3x3_384_14", depthwise(384, 14, 1, Relu6)),
        ("mobilenetv2/dw3x3_960_7", depthwise(960, 7, 1, Relu6)),
        ("mobilenetv2/1x1_24-144_56", conv(24, 144, 56, 1, 1, Relu6)),
        ("mobilenetv2/1x1_144-24_56", conv(144, 24, 56, 1, 1, None)),
        ("mobilenetv2/1x1_320-1280_7", conv(320, 1280, 7, 1, 1, Relu6)),
        ("yolov8n/3x3s2_3-16_640", conv(3, 16, 640, 3, 2, Silu)),
        ("yolov8n/3x3s2_16-32_320", conv(16, 32, 320, 3, 2, Silu)),
        ("yolov8n/1x1_32-32_160", conv(32, 32, 160, 1, 1, Silu)),
        ("yolov8n/3x3_16-16_160", conv(16, 16, 160, 3, 1, Silu)),
        ("yolov8n/3x3s2_64-128_80", conv(64, 128, 80, 3, 2, Silu)),
        ("yolov8n/3x3_128-128_20", conv(128, 128, 20, 3, 1, Silu)),
        ("yolov8n/sppf_maxpool_5x5_128_20", Layer::MaxPool { c: 128, hw: 20, k: 5, stride: 1, pad: 2 }),
    ]
}

/// Deterministic values in [-1, 1).
fn random(n: usize, seed: u64) -> Vec<f32> {
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

fn window(k: usize, stride: usize, pad: usize) -> Window {
    let mut w = Window::new(AutoPad::NotSet);
    w.kernel_shape = vec![k, k];
    w.strides = vec![stride, stride];
    w.pads = vec![pad; 4];
    w
}

/// Appends the activation after `y`.
fn activate(b: &mut GraphBuilder, y: ValueId, act: Act) -> ValueId {
    let unary = |kind| Op::Elementwise(ElementwiseOp::Unary(kann_ir::ops::elementwise::Unary { kind }));
    let node = |b: &mut GraphBuilder, name: &str, op: Op, ins: Vec<Option<ValueId>>| b.add_node(name, op, ins, &[format!("{name}_y")]).expect("valid node")[0];
    match act {
        Act::None => y,
        Act::Relu => node(b, "relu", unary(UnaryKind::Relu), vec![Some(y)]),
        Act::Relu6 => {
            let lo = b.add_constant("lo", Tensor::from_f32(Shape::from([]), vec![0.0]).expect("scalar"));
            let hi = b.add_constant("hi", Tensor::from_f32(Shape::from([]), vec![6.0]).expect("scalar"));
            node(b, "clip", Op::Elementwise(ElementwiseOp::Clip), vec![Some(y), Some(lo), Some(hi)])
        }
        Act::Silu => {
            let s = node(b, "sigmoid", unary(UnaryKind::Sigmoid), vec![Some(y)]);
            let mul = Op::Elementwise(ElementwiseOp::Binary(kann_ir::ops::elementwise::Binary { kind: BinaryKind::Mul }));
            node(b, "mul", mul, vec![Some(y), Some(s)])
        }
    }
}

/// The one-layer graph.
fn graph(layer: &Layer) -> Graph {
    let mut b = GraphBuilder::new("layer", None);
    let (c_in, hw) = match *layer {
        Layer::Conv { c_in, hw, .. } => (c_in, hw),
        Layer::MaxPool { c, hw, .. } => (c, hw),
    };
    let x = b.add_input("x", TensorInfo::new(DType::F32, Shape::new(vec![1, c_in, hw, hw]))).expect("input");
    let y = match *layer {
        Layer::Conv { c_in, c_out, k, stride, group, act, .. } => {
            let w = Tensor::from_f32(Shape::new(vec![c_out, c_in / group, k, k]), random(c_out * c_in / group * k * k, 1)).expect("weights");
            let bias = Tensor::from_f32(Shape::from([c_out]), random(c_out, 2)).expect("bias");
            let (w, bias) = (b.add_constant("w", w), b.add_constant("b", bias));
            let op = Op::Nn(NnOp::Conv(Conv { attrs: ConvAttrs { window: window(k, stride, k / 2), group } }));
            let y = b.add_node("conv", op, vec![Some(x), Some(w), Some(bias)], &["conv_y".into()]).expect("conv")[0];
            activate(&mut b, y, act)
        }
        Layer::MaxPool { k, stride, pad, .. } => {
            let op = Op::Nn(NnOp::Pool(Pool { kind: PoolKind::Max, window: window(k, stride, pad), column_major_indices: false, with_indices: false }));
            b.add_node("pool", op, vec![Some(x)], &["pool_y".into()]).expect("pool")[0]
        }
    };
    b.add_output(y);
    b.finish().expect("a valid graph")
}

/// The layer compiled for this CPU and loaded on one cluster (the first
/// core this process may use); returns the service and the layer's FLOPs.
fn service(layer: &Layer, dir: &std::path::Path, name: &str) -> (Service, u64) {
    let opts = kann_compiler::CompileOptions { n_clusters: 1, arch: Arch::best_for(&CpuFeatures::detect()), winograd: true, blocked: true };
    let compiled = kann_compiler::compile(graph(layer), &opts, Some(&kann_reference::Reference)).expect("the layer compiles");
    let flops = compiled.program.steps.iter().map(|s| s.flops).sum();
    let path = dir.join(format!("{}.kann", name.replace('/', "_")));
    compiled.artifact(opts.arch, "{}").expect("artifact").write_to(&path).expect("artifact written");
    let mut service = Service::load(&path).expect("artifact loads");
    let core = Device::all().core_ids().first().copied().unwrap_or(0);
    service.init_device(&Device::cores(vec![core])).expect("device starts");
    (service, flops)
}

fn bench_layers(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("kann-bench-layers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut group = c.benchmark_group("layers");
    group.sample_size(20);
    for (name, layer) in layers() {
        let (mut service, flops) = service(&layer, &dir, name);
        let input: Vec<u8> = random(service.inputs()[0].bytes() / 4, 3).iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut output = vec![0u8; service.outputs()[0].bytes()];
        group.throughput(Throughput::Elements(flops));
        group.bench_function(name, |bench| {
            bench.iter(|| service.process_frame(&[&input], &mut [&mut output]).expect("frame runs"));
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench_layers);
criterion_main!(benches);
