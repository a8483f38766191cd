//! Test-time augmentation smoothing, as pytorch-grad-cam's `aug_smooth`: the map of the image,
//! of its mirror image and of both with the input scaled by 0.9 and 1.1, each post-processed
//! (ReLU, min-max, resized to the input), mirrored back and averaged.

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use model::SplitModel;

use crate::postprocess::{Normalization, relu_normalize, upsample};
use crate::{CaptureError, Method, Target, capture};

/// The augmentations: (mirrored, factor on the preprocessed input).
const AUGMENTATIONS: [(bool, f32); 6] = [
    (false, 0.9),
    (false, 1.0),
    (false, 1.1),
    (true, 0.9),
    (true, 1.0),
    (true, 1.1),
];

/// Averaged maps `[batch, height, width]` at the input's size, in [0, 1], for the classes
/// `targets` (resolved beforehand, so that every augmentation explains the same class).
pub fn aug_smooth<B, M>(
    model: &M,
    images: Tensor<B::InnerBackend, 4>,
    targets: &[usize],
    method: Method,
    eigen_smooth: bool,
    chunk: usize,
) -> Result<Tensor<B::InnerBackend, 3>, CaptureError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SplitModel<B>,
    M::InnerModule: SplitModel<B::InnerBackend>,
{
    let [batch, _, height, width] = images.dims();
    let device = images.device();
    let inference = model.valid();
    let fixed: Vec<Target> = targets.iter().map(|&t| Target::Class(t)).collect();
    let mut sum = vec![0f32; batch * height * width];
    for (mirrored, factor) in AUGMENTATIONS {
        let mut x = images.clone() * factor;
        if mirrored {
            x = x.flip([3]);
        }
        let captured = capture(model, x.clone(), &fixed)?;
        let [_, _, h, w] = captured.activations.dims();
        let raw = method.smoothed_map(&inference, x, &captured, chunk, eigen_smooth);
        let raw = raw.into_data().to_vec::<f32>().expect("f32 maps");
        let minmax = Normalization::MinMax;
        for (i, map) in raw.chunks(h * w).enumerate() {
            let full = upsample(
                &relu_normalize(map, minmax),
                [h, w],
                [height, width],
                minmax,
            );
            let out = &mut sum[i * height * width..(i + 1) * height * width];
            for y in 0..height {
                for x in 0..width {
                    let from = if mirrored { width - 1 - x } else { x };
                    out[y * width + x] += full[y * width + from];
                }
            }
        }
    }
    let mean: Vec<f32> = sum.iter().map(|v| v / AUGMENTATIONS.len() as f32).collect();
    Ok(Tensor::from_data(
        TensorData::new(mean, [batch, height, width]),
        &device,
    ))
}
