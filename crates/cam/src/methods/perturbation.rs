//! The gradient-free methods that score perturbed inputs, batched: Score-CAM masks the image
//! with each channel, Ablation-CAM removes each channel from A. Both as pytorch-grad-cam
//! computes them, so the weights are the same numbers.

use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use model::{PlainRelu, SplitModel};

use crate::Capture;

use super::weighted;

/// The `target` entry of each row of class scores `[n, classes]` → `[n]`.
fn target_scores<B: Backend>(scores: Tensor<B, 2>, target: usize) -> Tensor<B, 1> {
    let [n, _] = scores.dims();
    scores.slice([0..n, target..target + 1]).reshape([n])
}

/// Score-CAM (Wang et al. 2020): each channel A_k, upsampled to the image (bilinear, corners
/// aligned) and min-max normalised, masks the image; the target scores of the masked images,
/// softmaxed over channels, weight the channels (returned: the weighted channels). `chunk`
/// masked images per forward pass.
pub fn score_cam<B: Backend, M: SplitModel<B>>(
    model: &M,
    images: Tensor<B, 4>,
    activations: Tensor<B, 4>,
    capture: &Capture<B>,
    chunk: usize,
) -> Tensor<B, 4> {
    let targets = &capture.targets;
    let [batch, channels, h, w] = activations.dims();
    let [_, colours, height, width] = images.dims();
    let options = InterpolateOptions::new(InterpolateMode::Bilinear);
    let mut rows = Vec::with_capacity(batch);
    for (i, &target) in targets.iter().enumerate() {
        let image = images
            .clone()
            .slice([i..i + 1, 0..colours, 0..height, 0..width]);
        let mut scores = Vec::new();
        for start in (0..channels).step_by(chunk.max(1)) {
            let end = (start + chunk.max(1)).min(channels);
            let n = end - start;
            let maps = activations
                .clone()
                .slice([i..i + 1, start..end, 0..h, 0..w])
                .reshape([n, 1, h, w]);
            let masks = interpolate(maps, [height, width], options.clone());
            let flat = masks.clone().reshape([n, height * width]);
            let min = flat.clone().min_dim(1).reshape([n, 1, 1, 1]);
            let max = flat.max_dim(1).reshape([n, 1, 1, 1]);
            let masks = (masks - min.clone()) / (max - min + 1e-8);
            let outputs = model.forward(image.clone() * masks);
            scores.push(target_scores(capture.score.of(outputs), target));
        }
        rows.push(Tensor::cat(scores, 0).reshape([1, channels]));
    }
    let weights = softmax(Tensor::cat(rows, 0), 1);
    weighted(activations, weights)
}

/// Ablation-CAM (Desai & Ramaswamy 2020): w_k = (S − S_k) / S, where S_k is the target score
/// with channel k of A removed (set to 0, or far below the minimum when A can be negative,
/// as pytorch-grad-cam does, per image). Only the layers after A's (the capture's layer) run
/// again: `chunk` ablations per pass. On a transformer the channel is removed from the
/// layer's output, class token included, as pytorch-grad-cam's `AblationLayerVit` does.
pub fn ablation_cam<B: Backend, M: SplitModel<B>>(
    model: &M,
    activations: Tensor<B, 4>,
    capture: &Capture<B>,
    chunk: usize,
) -> Tensor<B, 4> {
    let channels = activations.dims()[1];
    let [batch, outputs, h, w] = capture.layer_output.dims();
    let device = activations.device();
    let originals = capture
        .scores()
        .into_data()
        .to_vec::<f32>()
        .expect("f32 scores");
    let classes = originals.len() / batch;
    let (layer, score) = (capture.layer, capture.score);
    let mut rows = Vec::with_capacity(batch);
    for (i, &target) in capture.targets.iter().enumerate() {
        let original = originals[i * classes + target];
        let a = capture
            .layer_output
            .clone()
            .slice([i..i + 1, 0..outputs, 0..h, 0..w]);
        // pytorch-grad-cam lowers each further row of a batch by another 1e7 when the minimum is
        // not 0; any value that far below the map has the same effect on a ReLU network.
        let min = a.clone().min().into_scalar().elem::<f32>();
        let removed = if min == 0.0 { 0.0 } else { min - 1e7 };
        let mut weights = Vec::with_capacity(channels);
        for start in (0..channels).step_by(chunk.max(1)) {
            let end = (start + chunk.max(1)).min(channels);
            let n = end - start;
            // Row j removes channel start + j.
            let mut mask = vec![0f32; n * outputs];
            for j in 0..n {
                mask[j * outputs + start + j] = 1.0;
            }
            let mask =
                Tensor::<B, 4>::from_data(TensorData::new(mask, [n, outputs, 1, 1]), &device);
            let keep = mask.clone().neg() + 1.0;
            let ablated = a.clone() * keep + mask * removed;
            let outputs = model.logits_from(ablated, layer, &PlainRelu);
            let scores = target_scores(score.of(outputs), target)
                .into_data()
                .to_vec::<f32>()
                .expect("f32 scores");
            weights.extend(scores.iter().map(|s| (original - s) / original));
        }
        rows.push(
            Tensor::<B, 1>::from_data(TensorData::new(weights, [channels]), &device)
                .reshape([1, channels]),
        );
    }
    weighted(activations, Tensor::cat(rows, 0))
}
