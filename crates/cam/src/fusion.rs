//! Maps taken at several layers, fused as pytorch-grad-cam fuses its `target_layers`: each map
//! rectified, min-max normalised and resized to the input, then their mean normalised again.

use burn::prelude::*;

use crate::postprocess::{Normalization, relu_normalize, resize_bilinear};

/// Raw maps `[batch, h_l, w_l]`, one per layer → fused maps `[batch, height, width]` in [0, 1].
/// One layer gives that layer's post-processed map.
///
/// # Panics
/// If `raw_maps` is empty or the batches differ.
pub fn fuse_layers<B: Backend>(raw_maps: Vec<Tensor<B, 3>>, size: [usize; 2]) -> Tensor<B, 3> {
    combine_layers(raw_maps, size, Combination::Mean)
}

/// RefineCAM's combination (pytorch-grad-cam's `RefineCAM`): the layers' post-processed maps
/// multiplied pixel by pixel, then min-max normalised: only what every layer marks survives.
///
/// # Panics
/// As [`fuse_layers`].
pub fn multiply_layers<B: Backend>(raw_maps: Vec<Tensor<B, 3>>, size: [usize; 2]) -> Tensor<B, 3> {
    combine_layers(raw_maps, size, Combination::Product)
}

#[derive(Clone, Copy)]
enum Combination {
    Mean,
    Product,
}

/// Each layer's map rectified, min-max normalised and resized to `size`, combined pixel by
/// pixel, and the result normalised again.
fn combine_layers<B: Backend>(
    raw_maps: Vec<Tensor<B, 3>>,
    size: [usize; 2],
    combination: Combination,
) -> Tensor<B, 3> {
    let device = raw_maps[0].device();
    let batch = raw_maps[0].dims()[0];
    let pixels = size[0] * size[1];
    let layers = raw_maps.len() as f32;
    let (start, combine): (f32, fn(f32, f32, f32) -> f32) = match combination {
        Combination::Mean => (0.0, |acc, v, layers| acc + v / layers),
        Combination::Product => (1.0, |acc, v, _| acc * v),
    };
    let mut combined = vec![start; batch * pixels];
    for raw in raw_maps {
        let [n, h, w] = raw.dims();
        assert_eq!(n, batch, "one map per image at every layer");
        let values = raw.into_data().to_vec::<f32>().expect("f32 maps");
        for (map, out) in values.chunks(h * w).zip(combined.chunks_mut(pixels)) {
            let mut full =
                resize_bilinear(&relu_normalize(map, Normalization::MinMax), [h, w], size);
            if let Combination::Product = combination {
                // Each of RefineCAM's layers is a whole one-layer CAM, normalised once more
                // after resizing: a product, unlike a mean, keeps that stretch.
                full = relu_normalize(&full, Normalization::MinMax);
            }
            out.iter_mut()
                .zip(full)
                .for_each(|(o, v)| *o = combine(*o, v, layers));
        }
    }
    let fused: Vec<f32> = combined
        .chunks(pixels)
        .flat_map(|map| relu_normalize(map, Normalization::MinMax))
        .collect();
    Tensor::from_data(TensorData::new(fused, [batch, size[0], size[1]]), &device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    fn maps(values: Vec<f32>, dims: [usize; 3]) -> Tensor<Flex, 3> {
        Tensor::from_data(TensorData::new(values, dims), &Default::default())
    }

    #[test]
    fn the_mean_of_normalised_layers_is_normalised_again() {
        // Layer 1 at the input size: a ramp 0, 1, 2, 3 (normalised 0, 1/3, 2/3, 1).
        // Layer 2: one pixel, normalised to 0 everywhere (a constant map has no span).
        let fine = maps(vec![0.0, 1.0, 2.0, 3.0], [1, 2, 2]);
        let coarse = maps(vec![5.0], [1, 1, 1]);
        let fused = fuse_layers(vec![fine, coarse], [2, 2]);
        let fused = fused.into_data().to_vec::<f32>().unwrap();
        let expected = [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0];
        for (f, e) in fused.iter().zip(expected) {
            assert!((f - e).abs() < 1e-5, "{fused:?}");
        }
    }

    #[test]
    fn refine_keeps_only_what_every_layer_marks() {
        // Normalised: [0, 0.5, 1] and [1, 1, 0] → product [0, 0.5, 0] → normalised [0, 1, 0].
        let a = maps(vec![0.0, 1.0, 2.0], [1, 1, 3]);
        let b = maps(vec![4.0, 4.0, -1.0], [1, 1, 3]);
        let refined = multiply_layers(vec![a, b], [1, 3]);
        let refined = refined.into_data().to_vec::<f32>().unwrap();
        for (r, e) in refined.iter().zip([0.0, 1.0, 0.0]) {
            assert!((r - e).abs() < 1e-5, "{refined:?}");
        }
    }

    #[test]
    fn negative_evidence_is_cut_before_the_mean() {
        // −4 is rectified to 0 before normalising, so it cannot pull the mean down.
        let a = maps(vec![-4.0, 2.0], [1, 1, 2]);
        let b = maps(vec![1.0, 3.0], [1, 1, 2]);
        let fused = fuse_layers(vec![a, b], [1, 2]);
        let fused = fused.into_data().to_vec::<f32>().unwrap();
        assert!(
            fused[0].abs() < 1e-6 && (fused[1] - 1.0).abs() < 1e-5,
            "{fused:?}"
        );
    }
}
