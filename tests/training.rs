//! End-to-end training on the embedded synthetic data, through the `train` library:
//! it learns, its checkpoints reload exactly, resuming equals not stopping, divergence stops
//! cleanly.

use burn::prelude::*;
use data::{Batcher, ImageSet};
use model::SplitModel;
use train::config::OptimizerConfig;
use train::device::Cpu;
use train::{RunDir, TrainConfig, TrainError, Weights, dataset};

type Inner = burn::backend::Flex;

fn config(epochs: usize, count: usize, lr: f64) -> TrainConfig {
    TrainConfig::parse(
        &format!(
            r#"
            epochs = {epochs}
            batch_size = 16
            seed = 3
            [model]
            name = "cifar_resnet"
            depth = 8
            width = 8
            [data]
            source = "shapes"
            count = {count}
            validation = 0.2
            image_size = [16, 16]
            augmentation = {{ horizontal_flip = true }}
            [optimizer]
            name = "adam"
            lr = {lr}
            "#
        ),
        "test config",
    )
    .unwrap()
}

fn train(
    config: &TrainConfig,
    dir: &std::path::Path,
    resume: bool,
) -> Result<train::Summary, TrainError> {
    let data = dataset::load(&config.data, config.seed, &()).unwrap();
    let run = if resume {
        RunDir::open(dir)?
    } else {
        RunDir::create(dir, config, data.class_names())?
    };
    train::fit::<Cpu>(
        config,
        &data.train,
        &data.validation,
        None,
        &run,
        resume,
        &Default::default(),
        &mut (),
    )
}

fn logits(run: &RunDir, weights: Weights, images: &ImageSet, config: &TrainConfig) -> TensorData {
    let device = Default::default();
    let model = run.load_model::<Inner>(weights, &device).unwrap();
    let batcher = Batcher {
        image_size: config.data.image_size,
        normalization: config.normalization(),
        augmentation: Default::default(),
        seed: 0,
    };
    let samples: Vec<_> = images.samples.iter().enumerate().take(8).collect();
    let (x, _) = batcher.batch(&samples, 0).to_tensors::<Inner>(&device);
    model.forward(x).into_data()
}

fn metrics_without_time(run: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    text.lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

/// burn draws every random number (initialisations, dropout) from one generator per process,
/// and these tests run in one process: each holds this while it trains or loads, so that no
/// other test draws in the middle of its run and runs meant to be equal stay equal.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn a_short_run_learns_well_above_chance_on_held_out_images() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let config = config(6, 1500, 3e-3);
    let summary = train(&config, dir.path(), false).unwrap();
    // Four classes: chance is 25%.
    assert!(
        summary.best_val_acc >= 0.6,
        "best validation accuracy {}",
        summary.best_val_acc
    );
    let rows = metrics_without_time(dir.path());
    assert_eq!(rows.len(), 7, "header + one row per epoch: {rows:?}");
    assert!(dir.path().join("best/model.mpk").is_file());
    assert!(
        dir.path()
            .join("checkpoints/epoch-0006/optimizer.mpk")
            .is_file()
    );
}

#[test]
fn resuming_gives_the_same_model_as_an_uninterrupted_run() {
    let _serial = serial();
    let straight = tempfile::tempdir().unwrap();
    let resumed = tempfile::tempdir().unwrap();
    train(&config(2, 160, 3e-3), straight.path(), false).unwrap();
    train(&config(1, 160, 3e-3), resumed.path(), false).unwrap();
    // The interrupted run's folder says 1 epoch; resuming it with 2 must finish the same way.
    let summary = train(&config(2, 160, 3e-3), resumed.path(), true).unwrap();
    assert_eq!(summary.first_epoch, 2);

    let config = config(2, 160, 3e-3);
    let images = data::shapes::generate(8, 16, 99);
    let a = logits(
        &RunDir::open(straight.path()).unwrap(),
        Weights::Last,
        &images,
        &config,
    );
    let b = logits(
        &RunDir::open(resumed.path()).unwrap(),
        Weights::Last,
        &images,
        &config,
    );
    a.assert_approx_eq::<f32>(&b, burn::tensor::Tolerance::absolute(1e-5));
    assert_eq!(
        metrics_without_time(straight.path()),
        metrics_without_time(resumed.path())
    );
}

