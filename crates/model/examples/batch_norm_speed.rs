//! Forward + backward time of BatchNorm on `[32, 16, 32, 32]`: burn's `BatchNorm::forward`
//! against `model::batch_norm`, with a 3×3 convolution of the same tensor for scale.
//! `cargo run -p model --example batch_norm_speed` (medians of 9 runs).

use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::nn::conv::Conv2dConfig;
use burn::nn::{BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::Distribution;

type B = Autodiff<Flex>;

fn main() {
    let device = Default::default();
    let x = Tensor::<B, 4>::random([32, 16, 32, 32], Distribution::Default, &device).require_grad();
    let bn = BatchNormConfig::new(16).init::<B>(&device);
    let conv = Conv2dConfig::new([16, 16], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init::<B>(&device);
    let time = |f: &dyn Fn() -> Tensor<B, 4>| {
        let mut runs: Vec<f64> = (0..9)
            .map(|_| {
                let start = Instant::now();
                let grads = f().sum().backward();
                let _ = x.grad(&grads).unwrap().into_data();
                start.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        runs.sort_by(f64::total_cmp);
        runs[4]
    };
    let theirs = time(&|| bn.forward(x.clone()));
    let ours = time(&|| model::batch_norm(&bn, x.clone(), &model::PlainRelu));
    let convolution = time(&|| conv.forward(x.clone()));
    println!(
        "burn BatchNorm {theirs:.1} ms, model::batch_norm {ours:.1} ms ({:.1}×), conv3x3 {convolution:.1} ms",
        theirs / ours
    );
}
