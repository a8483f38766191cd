//! Fine-tuning a pretrained network on the synthetic shapes: the pretrained file is read once,
//! the classifier is replaced, frozen layers do not move (nor do their BatchNorm statistics),
//! a resumed fine-tune ends where an uninterrupted one does without the file, and a short
//! fine-tune beats training the same network from scratch for as long.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn_flex::Flex;
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use model::{Network, SplitModel};
use train::device::Cpu;
use train::{RunDir, Summary, TrainConfig, Weights};

/// A CIFAR ResNet-8 of width 8 on 32×32 shapes; `extra` goes into `[model]`.
fn config(count: usize, epochs: usize, seed: u64, extra: &str) -> TrainConfig {
    let text = format!(
        r#"
epochs = {epochs}
batch_size = 32
seed = {seed}
[model]
name = "cifar_resnet"
depth = 8
width = 8
{extra}
[data]
source = "shapes"
count = {count}
validation = 0.25
image_size = [32, 32]
[optimizer]
name = "adam"
lr = 0.003
"#
    );
    TrainConfig::parse(&text, "test").unwrap()
}

fn run(config: &TrainConfig, path: &Path, resume: bool) -> Summary {
    let data = train::dataset::load(&config.data, config.seed, &()).unwrap();
    let run = match resume {
        true => RunDir::open(path).unwrap(),
        false => RunDir::create(path, config, data.class_names()).unwrap(),
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
    .unwrap()
}

fn model(path: &Path, weights: Weights) -> Network<Flex> {
    RunDir::open(path)
        .unwrap()
        .load_model::<Flex>(weights, &Default::default())
        .unwrap()
}

/// `network` as a safetensors file under PyTorch's parameter names, as torchvision's or a
/// training script's weights would come.
fn save_torch_named(network: &Network<Flex>, path: &Path) -> PathBuf {
    let Network::CifarResnet(network) = network else {
        panic!("a CIFAR ResNet");
    };
    let mut store = SafetensorsStore::from_file(path).with_to_adapter(BurnToPyTorchAdapter);
    network.save_into(&mut store).unwrap();
    path.to_path_buf()
}

/// Every float tensor of `network` (parameters and BatchNorm statistics) by its path, as bytes.
fn tensors(network: &Network<Flex>) -> Vec<(String, Vec<u8>)> {
    let mut all = Vec::new();
    all.extend(network.collect(None, None, false).into_iter().map(|s| {
        let data = s.to_data().unwrap();
        let path = s.full_path();
        let path = path
            .strip_prefix("CifarResnet.")
            .unwrap_or(&path)
            .to_string();
        (path, data.bytes.to_vec())
    }));
    all
}

fn tensor(network: &Network<Flex>, path: &str) -> Vec<u8> {
    tensors(network)
        .into_iter()
        .find(|(p, _)| p == path)
        .unwrap_or_else(|| panic!("no tensor {path}"))
        .1
}

/// A network trained on shapes of another seed, saved as "pretrained" weights.
fn pretrained(dir: &Path) -> (Network<Flex>, PathBuf) {
    let path = dir.join("pretraining");
    run(&config(1200, 3, 7, ""), &path, false);
    let network = model(&path, Weights::Last);
    let file = save_torch_named(&network, &dir.join("pretrained.safetensors"));
    (network, file)
}

fn weights_line(file: &Path) -> String {
    format!("weights = \"{}\"", file.display())
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
fn a_linear_probe_replaces_the_classifier_and_moves_nothing_else() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (source, file) = pretrained(dir.path());
    for probe in [0, 1] {
        // probe_epochs = 1: the features are computed once; 0 with train = "classifier": the
        // frozen network runs on every batch. Both train the new classifier alone.
        let extra = format!(
            "{}\ntrain = \"classifier\"\nprobe_epochs = {probe}",
            weights_line(&file)
        );
        let path = dir.path().join(format!("probe{probe}"));
        run(&config(240, 1, 3, &extra), &path, false);
        let tuned = model(&path, Weights::Last);
        let Network::CifarResnet(net) = &tuned else {
            panic!("a CIFAR ResNet");
        };
        assert_eq!(
            net.linear.weight.dims(),
            [32, 4],
            "4 shapes classes, width 8 × 4"
        );
        for (path, bytes) in tensors(&tuned) {
            let before = tensor(&source, &path);
            if path.starts_with("linear.") {
                assert_ne!(bytes, before, "{path} is the new classifier: it trains");
            } else {
                assert_eq!(bytes, before, "{path} is frozen (probe_epochs = {probe})");
            }
        }
    }
}

#[test]
fn training_from_a_layer_leaves_the_layers_before_and_frozen_batch_norm_alone() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (source, file) = pretrained(dir.path());
    for batch_norm in ["frozen", "trained"] {
        let extra = format!(
            "{}\ntrain = \"from layer2.0\"\nbatch_norm = \"{batch_norm}\"",
            weights_line(&file)
        );
        let path = dir.path().join(batch_norm);
        run(&config(240, 1, 3, &extra), &path, false);
        let tuned = model(&path, Weights::Last);
        let moved = |name: &str| tensor(&tuned, name) != tensor(&source, name);
        for frozen in [
            "conv1.weight",
            "bn1.gamma",
            "layer1.0.conv2.weight",
            "layer1.0.bn2.running_var",
        ] {
            assert!(!moved(frozen), "{frozen} is before layer2.0 ({batch_norm})");
        }
        assert!(moved("layer2.0.conv1.weight") && moved("layer3.0.conv2.weight"));
        let statistics = moved("layer2.0.bn1.running_mean") || moved("layer3.0.bn2.gamma");
        assert_eq!(
            statistics,
            batch_norm == "trained",
            "BatchNorm {batch_norm}"
        );
    }
}

