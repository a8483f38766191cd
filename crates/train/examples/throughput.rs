//! Training throughput of the workspace's networks: images per second of full SGD steps
//! (forward, cross-entropy, backward, update) at a fixed batch, on the CPU or a GPU.
//!
//! `cargo run -p train --example throughput -- [tutorial_cnn|resnet20] [batch] [steps] [repeats]
//! [cpu|cuda] [tf32|f32]`
//! prints one line `burn <arch> batch=<n> img/s median=<x> runs=[...]`; `scripts/bench_train.sh`
//! runs it beside the same network in PyTorch and prints the ratio. It is an example rather
//! than a `cargo bench` target so that it shares the test build (dependencies at opt-level 3)
//! instead of compiling burn a second time in the release profile.

use std::time::Instant;

use burn::backend::Autodiff;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use kernels::Precision;
use kernels::optim::Sgd;
use model::{
    Architecture, CifarResNetConfig, Kernels, ModelSpec, Network, SplitModel, TutorialCnnConfig,
};
use train::OnBackend;
use train::device::run_benchmark;

struct Bench {
    arch: String,
    batch: usize,
    steps: usize,
    repeats: usize,
}

fn main() {
    kernels::allocator::keep_freed_memory();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let number =
        |i: usize, default: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let bench = Bench {
        arch: args.first().cloned().unwrap_or_else(|| "resnet20".into()),
        batch: number(1, 64),
        steps: number(2, 10),
        repeats: number(3, 5),
    };
    // `train`'s default: TF32 convolutions on a GPU (the CPU computes in f32 regardless).
    let arg = |i: usize| args.get(i).map(String::as_str);
    run_benchmark(bench, arg(4), arg(5), Precision::Tf32);
}

impl OnBackend for Bench {
    type Output = ();

    fn run<I: Kernels>(self, device: I::Device) {
        let Bench {
            arch,
            batch,
            steps,
            repeats,
        } = self;
        let spec = match arch.as_str() {
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
        let mut model = spec.init::<Autodiff<I>>(&device).unwrap();
        // What `train` runs for `name = "sgd"`: burn's SGD in one in-place pass.
        let mut optimizer = Sgd::new(0.9, 0.0, false, 0.0).init();
        let loss_fn = CrossEntropyLossConfig::new().init(&device);
        let [h, w] = spec.image_size;
        let images = Tensor::<Autodiff<I>, 4>::random(
            [batch, 3, h, w],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let labels = Tensor::<Autodiff<I>, 1, Int>::from_data(
            TensorData::new(
                (0..batch as i64)
                    .map(|i| i % spec.num_classes as i64)
                    .collect(),
                [batch],
            ),
            &device,
        );

        // The model moves through each step, as in `train`, so the optimiser updates it in
        // place. The loss is read only at the end of a run: on a GPU, reading it waits for
        // every queued step.
        let mut step = |model: Network<Autodiff<I>>| {
            let loss = loss_fn.forward(model.forward(images.clone()), labels.clone());
            let grads = GradientsParams::from_grads(loss.clone().backward(), &model);
            (optimizer.step(0.01, model, grads), loss)
        };
        let (warm, loss) = step(model); // warm-up: on a GPU, the kernels' compilation
        model = warm;
        let _: f32 = loss.into_scalar().elem();
        let mut runs = Vec::new();
        for _ in 0..repeats {
            let start = Instant::now();
            let mut last = None;
            for _ in 0..steps {
                let (next, loss) = step(model);
                model = next;
                last = Some(loss);
            }
            let _: f32 = last.expect("at least one step").into_scalar().elem();
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
}
