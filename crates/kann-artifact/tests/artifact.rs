//! Robustness of the `.kann` container: round trips, and one refusal per
//! kind of damage (truncation at every byte, a flipped byte anywhere, wrong
//! magic, other versions, bad tables, a CPU lacking features). None panics.

use std::path::PathBuf;

use kann_artifact::checksum::checksum;
use kann_artifact::{
    Arch, Artifact, ArtifactError, ArtifactWriter, CpuFamily, CpuFeatures, Feature, FeatureSet,
    FormatVersion, SectionId, SectionKind, ENTRY_LEN, HEADER_LEN,
};

/// A folder under the system temp dir, removed on drop.
struct TestDir(PathBuf);

impl TestDir {
    fn new(tag: &str) -> TestDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kann-artifact-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const WEIGHTS: [f32; 13] = [
    0.0,
    1.0,
    -1.5,
    2.25,
    f32::MAX,
    f32::MIN_POSITIVE,
    -0.0,
    3.0,
    4.0,
    5.0,
    6.0,
    7.0,
    8.5,
];

/// A small artifact with every known kind, two clusters, and payload
/// lengths that leave padding between sections.
fn sample_writer() -> ArtifactWriter<'static> {
    let mut w = ArtifactWriter::new(Arch::X86_64V3);
    w.add_section(
        SectionKind::Metadata,
        0,
        "metadata",
        &b"inputs: [data]\noutputs: [prob]\n"[..],
    )
    .unwrap();
    w.add_section(SectionKind::Program, 0, "program.0", vec![1u8, 2, 3, 4, 5])
        .unwrap();
    w.add_section(SectionKind::Program, 1, "program.1", vec![9u8; 70])
        .unwrap();
    w.add_section(SectionKind::MemoryPlan, 0, "memory-plan", vec![0xAAu8; 3])
        .unwrap();
    w.add_f32_section(SectionKind::Weights, 0, "weights", &WEIGHTS)
        .unwrap();
    w.add_section(SectionKind::Strings, 0, "strings", &b"conv1\0relu1\0"[..])
        .unwrap();
    w
}

fn sample() -> Vec<u8> {
    sample_writer().to_bytes().unwrap()
}

fn err_of(bytes: &[u8]) -> ArtifactError {
    match Artifact::from_bytes(bytes) {
        Ok(_) => panic!("accepted a damaged artifact"),
        Err(e) => e,
    }
}

fn assert_one_line(e: &ArtifactError) {
    let msg = e.to_string();
    assert!(
        !msg.contains('\n') && !msg.is_empty(),
        "not one line: {msg:?}"
    );
}

/// Recomputes the header checksum after a test edited header fields.
fn reseal_header(bytes: &mut [u8]) {
    let sum = checksum(&bytes[..56]);
    bytes[56..64].copy_from_slice(&sum.to_le_bytes());
}

/// Edits section-table entry `i` with `edit`, then fixes both checksums, as a
/// buggy (not a corrupting) writer would produce.
fn patch_entry(bytes: &mut [u8], i: usize, edit: impl FnOnce(&mut [u8])) {
    let table_offset = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
    let count = u32::from_le_bytes(bytes[20..24].try_into().unwrap()) as usize;
    let start = table_offset + i * ENTRY_LEN;
    edit(&mut bytes[start..start + ENTRY_LEN]);
    let table_sum = checksum(&bytes[table_offset..table_offset + count * ENTRY_LEN]);
    bytes[48..56].copy_from_slice(&table_sum.to_le_bytes());
    reseal_header(bytes);
}

fn set_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn round_trip_of_several_sections() {
    let bytes = sample();
    let a = Artifact::from_bytes(&bytes).unwrap();
    assert_eq!(a.version(), FormatVersion::CURRENT);
    assert_eq!(a.arch(), Arch::X86_64V3);
    assert_eq!(a.required_features(), Arch::X86_64V3.required_features());
    assert_eq!(a.header().file_len, bytes.len() as u64);
    assert_eq!(a.as_bytes(), &bytes[..]);

    let summary: Vec<(SectionKind, u32, &str)> = a
        .sections()
        .iter()
        .map(|s| (s.kind, s.index, s.name.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (SectionKind::Metadata, 0, "metadata"),
            (SectionKind::Program, 0, "program.0"),
            (SectionKind::Program, 1, "program.1"),
            (SectionKind::MemoryPlan, 0, "memory-plan"),
            (SectionKind::Weights, 0, "weights"),
            (SectionKind::Strings, 0, "strings"),
        ]
    );
    let program1 = a.find(SectionKind::Program, 1).unwrap().id;
    assert_eq!(a.section_bytes(program1).unwrap(), &[9u8; 70][..]);
    assert_eq!(a.find_all(SectionKind::Program).count(), 2);
    assert!(a.find(SectionKind::Program, 2).is_none());
    let w = a.find(SectionKind::Weights, 0).unwrap().id;
    let got = a.section_f32(w).unwrap();
    assert_eq!(
        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        WEIGHTS.map(f32::to_bits).to_vec()
    );
    assert_eq!(a.section_slice::<u32>(w).unwrap()[1], 1.0f32.to_bits());
    let meta = a.find(SectionKind::Metadata, 0).unwrap().id;
    assert_eq!(
        a.section_bytes(meta).unwrap(),
        b"inputs: [data]\noutputs: [prob]\n"
    );
    assert!(matches!(
        a.section(SectionId(6)),
        Err(ArtifactError::NoSuchSection(6))
    ));
}

