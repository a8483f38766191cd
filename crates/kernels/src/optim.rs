//! burn's SGD (momentum, dampening, Nesterov, weight decay) on [`Kernels::sgd_step`]: the same
//! arithmetic in one parallel pass, in place. Its state has the shape and names of burn's
//! `SgdState`, so optimiser checkpoints written by either load into the other.

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{LearningRate, SimpleOptimizer};
use burn::prelude::*;
use burn::record::Record;
use burn::tensor::backend::AutodiffBackend;

use crate::cpu::sgd::Momentum;
use crate::{Kernels, SgdSettings, float, primitive};

/// Stochastic gradient descent, as PyTorch and burn define it.
#[derive(Debug, Clone)]
pub struct Sgd {
    momentum: Option<Momentum>,
    weight_decay: Option<f32>,
}

/// The optimiser's state for one parameter: burn's `SgdState`, field for field.
#[derive(Record, Clone)]
pub struct SgdState<B: Backend, const D: usize> {
    pub momentum: Option<MomentumState<B, D>>,
}

/// burn's `MomentumState`, field for field.
#[derive(Record, Clone)]
pub struct MomentumState<B: Backend, const D: usize> {
    pub velocity: Tensor<B, D>,
}

impl Sgd {
    /// `momentum` (with `dampening` and Nesterov's variant) when it is positive; L2
    /// `weight_decay` when it is.
    pub fn new(momentum: f64, dampening: f64, nesterov: bool, weight_decay: f64) -> Self {
        Self {
            momentum: (momentum > 0.0).then_some(Momentum {
                momentum: momentum as f32,
                gradient_share: (1.0 - dampening) as f32,
                nesterov,
            }),
            weight_decay: (weight_decay > 0.0).then_some(weight_decay as f32),
        }
    }

    /// The optimiser for a module `M` trained on `B`.
    pub fn init<B, M>(self) -> OptimizerAdaptor<Self, M, B>
    where
        B: AutodiffBackend<InnerBackend: Kernels>,
        M: AutodiffModule<B>,
    {
        OptimizerAdaptor::from(self)
    }
}

impl<B: Kernels> SimpleOptimizer<B> for Sgd {
    type State<const D: usize> = SgdState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let shape = tensor.shape();
        let velocity = state
            .and_then(|s| s.momentum)
            .map(|m| primitive(m.velocity.flatten::<1>(0, D - 1)));
        let settings = SgdSettings {
            lr: lr as f32,
            weight_decay: self.weight_decay,
            momentum: self.momentum,
        };
        let flat = |t: Tensor<B, D>| primitive(t.flatten::<1>(0, D - 1));
        let (param, velocity) = B::sgd_step(flat(tensor), flat(grad), velocity, settings);
        let unflat = |t| float::<B, 1>(t).reshape(shape.clone());
        let momentum = velocity.map(|v| MomentumState {
            velocity: unflat(v),
        });
        (unflat(param), Some(SgdState { momentum }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        let momentum = state.momentum.map(|m| MomentumState {
            velocity: m.velocity.to_device(device),
        });
        SgdState { momentum }
    }
}
