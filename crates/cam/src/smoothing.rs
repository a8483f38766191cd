//! Test-time augmentation smoothing, as pytorch-grad-cam's `aug_smooth`: the map of the image,
//! of its mirror image and of both with the input scaled by 0.9 and 1.1, each post-processed
//! (ReLU, min-max, resized to the input; fused over the layers), mirrored back and averaged.

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use model::SplitModel;

use crate::{Capture, CaptureError, Method, Target};

/// The augmentations: (mirrored, factor on the preprocessed input).
const AUGMENTATIONS: [(bool, f32); 6] = [
    (false, 0.9),
    (false, 1.0),
    (false, 1.1),
    (true, 0.9),
    (true, 1.0),
    (true, 1.1),
];

/// Averaged maps `[batch, height, width]` at the input's size, in [0, 1], for the targets and
/// score of `original`, the capture of the images themselves (so that every augmentation
/// explains the same class), taken at `layers` (fused when several).
pub fn aug_smooth<B, M>(
    model: &M,
    images: Tensor<B::InnerBackend, 4>,
    original: &Capture<B::InnerBackend>,
    layers: &[usize],
    method: Method,
    eigen_smooth: bool,
    chunk: usize,
) -> Result<Tensor<B::InnerBackend, 3>, CaptureError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SplitModel<B>,
    M::InnerModule: SplitModel<B::InnerBackend>,
{
    let [_, _, height, width] = images.dims();
    let inference = model.valid();
    let fixed: Vec<Target> = original.targets.iter().map(|&t| Target::Class(t)).collect();
    let mut sum: Option<Tensor<B::InnerBackend, 3>> = None;
    for (mirrored, factor) in AUGMENTATIONS {
        let mut x = images.clone() * factor;
        if mirrored {
            x = x.flip([3]);
        }
        let raw = layers
            .iter()
            .map(|&layer| {
                // The method's own capture where it has one (Finer-CAM, FullGrad, ...).
                let captured = method.capture(model, x.clone(), &fixed, layer, original.score)?;
                Ok(method.smoothed_map(&inference, x.clone(), &captured, chunk, eigen_smooth))
            })
            .collect::<Result<Vec<_>, CaptureError>>()?;
        let mut maps = method.combine_layers(raw, [height, width]);
        if mirrored {
            maps = maps.flip([2]);
        }
        sum = Some(match sum {
            Some(sum) => sum + maps,
            None => maps,
        });
    }
    Ok(sum.expect("augmentations") / AUGMENTATIONS.len() as f32)
}