#[test]
fn round_trip_through_a_file_and_the_mmap() {
    let dir = TestDir::new("file");
    let path = dir.path("net.kann");
    let written = sample_writer().write_to(&path).unwrap();
    assert_eq!(written, std::fs::metadata(&path).unwrap().len());
    let a = Artifact::open(&path).unwrap();
    assert_eq!(a.as_bytes(), &sample()[..]);
    let w = a.find(SectionKind::Weights, 0).unwrap().id;
    assert_eq!(a.section_f32(w).unwrap()[3], 2.25);
    // Only the artifact is left: no temporary file.
    let names: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["net.kann"]);
}

#[test]
fn writing_over_a_mapped_artifact_replaces_it_without_touching_the_map() {
    let dir = TestDir::new("replace");
    let path = dir.path("net.kann");
    sample_writer().write_to(&path).unwrap();
    let old = Artifact::open(&path).unwrap();
    let mut w = ArtifactWriter::new(Arch::Generic);
    w.add_section(SectionKind::Metadata, 0, "metadata", &b"new"[..])
        .unwrap();
    w.write_to(&path).unwrap();
    let new = Artifact::open(&path).unwrap();
    assert_eq!(new.sections().len(), 1);
    assert_eq!(old.sections().len(), 6);
    assert_eq!(old.as_bytes(), &sample()[..]);
}

#[test]
fn write_to_a_missing_folder_names_the_path() {
    let dir = TestDir::new("missing");
    let path = dir.path("no/such/dir/net.kann");
    let e = sample_writer().write_to(&path).unwrap_err();
    assert!(
        e.to_string().starts_with(&path.display().to_string()),
        "{e}"
    );
    assert!(matches!(e.root(), ArtifactError::Io(_)));
}

#[test]
fn an_empty_artifact_round_trips() {
    let bytes = ArtifactWriter::new(Arch::Generic).to_bytes().unwrap();
    assert_eq!(bytes.len(), HEADER_LEN);
    let a = Artifact::from_bytes(&bytes).unwrap();
    assert!(a.sections().is_empty());
}

#[test]
fn every_payload_is_aligned_to_64_in_the_file_and_in_memory() {
    let mut w = sample_writer();
    let page = w
        .add_section_aligned(
            SectionKind::Weights,
            1,
            "weights.page",
            4096,
            vec![7u8; 100],
        )
        .unwrap();
    let small = w
        .add_section_aligned(SectionKind::Weights, 2, "weights.small", 4, vec![7u8; 8])
        .unwrap();
    let bytes = w.to_bytes().unwrap();
    let dir = TestDir::new("align");
    let path = dir.path("a.kann");
    w.write_to(&path).unwrap();
    for a in [
        Artifact::from_bytes(&bytes).unwrap(),
        Artifact::open(&path).unwrap(),
    ] {
        for s in a.sections() {
            assert_eq!(s.offset % 64, 0, "{s}");
            assert!(s.align >= 64);
            assert_eq!(
                a.section_bytes(s.id).unwrap().as_ptr() as usize % 64,
                0,
                "{s}"
            );
        }
        assert_eq!(a.section(page).unwrap().offset % 4096, 0);
        assert_eq!(a.section(page).unwrap().align, 4096);
        assert_eq!(a.section(small).unwrap().align, 64);
    }
    // Even from a deliberately misaligned buffer, the copy is aligned.
    let mut shifted = vec![0u8; bytes.len() + 1];
    shifted[1..].copy_from_slice(&bytes);
    let a = Artifact::from_bytes(&shifted[1..]).unwrap();
    let w = a.find(SectionKind::Weights, 0).unwrap().id;
    assert_eq!(a.section_f32(w).unwrap().len(), WEIGHTS.len());
}

#[test]
fn a_view_of_the_wrong_length_is_refused() {
    let a = Artifact::from_bytes(&sample()).unwrap();
    let plan = a.find(SectionKind::MemoryPlan, 0).unwrap().id; // 3 bytes
    let e = a.section_f32(plan).unwrap_err();
    assert_eq!(
        e.to_string(),
        "section #3 \"memory-plan\" (MemoryPlan) cannot be viewed as [f32]: its 3 bytes are not a multiple of 4"
    );
    assert_eq!(a.section_slice::<u8>(plan).unwrap(), &[0xAA; 3]);
}

