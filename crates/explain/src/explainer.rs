//! Images in, Grad-CAM maps and class probabilities out: one forward and one backward per batch.

use anyhow::Result;
use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::backend::AutodiffBackend;
use cam::{Method, Target, capture};
use data::{Batcher, Sample};
use model::{Network, SplitModel};

/// The explanation of one image for one target.
pub struct Explained {
    /// Softmax over the classes.
    pub probabilities: Vec<f32>,
    /// The class whose score the map explains.
    pub target: usize,
    /// The map before ReLU and normalisation (after them, at the input's size, when
    /// augmentation-smoothed), `map_size`, row-major.
    pub map: Vec<f32>,
}

/// Maps of a batch, all at the last conv layer's resolution `[h, w]`.
pub struct BatchMaps {
    pub explained: Vec<Explained>,
    pub map_size: [usize; 2],
}

/// Images per forward pass in Score-CAM, ablated maps per classifier pass in Ablation-CAM.
const PERTURBATION_CHUNK: usize = 32;

/// pytorch-grad-cam's two smoothings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Smoothing {
    /// The first principal component of the channels' contributions instead of their sum.
    pub eigen: bool,
    /// The mean of the maps of flipped and intensity-scaled copies (at the input's size).
    pub augmentation: bool,
}

/// One capture for the batch, then the map of every method from it: one `BatchMaps` each.
pub fn explain_batch<B: AutodiffBackend>(
    model: &Network<B>,
    samples: &[&Sample],
    target: Target,
    methods: &[Method],
    smoothing: Smoothing,
    batcher: &Batcher,
    device: &B::Device,
) -> Result<Vec<BatchMaps>> {
    let images = input_batch(model, samples, batcher, device)?;
    let captured = capture(model, images.clone(), &vec![target; samples.len()])?;
    let [_, classes] = captured.logits.dims();
    let probabilities = to_vec(softmax(captured.logits.clone(), 1));
    let inference = model.valid();
    let batch_maps = methods
        .iter()
        .map(|&method| {
            let map = if smoothing.augmentation {
                cam::smoothing::aug_smooth(
                    model,
                    images.clone(),
                    &captured.targets,
                    method,
                    smoothing.eigen,
                    PERTURBATION_CHUNK,
                )?
            } else {
                method.smoothed_map(
                    &inference,
                    images.clone(),
                    &captured,
                    PERTURBATION_CHUNK,
                    smoothing.eigen,
                )
            };
            let [_, h, w] = map.dims();
            let maps = to_vec(map);
            let explained = captured
                .targets
                .iter()
                .zip(probabilities.chunks(classes).zip(maps.chunks(h * w)))
                .map(|(&target, (probabilities, map))| Explained {
                    probabilities: probabilities.to_vec(),
                    target,
                    map: map.to_vec(),
                })
                .collect();
            Ok(BatchMaps {
                explained,
                map_size: [h, w],
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(batch_maps)
}

/// The samples preprocessed as one batch for the inference backend, checked against what the
/// model accepts.
pub fn input_batch<B: AutodiffBackend>(
    model: &Network<B>,
    samples: &[&Sample],
    batcher: &Batcher,
    device: &B::Device,
) -> Result<Tensor<B::InnerBackend, 4>> {
    let indexed: Vec<_> = samples.iter().copied().enumerate().collect();
    let (images, _) = batcher
        .batch(&indexed, 0)
        .to_tensors::<B::InnerBackend>(device);
    model
        .input_shape()
        .check(model.architecture(), images.dims())?;
    Ok(images)
}

fn to_vec<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor.into_data().to_vec::<f32>().expect("f32 tensor")
}

/// Index of the largest value.
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

/// The `n` most likely classes with their probabilities, best first.
pub fn top(probabilities: &[f32], n: usize) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(n);
    ranked
}
