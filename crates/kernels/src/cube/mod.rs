//! [`Kernels`] on burn's cubecl backends (CUDA; WebGPU for testing the kernels without a
//! GPU): the convolution algorithms of [`conv`], BatchNorm and per-channel maps in four small
//! kernels ([`norm`]), the SGD step in one ([`sgd`]), and f32 matrix products where the
//! [`Precision`](crate::Precision) asks for them ([`matmul`]).
//!
//! burn-cubecl runs every tensor operation as its own kernel launch and, built without
//! autotuning, always picks its simplest convolution; these replace the operations that
//! dominated a training step on an H200 (the convolutions, then BatchNorm's two dozen launches
//! per layer). Max pooling keeps burn's kernels.

pub mod cache;
mod conv;
mod im2col;
mod matmul;
mod norm;
mod sgd;
mod tensor;

use burn::tensor::ops::{ConvOptions, ModuleOps};
use burn::tensor::{Shape, Tensor, TensorPrimitive};
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime};
use cubecl::prelude::*;

pub use conv::{
    Algorithm as ConvAlgorithm, declined as declined_convolutions, force as force_conv_algorithm,
};
pub use im2col::limit_column_bytes;
pub use matmul::{UNIT_GEMMS, choose_unit_gemm, matmul_f32};

use self::tensor::{all_f32, array, elementwise, empty_like_device};
use crate::precision::{Precision, precision};
use crate::{ChannelGradients, ConvGradients, Kernels, Normalized, SgdSettings, Wanted, reference};

/// The backend the glue between kernels is written in (its float operations are the same for
/// every bool type).
type Gpu<R> = CubeBackend<R, f32, i32, u8>;

fn float<R: CubeRuntime, const D: usize>(tensor: CubeTensor<R>) -> Tensor<Gpu<R>, D> {
    Tensor::from_primitive(TensorPrimitive::Float(tensor))
}

fn primitive<R: CubeRuntime, const D: usize>(tensor: Tensor<Gpu<R>, D>) -> CubeTensor<R> {
    tensor.into_primitive().tensor()
}

#[cube(launch)]
fn fill_value<F: Float>(out: &mut Array<F>, value: f32, length: u32) {
    if ABSOLUTE_POS >= length as usize {
        terminate!();
    }
    out[ABSOLUTE_POS] = F::cast_from(value);
}

/// A vector of `length` copies of `value` on the device of `like`.
fn fill<R: CubeRuntime>(like: &CubeTensor<R>, length: usize, value: f32) -> CubeTensor<R> {
    let out = empty_like_device(like, Shape::new([length]));
    let (cubes, units) = elementwise(like, length);
    fill_value::launch::<f32, R>(
        &like.client,
        cubes,
        units,
        array(&out),
        value,
        length as u32,
    );
    out
}

/// The algorithm the forward pass of this convolution takes now (for benchmarks and reports).
pub fn conv_algorithm(
    x: [usize; 4],
    weight: [usize; 4],
    options: &ConvOptions<2>,
) -> ConvAlgorithm {
    conv::choose(x, weight, options)
}

