//! Eigen-CAM (Muhammad & Yeasin 2020) and EigenGrad-CAM: the map is the projection of every
//! pixel's channel vector on the first principal component, as pytorch-grad-cam's
//! `get_2d_projection` computes it (pixels as rows, centred per channel, top right-singular
//! vector). A principal component has no sign of its own; this one is oriented towards the
//! image's mean channel vector, so that the map is high where the activations are.

use burn::prelude::*;
use nalgebra::DMatrix;

/// Eigen-CAM: the first principal component of A.
pub fn eigen_cam<B: Backend>(activations: Tensor<B, 4>) -> Tensor<B, 3> {
    first_component_map(activations)
}

/// EigenGrad-CAM: the first principal component of dS/dA ⊙ A.
pub fn eigen_grad_cam<B: Backend>(
    activations: Tensor<B, 4>,
    gradients: Tensor<B, 4>,
) -> Tensor<B, 3> {
    first_component_map(gradients * activations)
}

/// Each pixel's channel vector projected on the first principal component, `[batch, h, w]`:
/// Eigen-CAM of A, or the eigen-smoothed map of any method's channel contributions.
pub fn first_component_map<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [batch, channels, h, w] = x.dims();
    let device = x.device();
    let values = x.into_data().to_vec::<f32>().expect("f32 tensor");
    let maps: Vec<f32> = values
        .chunks(channels * h * w)
        .flat_map(|image| first_component(image, channels, h * w))
        .collect();
    Tensor::from_data(TensorData::new(maps, [batch, h, w]), &device)
}

/// `image` is `[channels, pixels]`; returns the projection of each pixel.
fn first_component(image: &[f32], channels: usize, pixels: usize) -> Vec<f32> {
    // Rows are pixels, as pytorch-grad-cam reshapes it.
    let x = DMatrix::from_fn(pixels, channels, |p, c| f64::from(image[c * pixels + p]));
    let mean = x.row_mean();
    let centred = DMatrix::from_fn(pixels, channels, |p, c| x[(p, c)] - mean[c]);
    let Some(v_t) = centred.clone().svd(false, true).v_t else {
        return vec![0.0; pixels];
    };
    if v_t.nrows() == 0 {
        return vec![0.0; pixels];
    }
    let direction = v_t.row(0).transpose();
    let sign = if mean.dot(&direction.transpose()) < 0.0 {
        -1.0
    } else {
        1.0
    };
    (centred * direction)
        .iter()
        .map(|&v| (sign * v) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn projection_follows_the_dominant_direction() {
        // Two channels over four pixels; channel 1 = 2 × channel 0, so the data lie on one
        // line and the projection is the pixels' position along it, centred.
        let a = [1.0, 2.0, 3.0, 6.0, 2.0, 4.0, 6.0, 12.0];
        let x = Tensor::<Flex, 4>::from_data(
            TensorData::new(a.to_vec(), [1, 2, 2, 2]),
            &Default::default(),
        );
        let map = eigen_cam(x).into_data().to_vec::<f32>().unwrap();
        let norm = 5f32.sqrt();
        // Centred channel 0: [-2, -1, 0, 3]; along (1, 2)/√5 the projection is √5 · that.
        for (got, want) in map.iter().zip([-2.0, -1.0, 0.0, 3.0]) {
            assert!((got - want * norm).abs() < 1e-4, "{map:?}");
        }
    }
}
