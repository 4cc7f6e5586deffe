//! SUPPORTED-OPS.md is generated from the registry and must not go stale.

#[test]
fn supported_ops_md_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../SUPPORTED-OPS.md");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = kann_onnx::Registry::standard().markdown();
    assert!(on_disk == generated, "SUPPORTED-OPS.md is stale: regenerate it with `cargo run -p kann-cli -- supported-ops --markdown > SUPPORTED-OPS.md`");
}
