//! SESS, Saliency Enhancing with Scaling and Sliding (Tursun et al. 2022), as pytorch-grad-cam
//! 1.5.7's `SESS` wraps any method: the image at twelve growing scales, a square window slid
//! over each, every window's map weighted by its softmax score for the target and pasted back
//! where it was taken, the pasted maps averaged pixel by pixel over the windows that cover it,
//! blurred and normalised.

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use model::{PlainRelu, SplitModel, class_probabilities};

use crate::postprocess::{Normalization, gaussian_blur, relu_normalize, resize_bilinear};
use crate::{Capture, CaptureError, Method, Target};

/// pytorch-grad-cam's defaults: the scales,
pub const SESS_SCALES: usize = 12;
/// each this share of the window larger than the last,
pub const SESS_SCALE_STEP: f64 = 2.0 / 7.0;
/// and patches per forward pass.
const PATCH_BATCH: usize = 32;

/// SESS maps `[batch, height, width]` in [0, 1] of `method` at `layers` (fused as usual when
/// several), explaining the classes `original` resolved, with the window the shorter side of
/// the image, moved a whole window at a time, and every window kept.
pub fn sess<B, M>(
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
    let [batch, channels, height, width] = images.dims();
    let device = images.device();
    let pixels = images.into_data().to_vec::<f32>().expect("f32 images");
    let per_image = channels * height * width;
    let mut maps = Vec::with_capacity(batch * height * width);
    for (image, &target) in pixels.chunks(per_image).zip(&original.targets) {
        let explained = Explained {
            model,
            method,
            layers,
            target,
            eigen_smooth,
            chunk,
        };
        let map = explained.enhance(image, [channels, height, width], &device)?;
        maps.extend(relu_normalize(&map, Normalization::MinMax));
    }
    let maps = TensorData::new(maps, [batch, height, width]);
    Ok(Tensor::from_data(maps, &device))
}

/// One image's SESS: the method, where, and which class.
struct Explained<'a, M> {
    model: &'a M,
    method: Method,
    layers: &'a [usize],
    target: usize,
    eigen_smooth: bool,
    chunk: usize,
}

/// A window: its top-left corner in the scaled image, and that image's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    x: usize,
    y: usize,
    scaled: [usize; 2],
}

impl<M> Explained<'_, M> {
    /// The fused, blurred map `height × width` of one image `[c, h, w]`.
    fn enhance<B>(
        &self,
        image: &[f32],
        [channels, height, width]: [usize; 3],
        device: &burn::tensor::Device<B::InnerBackend>,
    ) -> Result<Vec<f32>, CaptureError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B> + SplitModel<B>,
        M::InnerModule: SplitModel<B::InnerBackend>,
    {
        let side = height.min(width);
        let (patches, windows) = patches(image, [channels, height, width], side);
        let to_batch = |indices: &[usize]| {
            let values: Vec<f32> = indices.iter().flat_map(|&i| patches[i].clone()).collect();
            let data = TensorData::new(values, [indices.len(), channels, side, side]);
            Tensor::<B::InnerBackend, 4>::from_data(data, device)
        };
        let all: Vec<usize> = (0..patches.len()).collect();
        let scores = self.scores::<B>(&all, &to_batch);
        let best = scores.iter().copied().fold(0.0f32, f32::max);

        let mut total = vec![0f32; height * width];
        let mut counts = vec![0f32; height * width];
        for indices in all.chunks(PATCH_BATCH) {
            let maps = self.patch_maps::<B>(to_batch(indices), side)?;
            for (map, &i) in maps.chunks(side * side).zip(indices) {
                let weight = if best > 0.0 { scores[i] / best } else { 1.0 };
                let weighted: Vec<f32> = map.iter().map(|v| v * weight).collect();
                let pasted = paste(&weighted, side, windows[i], [height, width]);
                for ((t, c), v) in total.iter_mut().zip(&mut counts).zip(pasted) {
                    if v > 0.0 {
                        *t += v;
                        *c += 1.0;
                    }
                }
            }
        }
        let mean: Vec<f32> = total
            .iter()
            .zip(&counts)
            .map(|(&t, &c)| if c > 0.0 { t / c } else { 0.0 })
            .collect();
        Ok(gaussian_blur(&mean, [height, width], 11, 5.0))
    }

    /// Each patch's softmax probability of the target, negatives clipped to 0.
    fn scores<B>(
        &self,
        indices: &[usize],
        to_batch: &dyn Fn(&[usize]) -> Tensor<B::InnerBackend, 4>,
    ) -> Vec<f32>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B> + SplitModel<B>,
        M::InnerModule: SplitModel<B::InnerBackend>,
    {
        let inference = self.model.valid();
        let last = inference.last_layer();
        let mut scores = Vec::with_capacity(indices.len());
        for batch in indices.chunks(PATCH_BATCH) {
            let features = inference.features_at(to_batch(batch), last, &PlainRelu);
            let outputs = inference.logits_from(features, last, &PlainRelu);
            let probabilities = class_probabilities(outputs);
            let classes = probabilities.dims()[1];
            let values = probabilities
                .into_data()
                .to_vec::<f32>()
                .expect("f32 scores");
            scores.extend(values.chunks(classes).map(|row| row[self.target].max(0.0)));
        }
        scores
    }

    /// The method's maps of a batch of patches, each `side × side` in [0, 1] as the method
    /// alone would give them (fused over the layers when several).
    fn patch_maps<B>(
        &self,
        patches: Tensor<B::InnerBackend, 4>,
        side: usize,
    ) -> Result<Vec<f32>, CaptureError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B> + SplitModel<B>,
        M::InnerModule: SplitModel<B::InnerBackend>,
    {
        let n = patches.dims()[0];
        let targets = vec![Target::Class(self.target); n];
        let inference = self.model.valid();
        let raw = self
            .layers
            .iter()
            .map(|&layer| {
                let captured = self.method.capture(
                    self.model,
                    patches.clone(),
                    &targets,
                    layer,
                    crate::Score::Logit,
                )?;
                Ok(self.method.smoothed_map(
                    &inference,
                    patches.clone(),
                    &captured,
                    self.chunk,
                    self.eigen_smooth,
                ))
            })
            .collect::<Result<Vec<_>, CaptureError>>()?;
        let maps = self.method.combine_layers(raw, [side, side]);
        Ok(maps.into_data().to_vec::<f32>().expect("f32 maps"))
    }
}

