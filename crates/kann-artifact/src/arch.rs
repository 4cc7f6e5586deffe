//! Target arches and CPU features: what an artifact requires and what this
//! CPU offers. Detection ([`CpuFeatures::detect`]) is separate from the check
//! ([`crate::Artifact::check_cpu`]) so tests can pretend to be a CPU that
//! lacks a feature.

use std::fmt;
use std::str::FromStr;

/// One CPU feature a kernel may need. The discriminant is the bit number in
/// the artifact header's `required_features` mask, so it never changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Feature {
    Avx = 0,
    Avx2 = 1,
    Fma = 2,
    F16c = 3,
    Avx512f = 4,
    Avx512bw = 5,
    Avx512dq = 6,
    Avx512vl = 7,
    Avx512vnni = 8,
    Avx512bf16 = 9,
    Neon = 32,
}

impl Feature {
    /// Every feature this kann knows, in bit order.
    pub const ALL: [Feature; 11] = [
        Feature::Avx,
        Feature::Avx2,
        Feature::Fma,
        Feature::F16c,
        Feature::Avx512f,
        Feature::Avx512bw,
        Feature::Avx512dq,
        Feature::Avx512vl,
        Feature::Avx512vnni,
        Feature::Avx512bf16,
        Feature::Neon,
    ];

    /// The name `is_x86_feature_detected!` / `/proc/cpuinfo` users know.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Avx => "avx",
            Feature::Avx2 => "avx2",
            Feature::Fma => "fma",
            Feature::F16c => "f16c",
            Feature::Avx512f => "avx512f",
            Feature::Avx512bw => "avx512bw",
            Feature::Avx512dq => "avx512dq",
            Feature::Avx512vl => "avx512vl",
            Feature::Avx512vnni => "avx512vnni",
            Feature::Avx512bf16 => "avx512bf16",
            Feature::Neon => "neon",
        }
    }

    /// This feature's bit in a [`FeatureSet`].
    pub fn bit(self) -> u64 {
        1u64 << (self as u8)
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of CPU features as the header stores it: a little-endian `u64`
/// bitmask, bit `n` = the [`Feature`] whose discriminant is `n`. Bits this
/// kann does not know are kept (a newer minor version may set them) and
/// count as missing on every CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FeatureSet(u64);

impl FeatureSet {
    /// No feature.
    pub const EMPTY: FeatureSet = FeatureSet(0);

    /// The set with exactly these bits, known or not.
    pub const fn from_bits(bits: u64) -> FeatureSet {
        FeatureSet(bits)
    }

    /// The raw mask.
    pub const fn bits(self) -> u64 {
        self.0
    }

    pub fn contains(self, f: Feature) -> bool {
        self.0 & f.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// This set plus `f`.
    pub fn with(self, f: Feature) -> FeatureSet {
        FeatureSet(self.0 | f.bit())
    }

    /// This set less `f`.
    pub fn without(self, f: Feature) -> FeatureSet {
        FeatureSet(self.0 & !f.bit())
    }

    pub fn union(self, other: FeatureSet) -> FeatureSet {
        FeatureSet(self.0 | other.0)
    }

    /// What `self` has that `other` lacks.
    pub fn difference(self, other: FeatureSet) -> FeatureSet {
        FeatureSet(self.0 & !other.0)
    }

    /// The known features in the set, in bit order.
    pub fn iter(self) -> impl Iterator<Item = Feature> {
        Feature::ALL.into_iter().filter(move |f| self.contains(*f))
    }

    /// Bits set that name no [`Feature`] this kann knows.
    pub fn unknown_bits(self) -> u64 {
        let known = Feature::ALL.iter().fold(0u64, |m, f| m | f.bit());
        self.0 & !known
    }
}

impl FromIterator<Feature> for FeatureSet {
    fn from_iter<I: IntoIterator<Item = Feature>>(iter: I) -> FeatureSet {
        iter.into_iter().fold(FeatureSet::EMPTY, FeatureSet::with)
    }
}

impl From<Feature> for FeatureSet {
    fn from(f: Feature) -> FeatureSet {
        FeatureSet::EMPTY.with(f)
    }
}

/// Lists the features as `avx2, fma`, then unknown bits as `bit 12`; `none`
/// when empty.
impl fmt::Display for FeatureSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<String> = self.iter().map(|x| x.name().to_string()).collect();
        let unknown = self.unknown_bits();
        names.extend(
            (0..64)
                .filter(|b| unknown & (1u64 << b) != 0)
                .map(|b| format!("bit {b}")),
        );
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(", "))
        }
    }
}

