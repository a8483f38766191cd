//! The [`crate::Kernels`] operations in burn's own operations and tensor algebra, for any
//! backend: the defaults the CUDA backend runs, and what the CPU kernels are tested against.

use burn::prelude::*;
use burn::tensor::ops::{ConvOptions, FloatTensor, IntTensor, MaxPool2dWithIndices};

use crate::{
    ChannelGradients, ConvGradients, MaxPool2dOptions, Normalized, SgdSettings, Wanted, float,
    primitive,
};

/// burn's own convolution gradients.
pub fn conv2d_backward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    output_grad: FloatTensor<B>,
    options: ConvOptions<2>,
    wanted: Wanted,
) -> ConvGradients<B> {
    let input = wanted.input.then(|| {
        B::conv2d_x_backward(
            x.clone(),
            weight.clone(),
            output_grad.clone(),
            options.clone(),
        )
    });
    let bias = wanted.bias.then(|| {
        let grad: Tensor<B, 4> = float(output_grad.clone());
        let channels = grad.dims()[1];
        primitive(grad.sum_dim(0).sum_dim(2).sum_dim(3).reshape([channels]))
    });
    let weight = wanted
        .weight
        .then(|| B::conv2d_weight_backward(x, weight, output_grad, options));
    ConvGradients {
        input,
        weight,
        bias,
    }
}

/// `[batch, channels, pixels]` view of `x` and its channel count.
fn channels_view<B: Backend>(x: FloatTensor<B>) -> (Tensor<B, 3>, usize) {
    let x: Tensor<B, 4> = float(x);
    let [n, c, h, w] = x.dims();
    (x.reshape([n, c, h * w]), c)
}

/// A per-channel vector shaped to broadcast over `[batch, channels, pixels]`.
fn per_channel<B: Backend>(v: FloatTensor<B>, channels: usize) -> Tensor<B, 3> {
    float::<B, 1>(v).reshape([1, channels, 1])
}

/// Σ over batch and pixels of `[batch, channels, pixels]`, as `[channels]`.
fn channel_sum<B: Backend>(t: Tensor<B, 3>, channels: usize) -> Tensor<B, 1> {
    t.sum_dim(2).sum_dim(0).reshape([channels])
}

pub fn batch_norm_forward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
) -> Normalized<B> {
    let shape = float::<B, 4>(x.clone()).dims();
    let (x, c) = channels_view::<B>(x);
    let mean = x.clone().mean_dim(2).mean_dim(0);
    let centered = x - mean.clone();
    let variance = centered.clone().square().mean_dim(2).mean_dim(0);
    let inv_std = (variance.clone() + epsilon).sqrt().recip();
    let y = centered * inv_std * per_channel::<B>(gamma, c) + per_channel::<B>(beta, c);
    Normalized {
        output: primitive(y.reshape(shape)),
        mean: primitive(mean.reshape([c])),
        variance: primitive(variance.reshape([c])),
    }
}

pub fn batch_norm_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    mean: FloatTensor<B>,
    variance: FloatTensor<B>,
    epsilon: f64,
    output_grad: FloatTensor<B>,
) -> ChannelGradients<B> {
    let shape = float::<B, 4>(x.clone()).dims();
    let (x, c) = channels_view::<B>(x);
    let (dy, _) = channels_view::<B>(output_grad);
    let count = (shape[0] * shape[2] * shape[3]) as f64;
    let inv_std = (per_channel::<B>(variance, c) + epsilon).sqrt().recip();
    let normalized = (x - per_channel::<B>(mean, c)) * inv_std.clone();
    let dbeta = channel_sum(dy.clone(), c);
    let dgamma = channel_sum(dy.clone() * normalized.clone(), c);
    let dx = (dy
        - dbeta.clone().reshape([1, c, 1]) / count
        - normalized * dgamma.clone().reshape([1, c, 1]) / count)
        * inv_std
        * per_channel::<B>(gamma, c);
    ChannelGradients {
        input: primitive(dx.reshape(shape)),
        scale: primitive(dgamma),
        shift: primitive(dbeta),
    }
}

