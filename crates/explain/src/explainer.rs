//! Images in, CAMs and class probabilities out: one forward and one backward per batch and
//! layer, shared by every method and every target.

use anyhow::Result;
use burn::module::AutodiffModule;
use burn::prelude::*;
use cam::{
    Capture, GuidedBackend, Method, Score, Target, capture_scored_each,
    capture_without_gradients_each, guided_backprop,
};
use data::{Batcher, Sample};
use model::{AutodiffKernels, Network, SplitModel};

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

/// Maps of a batch, all at one resolution `[h, w]`: the layer's, or the input's when smoothed
/// or fused over layers.
pub struct BatchMaps {
    pub explained: Vec<Explained>,
    pub map_size: [usize; 2],
    /// The maps are pytorch-grad-cam's final arrays already (augmentation smoothing returns
    /// the plain mean of six normalised maps, SESS its blurred fusion): not to be normalised
    /// again.
    pub post_processed: bool,
}

/// pytorch-grad-cam's two smoothings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Smoothing {
    /// The first principal component of the channels' contributions instead of their sum.
    pub eigen: bool,
    /// The mean of the maps of flipped and intensity-scaled copies (at the input's size).
    pub augmentation: bool,
    /// SESS: the maps of windows of the image at several scales, fused.
    pub sess: bool,
}

/// What to compute for a batch besides the maps.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// What to explain in each image: a map per target and method.
    pub targets: &'a [Target],
    /// What of the target class is differentiated.
    pub score: Score,
    pub methods: &'a [Method],
    /// Layer indices (`SplitModel::layer_names`); several are fused.
    pub layers: &'a [usize],
    pub smoothing: Smoothing,
    /// Also guided backpropagation.
    pub guided: bool,
}

/// The maps of every method for a batch, and its guided gradients when asked for.
pub struct BatchExplanation {
    pub maps: Vec<BatchMaps>,
    /// Per image, `[3, height, width]` at the model input's size.
    pub guided: Option<Vec<Vec<f32>>>,
}

/// One capture per layer for the batch and all targets at once, then the map of every method
/// from it: per target, one `BatchMaps` per method.
pub fn explain_batch<B: GuidedBackend + AutodiffKernels>(
    model: &Network<B>,
    samples: &[&Sample],
    request: &Request,
    batcher: &Batcher,
    device: &B::Device,
) -> Result<Vec<BatchExplanation>> {
    let images = input_batch(model, samples, batcher, device)?;
    capture_layers(model, images.clone(), request)?
        .iter()
        .map(|captures| explain_target(model, images.clone(), captures, request))
        .collect()
}

