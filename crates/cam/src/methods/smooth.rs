//! Smooth Grad-CAM++ (Omeiza et al. 2019) as torch-cam 0.5 weighs the channels: Grad-CAM++'s
//! α from SmoothGrad's means of g² and g³ over noisy copies of the input.

use burn::prelude::*;

use super::gradient::spatial_sum;

/// torch-cam's defaults: noisy copies,
pub const SMOOTH_GRAD_SAMPLES: usize = 4;
/// the noise's standard deviation on the preprocessed input,
pub const SMOOTH_GRAD_STD: f64 = 0.3;
/// and the seed of `--method smoothgradcam++`'s draws.
pub const SMOOTH_GRAD_SEED: u64 = 0;

/// w_k = Σ_ij α · ReLU(g) with α = E[g²] / (2 E[g²] + Σ_ab A · E[g³] + 1e-8), `[batch,
/// channels]`: torch-cam's α (its correction of the paper's numerator, E[g²] for E[g]), the sum
/// over the channel's positions of A · E[g³] in the denominator. `gradients` are g, `squares`
/// and `cubes` E[g²] and E[g³].
pub fn smooth_grad_cam_plus_plus_weights<B: Backend>(
    activations: Tensor<B, 4>,
    gradients: Tensor<B, 4>,
    squares: Tensor<B, 4>,
    cubes: Tensor<B, 4>,
) -> Tensor<B, 2> {
    let [batch, channels, _, _] = activations.dims();
    let moment = spatial_sum(cubes * activations).reshape([batch, channels, 1, 1]);
    let alpha = squares.clone() / (squares * 2.0 + moment + 1e-8);
    spatial_sum(alpha * gradients.clamp_min(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    fn tensor(values: &[f32]) -> Tensor<Flex, 4> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [1, 1, 1, 2]),
            &Default::default(),
        )
    }

    #[test]
    fn weights_by_hand() {
        // One channel, two positions: A = [1, 3], g = [0.5, -1]; copies gave E[g²] = [1, 4],
        // E[g³] = [1, -2]. Σ A · E[g³] = 1 − 6 = −5. α = [1 / (2 − 5), 4 / (8 − 5)];
        // w = α₀ · 0.5 + α₁ · 0 = −1/6.
        let w = smooth_grad_cam_plus_plus_weights(
            tensor(&[1.0, 3.0]),
            tensor(&[0.5, -1.0]),
            tensor(&[1.0, 4.0]),
            tensor(&[1.0, -2.0]),
        );
        let w = w.into_data().to_vec::<f32>().unwrap();
        assert!((w[0] + 1.0 / 6.0).abs() < 1e-6, "{w:?}");
    }
}
