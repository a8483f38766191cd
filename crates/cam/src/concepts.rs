//! Deep Feature Factorization (Collins et al. 2018) as pytorch-grad-cam 1.5.7's `dff`: the
//! activations, channels × positions, shifted to be non-negative and factorised by
//! non-negative matrix factorisation into concepts (a direction in channel space each) and
//! where each concept is in the image. The factorisation is scikit-learn's `NMF(init='random')`
//! with its coordinate-descent solver, computed in f64.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

/// scikit-learn's `NMF` defaults: at most this many sweeps,
pub const NMF_MAX_ITERATIONS: usize = 200;
/// stopping once the projected gradient has shrunk by this factor.
pub const NMF_TOLERANCE: f64 = 1e-4;

/// Concepts of a set of activations `[batch, channels, h, w]`.
#[derive(Debug, Clone)]
pub struct Concepts {
    pub count: usize,
    pub channels: usize,
    /// `[channels, count]`: each concept's activation vector (the factor plus the channel's
    /// offset, as pytorch-grad-cam returns it, so that a classifier can score it).
    pub vectors: Vec<f64>,
    /// `[batch, count, h, w]`: how strongly each concept is present at each position.
    pub maps: Vec<f64>,
    /// Sweeps the solver made.
    pub iterations: usize,
}

impl Concepts {
    /// Concept `c`'s vector over the channels.
    pub fn vector(&self, c: usize) -> Vec<f64> {
        (0..self.channels)
            .map(|ch| self.vectors[ch * self.count + c])
            .collect()
    }
}

/// The starting factors scikit-learn's `init='random'` draws, with our own generator:
/// √(mean(X) / count) · |N(0, 1)|, H `[count, cols]` first, then W `[rows, count]`.
pub fn random_start(x: &[f64], [rows, cols]: [usize; 2], count: usize, seed: u64) -> [Vec<f64>; 2] {
    let scale = (x.iter().sum::<f64>() / x.len() as f64 / count as f64).sqrt();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut draw = |n: usize| -> Vec<f64> {
        (0..n)
            .map(|_| {
                let v: f64 = StandardNormal.sample(&mut rng);
                scale * v.abs()
            })
            .collect()
    };
    let h = draw(count * cols);
    let w = draw(rows * count);
    [w, h]
}

/// `count` concepts of `activations` (`[batch, channels, h, w]`), the factorisation started
/// from `start(X, [channels, positions])` → `[W, H]`.
pub fn factorize(
    activations: &[f64],
    [batch, channels, height, width]: [usize; 4],
    count: usize,
    start: impl FnOnce(&[f64], [usize; 2]) -> [Vec<f64>; 2],
) -> Concepts {
    let positions = batch * height * width;
    let plane = height * width;
    // Channels × (image, position), NaN as 0, each channel shifted to start at 0.
    let mut x = vec![0f64; channels * positions];
    for b in 0..batch {
        for c in 0..channels {
            for p in 0..plane {
                let v = activations[(b * channels + c) * plane + p];
                x[c * positions + b * plane + p] = if v.is_nan() { 0.0 } else { v };
            }
        }
    }
    let offsets: Vec<f64> = x
        .chunks(positions)
        .map(|row| row.iter().copied().fold(f64::INFINITY, f64::min))
        .collect();
    for (row, offset) in x.chunks_mut(positions).zip(&offsets) {
        row.iter_mut().for_each(|v| *v -= offset);
    }
    let [w, h] = start(&x, [channels, positions]);
    let (w, h, iterations) = nmf(&x, [channels, positions], count, w, h);
    let vectors = (0..channels * count)
        .map(|i| w[i] + offsets[i / count])
        .collect();
    // H is [count, (image, position)]; the maps go image first.
    let mut maps = vec![0f64; batch * count * plane];
    for k in 0..count {
        for b in 0..batch {
            let from = &h[k * positions + b * plane..][..plane];
            maps[(b * count + k) * plane..][..plane].copy_from_slice(from);
        }
    }
    Concepts {
        count,
        channels,
        vectors,
        maps,
        iterations,
    }
}

