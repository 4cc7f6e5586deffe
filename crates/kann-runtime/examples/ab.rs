//! Two artifacts of one network, timed frame by frame in turns in one
//! process: the way to compare two generate choices on a machine whose speed
//! drifts by tens of percent between processes. Each turn pauses (so the
//! other service's spinning threads park), runs one untimed frame, then one
//! timed; the report gives each artifact's median frame and the steps whose
//! medians differ most.
//!
//! With `AB_TOGGLE=VAR`, B's set-up (`init_device`) and turns run with
//! `VAR=1` set and A's without: a kernel or runtime experiment gated on an
//! environment variable compares against itself with one artifact given twice.
//!
//! `cargo run --release -p kann-runtime --example ab -- A.kann B.kann [FRAMES]`

use kann_runtime::{Device, Service};
use std::collections::HashMap;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [a, b] = [0, 1].map(|i| args.get(i).cloned().ok_or("usage: ab A.kann B.kann [FRAMES]"));
    let frames: usize = args.get(2).map_or(Ok(20), |f| f.parse())?;
    let mut services = [Service::load(a?)?, Service::load(b?)?];
    for (i, s) in services.iter_mut().enumerate() {
        // B's set-up sees the toggle too (a choice made at init_device).
        toggle(i);
        s.init_device(&Device::all())?;
    }
    // Inputs: a fixed pseudo-random pattern of floats in [0, 1).
    let inputs: Vec<Vec<Vec<u8>>> = services.iter().map(|s| s.inputs().iter().map(|t| pattern(t.elements() * t.dtype.size())).collect()).collect();
    let mut outputs: Vec<Vec<Vec<u8>>> = services.iter().map(|s| s.outputs().iter().map(|t| vec![0u8; t.elements() * t.dtype.size()]).collect()).collect();
    let mut totals = [Vec::new(), Vec::new()];
    let mut steps: [HashMap<String, Vec<f64>>; 2] = [HashMap::new(), HashMap::new()];
    for _ in 0..frames {
        for (i, s) in services.iter_mut().enumerate() {
            std::thread::sleep(Duration::from_millis(100));
            toggle(i);
            let ins: Vec<&[u8]> = inputs[i].iter().map(|v| v.as_slice()).collect();
            let mut outs: Vec<&mut [u8]> = outputs[i].iter_mut().map(|v| v.as_mut_slice()).collect();
            s.process_frame(&ins, &mut outs)?;
            let stats = s.process_frame(&ins, &mut outs)?;
            totals[i].push(stats.device.as_secs_f64() * 1e3);
            // A name may hold several steps (a packing step and its GEMM): summed per frame.
            let mut frame: HashMap<String, f64> = HashMap::new();
            for p in s.last_profile().map(|p| p.steps).unwrap_or_default() {
                *frame.entry(p.name.clone()).or_default() += p.max().as_secs_f64() * 1e6;
            }
            for (name, us) in frame {
                steps[i].entry(name).or_default().push(us);
            }
        }
    }
    println!("median frame: A {:.3} ms, B {:.3} ms (B/A {:.3})", median(&totals[0]), median(&totals[1]), median(&totals[1]) / median(&totals[0]));
    // Each turn's B against the A just before it: the machine's slow and fast
    // phases (seconds long) move both frames of a turn together.
    let paired: Vec<f64> = totals[0].iter().zip(&totals[1]).map(|(a, b)| b / a).collect();
    println!("median of the turns' B/A: {:.3}", median(&paired));
    let mut names: Vec<&String> = steps[0].keys().chain(steps[1].keys()).collect();
    names.sort();
    names.dedup();
    let mut rows: Vec<(String, f64, f64)> = names.into_iter().map(|n| (n.clone(), steps[0].get(n).map_or(0.0, |v| median(v)), steps[1].get(n).map_or(0.0, |v| median(v)))).collect();
    let (sum_a, sum_b) = rows.iter().fold((0.0, 0.0), |(a, b), r| (a + r.1, b + r.2));
    println!("sum of the step medians: A {:.3} ms, B {:.3} ms (B/A {:.3})", sum_a / 1e3, sum_b / 1e3, sum_b / sum_a);
    rows.sort_by(|x, y| (y.2 - y.1).abs().total_cmp(&(x.2 - x.1).abs()));
    println!("{:32} {:>10} {:>10} {:>9}", "step", "A µs", "B µs", "B - A");
    // AB_ROWS=N prints N rows (25 by default).
    let shown = std::env::var("AB_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(25);
    for (n, x, y) in rows.iter().take(shown) {
        println!("{n:32} {x:10.1} {y:10.1} {:+9.1}", y - x);
    }
    Ok(())
}

/// With `AB_TOGGLE=VAR`: `VAR=1` for B (`i == 1`), unset for A.
fn toggle(i: usize) {
    if let Some(var) = std::env::var_os("AB_TOGGLE") {
        // SAFETY: no other thread reads the environment meanwhile (the workers are parked).
        unsafe {
            if i == 1 {
                std::env::set_var(&var, "1")
            } else {
                std::env::remove_var(&var)
            }
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// `bytes` bytes of little-endian f32s in [0, 1) from a fixed xorshift.
fn pattern(bytes: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..bytes.div_ceil(4))
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32).to_le_bytes()
        })
        .take(bytes)
        .collect()
}
