//! Calibrating the cost model on this machine. The probes are a few
//! networks' typical blocks ([`probes`]); the caller compiles each for one
//! cluster, times its steps on one core (the runtime is not the compiler's
//! dependency: `kann devices` does it), and [`fit`] turns the steps'
//! measured and modelled times into a [`Calibration`]: per kernel
//! [`Family`], measured over modelled compute time, and the same for the
//! weights' stream.

use crate::cost::{Calibration, Family, StepCost};
use crate::layers::{Act, Chain};
use kann_ir::Graph;

/// Bumped when the probes or the fit change: a calibration of another
/// version is measured again.
pub const CALIBRATION_VERSION: u32 = 1;

/// A probe network.
pub struct Probe {
    pub name: &'static str,
    pub graph: Graph,
}

/// The probes: together their steps cover every [`Family`] on the shapes
/// of ResNet-50, MobileNetV2 and VGG's classifier (1-4 ms each on one core).
pub fn probes() -> Vec<Probe> {
    let probe = |name, chain: Chain| Probe { name, graph: chain.finish() };
    vec![
        // 1×1 convolutions around a 3×3 one by Winograd F(4×4), on the
        // middle of the shapes F(4×4) takes (its rate against the model's
        // varies with them: ResNet-50's 64-channel 56×56 layers ran at 0.59
        // of it, its 128- and 256-channel ones at 0.72, VGG-19's at 0.70;
        // Zen 4).
        probe("bottleneck 28x28", Chain::image(512, 28).conv(128, 1, 1, 1, Act::Relu).conv(128, 3, 1, 1, Act::Relu).conv(512, 1, 1, 1, Act::None)),
        // On 7×7 maps the 3×3 runs by F(2×2).
        probe("bottleneck 7x7", Chain::image(2048, 7).conv(512, 1, 1, 1, Act::Relu).conv(512, 3, 1, 1, Act::Relu).conv(2048, 1, 1, 1, Act::None)),
        // A strided 3×3 (the GEMM's tile) between 1×1 convolutions.
        probe("strided 3x3", Chain::image(256, 56).conv(128, 1, 1, 1, Act::Relu).conv(128, 3, 2, 1, Act::Relu).conv(512, 1, 1, 1, Act::None)),
        probe("stem 7x7/2", Chain::image(3, 224).conv(64, 7, 2, 1, Act::Relu).max_pool(3, 2, 1)),
        probe("inverted residual", Chain::image(24, 56).conv(144, 1, 1, 1, Act::Relu6).depthwise(3, 1, Act::Relu6).conv(24, 1, 1, 1, Act::None)),
        // 64 MB of weights streamed once a frame.
        probe("fully connected", Chain::vector(4096).fc(4096, Act::Relu)),
    ]
}

/// One timed step of a probe.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub family: Option<Family>,
    /// The uncalibrated model's parts ([`crate::cost::CostModel::step_cost`], the whole step).
    pub cost: StepCost,
    /// Seconds (median of the frames) on one core.
    pub measured: f64,
}

/// The furthest a factor may move from 1: a probe disturbed by another
/// process must not make the model absurd.
const FACTOR_RANGE: (f64, f64) = (0.25, 4.0);

/// The calibration the samples call for. The weights' factor comes from
/// the steps whose modelled time is mostly their weights' stream (their
/// compute taken as modelled); each family's from the others (their
/// weights taken at that factor). A family without samples keeps 1.
pub fn fit(samples: &[Sample]) -> Calibration {
    let streaming = |s: &Sample| s.cost.weights > s.cost.compute;
    let ratio = |num: f64, den: f64| if den > 0.0 { (num / den).clamp(FACTOR_RANGE.0, FACTOR_RANGE.1) } else { 1.0 };
    let (mut num, mut den) = (0.0, 0.0);
    for s in samples.iter().filter(|s| streaming(s)) {
        num += s.measured - s.cost.launch - s.cost.compute;
        den += s.cost.weights;
    }
    let weights = ratio(num, den);
    let mut compute = [1.0; 5];
    for (i, family) in Family::ALL.into_iter().enumerate() {
        let (mut num, mut den) = (0.0, 0.0);
        for s in samples.iter().filter(|s| s.family == Some(family) && !streaming(s)) {
            num += s.measured - s.cost.launch - s.cost.weights * weights;
            den += s.cost.compute;
        }
        compute[i] = ratio(num, den);
    }
    Calibration { compute, weights, bandwidth_cores: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(family: Option<Family>, compute: f64, weights: f64, measured: f64) -> Sample {
        Sample { family, cost: StepCost { launch: 1e-6, compute, weights, all_weights: weights }, measured: measured + 1e-6 }
    }

    #[test]
    fn fits_each_family_and_the_weights_stream() {
        let s = [
            // A weight-bound step at 0.6 of its stream's estimate.
            sample(Some(Family::Gemm), 0.1e-3, 3e-3, 0.1e-3 + 0.6 * 3e-3),
            // Winograd at 0.7 with weights at the fitted 0.6.
            sample(Some(Family::Winograd4), 2e-3, 0.2e-3, 0.7 * 2e-3 + 0.6 * 0.2e-3),
            sample(Some(Family::Winograd4), 1e-3, 0.0, 0.7 * 1e-3),
            sample(Some(Family::Pointwise), 1e-3, 0.1e-3, 1.1e-3 + 0.06e-3),
            // Steps outside the families count for nothing.
            sample(None, 1e-3, 0.0, 9e-3),
        ];
        let c = fit(&s);
        assert!((c.weights - 0.6).abs() < 1e-9, "{c:?}");
        assert!((c.compute_factor(Family::Winograd4) - 0.7).abs() < 1e-9, "{c:?}");
        assert!((c.compute_factor(Family::Pointwise) - 1.1).abs() < 1e-9, "{c:?}");
        assert_eq!(c.compute_factor(Family::Depthwise), 1.0);
        assert_eq!(c.compute_factor(Family::Winograd2), 1.0);
        assert_eq!(c.compute_factor(Family::Gemm), 1.0, "the streaming step does not fit its family");
    }

    #[test]
    fn factors_stay_in_range_and_no_samples_is_identity() {
        assert!(fit(&[]).is_identity());
        let c = fit(&[sample(Some(Family::Depthwise), 1e-3, 0.0, 50e-3), sample(Some(Family::Gemm), 1e-3, 0.0, 0.0)]);
        assert_eq!(c.compute_factor(Family::Depthwise), FACTOR_RANGE.1);
        assert_eq!(c.compute_factor(Family::Gemm), FACTOR_RANGE.0);
    }

    #[test]
    fn every_probe_builds() {
        let probes = probes();
        assert_eq!(probes.len(), 6);
        for p in probes {
            assert_eq!(p.graph.outputs.len(), 1, "{}", p.name);
        }
    }
}
