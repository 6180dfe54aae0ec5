//! Fuzzing without nightly: each target runs its corpus, then seeded mutations of it for a
//! bounded time. No coverage feedback (use `cargo fuzz` for that, see `make fuzz`), but every
//! input that panics is saved under `fuzz/artifacts/<target>/` and fails the run.
//!
//! ```text
//! banger-fuzz-stable run [--seconds N] [--corpus DIR] [TARGET...]
//! banger-fuzz-stable seed [--corpus DIR]     (writes the seed inputs into the corpora)
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use banger_fuzz_targets::mutate::{Rng, corpus, mutate};
use banger_fuzz_targets::{TARGETS, seeds};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seconds = 10u64;
    let mut dir = PathBuf::from("fuzz/corpus");
    let mut names = Vec::new();
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--seconds" => seconds = iter.next().and_then(|s| s.parse().ok()).unwrap_or(10),
            "--corpus" => dir = iter.next().map(PathBuf::from).unwrap_or(dir),
            name => names.push(name.to_string()),
        }
    }
    match args.first().map(String::as_str) {
        Some("seed") => seed(&dir),
        Some("run") => std::process::exit(run(&dir, &names, Duration::from_secs(seconds))),
        _ => {
            eprintln!(
                "usage: banger-fuzz-stable run [--seconds N] [--corpus DIR] [TARGET...] | seed [--corpus DIR]"
            );
            std::process::exit(2);
        }
    }
}

fn seed(dir: &std::path::Path) {
    for (target, name, bytes) in seeds::all() {
        let path = dir.join(target).join(&name);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if let Err(e) = std::fs::write(&path, bytes) {
            eprintln!("cannot write {}: {e}", path.display());
        }
    }
}

fn run(dir: &std::path::Path, names: &[String], each: Duration) -> i32 {
    let mut failed = 0;
    for (name, target) in TARGETS {
        if !names.is_empty() && !names.iter().any(|n| n == name) {
            continue;
        }
        let inputs = corpus(dir, name);
        let mut rng = Rng::new(0xfeed ^ name.len() as u64);
        let started = Instant::now();
        let mut runs = 0u64;
        let mut crashed = None;
        for input in &inputs {
            if !survives(target, input) {
                crashed = Some(input.clone());
                break;
            }
            runs += 1;
        }
        while crashed.is_none() && started.elapsed() < each && !inputs.is_empty() {
            let a = &inputs[rng.below(inputs.len())];
            let b = &inputs[rng.below(inputs.len())];
            let input = mutate(&mut rng, a, b, 64 * 1024);
            if !survives(target, &input) {
                crashed = Some(input);
            }
            runs += 1;
        }
        match crashed {
            None => println!(
                "{name}: {runs} inputs in {:.1} s, no failure",
                started.elapsed().as_secs_f64()
            ),
            Some(input) => {
                failed += 1;
                let artifacts = dir.parent().unwrap_or(dir).join("artifacts").join(name);
                let _ = std::fs::create_dir_all(&artifacts);
                let path = artifacts.join(format!("crash-{:016x}", fnv(&input)));
                let _ = std::fs::write(&path, &input);
                println!(
                    "{name}: FAILED after {runs} inputs; saved {}",
                    path.display()
                );
            }
        }
    }
    i32::from(failed > 0)
}

fn survives(target: fn(&[u8]), input: &[u8]) -> bool {
    std::panic::catch_unwind(|| target(input)).is_ok()
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
