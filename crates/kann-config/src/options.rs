//! `framework`, `generate_options` and the [`Arch`] vocabulary.

use std::fmt;
use std::str::FromStr;

use crate::read::{Cx, Fields, Result};

/// The instruction set an artifact is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// Whatever this CPU has (resolved at generate).
    Native,
    /// AVX-512 (x86-64-v4).
    X86_64V4,
    /// AVX2 + FMA (x86-64-v3).
    X86_64V3,
    /// Portable Rust, no ISA requirement.
    Generic,
    /// NEON.
    Aarch64,
}

impl Arch {
    pub const ALL: [Arch; 5] = [
        Arch::Native,
        Arch::X86_64V4,
        Arch::X86_64V3,
        Arch::Generic,
        Arch::Aarch64,
    ];

    /// The spelling of `--arch` and of the YAML.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Native => "native",
            Arch::X86_64V4 => "x86-64-v4",
            Arch::X86_64V3 => "x86-64-v3",
            Arch::Generic => "generic",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// Parses [`Arch::name`]; also `x86_64_v4`/`x86-64v4` spellings and `arm64`.
    pub fn parse(s: &str) -> Option<Arch> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        Some(match norm.as_str() {
            "native" => Arch::Native,
            "x86-64-v4" | "x86-64v4" => Arch::X86_64V4,
            "x86-64-v3" | "x86-64v3" => Arch::X86_64V3,
            "generic" => Arch::Generic,
            "aarch64" | "arm64" => Arch::Aarch64,
            _ => return None,
        })
    }

    /// Kalray MPPA arch names found in zoo files; kann targets the host CPU instead.
    pub(crate) fn is_kalray(s: &str) -> bool {
        let s = s.trim().to_ascii_lowercase();
        s.starts_with("kv3") || s == "mppa"
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Arch, String> {
        Arch::parse(s).ok_or_else(|| {
            let names: Vec<&str> = Arch::ALL.iter().map(|a| a.name()).collect();
            format!(
                "unknown arch \"{s}\" (expected one of {})",
                names.join(", ")
            )
        })
    }
}

/// The model's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framework {
    Onnx,
    Tflite,
}

impl Framework {
    pub fn name(self) -> &'static str {
        match self {
            Framework::Onnx => "onnx",
            Framework::Tflite => "tflite",
        }
    }

    pub fn parse(s: &str) -> Option<Framework> {
        match s.trim().to_ascii_lowercase().as_str() {
            "onnx" => Some(Framework::Onnx),
            "tflite" => Some(Framework::Tflite),
            _ => None,
        }
    }
}

impl fmt::Display for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `generate_options`: what generation is asked to do. `None` means "not
/// written": the command line or the defaults decide.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerateOptions {
    /// `arch`. A Kalray arch (`kv3-2`) is read as unset, with a warning.
    pub arch: Option<Arch>,
    /// `nbr_clusters` (at least 1).
    pub n_clusters: Option<usize>,
    /// `quantize_fp32_to_fp16`: fp16 storage, fp32 compute.
    pub quantize_fp32_to_fp16: bool,
    /// `forced_batch_size` (at least 1); zoo files also write it at the top level.
    pub forced_batch_size: Option<usize>,
    /// Zoo keys that are known but have no meaning on a CPU (buffer sizes,
    /// DDR thresholds …), in file order; kept so the dump and log can say so.
    pub ignored_keys: Vec<String>,
}

/// Keys of the zoo's `generate_options` that tune the MPPA's memories.
pub(crate) const ZOO_MPPA_KEYS: &[&str] = &[
    "data_buffer_size",
    "code_buffer_size",
    "threshold_image_to_ddr",
    "threshold_max_params_size",
    "ddr_images_tiles_size",
    "splitdepth_corrector_ratio",
    "max_live_range",
];

const KEYS: &[&str] = &[
    "arch",
    "nbr_clusters",
    "quantize_fp32_to_fp16",
    "forced_batch_size",
];

impl GenerateOptions {
    pub(crate) fn read(cx: &mut Cx, mut f: Fields<'_>) -> Result<GenerateOptions> {
        let mut opts = GenerateOptions::default();
        if let Some((key, node)) = f.get("arch") {
            let s = cx.string(&key, node)?;
            if let Some(arch) = Arch::parse(&s) {
                opts.arch = Some(arch);
            } else if Arch::is_kalray(&s) {
                cx.warn(
                    &key,
                    node.pos,
                    format!("\"{s}\" is a Kalray MPPA arch; kann compiles for this CPU (native) unless --arch says otherwise"),
                );
            } else {
                return Err(cx.error(&key, node.pos, s.parse::<Arch>().unwrap_err()));
            }
        }
        if let Some((key, node)) = f.get("nbr_clusters") {
            opts.n_clusters = Some(cx.int(&key, node, 1)?);
        }
        if let Some((key, node)) = f.get("quantize_fp32_to_fp16") {
            opts.quantize_fp32_to_fp16 = cx.bool(&key, node)?;
        }
        if let Some((key, node)) = f.get("forced_batch_size") {
            opts.forced_batch_size = Some(cx.int(&key, node, 1)?);
        }
        for k in ZOO_MPPA_KEYS {
            if f.has(k) {
                opts.ignored_keys.push((*k).to_string());
            }
        }
        let known: Vec<&str> = KEYS.iter().chain(ZOO_MPPA_KEYS).copied().collect();
        f.finish(cx, &known);
        Ok(opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names_round_trip() {
        for a in Arch::ALL {
            assert_eq!(Arch::parse(a.name()), Some(a));
            assert_eq!(a.to_string().parse::<Arch>(), Ok(a));
        }
        assert_eq!(Arch::parse("x86_64_v3"), Some(Arch::X86_64V3));
        assert_eq!(Arch::parse("ARM64"), Some(Arch::Aarch64));
        let err = "kv9".parse::<Arch>().unwrap_err();
        assert!(
            err.contains("native, x86-64-v4, x86-64-v3, generic, aarch64"),
            "{err}"
        );
        assert!(Arch::is_kalray("kv3-2") && !Arch::is_kalray("generic"));
    }

    #[test]
    fn frameworks_parse() {
        assert_eq!(Framework::parse("ONNX"), Some(Framework::Onnx));
        assert_eq!(Framework::parse("tflite"), Some(Framework::Tflite));
        assert_eq!(Framework::parse("tensorflow"), None);
    }
}
