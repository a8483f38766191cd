//! Batch normalisation over `[batch, channels, height, width]` with burn's `BatchNorm`
//! parameters, on the `kernels` crate's fused operations.
//!
//! burn 0.21's own training path computes the statistics through a transposed copy and applies
//! five broadcasting operations, which burn's CPU backend runs element by element: BatchNorm
//! cost more than the convolutions. Training here is one kernel (two passes forward, two
//! backward); inference folds the running statistics into one scale and one shift per channel.

use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use kernels::Kernels;

use crate::Rectifier;

/// `bn` applied to `x`: batch statistics while its parameters are trained, running statistics
/// otherwise (an inference backend, or a model whose parameters were frozen with `no_grad()`,
/// which is how `cam` differentiates a deployed network). Running statistics are updated as
/// PyTorch does (unbiased variance). At inference the output goes through `relu.biased`.
pub fn batch_norm<B: Kernels, R: Rectifier<B>>(
    bn: &BatchNorm<B>,
    x: Tensor<B, 4>,
    relu: &R,
) -> Tensor<B, 4> {
    if !trains(bn, &x) {
        // Not `bn.forward`: burn takes batch statistics on any autodiff backend, frozen or not.
        let (scale, shift) = running_affine(bn, &x.device());
        return relu.biased(kernels::channel_affine(x, scale, shift.clone()), shift);
    }
    let [n, _, h, w] = x.dims();
    let (y, mean, var) = kernels::batch_norm_training(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
    update_running_stats(bn, mean, var, (n * h * w) as f64);
    y
}

/// `batch_norm(bn, conv(x))`. At inference the running statistics are folded into the
/// convolution's weights and bias (scaled per output channel), which saves a pass over the
/// output: the same map up to rounding. Both biases go through `relu.biased`.
pub fn conv_batch_norm<B: Kernels, R: Rectifier<B>>(
    conv: &Conv2d<B>,
    bn: &BatchNorm<B>,
    x: Tensor<B, 4>,
    relu: &R,
) -> Tensor<B, 4> {
    if trains(bn, &x) {
        return batch_norm(bn, kernels::conv2d(conv, x), relu);
    }
    let (scale, shift) = running_affine(bn, &x.device());
    let [out, per_group, kh, kw] = conv.weight.dims();
    let rows = conv.weight.val().reshape([1, out, per_group * kh, kw]);
    let no_shift = scale.zeros_like();
    let weight =
        kernels::channel_affine(rows, scale.clone(), no_shift).reshape([out, per_group, kh, kw]);
    let conv_bias = conv.bias.as_ref().map(|bias| bias.val() * scale);
    let bias = match &conv_bias {
        Some(scaled) => scaled.clone() + shift.clone(),
        None => shift.clone(),
    };
    let out = kernels::conv2d_with(conv, weight, Some(bias), x);
    let out = match conv_bias {
        Some(scaled) => relu.biased(out, scaled),
        None => out,
    };
    relu.biased(out, shift)
}

/// `conv(x)`, through `relu.biased` when the convolution has a bias.
pub fn biased_conv2d<B: Kernels, R: Rectifier<B>>(
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
    relu: &R,
) -> Tensor<B, 4> {
    let out = kernels::conv2d(conv, x);
    match &conv.bias {
        Some(bias) => relu.biased(out, bias.val()),
        None => out,
    }
}

/// Whether `bn` normalises `x` with the batch's statistics: its parameters are being trained.
fn trains<B: Backend>(bn: &BatchNorm<B>, x: &Tensor<B, 4>) -> bool {
    B::ad_enabled(&x.device()) && bn.gamma.val().is_require_grad()
}

/// The per-channel `(scale, shift)` that normalising with `bn`'s running statistics is.
pub fn running_affine<B: Backend>(
    bn: &BatchNorm<B>,
    device: &B::Device,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let mean = bn.running_mean.value().to_device(device);
    let var = bn.running_var.value().to_device(device);
    let scale = bn.gamma.val() / (var + bn.epsilon).sqrt();
    let shift = bn.beta.val() - mean * scale.clone();
    (scale, shift)
}

fn update_running_stats<B: Backend>(
    bn: &BatchNorm<B>,
    mean: Tensor<B, 1>,
    var: Tensor<B, 1>,
    count: f64,
) {
    let m = bn.momentum;
    let unbiased = var * (count / (count - 1.0).max(1.0));
    let device = mean.device();
    let running_mean = bn.running_mean.value_sync().to_device(&device);
    let running_var = bn.running_var.value_sync().to_device(&device);
    bn.running_mean.update(
        running_mean
            .mul_scalar(1.0 - m)
            .add(mean.mul_scalar(m))
            .detach(),
    );
    bn.running_var.update(
        running_var
            .mul_scalar(1.0 - m)
            .add(unbiased.mul_scalar(m))
            .detach(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::module::Param;
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Distribution, Tolerance};

    type Ad = Autodiff<Flex>;

    fn statistic(state: &burn::module::RunningState<Tensor<Ad, 1>>) -> Vec<f32> {
        state.value_sync().into_data().to_vec().unwrap()
    }

    #[test]
    fn matches_burns_batch_norm_in_training_and_its_gradient() {
        let device = Default::default();
        let x = Tensor::<Ad, 4>::random([3, 4, 5, 6], Distribution::Normal(1.0, 2.0), &device)
            .require_grad();
        let mut bn = BatchNormConfig::new(4).init::<Ad>(&device);
        bn.gamma = Param::from_data([1.0f32, 1.5, 0.5, 2.0], &device);
        bn.beta = Param::from_data([0.0f32, -0.5, 0.25, 1.0], &device);

        let x_theirs = Tensor::<Ad, 4>::from_data(x.to_data(), &device).require_grad();
        let weights = Tensor::<Ad, 4>::random([3, 4, 5, 6], Distribution::Default, &device);
        let ours = batch_norm(&bn, x.clone(), &crate::PlainRelu);
        let ours_data = ours.to_data();
        let g_ours = (ours * weights.clone()).sum().backward();
        let theirs = bn.forward(x_theirs.clone());
        ours_data.assert_approx_eq::<f32>(&theirs.to_data(), Tolerance::rel_abs(1e-4, 1e-4));
        let g_theirs = (theirs * weights).sum().backward();
        let (ours, theirs) = (x.grad(&g_ours).unwrap(), x_theirs.grad(&g_theirs).unwrap());
        ours.into_data()
            .assert_approx_eq::<f32>(&theirs.into_data(), Tolerance::rel_abs(1e-3, 1e-4));
    }

    #[test]
    fn a_frozen_model_normalises_with_running_statistics_and_keeps_them() {
        use burn::module::{AutodiffModule, Module, RunningState};
        let device = Default::default();
        let mut bn = BatchNormConfig::new(2).init::<Ad>(&device);
        bn.running_mean = RunningState::new(Tensor::from_data([1.0f32, -2.0], &device));
        let frozen = bn.no_grad();
        let x =
            Tensor::<Ad, 4>::random([3, 2, 2, 2], Distribution::Default, &device).require_grad();
        let ours = batch_norm(&frozen, x.clone(), &crate::PlainRelu).into_data();
        let inference = frozen.valid().forward(x.inner()).into_data();
        ours.assert_approx_eq::<f32>(&inference, Tolerance::rel_abs(1e-5, 1e-6));
        let mean = statistic(&frozen.running_mean);
        assert_eq!(
            mean,
            [1.0, -2.0],
            "a frozen BatchNorm must not learn statistics"
        );
    }

    #[test]
    fn running_statistics_follow_pytorch() {
        let device = Default::default();
        // Channel 0 holds 1, 2, 3, 4; channel 1 holds 10 everywhere.
        let data = TensorData::new(
            vec![1.0f32, 2.0, 10.0, 10.0, 3.0, 4.0, 10.0, 10.0],
            [2, 2, 1, 2],
        );
        let x = Tensor::<Ad, 4>::from_data(data, &device);
        let bn = BatchNormConfig::new(2).init::<Ad>(&device);
        let _ = batch_norm(&bn, x, &crate::PlainRelu);
        let mean = statistic(&bn.running_mean);
        let var = statistic(&bn.running_var);
        // 0.9 · initial + 0.1 · batch; the variance of 1..4 is 5/3 unbiased.
        assert!(
            (mean[0] - 0.25).abs() < 1e-6 && (mean[1] - 1.0).abs() < 1e-6,
            "{mean:?}"
        );
        assert!(
            (var[0] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-5 && (var[1] - 0.9).abs() < 1e-6,
            "{var:?}"
        );
    }

    #[test]
    fn folded_into_the_convolution_it_equals_convolution_then_normalisation() {
        use burn::module::RunningState;
        use burn::nn::PaddingConfig2d;
        use burn::nn::conv::Conv2dConfig;
        let device = Default::default();
        // With and without bias, strided, and depthwise (groups = channels).
        for (config, channels_in) in [
            (
                Conv2dConfig::new([3, 4], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
                3,
            ),
            (
                Conv2dConfig::new([3, 4], [1, 1])
                    .with_bias(false)
                    .with_stride([2, 2]),
                3,
            ),
            (Conv2dConfig::new([4, 4], [3, 3]).with_groups(4), 4),
        ] {
            let conv = config.init::<Flex>(&device);
            let mut bn = BatchNormConfig::new(4).init::<Flex>(&device);
            bn.gamma = Param::from_data([1.0f32, 1.5, -0.5, 2.0], &device);
            bn.beta = Param::from_data([0.0f32, -0.5, 0.25, 1.0], &device);
            bn.running_mean =
                RunningState::new(Tensor::from_data([0.1f32, -0.2, 0.3, 0.0], &device));
            bn.running_var =
                RunningState::new(Tensor::from_data([0.5f32, 2.0, 1.0, 0.25], &device));
            let x =
                Tensor::<Flex, 4>::random([2, channels_in, 7, 6], Distribution::Default, &device);
            let folded = conv_batch_norm(&conv, &bn, x.clone(), &crate::PlainRelu).into_data();
            let separate = bn.forward(conv.forward(x)).into_data();
            folded.assert_approx_eq::<f32>(&separate, Tolerance::rel_abs(1e-5, 1e-5));
        }
    }
}