#[test]
fn truncation_at_every_byte_is_refused_with_the_lengths() {
    let bytes = sample();
    let full = bytes.len() as u64;
    for cut in 0..bytes.len() {
        let e = err_of(&bytes[..cut]);
        assert_one_line(&e);
        match e {
            ArtifactError::TruncatedHeader { actual } => {
                assert!(cut < HEADER_LEN);
                assert_eq!(actual, cut as u64);
            }
            ArtifactError::Truncated { expected, actual } => {
                assert!(cut >= HEADER_LEN);
                assert_eq!((expected, actual), (full, cut as u64));
            }
            other => panic!("cut at {cut}: unexpected {other}"),
        }
    }
    assert_eq!(
        err_of(&bytes[..100]).to_string(),
        format!("truncated kann artifact: expected {full} bytes, found 100")
    );
    assert_eq!(
        err_of(&bytes[..20]).to_string(),
        "truncated kann artifact: 20 bytes, shorter than the 64-byte header"
    );
}

#[test]
fn truncation_at_each_section_boundary_of_a_file_names_the_file() {
    let bytes = sample();
    let a = Artifact::from_bytes(&bytes).unwrap();
    let dir = TestDir::new("trunc");
    let path = dir.path("cut.kann");
    let mut cuts: Vec<u64> = vec![0, 7, 63, 64];
    cuts.extend(
        a.sections()
            .iter()
            .flat_map(|s| [s.offset, s.offset + s.len]),
    );
    cuts.retain(|&c| c < bytes.len() as u64);
    for cut in cuts {
        std::fs::write(&path, &bytes[..cut as usize]).unwrap();
        let e = Artifact::open(&path).unwrap_err();
        assert_one_line(&e);
        assert!(
            e.to_string().starts_with(&path.display().to_string()),
            "{e}"
        );
        assert!(
            matches!(
                e.root(),
                ArtifactError::Truncated { .. } | ArtifactError::TruncatedHeader { .. }
            ),
            "cut at {cut}: {e}"
        );
    }
}

#[test]
fn a_flipped_byte_anywhere_is_refused_and_located() {
    let bytes = sample();
    let a = Artifact::from_bytes(&bytes).unwrap();
    let table_end = HEADER_LEN + a.sections().len() * ENTRY_LEN;
    for pos in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut bad = bytes.clone();
            bad[pos] ^= mask;
            let e = err_of(&bad);
            assert_one_line(&e);
            let owner = a
                .sections()
                .iter()
                .find(|s| (s.offset..s.offset + s.len).contains(&(pos as u64)));
            match (&e, owner) {
                (ArtifactError::NotKann, _) => assert!(pos < 8),
                (ArtifactError::NewerFormat { .. } | ArtifactError::OlderFormat { .. }, _) => {
                    assert!((8..10).contains(&pos))
                }
                (ArtifactError::Checksum { region }, None) if pos < HEADER_LEN => {
                    assert_eq!(region, "the header", "byte {pos}")
                }
                (ArtifactError::Checksum { region }, None) if pos < table_end => {
                    assert_eq!(region, "the section table", "byte {pos}")
                }
                (ArtifactError::Checksum { region }, Some(s)) => {
                    assert_eq!(region, &s.to_string(), "byte {pos}");
                    assert!(e.to_string().contains(&format!("\"{}\"", s.name)));
                }
                (ArtifactError::NonZeroPadding { offset }, None) => assert_eq!(*offset, pos as u64),
                (other, _) => panic!("byte {pos} ^ {mask:#x}: unexpected {other}"),
            }
        }
    }
    let w = a.find(SectionKind::Weights, 0).unwrap();
    let mut bad = bytes.clone();
    bad[w.offset as usize + 5] ^= 0x10;
    assert_eq!(
        err_of(&bad).to_string(),
        "corrupt kann artifact: checksum mismatch in section #4 \"weights\" (Weights)"
    );
    let p = a.find(SectionKind::Program, 1).unwrap();
    let mut bad = bytes.clone();
    bad[p.offset as usize] ^= 0x10;
    assert_eq!(
        err_of(&bad).to_string(),
        "corrupt kann artifact: checksum mismatch in section #2 \"program.1\" (Program 1)"
    );
}

#[test]
fn wrong_magic_is_not_a_kann_artifact() {
    let mut bytes = sample();
    bytes[0] = b'k';
    let e = err_of(&bytes);
    assert!(matches!(e, ArtifactError::NotKann));
    assert_eq!(
        e.to_string(),
        "not a kann artifact (it does not start with the magic bytes \"KANN\\0ART\")"
    );
    // An ONNX file, a text file and a short file that is no magic prefix.
    assert!(matches!(
        err_of(b"\x08\x07\x12\x07pytorch"),
        ArtifactError::NotKann
    ));
    assert!(matches!(
        err_of(b"name: resnet50\n"),
        ArtifactError::NotKann
    ));
    assert!(matches!(err_of(b"KANX"), ArtifactError::NotKann));
    // A prefix of the magic is a truncated artifact instead.
    assert!(matches!(
        err_of(b"KANN"),
        ArtifactError::TruncatedHeader { actual: 4 }
    ));

    let dir = TestDir::new("magic");
    let path = dir.path("model.onnx");
    std::fs::write(
        &path,
        b"\x08\x07\x12\x07pytorch and much more than sixty-four bytes of protobuf ...",
    )
    .unwrap();
    let e = Artifact::open(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: {}", path.display(), ArtifactError::NotKann)
    );
}

