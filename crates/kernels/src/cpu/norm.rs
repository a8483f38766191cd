//! Per-channel statistics and affine maps of `[batch, channels, pixels]` slices: batch
//! normalisation in training (forward and backward in two passes each) and the per-channel
//! `x · scale + shift` that inference reduces it to.
//!
//! Each channel's values are `batch` contiguous runs of `pixels`; the sums run over the runs of
//! one channel in f64, so a channel of a million values loses no precision to the order.

use rayon::prelude::*;

/// The layout of a `[batch, channels, pixels]` tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelLayout {
    pub batch: usize,
    pub channels: usize,
    pub pixels: usize,
}

impl ChannelLayout {
    fn len(&self) -> usize {
        self.batch * self.channels * self.pixels
    }

    /// Values per channel.
    fn count(&self) -> usize {
        self.batch * self.pixels
    }

    /// The runs of channel `c` in `values`.
    fn runs<'a>(&self, values: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> {
        let (pixels, stride) = (self.pixels, self.channels * self.pixels);
        values
            .chunks_exact(stride.max(1))
            .map(move |image| &image[c * pixels..][..pixels])
    }

    /// Applies `f(channel, run)` to every run of `values`, in parallel.
    fn for_each_run_mut(&self, values: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
        let channels = self.channels;
        values
            .par_chunks_mut(self.pixels.max(1))
            .enumerate()
            .for_each(|(row, run)| f(row % channels, run));
    }

    fn check(&self, values: &[f32]) {
        assert_eq!(values.len(), self.len(), "tensor length for {self:?}");
    }
}

/// Mean and biased variance of each channel (what normalisation divides by; PyTorch's running
/// variance uses the unbiased one, `var · n / (n − 1)`).
pub fn channel_moments(x: &[f32], layout: ChannelLayout) -> (Vec<f32>, Vec<f32>) {
    layout.check(x);
    let count = layout.count().max(1) as f64;
    (0..layout.channels)
        .into_par_iter()
        .map(|c| {
            let mean = layout.runs(x, c).map(sum).sum::<f64>() / count;
            let squares: f64 = layout
                .runs(x, c)
                .map(|run| run.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>())
                .sum();
            (mean as f32, (squares / count) as f32)
        })
        .unzip()
}

/// `x · scale[c] + shift[c]` for each channel c.
pub fn channel_affine(x: &[f32], layout: ChannelLayout, scale: &[f32], shift: &[f32]) -> Vec<f32> {
    layout.check(x);
    assert!(scale.len() == layout.channels && shift.len() == layout.channels);
    let mut out = x.to_vec();
    layout.for_each_run_mut(&mut out, |c, run| {
        let (s, t) = (scale[c], shift[c]);
        run.iter_mut().for_each(|v| *v = *v * s + t);
    });
    out
}

/// The gradients of [`channel_affine`]: the input's, then Σ dy·x and Σ dy per channel (those of
/// the scale and the shift).
pub fn channel_affine_backward(
    x: &[f32],
    dy: &[f32],
    layout: ChannelLayout,
    scale: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    layout.check(x);
    layout.check(dy);
    let mut dx = dy.to_vec();
    layout.for_each_run_mut(&mut dx, |c, run| {
        run.iter_mut().for_each(|v| *v *= scale[c])
    });
    let (dscale, dshift) = (0..layout.channels)
        .into_par_iter()
        .map(|c| {
            let runs = layout.runs(x, c).zip(layout.runs(dy, c));
            let (mut products, mut sums) = (0.0f64, 0.0f64);
            for (x, dy) in runs {
                products += dot(x, dy);
                sums += sum(dy);
            }
            (products as f32, sums as f32)
        })
        .unzip();
    (dx, dscale, dshift)
}

/// Batch normalisation in training: `y = (x − mean) / √(var + ε) · γ + β` with the batch's own
/// statistics, which are returned too (mean, biased variance).
pub fn batch_norm_forward(
    x: &[f32],
    layout: ChannelLayout,
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mean, var) = channel_moments(x, layout);
    let (scale, shift) = fold_statistics(&mean, &var, gamma, beta, epsilon);
    (channel_affine(x, layout, &scale, &shift), mean, var)
}

