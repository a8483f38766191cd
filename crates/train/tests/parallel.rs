//! Data-parallel training on the CPU: two replicas in one process end with the weights one
//! device reaches on the whole batch (a network without BatchNorm, whose statistics would be
//! each replica's own), and so does a run of two replicas resumed halfway.

use std::path::Path;

use burn::prelude::*;
use burn_flex::Flex;
use model::Network;
use train::device::Cpu;
use train::fit::Sets;
use train::parallel::Plan;
use train::{RunDir, TrainConfig, Weights};

/// A VGG-11 without BatchNorm, narrow, on 32×32 shapes, SGD with momentum.
const CONFIG: &str = r#"
epochs = 3
batch_size = 16
seed = 11
[model]
name = "vgg"
depth = 11
width = 4
hidden = 16
[data]
source = "shapes"
count = 96
validation = 0.25
image_size = [32, 32]
[optimizer]
name = "sgd"
lr = 0.02
momentum = 0.9
"#;

/// See `tests/training.rs`: burn's one random generator per process, and the collective's one
/// server per process, are shared by the tests of this file.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn config(epochs: usize) -> TrainConfig {
    let mut config = TrainConfig::parse(CONFIG, "test").unwrap();
    config.epochs = epochs;
    config
}

/// A fit in this process on `replicas` CPU replicas.
fn fit_in_process(path: &Path, replicas: usize) {
    fit_epochs(path, replicas, 3, false);
}

/// The run at `path` fitted (or resumed) up to `epochs` on `replicas` CPU replicas.
fn fit_epochs(path: &Path, replicas: usize, epochs: usize, resume: bool) {
    let config = config(epochs);
    let data = train::dataset::load(&config.data, config.seed, &()).unwrap();
    let run = match resume {
        true => RunDir::open(path).unwrap(),
        false => RunDir::create(path, &config, data.class_names()).unwrap(),
    };
    let sets = Sets {
        train: &data.train,
        validation: &data.validation,
        test: None,
    };
    let plan = Plan::replicas(replicas);
    let devices = vec![Default::default(); replicas];
    train::fit_parallel::<Cpu>(&config, sets, &run, resume, &devices, &plan, &mut ()).unwrap();
}

fn weights(path: &Path) -> Vec<(String, Vec<f32>)> {
    let network: Network<Flex> = RunDir::open(path)
        .unwrap()
        .load_model(Weights::Last, &Default::default())
        .unwrap();
    let mut out = Vec::new();
    collect(&network, &mut out);
    out
}

fn collect(network: &Network<Flex>, out: &mut Vec<(String, Vec<f32>)>) {
    use burn::module::{ModuleVisitor, Param};
    struct Values<'a>(&'a mut Vec<(String, Vec<f32>)>);
    impl ModuleVisitor<Flex> for Values<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Flex, D>>) {
            let values = param.val().into_data().to_vec::<f32>().unwrap();
            self.0.push((format!("{}", param.id), values));
        }
    }
    network.visit(&mut Values(out));
}

/// The largest difference between two runs' weights, relative to 1 + |w|, and how far the
/// weights moved from each other's start at all (so that equality is not trivial).
fn largest_difference(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f32 {
    assert_eq!(a.len(), b.len(), "the same parameters");
    a.iter()
        .zip(b)
        .flat_map(|((_, x), (_, y))| {
            x.iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs() / (1.0 + p.abs()))
        })
        .fold(0.0, f32::max)
}

#[test]
fn two_replicas_end_where_one_device_does_on_the_whole_batch() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    fit_in_process(&one, 1);
    fit_in_process(&two, 2);
    let gap = largest_difference(&weights(&one), &weights(&two));
    eprintln!("one device vs two replicas: largest relative difference {gap:.2e}");
    assert!(gap <= 1e-5, "the replicas ended {gap} away");
    // Both kept the epochs' rows; the replicas' loss is the whole batch's.
    let rows = |p: &Path| std::fs::read_to_string(p.join("metrics.csv")).unwrap();
    let losses = |text: String| -> Vec<f64> {
        text.lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
            .collect()
    };
    let (a, b) = (losses(rows(&one)), losses(rows(&two)));
    assert_eq!(a.len(), 3);
    for (x, y) in a.iter().zip(&b) {
        assert!(
            (x - y).abs() <= 1e-4 * (1.0 + x.abs()),
            "train loss {x} vs {y}"
        );
    }
}

#[test]
fn a_batch_that_does_not_split_evenly_is_refused() {
    let _serial = serial();
    let plan = Plan::replicas(3);
    let error = plan.share(16).unwrap_err().to_string();
    assert!(
        error.contains("16") && error.contains("3 replicas"),
        "{error}"
    );
}

#[test]
fn replicas_resumed_halfway_end_where_they_would_have() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (whole, halves) = (dir.path().join("whole"), dir.path().join("halves"));
    fit_epochs(&whole, 2, 3, false);
    fit_epochs(&halves, 2, 1, false);
    fit_epochs(&halves, 2, 3, true);
    let gap = largest_difference(&weights(&whole), &weights(&halves));
    assert_eq!(gap, 0.0, "resumed replicas ended {gap} away");
}

/// `train --devices cpu,cpu` from the command line: one run folder, its epochs, and the
/// devices named in what it prints.
#[test]
fn the_command_line_takes_a_list_of_devices() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, CONFIG).unwrap();
    let out = dir.path().join("run");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_train"))
        .args([
            "--config",
            file.to_str().unwrap(),
            "--quiet",
            "--epochs",
            "1",
        ])
        .args(["--devices", "cpu,cpu", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("cpu,cpu"), "{stdout}");
    assert!(
        RunDir::open(&out)
            .unwrap()
            .last_checkpoint()
            .unwrap()
            .is_some()
    );
    // A batch the replicas cannot share evenly is refused before any folder is made.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_train"))
        .args([
            "--config",
            file.to_str().unwrap(),
            "--quiet",
            "--batch-size",
            "15",
        ])
        .args([
            "--devices",
            "cpu,cpu",
            "--out",
            dir.path().join("odd").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("does not split evenly"),
        "{stderr}"
    );
    assert!(!dir.path().join("odd").exists());
}
