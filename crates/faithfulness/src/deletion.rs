//! Deletion and insertion (Petsiuk et al. 2018, RISE §4.1): pixels are removed from the image,
//! or inserted into a blurred copy, in the order of the map, most salient first, `step` pixels
//! at a time; the target probability after each step traces a curve over the fraction of
//! pixels changed, and its area (trapezoids) is the score. Deletion: lower is better.
//! Insertion: higher is better. Removed pixels take the value 0 of the preprocessed tensor
//! (the data set's mean colour when inputs are mean/std-normalised).

use burn::prelude::*;

use crate::confidence::target_column;

/// The target probability after each step of deletion and of insertion, from nothing changed
/// to every pixel changed (the same number of points for every image of one size).
#[derive(Debug, Clone, PartialEq)]
pub struct Curves {
    pub deletion: Vec<f32>,
    pub insertion: Vec<f32>,
}

impl Curves {
    /// Area under the deletion curve, in [0, 1]: lower is better.
    pub fn deletion_auc(&self) -> f32 {
        area(&self.deletion)
    }

    /// Area under the insertion curve, in [0, 1]: higher is better.
    pub fn insertion_auc(&self) -> f32 {
        area(&self.insertion)
    }
}

/// One image `[1, c, h, w]`, its map (`h × w`), its target; `chunk` perturbed images per call.
pub fn deletion_insertion<B: Backend>(
    probabilities: &dyn Fn(Tensor<B, 4>) -> Tensor<B, 2>,
    image: Tensor<B, 4>,
    map: &[f32],
    target: usize,
    step: usize,
    chunk: usize,
) -> Curves {
    let [_, c, h, w] = image.dims();
    let device = image.device();
    let pixels = h * w;
    let mut order: Vec<usize> = (0..pixels).collect();
    order.sort_by(|&a, &b| map[b].total_cmp(&map[a]));
    let steps = pixels.div_ceil(step.max(1));
    // Mask k keeps (deletion) the pixels after the first k·step of the order.
    let kept: Vec<Vec<f32>> = (0..=steps)
        .map(|k| {
            let mut mask = vec![1.0f32; pixels];
            for &p in order.iter().take(k * step.max(1)) {
                mask[p] = 0.0;
            }
            mask
        })
        .collect();
    let blurred = box_blur(image.clone(), 11);
    let curve = |start: Tensor<B, 4>, end: Tensor<B, 4>| -> Vec<f32> {
        let mut scores = Vec::with_capacity(kept.len());
        for masks in kept.chunks(chunk.max(1)) {
            let n = masks.len();
            let m =
                Tensor::<B, 4>::from_data(TensorData::new(masks.concat(), [n, 1, h, w]), &device);
            let batch = start.clone().expand([n, c, h, w]) * m.clone()
                + end.clone().expand([n, c, h, w]) * (m.neg() + 1.0);
            scores.extend(target_column(probabilities(batch), &vec![target; n]));
        }
        scores
    };
    let zeros = Tensor::<B, 4>::zeros([1, c, h, w], &device);
    Curves {
        deletion: curve(image.clone(), zeros),
        insertion: curve(blurred, image),
    }
}

/// Mean of a curve sampled at equal steps over [0, 1] (trapezoids).
fn area(values: &[f32]) -> f32 {
    let n = values.len() - 1;
    if n == 0 {
        return values[0];
    }
    (values.iter().sum::<f32>() - (values[0] + values[n]) / 2.0) / n as f32
}

/// A k×k mean filter with clamped borders: the blurred start of insertion.
fn box_blur<B: Backend>(image: Tensor<B, 4>, k: usize) -> Tensor<B, 4> {
    use burn::tensor::module::avg_pool2d;
    let pad = k / 2;
    let [_, _, h, w] = image.dims();
    let padded = replicate_pad(image, pad);
    let out = avg_pool2d(padded, [k, k], [1, 1], [0, 0], true, false);
    let [n, c, _, _] = out.dims();
    out.slice([0..n, 0..c, 0..h, 0..w])
}

fn replicate_pad<B: Backend>(x: Tensor<B, 4>, pad: usize) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let top = x
        .clone()
        .slice([0..n, 0..c, 0..1, 0..w])
        .expand([n, c, pad, w]);
    let bottom = x
        .clone()
        .slice([0..n, 0..c, h - 1..h, 0..w])
        .expand([n, c, pad, w]);
    let x = Tensor::cat(vec![top, x, bottom], 2);
    let hh = h + 2 * pad;
    let left = x
        .clone()
        .slice([0..n, 0..c, 0..hh, 0..1])
        .expand([n, c, hh, pad]);
    let right = x
        .clone()
        .slice([0..n, 0..c, 0..hh, w - 1..w])
        .expand([n, c, hh, pad]);
    Tensor::cat(vec![left, x, right], 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    /// "Probability" = the mean of the image's left column, a model that looks there only.
    fn left_column(x: Tensor<Flex, 4>) -> Tensor<Flex, 2> {
        let [n, _, h, _] = x.dims();
        let p = x
            .slice([0..n, 0..1, 0..h, 0..1])
            .mean_dim(2)
            .reshape([n, 1]);
        Tensor::cat(vec![p.clone(), p.neg() + 1.0], 1)
    }

    #[test]
    fn the_right_map_deletes_fast_and_inserts_fast() {
        let device = Default::default();
        let image = Tensor::<Flex, 4>::ones([1, 1, 2, 2], &device);
        let good = [1.0, 0.0, 0.9, 0.0]; // the left column first
        let bad = [0.0, 1.0, 0.0, 0.9];
        let g = deletion_insertion(&left_column, image.clone(), &good, 0, 1, 3);
        let b = deletion_insertion(&left_column, image, &bad, 0, 1, 3);
        // Good deletion curve: 1, 0.5, 0, 0, 0 → area (1 + 0.5 − 0.5) / 4 = 0.25.
        assert_eq!(g.deletion, [1.0, 0.5, 0.0, 0.0, 0.0]);
        assert!((g.deletion_auc() - 0.25).abs() < 1e-6, "{g:?}");
        // Bad: 1, 1, 1, 0.5, 0 → (3.5 − 0.5) / 4 = 0.75.
        assert_eq!(b.deletion, [1.0, 1.0, 1.0, 0.5, 0.0]);
        assert!((b.deletion_auc() - 0.75).abs() < 1e-6, "{b:?}");
        // A constant image blurs to itself, so insertion is flat at 1 for both.
        assert_eq!(g.insertion, [1.0; 5]);
        assert!((g.insertion_auc() - 1.0).abs() < 1e-6 && (b.insertion_auc() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn blur_keeps_constants_and_smooths_edges() {
        let device = Default::default();
        let x = Tensor::<Flex, 4>::from_data(
            TensorData::new(vec![0.0, 0.0, 3.0], [1, 1, 1, 3]),
            &device,
        );
        let y = box_blur(x, 3).into_data().to_vec::<f32>().unwrap();
        assert_eq!(y, [0.0, 1.0, 2.0]);
    }
}