/// X `[rows, cols]` ≈ W `[rows, count]` · H `[count, cols]`, W and H non-negative, from the given
/// start: scikit-learn's coordinate descent (`_fit_coordinate_descent`, no regularisation, no
/// shuffling), W's columns then H's rows each sweep, until the sweep's projected gradient is
/// `NMF_TOLERANCE` of the first sweep's. Returns W, H and the sweeps made.
pub fn nmf(
    x: &[f64],
    [rows, cols]: [usize; 2],
    count: usize,
    mut w: Vec<f64>,
    h: Vec<f64>,
) -> (Vec<f64>, Vec<f64>, usize) {
    let xt = transpose(x, rows, cols);
    let mut ht = transpose(&h, count, cols);
    let mut first = 0.0;
    let mut sweeps = 0;
    for sweep in 1..=NMF_MAX_ITERATIONS {
        sweeps = sweep;
        let violation = coordinate_sweep(x, [rows, cols], &mut w, &ht, count)
            + coordinate_sweep(&xt, [cols, rows], &mut ht, &w, count);
        if sweep == 1 {
            first = violation;
        }
        if first == 0.0 || violation / first <= NMF_TOLERANCE {
            break;
        }
    }
    (w, transpose(&ht, cols, count), sweeps)
}

/// One pass over W's entries (`[rows, count]`) for X `[rows, cols]` ≈ W · Htᵀ, Ht `[cols,
/// count]`: each entry moved to the non-negative minimum along it. Returns the summed
/// projected gradient (scikit-learn's `_update_cdnmf_fast`).
fn coordinate_sweep(
    x: &[f64],
    [rows, cols]: [usize; 2],
    w: &mut [f64],
    ht: &[f64],
    count: usize,
) -> f64 {
    // HHt = Htᵀ Ht `[count, count]`, XHt = X Ht `[rows, count]`.
    let mut hht = vec![0f64; count * count];
    for a in 0..count {
        for b in 0..count {
            hht[a * count + b] = (0..cols)
                .map(|j| ht[j * count + a] * ht[j * count + b])
                .sum();
        }
    }
    let mut xht = vec![0f64; rows * count];
    for i in 0..rows {
        for t in 0..count {
            xht[i * count + t] = (0..cols).map(|j| x[i * cols + j] * ht[j * count + t]).sum();
        }
    }
    let mut violation = 0.0;
    for t in 0..count {
        for i in 0..rows {
            let row = &w[i * count..][..count];
            let gradient =
                -xht[i * count + t] + (0..count).map(|r| hht[t * count + r] * row[r]).sum::<f64>();
            let projected = if w[i * count + t] == 0.0 {
                gradient.min(0.0)
            } else {
                gradient
            };
            violation += projected.abs();
            let hessian = hht[t * count + t];
            if hessian != 0.0 {
                w[i * count + t] = (w[i * count + t] - gradient / hessian).max(0.0);
            }
        }
    }
    violation
}

fn transpose(m: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0f64; m.len()];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = m[i * cols + j];
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_of_non_negative_factors_is_recovered() {
        // X = W H exactly, rank 2, 4 × 5.
        let w = [1.0, 0.0, 0.5, 2.0, 0.0, 1.0, 3.0, 0.2];
        let h = [1.0, 0.0, 2.0, 0.5, 0.0, 0.0, 1.0, 1.0, 0.0, 3.0];
        let mut x = vec![0f64; 20];
        for i in 0..4 {
            for j in 0..5 {
                x[i * 5 + j] = (0..2).map(|k| w[i * 2 + k] * h[k * 5 + j]).sum();
            }
        }
        let [w0, h0] = random_start(&x, [4, 5], 2, 7);
        let (w, h, _) = nmf(&x, [4, 5], 2, w0, h0);
        assert!(w.iter().chain(&h).all(|&v| v >= 0.0));
        for i in 0..4 {
            for j in 0..5 {
                let fit: f64 = (0..2).map(|k| w[i * 2 + k] * h[k * 5 + j]).sum();
                assert!((fit - x[i * 5 + j]).abs() < 1e-2, "{i} {j}: {fit}");
            }
        }
    }

    #[test]
    fn concepts_keep_the_channel_offsets_and_lay_maps_out_by_image() {
        // Two images, two channels, 1 × 2 positions; channel 1 is channel 0 + 5.
        let activations = [1.0, 2.0, 6.0, 7.0, 3.0, 1.0, 8.0, 6.0];
        let concepts = factorize(&activations, [2, 2, 1, 2], 1, |x, [rows, cols]| {
            random_start(x, [rows, cols], 1, 0)
        });
        // One concept: the shifted rows are equal ([0, 1, 2, 0] each), so W's two entries are
        // equal and the vector is that plus each channel's minimum (1 and 6).
        let v = concepts.vector(0);
        assert!(((v[1] - 6.0) - (v[0] - 1.0)).abs() < 1e-6, "{v:?}");
        // Image 1's map is the factor at positions 2, 3: proportional to [2, 0].
        let maps = &concepts.maps;
        assert_eq!(maps.len(), 4);
        assert!(maps[3].abs() < 1e-9 && maps[2] > 0.0, "{maps:?}");
        assert!((maps[2] / maps[1] - 2.0).abs() < 1e-6, "{maps:?}");
    }
}
