//! [`Kernels`] under autodiff: each operation runs the inner backend's kernel forward and
//! registers a backward step that calls the inner backend's gradient kernel, computing only
//! the gradients of the inputs that are tracked.

use burn::backend::Autodiff;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::{ConvOptions, FloatTensor, IntTensor};
use core::marker::PhantomData;

use crate::{Kernels, MaxPool2dOptions, Normalized, Wanted, float, primitive};

impl<B: Kernels, C: CheckpointStrategy> Kernels for Autodiff<B, C> {
    const PERTURBATION_BATCH: usize = B::PERTURBATION_BATCH;

    fn conv2d_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        weighted::<B, C, Convolution>(x, weight, bias, options)
    }

    fn batch_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> Normalized<Self> {
        let prepared = BatchNormBackward
            .prepare::<C>([x.node.clone(), gamma.node.clone(), beta.node.clone()])
            .compute_bound()
            .stateful();
        let (output, mean, variance) = match prepared {
            OpsKind::Tracked(mut prep) => {
                let (x_id, gamma_id) = (prep.checkpoint(&x), prep.checkpoint(&gamma));
                let inner =
                    B::batch_norm_forward(x.primitive, gamma.primitive, beta.primitive, epsilon);
                let state = BatchNormState::<B> {
                    x: x_id,
                    gamma: gamma_id,
                    mean: inner.mean.clone(),
                    variance: inner.variance.clone(),
                    epsilon,
                };
                (prep.finish(state, inner.output), inner.mean, inner.variance)
            }
            OpsKind::UnTracked(prep) => {
                let inner =
                    B::batch_norm_forward(x.primitive, gamma.primitive, beta.primitive, epsilon);
                (prep.finish(inner.output), inner.mean, inner.variance)
            }
        };
        Normalized {
            output,
            mean: Self::from_inner(mean),
            variance: Self::from_inner(variance),
        }
    }

    fn channel_affine(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match ChannelAffineBackward
            .prepare::<C>([x.node.clone(), scale.node.clone(), shift.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&scale));
                prep.finish(
                    state,
                    B::channel_affine(x.primitive, scale.primitive, shift.primitive),
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(B::channel_affine(
                x.primitive,
                scale.primitive,
                shift.primitive,
            )),
        }
    }

    fn linear_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
    ) -> FloatTensor<Self> {
        weighted::<B, C, Dense>(x, weight, bias, ())
    }

    fn max_pool2d_forward(x: FloatTensor<Self>, options: MaxPool2dOptions) -> FloatTensor<Self> {
        match MaxPool2dBackward
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let pooled = B::max_pool2d_with_indices_forward(x.primitive.clone(), options);
                let state = (prep.checkpoint(&x), options, pooled.indices);
                prep.finish(state, pooled.output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::max_pool2d_forward(x.primitive, options)),
        }
    }
}

/// An operation `f(x, weight) + bias` (a convolution, a dense layer): its forward and backward
/// passes, the bias optional, written once for both.
trait WeightedOp<B: Kernels>: core::fmt::Debug + Send + 'static {
    /// What besides x and the weight the operation needs (a convolution's options).
    type Settings: Clone + Send + core::fmt::Debug + 'static;

    fn forward(
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        bias: Option<FloatTensor<B>>,
        settings: Self::Settings,
    ) -> FloatTensor<B>;

    /// The gradients `wanted` of x, the weight and the bias.
    fn backward(
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        output_grad: FloatTensor<B>,
        settings: Self::Settings,
        wanted: Wanted,
    ) -> [Option<FloatTensor<B>>; 3];
}

#[derive(Debug)]
struct Convolution;

impl<B: Kernels> WeightedOp<B> for Convolution {
    type Settings = ConvOptions<2>;

    fn forward(
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        bias: Option<FloatTensor<B>>,
        options: ConvOptions<2>,
    ) -> FloatTensor<B> {
        B::conv2d_forward(x, weight, bias, options)
    }

    fn backward(
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        output_grad: FloatTensor<B>,
        options: ConvOptions<2>,
        wanted: Wanted,
    ) -> [Option<FloatTensor<B>>; 3] {
        let computed = B::conv2d_backward(x, weight, output_grad, options, wanted);
        [computed.input, computed.weight, computed.bias]
    }
}

