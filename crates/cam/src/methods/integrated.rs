//! IS-CAM, Integrated Score-CAM (Naidu et al. 2020), as torch-cam 0.5 computes it: Score-CAM's
//! masks, each applied to the image at growing strengths and the score gains averaged, which
//! smooths the weights that one masked pass would give.

use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use model::SplitModel;

use crate::Capture;

use super::weighted;

/// torch-cam's default number of strengths.
pub const IS_CAM_SAMPLES: usize = 10;

/// Each channel A_k min-max normalised at its own resolution (ε 1e-8) and upsampled
/// bilinearly (half-pixel centres) to the image; strengths c_s = Σ_{t ≤ s} t / N for
/// s = 1…N (torch-cam's running sum); w_k = softmax over k of the mean over s of
/// score(c_s · mask_k · x) − score(x). Returns the channels weighted, `[batch, channels, h,
/// w]`; `chunk` masked images per pass.
pub fn integrated_score_cam<B: Backend, M: SplitModel<B>>(
    model: &M,
    images: Tensor<B, 4>,
    activations: Tensor<B, 4>,
    capture: &Capture<B>,
    samples: usize,
    chunk: usize,
) -> Tensor<B, 4> {
    let [batch, channels, h, w] = activations.dims();
    let [_, colours, height, width] = images.dims();
    let originals = capture
        .scores()
        .into_data()
        .to_vec::<f32>()
        .expect("f32 scores");
    let classes = originals.len() / batch;
    let options = InterpolateOptions {
        align_corners: false,
        ..InterpolateOptions::new(InterpolateMode::Bilinear)
    };
    let strengths: Vec<f64> = (1..=samples)
        .scan(0.0, |sum, s| {
            *sum += s as f64 / samples as f64;
            Some(*sum)
        })
        .collect();
    let mut rows = Vec::with_capacity(batch);
    for (i, &target) in capture.targets.iter().enumerate() {
        let original = originals[i * classes + target];
        let image = images
            .clone()
            .slice([i..i + 1, 0..colours, 0..height, 0..width]);
        let maps = activations
            .clone()
            .slice([i..i + 1, 0..channels, 0..h, 0..w]);
        let masks = interpolate(
            normalised(maps.reshape([channels, 1, h, w])),
            [height, width],
            options.clone(),
        );
        let masked = masks * image;
        let mut gains = vec![0f32; channels];
        for &strength in &strengths {
            for start in (0..channels).step_by(chunk.max(1)) {
                let end = (start + chunk.max(1)).min(channels);
                let inputs = masked
                    .clone()
                    .slice([start..end, 0..colours, 0..height, 0..width])
                    * strength;
                let scores = capture.score.of(model.forward(inputs));
                let n = end - start;
                let scores = scores
                    .slice([0..n, target..target + 1])
                    .into_data()
                    .to_vec::<f32>();
                for (gain, score) in gains[start..end]
                    .iter_mut()
                    .zip(scores.expect("f32 scores"))
                {
                    *gain += score - original;
                }
            }
        }
        let gains: Vec<f32> = gains.iter().map(|g| g / samples as f32).collect();
        rows.push(Tensor::<B, 2>::from_data(
            TensorData::new(gains, [1, channels]),
            &activations.device(),
        ));
    }
    weighted(activations, softmax(Tensor::cat(rows, 0), 1))
}

/// Each `[1, h, w]` map minus its minimum, over its maximum plus 1e-8 (torch-cam's
/// `_normalize`).
fn normalised<B: Backend>(maps: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, _, h, w] = maps.dims();
    let flat = maps.clone().reshape([n, h * w]);
    let min = flat.clone().min_dim(1).reshape([n, 1, 1, 1]);
    let shifted = maps - min;
    let max = shifted
        .clone()
        .reshape([n, h * w])
        .max_dim(1)
        .reshape([n, 1, 1, 1]);
    shifted / (max + 1e-8)
}
