//! Replays what the fuzzers found (fuzz/regressions/<target>/*) through the same entry points
//! as the fuzz targets, on stable, in every `cargo test`: each input must end in a result or an
//! error, never a panic. Also checks that the committed seeds are accepted, so that the fuzz
//! targets start from files that reach the parsers' depths.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

fn files(folder: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn fuzz_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz"))
}

#[test]
fn every_input_the_fuzzers_found_is_an_error_not_a_crash() {
    let mut replayed = 0;
    let mut crashes = Vec::new();
    for (target, entry) in fuzzing::TARGETS {
        for file in files(&fuzz_dir().join("regressions").join(target)) {
            let bytes = std::fs::read(&file).unwrap();
            if catch_unwind(AssertUnwindSafe(|| entry(&bytes))).is_err() {
                crashes.push(file.display().to_string());
            }
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} fuzzer findings");
    assert!(crashes.is_empty(), "these inputs panic: {crashes:#?}");
}

#[test]
fn the_committed_seeds_are_accepted() {
    let mut seen = 0;
    for (target, entry) in fuzzing::TARGETS {
        for file in files(&fuzz_dir().join("seeds").join(target)) {
            let bytes = std::fs::read(&file).unwrap();
            entry(&bytes).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            seen += 1;
        }
    }
    assert!(seen >= 3, "the PyTorch seeds are committed");
    fuzzing::checkpoint(&fuzzing::checkpoint_seed()).unwrap();
}

/// The first finding (safetensors_weights, 2026-12-02): a running mean stored as U32 was poured
/// into a float parameter and corrupted memory (SIGSEGV when the model was dropped). It is
/// refused by name now.
#[test]
fn integer_data_for_a_float_weight_is_refused_by_name() {
    let folder = fuzz_dir().join("regressions/safetensors_weights");
    let file = files(&folder)
        .into_iter()
        .find(|f| {
            f.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("crash-1d27e8")
        })
        .expect("the committed finding");
    let err = fuzzing::torch_weights(&std::fs::read(file).unwrap()).unwrap_err();
    assert!(
        err.contains("layer1.0.bn1.running_mean") && err.contains("U32"),
        "{err}"
    );
}
