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
use kann_compiler::layers::{random, Act, Chain};
use kann_ir::Graph;
use kann_runtime::{Device, Service};

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

/// The one-layer graph.
fn graph(layer: &Layer) -> Graph {
    match *layer {
        Layer::Conv { c_in, c_out, hw, k, stride, group, act } => Chain::image(c_in, hw).conv(c_out, k, stride, group, act),
        Layer::MaxPool { c, hw, k, stride, pad } => Chain::image(c, hw).max_pool(k, stride, pad),
    }
    .finish()
}

/// The layer compiled for this CPU and loaded on one cluster (the first
/// core this process may use); returns the service and the layer's FLOPs.
fn service(layer: &Layer, dir: &std::path::Path, name: &str) -> (Service, u64) {
    let opts = kann_compiler::CompileOptions { n_clusters: 1, arch: Arch::best_for(&CpuFeatures::detect()), winograd: true, blocked: true, calibration: Default::default() };
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
