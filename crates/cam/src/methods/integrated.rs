//! Score-CAM smoothed over many masked passes, as torch-cam 0.5 computes it: IS-CAM
//! (Integrated Score-CAM, Naidu et al. 2020) applies each mask at growing strengths, SS-CAM
//! (Smoothed Score-CAM, Wang et al. 2020) adds Gaussian noise to the masks; both average the
//! score gains over the passes.

use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use model::SplitModel;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

use crate::Capture;

use super::weighted;

/// torch-cam's default number of strengths for IS-CAM.
pub const IS_CAM_SAMPLES: usize = 10;
/// torch-cam's default number of noisy draws for SS-CAM,
pub const SS_CAM_SAMPLES: usize = 35;
/// their standard deviation,
pub const SS_CAM_STD: f64 = 2.0;
/// and the seed of `--method sscam`'s draws.
pub const SS_CAM_SEED: u64 = 0;

/// IS-CAM: strengths c_s = Σ_{t ≤ s} t / N for s = 1…N (torch-cam's running sum);
/// w_k = softmax over k of the mean over s of score(c_s · mask_k · x) − score(x), the masks
/// as [`upsampled_masks`] makes them. Returns the channels weighted, `[batch, channels, h,
/// w]`; `chunk` masked images per forward pass.
pub fn integrated_score_cam<B: Backend, M: SplitModel<B>>(
    model: &M,
    images: Tensor<B, 4>,
    activations: Tensor<B, 4>,
    capture: &Capture<B>,
    samples: usize,
    chunk: usize,
) -> Tensor<B, 4> {
    let strengths: Vec<f64> = (1..=samples)
        .scan(0.0, |sum, s| {
            *sum += s as f64 / samples as f64;
            Some(*sum)
        })
        .collect();
    let masks = upsampled_masks(activations.clone(), &images);
    let passes = strengths.iter().map(|&c| masks.clone() * c);
    mean_gain_weighted(model, images, activations, capture, passes, chunk)
}

/// SS-CAM: for each of `samples` draws, `noise(s)` (`[batch, channels, height, width]`,
/// torch-cam draws it from N(0, 2²)) added to every mask; w_k = softmax over k of the mean
/// over draws of score((mask_k + noise) · x) − score(x).
pub fn smoothed_score_cam<B: Backend, M: SplitModel<B>>(
    model: &M,
    images: Tensor<B, 4>,
    activations: Tensor<B, 4>,
    capture: &Capture<B>,
    samples: usize,
    noise: impl FnMut(usize) -> Tensor<B, 4>,
    chunk: usize,
) -> Tensor<B, 4> {
    let masks = upsampled_masks(activations.clone(), &images);
    let passes = (0..samples).map(noise).map(|n| masks.clone() + n);
    mean_gain_weighted(model, images, activations, capture, passes, chunk)
}

/// Gaussian noise N(0, σ²) of `shape`, draw after draw from one generator seeded with `seed`:
/// the same draws on every run (the backend's own generator is shared and can be reseeded by
/// anything).
pub fn seeded_noise<B: Backend>(
    shape: [usize; 4],
    std: f64,
    seed: u64,
    device: B::Device,
) -> impl FnMut(usize) -> Tensor<B, 4> {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, std as f32).expect("a finite, positive deviation");
    move |_| {
        let values: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|_| normal.sample(&mut rng))
            .collect();
        Tensor::from_data(TensorData::new(values, shape), &device)
    }
}

/// The channels weighted by the softmax of their mean score gain over `passes`, each pass a
/// set of masks `[batch, channels, height, width]` multiplied into the images.
fn mean_gain_weighted<B: Backend, M: SplitModel<B>>(
    model: &M,
    images: Tensor<B, 4>,
    activations: Tensor<B, 4>,
    capture: &Capture<B>,
    passes: impl Iterator<Item = Tensor<B, 4>>,
    chunk: usize,
) -> Tensor<B, 4> {
    let [batch, channels, _, _] = activations.dims();
    let [_, colours, height, width] = images.dims();
    let originals = capture.scores().into_data().to_vec::<f32>();
    let originals = originals.expect("f32 scores");
    let classes = originals.len() / batch;
    let mut gains = vec![0f32; batch * channels];
    let mut count = 0;
    for masks in passes {
        count += 1;
        for (i, &target) in capture.targets.iter().enumerate() {
            let image = images
                .clone()
                .slice([i..i + 1, 0..colours, 0..height, 0..width]);
            let own = masks
                .clone()
                .slice([i..i + 1, 0..channels, 0..height, 0..width]);
            let masked = own.reshape([channels, 1, height, width]) * image;
            let row = &mut gains[i * channels..(i + 1) * channels];
            let original = originals[i * classes + target];
            add_score_gains(model, capture, masked, target, original, chunk, row);
        }
    }
    let gains: Vec<f32> = gains.iter().map(|g| g / count.max(1) as f32).collect();
    let device = activations.device();
    let gains = Tensor::<B, 2>::from_data(TensorData::new(gains, [batch, channels]), &device);
    weighted(activations, softmax(gains, 1))
}

/// Adds score(masked_k) − `original` to `gains[k]` for each masked image, `chunk` per pass.
fn add_score_gains<B: Backend, M: SplitModel<B>>(
    model: &M,
    capture: &Capture<B>,
    masked: Tensor<B, 4>,
    target: usize,
    original: f32,
    chunk: usize,
    gains: &mut [f32],
) {
    let [count, colours, height, width] = masked.dims();
    for start in (0..count).step_by(chunk.max(1)) {
        let end = (start + chunk.max(1)).min(count);
        let inputs = masked
            .clone()
            .slice([start..end, 0..colours, 0..height, 0..width]);
        let scores = capture.score.of(model.forward(inputs));
        let scores = scores.slice([0..end - start, target..target + 1]);
        let scores = scores.into_data().to_vec::<f32>().expect("f32 scores");
        for (gain, score) in gains[start..end].iter_mut().zip(scores) {
            *gain += score - original;
        }
    }
}

/// Each channel of `[batch, channels, h, w]` min-max normalised at its own resolution
/// (torch-cam's `_normalize`, ε 1e-8) and upsampled bilinearly, half-pixel centres, to the
/// images' size.
fn upsampled_masks<B: Backend>(activations: Tensor<B, 4>, images: &Tensor<B, 4>) -> Tensor<B, 4> {
    let [batch, channels, h, w] = activations.dims();
    let [_, _, height, width] = images.dims();
    let options = InterpolateOptions {
        align_corners: false,
        ..InterpolateOptions::new(InterpolateMode::Bilinear)
    };
    let maps = normalised(activations.reshape([batch * channels, 1, h, w]));
    interpolate(maps, [height, width], options).reshape([batch, channels, height, width])
}

/// Each `[1, h, w]` map minus its minimum, over its maximum plus 1e-8.
fn normalised<B: Backend>(maps: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, _, h, w] = maps.dims();
    let flat = maps.clone().reshape([n, h * w]);
    let min = flat.min_dim(1).reshape([n, 1, 1, 1]);
    let shifted = maps - min;
    let max = shifted
        .clone()
        .reshape([n, h * w])
        .max_dim(1)
        .reshape([n, 1, 1, 1]);
    shifted / (max + 1e-8)
}
