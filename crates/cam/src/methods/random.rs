//! RandomCAM: channel weights drawn uniformly from [−1, 1], pytorch-grad-cam's baseline for
//! what a method that knows nothing about the model scores. Seeded, so a run repeats.

use burn::prelude::*;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::weighted;

/// The seed `--method randomcam` draws with.
pub const RANDOM_CAM_SEED: u64 = 0;

/// `[batch, channels]` weights uniform in [−1, 1) from `seed`.
pub fn random_weights<B: Backend>(
    batch: usize,
    channels: usize,
    seed: u64,
    device: &B::Device,
) -> Tensor<B, 2> {
    let mut rng = StdRng::seed_from_u64(seed);
    let draws: Vec<f32> = (0..batch * channels)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    Tensor::from_data(TensorData::new(draws, [batch, channels]), device)
}

/// The channels weighted by `weights` (drawn by [`random_weights`], or given: the reference's
/// own draws in the parity test).
pub fn random_cam<B: Backend>(activations: Tensor<B, 4>, weights: Tensor<B, 2>) -> Tensor<B, 4> {
    weighted(activations, weights)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn_flex::Flex;

    #[test]
    fn draws_repeat_with_their_seed_and_stay_in_range() {
        let device = Default::default();
        let a = random_weights::<Flex>(3, 50, 7, &device).into_data();
        let b = random_weights::<Flex>(3, 50, 7, &device).into_data();
        let c = random_weights::<Flex>(3, 50, 8, &device).into_data();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let values = a.to_vec::<f32>().unwrap();
        assert!(values.iter().all(|v| (-1.0..1.0).contains(v)));
        assert!(values.iter().any(|&v| v < -0.5) && values.iter().any(|&v| v > 0.5));
    }
}