#[test]
fn a_resumed_finetune_ends_as_an_uninterrupted_one_without_the_pretrained_file() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (_, file) = pretrained(dir.path());
    let extra = format!(
        "{}\nprobe_epochs = 1\ntrain = \"from layer3\"",
        weights_line(&file)
    );
    let whole = dir.path().join("whole");
    run(&config(240, 3, 5, &extra), &whole, false);
    let split = dir.path().join("split");
    run(&config(240, 1, 5, &extra), &split, false);
    std::fs::rename(&file, dir.path().join("moved.safetensors")).unwrap();
    run(&config(240, 3, 5, &extra), &split, true);
    let (whole, split) = (model(&whole, Weights::Last), model(&split, Weights::Last));
    let differ: Vec<String> = tensors(&whole)
        .into_iter()
        .zip(tensors(&split))
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a.0)
        .collect();
    assert!(
        differ.is_empty(),
        "resumed after the probe epoch, these differ: {differ:?}"
    );
}

#[test]
fn a_short_finetune_beats_training_from_scratch_for_as_long() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (_, file) = pretrained(dir.path());
    let scratch = run(&config(400, 2, 11, ""), &dir.path().join("scratch"), false);
    let extra = format!("{}\nprobe_epochs = 1", weights_line(&file));
    let tuned = run(
        &config(400, 2, 11, &extra),
        &dir.path().join("tuned"),
        false,
    );
    assert!(
        tuned.best_val_acc > scratch.best_val_acc + 0.1,
        "fine-tuned {:.3} vs from scratch {:.3}",
        tuned.best_val_acc,
        scratch.best_val_acc
    );
}

#[test]
fn a_pretrained_file_that_does_not_fit_is_refused_by_name() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (_, file) = pretrained(dir.path());
    // The file is a width-8 ResNet-8; a width-16 one does not fit it.
    let mut config = config(120, 1, 3, &weights_line(&file));
    config.model.architecture = model::Architecture::from_name("resnet8").unwrap();
    let data = train::dataset::load(&config.data, config.seed, &()).unwrap();
    let path = dir.path().join("wrong");
    let run = RunDir::create(&path, &config, data.class_names()).unwrap();
    let error = train::fit::<Cpu>(
        &config,
        &data.train,
        &data.validation,
        None,
        &run,
        false,
        &Default::default(),
        &mut (),
    )
    .expect_err("a mismatch");
    assert!(
        error.to_string().contains("pretrained.safetensors"),
        "{error}"
    );
}

#[test]
fn the_probe_uses_the_classifier_input_of_each_architecture() {
    let _serial = serial();
    // What the probe caches is what the head reads: pooled features for a ResNet.
    let device = Default::default();
    let net = model::CifarResNetConfig { depth: 8, width: 8 }.init::<Flex>(3, 4, &device);
    let a = net.features(Tensor::zeros([2, 3, 32, 32], &device));
    assert_eq!(net.embedding(a).dims(), [2, 32]);
}
