//! ShapleyCAM's capture (Cai et al. 2025): Grad-CAM's weights taken from dS/dA − ½ H·A, the
//! gradient less half the Hessian-vector product along A itself, as pytorch-grad-cam's
//! `ShapleyCAM` does with a second backward pass.
//!
//! burn 0.21 has no second derivatives, so H·A is split in two parts, both exact where the rest
//! of the network is piecewise linear (ReLU, max pooling, Linear, BatchNorm at inference):
//! with k the class scores and J = dk/dA,
//!
//!   H·A = Jᵀ (∇²ₖS) (J·A)  +  (d/dt J(A + tA))ᵀ ∇ₖS.
//!
//! The score's own curvature ∇²ₖS is written out below for each [`Score`]; J·A and the change
//! of J along A are central differences of the rest of the network at A ± tA, which run in the
//! same forward and backward pass as A itself (3 × the batch). On a piecewise-linear rest the
//! class scores are linear along the segment and J is constant on it, so both differences are
//! exact up to rounding; on a smooth one (GELU, LayerNorm, attention) they err by O(t²).

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use model::{Head, PlainRelu, SplitModel, class_scores};

use crate::capture::{check_request, resolve_targets};
use crate::{Capture, CaptureError, Score, Target};

/// The step t of the central differences, relative to A (a power of two, so that A ± tA
/// rounds once). Larger steps lose less to rounding in J·A; smaller ones cross fewer ReLU
/// kinks and err less on smooth layers.
pub const SHAPLEY_STEP: f32 = 1.0 / 64.0;

/// The capture whose gradients are ShapleyCAM's: dS/dA − ½ H·A for each image's target score.
/// Grad-CAM of it is ShapleyCAM. `activations` and `outputs` are the images' own.
pub fn capture_shapley<B, M>(
    model: &M,
    images: Tensor<B::InnerBackend, 4>,
    targets: &[Target],
    layer: usize,
    score: Score,
) -> Result<Capture<B::InnerBackend>, CaptureError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SplitModel<B>,
    M::InnerModule: SplitModel<B::InnerBackend>,
{
    let batch = images.dims()[0];
    check_request(model, batch, targets, layer)?;
    let inference = model.valid();
    let activations = inference.features_at(images, layer, &PlainRelu);
    let step = inference.hooked_part(layer, activations.clone()) * SHAPLEY_STEP;
    let moved = vec![
        activations.clone(),
        activations.clone() + step.clone(),
        activations.clone() - step,
    ];
    let leaf = Tensor::<B, 4>::from_inner(Tensor::cat(moved, 0)).require_grad();
    let outputs = model
        .clone()
        .no_grad()
        .logits_from(leaf.clone(), layer, &PlainRelu);
    let scores = class_scores(outputs.clone().inner());
    let [_, classes] = scores.dims();
    let rows = |from: usize| scores.clone().narrow(0, from * batch, batch);
    let own = rows(0);
    let resolved = resolve_targets(own.clone(), targets)?;
    let along = (rows(1) - rows(2)) / (2.0 * SHAPLEY_STEP);
    let sharpness = match Head::of_outputs(outputs.dims()[1]) {
        Head::Softmax => 1.0,
        // σ(z) = softmax([-z, z] / 2).
        Head::Binary => 0.5,
    };
    let weights = ScoreDerivatives {
        score,
        sharpness,
        classes,
    }
    .backward_weights(&host(own), &host(along), &resolved);
    let weights = Tensor::<B::InnerBackend, 2>::from_data(
        TensorData::new(weights, [3 * batch, classes]),
        &leaf.device(),
    );
    let objective = (class_scores(outputs.clone()) * Tensor::from_inner(weights)).sum();
    let grads = objective.backward();
    let g = leaf
        .grad(&grads)
        .expect("the rest of the model depends on its input");
    let of_rows = |from: usize| g.clone().narrow(0, from * batch, batch);
    let gradients = of_rows(0) + of_rows(1) + of_rows(2);
    let hooked = inference.hooked_activations(layer, activations.clone());
    Ok(Capture {
        activations: inference.cam_view(layer, hooked),
        gradients: inference.cam_view(layer, gradients),
        layer_output: activations,
        outputs: outputs.inner().narrow(0, 0, batch),
        score,
        targets: resolved,
        layer,
        noisy: None,
    })
}

fn host<B: Backend>(t: Tensor<B, 2>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().expect("f32 scores")
}

/// The score S as a function of one image's class scores k, and its first two derivatives.
struct ScoreDerivatives {
    score: Score,
    /// β of the probability softmax(βk).
    sharpness: f64,
    classes: usize,
}

