//! Fuzzes the `.kann` writer and reader together. Random bytes alone never get
//! past the header checksum, so the input also drives the construction of a
//! valid artifact (section kinds, names, payloads) which must read back equal,
//! and then a byte flip or a cut at an input-chosen place, which must be
//! refused. Raw input is tried as an artifact as well.
#![no_main]

use kann_artifact::{Arch, Artifact, ArtifactWriter, SectionKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = Artifact::from_bytes(data) {
        for s in a.sections() {
            let _ = a.section_bytes(s.id);
            let _ = a.section_f32(s.id);
        }
    }
    if data.len() < 4 {
        return;
    }
    let (head, rest) = data.split_at(4);
    let n_sections = 1 + head[0] as usize % 6;
    let chunk = rest.len() / n_sections;
    let mut w = ArtifactWriter::new(Arch::Generic);
    let mut expected = Vec::new();
    for i in 0..n_sections {
        let payload = &rest[i * chunk..(i + 1) * chunk];
        let kind = match (head[1] as usize + i) % 6 {
            0 => SectionKind::Metadata,
            1 => SectionKind::Program,
            2 => SectionKind::MemoryPlan,
            3 => SectionKind::Weights,
            4 => SectionKind::Strings,
            _ => SectionKind::Unknown(100 + i as u32),
        };
        let name = format!("s{i}");
        if w.add_section(kind, i as u32, &name, payload).is_ok() {
            expected.push(payload.to_vec());
        }
    }
    let Ok(bytes) = w.to_bytes() else { return };
    let a = Artifact::from_bytes(&bytes).expect("a written artifact reads back");
    let got: Vec<Vec<u8>> = a.sections().iter().map(|s| a.section_bytes(s.id).expect("section").to_vec()).collect();
    assert_eq!(got, expected, "round trip changed the sections");

    let at = u16::from_le_bytes([head[2], head[3]]) as usize % bytes.len();
    let mut flipped = bytes.clone();
    flipped[at] ^= 1 | head[2];
    assert!(Artifact::from_bytes(&flipped).is_err(), "a flipped byte at {at} was accepted");
    assert!(Artifact::from_bytes(&bytes[..at]).is_err(), "a cut at {at} was accepted");
});