/// The per-channel scale and shift that normalising with `mean`, `var` then applying γ, β is.
pub fn fold_statistics(
    mean: &[f32],
    var: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>) {
    mean.iter()
        .zip(var)
        .zip(gamma.iter().zip(beta))
        .map(|((&m, &v), (&g, &b))| {
            let scale = g as f64 / (v as f64 + epsilon).sqrt();
            (scale as f32, (b as f64 - m as f64 * scale) as f32)
        })
        .unzip()
}

/// The gradients of [`batch_norm_forward`] with respect to x, γ and β, the statistics being
/// functions of x:
/// dβ = Σ dy, dγ = Σ dy·x̂, dx = γ/σ · (dy − dβ/n − x̂ · dγ/n), with x̂ = (x − mean)/σ.
pub fn batch_norm_backward(
    x: &[f32],
    dy: &[f32],
    layout: ChannelLayout,
    gamma: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    layout.check(x);
    layout.check(dy);
    let inv_std: Vec<f64> = var
        .iter()
        .map(|&v| 1.0 / (v as f64 + epsilon).sqrt())
        .collect();
    let (dgamma, dbeta): (Vec<f32>, Vec<f32>) = (0..layout.channels)
        .into_par_iter()
        .map(|c| {
            let (mut products, mut sums) = (0.0f64, 0.0f64);
            for (x, dy) in layout.runs(x, c).zip(layout.runs(dy, c)) {
                let s = sum(dy);
                products += dot(x, dy) - mean[c] as f64 * s;
                sums += s;
            }
            ((products * inv_std[c]) as f32, sums as f32)
        })
        .unzip();
    let count = layout.count().max(1) as f64;
    // dx = a·dy + b·x + c per channel, with the three constants folded once.
    let coefficients: Vec<[f32; 3]> = (0..layout.channels)
        .map(|c| {
            let (g, s) = (gamma[c] as f64, inv_std[c]);
            let a = g * s;
            let b = -a * s * dgamma[c] as f64 / count;
            let k = -a * dbeta[c] as f64 / count - b * mean[c] as f64;
            [a as f32, b as f32, k as f32]
        })
        .collect();
    let mut dx = dy.to_vec();
    let images = x.chunks_exact((layout.channels * layout.pixels).max(1));
    let runs = images.flat_map(|image| image.chunks_exact(layout.pixels.max(1)));
    let runs: Vec<&[f32]> = runs.collect();
    dx.par_chunks_mut(layout.pixels.max(1))
        .zip(runs)
        .enumerate()
        .for_each(|(row, (dx, x))| {
            let [a, b, k] = coefficients[row % layout.channels];
            dx.iter_mut()
                .zip(x)
                .for_each(|(d, &x)| *d = a * *d + b * x + k);
        });
    (dx, dgamma, dbeta)
}

/// Σ of a run in f64, eight lanes at a time so that it vectorises.
fn sum(run: &[f32]) -> f64 {
    let mut lanes = [0.0f32; 8];
    let chunks = run.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
    for chunk in chunks {
        lanes.iter_mut().zip(chunk).for_each(|(l, &v)| *l += v);
    }
    tail + lanes.iter().map(|&l| l as f64).sum::<f64>()
}

