//! `kann random-images OUT CONFIG --format png|npy [--shape H W C]
//! [--dtype D] [--range LO HI] [--nb-images N]`: random inputs for a
//! network, one subfolder per input node (`OUT/<input>/image_<i>.png|npy`),
//! as KaNN's random image generator writes them. CONFIG is a generated
//! folder or a network YAML. Defaults follow KaNN's: 1 image; PNG uint8 in
//! 0–255; `.npy` float32 in 0–1 (integer dtypes 0–255, clamped to the
//! dtype); the shape is the input's (HxWxC for an image input, the shape
//! without the batch otherwise, `.npy` only). Values are deterministic:
//! a xorshift64* generator seeded per input.

use super::prepare::load_network;
use anyhow::{bail, Context};
use kann_image::prepare::ImageInput;
use kann_io::tensor_set::file_stem;
use kann_tensor::{npy, DType, Shape, Tensor};
use std::path::Path;

/// The file format written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Npy,
}

impl Format {
    /// `png`, `npy`, also with KaNN's leading dot (`.png`).
    pub fn parse(s: &str) -> Result<Format, String> {
        match s.trim_start_matches('.').to_ascii_lowercase().as_str() {
            "png" => Ok(Format::Png),
            "npy" => Ok(Format::Npy),
            _ => Err(format!("unknown format '{s}' (expected png or npy)")),
        }
    }

    fn ext(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Npy => "npy",
        }
    }
}

/// What to write.
pub struct Options {
    pub format: Format,
    /// `[H, W, C]` for every input; `None`: each input's own.
    pub shape: Option<Vec<usize>>,
    pub dtype: Option<String>,
    pub range: Option<(f64, f64)>,
    pub count: usize,
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `kann random-images`. Returns the exit code.
pub fn run(out: &Path, config: &Path, opts: &Options) -> anyhow::Result<i32> {
    let net = load_network(config)?;
    let dtype = match (&opts.dtype, opts.format) {
        (Some(d), _) => DType::parse(&d.to_ascii_lowercase())
            .with_context(|| format!("--dtype: unknown dtype '{d}' (e.g. float32, uint8)"))?,
        (None, Format::Png) => DType::U8,
        (None, Format::Npy) => DType::F32,
    };
    if opts.format == Format::Png && dtype != DType::U8 {
        bail!("--dtype {dtype}: PNG images are uint8; use --format npy for {dtype}");
    }
    let (lo, hi) = opts.range.unwrap_or(if dtype.is_float() {
        (0.0, 1.0)
    } else {
        (0.0, 255.0)
    });
    if !lo.is_finite() || !hi.is_finite() || lo > hi {
        bail!("--range {lo} {hi}: two finite numbers, LO not above HI");
    }
    if opts.count == 0 {
        bail!("--nb-images 0: nothing to write");
    }
    let pre = net.config.preprocessing.as_ref();
    for (k, spec) in net.inputs.iter().enumerate() {
        let shape = match &opts.shape {
            Some(s) => s.clone(),
            None => match ImageInput::new(spec, pre.and_then(|p| p.layout)) {
                Ok(img) => vec![img.height, img.width, img.channels],
                Err(_) if opts.format == Format::Npy => {
                    spec.shape.get(1..).unwrap_or_default().to_vec()
                }
                Err(e) => bail!("{e}; give --shape H W C or use --format npy"),
            },
        };
        let dir = out.join(file_stem(&spec.name));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut rng = Rng::new(k as u64 + 1);
        for i in 0..opts.count {
            let values = random_values(&shape, dtype, lo, hi, &mut rng);
            let path = dir.join(format!("image_{i}.{}", opts.format.ext()));
            match opts.format {
                Format::Png => write_png(&path, &shape, &values)?,
                Format::Npy => {
                    let t = Tensor::from_f64(dtype, Shape::from(shape.clone()), &values)?;
                    npy::write(&path, &t)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
            }
        }
        println!(
            "{}: {} {} image(s) of shape {shape:?} ({dtype}, {lo}..{hi}) in {}",
            spec.name,
            opts.count,
            opts.format.ext(),
            dir.display()
        );
    }
    Ok(0)
}

/// Values uniform in [lo, hi) for floats, integers in [lo, hi] clamped to
/// the dtype's range.
fn random_values(shape: &[usize], dtype: DType, lo: f64, hi: f64, rng: &mut Rng) -> Vec<f64> {
    let n: usize = shape.iter().product();
    let (lo, hi) = if dtype.is_int() {
        (
            lo.ceil().max(int_min(dtype)),
            hi.floor().min(int_max(dtype)),
        )
    } else {
        (lo, hi)
    };
    (0..n)
        .map(|_| {
            let u = rng.unit();
            if dtype.is_int() {
                (lo + (u * (hi - lo + 1.0)).floor()).min(hi)
            } else {
                lo + u * (hi - lo)
            }
        })
        .collect()
}

fn int_min(dtype: DType) -> f64 {
    match dtype {
        DType::U8 => 0.0,
        DType::I8 => -128.0,
        DType::I32 => i32::MIN as f64,
        _ => i64::MIN as f64,
    }
}

fn int_max(dtype: DType) -> f64 {
    match dtype {
        DType::U8 => 255.0,
        DType::I8 => 127.0,
        DType::I32 => i32::MAX as f64,
        _ => i64::MAX as f64,
    }
}

/// An `HxWxC` (C = 1, 3 or 4) uint8 PNG.
fn write_png(path: &Path, shape: &[usize], values: &[f64]) -> anyhow::Result<()> {
    let &[h, w, c] = shape else {
        bail!("--shape {shape:?}: a PNG is H W C")
    };
    let color = match c {
        1 => image::ExtendedColorType::L8,
        3 => image::ExtendedColorType::Rgb8,
        4 => image::ExtendedColorType::Rgba8,
        _ => bail!("--shape {shape:?}: a PNG has 1, 3 or 4 channels, not {c}"),
    };
    let (w32, h32) = (u32::try_from(w)?, u32::try_from(h)?);
    if w32 == 0 || h32 == 0 {
        bail!("--shape {shape:?}: an image needs a height and a width of at least 1");
    }
    let bytes: Vec<u8> = values.iter().map(|&v| v as u8).collect();
    image::save_buffer(path, &bytes, w32, h32, color)
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_with_or_without_a_dot() {
        assert_eq!(Format::parse(".png"), Ok(Format::Png));
        assert_eq!(Format::parse("NPY"), Ok(Format::Npy));
        assert!(Format::parse("gif").is_err());
    }

    #[test]
    fn values_stay_in_range_and_repeat_with_the_seed() {
        let a = random_values(&[4, 4, 3], DType::U8, 0.0, 255.0, &mut Rng::new(1));
        assert!(a
            .iter()
            .all(|&v| (0.0..=255.0).contains(&v) && v.fract() == 0.0));
        assert!(a.iter().any(|&v| v != a[0]), "not constant");
        assert_eq!(
            a,
            random_values(&[4, 4, 3], DType::U8, 0.0, 255.0, &mut Rng::new(1))
        );
        let f = random_values(&[100], DType::F32, -1.0, 1.0, &mut Rng::new(2));
        assert!(f.iter().all(|&v| (-1.0..1.0).contains(&v)));
        let i = random_values(&[100], DType::I8, -1000.0, 1000.0, &mut Rng::new(3));
        assert!(i.iter().all(|&v| (-128.0..=127.0).contains(&v)));
    }
}
