//! FEM, the Feature Explanation Method (Fuad et al. 2020): no gradient and no extra pass. A
//! channel weighs the share of its positions that stand out — above its own mean by `k`
//! standard deviations — as pytorch-grad-cam's `FEM` computes it.

use burn::prelude::*;

use super::weighted;

/// pytorch-grad-cam's default `k` of the k-sigma rule.
pub const FEM_SIGMAS: f64 = 2.0;

/// w_k = the fraction of (i, j) where A_k > mean(A_k) + k·std(A_k) (population std, as numpy's
/// default); returns the channels' contributions w_k A_k.
pub fn fem<B: Backend>(activations: Tensor<B, 4>, sigmas: f64) -> Tensor<B, 4> {
    let mean = activations.clone().mean_dim(3).mean_dim(2);
    let centred = activations.clone() - mean.clone();
    let std = centred.powi_scalar(2).mean_dim(3).mean_dim(2).sqrt();
    let threshold = mean + std * sigmas;
    let standing_out = activations.clone().greater(threshold).float();
    let weights = model::global_average_pool(standing_out);
    weighted(activations, weights)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn_flex::Flex;

    #[test]
    fn a_channel_weighs_its_share_of_outstanding_positions() {
        let device = Default::default();
        // Channel 0: one spike among ten zeros → mean 1/11·11 = 1, std √10, threshold 1 + 2√10
        // ≈ 7.3 < 11: one position of eleven stands out. Channel 1: constant, none does.
        let mut values = vec![0.0f32; 11];
        values[4] = 11.0;
        values.extend([3.0f32; 11]);
        let a = Tensor::<Flex, 4>::from_data(TensorData::new(values, [1, 2, 1, 11]), &device);
        let contributions = fem(a.clone(), FEM_SIGMAS)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let expected: Vec<f32> = a
            .into_data()
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, v)| if i < 11 { v * (1.0 / 11.0) } else { 0.0 })
            .collect();
        assert_eq!(contributions, expected);
    }
}
