//! Grad-CAM (Selvaraju et al. 2017): channel weights are the spatial means of dS/dA, the map
//! is the weighted sum of the channels. ReLU and normalisation are post-processing.

use burn::prelude::*;

/// w_k = mean over (i, j) of dS/dA_k: `[batch, channels, h, w]` → `[batch, channels]`.
pub fn grad_cam_weights<B: Backend>(gradients: Tensor<B, 4>) -> Tensor<B, 2> {
    model::global_average_pool(gradients)
}

/// The raw map Σ_k w_k A_k, `[batch, h, w]`, before ReLU (the tutorial's mean over k differs
/// only by the factor 1/K, which normalisation removes).
pub fn grad_cam<B: Backend>(activations: Tensor<B, 4>, gradients: Tensor<B, 4>) -> Tensor<B, 3> {
    super::channel_sum(grad_cam_contributions(activations, gradients))
}

/// The channels' terms w_k A_k of Grad-CAM, `[batch, channels, h, w]`.
pub fn grad_cam_contributions<B: Backend>(
    activations: Tensor<B, 4>,
    gradients: Tensor<B, 4>,
) -> Tensor<B, 4> {
    super::weighted(activations, grad_cam_weights(gradients))
}