/// The instruction-set family of a CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CpuFamily {
    X86_64,
    Aarch64,
    Other,
}

impl CpuFamily {
    /// The family this binary was compiled for.
    pub fn host() -> CpuFamily {
        if cfg!(target_arch = "x86_64") {
            CpuFamily::X86_64
        } else if cfg!(target_arch = "aarch64") {
            CpuFamily::Aarch64
        } else {
            CpuFamily::Other
        }
    }
}

impl fmt::Display for CpuFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CpuFamily::X86_64 => "x86_64",
            CpuFamily::Aarch64 => "aarch64",
            CpuFamily::Other => "another CPU family",
        })
    }
}

/// What a CPU offers: its family and its features. Build one by hand (or
/// with [`CpuFeatures::without`]) to simulate another CPU in tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CpuFeatures {
    pub family: CpuFamily,
    pub features: FeatureSet,
}

impl CpuFeatures {
    /// A CPU of `family` with exactly `features`.
    pub fn new(family: CpuFamily, features: FeatureSet) -> CpuFeatures {
        CpuFeatures { family, features }
    }

    /// This CPU, probed at run time (`is_x86_feature_detected!` on x86_64,
    /// `is_aarch64_feature_detected!` on aarch64), so one binary serves every
    /// x86-64 level.
    pub fn detect() -> CpuFeatures {
        #[allow(unused_mut)]
        let mut set = FeatureSet::EMPTY;
        #[cfg(target_arch = "x86_64")]
        {
            let probes = [
                (Feature::Avx, std::is_x86_feature_detected!("avx")),
                (Feature::Avx2, std::is_x86_feature_detected!("avx2")),
                (Feature::Fma, std::is_x86_feature_detected!("fma")),
                (Feature::F16c, std::is_x86_feature_detected!("f16c")),
                (Feature::Avx512f, std::is_x86_feature_detected!("avx512f")),
                (Feature::Avx512bw, std::is_x86_feature_detected!("avx512bw")),
                (Feature::Avx512dq, std::is_x86_feature_detected!("avx512dq")),
                (Feature::Avx512vl, std::is_x86_feature_detected!("avx512vl")),
                (
                    Feature::Avx512vnni,
                    std::is_x86_feature_detected!("avx512vnni"),
                ),
                (
                    Feature::Avx512bf16,
                    std::is_x86_feature_detected!("avx512bf16"),
                ),
            ];
            for (f, present) in probes {
                if present {
                    set = set.with(f);
                }
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                set = set.with(Feature::Neon);
            }
        }
        CpuFeatures {
            family: CpuFamily::host(),
            features: set,
        }
    }

    pub fn has(&self, f: Feature) -> bool {
        self.features.contains(f)
    }

    /// The same CPU without `f`: how tests fake an older machine.
    pub fn without(self, f: Feature) -> CpuFeatures {
        CpuFeatures {
            features: self.features.without(f),
            ..self
        }
    }

    /// The same CPU with `f`.
    pub fn with(self, f: Feature) -> CpuFeatures {
        CpuFeatures {
            features: self.features.with(f),
            ..self
        }
    }
}

/// The instruction set an artifact is compiled for. The `u32` id is what the
/// header stores; ids this kann does not know read as [`Arch::Unknown`] and
/// no CPU can run them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// Portable Rust kernels: runs on any CPU.
    Generic,
    /// AVX2 + FMA (+ F16C).
    X86_64V3,
    /// x86-64-v3 plus AVX-512 F/BW/DQ/VL.
    X86_64V4,
    /// NEON.
    Aarch64,
    /// An id written by a newer kann.
    Unknown(u32),
}

impl Arch {
    /// The named arches, for `--arch` help and tests.
    pub const KNOWN: [Arch; 4] = [Arch::Generic, Arch::X86_64V3, Arch::X86_64V4, Arch::Aarch64];

    /// The id stored in the header.
    pub fn id(self) -> u32 {
        match self {
            Arch::Generic => 0,
            Arch::X86_64V3 => 1,
            Arch::X86_64V4 => 2,
            Arch::Aarch64 => 3,
            Arch::Unknown(id) => id,
        }
    }

    /// The arch of a header id; unknown ids are kept.
    pub fn from_id(id: u32) -> Arch {
        match id {
            0 => Arch::Generic,
            1 => Arch::X86_64V3,
            2 => Arch::X86_64V4,
            3 => Arch::Aarch64,
            other => Arch::Unknown(other),
        }
    }

