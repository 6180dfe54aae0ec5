//! Every checked-in corpus input, and a few thousand seeded mutations of them, through every
//! target: fuzzing's findings stay fixed, and `make test` exercises the targets without
//! nightly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use banger_fuzz_targets::TARGETS;
use banger_fuzz_targets::mutate::{Rng, corpus, mutate};

fn corpus_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

#[test]
fn every_corpus_input_and_its_mutations_pass_every_target() {
    for (name, target) in TARGETS {
        let inputs = corpus(&corpus_dir(), name);
        assert!(
            !inputs.is_empty(),
            "fuzz/corpus/{name} is empty: run `cargo run -p banger-fuzz-targets --bin banger-fuzz-stable -- seed`"
        );
        for input in &inputs {
            target(input);
        }
        let mut rng = Rng::new(name.len() as u64 * 7919);
        let rounds = if matches!(name, "agent_host" | "deb" | "oci_layer") {
            300
        } else {
            3000
        };
        for _ in 0..rounds {
            let a = &inputs[rng.below(inputs.len())];
            let b = &inputs[rng.below(inputs.len())];
            target(&mutate(&mut rng, a, b, 16 * 1024));
        }
    }
}
