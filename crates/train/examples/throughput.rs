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
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use kernels::optim::Sgd;
use model::{Architecture, CifarResNetConfig, ModelSpec, Network, SplitModel, TutorialCnnConfig};
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
            head: model::Head::Softmax,
            channels: 3,
            image_size: [128, 128],
        },
        "resnet20" => ModelSpec {
            architecture: Architecture::CifarResnet(CifarResNetConfig::default()),
            num_classes: 10,
            head: model::Head::Softmax,
            channels: 3,
            image_size: [32, 32],
        },
        other => panic!("unknown architecture {other}: tutorial_cnn or resnet20"),
    };
    let device = Default::default();
    let mut model = spec.init::<Cpu>(&device).unwrap();
    // What `train` runs for `name = "sgd"`: burn's SGD in one in-place pass.
    let mut optimizer = Sgd::new(0.9, 0.0, false, 0.0).init();
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

    // The model moves through each step, as in `train`, so the optimiser updates it in place.
    let mut step = |model: Network<Cpu>| {
        let loss = loss_fn.forward(model.forward(images.clone()), labels.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        optimizer.step(0.01, model, grads)
    };
    model = step(model); // warm-up
    let mut runs = Vec::new();
    for _ in 0..repeats {
        let start = Instant::now();
        for _ in 0..steps {
            model = step(model);
        }
        runs.push((batch * steps) as f64 / start.elapsed().as_secs_f64());
    }
    let shown: Vec<String> = runs.iter().map(|r| format!("{r:.1}")).collect();
    runs.sort_by(f64::total_cmp);
    println!(
        "burn {arch} batch={batch} img/s median={:.1} runs=[{}]",
        runs[runs.len() / 2],
        shown.join(", ")
    );
}
