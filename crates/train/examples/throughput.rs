//! Training throughput of the workspace's networks on the CPU backend: images per second of
//! full SGD steps (forward, cross-entropy, backward, update) at a fixed batch.
//!
//! `cargo run -p train --example throughput -- [tutorial_cnn|resnet20] [batch] [steps] [repeats]`
//! prints one line `burn <arch> batch=<n> img/s median=<x> runs=[...]`; `scripts/bench_train.sh`
//! runs it beside the same network in PyTorch and prints the ratio. It is an example rather
//! than a `cargo bench` target so that it shares the test build (dependencies at opt-level 3)
//! instead of compiling burn a second time in the release profile.

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::prelude::*;
use model::{Architecture, CifarResNetConfig, ModelSpec, SplitModel, TutorialCnnConfig};
use train::device::Cpu;

fn main() {
    kernels::allocator::keep_freed_memory();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let arch = args.first().map(String::as_str).unwrap_or("resnet20");
    let number =
        |i: usize, default: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (batch, steps, repeats) = (number(1, 64), number(2, 10), number(3, 5));

    let spec = match arch {
        "tutorial_cnn" => ModelSpec {
            architecture: Architecture::TutorialCnn(TutorialCnnConfig::default()),
            num_classes: 2,
            channels: 3,
            image_size: [128, 128],
        },
        "resnet20" => ModelSpec {
            architecture: Architecture::CifarResnet(CifarResNetConfig::default()),
            num_classes: 10,
            channels: 3,
            image_size: [32, 32],
        },
        other => panic!("unknown architecture {other}: tutorial_cnn or resnet20"),
    };
    let device = Default::default();
    let mut model = spec.init::<Cpu>(&device).unwrap();
    let mut optimizer = SgdConfig::new()
        .with_momentum(Some(
            MomentumConfig::new().with_momentum(0.9).with_dampening(0.0),
        ))
        .init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let [h, w] = spec.image_size;
    let images = Tensor::<Cpu, 4>::random(
        [batch, 3, h, w],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let labels = Tensor::<Cpu, 1, Int>::from_data(
        TensorData::new(
            (0..batch as i64)
                .map(|i| i % spec.num_classes as i64)
                .collect(),
            [batch],
        ),
        &device,
    );

    let mut step = || {
        let loss = loss_fn.forward(model.forward(images.clone()), labels.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(0.01, model.clone(), grads);
    };
    step(); // warm-up
    let mut runs: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..steps {
                step();
            }
            (batch * steps) as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    let shown: Vec<String> = runs.iter().map(|r| format!("{r:.1}")).collect();
    runs.sort_by(f64::total_cmp);
    println!(
        "burn {arch} batch={batch} img/s median={:.1} runs=[{}]",
        runs[runs.len() / 2],
        shown.join(", ")
    );
}
