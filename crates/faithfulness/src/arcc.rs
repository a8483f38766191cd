//! ARCC (pytorch-grad-cam 1.5.7's `metrics/arcc.py`): a map should be simple (Complexity, low),
//! explain itself (Coherency: the map of the image masked by the map is the same map) and be
//! faithful (ROAD); ARCC is the harmonic mean of Coherency, 1 − Complexity and ROAD rescaled.

/// pytorch-grad-cam's `ARCC` takes ROAD at these percentiles.
pub const ARCC_ROAD_PERCENTILES: [f32; 4] = [20.0, 40.0, 60.0, 80.0];

/// The L1 norm of a map in [0, 1] over its pixels: 0 for an empty map, 1 for a full one.
pub fn complexity(map: &[f32]) -> f32 {
    map.iter().map(|v| v.abs()).sum::<f32>() / map.len() as f32
}

/// (ρ + 1) / 2 for ρ the Pearson correlation of `map` and `remapped`, the same method's map of
/// the image multiplied by `map`: in [0, 1], 1 when the map reproduces itself.
pub fn coherency(map: &[f32], remapped: &[f32]) -> f32 {
    let n = map.len() as f64;
    let mean = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let (ma, mb) = (mean(remapped), mean(map));
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (&a, &b) in remapped.iter().zip(map) {
        let (a, b) = (f64::from(a) - ma, f64::from(b) - mb);
        cov += a * b;
        va += a * a;
        vb += b * b;
    }
    // pytorch-grad-cam's: sample (n − 1) moments, ε 1e-8 beside the deviations' product.
    let rho = (cov / (n - 1.0)) / ((va / (n - 1.0)).sqrt() * (vb / (n - 1.0)).sqrt() + 1e-8);
    ((rho + 1.0) / 2.0) as f32
}

/// 3 / (1 / Coherency + 1 / (1 − Complexity) + 1 / ROAD'), each term guarded by 1e-8, where
/// ROAD' is `road_combined` (pytorch-grad-cam's `ROADCombined`, in [−0.5, 0.5]) doubled and
/// clipped to [0, 1].
pub fn arcc(complexity: f32, coherency: f32, road_combined: f32) -> f32 {
    let road = (road_combined * 2.0).clamp(0.0, 1.0);
    let eps = 1e-8;
    3.0 / (1.0 / (coherency + eps) + 1.0 / ((1.0 - complexity) + eps) + 1.0 / (road + eps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complexity_is_the_mean_absolute_value() {
        assert_eq!(complexity(&[0.0, 0.5, 1.0, 0.5]), 0.5);
        assert_eq!(complexity(&[0.0; 4]), 0.0);
    }

    #[test]
    fn coherency_by_hand() {
        let map = [0.0, 1.0, 2.0, 3.0];
        assert!((coherency(&map, &map) - 1.0).abs() < 1e-6);
        let reversed = [3.0, 2.0, 1.0, 0.0];
        assert!(coherency(&map, &reversed).abs() < 1e-6);
        // ρ of [1, 2, 3, 4] and [1, 3, 2, 4] is 0.8.
        let swapped = [0.0, 2.0, 1.0, 3.0];
        assert!((coherency(&map, &swapped) - 0.9).abs() < 1e-6);
    }

    #[test]
    fn arcc_is_a_harmonic_mean() {
        // Coherency 1, complexity 0, ROAD 0.5 (→ 1): every term 1.
        assert!((arcc(0.0, 1.0, 0.5) - 1.0).abs() < 1e-6);
        // 1/0.5 + 1/0.5 + 1/0.25 = 8 → 3/8; ROAD 0.125 doubles to 0.25.
        assert!((arcc(0.5, 0.5, 0.125) - 0.375).abs() < 1e-6);
        // A ROAD below zero clips to 0: ARCC vanishes.
        assert!(arcc(0.2, 0.9, -0.1) < 1e-6);
    }
}