#[test]
fn a_newer_major_version_is_refused_before_anything_else() {
    let mut bytes = sample();
    bytes[8..10].copy_from_slice(&2u16.to_le_bytes());
    bytes[10..12].copy_from_slice(&0u16.to_le_bytes());
    // Not resealed, and cut short: a newer major may lay out everything else
    // differently, so nothing after the version is looked at.
    let e = err_of(&bytes[..40]);
    assert!(matches!(
        e,
        ArtifactError::NewerFormat {
            found: FormatVersion { major: 2, minor: 0 }
        }
    ));
    assert_eq!(
        e.to_string(),
        "made by a newer kann (format 2.0; this kann reads 1.x): regenerate it or update kann"
    );
    assert!(e
        .to_string()
        .contains("made by a newer kann (format 2.0; this kann reads 1.x)"));
}

#[test]
fn an_older_major_version_is_refused() {
    let mut bytes = sample();
    bytes[8..10].copy_from_slice(&0u16.to_le_bytes());
    bytes[10..12].copy_from_slice(&9u16.to_le_bytes());
    reseal_header(&mut bytes);
    let e = err_of(&bytes);
    assert!(matches!(e, ArtifactError::OlderFormat { .. }));
    assert_eq!(
        e.to_string(),
        "made by an older kann (format 0.9; this kann reads 1.x): regenerate it"
    );
}

#[test]
fn any_minor_version_of_the_same_major_is_read() {
    for minor in [0u16, 1, 2, 17, u16::MAX] {
        let mut bytes = sample();
        bytes[10..12].copy_from_slice(&minor.to_le_bytes());
        reseal_header(&mut bytes);
        let a = Artifact::from_bytes(&bytes).unwrap();
        assert_eq!(a.version(), FormatVersion { major: 1, minor });
        assert_eq!(a.sections().len(), 6);
    }
}

#[test]
fn unknown_section_kinds_and_flags_are_skipped() {
    let mut w = ArtifactWriter::new(Arch::Generic);
    w.set_flags(0x8000_0001);
    w.add_section(SectionKind::Metadata, 0, "metadata", &b"m"[..])
        .unwrap();
    let future = w
        .add_section(
            SectionKind::Unknown(4242),
            0,
            "future.stuff",
            vec![1u8; 100],
        )
        .unwrap();
    // Two unknown sections with the same kind and index are not a conflict:
    // a reader cannot know what makes them distinct.
    w.add_section(SectionKind::Unknown(4242), 0, "future.more", vec![2u8; 10])
        .unwrap();
    w.add_f32_section(SectionKind::Weights, 0, "weights", &[1.0, 2.0])
        .unwrap();
    let mut bytes = w.to_bytes().unwrap();
    // As a newer minor would write it, with a reserved entry flag set too.
    bytes[10..12].copy_from_slice(&3u16.to_le_bytes());
    reseal_header(&mut bytes);
    patch_entry(&mut bytes, future.0 as usize, |e| {
        e[36..40].copy_from_slice(&7u32.to_le_bytes())
    });

    let a = Artifact::from_bytes(&bytes).unwrap();
    assert_eq!(a.header().flags, 0x8000_0001);
    assert_eq!(a.sections().len(), 4);
    let s = a.section(future).unwrap();
    assert_eq!((s.kind, s.flags), (SectionKind::Unknown(4242), 7));
    assert!(!s.kind.is_known());
    assert_eq!(
        s.to_string(),
        "section #1 \"future.stuff\" (unknown kind 4242)"
    );
    let weights = a.find(SectionKind::Weights, 0).unwrap().id;
    assert_eq!(a.section_f32(weights).unwrap(), &[1.0, 2.0]);
    assert_eq!(a.find_all(SectionKind::Weights).count(), 1);
    // Known kinds given as Unknown(id) are normalised by the writer.
    let mut w = ArtifactWriter::new(Arch::Generic);
    w.add_section(SectionKind::Unknown(4), 0, "weights", vec![0u8; 4])
        .unwrap();
    let a = Artifact::from_bytes(&w.to_bytes().unwrap()).unwrap();
    assert_eq!(a.sections()[0].kind, SectionKind::Weights);
}

fn x86(features: FeatureSet) -> CpuFeatures {
    CpuFeatures::new(CpuFamily::X86_64, features)
}

fn artifact_for(arch: Arch, extra: FeatureSet) -> Artifact {
    let mut w = ArtifactWriter::new(arch);
    w.require_features(extra);
    w.add_section(SectionKind::Program, 0, "program.0", vec![0u8; 8])
        .unwrap();
    Artifact::from_bytes(&w.to_bytes().unwrap()).unwrap()
}