/// `x · weight + bias` of a dense (Linear) layer.
#[derive(Debug)]
struct Dense;

impl<B: Kernels> WeightedOp<B> for Dense {
    type Settings = ();

    fn forward(
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        bias: Option<FloatTensor<B>>,
        _: (),
    ) -> FloatTensor<B> {
        B::linear_forward(x, weight, bias)
    }

    /// `dx = dy · Wᵀ`, `dW = xᵀ · dy`, `db = Σ_rows dy`, the products on the kernels too.
    fn backward(
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        output_grad: FloatTensor<B>,
        _: (),
        wanted: Wanted,
    ) -> [Option<FloatTensor<B>>; 3] {
        let product = |a, b| B::linear_forward(a, b, None);
        let input = wanted
            .input
            .then(|| product(output_grad.clone(), B::float_transpose(weight)));
        let bias = wanted.bias.then(|| {
            let dy = float::<B, 2>(output_grad.clone());
            let outputs = dy.dims()[1];
            primitive(dy.sum_dim(0).reshape([outputs]))
        });
        let weight = wanted
            .weight
            .then(|| product(B::float_transpose(x), output_grad));
        [input, weight, bias]
    }
}

/// `Op` under autodiff, with or without a bias.
fn weighted<B: Kernels, C: CheckpointStrategy, Op: WeightedOp<B>>(
    x: FloatTensor<Autodiff<B, C>>,
    weight: FloatTensor<Autodiff<B, C>>,
    bias: Option<FloatTensor<Autodiff<B, C>>>,
    settings: Op::Settings,
) -> FloatTensor<Autodiff<B, C>> {
    match bias {
        Some(bias) => match WithBias::<Op>(PhantomData)
            .prepare::<C>([x.node.clone(), weight.node.clone(), bias.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (
                    prep.checkpoint(&x),
                    prep.checkpoint(&weight),
                    settings.clone(),
                );
                let out = Op::forward(
                    x.primitive,
                    weight.primitive,
                    Some(bias.primitive),
                    settings,
                );
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Op::forward(
                x.primitive,
                weight.primitive,
                Some(bias.primitive),
                settings,
            )),
        },
        None => match NoBias::<Op>(PhantomData)
            .prepare::<C>([x.node.clone(), weight.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (
                    prep.checkpoint(&x),
                    prep.checkpoint(&weight),
                    settings.clone(),
                );
                prep.finish(
                    state,
                    Op::forward(x.primitive, weight.primitive, None, settings),
                )
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(Op::forward(x.primitive, weight.primitive, None, settings))
            }
        },
    }
}

/// The backward step of a [`WeightedOp`] with a bias (three parents)…
#[derive(Debug)]
struct WithBias<Op>(PhantomData<Op>);
/// …and without (two).
#[derive(Debug)]
struct NoBias<Op>(PhantomData<Op>);

type WeightedState<S> = (NodeId, NodeId, S);

impl<B: Kernels, Op: WeightedOp<B>> Backward<B, 3> for WithBias<Op> {
    type State = WeightedState<Op::Settings>;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let output_grad = grads.consume::<B>(&ops.node);
        let parents = ops.parents.map(|parent| parent.map(|node| node.id));
        weighted_backward::<B, Op>(parents, output_grad, ops.state, grads, checkpointer);
    }
}

impl<B: Kernels, Op: WeightedOp<B>> Backward<B, 2> for NoBias<Op> {
    type State = WeightedState<Op::Settings>;

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let output_grad = grads.consume::<B>(&ops.node);
        let [x, weight] = ops.parents.map(|parent| parent.map(|node| node.id));
        let parents = [x, weight, None];
        weighted_backward::<B, Op>(parents, output_grad, ops.state, grads, checkpointer);
    }
}

