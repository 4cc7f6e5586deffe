use kann_onnx::Registry;

pub fn run(markdown: bool) -> anyhow::Result<i32> {
    let reg = Registry::standard();
    if markdown {
        print!("{}", reg.markdown());
    } else {
        for r in reg.rows() {
            println!("{:<24} opsets {}-{}  {}", r.op_type, r.since, r.until, r.dtypes);
        }
    }
    Ok(0)
}