impl<R, BT> Kernels for CubeBackend<R, f32, i32, BT>
where
    R: CubeRuntime,
    BT: BoolElement,
{
    const PERTURBATION_BATCH: usize = 128;

    fn conv2d_forward(
        x: CubeTensor<R>,
        weight: CubeTensor<R>,
        bias: Option<CubeTensor<R>>,
        options: ConvOptions<2>,
    ) -> CubeTensor<R> {
        if !all_f32(&[&x, &weight]) {
            return Self::conv2d(x, weight, bias, options);
        }
        conv::forward(x, weight, bias, options)
    }

    fn conv2d_backward(
        x: CubeTensor<R>,
        weight: CubeTensor<R>,
        output_grad: CubeTensor<R>,
        options: ConvOptions<2>,
        wanted: Wanted,
    ) -> ConvGradients<Self> {
        if !all_f32(&[&x, &weight, &output_grad]) {
            return reference::conv2d_backward::<Self>(x, weight, output_grad, options, wanted);
        }
        let input = wanted.input.then(|| {
            conv::input_gradient(&x, weight.clone(), output_grad.clone(), options.clone())
        });
        let bias = wanted.bias.then(|| norm::channel_sums(output_grad.clone()));
        let weight = wanted
            .weight
            .then(|| conv::weight_gradient(x, &weight, output_grad, options));
        ConvGradients {
            input,
            weight,
            bias,
        }
    }

    fn batch_norm_forward(
        x: CubeTensor<R>,
        gamma: CubeTensor<R>,
        beta: CubeTensor<R>,
        epsilon: f64,
    ) -> Normalized<Self> {
        if !all_f32(&[&x, &gamma, &beta]) {
            return reference::batch_norm_forward::<Self>(x, gamma, beta, epsilon);
        }
        let statistics = norm::batch_norm_forward(x, gamma, beta, epsilon);
        Normalized {
            output: statistics.output,
            mean: statistics.mean,
            variance: statistics.variance,
        }
    }

    fn batch_norm_backward(
        x: CubeTensor<R>,
        gamma: CubeTensor<R>,
        mean: CubeTensor<R>,
        variance: CubeTensor<R>,
        epsilon: f64,
        output_grad: CubeTensor<R>,
    ) -> ChannelGradients<Self> {
        if !all_f32(&[&x, &gamma, &mean, &variance, &output_grad]) {
            return reference::batch_norm_backward::<Self>(
                x,
                gamma,
                mean,
                variance,
                epsilon,
                output_grad,
            );
        }
        let grads = norm::batch_norm_backward(x, gamma, mean, variance, epsilon, output_grad);
        ChannelGradients {
            input: grads.input,
            scale: grads.scale,
            shift: grads.shift,
        }
    }

    fn channel_affine(
        x: CubeTensor<R>,
        scale: CubeTensor<R>,
        shift: CubeTensor<R>,
    ) -> CubeTensor<R> {
        if !all_f32(&[&x, &scale, &shift]) {
            return reference::channel_affine::<Self>(x, scale, shift);
        }
        norm::channel_affine(x, scale, shift)
    }

    fn channel_affine_backward(
        x: CubeTensor<R>,
        scale: CubeTensor<R>,
        output_grad: CubeTensor<R>,
    ) -> ChannelGradients<Self> {
        if !all_f32(&[&x, &scale, &output_grad]) {
            return reference::channel_affine_backward::<Self>(x, scale, output_grad);
        }
        let grads = norm::channel_affine_backward(x, scale, output_grad);
        ChannelGradients {
            input: grads.input,
            scale: grads.scale,
            shift: grads.shift,
        }
    }

    fn sgd_step(
        param: CubeTensor<R>,
        grad: CubeTensor<R>,
        velocity: Option<CubeTensor<R>>,
        settings: SgdSettings,
    ) -> (CubeTensor<R>, Option<CubeTensor<R>>) {
        let velocity_f32 = velocity.as_ref().is_none_or(|v| v.dtype == param.dtype);
        if !all_f32(&[&param, &grad]) || !velocity_f32 {
            return reference::sgd_step::<Self>(param, grad, velocity, settings);
        }
        sgd::sgd_step(param, grad, velocity, settings)
    }

    fn linear_forward(
        x: CubeTensor<R>,
        weight: CubeTensor<R>,
        bias: Option<CubeTensor<R>>,
    ) -> CubeTensor<R> {
        if precision() == Precision::Tf32 || !all_f32(&[&x, &weight]) {
            return Self::linear(x, weight, bias);
        }
        match matmul_f32(x.clone(), weight.clone()) {
            Ok(product) => match bias {
                Some(bias) => primitive(float::<R, 2>(product) + float::<R, 1>(bias).unsqueeze()),
                None => product,
            },
            Err(_) => Self::linear(x, weight, bias),
        }
    }
}
