//! The `train` command line: what a user sees on success and on each kind of mistake.

use std::path::Path;
use std::process::{Command, Output};

const TINY: &str = r#"
epochs = 1
batch_size = 8
seed = 1
[model]
name = "tutorial_cnn"
conv_channels = [4, 4, 2]
kernel_sizes = [3, 3, 3]
hidden = [16, 8]
[data]
source = "shapes"
count = 48
validation = 0.25
image_size = [16, 16]
[optimizer]
name = "sgd"
lr = 0.01
"#;

fn train(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_train"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_config_file_run_writes_the_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.toml"), TINY).unwrap();
    let out = train(
        &["--config", "tiny.toml", "--epochs", "2", "-q"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let run = dir.path().join("runs/tiny-001");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("epoch   2:") && stdout.contains("runs/tiny-001"),
        "{stdout}"
    );
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(
        metrics.starts_with("epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n1,"),
        "{metrics}"
    );
    assert_eq!(metrics.lines().count(), 3);
    assert!(
        std::fs::read_to_string(run.join("config.toml"))
            .unwrap()
            .contains("epochs = 2")
    );
    assert_eq!(
        std::fs::read_to_string(run.join("classes.txt")).unwrap(),
        "circle\nsquare\ntriangle\ncross\n"
    );

    // A second run gets the next folder; resuming the latest needs no path.
    assert!(
        train(&["--config", "tiny.toml", "-q"], dir.path())
            .status
            .success()
    );
    assert!(dir.path().join("runs/tiny-002/best/model.mpk").is_file());
    let resumed = train(&["--resume", "--epochs", "2", "-q"], dir.path());
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("runs/tiny-002"));
    assert!(
        dir.path()
            .join("runs/tiny-002/checkpoints/epoch-0002")
            .is_dir()
    );
}

#[test]
fn mistakes_are_one_clear_line_and_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("typo.toml"),
        TINY.replace("batch_size", "batchsize"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("zero.toml"),
        TINY.replace("[16, 16]", "[0, 0]"),
    )
    .unwrap();
    // A folder with one class, and one whose every image is unreadable.
    for (folder, class) in [("one", "cats"), ("corrupt", "dogs"), ("corrupt", "cats")] {
        let class_dir = dir.path().join(folder).join(class);
        std::fs::create_dir_all(&class_dir).unwrap();
        match folder {
            "one" => {
                for i in 0..6 {
                    let image = class_dir.join(format!("{i}.png"));
                    image::RgbImage::new(8, 8).save(image).unwrap();
                }
            }
            _ => std::fs::write(class_dir.join("a.png"), b"\x89PNG not really").unwrap(),
        }
    }
    let cases: [(&[&str], &str); 8] = [
        (
            &["--config", "zero.toml"],
            "each from 1 to 1024, got [0, 0]",
        ),
        (
            &[
                "--config",
                "cats_dogs",
                "--data-dir",
                "one",
                "--out",
                "one-run",
            ],
            "at least two",
        ),
        (
            &["--config", "cats_dogs", "--data-dir", "corrupt"],
            "none of its 2 image files could be read",
        ),
        (&["--config", "typo.toml"], "batchsize"),
        (&["--config", "nope"], "shapes, cifar, cats_dogs"),
        (
            &["--config", "cats_dogs", "--data-dir", "missing"],
            "missing: no such folder",
        ),
        (&["--resume", "--out", "."], "is not a run folder"),
        (
            &["--config", "typo.toml", "--device", "tpu"],
            "use cpu, cuda or cuda:N",
        ),
    ];
    for (args, expected) in cases {
        let out = train(args, dir.path());
        let err = stderr(&out);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    assert!(
        !dir.path().join("one-run").exists(),
        "a refused run leaves no folder behind"
    );
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.toml"), TINY).unwrap();
    let out = train(&["--config", "tiny.toml", "--device", "cuda"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--features cuda"), "{}", stderr(&out));
}

#[test]
fn help_explains_the_configs_and_devices() {
    let out = train(&["--help"], Path::new("."));
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["--config", "cats_dogs", "--resume", "cuda:N", "Examples"] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
}
