//! The workspace's own kernels for the operations that dominate training and explaining CNNs on
//! the CPU, reached through burn's backend-extension mechanism: the [`Kernels`] trait.
//!
//! burn-flex 0.21 (the CPU backend) runs them slowly:
//! - **convolution**: the forward pass converts every input to NHWC serially before its im2col;
//!   the input gradient is a transposed convolution with a scalar col2im scatter; the weight
//!   gradient is a convolution whose kernel is the whole output map. Here: banded im2col and
//!   `gemm` straight in NCHW, and one backward pass per image that produces both gradients
//!   ([`cpu::conv`]);
//! - **batch normalisation**, written with burn's tensor operations: its per-channel broadcasts
//!   take burn-flex's element-by-element strided path, forward and backward. Here: two passes
//!   forward, two backward ([`cpu::norm`]);
//! - **per-channel affine maps** (BatchNorm at inference, `x · scale + shift`): the same
//!   broadcast path; here one pass.
//! - **the SGD step**: four to six serial tensor operations per parameter, each allocating its
//!   result; here one parallel pass in place ([`cpu::sgd`], through [`optim::Sgd`]).
//!
//! On burn's GPU backends the costs are elsewhere: burn-cubecl launches one kernel per tensor
//! operation and, built without autotuning, convolves with its direct kernels. [`cube`] gives
//! them implicit-GEMM or im2col convolutions, BatchNorm in four kernels and the SGD step in one.
//!
//! Every method has a default that is burn's own operation (or burn's tensor algebra);
//! [`burn::backend::Flex`] overrides them with the kernels of [`cpu`] for f32 (other dtypes and
//! grouped convolutions keep burn's), the cubecl backends with those of `cube`, and
//! [`Autodiff`] gives each its own backward pass. Models call the functions below instead of
//! `Conv2d::forward` and friends; nothing else changes. How exactly a GPU multiplies is the
//! process's [`Precision`].
//!
//! [`Autodiff`]: burn::backend::Autodiff

pub mod allocator;
mod autodiff;
pub mod cpu;
#[cfg(feature = "cube")]
pub mod cube;
mod flex;
pub mod optim;
mod precision;
pub mod reference;

