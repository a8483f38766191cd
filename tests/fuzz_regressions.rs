//! Replays what the fuzzers found (fuzz/regressions/<target>/*) through the same entry points
//! as the fuzz targets, on stable, in every `cargo test`: each input must end in a result or an
//! error, never a panic. Also checks that the generated seeds are accepted, so that the fuzz
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
fn the_generated_seeds_are_accepted() {
    fuzzing::torch_weights(&fuzzing::safetensors_seed()).unwrap();
    fuzzing::checkpoint(&fuzzing::checkpoint_seed()).unwrap();
    fuzzing::onnx_model(&fuzzing::onnx_seed()).unwrap();
}

/// The first finding (safetensors_weights, 2026-12-02): a running mean stored as U32 was poured
/// into a float parameter and corrupted memory (SIGSEGV when the model was dropped). Rebuilt
/// here from the generated seed — one dtype in the header changed, as the fuzzer did — and
/// refused by name now.
#[test]
fn integer_data_for_a_float_weight_is_refused_by_name() {
    let mut bytes = fuzzing::safetensors_seed();
    let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..header_end].to_vec()).unwrap();
    let key = header
        .find("\"layer1.0.bn1.running_mean\"")
        .expect("the tensor");
    let dtype = key + header[key..].find("F32").expect("its dtype");
    bytes[8 + dtype] = b'U';
    let err = fuzzing::torch_weights(&bytes).unwrap_err();
    assert!(
        err.contains("layer1.0.bn1.running_mean") && err.contains("U32"),
        "{err}"
    );
}