/// The sizes the shorter side is scaled to: the window, then growing by a rounded
/// `SESS_SCALE_STEP` of it (224, 288, … 928 for a 224 window).
fn scales(window: usize) -> Vec<usize> {
    let step = (window as f64 * SESS_SCALE_STEP).round_ties_even() as usize;
    (0..SESS_SCALES).map(|i| window + step * i).collect()
}

/// Where windows start along a side of `length`, a whole window apart; the last is moved
/// back inside the side.
fn window_starts(length: usize, window: usize) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut start = 0;
    while start < length {
        if start + window >= length {
            starts.push(length.saturating_sub(window));
            break;
        }
        starts.push(start);
        start += window;
    }
    starts
}

/// Every window of every scale of `image` (`[c, h, w]`), as `[c, side, side]` pixels, with
/// where it was taken. Scaling keeps the aspect ratio (torchvision's `resize` to the shorter
/// side; every scale enlarges, where bilinear interpolation is what it computes).
fn patches(
    image: &[f32],
    [channels, height, width]: [usize; 3],
    side: usize,
) -> (Vec<Vec<f32>>, Vec<Window>) {
    let (mut patches, mut windows) = (Vec::new(), Vec::new());
    for scale in scales(side) {
        let scaled = if height <= width {
            [scale, scale * width / height]
        } else {
            [scale * height / width, scale]
        };
        let planes: Vec<Vec<f32>> = image
            .chunks(height * width)
            .map(|plane| resize_bilinear(plane, [height, width], scaled))
            .collect();
        for y in window_starts(scaled[0], side) {
            for x in window_starts(scaled[1], side) {
                let mut patch = Vec::with_capacity(channels * side * side);
                for plane in &planes {
                    for row in y..y + side {
                        let start = row * scaled[1] + x;
                        patch.extend_from_slice(&plane[start..start + side]);
                    }
                }
                patches.push(patch);
                windows.push(Window { x, y, scaled });
            }
        }
    }
    (patches, windows)
}

/// A window's map put back where it was taken in its scaled image, and that image resized to
/// `[height, width]`.
fn paste(map: &[f32], side: usize, window: Window, size: [usize; 2]) -> Vec<f32> {
    let [sh, sw] = window.scaled;
    let mut full = vec![0f32; sh * sw];
    for (row, values) in map.chunks(side).enumerate() {
        let start = (window.y + row) * sw + window.x;
        full[start..start + side].copy_from_slice(values);
    }
    resize_bilinear(&full, [sh, sw], size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_and_windows_as_pytorch_grad_cam() {
        assert_eq!(scales(224)[..3], [224, 288, 352]);
        assert_eq!(*scales(224).last().unwrap(), 928);
        // 12 · 2/7 = 3.43 → 3.
        assert_eq!(scales(12)[..3], [12, 15, 18]);
        assert_eq!(window_starts(224, 224), [0]);
        assert_eq!(window_starts(288, 224), [0, 64]);
        assert_eq!(window_starts(928, 224), [0, 224, 448, 672, 704]);
        assert_eq!(window_starts(10, 224), [0]);
    }

    #[test]
    fn a_square_image_has_122_windows_at_any_size() {
        for side in [14, 32, 224] {
            let windows: usize = scales(side)
                .into_iter()
                .map(|scale| window_starts(scale, side).len().pow(2))
                .sum();
            assert_eq!(windows, 122, "side {side}");
        }
        let image = vec![0.5f32; 3 * 14 * 14];
        let (patches, windows) = patches(&image, [3, 14, 14], 14);
        assert_eq!((patches.len(), windows.len()), (122, 122));
        assert!(patches.iter().all(|p| p.len() == 3 * 14 * 14));
    }

    #[test]
    fn a_window_goes_back_where_it_was_taken() {
        // A 2 × 2 map from the top-right of a 2 × 4 scaled image, which is the output size.
        let window = Window {
            x: 2,
            y: 0,
            scaled: [2, 4],
        };
        let pasted = paste(&[1.0, 2.0, 3.0, 4.0], 2, window, [2, 4]);
        assert_eq!(pasted, [0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 3.0, 4.0]);
    }
}
