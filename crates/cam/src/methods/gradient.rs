//! The gradient-weighted methods other than Grad-CAM, each as pytorch-grad-cam computes it.
//! All take A and dS/dA, `[batch, channels, h, w]`, and return the channels' contributions,
//! same shape: their sum over channels is the raw map (`channel_sum`), their first principal
//! component the eigen-smoothed one.

use burn::prelude::*;

/// w_k A_k for channel weights `[batch, channels]`.
pub fn weighted<B: Backend>(activations: Tensor<B, 4>, weights: Tensor<B, 2>) -> Tensor<B, 4> {
    let [batch, channels, _, _] = activations.dims();
    activations * weights.reshape([batch, channels, 1, 1])
}

/// Σ over (i, j) of a `[batch, channels, h, w]` tensor → `[batch, channels]`.
pub(super) fn spatial_sum<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    x.sum_dim(3).sum_dim(2).flatten(1, 3)
}

/// Σ over channels → `[batch, h, w]`: contributions to the raw map.
pub fn channel_sum<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [batch, _, h, w] = x.dims();
    x.sum_dim(1).reshape([batch, h, w])
}

/// Grad-CAM++ (Chattopadhyay et al. 2018) in the closed form that assumes S = exp(logit):
/// α = g² / (2g² + Σ_ij A · g³), w_k = Σ_ij α · ReLU(g); α = 0 where g = 0.
pub fn grad_cam_plus_plus<B: Backend>(
    activations: Tensor<B, 4>,
    gradients: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let [batch, channels, _, _] = activations.dims();
    let g2 = gradients.clone().powi_scalar(2);
    let g3 = g2.clone() * gradients.clone();
    let sum_a = spatial_sum(activations.clone()).reshape([batch, channels, 1, 1]);
    let alpha = g2.clone() / (g2 * 2.0 + g3 * sum_a + 1e-6);
    let alpha = alpha.mask_fill(gradients.clone().equal_elem(0.0), 0.0);
    let weights = spatial_sum(gradients.clamp_min(0.0) * alpha);
    weighted(activations, weights)
}

/// XGrad-CAM (Fu et al. 2020): w_k = Σ_ij g · A / (Σ_ij A + 1e-7).
pub fn xgrad_cam<B: Backend>(activations: Tensor<B, 4>, gradients: Tensor<B, 4>) -> Tensor<B, 4> {
    let [batch, channels, _, _] = activations.dims();
    let sum_a = spatial_sum(activations.clone()).reshape([batch, channels, 1, 1]);
    let weights = spatial_sum(gradients * activations.clone() / (sum_a + 1e-7));
    weighted(activations, weights)
}

/// HiResCAM (Draelos & Carin 2020): g_k ⊙ A_k, no pooling of the gradients.
pub fn hires_cam<B: Backend>(activations: Tensor<B, 4>, gradients: Tensor<B, 4>) -> Tensor<B, 4> {
    gradients * activations
}

/// Grad-CAM element-wise (pytorch-grad-cam): ReLU(g_k ⊙ A_k).
pub fn grad_cam_element_wise<B: Backend>(
    activations: Tensor<B, 4>,
    gradients: Tensor<B, 4>,
) -> Tensor<B, 4> {
    (gradients * activations).clamp_min(0.0)
}

/// LayerCAM (Jiang et al. 2021): ReLU(g_k) ⊙ A_k.
pub fn layer_cam<B: Backend>(activations: Tensor<B, 4>, gradients: Tensor<B, 4>) -> Tensor<B, 4> {
    gradients.clamp_min(0.0) * activations
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    fn tensor(values: &[f32], shape: [usize; 4]) -> Tensor<Flex, 4> {
        Tensor::from_data(TensorData::new(values.to_vec(), shape), &Default::default())
    }

    /// The raw map of some contributions.
    fn values(t: Tensor<Flex, 4>) -> Vec<f32> {
        channel_sum(t).into_data().to_vec().unwrap()
    }

    /// One image, two channels of two pixels: A = [[1, 3], [2, 0]], g = [[0.5, -1], [0, 2]].
    fn example() -> (Tensor<Flex, 4>, Tensor<Flex, 4>) {
        (
            tensor(&[1.0, 3.0, 2.0, 0.0], [1, 2, 1, 2]),
            tensor(&[0.5, -1.0, 0.0, 2.0], [1, 2, 1, 2]),
        )
    }

    #[test]
    fn element_wise_methods_by_hand() {
        let (a, g) = example();
        // g ⊙ A = [[0.5, -3], [0, 0]].
        assert_eq!(values(hires_cam(a.clone(), g.clone())), [0.5, -3.0]);
        assert_eq!(
            values(grad_cam_element_wise(a.clone(), g.clone())),
            [0.5, 0.0]
        );
        // ReLU(g) ⊙ A = [[0.5, 0], [0, 0]].
        assert_eq!(values(layer_cam(a, g)), [0.5, 0.0]);
    }

    #[test]
    fn xgrad_cam_by_hand() {
        let (a, g) = example();
        // w_0 = (0.5·1 − 1·3) / 4 = −0.625; w_1 = (0·2 + 2·0) / 2 = 0.
        let map = values(xgrad_cam(a, g));
        for (got, want) in map.iter().zip([-0.625, -1.875]) {
            assert!((got - want).abs() < 1e-5, "{map:?}");
        }
    }

    #[test]
    fn grad_cam_plus_plus_by_hand() {
        let (a, g) = example();
        // Channel 0: ΣA = 4. Pixel 0: g = 0.5 → α = 0.25 / (0.5 + 4·0.125) = 0.25, ReLU(g) = 0.5;
        // pixel 1: g = −1 → ReLU(g) = 0. w_0 = 0.125. Channel 1: ΣA = 2, g = 0 then 2:
        // α = 4 / (8 + 2·8) = 1/6, w_1 = 2/6. Map = 0.125·[1, 3] + (1/3)·[2, 0].
        let map = values(grad_cam_plus_plus(a, g));
        for (got, want) in map.iter().zip([0.125 + 2.0 / 3.0, 0.375]) {
            assert!((got - want).abs() < 1e-5, "{map:?}");
        }
    }
}