use burn::nn::conv::Conv2d;
use burn::nn::{Linear, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::PadMode;
use burn::tensor::ops::{ConvOptions, FloatTensor, IntTensor, MaxPool2dWithIndices};

pub use cpu::conv::Wanted;
pub use cpu::sgd::SgdSettings;
pub use precision::{Precision, precision, set_precision};

/// The window of a 2-D max pooling (PyTorch's, with `ceil_mode = False`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2dOptions {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

/// The gradients of a convolution that were asked for.
#[derive(Debug)]
pub struct ConvGradients<B: Backend> {
    pub input: Option<FloatTensor<B>>,
    pub weight: Option<FloatTensor<B>>,
    pub bias: Option<FloatTensor<B>>,
}

/// The output of batch normalisation in training and the statistics it used.
#[derive(Debug)]
pub struct Normalized<B: Backend> {
    pub output: FloatTensor<B>,
    /// Per-channel mean of the batch.
    pub mean: FloatTensor<B>,
    /// Per-channel biased variance of the batch.
    pub variance: FloatTensor<B>,
}

/// Gradients of a per-channel map with respect to its input and its two per-channel vectors.
#[derive(Debug)]
pub struct ChannelGradients<B: Backend> {
    pub input: FloatTensor<B>,
    pub scale: FloatTensor<B>,
    pub shift: FloatTensor<B>,
}

/// Backends with the workspace's kernels. Tensors are `[batch, channels, height, width]`
/// (`x`), `[channels_out, channels_in / groups, kh, kw]` (convolution weights) and
/// `[channels]` (per-channel vectors).
pub trait Kernels: Backend {
    /// Images per forward pass that keep this backend busy when a method runs many (Score-CAM's
    /// masked copies): a CPU is saturated by a few dozen, a GPU wants more.
    const PERTURBATION_BATCH: usize = 32;

    /// As burn's `conv2d`.
    fn conv2d_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, bias, options)
    }

    /// The gradients of [`Kernels::conv2d_forward`] that `wanted` names, for the output
    /// gradient `output_grad`.
    fn conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
        wanted: Wanted,
    ) -> ConvGradients<Self> {
        reference::conv2d_backward::<Self>(x, weight, output_grad, options, wanted)
    }

    /// Batch normalisation with the batch's own statistics.
    fn batch_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> Normalized<Self> {
        reference::batch_norm_forward::<Self>(x, gamma, beta, epsilon)
    }

    /// The gradients of [`Kernels::batch_norm_forward`] with respect to x, γ and β, the
    /// statistics counted as functions of x.
    fn batch_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        output_grad: FloatTensor<Self>,
    ) -> ChannelGradients<Self> {
        reference::batch_norm_backward::<Self>(x, gamma, mean, variance, epsilon, output_grad)
    }

    /// `x · scale[c] + shift[c]` for each channel c.
    fn channel_affine(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        reference::channel_affine::<Self>(x, scale, shift)
    }

    /// The gradients of [`Kernels::channel_affine`].
    fn channel_affine_backward(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
    ) -> ChannelGradients<Self> {
        reference::channel_affine_backward::<Self>(x, scale, output_grad)
    }

    /// As burn's `max_pool2d` (without `ceil_mode`): the pooled maps only, for inference.
    fn max_pool2d_forward(x: FloatTensor<Self>, options: MaxPool2dOptions) -> FloatTensor<Self> {
        reference::max_pool2d::<Self>(x, options)
    }

    /// The pooled maps and each output's argmax, for [`Kernels::max_pool2d_indices_backward`].
    fn max_pool2d_with_indices_forward(
        x: FloatTensor<Self>,
        options: MaxPool2dOptions,
    ) -> MaxPool2dWithIndices<Self> {
        reference::max_pool2d_with_indices::<Self>(x, options)
    }

    /// The input gradient of max pooling: each output's gradient added at its argmax.
    fn max_pool2d_indices_backward(
        x: FloatTensor<Self>,
        options: MaxPool2dOptions,
        output_grad: FloatTensor<Self>,
        indices: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        reference::max_pool2d_indices_backward::<Self>(x, options, output_grad, indices)
    }

    /// `x · weight + bias` of a `[batch, inputs]` x and an `[inputs, outputs]` weight, as burn's
    /// `linear`.
    fn linear_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
    ) -> FloatTensor<Self> {
        Self::linear(x, weight, bias)
    }

    /// One SGD step of `param` for `grad`: the new parameter and, with momentum, the new
    /// velocity (`velocity` is `None` before the first step).
    fn sgd_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        velocity: Option<FloatTensor<Self>>,
        settings: SgdSettings,
    ) -> (FloatTensor<Self>, Option<FloatTensor<Self>>) {
        reference::sgd_step::<Self>(param, grad, velocity, settings)
    }
}

/// An autodiff backend whose inner (inference) backend has the kernels too: what training and
/// explaining, which run both, ask for.
pub trait AutodiffKernels: AutodiffBackend<InnerBackend: Kernels> + Kernels {}

impl<B> AutodiffKernels for B where B: AutodiffBackend<InnerBackend: Kernels> + Kernels {}

/// `conv.forward(x)` on the kernels. "Same" padding that is uneven (even kernels, or strides
/// that do not divide the input) pads the input explicitly first, as burn does.
pub fn conv2d<B: Kernels>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let bias = conv.bias.as_ref().map(|bias| bias.val());
    conv2d_with(conv, conv.weight.val(), bias, x)
}

