//! Maps that know nothing about the image, so that a metric's number means something: a
//! method must beat uniform noise and a blob in the centre (photographers centre their
//! subjects, and many data sets with them).

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Uniform noise in [0, 1], `h × w`, reproducible from `seed`.
pub fn random_map([h, w]: [usize; 2], seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..h * w).map(|_| rng.random::<f32>()).collect()
}

/// A Gaussian centred on the image with σ a quarter of each side, peak 1.
pub fn centre_gaussian([h, w]: [usize; 2]) -> Vec<f32> {
    let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
    let (sy, sx) = (h as f32 / 4.0, w as f32 / 4.0);
    (0..h * w)
        .map(|i| {
            let (y, x) = ((i / w) as f32, (i % w) as f32);
            (-0.5 * (((y - cy) / sy).powi(2) + ((x - cx) / sx).powi(2))).exp()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_are_reproducible_and_centred() {
        assert_eq!(random_map([4, 5], 3), random_map([4, 5], 3));
        assert_ne!(random_map([4, 5], 3), random_map([4, 5], 4));
        let g = centre_gaussian([5, 5]);
        assert_eq!(g[12], 1.0);
        assert!(g[0] < g[6] && g[6] < g[12]);
    }
}