/// Σ a·b of two runs, as [`sum`].
fn dot(a: &[f32], b: &[f32]) -> f64 {
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum();
    for (a, b) in ca.zip(cb) {
        lanes
            .iter_mut()
            .zip(a.iter().zip(b))
            .for_each(|(l, (&a, &b))| *l += a * b);
    }
    tail + lanes.iter().map(|&l| l as f64).sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: ChannelLayout = ChannelLayout {
        batch: 3,
        channels: 2,
        pixels: 5,
    };

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| ((i * 37 + seed * 11) % 17) as f32 / 4.0 - 2.0)
            .collect()
    }

    #[test]
    fn moments_are_each_channels_mean_and_biased_variance() {
        // Channel 0 holds 1..=4, channel 1 holds 10 everywhere.
        let layout = ChannelLayout {
            batch: 2,
            channels: 2,
            pixels: 2,
        };
        let x = [1.0, 2.0, 10.0, 10.0, 3.0, 4.0, 10.0, 10.0];
        let (mean, var) = channel_moments(&x, layout);
        assert_eq!(mean, [2.5, 10.0]);
        assert_eq!(var, [1.25, 0.0]);
    }

    #[test]
    fn the_forward_pass_standardises_each_channel() {
        let x = values(LAYOUT.len(), 1);
        let (y, _, _) = batch_norm_forward(&x, LAYOUT, &[1.0, 1.0], &[0.0, 0.0], 0.0);
        let (mean, var) = channel_moments(&y, LAYOUT);
        for c in 0..2 {
            assert!(
                mean[c].abs() < 1e-6 && (var[c] - 1.0).abs() < 1e-5,
                "{mean:?} {var:?}"
            );
        }
    }

    /// Central differences of L = Σ w·y in every input, γ and β.
    #[test]
    fn the_backward_pass_matches_finite_differences() {
        let (gamma, beta, eps) = ([1.5f32, -0.5], [0.25f32, 1.0], 1e-3);
        let x = values(LAYOUT.len(), 2);
        let w = values(LAYOUT.len(), 3);
        let loss = |x: &[f32], gamma: &[f32], beta: &[f32]| -> f64 {
            let (y, _, _) = batch_norm_forward(x, LAYOUT, gamma, beta, eps);
            y.iter().zip(&w).map(|(&y, &w)| y as f64 * w as f64).sum()
        };
        let (mean, var) = channel_moments(&x, LAYOUT);
        let (dx, dgamma, dbeta) = batch_norm_backward(&x, &w, LAYOUT, &gamma, &mean, &var, eps);
        let h = 1e-2f32;
        let nudged = |values: &[f32], i: usize, by: f32| {
            let mut v = values.to_vec();
            v[i] += by;
            v
        };
        for i in 0..x.len() {
            let numeric = (loss(&nudged(&x, i, h), &gamma, &beta)
                - loss(&nudged(&x, i, -h), &gamma, &beta))
                / (2.0 * h as f64);
            assert!(
                (dx[i] as f64 - numeric).abs() < 2e-3,
                "dx[{i}]: {} vs {numeric}",
                dx[i]
            );
        }
        for c in 0..2 {
            let numeric = (loss(&x, &nudged(&gamma, c, h), &beta)
                - loss(&x, &nudged(&gamma, c, -h), &beta))
                / (2.0 * h as f64);
            assert!((dgamma[c] as f64 - numeric).abs() < 2e-3);
            let numeric = (loss(&x, &gamma, &nudged(&beta, c, h))
                - loss(&x, &gamma, &nudged(&beta, c, -h)))
                / (2.0 * h as f64);
            assert!((dbeta[c] as f64 - numeric).abs() < 2e-3);
        }
    }

    #[test]
    fn the_affine_map_and_its_gradients() {
        let x = values(LAYOUT.len(), 4);
        let dy = values(LAYOUT.len(), 5);
        let (scale, shift) = ([2.0f32, -1.0], [0.5f32, 3.0]);
        let y = channel_affine(&x, LAYOUT, &scale, &shift);
        assert_eq!(y[0], x[0] * 2.0 + 0.5);
        assert_eq!(y[5], -x[5] + 3.0);
        let (dx, dscale, dshift) = channel_affine_backward(&x, &dy, LAYOUT, &scale);
        assert_eq!(dx[6], -dy[6]);
        let channel0 = [0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 20, 21, 22, 23, 24];
        let expected: f64 = channel0.iter().map(|&i| x[i] as f64 * dy[i] as f64).sum();
        assert!((dscale[0] as f64 - expected).abs() < 1e-5);
        let expected: f64 = channel0.iter().map(|&i| dy[i] as f64).sum();
        assert!((dshift[0] as f64 - expected).abs() < 1e-5);
    }
}