/// The gradients of the tracked parents only.
fn weighted_backward<B: Kernels, Op: WeightedOp<B>>(
    parents: [Option<NodeId>; 3],
    output_grad: FloatTensor<B>,
    (x, weight, settings): WeightedState<Op::Settings>,
    grads: &mut Gradients,
    checkpointer: &mut Checkpointer,
) {
    let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x);
    let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight);
    let [x_node, weight_node, bias_node] = parents;
    let wanted = Wanted {
        input: x_node.is_some(),
        weight: weight_node.is_some(),
        bias: bias_node.is_some(),
    };
    let computed = Op::backward(x, weight, output_grad, settings, wanted);
    for (node, grad) in parents.into_iter().zip(computed) {
        register::<B>(grads, node, grad);
    }
}

fn register<B: Kernels>(grads: &mut Gradients, node: Option<NodeId>, grad: Option<FloatTensor<B>>) {
    if let (Some(node), Some(grad)) = (node, grad) {
        grads.register::<B>(node, grad);
    }
}

#[derive(Debug)]
struct BatchNormBackward;

#[derive(Debug)]
struct BatchNormState<B: Kernels> {
    x: NodeId,
    gamma: NodeId,
    mean: FloatTensor<B>,
    variance: FloatTensor<B>,
    epsilon: f64,
}

// Not derived: a derive would ask `B: Clone`, and backends need not be.
impl<B: Kernels> Clone for BatchNormState<B> {
    fn clone(&self) -> Self {
        Self {
            mean: self.mean.clone(),
            variance: self.variance.clone(),
            ..*self
        }
    }
}

impl<B: Kernels> Backward<B, 3> for BatchNormBackward {
    type State = BatchNormState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [x_node, gamma_node, beta_node] = ops.parents.map(|parent| parent.map(|node| node.id));
        let output_grad = grads.consume::<B>(&ops.node);
        let state = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(state.x);
        let gamma = checkpointer.retrieve_node_output::<FloatTensor<B>>(state.gamma);
        let computed = B::batch_norm_backward(
            x,
            gamma,
            state.mean,
            state.variance,
            state.epsilon,
            output_grad,
        );
        register::<B>(grads, x_node, Some(computed.input));
        register::<B>(grads, gamma_node, Some(computed.scale));
        register::<B>(grads, beta_node, Some(computed.shift));
    }
}

#[derive(Debug)]
struct ChannelAffineBackward;

impl<B: Kernels> Backward<B, 3> for ChannelAffineBackward {
    type State = (NodeId, NodeId);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [x_node, scale_node, shift_node] = ops.parents.map(|parent| parent.map(|node| node.id));
        let output_grad = grads.consume::<B>(&ops.node);
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(ops.state.0);
        let scale = checkpointer.retrieve_node_output::<FloatTensor<B>>(ops.state.1);
        let computed = B::channel_affine_backward(x, scale, output_grad);
        register::<B>(grads, x_node, Some(computed.input));
        register::<B>(grads, scale_node, Some(computed.scale));
        register::<B>(grads, shift_node, Some(computed.shift));
    }
}

#[derive(Debug)]
struct MaxPool2dBackward;

impl<B: Kernels> Backward<B, 1> for MaxPool2dBackward {
    type State = (NodeId, MaxPool2dOptions, IntTensor<B>);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [x_node] = ops.parents.map(|parent| parent.map(|node| node.id));
        let output_grad = grads.consume::<B>(&ops.node);
        let (x, options, indices) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x);
        let input = B::max_pool2d_indices_backward(x, options, output_grad, indices);
        register::<B>(grads, x_node, Some(input));
    }
}

#[cfg(test)]
mod tests {
    //! Gradients through `Autodiff<Flex>` against burn's own modules and algebra.

    use burn::backend::{Autodiff, Flex};
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    use burn::prelude::*;
    use burn::tensor::{Distribution, Tolerance};

    use crate::{batch_norm_training, channel_affine, conv2d, linear, max_pool2d};

    type Ad = Autodiff<Flex>;

    fn random<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<Ad, D> {
        Ad::seed(&Default::default(), seed);
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
    }

    fn assert_close<const D: usize>(ours: Tensor<Ad, D>, theirs: Tensor<Ad, D>) {
        let tolerance = Tolerance::rel_abs(1e-4, 1e-4);
        ours.into_data()
            .assert_approx_eq::<f32>(&theirs.into_data(), tolerance);
    }

