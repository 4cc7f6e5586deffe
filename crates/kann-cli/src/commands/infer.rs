//! `kann infer GEN_DIR [-n N]`: `kann run` on N frames of random inputs
//! (deterministic), in a fresh IO folder under the system's temp dir that
//! is kept (outputs and log) and named at the end.

use super::run::{find_artifact, specs};
use kann_io::stream::{write_input_stream, IoSpec};
use kann_runtime::Service;
use kann_tensor::{npy, DType, Shape, Tensor};
use std::path::{Path, PathBuf};

/// Frames `kann infer` runs without `-n`.
pub const DEFAULT_FRAMES: usize = 10;

/// `kann infer`. Returns the exit code.
pub fn run(gen: &Path, n: Option<usize>, step_median: bool) -> anyhow::Result<i32> {
    let artifact = find_artifact(gen)?;
    let frames = n.unwrap_or(DEFAULT_FRAMES);
    if frames == 0 {
        anyhow::bail!("nothing to run: -n 0");
    }
    let inputs = specs(Service::load(&artifact)?.inputs())?;
    let io = fresh_dir()?;
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for spec in &inputs {
        let data: Vec<Vec<u8>> = (0..frames).map(|_| random_frame(spec, &mut rng)).collect::<anyhow::Result<_>>()?;
        let refs: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
        write_input_stream(&io, spec, &refs)?;
    }
    println!("random inputs ({frames} frame(s)) in {}", io.display());
    super::run::run(&artifact, &io, Some(frames), None, false, step_median)
}

/// A new folder `kann-infer-<pid>-<k>` under the temp dir.
fn fresh_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir();
    for k in 0..1000 {
        let d = base.join(format!("kann-infer-{}-{k}", std::process::id()));
        if std::fs::create_dir(&d).is_ok() {
            return Ok(d);
        }
    }
    anyhow::bail!("cannot create a folder for the inputs under {}", base.display())
}

/// One frame of `spec`: floats uniform in [0, 1), integers in 0..10, bools
/// half true; raw little-endian bytes.
pub fn random_frame(spec: &IoSpec, rng: &mut XorShift) -> anyhow::Result<Vec<u8>> {
    let n: usize = spec.shape.iter().product();
    let values: Vec<f64> = (0..n)
        .map(|_| {
            let u = rng.unit();
            match spec.dtype {
                d if d.is_float() => u,
                DType::Bool => (u < 0.5) as u8 as f64,
                _ => (u * 10.0).floor(),
            }
        })
        .collect();
    if spec.dtype == DType::BF16 {
        // .npy has no bf16: its bits are the top half of the f32's.
        return Ok(values.iter().flat_map(|&v| (((v as f32).to_bits() >> 16) as u16).to_le_bytes()).collect());
    }
    let t = Tensor::from_f64(spec.dtype, Shape::new(spec.shape.clone()), &values)?;
    let bytes = npy::to_bytes(&t)?;
    Ok(bytes[bytes.len() - spec.frame_bytes()..].to_vec())
}

/// A small deterministic generator (xorshift64*).
pub struct XorShift(pub u64);

impl XorShift {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_runtime::testing::{artifact_bytes, relu_chain};

    #[test]
    fn infers_on_random_inputs() {
        let gen = kann_testkit::ScratchDir::new(&format!("kann-cli-infer-{}", std::process::id()));
        std::fs::write(gen.join("n.kann"), artifact_bytes(&relu_chain(2, 5, 1), &[0; 4], "{}").unwrap()).unwrap();
        assert_eq!(run(&gen, Some(3), true).unwrap(), 0);
        // The inputs' folder run() made (the only one of this process).
        let base = std::env::temp_dir();
        for k in 0..1000 {
            let _ = std::fs::remove_dir_all(base.join(format!("kann-infer-{}-{k}", std::process::id())));
        }
    }

    #[test]
    fn random_frames_have_the_frame_size() {
        let mut rng = XorShift(1);
        for dtype in DType::ALL {
            let spec = IoSpec { name: "x".into(), dtype, shape: vec![2, 3] };
            let f = random_frame(&spec, &mut rng).unwrap();
            assert_eq!(f.len(), 6 * dtype.size());
        }
    }
}