pub fn channel_affine<B: Backend>(
    x: FloatTensor<B>,
    scale: FloatTensor<B>,
    shift: FloatTensor<B>,
) -> FloatTensor<B> {
    let shape = float::<B, 4>(x.clone()).dims();
    let (x, c) = channels_view::<B>(x);
    let y = x * per_channel::<B>(scale, c) + per_channel::<B>(shift, c);
    primitive(y.reshape(shape))
}

pub fn channel_affine_backward<B: Backend>(
    x: FloatTensor<B>,
    scale: FloatTensor<B>,
    output_grad: FloatTensor<B>,
) -> ChannelGradients<B> {
    let shape = float::<B, 4>(x.clone()).dims();
    let (x, c) = channels_view::<B>(x);
    let (dy, _) = channels_view::<B>(output_grad);
    ChannelGradients {
        input: primitive((dy.clone() * per_channel::<B>(scale, c)).reshape(shape)),
        scale: primitive(channel_sum(dy.clone() * x, c)),
        shift: primitive(channel_sum(dy, c)),
    }
}

/// burn's `Sgd` step, operation for operation.
pub fn sgd_step<B: Backend>(
    param: FloatTensor<B>,
    grad: FloatTensor<B>,
    velocity: Option<FloatTensor<B>>,
    settings: SgdSettings,
) -> (FloatTensor<B>, Option<FloatTensor<B>>) {
    let param: Tensor<B, 1> = float(param);
    let mut grad: Tensor<B, 1> = float(grad);
    if let Some(decay) = settings.weight_decay {
        grad = param.clone().mul_scalar(decay).add(grad);
    }
    let (direction, velocity) = match settings.momentum {
        Some(m) => {
            let velocity = match velocity {
                Some(v) => grad
                    .clone()
                    .mul_scalar(m.gradient_share)
                    .add(float::<B, 1>(v).mul_scalar(m.momentum)),
                None => grad.clone(),
            };
            let direction = match m.nesterov {
                true => velocity.clone().mul_scalar(m.momentum).add(grad),
                false => velocity.clone(),
            };
            (direction, Some(primitive(velocity)))
        }
        None => (grad, None),
    };
    (
        primitive(param - direction.mul_scalar(settings.lr)),
        velocity,
    )
}

/// burn's max pooling, without `ceil_mode`.
pub fn max_pool2d<B: Backend>(x: FloatTensor<B>, options: MaxPool2dOptions) -> FloatTensor<B> {
    let MaxPool2dOptions {
        kernel,
        stride,
        padding,
        dilation,
    } = options;
    B::max_pool2d(x, kernel, stride, padding, dilation, false)
}

/// burn's max pooling with the argmax of each window.
pub fn max_pool2d_with_indices<B: Backend>(
    x: FloatTensor<B>,
    options: MaxPool2dOptions,
) -> MaxPool2dWithIndices<B> {
    let MaxPool2dOptions {
        kernel,
        stride,
        padding,
        dilation,
    } = options;
    B::max_pool2d_with_indices(x, kernel, stride, padding, dilation, false)
}

/// burn's input gradient of max pooling from the argmax indices.
pub fn max_pool2d_indices_backward<B: Backend>(
    x: FloatTensor<B>,
    options: MaxPool2dOptions,
    output_grad: FloatTensor<B>,
    indices: IntTensor<B>,
) -> FloatTensor<B> {
    let MaxPool2dOptions {
        kernel,
        stride,
        padding,
        dilation,
    } = options;
    B::max_pool2d_with_indices_backward(
        x,
        kernel,
        stride,
        padding,
        dilation,
        false,
        output_grad,
        indices,
    )
    .x_grad
}
