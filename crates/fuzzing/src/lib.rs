//! Outside bytes through each of the workspace's parsers, as a user's file would go: the entry
//! points of the fuzz targets under `fuzz/` and of `tests/fuzz_regressions.rs`, which replays
//! every input the fuzzers ever found a problem with. An entry may return an error (that is the
//! point of a damaged file); it must never panic, abort or allocate beyond what the file can
//! justify.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::module::Module;
use model::Architecture;
use train::{RunDir, TrainConfig, Weights};

type Cpu = burn_flex::Flex;

/// What a parser made of the bytes: `Ok` when it accepted them, the error message otherwise.
pub type Entry = fn(&[u8]) -> Result<(), String>;

/// The parsers, by the name of their fuzz target.
pub const TARGETS: [(&str, Entry); 7] = [
    ("cifar_batch", cifar_batch),
    ("torch_weights", torch_weights),
    ("safetensors_weights", torch_weights),
    ("train_config", train_config),
    ("checkpoint", checkpoint),
    ("image", image),
    ("onnx_model", onnx_model),
];

/// A CIFAR-10 binary batch file (`data_batch_N.bin`).
pub fn cifar_batch(bytes: &[u8]) -> Result<(), String> {
    data::cifar::read_batch(&scratch_file("cifar", bytes))
        .map(drop)
        .map_err(|e| e.to_string())
}

/// A PyTorch weight file (zip `.pth`, legacy pickle `.th`, or safetensors, told by content)
/// loaded into a small CIFAR ResNet, the whole way: records, shapes, values.
pub fn torch_weights(bytes: &[u8]) -> Result<(), String> {
    let architecture = tiny_architecture();
    let path = scratch_file("weights", bytes);
    pretrained::load::<Cpu>(&architecture, &path, [8, 8], &Default::default())
        .map(drop)
        .map_err(|e| e.to_string())
}

/// A training config as `train --config FILE` reads it.
pub fn train_config(bytes: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    TrainConfig::parse(text, "fuzz.toml")
        .map(drop)
        .map_err(|e| e.to_string())
}

/// A run's `best/model.mpk`, as `explain` and `train --resume` load it.
pub fn checkpoint(bytes: &[u8]) -> Result<(), String> {
    let run = fuzz_run();
    std::fs::write(run.path.join("best/model.mpk"), bytes).expect("the scratch run is writable");
    run.load_model::<Cpu>(Weights::Best, &Default::default())
        .map(drop)
        .map_err(|e| e.to_string())
}

/// An image file, decoded and resized as training and `explain` read one.
pub fn image(bytes: &[u8]) -> Result<(), String> {
    data::folder::read_image(&scratch_file("image", bytes), [8, 8]).map(drop)
}

/// An ONNX model as `explain --arch onnx` loads one: parsed, checked, and run once on a blank
/// image (which checks every operator and its shapes).
pub fn onnx_model(bytes: &[u8]) -> Result<(), String> {
    let path = scratch_file("model.onnx", bytes);
    model::OnnxNetwork::<Cpu>::load(&path, Some([32, 32]), &Default::default())
        .map(drop)
        .map_err(|e| e.to_string())
}

/// A small real export (depthwise, HardSwish, squeeze-excitation), the seed of the
/// `onnx_model` target: committed as a test fixture, made by `scripts/make_onnx_fixtures.py`.
pub fn onnx_seed() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/onnx/mobile.script.onnx"
    );
    std::fs::read(path).expect("the committed fixture")
}

/// The weight targets' model saved as safetensors under PyTorch's names: a seed of the weight
/// targets, made here so that no weight file is committed.
pub fn safetensors_seed() -> Vec<u8> {
    use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
    let network =
        model::CifarResNetConfig { depth: 8, width: 4 }.init::<Cpu>(3, 10, &Default::default());
    let path = scratch_file("seed.safetensors", b"");
    let mut store = SafetensorsStore::from_file(&path)
        .overwrite(true)
        .with_to_adapter(BurnToPyTorchAdapter);
    network
        .save_into(&mut store)
        .expect("the scratch folder is writable");
    std::fs::read(&path).expect("just written")
}

/// A real checkpoint of the scratch run's model, the seed of the `checkpoint` target.
pub fn checkpoint_seed() -> Vec<u8> {
    let run = fuzz_run();
    std::fs::read(run.path.join("best/model.mpk")).expect("written by fuzz_run")
}

/// A CIFAR ResNet-8 of width 4: every kind of layer the loaders handle, in 20 KB.
fn tiny_architecture() -> Architecture {
    Architecture::CifarResnet(model::CifarResNetConfig { depth: 8, width: 4 })
}

/// A run folder of a ResNet-8 (width 4, 4 classes) with one checkpoint, made once per process.
fn fuzz_run() -> &'static RunDir {
    static RUN: OnceLock<RunDir> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = scratch_dir().join("run");
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = TrainConfig::load("shapes").expect("embedded").0;
        config.model.architecture = tiny_architecture();
        config.data.image_size = [8, 8];
        let classes: Vec<String> = ["a", "b", "c", "d"].map(String::from).into();
        let run = RunDir::create(&dir, &config, &classes).expect("a scratch run");
        let model = config
            .model_spec(classes.len())
            .init::<Cpu>(&Default::default())
            .expect("a valid spec");
        let state = train::run_dir::CheckpointState {
            epoch: 1,
            val_acc: 0.0,
            best_val_acc: 0.0,
            best_epoch: 1,
        };
        run.save_checkpoint(&model, model.clone().into_record(), &state)
            .expect("a scratch checkpoint");
        run
    })
}

/// A folder of this process's own, in memory where the system has one.
fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("gradcam-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        dir
    })
}

/// `bytes` as a file the parsers can open (they take paths, as users give them).
fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch_dir().join(format!("{name}-{:?}", std::thread::current().id()));
    std::fs::write(&path, bytes).expect("the scratch folder is writable");
    path
}
