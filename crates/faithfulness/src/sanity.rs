//! The model-randomisation sanity check (Adebayo et al. 2018): re-initialise the network's
//! weights from the top down and compare the maps before and after. An explanation that
//! stays the same while the model it explains is destroyed does not explain the model.
//!
//! A "layer" here is a weight tensor of rank ≥ 2 (a convolution or a Linear), counted in the
//! module's order, which for every architecture of this workspace runs from input to logits.
//! Re-initialised weights are Gaussian with the original tensor's root mean square; biases
//! and BatchNorm statistics are kept.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Distribution;

struct CountWeights(usize);

impl<B: Backend> ModuleVisitor<B> for CountWeights {
    fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<B, D>>) {
        if D >= 2 {
            self.0 += 1;
        }
    }
}

/// How many weight layers `module` has.
pub fn weight_layers<B: Backend, M: Module<B>>(module: &M) -> usize {
    let mut count = CountWeights(0);
    module.visit(&mut count);
    count.0
}

struct RandomiseFrom {
    seen: usize,
    from: usize,
}

impl<B: Backend> ModuleMapper<B> for RandomiseFrom {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if D < 2 {
            return param;
        }
        let index = self.seen;
        self.seen += 1;
        if index < self.from {
            return param;
        }
        param.map(|weights| {
            let rms = weights
                .clone()
                .powi_scalar(2)
                .mean()
                .into_scalar()
                .elem::<f64>()
                .sqrt();
            Tensor::random(
                weights.shape(),
                Distribution::Normal(0.0, rms.max(1e-12)),
                &weights.device(),
            )
        })
    }
}

/// `module` with its top `layers` weight layers re-initialised (all of them if more).
pub fn randomise_top<B: Backend, M: Module<B>>(module: M, layers: usize) -> M {
    let total = weight_layers(&module);
    let mut mapper = RandomiseFrom {
        seen: 0,
        from: total.saturating_sub(layers),
    };
    module.map(&mut mapper)
}

/// Spearman's rank correlation (ties get their mean rank); 0 when either side is constant.
pub fn spearman(a: &[f32], b: &[f32]) -> f32 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let mean = (n - 1.0) / 2.0;
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        cov += (x - mean) * (y - mean);
        va += (x - mean) * (x - mean);
        vb += (y - mean) * (y - mean);
    }
    if va == 0.0 || vb == 0.0 {
        return 0.0;
    }
    (cov / (va * vb).sqrt()) as f32
}

fn ranks(values: &[f32]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && values[order[end + 1]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end) as f64 / 2.0;
        for &i in &order[start..=end] {
            ranks[i] = rank;
        }
        start = end + 1;
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::nn::{Linear, LinearConfig};

    #[derive(Module, Debug)]
    struct TwoLayers<B: Backend> {
        bottom: Linear<B>,
        top: Linear<B>,
    }

    #[test]
    fn randomisation_starts_at_the_top() {
        let device = Default::default();
        let net = TwoLayers::<Flex> {
            bottom: LinearConfig::new(3, 4).init(&device),
            top: LinearConfig::new(4, 2).init(&device),
        };
        assert_eq!(weight_layers(&net), 2);
        let weights = |n: &TwoLayers<Flex>| {
            (
                n.bottom.weight.val().into_data().to_vec::<f32>().unwrap(),
                n.top.weight.val().into_data().to_vec::<f32>().unwrap(),
                n.top
                    .bias
                    .as_ref()
                    .unwrap()
                    .val()
                    .into_data()
                    .to_vec::<f32>()
                    .unwrap(),
            )
        };
        let before = weights(&net);
        let after = weights(&randomise_top(net, 1));
        assert_eq!(before.0, after.0, "the bottom layer is kept");
        assert_ne!(before.1, after.1, "the top layer is re-initialised");
        assert_eq!(before.2, after.2, "biases are kept");
    }

    #[test]
    fn spearman_by_hand() {
        assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]) - 1.0).abs() < 1e-6);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-6);
        // Ties: ranks [0.5, 0.5, 2] against [0, 1, 2] → 0.866.
        assert!((spearman(&[1.0, 1.0, 2.0], &[1.0, 2.0, 3.0]) - 0.75f32.sqrt()).abs() < 1e-5);
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), 0.0);
    }
}
