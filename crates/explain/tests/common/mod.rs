//! What the end-to-end tests share: a small run trained here, and running `explain`.

use std::path::Path;
use std::process::{Command, Output};

use train::dataset::RunData;
use train::{RunDir, TrainConfig};

/// A small run on the synthetic shapes: a CIFAR ResNet-8 of width 8, three epochs of Adam.
// The browser test trains a run of its own (one that gets some shapes wrong).
#[allow(dead_code)]
pub const SHAPES_RUN: &str = r#"
epochs = 3
batch_size = 16
seed = 2
[model]
name = "cifar_resnet"
depth = 8
width = 8
[data]
source = "shapes"
count = 900
validation = 0.2
image_size = [16, 16]
[optimizer]
name = "adam"
lr = 0.003
"#;

/// Trains `config` on the CPU into a new run folder at `run_path`; `prepare` sees the folder
/// and the data before the first epoch.
pub fn train_run(
    config: &TrainConfig,
    run_path: &Path,
    prepare: impl FnOnce(&RunDir, &RunData),
) -> train::Summary {
    let data = train::dataset::load(&config.data, config.seed, &()).unwrap();
    let run = RunDir::create(run_path, config, data.class_names()).unwrap();
    prepare(&run, &data);
    train::fit::<train::device::Cpu>(
        config,
        &data.train,
        &data.validation,
        None,
        &run,
        false,
        &Default::default(),
        &mut (),
    )
    .unwrap()
}

/// Runs the `explain` binary in `cwd`.
pub fn explain(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_explain"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

/// Fails the test with `explain`'s own error output.
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