#[test]
fn a_cpu_lacking_features_is_refused_naming_them() {
    let v4 = artifact_for(Arch::X86_64V4, FeatureSet::EMPTY);
    let full = x86(Arch::X86_64V4.required_features());
    v4.check_cpu(&full).unwrap();

    let e = v4.check_cpu(&full.without(Feature::Avx512bw)).unwrap_err();
    match &e {
        ArtifactError::ArchMismatch { arch, missing, .. } => {
            assert_eq!(*arch, Arch::X86_64V4);
            assert_eq!(*missing, FeatureSet::from(Feature::Avx512bw));
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        e.to_string(),
        "the artifact is compiled for x86-64-v4 and needs avx512bw, which this CPU lacks: regenerate it with --arch native"
    );

    // An AVX2-only machine lacks all four AVX-512 features.
    let e = v4
        .check_cpu(&x86(Arch::X86_64V3.required_features()))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("needs avx512f, avx512bw, avx512dq, avx512vl,"),
        "{e}"
    );

    // Features beyond the arch's baseline are checked too.
    let vnni = artifact_for(Arch::X86_64V4, Feature::Avx512vnni.into());
    let e = vnni.check_cpu(&full).unwrap_err();
    assert!(e.to_string().contains("needs avx512vnni, which"), "{e}");
    vnni.check_cpu(&full.with(Feature::Avx512vnni)).unwrap();

    // A feature bit this kann does not know can never be satisfied.
    let mut bytes = artifact_for(Arch::X86_64V3, FeatureSet::EMPTY)
        .as_bytes()
        .to_vec();
    let bits = Arch::X86_64V3.required_features().bits() | (1 << 40);
    set_u64(&mut bytes, 24, bits);
    reseal_header(&mut bytes);
    let a = Artifact::from_bytes(&bytes).unwrap();
    let e = a
        .check_cpu(&x86(FeatureSet::from_bits(u64::MAX)))
        .unwrap_err();
    assert!(e.to_string().contains("needs bit 40,"), "{e}");
}

#[test]
fn a_cpu_of_another_family_is_refused() {
    let arm = artifact_for(Arch::Aarch64, FeatureSet::EMPTY);
    let e = arm
        .check_cpu(&x86(Arch::X86_64V4.required_features()))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the artifact is compiled for aarch64 but this CPU is x86_64: regenerate it for this machine (--arch native)"
    );
    arm.check_cpu(&CpuFeatures::new(CpuFamily::Aarch64, Feature::Neon.into()))
        .unwrap();
    let v3 = artifact_for(Arch::X86_64V3, FeatureSet::EMPTY);
    let e = v3
        .check_cpu(&CpuFeatures::new(CpuFamily::Aarch64, Feature::Neon.into()))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("compiled for x86-64-v3 but this CPU is aarch64"),
        "{e}"
    );
}

#[test]
fn generic_runs_anywhere_and_unknown_arches_nowhere() {
    let generic = artifact_for(Arch::Generic, FeatureSet::EMPTY);
    generic
        .check_cpu(&CpuFeatures::new(CpuFamily::Other, FeatureSet::EMPTY))
        .unwrap();
    generic.check_cpu(&CpuFeatures::detect()).unwrap();
    // An artifact for the best arch of this very CPU runs on it.
    let native = Arch::best_for(&CpuFeatures::detect());
    artifact_for(native, FeatureSet::EMPTY)
        .check_cpu(&CpuFeatures::detect())
        .unwrap();

    let mut bytes = generic.as_bytes().to_vec();
    bytes[16..20].copy_from_slice(&99u32.to_le_bytes());
    reseal_header(&mut bytes);
    let a = Artifact::from_bytes(&bytes).unwrap();
    assert_eq!(a.arch(), Arch::Unknown(99));
    let e = a.check_cpu(&CpuFeatures::detect()).unwrap_err();
    assert!(
        e.to_string().contains("arch id 99, unknown to this kann"),
        "{e}"
    );
}

