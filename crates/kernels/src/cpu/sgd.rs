//! One step of stochastic gradient descent with momentum and weight decay, in place, in one
//! parallel pass over the parameters.
//!
//! burn's `Sgd` spends four to six tensor operations on it, each a serial pass that allocates
//! its result: on the tutorial CNN's 74 M parameters that was half of a training step. The
//! arithmetic here is burn's, operation for operation in f32, so the results are the same bits.

use rayon::prelude::*;

/// The settings of one step (burn's and PyTorch's SGD).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdSettings {
    pub lr: f32,
    pub weight_decay: Option<f32>,
    pub momentum: Option<Momentum>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Momentum {
    pub momentum: f32,
    /// `1 − dampening`: the share of the gradient that enters the velocity.
    pub gradient_share: f32,
    pub nesterov: bool,
}

/// Elements per parallel job: enough to amortise the scheduling, few enough to balance.
const CHUNK: usize = 1 << 16;

/// Updates `param` and, with momentum, `velocity` (`None` on the first step: it starts as the
/// gradient) from `grad`.
pub fn sgd_step(
    param: &mut [f32],
    grad: &[f32],
    velocity: Option<&mut [f32]>,
    first: bool,
    settings: &SgdSettings,
) {
    assert_eq!(param.len(), grad.len(), "gradient length");
    let update = |p: &mut f32, g: f32, v: Option<&mut f32>| {
        let mut g = g;
        if let Some(decay) = settings.weight_decay {
            g += *p * decay;
        }
        let direction = match (settings.momentum, v) {
            (Some(m), Some(v)) => {
                *v = if first {
                    g
                } else {
                    g * m.gradient_share + *v * m.momentum
                };
                if m.nesterov { *v * m.momentum + g } else { *v }
            }
            _ => g,
        };
        *p -= direction * settings.lr;
    };
    match velocity {
        Some(velocity) => {
            assert_eq!(velocity.len(), param.len(), "velocity length");
            param
                .par_chunks_mut(CHUNK)
                .zip(grad.par_chunks(CHUNK))
                .zip(velocity.par_chunks_mut(CHUNK))
                .for_each(|((p, g), v)| {
                    p.iter_mut()
                        .zip(g)
                        .zip(v)
                        .for_each(|((p, &g), v)| update(p, g, Some(v)));
                });
        }
        None => param
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .for_each(|(p, g)| p.iter_mut().zip(g).for_each(|(p, &g)| update(p, g, None))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_with_momentum_nesterov_and_decay_by_hand() {
        let settings = SgdSettings {
            lr: 0.5,
            weight_decay: Some(0.1),
            momentum: Some(Momentum {
                momentum: 0.9,
                gradient_share: 1.0,
                nesterov: true,
            }),
        };
        let (mut p, g, mut v) = (vec![2.0f32], vec![1.0f32], vec![0.0f32]);
        // First step: g' = 2·0.1 + 1 = 1.2, v = 1.2, direction = 1.2·0.9 + 1.2 = 2.28.
        sgd_step(&mut p, &g, Some(&mut v), true, &settings);
        assert!((v[0] - 1.2).abs() < 1e-6 && (p[0] - (2.0 - 1.14)).abs() < 1e-6);
        // Second: g' = 0.86·0.1 + 1 = 1.086, v = 1.086 + 1.2·0.9 = 2.166,
        // direction = 2.166·0.9 + 1.086 = 3.0354.
        sgd_step(&mut p, &g, Some(&mut v), false, &settings);
        assert!((v[0] - 2.166).abs() < 1e-5 && (p[0] - (0.86 - 1.5177)).abs() < 1e-5);
    }

    #[test]
    fn plain_sgd_steps_against_the_gradient() {
        let settings = SgdSettings {
            lr: 0.1,
            weight_decay: None,
            momentum: None,
        };
        let mut p = vec![1.0f32; 200_000];
        let g: Vec<f32> = (0..200_000).map(|i| i as f32).collect();
        sgd_step(&mut p, &g, None, true, &settings);
        assert_eq!(p[10], 1.0 - 10.0 * 0.1);
        assert_eq!(p[199_999], 1.0 - 199_999.0 * 0.1);
    }
}
