//! `explain` on a run trained here: held-out accuracy, predictions for files, clear errors.

use std::path::Path;
use std::process::{Command, Output};

use train::{RunDir, TrainConfig, dataset};

const CONFIG: &str = r#"
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

fn explain(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_explain"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

#[test]
fn reports_held_out_accuracy_and_predicts_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig::parse(CONFIG, "test").unwrap();
    let data = dataset::load(&config.data, config.seed, &()).unwrap();
    let run_path = dir.path().join("runs/shapes-001");
    let run = RunDir::create(&run_path, &config, data.class_names()).unwrap();
    let summary = train::fit::<train::device::Cpu>(
        &config,
        &data.train,
        &data.validation,
        None,
        &run,
        false,
        &Default::default(),
        &mut (),
    )
    .unwrap();

    // No arguments: the latest run under ./runs, its validation split.
    let out = explain(&[], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = format!("{:.2}%", 100.0 * summary.best_val_acc);
    assert!(
        stdout.contains("held-out images correct") && stdout.contains(&expected),
        "{stdout} vs {expected}"
    );
    assert!(stdout.contains("triangle:"), "{stdout}");

    // A file: the validation image of a known class, written as PNG.
    let sample = &data.validation.samples[0];
    let file = dir.path().join("shape.png");
    image::RgbImage::from_raw(16, 16, sample.pixels.clone())
        .unwrap()
        .save(&file)
        .unwrap();
    let out = explain(&["--image", "shape.png", "--top-k", "4"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("shape.png: ") && stdout.matches('%').count() == 4,
        "{stdout}"
    );
}

#[test]
fn mistakes_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (&[], "holds no run"),
        (&["--run", "."], "is not a run folder"),
        (
            &["--weights", "newest"],
            "use best, last or an epoch number",
        ),
    ];
    std::fs::create_dir(dir.path().join("runs")).unwrap();
    for (args, expected) in cases {
        let out = explain(args, dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(expected),
            "{args:?}: {err}"
        );
    }
}