#[test]
fn sections_out_of_bounds_are_refused() {
    let bytes = sample();
    let len = bytes.len() as u64;
    // Weights (entry 4) pushed past the end, keeping its alignment.
    let mut bad = bytes.clone();
    patch_entry(&mut bad, 4, |e| set_u64(e, 8, len.next_multiple_of(64)));
    let e = err_of(&bad);
    assert!(matches!(e, ArtifactError::SectionOutOfBounds { .. }), "{e}");
    assert!(
        e.to_string().contains("section #4 \"weights\" (Weights)"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(&format!("lies outside the {len}-byte file")),
        "{e}"
    );
    // A length that overflows u64 arithmetic.
    let mut bad = bytes.clone();
    patch_entry(&mut bad, 1, |e| set_u64(e, 16, u64::MAX));
    assert!(matches!(
        err_of(&bad),
        ArtifactError::SectionOutOfBounds { .. }
    ));
    // A section table larger than the file.
    let mut bad = bytes.clone();
    bad[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    reseal_header(&mut bad);
    let e = err_of(&bad);
    assert!(matches!(e, ArtifactError::BadHeader { .. }), "{e}");
    // A table inside the header.
    let mut bad = bytes.clone();
    set_u64(&mut bad, 32, 8);
    reseal_header(&mut bad);
    assert!(matches!(err_of(&bad), ArtifactError::BadHeader { .. }));
}

#[test]
fn overlapping_sections_are_refused() {
    let bytes = sample();
    let a = Artifact::from_bytes(&bytes).unwrap();
    let program0 = a.sections()[1].offset;
    // Program 1 moved onto program 0.
    let mut bad = bytes.clone();
    patch_entry(&mut bad, 2, |e| set_u64(e, 8, program0));
    let e = err_of(&bad);
    assert_one_line(&e);
    assert!(matches!(e, ArtifactError::SectionOverlap { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("section #1 \"program.0\" (Program 0)"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("overlaps section #2 \"program.1\" (Program 1)"),
        "{e}"
    );
    // A section over the header.
    let mut bad = bytes.clone();
    patch_entry(&mut bad, 0, |e| set_u64(e, 8, 0));
    let e = err_of(&bad);
    assert!(
        e.to_string()
            .contains("section #0 \"metadata\" (Metadata) (bytes 0..31)"),
        "{e}"
    );
    assert!(e.to_string().contains("the header (bytes 0..64)"), "{e}");
    // A section over the section table.
    let mut bad = bytes.clone();
    patch_entry(&mut bad, 0, |e| set_u64(e, 8, 64));
    assert!(err_of(&bad)
        .to_string()
        .contains("the section table (bytes 64.."));
}

#[test]
fn misaligned_or_badly_named_or_duplicate_sections_are_refused() {
    let bytes = sample();
    let mut bad = bytes.clone();
    patch_entry(&mut bad, 4, |e| {
        let off = u64::from_le_bytes(e[8..16].try_into().unwrap());
        set_u64(e, 8, off + 4);
    });
    let e = err_of(&bad);
    assert!(
        e.to_string()
            .contains("is not a multiple of its alignment 64"),
        "{e}"
    );

    let mut bad = bytes.clone();
    patch_entry(&mut bad, 4, |e| e[32] = 2);
    assert!(err_of(&bad)
        .to_string()
        .contains("alignment 2^2 is outside 64..=2^40"));

    let mut bad = bytes.clone();
    patch_entry(&mut bad, 4, |e| e[40] = 0xFF);
    assert_eq!(
        err_of(&bad).to_string(),
        "corrupt kann artifact: section #4: its name is not UTF-8"
    );

    // Program 1 relabelled as a second Program 0.
    let mut bad = bytes.clone();
    patch_entry(&mut bad, 2, |e| {
        e[4..8].copy_from_slice(&0u32.to_le_bytes())
    });
    let e = err_of(&bad);
    assert!(
        matches!(
            e,
            ArtifactError::DuplicateSection {
                kind: SectionKind::Program,
                index: 0
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "corrupt kann artifact: two sections are Program 0"
    );
}

#[test]
fn bytes_after_the_declared_end_are_refused() {
    let mut bytes = sample();
    let n = bytes.len() as u64;
    bytes.extend_from_slice(&[0, 0, 0]);
    let e = err_of(&bytes);
    assert!(
        matches!(e, ArtifactError::TrailingBytes { expected, actual } if expected == n && actual == n + 3)
    );
}

#[test]
fn the_writer_refuses_bad_sections() {
    let mut w = ArtifactWriter::new(Arch::Generic);
    let e = w
        .add_section(
            SectionKind::Metadata,
            0,
            "a-name-longer-than-24-bytes",
            vec![],
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot add section \"a-name-longer-than-24-bytes\": the name is 27 bytes long, the limit is 24"
    );
    assert!(w.add_section(SectionKind::Metadata, 0, "", vec![]).is_err());
    assert!(w
        .add_section(SectionKind::Metadata, 0, "a\0b", vec![])
        .is_err());
    assert!(w
        .add_section_aligned(SectionKind::Weights, 0, "w", 48, vec![])
        .is_err());
    w.add_section(SectionKind::Program, 3, "program.3", vec![])
        .unwrap();
    let e = w
        .add_section(SectionKind::Program, 3, "again", vec![])
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("there is already a Program section with index 3"),
        "{e}"
    );
    w.add_section(SectionKind::Program, 4, "program.4", vec![])
        .unwrap();
    assert_eq!(w.section_count(), 2);
    // A name of exactly 24 bytes, multi-byte UTF-8 included, fits.
    w.add_section(SectionKind::Strings, 0, "abcdefghijklmnopqrstuvwx", vec![])
        .unwrap();
    w.add_section(SectionKind::Metadata, 0, "ééééééééééééé", vec![])
        .unwrap_err();
    w.add_section(SectionKind::Metadata, 0, "éééééééééééé", vec![])
        .unwrap();
    let a = Artifact::from_bytes(&w.to_bytes().unwrap()).unwrap();
    assert_eq!(
        a.find(SectionKind::Metadata, 0).unwrap().name,
        "éééééééééééé"
    );
}

#[test]
fn empty_sections_are_kept() {
    let mut w = ArtifactWriter::new(Arch::Generic);
    let e0 = w
        .add_section(SectionKind::Strings, 0, "empty", vec![])
        .unwrap();
    w.add_section(SectionKind::Metadata, 0, "m", vec![1u8])
        .unwrap();
    let e1 = w
        .add_section(SectionKind::Strings, 1, "empty.last", vec![])
        .unwrap();
    let a = Artifact::from_bytes(&w.to_bytes().unwrap()).unwrap();
    assert!(a.section_bytes(e0).unwrap().is_empty());
    assert!(a.section_f32(e1).unwrap().is_empty());
}

#[test]
fn open_refuses_short_and_missing_files_naming_them() {
    let dir = TestDir::new("short");
    let path = dir.path("empty.kann");
    std::fs::write(&path, b"").unwrap();
    let e = Artifact::open(&path).unwrap_err();
    assert!(
        matches!(e.root(), ArtifactError::TruncatedHeader { actual: 0 }),
        "{e}"
    );
    let missing = dir.path("nope.kann");
    let e = Artifact::open(&missing).unwrap_err();
    assert!(
        e.to_string().starts_with(&missing.display().to_string()),
        "{e}"
    );
    assert!(matches!(e.root(), ArtifactError::Io(_)));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn kind() -> impl Strategy<Value = SectionKind> {
        prop_oneof![
            4 => (1u32..=5).prop_map(SectionKind::from_id),
            1 => (6u32..100_000).prop_map(SectionKind::Unknown),
        ]
    }

    #[derive(Debug, Clone)]
    struct Spec {
        kind: SectionKind,
        name: String,
        align: u64,
        data: Vec<u8>,
    }

    fn spec() -> impl Strategy<Value = Spec> {
        (
            kind(),
            "[a-z0-9._-]{1,24}",
            prop::sample::select(vec![1u64, 64, 128, 256, 4096]),
            prop::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(kind, name, align, data)| Spec {
                kind,
                name,
                align,
                data,
            })
    }

    fn arch() -> impl Strategy<Value = Arch> {
        prop::sample::select(Arch::KNOWN.to_vec())
    }

    fn build(arch: Arch, extra: u64, specs: &[Spec]) -> Vec<u8> {
        let mut w = ArtifactWriter::new(arch);
        w.require_features(FeatureSet::from_bits(extra));
        for (i, s) in specs.iter().enumerate() {
            // The index keeps (kind, index) unique.
            w.add_section_aligned(s.kind, i as u32, &s.name, s.align, s.data.clone())
                .unwrap();
        }
        w.to_bytes().unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn random_sections_round_trip(arch in arch(), extra in any::<u64>(), specs in prop::collection::vec(spec(), 0..8)) {
            let bytes = build(arch, extra, &specs);
            let a = Artifact::from_bytes(&bytes).unwrap();
            prop_assert_eq!(a.arch(), arch);
            prop_assert_eq!(a.required_features(), arch.required_features().union(FeatureSet::from_bits(extra)));
            prop_assert_eq!(a.sections().len(), specs.len());
            for (s, info) in specs.iter().zip(a.sections()) {
                prop_assert_eq!(info.kind, s.kind);
                prop_assert_eq!(&info.name, &s.name);
                prop_assert_eq!(info.offset % s.align.max(64), 0);
                prop_assert_eq!(a.section_bytes(info.id).unwrap(), &s.data[..]);
                if s.data.len() % 4 == 0 {
                    let floats = a.section_f32(info.id).unwrap();
                    prop_assert_eq!(floats.len() * 4, s.data.len());
                    if let Some(f) = floats.first() {
                        prop_assert_eq!(f.to_le_bytes(), [s.data[0], s.data[1], s.data[2], s.data[3]]);
                    }
                }
            }
        }

        #[test]
        fn any_single_byte_change_is_refused(specs in prop::collection::vec(spec(), 1..5), pos in any::<prop::sample::Index>(), mask in 1u8..=255) {
            let mut bytes = build(Arch::Generic, 0, &specs);
            let p = pos.index(bytes.len());
            bytes[p] ^= mask;
            let e = Artifact::from_bytes(&bytes).unwrap_err();
            prop_assert!(!e.to_string().contains('\n'));
        }

        #[test]
        fn any_truncation_or_extension_is_refused(specs in prop::collection::vec(spec(), 0..5), cut in any::<prop::sample::Index>(), extra in 1usize..100) {
            let bytes = build(Arch::X86_64V4, 0, &specs);
            let c = cut.index(bytes.len());
            prop_assert!(Artifact::from_bytes(&bytes[..c]).is_err());
            let mut longer = bytes.clone();
            longer.resize(bytes.len() + extra, 0);
            prop_assert!(Artifact::from_bytes(&longer).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(junk in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = Artifact::from_bytes(&junk);
            // The same junk behind a valid magic and version.
            let mut b = b"KANN\0ART\x01\x00\x00\x00".to_vec();
            b.extend_from_slice(&junk);
            let _ = Artifact::from_bytes(&b);
        }

        #[test]
        fn junk_table_behind_a_valid_header_never_panics(count in 0u32..6, table in prop::collection::vec(any::<u8>(), 0..400), tail in 0usize..300) {
            // Header and table checksums made right, so the entry checks run.
            let mut b = vec![0u8; 64];
            b[..8].copy_from_slice(b"KANN\0ART");
            b[8..10].copy_from_slice(&1u16.to_le_bytes());
            b[20..24].copy_from_slice(&count.to_le_bytes());
            set_u64(&mut b, 32, 64);
            let mut t = table.clone();
            t.resize(count as usize * ENTRY_LEN, 0);
            b.extend_from_slice(&t);
            b.resize(b.len() + tail, 0);
            let len = b.len() as u64;
            set_u64(&mut b, 40, len);
            set_u64(&mut b, 48, checksum(&t));
            reseal_header(&mut b);
            let _ = Artifact::from_bytes(&b);
        }
    }

    #[test]
    fn random_artifacts_round_trip_through_files() {
        let dir = TestDir::new("prop");
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(16));
        runner
            .run(
                &(arch(), prop::collection::vec(spec(), 0..6)),
                |(arch, specs)| {
                    let path = dir.path("r.kann");
                    let bytes = build(arch, 0, &specs);
                    std::fs::write(dir.path("expected"), &bytes).unwrap();
                    let mut w = ArtifactWriter::new(arch);
                    for (i, s) in specs.iter().enumerate() {
                        w.add_section_aligned(s.kind, i as u32, &s.name, s.align, &s.data[..])
                            .unwrap();
                    }
                    w.write_to(&path).unwrap();
                    let a = Artifact::open(&path).unwrap();
                    prop_assert_eq!(a.as_bytes(), &bytes[..]);
                    Ok(())
                },
            )
            .unwrap();
    }
}

/// The byte layout of docs/artifact-format.md, pinned: a change here is a
/// format change and needs a version decision.
#[test]
fn the_byte_layout_is_as_documented() {
    let mut w = ArtifactWriter::new(Arch::X86_64V4);
    w.require_features(Feature::Avx512vnni.into());
    w.add_section(SectionKind::Program, 3, "program.3", vec![0xEEu8; 10])
        .unwrap();
    let b = w.to_bytes().unwrap();
    let u16_at = |at: usize| u16::from_le_bytes(b[at..at + 2].try_into().unwrap());
    let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    assert_eq!(&b[0..8], b"KANN\0ART");
    assert_eq!((u16_at(8), u16_at(10)), (1, 0));
    assert_eq!(u32_at(12), 0); // flags
    assert_eq!(u32_at(16), 2); // x86-64-v4
    assert_eq!(u32_at(20), 1); // section count
    assert_eq!(u64_at(24), 0b1_1111_1111); // avx..avx512vl + avx512vnni (bits 0-8); not avx512bf16
    assert_eq!(u64_at(24) & (1 << 9), 0);
    assert_eq!(u64_at(32), 64); // table offset
    assert_eq!(u64_at(40), 128 + 10); // file length
    assert_eq!(u64_at(48), checksum(&b[64..128]));
    assert_eq!(u64_at(56), checksum(&b[0..56]));
    // The one entry.
    let e = 64;
    assert_eq!(u32_at(e), 2); // Program
    assert_eq!(u32_at(e + 4), 3); // index
    assert_eq!(u64_at(e + 8), 128); // offset
    assert_eq!(u64_at(e + 16), 10); // length
    assert_eq!(u64_at(e + 24), checksum(&[0xEE; 10]));
    assert_eq!(b[e + 32], 6); // log2 of the 64-byte alignment
    assert_eq!(&b[e + 33..e + 40], &[0; 7]); // reserved, flags
    assert_eq!(&b[e + 40..e + 49], b"program.3");
    assert_eq!(&b[e + 49..e + 64], &[0; 15]);
    assert_eq!(&b[128..], &[0xEE; 10]);
}

#[test]
fn an_artifact_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Artifact>();
    let a = std::sync::Arc::new(Artifact::from_bytes(&sample()).unwrap());
    let w = a.find(SectionKind::Weights, 0).unwrap().id;
    let sums: Vec<f32> = (0..2)
        .map(|_| {
            let a = a.clone();
            std::thread::spawn(move || a.section_f32(w).unwrap()[..4].iter().sum())
        })
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(sums, [1.75, 1.75]);
}
