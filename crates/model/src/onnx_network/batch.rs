//! Running a batch at once where the graph allows it.
//!
//! The shape arithmetic computed at load is for one image. For a batch of `n`, it is computed
//! again on a blank batch of `n`; the batch then runs at once when that run gives every layer
//! and the output `n` rows of the one-image dims, and when, on `n` random images, the first
//! and the last give the same logits batched as one by one. An export that baked a batch of 1 into its constants
//! (`Reshape` to `[1, -1]`, a class token expanded to batch 1) fails one of these and runs
//! image by image, as before. Each batch size is decided once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use burn::prelude::*;
use burn::tensor::Distribution;
use kernels::Kernels;

use super::value::Value;
use super::{Fixed, OnnxNetwork, settle_run};
use crate::PlainRelu;

/// The fixed values for each batch size tried; `None`: that size runs image by image.
#[derive(Debug, Clone, Default)]
pub struct Batches(Arc<Mutex<HashMap<usize, Option<Arc<Fixed>>>>>);

/// How close batched logits must come to one-by-one ones (relative to the largest) for a
/// batch size to run at once: the two differ only by summation order.
const AGREEMENT: f32 = 1e-4;

impl<B: Kernels> OnnxNetwork<B> {
    /// `f` on all of `x` at once where its batch size runs batched, else on each row of `x`
    /// (with the one-image fixed values), the results concatenated.
    pub(super) fn by_batch<const DI: usize, const DO: usize>(
        &self,
        x: Tensor<B, DI>,
        f: impl Fn(&Fixed, Tensor<B, DI>) -> Tensor<B, DO>,
    ) -> Tensor<B, DO> {
        let rows = x.dims()[0];
        if rows > 1
            && let Some(fixed) = self.fixed_for(rows, &x.device())
        {
            return f(&fixed, x);
        }
        let fixed = &self.plan().fixed;
        Tensor::cat(
            (0..rows)
                .map(|i| f(fixed, x.clone().narrow(0, i, 1)))
                .collect(),
            0,
        )
    }

    /// Whether a batch of `rows` images runs at once (else image by image); decided on the
    /// first call for each size.
    pub fn runs_at_once(&self, rows: usize, device: &B::Device) -> bool {
        rows == 1 || self.fixed_for(rows, device).is_some()
    }

    /// The fixed values for a batch of `rows`, if that batch runs at once.
    fn fixed_for(&self, rows: usize, device: &B::Device) -> Option<Arc<Fixed>> {
        let mut batches = self.batches.0.lock().unwrap_or_else(|e| e.into_inner());
        batches
            .entry(rows)
            .or_insert_with(|| self.try_batch(rows, device).map(Arc::new))
            .clone()
    }

    fn try_batch(&self, rows: usize, device: &B::Device) -> Option<Fixed> {
        let plan = self.plan();
        let [h, w] = plan.size;
        let images =
            Tensor::<B, 4>::random([rows, plan.channels, h, w], Distribution::Default, device);
        let (dims, fixed, output) = settle_run(plan, &self.weights, images.clone(), device).ok()?;
        let scaled = |slot: usize| {
            let (one, many) = (&plan.dims[slot], &dims[slot]);
            one.len() == many.len()
                && many.first() == Some(&rows)
                && one.first() == Some(&1)
                && one[1..] == many[1..]
        };
        let layers_scale = plan
            .layers
            .iter()
            .all(|l| l.live.iter().all(|&s| scaled(s)));
        let outputs = |d: &[usize]| d.iter().product::<usize>();
        let classes = outputs(&plan.dims[plan.output_slot]);
        if !layers_scale || outputs(&dims[plan.output_slot]) != rows * classes {
            return None;
        }
        // The first and the last image one by one: a batch-1 constant broadcast over the batch
        // shows in either.
        let together = output.reshape(&[rows, classes]).to::<2>();
        let ends = [0, rows - 1];
        let apart = Tensor::cat(
            ends.iter()
                .map(|&i| self.logits_with(&plan.fixed, images.clone().narrow(0, i, 1), 1))
                .collect(),
            0,
        );
        let together = Tensor::cat(
            ends.iter()
                .map(|&i| together.clone().narrow(0, i, 1))
                .collect(),
            0,
        );
        let scale = apart
            .clone()
            .abs()
            .max()
            .into_scalar()
            .elem::<f32>()
            .max(1e-30);
        let worst = (together - apart).abs().max().into_scalar().elem::<f32>();
        (worst <= AGREEMENT * scale).then_some(fixed)
    }

    /// The whole graph on `images` (`rows` of them) with `fixed`.
    fn logits_with(&self, fixed: &Fixed, images: Tensor<B, 4>, rows: usize) -> Tensor<B, 2> {
        let plan = self.plan();
        let device = images.device();
        let mut env = vec![None; plan.slots];
        env[plan.input_slot] = Some(Value::new(images));
        self.run(
            fixed,
            &mut env,
            0,
            plan.graph.nodes.len(),
            &PlainRelu,
            &device,
        );
        self.output(&mut env, rows)
    }
}
