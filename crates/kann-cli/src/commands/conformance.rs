use anyhow::Context;
use kann_conformance::{counts, discover, read_allow_list, run_test_mode, test_name, Mode, Outcome, TestResult};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One line per test: the reference verdict, then the compiled one when asked.
fn line(r: &TestResult) -> String {
    let verdict = |o: &Outcome| match o {
        Outcome::Pass { max_abs_err } => format!("pass  (max abs err {max_abs_err:.2e})"),
        Outcome::Fail { reason } => format!("FAIL  {reason}"),
        Outcome::Skip { cause, .. } => format!("skip  {cause}"),
    };
    match &r.compiled {
        None => {
            let v = verdict(&r.outcome);
            let (head, rest) = v.split_once("  ").unwrap_or((&v, ""));
            format!("{head}  {}  {rest}", r.name)
        }
        Some(c) => format!("{:<4}  {}  reference: {}  compiled: {}", status(r), r.name, verdict(&r.outcome), verdict(c)),
    }
}

/// The test's overall status word: FAIL if either path failed.
fn status(r: &TestResult) -> &'static str {
    let word = |o: &Outcome| match o {
        Outcome::Pass { .. } => 0,
        Outcome::Skip { .. } => 1,
        Outcome::Fail { .. } => 2,
    };
    match word(&r.outcome).max(r.compiled.as_ref().map_or(0, word)) {
        0 => "pass",
        1 => "skip",
        _ => "FAIL",
    }
}

fn failed(r: &TestResult) -> bool {
    status(r) == "FAIL"
}

pub fn run(dir: Option<PathBuf>, filter: Option<String>, json: Option<PathBuf>, allow_list: Option<PathBuf>, quiet: bool, compiled: Option<usize>) -> anyhow::Result<i32> {
    let dir = dir.unwrap_or_else(kann_conformance::default_data_dir);
    if !dir.is_dir() {
        anyhow::bail!("{} does not exist; fetch the ONNX test data with scripts/fetch-onnx-data.sh", dir.display());
    }
    let re = filter.as_deref().map(regex::Regex::new).transpose().context("--filter is not a valid regular expression")?;
    let tests: Vec<PathBuf> = discover(&dir).with_context(|| format!("cannot list {}", dir.display()))?.into_iter().filter(|t| re.as_ref().is_none_or(|re| re.is_match(&test_name(t)))).collect();
    let mut results = Vec::with_capacity(tests.len());
    for t in &tests {
        let r = run_test_mode(t, Mode { compiled });
        if !quiet || failed(&r) {
            println!("{}", line(&r));
        }
        results.push(r);
    }
    let (p, f, s) = counts(&results);
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&results)?).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let compiled_failures = results.iter().filter(|r| matches!(r.compiled, Some(Outcome::Fail { .. }))).count();
    let mut code = if f > 0 || compiled_failures > 0 { 1 } else { 0 };
    if let Some(list) = allow_list {
        let must = read_allow_list(&list).with_context(|| format!("cannot read allow-list {}", list.display()))?;
        // In compiled mode the list names tests whose compiled run must pass.
        let status: BTreeMap<&str, &Outcome> = results.iter().map(|r| (r.name.as_str(), r.compiled.as_ref().unwrap_or(&r.outcome))).collect();
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
        let newly: Vec<&str> = results.iter().filter(|r| matches!(status.get(r.name.as_str()), Some(Outcome::Pass { .. })) && !must.contains(&r.name)).map(|r| r.name.as_str()).collect();
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
    if compiled.is_some() {
        let mut ckinds: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &results {
            if let Some(Outcome::Skip { kinds: k, .. }) = &r.compiled {
                for kind in k {
                    *ckinds.entry(kind.as_str()).or_default() += 1;
                }
            }
        }
        let mut by_count: Vec<_> = ckinds.into_iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        if !by_count.is_empty() {
            println!("compiled skip causes (tests): {}", by_count.iter().map(|(k, n)| format!("{k} ({n})")).collect::<Vec<_>>().join(", "));
        }
        let cp = results.iter().filter(|r| matches!(r.compiled, Some(Outcome::Pass { .. }))).count();
        println!("compiled: {cp} passed, {compiled_failures} failed, {} skipped", results.len() - cp - compiled_failures);
    }
    println!("{p} passed, {f} failed, {s} skipped");
    Ok(code)
}