    /// The CPU family the arch runs on; `None` for generic (any) and unknown.
    pub fn family(self) -> Option<CpuFamily> {
        match self {
            Arch::X86_64V3 | Arch::X86_64V4 => Some(CpuFamily::X86_64),
            Arch::Aarch64 => Some(CpuFamily::Aarch64),
            Arch::Generic | Arch::Unknown(_) => None,
        }
    }

    /// The features every artifact of this arch requires. This is the set
    /// kann's kernels use, not the full psABI level (x86-64-v3 also names
    /// BMI1/2, LZCNT and MOVBE, which no kernel needs and some VMs hide).
    pub fn required_features(self) -> FeatureSet {
        use Feature::*;
        match self {
            Arch::Generic | Arch::Unknown(_) => FeatureSet::EMPTY,
            Arch::X86_64V3 => [Avx, Avx2, Fma, F16c].into_iter().collect(),
            Arch::X86_64V4 => Arch::X86_64V3.required_features().union(
                [Avx512f, Avx512bw, Avx512dq, Avx512vl]
                    .into_iter()
                    .collect(),
            ),
            Arch::Aarch64 => Neon.into(),
        }
    }

    /// The best arch `cpu` runs: what `--arch native` means.
    pub fn best_for(cpu: &CpuFeatures) -> Arch {
        [Arch::X86_64V4, Arch::X86_64V3, Arch::Aarch64]
            .into_iter()
            .find(|a| {
                a.family() == Some(cpu.family)
                    && a.required_features().difference(cpu.features).is_empty()
            })
            .unwrap_or(Arch::Generic)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arch::Generic => f.write_str("generic"),
            Arch::X86_64V3 => f.write_str("x86-64-v3"),
            Arch::X86_64V4 => f.write_str("x86-64-v4"),
            Arch::Aarch64 => f.write_str("aarch64"),
            Arch::Unknown(id) => write!(f, "unknown arch #{id}"),
        }
    }
}

/// Parses `generic`, `x86-64-v3`, `x86-64-v4`, `aarch64` (`native` is the
/// caller's business: [`Arch::best_for`] of [`CpuFeatures::detect`]).
impl FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Arch, String> {
        Arch::KNOWN
            .into_iter()
            .find(|a| a.to_string() == s)
            .ok_or_else(|| {
                format!("unknown arch \"{s}\" (expected generic, x86-64-v3, x86-64-v4 or aarch64)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_round_trip() {
        for a in Arch::KNOWN {
            assert_eq!(Arch::from_id(a.id()), a);
            assert_eq!(a.to_string().parse::<Arch>().unwrap(), a);
        }
        assert_eq!(Arch::from_id(77), Arch::Unknown(77));
        assert!("x86-64-v5".parse::<Arch>().is_err());
    }

    #[test]
    fn v4_contains_v3() {
        let v3 = Arch::X86_64V3.required_features();
        let v4 = Arch::X86_64V4.required_features();
        assert!(v3.difference(v4).is_empty());
        assert!(v4.contains(Feature::Avx512f));
        assert_eq!(v3.to_string(), "avx, avx2, fma, f16c");
    }

    #[test]
    fn feature_set_display_names_unknown_bits() {
        let s = FeatureSet::from_bits(Feature::Avx2.bit() | (1 << 40));
        assert_eq!(s.to_string(), "avx2, bit 40");
        assert_eq!(FeatureSet::EMPTY.to_string(), "none");
    }

    #[test]
    fn best_for_picks_the_highest_level() {
        let v4 = CpuFeatures::new(CpuFamily::X86_64, Arch::X86_64V4.required_features());
        assert_eq!(Arch::best_for(&v4), Arch::X86_64V4);
        assert_eq!(
            Arch::best_for(&v4.without(Feature::Avx512bw)),
            Arch::X86_64V3
        );
        assert_eq!(Arch::best_for(&v4.without(Feature::Fma)), Arch::Generic);
        let arm = CpuFeatures::new(CpuFamily::Aarch64, Feature::Neon.into());
        assert_eq!(Arch::best_for(&arm), Arch::Aarch64);
    }

    #[test]
    fn detect_is_consistent_with_the_host() {
        let cpu = CpuFeatures::detect();
        assert_eq!(cpu.family, CpuFamily::host());
        assert_eq!(cpu.features.unknown_bits(), 0);
        // Whatever this CPU is, the best arch for it must be runnable by it.
        let best = Arch::best_for(&cpu);
        assert!(best.required_features().difference(cpu.features).is_empty());
    }
}