/// The maps of every method for one target, from its `captures` (one per layer).
fn explain_target<B: GuidedBackend + AutodiffKernels>(
    model: &Network<B>,
    images: Tensor<B::InnerBackend, 4>,
    captures: &[Capture<B::InnerBackend>],
    request: &Request,
) -> Result<BatchExplanation> {
    let [_, _, height, width] = images.dims();
    let captured = &captures[0];
    // Finer-CAM differentiates its own score, Smooth Grad-CAM++ noisy copies of the images:
    // captures of their own, for the same classes.
    let own: Vec<(Method, Vec<Capture<B::InnerBackend>>)> = request
        .methods
        .iter()
        .filter(|m| m.has_own_capture())
        .map(|&m| {
            Ok((
                m,
                own_captures(m, model, images.clone(), captured, request)?,
            ))
        })
        .collect::<Result<_>>()?;
    let [_, classes] = captured.probabilities().dims();
    let probabilities = to_vec(captured.probabilities());
    let inference = model.valid();
    // Images per forward pass in Score-CAM, ablated maps per classifier pass in Ablation-CAM.
    let (smoothing, chunk) = (request.smoothing, B::PERTURBATION_BATCH);
    let maps = request
        .methods
        .iter()
        .map(|&method| {
            let captures = match own.iter().find(|(m, _)| *m == method) {
                Some((_, own)) => own,
                None => captures,
            };
            let map = if smoothing.sess || smoothing.augmentation {
                // Both wrap the method: maps of transformed images, put together.
                let wrapped = match smoothing.sess {
                    true => cam::sess::sess as fn(_, _, _, _, _, _, _) -> _,
                    false => cam::smoothing::aug_smooth as fn(_, _, _, _, _, _, _) -> _,
                };
                wrapped(
                    model,
                    images.clone(),
                    captured,
                    request.layers,
                    method,
                    smoothing.eigen,
                    chunk,
                )?
            } else {
                let mut raw: Vec<_> = captures
                    .iter()
                    .map(|c| {
                        method.smoothed_map(&inference, images.clone(), c, chunk, smoothing.eigen)
                    })
                    .collect();
                match raw.len() {
                    1 => raw.remove(0),
                    _ => method.combine_layers(raw, [height, width]),
                }
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
                post_processed: smoothing.augmentation || smoothing.sess,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let guided = request.guided.then(|| {
        let gradients = guided_backprop(model, images, &captured.targets);
        to_vec(gradients)
            .chunks(3 * height * width)
            .map(<[f32]>::to_vec)
            .collect()
    });
    Ok(BatchExplanation { maps, guided })
}

/// `method`'s own capture at each of the request's layers, for the classes `captured` resolved.
fn own_captures<B: GuidedBackend + AutodiffKernels>(
    method: Method,
    model: &Network<B>,
    images: Tensor<B::InnerBackend, 4>,
    captured: &Capture<B::InnerBackend>,
    request: &Request,
) -> Result<Vec<Capture<B::InnerBackend>>> {
    let classes: Vec<Target> = captured.targets.iter().map(|&t| Target::Class(t)).collect();
    request
        .layers
        .iter()
        .map(|&layer| Ok(method.capture(model, images.clone(), &classes, layer, request.score)?))
        .collect()
}

/// Per target, a capture at each of the request's layers (at least one); the first layer
/// resolves the targets for the rest. All targets share each layer's forward and backward.
fn capture_layers<B: GuidedBackend + AutodiffKernels>(
    model: &Network<B>,
    images: Tensor<B::InnerBackend, 4>,
    request: &Request,
) -> Result<Vec<Vec<Capture<B::InnerBackend>>>> {
    let (batch, score) = (images.dims()[0], request.score);
    // Eigen-CAM, FEM, KPCA-CAM, Score-CAM, Ablation-CAM and RandomCAM alone skip the backward.
    let backward = request.methods.iter().any(|m| m.uses_gradients());
    let inference = model.valid();
    let capture_at = |requests: &[Vec<Target>], layer: usize| {
        let requests: Vec<&[Target]> = requests.iter().map(Vec::as_slice).collect();
        match backward {
            true => capture_scored_each(model, images.clone(), &requests, layer, score),
            false => {
                capture_without_gradients_each(&inference, images.clone(), &requests, layer, score)
            }
        }
    };
    let asked: Vec<Vec<Target>> = request.targets.iter().map(|&t| vec![t; batch]).collect();
    let (first, rest) = request.layers.split_first().expect("one layer or more");
    let mut by_target: Vec<Vec<_>> = capture_at(&asked, *first)?
        .into_iter()
        .map(|captured| vec![captured])
        .collect();
    let resolved: Vec<Vec<Target>> = by_target
        .iter()
        .map(|c| c[0].targets.iter().map(|&t| Target::Class(t)).collect())
        .collect();
    for &layer in rest {
        for (captures, captured) in by_target.iter_mut().zip(capture_at(&resolved, layer)?) {
            captures.push(captured);
        }
    }
    Ok(by_target)
}

/// The samples preprocessed as one batch for the inference backend, checked against what the
/// model accepts.
pub fn input_batch<B: AutodiffKernels>(
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
