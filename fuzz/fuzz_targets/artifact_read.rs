//! Fuzzes the `.kann` reader: any byte string must give an artifact or an
//! error, and every section of an accepted artifact must be viewable.
#![no_main]

use kann_artifact::Artifact;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(a) = Artifact::from_bytes(data) else { return };
    for s in a.sections() {
        let _ = a.section_bytes(s.id);
        let _ = a.section_f32(s.id);
    }
});