/// [`conv2d`] with `conv`'s geometry (stride, padding, dilation, groups) but other weights and
/// bias of the same shapes: BatchNorm folded into them, say.
pub fn conv2d_with<B: Kernels>(
    conv: &Conv2d<B>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let [_, _, height, width] = x.dims();
    let [[top, bottom], [left, right]] = padding_pairs(conv, [height, width]);
    let (x, padding) = if top == bottom && left == right {
        (x, [top, left])
    } else {
        (
            x.pad((left, right, top, bottom), PadMode::Constant(0.0)),
            [0, 0],
        )
    };
    let options = ConvOptions::new(conv.stride, padding, conv.dilation, conv.groups);
    float(B::conv2d_forward(
        primitive(x),
        primitive(weight),
        bias.map(primitive),
        options,
    ))
}

/// A convolution given by its tensors and options alone (symmetric padding), for networks
/// whose layers are not burn modules (an ONNX graph).
pub fn conv2d_options<B: Kernels>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvOptions<2>,
) -> Tensor<B, 4> {
    float(B::conv2d_forward(
        primitive(x),
        primitive(weight),
        bias.map(primitive),
        options,
    ))
}

/// `x · weight + bias` with `weight` `[in, out]`, as [`linear`] without a module.
pub fn linear_with<B: Kernels>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    float(B::linear_forward(
        primitive(x),
        primitive(weight),
        bias.map(primitive),
    ))
}

/// `[[top, bottom], [left, right]]` padding of `conv` for an input of `size`: burn-nn's rule,
/// whose own function is private to it (`Same` centres the padding, the odd pixel at the end).
fn padding_pairs<B: Backend>(conv: &Conv2d<B>, size: [usize; 2]) -> [[usize; 2]; 2] {
    match conv.padding {
        PaddingConfig2d::Valid => [[0, 0], [0, 0]],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [[top, bottom], [left, right]],
        PaddingConfig2d::Same => [0, 1].map(|axis| {
            let (kernel, stride, size) = (conv.kernel_size[axis], conv.stride[axis], size[axis]);
            let outputs = size.div_ceil(stride);
            let total = match outputs {
                0 => 0,
                _ => ((outputs - 1) * stride + kernel).saturating_sub(size),
            };
            [total / 2, total - total / 2]
        }),
    }
}

/// `linear.forward(x)` on the kernels (f32 products on a GPU in [`Precision::F32`]).
pub fn linear<B: Kernels>(linear: &Linear<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    let bias = linear.bias.as_ref().map(|bias| primitive(bias.val()));
    float(B::linear_forward(
        primitive(x),
        primitive(linear.weight.val()),
        bias,
    ))
}

/// Batch normalisation of `x` with the batch's statistics: the output, then the per-channel
/// mean and biased variance (for the running averages; they carry no gradient).
pub fn batch_norm_training<B: Kernels>(
    x: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
    let normalized =
        B::batch_norm_forward(primitive(x), primitive(gamma), primitive(beta), epsilon);
    (
        float(normalized.output),
        float(normalized.mean),
        float(normalized.variance),
    )
}

/// `x · scale[c] + shift[c]` for each channel c.
pub fn channel_affine<B: Kernels>(
    x: Tensor<B, 4>,
    scale: Tensor<B, 1>,
    shift: Tensor<B, 1>,
) -> Tensor<B, 4> {
    float(B::channel_affine(
        primitive(x),
        primitive(scale),
        primitive(shift),
    ))
}

/// Max pooling of `x` over `kernel` windows moved by `stride`, the input padded by `padding`
/// (as burn's `max_pool2d` with unit dilation and `ceil_mode = false`).
pub fn max_pool2d<B: Kernels>(
    x: Tensor<B, 4>,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Tensor<B, 4> {
    let options = MaxPool2dOptions {
        kernel,
        stride,
        padding,
        dilation: [1, 1],
    };
    float(B::max_pool2d_forward(primitive(x), options))
}

fn primitive<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> FloatTensor<B> {
    tensor.into_primitive().tensor()
}

fn float<B: Backend, const D: usize>(tensor: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(tensor))
}