impl ScoreDerivatives {
    /// The class-score weights c of the three row blocks (A, A + tA, A − tA) whose
    /// Σ cᵀk, backpropagated and summed over the blocks, gives dS/dA − ½ H·A:
    /// c = ∇S − ½ ∇²S·(J·A) at A, ∓ ∇S / 4t at A ± tA.
    fn backward_weights(&self, own: &[f32], along: &[f32], targets: &[usize]) -> Vec<f32> {
        let n = self.classes;
        let mut blocks = [Vec::new(), Vec::new(), Vec::new()];
        for ((k, dk), &target) in own.chunks(n).zip(along.chunks(n)).zip(targets) {
            let k: Vec<f64> = k.iter().map(|&v| v as f64).collect();
            let dk: Vec<f64> = dk.iter().map(|&v| v as f64).collect();
            let (gradient, curvature) = self.derivatives(&k, &dk, target);
            let quarter = 4.0 * SHAPLEY_STEP as f64;
            for (g, h) in gradient.iter().zip(&curvature) {
                blocks[0].push((g - 0.5 * h) as f32);
                blocks[1].push((-g / quarter) as f32);
                blocks[2].push((g / quarter) as f32);
            }
        }
        blocks.concat()
    }

    /// (∇ₖS, ∇²ₖS·dk) at k for the class `target`.
    fn derivatives(&self, k: &[f64], dk: &[f64], target: usize) -> (Vec<f64>, Vec<f64>) {
        let unit = |c: usize| (0..k.len()).map(move |j| f64::from(u8::from(j == c)));
        match self.score {
            // S = k_c: linear.
            Score::Logit => (unit(target).collect(), vec![0.0; k.len()]),
            // S = 2k_c − log Σ e^k: ∇S = 2e_c − p, ∇²S·v = −(p ⊙ v − p (p·v)).
            Score::Rest => {
                let p = softmax(k, 1.0);
                let dp = softmax_derivative(&p, dk, 1.0);
                let gradient = unit(target).zip(&p).map(|(e, p)| 2.0 * e - p).collect();
                (gradient, dp.iter().map(|d| -d).collect())
            }
            // S = q_c, q = softmax(βk): ∇S = β q_c (e_c − q),
            // ∇²S·v = β (dq_c (e_c − q) − q_c dq) with dq = β (q ⊙ v − q (q·v)).
            Score::Probability => {
                let beta = self.sharpness;
                let q = softmax(k, beta);
                let dq = softmax_derivative(&q, dk, beta);
                let gradient = unit(target)
                    .zip(&q)
                    .map(|(e, q_j)| beta * q[target] * (e - q_j))
                    .collect();
                let curvature = unit(target)
                    .zip(q.iter().zip(&dq))
                    .map(|(e, (q_j, dq_j))| beta * (dq[target] * (e - q_j) - q[target] * dq_j))
                    .collect();
                (gradient, curvature)
            }
        }
    }
}

/// softmax(βk), shifted by the maximum.
fn softmax(k: &[f64], beta: f64) -> Vec<f64> {
    let top = k.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = k.iter().map(|v| (beta * (v - top)).exp()).collect();
    let total: f64 = e.iter().sum();
    e.iter().map(|v| v / total).collect()
}

/// The change of q = softmax(βk) along v: β (q ⊙ v − q (q·v)).
fn softmax_derivative(q: &[f64], v: &[f64], beta: f64) -> Vec<f64> {
    let mean: f64 = q.iter().zip(v).map(|(a, b)| a * b).sum();
    q.iter()
        .zip(v)
        .map(|(q, v)| beta * q * (v - mean))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// S(k) for the score, straight from its definition.
    fn score_value(derivatives: &ScoreDerivatives, k: &[f64], target: usize) -> f64 {
        match derivatives.score {
            Score::Logit => k[target],
            Score::Rest => {
                let top = k.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let log_sum = k.iter().map(|v| (v - top).exp()).sum::<f64>().ln() + top;
                2.0 * k[target] - log_sum
            }
            Score::Probability => softmax(k, derivatives.sharpness)[target],
        }
    }

    /// The written-out gradient and curvature against central differences of S itself.
    #[test]
    fn score_derivatives_match_finite_differences() {
        let k = [1.3, -0.4, 2.1, 0.2];
        let v = [0.5, -1.0, 0.25, 2.0];
        let h = 1e-4;
        for score in [Score::Logit, Score::Rest, Score::Probability] {
            for sharpness in [1.0, 0.5] {
                let d = ScoreDerivatives {
                    score,
                    sharpness,
                    classes: 4,
                };
                for target in [0, 2] {
                    let (gradient, curvature) = d.derivatives(&k, &v, target);
                    let shifted = |j: usize, by: f64| {
                        let mut moved = k;
                        moved[j] += by;
                        moved
                    };
                    for (j, analytic) in gradient.iter().enumerate() {
                        let numeric = (score_value(&d, &shifted(j, h), target)
                            - score_value(&d, &shifted(j, -h), target))
                            / (2.0 * h);
                        assert!((numeric - analytic).abs() < 1e-7, "{score:?} ∇S[{j}]");
                    }
                    // ∇²S·v = d/dt ∇S(k + tv).
                    let along = |t: f64| {
                        let moved: Vec<f64> = k.iter().zip(&v).map(|(a, b)| a + t * b).collect();
                        d.derivatives(&moved, &v, target).0
                    };
                    let (ahead, behind) = (along(h), along(-h));
                    for j in 0..4 {
                        let numeric = (ahead[j] - behind[j]) / (2.0 * h);
                        assert!(
                            (numeric - curvature[j]).abs() < 1e-7,
                            "{score:?} ∇²S·v[{j}]"
                        );
                    }
                }
            }
        }
    }
}
