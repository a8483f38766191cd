//! Batch Grad-CAM throughput: capture (features, classifier, backward), weights, map, ReLU,
//! min-max and resize to the input, for a randomly initialised ResNet-20 at 32×32.
//! `cargo run -p explain --example gradcam_speed -- [batch] [repeats]` prints
//! `burn gradcam resnet20 batch=<n> img/s median=<x> runs=[...]`; `scripts/bench_gradcam.sh`
//! runs pytorch-grad-cam on the same network and batch beside it.

use std::time::Instant;

use burn::prelude::*;
use cam::postprocess::{Normalization, relu_normalize, upsample};
use cam::{Target, capture, grad_cam};
use model::{Architecture, CifarResNetConfig, ModelSpec};
use train::device::Cpu;

type Inner = burn::backend::Flex;

fn main() {
    kernels::allocator::keep_freed_memory();
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (batch, repeats) = (
        args.first().copied().unwrap_or(64),
        args.get(1).copied().unwrap_or(5),
    );
    let spec = ModelSpec {
        architecture: Architecture::CifarResnet(CifarResNetConfig::default()),
        num_classes: 10,
        head: model::Head::Softmax,
        channels: 3,
        image_size: [32, 32],
    };
    let device = Default::default();
    let model = spec.init::<Cpu>(&device).unwrap();
    let images = Tensor::<Inner, 4>::random(
        [batch, 3, 32, 32],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let targets = vec![Target::Predicted; batch];
    let explain = || {
        let captured = capture(&model, images.clone(), &targets).unwrap();
        let [_, _, h, w] = captured.activations.dims();
        let maps = grad_cam(captured.activations, captured.gradients)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let minmax = Normalization::MinMax;
        let resized: Vec<Vec<f32>> = maps
            .chunks(h * w)
            .map(|m| upsample(&relu_normalize(m, minmax), [h, w], [32, 32], minmax))
            .collect();
        resized.len()
    };
    explain(); // warm-up
    let mut runs: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            assert_eq!(explain(), batch);
            batch as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    let shown: Vec<String> = runs.iter().map(|r| format!("{r:.1}")).collect();
    runs.sort_by(f64::total_cmp);
    println!(
        "burn gradcam resnet20 batch={batch} img/s median={:.1} runs=[{}]",
        runs[runs.len() / 2],
        shown.join(", ")
    );
}
