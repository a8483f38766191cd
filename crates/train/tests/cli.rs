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
    // A run you can look at: curves, the best checkpoint's confusion matrix, one page.
    let report = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        report.contains("curves.svg") && report.contains("confusion.svg"),
        "{report}"
    );
    assert!(
        std::fs::read_to_string(run.join("curves.svg"))
            .unwrap()
            .starts_with("<svg")
    );
    let confusion = std::fs::read_to_string(run.join("confusion.csv")).unwrap();
    assert_eq!(
        confusion.lines().count(),
        5,
        "a header and 4 classes: {confusion}"
    );

    // A second run gets the next folder; resuming the latest needs no path.
    assert!(
        train(&["--config", "tiny.toml", "-q"], dir.path())
            .status
            .success()
    );
    assert!(dir.path().join("runs/tiny-002/best/model.mpk").is_file());
    let resumed = train(
        &["--resume", "--epochs", "2", "-q", "--tensorboard", "tb"],
        dir.path(),
    );
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("runs/tiny-002"));
    assert!(
        dir.path()
            .join("runs/tiny-002/checkpoints/epoch-0002")
            .is_dir()
    );
    // TensorBoard scalars under the run's name: epoch 1 replayed from metrics.csv, epoch 2
    // appended (the records themselves are checked in train::tensorboard's tests).
    let events: Vec<_> = std::fs::read_dir(dir.path().join("tb/tiny-002"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    let bytes = std::fs::read(&events[0]).unwrap();
    let tags = bytes.windows(14).filter(|w| w == b"accuracy/train").count();
    assert_eq!(tags, 2, "accuracy/train for epochs 1 and 2");
}

#[test]
fn rescoring_a_run_repeats_its_validation_figures_and_adds_the_training_images() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.toml"), TINY).unwrap();
    let out = train(
        &["--config", "tiny.toml", "--epochs", "2", "--out", "r", "-q"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = train(&["--rescore", "--out", "r"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let rescored = std::fs::read_to_string(dir.path().join("r/rescored.csv")).unwrap();
    let metrics = std::fs::read_to_string(dir.path().join("r/metrics.csv")).unwrap();
    let lines: Vec<&str> = rescored.lines().collect();
    assert_eq!(lines[0], "epoch,val_loss,val_acc,train_loss,train_acc");
    assert_eq!(lines.len(), 3, "{rescored}");
    // The held-out figures are the ones training measured after each epoch.
    for (rescored, trained) in lines[1..].iter().zip(metrics.lines().skip(1)) {
        let r: Vec<&str> = rescored.split(',').collect();
        let t: Vec<&str> = trained.split(',').collect();
        assert_eq!(
            (r[0], r[1], r[2]),
            (t[0], t[3], t[4]),
            "{rescored} vs {trained}"
        );
    }
    let none = train(&["--rescore", "--out", "nowhere"], dir.path());
    assert!(!none.status.success());
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

/// Large enough that an epoch takes a while and a checkpoint (5 MB, fsynced) a good part of it.
const KILLABLE: &str = r#"
epochs = 4
batch_size = 16
seed = 5
[model]
name = "tutorial_cnn"
hidden = [256, 32]
[data]
source = "shapes"
count = 240
validation = 0.25
image_size = [32, 32]
[optimizer]
name = "sgd"
lr = 0.01
momentum = 0.9
"#;

/// metrics.csv without the seconds column.
fn metrics(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

/// The outputs of the run's last checkpoint on a few fixed images.
fn last_outputs(run: &Path) -> burn::tensor::TensorData {
    use model::SplitModel;
    type Inner = burn::backend::Flex;
    let run = train::RunDir::open(run).unwrap();
    let model = run
        .load_model::<Inner>(train::Weights::Last, &Default::default())
        .unwrap();
    let images = data::shapes::generate(4, 32, 77);
    let batcher = data::Batcher {
        image_size: [32, 32],
        normalization: Default::default(),
        augmentation: Default::default(),
        seed: 0,
    };
    let samples: Vec<_> = images.samples.iter().enumerate().collect();
    let (x, _) = batcher
        .batch(&samples, 0)
        .to_tensors::<Inner>(&Default::default());
    model.forward(x).into_data()
}

#[test]
fn a_run_killed_at_any_point_resumes_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k.toml"), KILLABLE).unwrap();
    let started = std::time::Instant::now();
    let reference = train(
        &["--config", "k.toml", "--out", "reference", "-q"],
        dir.path(),
    );
    assert!(reference.status.success(), "{}", stderr(&reference));
    let whole = started.elapsed();
    let want = metrics(&dir.path().join("reference"));
    let want_outputs = last_outputs(&dir.path().join("reference"));

    let points = 7;
    let mut mid_checkpoint = 0;
    for point in 1..=points {
        let out = format!("killed-{point}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_train"))
            .args(["--config", "k.toml", "--out", &out, "-q"])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(whole * point / (points + 1));
        child.kill().unwrap(); // SIGKILL: no destructor, no flush
        child.wait().unwrap();
        let run = dir.path().join(&out);
        let leftovers = walk_names(&run);
        if leftovers
            .iter()
            .any(|n| n.contains(".partial") || n.starts_with(".tmp"))
        {
            mid_checkpoint += 1;
        }
        // Whatever checkpoint is there is whole and loads.
        if let Ok(opened) = train::RunDir::open(&run)
            && opened.last_checkpoint().unwrap().is_some()
        {
            last_outputs(&run);
        }
        let resumed = if run.join("config.toml").is_file() {
            train(&["--resume", "--out", &out, "-q"], dir.path())
        } else {
            // Killed before the run folder was written: nothing to resume.
            let _ = std::fs::remove_dir_all(&run);
            train(&["--config", "k.toml", "--out", &out, "-q"], dir.path())
        };
        assert!(
            resumed.status.success(),
            "point {point}: {}",
            stderr(&resumed)
        );
        assert_eq!(metrics(&run), want, "point {point}: metrics differ");
        last_outputs(&run)
            .assert_approx_eq::<f32>(&want_outputs, burn::tensor::Tolerance::absolute(1e-5));
    }
    eprintln!("{points} kills, {mid_checkpoint} of them while a checkpoint was being written");
}

/// The names of every file and folder under `dir`.
fn walk_names(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        names.push(entry.file_name().to_string_lossy().into_owned());
        if entry.path().is_dir() {
            names.extend(walk_names(&entry.path()));
        }
    }
    names
}

/// A crash while a checkpoint was being written leaves a partial folder and a partial copy of
/// the best model; --resume ignores both and ends where an uninterrupted run ends.
#[test]
fn a_checkpoint_cut_off_mid_write_is_ignored_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let config = KILLABLE.replace("epochs = 4", "epochs = 2");
    std::fs::write(dir.path().join("k.toml"), &config).unwrap();
    let reference = train(
        &["--config", "k.toml", "--out", "reference", "-q"],
        dir.path(),
    );
    assert!(reference.status.success(), "{}", stderr(&reference));
    let once = train(
        &["--config", "k.toml", "--out", "cut", "-q", "--epochs", "1"],
        dir.path(),
    );
    assert!(once.status.success(), "{}", stderr(&once));
    let run = dir.path().join("cut");
    // Epoch 2's checkpoint, half written; its metrics row already appended; best/ mid-copy.
    let partial = run.join("checkpoints/.epoch-0002.partial");
    std::fs::create_dir_all(&partial).unwrap();
    let model = std::fs::read(run.join("checkpoints/epoch-0001/model.mpk")).unwrap();
    std::fs::write(partial.join("model.mpk"), &model[..model.len() / 2]).unwrap();
    let row = metrics(&dir.path().join("reference"))[2].clone() + ",1.00";
    let mut csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    csv.push_str(&(row + "\n"));
    std::fs::write(run.join("metrics.csv"), csv).unwrap();
    std::fs::write(run.join("best/model.mpk.partial"), &model[..100]).unwrap();

    let resumed = train(
        &["--resume", "--out", "cut", "-q", "--epochs", "2"],
        dir.path(),
    );
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(metrics(&run), metrics(&dir.path().join("reference")));
    last_outputs(&run).assert_approx_eq::<f32>(
        &last_outputs(&dir.path().join("reference")),
        burn::tensor::Tolerance::absolute(1e-5),
    );
    assert!(!partial.exists(), "the partial checkpoint is replaced");
}

#[test]
fn the_closing_hint_names_explain_the_way_train_was_started() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.toml"), TINY).unwrap();
    let direct = Command::new(env!("CARGO_BIN_EXE_train"))
        .args(["--config", "tiny.toml", "--out", "d", "-q"])
        .env_remove("CARGO")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&direct.stdout);
    assert!(direct.status.success(), "{}", stderr(&direct));
    assert!(!stdout.contains("cargo run"), "{stdout}");
    assert!(stdout.contains("explain --run d"), "{stdout}");
    let through_cargo = Command::new(env!("CARGO_BIN_EXE_train"))
        .args(["--config", "tiny.toml", "--out", "c", "-q"])
        .env("CARGO", "cargo")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&through_cargo.stdout);
    assert!(
        stdout.contains("cargo run -p explain -- --run c"),
        "{stdout}"
    );
    // What the run said is kept in its folder.
    let console = std::fs::read_to_string(dir.path().join("c/console.log")).unwrap();
    assert!(
        console.contains("epoch   1:") && console.contains("done in"),
        "{console}"
    );
}
