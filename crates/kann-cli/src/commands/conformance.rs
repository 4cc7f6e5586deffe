use anyhow::Context;
use kann_conformance::{counts, discover, read_allow_list, run_test, test_name, Outcome};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub fn run(dir: Option<PathBuf>, filter: Option<String>, json: Option<PathBuf>, allow_list: Option<PathBuf>, quiet: bool) -> anyhow::Result<i32> {
    let dir = dir.unwrap_or_else(kann_conformance::default_data_dir);
    if !dir.is_dir() {
        anyhow::bail!("{} does not exist; fetch the ONNX test data with scripts/fetch-onnx-data.sh", dir.display());
    }
    let re = filter.as_deref().map(regex::Regex::new).transpose().context("--filter is not a valid regular expression")?;
    let tests: Vec<PathBuf> = discover(&dir).with_context(|| format!("cannot list {}", dir.display()))?.into_iter().filter(|t| re.as_ref().is_none_or(|re| re.is_match(&test_name(t)))).collect();
    let mut results = Vec::with_capacity(tests.len());
    for t in &tests {
        let r = run_test(t);
        let line = match &r.outcome {
            Outcome::Pass { max_abs_err } => format!("pass  {}  (max abs err {max_abs_err:.2e})", r.name),
            Outcome::Fail { reason } => format!("FAIL  {}  {reason}", r.name),
            Outcome::Skip { cause, .. } => format!("skip  {}  {cause}", r.name),
        };
        if !quiet || matches!(r.outcome, Outcome::Fail { .. }) {
            println!("{line}");
        }
        results.push(r);
    }
    let (p, f, s) = counts(&results);
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&results)?).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut code = if f > 0 { 1 } else { 0 };
    if let Some(list) = allow_list {
        let must = read_allow_list(&list).with_context(|| format!("cannot read allow-list {}", list.display()))?;
        let status: BTreeMap<&str, &Outcome> = results.iter().map(|r| (r.name.as_str(), &r.outcome)).collect();
        let mut missing = 0;
        for name in &must {
            match status.get(name.as_str()) {
                Some(Outcome::Pass { .. }) => {}
                Some(o) => {
                    missing += 1;
                    println!("allow-list: {name} is listed but did not pass: {o:?}");
                }
                None if re.is_none() => {
                    missing += 1;
                    println!("allow-list: {name} is listed but was not found");
                }
                None => {}
            }
        }
        let newly: Vec<&str> = results.iter().filter(|r| matches!(r.outcome, Outcome::Pass { .. }) && !must.contains(&r.name)).map(|r| r.name.as_str()).collect();
        if !newly.is_empty() {
            println!("allow-list: {} passing tests are not listed yet (add them): {}", newly.len(), newly.join(" "));
        }
        if missing > 0 {
            code = 1;
        }
    }
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &results {
        if let Outcome::Skip { kinds: k, .. } = &r.outcome {
            for kind in k {
                *kinds.entry(kind.as_str()).or_default() += 1;
            }
        }
    }
    if !kinds.is_empty() {
        let mut by_count: Vec<_> = kinds.into_iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        println!("skip causes (tests): {}", by_count.iter().map(|(k, n)| format!("{k} ({n})")).collect::<Vec<_>>().join(", "));
    }
    println!("{p} passed, {f} failed, {s} skipped");
    Ok(code)
}