    #[test]
    fn convolution_modules_have_burns_gradients() {
        let configs = [
            Conv2dConfig::new([3, 4], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
            Conv2dConfig::new([3, 5], [3, 3])
                .with_stride([2, 2])
                .with_bias(false),
            // Uneven "same" padding: stride 2 on 8 rows pads one row, at the bottom.
            Conv2dConfig::new([3, 2], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Same),
            Conv2dConfig::new([3, 6], [1, 1]),
        ];
        for (i, config) in configs.into_iter().enumerate() {
            let conv = config.init::<Ad>(&Default::default());
            let x = random([2, 3, 8, 7], i as u64).require_grad();
            let weights = random(conv.forward(x.clone()).dims(), 50 + i as u64);
            let ours = conv2d(&conv, x.clone());
            let theirs = conv.forward(x.clone());
            assert_close(ours.clone(), theirs.clone());
            let ours = (ours * weights.clone()).sum().backward();
            let theirs = (theirs * weights).sum().backward();
            let grad = |grads: &_| x.grad(grads).unwrap();
            assert_close(
                Tensor::from_inner(grad(&ours)),
                Tensor::from_inner(grad(&theirs)),
            );
            let weight_grad = |grads: &_| conv.weight.val().grad(grads).unwrap();
            assert_close(
                Tensor::<Ad, 4>::from_inner(weight_grad(&ours)),
                Tensor::from_inner(weight_grad(&theirs)),
            );
            if let Some(bias) = &conv.bias {
                let bias_grad = |grads: &_| bias.val().grad(grads).unwrap();
                assert_close(
                    Tensor::<Ad, 1>::from_inner(bias_grad(&ours)),
                    Tensor::from_inner(bias_grad(&theirs)),
                );
            }
        }
    }

    #[test]
    fn an_untracked_input_gets_no_gradient_and_frozen_weights_none_either() {
        let conv = Conv2dConfig::new([2, 3], [3, 3]).init::<Ad>(&Default::default());
        let frozen = burn::module::Module::no_grad(conv.clone());
        let x = random([1, 2, 5, 5], 1).require_grad();
        let grads = conv2d(&frozen, x.clone()).sum().backward();
        assert!(x.grad(&grads).is_some());
        assert!(frozen.weight.val().grad(&grads).is_none());
        let untracked = random([1, 2, 5, 5], 2);
        let grads = conv2d(&conv, untracked.clone()).sum().backward();
        assert!(untracked.grad(&grads).is_none());
        assert!(conv.weight.val().grad(&grads).is_some());
    }

    #[test]
    fn linear_layers_have_burns_values_and_gradients() {
        for bias in [true, false] {
            let layer = burn::nn::LinearConfig::new(6, 4)
                .with_bias(bias)
                .init::<Ad>(&Default::default());
            let x = random([5, 6], 3).require_grad();
            let weights = random([5, 4], 4);
            let ours = linear(&layer, x.clone());
            let theirs = layer.forward(x.clone());
            assert_close(ours.clone(), theirs.clone());
            let ours = (ours * weights.clone()).sum().backward();
            let theirs = (theirs * weights).sum().backward();
            assert_close::<2>(
                Tensor::from_inner(x.grad(&ours).unwrap()),
                Tensor::from_inner(x.grad(&theirs).unwrap()),
            );
            let weight = |grads: &_| layer.weight.val().grad(grads).unwrap();
            assert_close::<2>(
                Tensor::from_inner(weight(&ours)),
                Tensor::from_inner(weight(&theirs)),
            );
            if let Some(b) = &layer.bias {
                let grad = |grads: &_| b.val().grad(grads).unwrap();
                assert_close::<1>(
                    Tensor::from_inner(grad(&ours)),
                    Tensor::from_inner(grad(&theirs)),
                );
            }
        }
        // A frozen layer (explaining a deployed network) still passes the input's gradient.
        let frozen = burn::module::Module::no_grad(
            burn::nn::LinearConfig::new(3, 2).init::<Ad>(&Default::default()),
        );
        let x = random([2, 3], 5).require_grad();
        let grads = linear(&frozen, x.clone()).sum().backward();
        assert!(x.grad(&grads).is_some());
        assert!(frozen.weight.val().grad(&grads).is_none());
    }

    /// The reference written with ordinary tensor operations, differentiated by burn.
    fn batch_norm_by_algebra(
        x: Tensor<Ad, 4>,
        gamma: Tensor<Ad, 1>,
        beta: Tensor<Ad, 1>,
    ) -> Tensor<Ad, 4> {
        let [n, c, h, w] = x.dims();
        let x = x.reshape([n, c, h * w]);
        let mean = x.clone().mean_dim(2).mean_dim(0);
        let centered = x - mean;
        let var = centered.clone().square().mean_dim(2).mean_dim(0);
        let y = centered / (var + 1e-5).sqrt() * gamma.reshape([1, c, 1]) + beta.reshape([1, c, 1]);
        y.reshape([n, c, h, w])
    }

    #[test]
    fn batch_norm_has_the_gradients_of_its_algebra() {
        let x = (random([4, 3, 5, 6], 7) * 2.0 + 1.0).require_grad();
        let gamma = random([3], 8).require_grad();
        let beta = random([3], 9).require_grad();
        let weights = random([4, 3, 5, 6], 10);
        let (ours, mean, variance) =
            batch_norm_training(x.clone(), gamma.clone(), beta.clone(), 1e-5);
        assert!(!mean.is_require_grad() && !variance.is_require_grad());
        let theirs = batch_norm_by_algebra(x.clone(), gamma.clone(), beta.clone());
        assert_close(ours.clone(), theirs.clone());
        let ours = (ours * weights.clone()).sum().backward();
        let theirs = (theirs * weights).sum().backward();
        assert_close::<4>(
            Tensor::from_inner(x.grad(&ours).unwrap()),
            Tensor::from_inner(x.grad(&theirs).unwrap()),
        );
        for v in [&gamma, &beta] {
            assert_close::<1>(
                Tensor::from_inner(v.grad(&ours).unwrap()),
                Tensor::from_inner(v.grad(&theirs).unwrap()),
            );
        }
    }

    #[test]
    fn channel_affine_has_the_gradients_of_its_algebra() {
        let x = random([2, 3, 4, 5], 11).require_grad();
        let scale = random([3], 12).require_grad();
        let shift = random([3], 13).require_grad();
        let weights = random([2, 3, 4, 5], 14);
        let ours = channel_affine(x.clone(), scale.clone(), shift.clone());
        let theirs =
            x.clone() * scale.clone().reshape([1, 3, 1, 1]) + shift.clone().reshape([1, 3, 1, 1]);
        assert_close(ours.clone(), theirs.clone());
        let ours = (ours * weights.clone()).sum().backward();
        let theirs = (theirs * weights).sum().backward();
        assert_close::<4>(
            Tensor::from_inner(x.grad(&ours).unwrap()),
            Tensor::from_inner(x.grad(&theirs).unwrap()),
        );
        for v in [&scale, &shift] {
            assert_close::<1>(
                Tensor::from_inner(v.grad(&ours).unwrap()),
                Tensor::from_inner(v.grad(&theirs).unwrap()),
            );
        }
    }

    #[test]
    fn max_pooling_has_burns_values_and_gradients() {
        // The ResNet stem's window (3, stride 2, padding 1) on an odd size, and VGG's.
        for (shape, kernel, stride, padding) in [([2, 3, 9, 7], 3, 2, 1), ([1, 4, 8, 6], 2, 2, 0)] {
            let x = random(shape, 21).require_grad();
            let ours = max_pool2d(x.clone(), [kernel; 2], [stride; 2], [padding; 2]);
            let theirs = burn::tensor::module::max_pool2d(
                x.clone(),
                [kernel; 2],
                [stride; 2],
                [padding; 2],
                [1, 1],
                false,
            );
            assert_close(ours.clone(), theirs.clone());
            // Untracked, the forward pass keeps no indices.
            let inference = max_pool2d(x.clone().detach(), [kernel; 2], [stride; 2], [padding; 2]);
            assert_close(inference, theirs.clone());
            let weights = random(ours.dims(), 22);
            let ours = (ours * weights.clone()).sum().backward();
            let theirs = (theirs * weights).sum().backward();
            assert_close::<4>(
                Tensor::from_inner(x.grad(&ours).unwrap()),
                Tensor::from_inner(x.grad(&theirs).unwrap()),
            );
        }
    }
}