#[test]
fn a_checkpoint_reloads_to_identical_logits() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let config = config(1, 64, 3e-3);
    let class_names: Vec<String> = data::shapes::CLASS_NAMES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let run = RunDir::create(dir.path(), &config, &class_names).unwrap();
    let device = Default::default();
    let model = config.model_spec(4).init::<Inner>(&device).unwrap();
    let images = data::shapes::generate(8, 16, 5);
    let batcher = Batcher {
        image_size: [16, 16],
        normalization: Default::default(),
        augmentation: Default::default(),
        seed: 0,
    };
    let samples: Vec<_> = images.samples.iter().enumerate().collect();
    let (x, _) = batcher.batch(&samples, 0).to_tensors::<Inner>(&device);
    let before = model.forward(x).into_data();

    let state = train::run_dir::CheckpointState {
        epoch: 1,
        val_acc: 0.5,
        best_val_acc: 0.5,
        best_epoch: 1,
    };
    run.save_checkpoint(&model, model.clone().into_record(), &state)
        .unwrap();
    assert_eq!(before, logits(&run, Weights::Best, &images, &config));
    assert_eq!(before, logits(&run, Weights::Epoch(1), &images, &config));
}

#[test]
fn divergence_stops_with_a_clear_error_and_keeps_the_last_checkpoint() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let sgd = |epochs, lr| {
        let mut c = config(epochs, 96, 3e-3);
        c.optimizer = OptimizerConfig::Sgd {
            lr,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        };
        c
    };
    train(&sgd(1, 0.01), dir.path(), false).unwrap();
    // Rewrite the saved config with an absurd learning rate, then resume.
    let wild = sgd(4, 1e300);
    std::fs::write(dir.path().join("config.toml"), wild.to_toml()).unwrap();
    let err = train(&wild, dir.path(), true).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, TrainError::Diverged { .. }), "{message}");
    assert!(
        message.contains("checkpoint of epoch 1 is intact"),
        "{message}"
    );
    let run = RunDir::open(dir.path()).unwrap();
    assert_eq!(run.last_checkpoint().unwrap().unwrap().0, 1);
    run.load_model::<Inner>(Weights::Last, &Default::default())
        .unwrap();
}

#[test]
fn a_damaged_checkpoint_is_an_error_not_a_panic() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    train(&config(1, 64, 3e-3), dir.path(), false).unwrap();
    let best = dir.path().join("best/model.mpk");
    let whole = std::fs::read(&best).unwrap();
    std::fs::write(&best, b"garbage").unwrap();
    let run = RunDir::open(dir.path()).unwrap();
    let load = || {
        run.load_model::<Inner>(Weights::Best, &Default::default())
            .unwrap_err()
            .to_string()
    };
    let err = load();
    assert!(
        err.contains("best/model.mpk") && err.contains("damaged"),
        "{err}"
    );
    // Cut short, as by a crash while writing: said so, without burn's hint about old formats.
    std::fs::write(&best, &whole[..whole.len() / 2]).unwrap();
    let err = load();
    assert!(
        err.contains("is cut short") && !err.contains("0.14"),
        "{err}"
    );
}

/// Circles and squares only: a two-class set for the binary head.
fn circles_and_squares(count: usize, seed: u64) -> ImageSet {
    let mut set = data::shapes::generate(count, 16, seed);
    set.samples.retain(|s| s.label < 2);
    set.class_names.truncate(2);
    set
}

#[test]
fn a_binary_head_learns_and_its_checkpoint_has_one_output() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(5, 64, 3e-3);
    config.model.head = model::Head::Binary;
    let (train_set, validation) = (circles_and_squares(800, 1), circles_and_squares(200, 2));
    let run = RunDir::create(dir.path(), &config, &train_set.class_names).unwrap();
    let summary = train::fit::<Cpu>(
        &config,
        &train_set,
        &validation,
        None,
        &run,
        false,
        &Default::default(),
        &mut (),
    )
    .unwrap();
    // Two classes: chance is 50%.
    assert!(summary.best_val_acc >= 0.8, "{}", summary.best_val_acc);
    let outputs = logits(&run, Weights::Best, &validation, &config);
    assert_eq!(outputs.shape.to_vec(), [8, 1]);
    // The loss in metrics.csv is binary cross-entropy of σ(z): below log 2 once it learns.
    let rows = metrics_without_time(dir.path());
    let last: Vec<f64> = rows[5].split(',').filter_map(|v| v.parse().ok()).collect();
    assert!(last[1] < std::f64::consts::LN_2, "{rows:?}");
}

#[test]
fn a_binary_head_needs_two_classes() {
    let _serial = serial();
    let mut config = config(1, 64, 3e-3);
    config.model.head = model::Head::Binary;
    let err = config.model_spec(4).validate().unwrap_err();
    assert!(err.contains("binary head classifies 2 classes"), "{err}");
}
