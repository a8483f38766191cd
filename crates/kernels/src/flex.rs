//! [`Kernels`] on burn's CPU backend: f32 tensors go to [`crate::cpu`]; other dtypes and
//! grouped convolutions keep burn-flex's own operations.

use burn::backend::Flex;
use burn::tensor::ops::{ConvOptions, FloatTensor, MaxPool2dWithIndices, ModuleOps};
use burn::tensor::{Bytes, DType, Shape};
use burn_flex::{FlexTensor, Layout};

use crate::cpu::conv::{self, Conv2dShape};
use crate::cpu::norm::{self, ChannelLayout};
use crate::cpu::pool::{self, Pool2dShape};
use crate::cpu::sgd;
use crate::{
    ChannelGradients, ConvGradients, Kernels, MaxPool2dOptions, Normalized, SgdSettings, Wanted,
    reference,
};

impl Kernels for Flex {
    fn conv2d_forward(
        x: FlexTensor,
        weight: FlexTensor,
        bias: Option<FlexTensor>,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let Some(shape) = conv_shape(&x, &weight, &options) else {
            return Flex::conv2d(x, weight, bias, options);
        };
        if bias.as_ref().is_some_and(|b| b.dtype() != DType::F32) {
            return Flex::conv2d(x, weight, bias, options);
        }
        let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
        let bias = bias.map(|b| b.to_contiguous());
        let out = conv::conv2d_forward(f32s(&x), f32s(&weight), bias.as_ref().map(f32s), &shape);
        let [height, width] = shape.output();
        tensor(out, [shape.batch, shape.channels_out, height, width])
    }

    fn conv2d_backward(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
        wanted: Wanted,
    ) -> ConvGradients<Flex> {
        let Some(shape) = conv_shape(&x, &weight, &options).filter(|_| is_f32(&output_grad)) else {
            return reference::conv2d_backward::<Flex>(x, weight, output_grad, options, wanted);
        };
        let (x_shape, w_shape) = (dims4(&x), dims4(&weight));
        let (x, weight, dy) = (
            x.to_contiguous(),
            weight.to_contiguous(),
            output_grad.to_contiguous(),
        );
        let grads = conv::conv2d_backward(f32s(&x), f32s(&weight), f32s(&dy), &shape, wanted);
        ConvGradients {
            input: grads.input.map(|g| tensor(g, x_shape)),
            weight: grads.weight.map(|g| tensor(g, w_shape)),
            bias: grads.bias.map(|g| tensor(g, [shape.channels_out])),
        }
    }

    fn batch_norm_forward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> Normalized<Flex> {
        if ![&x, &gamma, &beta].into_iter().all(is_f32) {
            return reference::batch_norm_forward::<Flex>(x, gamma, beta, epsilon);
        }
        let (shape, layout) = (dims4(&x), channel_layout(&x));
        let [x, gamma, beta] = [x, gamma, beta].map(|t| t.to_contiguous());
        let (y, mean, var) =
            norm::batch_norm_forward(f32s(&x), layout, f32s(&gamma), f32s(&beta), epsilon);
        Normalized {
            output: tensor(y, shape),
            mean: tensor(mean, [layout.channels]),
            variance: tensor(var, [layout.channels]),
        }
    }

    fn batch_norm_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        output_grad: FlexTensor,
    ) -> ChannelGradients<Flex> {
        if ![&x, &gamma, &mean, &variance, &output_grad]
            .into_iter()
            .all(is_f32)
        {
            return reference::batch_norm_backward::<Flex>(
                x,
                gamma,
                mean,
                variance,
                epsilon,
                output_grad,
            );
        }
        let (shape, layout) = (dims4(&x), channel_layout(&x));
        let [x, gamma, mean, variance, dy] =
            [x, gamma, mean, variance, output_grad].map(|t| t.to_contiguous());
        let (dx, dgamma, dbeta) = norm::batch_norm_backward(
            f32s(&x),
            f32s(&dy),
            layout,
            f32s(&gamma),
            f32s(&mean),
            f32s(&variance),
            epsilon,
        );
        channel_gradients(dx, shape, dgamma, dbeta)
    }

    fn channel_affine(x: FlexTensor, scale: FlexTensor, shift: FlexTensor) -> FlexTensor {
        if ![&x, &scale, &shift].into_iter().all(is_f32) {
            return reference::channel_affine::<Flex>(x, scale, shift);
        }
        let (shape, layout) = (dims4(&x), channel_layout(&x));
        let [x, scale, shift] = [x, scale, shift].map(|t| t.to_contiguous());
        tensor(
            norm::channel_affine(f32s(&x), layout, f32s(&scale), f32s(&shift)),
            shape,
        )
    }

    fn channel_affine_backward(
        x: FlexTensor,
        scale: FlexTensor,
        output_grad: FlexTensor,
    ) -> ChannelGradients<Flex> {
        if ![&x, &scale, &output_grad].into_iter().all(is_f32) {
            return reference::channel_affine_backward::<Flex>(x, scale, output_grad);
        }
        let (shape, layout) = (dims4(&x), channel_layout(&x));
        let [x, scale, dy] = [x, scale, output_grad].map(|t| t.to_contiguous());
        let (dx, dscale, dshift) =
            norm::channel_affine_backward(f32s(&x), f32s(&dy), layout, f32s(&scale));
        channel_gradients(dx, shape, dscale, dshift)
    }

    fn max_pool2d_forward(x: FlexTensor, options: MaxPool2dOptions) -> FlexTensor {
        if !is_f32(&x) {
            return reference::max_pool2d::<Flex>(x, options);
        }
        let shape = pool_shape(&x, options);
        let x = x.to_contiguous();
        let (out, _) = pool::max_pool2d(f32s(&x), &shape, false);
        tensor(out, pool_output_dims(&shape))
    }

    fn max_pool2d_with_indices_forward(
        x: FlexTensor,
        options: MaxPool2dOptions,
    ) -> MaxPool2dWithIndices<Flex> {
        if !is_f32(&x) {
            return reference::max_pool2d_with_indices::<Flex>(x, options);
        }
        let shape = pool_shape(&x, options);
        let x = x.to_contiguous();
        let (out, indices) = pool::max_pool2d(f32s(&x), &shape, true);
        let dims = pool_output_dims(&shape);
        let indices = FlexTensor::new(
            Bytes::from_elems(indices.expect("indices were asked for")),
            Layout::contiguous(Shape::from(dims)),
            DType::I32,
        );
        MaxPool2dWithIndices::new(tensor(out, dims), indices)
    }

    fn max_pool2d_indices_backward(
        x: FlexTensor,
        options: MaxPool2dOptions,
        output_grad: FlexTensor,
        indices: FlexTensor,
    ) -> FlexTensor {
        // Indices of another dtype came from burn-flex's own forward pass.
        if !is_f32(&x) || !is_f32(&output_grad) || indices.dtype() != DType::I32 {
            return reference::max_pool2d_indices_backward::<Flex>(
                x,
                options,
                output_grad,
                indices,
            );
        }
        let shape = pool_shape(&x, options);
        let (dy, indices) = (output_grad.to_contiguous(), indices.to_contiguous());
        let indices = indices.as_slice::<i32>().expect("contiguous i32 indices");
        tensor(
            pool::max_pool2d_backward(f32s(&dy), indices, &shape),
            dims4(&x),
        )
    }

    fn sgd_step(
        param: FlexTensor,
        grad: FlexTensor,
        velocity: Option<FlexTensor>,
        settings: SgdSettings,
    ) -> (FlexTensor, Option<FlexTensor>) {
        let all_f32 = is_f32(&param) && is_f32(&grad) && velocity.as_ref().is_none_or(is_f32);
        if !all_f32 {
            return reference::sgd_step::<Flex>(param, grad, velocity, settings);
        }
        let first = velocity.is_none();
        let (mut param, grad) = (into_contiguous(param), grad.to_contiguous());
        let mut velocity = settings.momentum.map(|_| match velocity {
            Some(v) => into_contiguous(v),
            None => FlexTensor::zeros(param.layout().shape().clone(), DType::F32),
        });
        // Copy-on-write: in place when the optimiser holds the only reference.
        let velocity_values = velocity.as_mut().map(|v| v.storage_mut::<f32>());
        sgd::sgd_step(
            param.storage_mut::<f32>(),
            f32s(&grad),
            velocity_values,
            first,
            &settings,
        );
        (param, velocity)
    }
}

/// A contiguous tensor that covers its whole buffer (so `storage_mut` is its elements): itself
/// when it already is one, so that a tensor owned nowhere else is updated in place.
fn into_contiguous(t: FlexTensor) -> FlexTensor {
    let exact = t.is_contiguous()
        && t.layout().start_offset() == 0
        && t.bytes().len() == t.layout().num_elements() * size_of::<f32>();
    if exact { t } else { t.to_contiguous() }
}

fn pool_shape(x: &FlexTensor, options: MaxPool2dOptions) -> Pool2dShape {
    let [batch, channels, height, width] = dims4(x);
    Pool2dShape {
        batch,
        channels,
        input: [height, width],
        kernel: options.kernel,
        stride: options.stride,
        padding: options.padding,
        dilation: options.dilation,
    }
}

fn pool_output_dims(shape: &Pool2dShape) -> [usize; 4] {
    let [height, width] = shape.output();
    [shape.batch, shape.channels, height, width]
}

/// The convolution's sizes, when the CPU kernel handles it: f32, one group.
fn conv_shape(
    x: &FlexTensor,
    weight: &FlexTensor,
    options: &ConvOptions<2>,
) -> Option<Conv2dShape> {
    if options.groups != 1 || !is_f32(x) || !is_f32(weight) {
        return None;
    }
    let [batch, channels_in, height, width] = dims4(x);
    let [channels_out, _, kh, kw] = dims4(weight);
    Some(Conv2dShape {
        batch,
        channels_in,
        channels_out,
        input: [height, width],
        kernel: [kh, kw],
        stride: options.stride,
        padding: options.padding,
        dilation: options.dilation,
    })
}

fn channel_gradients(
    dx: Vec<f32>,
    shape: [usize; 4],
    scale: Vec<f32>,
    shift: Vec<f32>,
) -> ChannelGradients<Flex> {
    let channels = shape[1];
    ChannelGradients {
        input: tensor(dx, shape),
        scale: tensor(scale, [channels]),
        shift: tensor(shift, [channels]),
    }
}

fn channel_layout(x: &FlexTensor) -> ChannelLayout {
    let [batch, channels, height, width] = dims4(x);
    ChannelLayout {
        batch,
        channels,
        pixels: height * width,
    }
}

fn is_f32(t: &FlexTensor) -> bool {
    t.dtype() == DType::F32
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let shape = t.layout().shape();
    assert_eq!(shape.num_dims(), 4, "a 4-D tensor");
    [shape[0], shape[1], shape[2], shape[3]]
}

/// The elements of a contiguous f32 tensor.
fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FloatTensor<Flex> {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(Shape::from(shape)),
        DType::F32,
    )
}

#[cfg(test)]
mod tests {
    //! Each kernel against burn's own operation on the same tensors: values and gradients.

    use burn::prelude::*;
    use burn::tensor::{Distribution, TensorPrimitive, Tolerance};

    use super::*;

    fn random<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<Flex, D> {
        Flex::seed(&Default::default(), seed);
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
    }

    fn p<const D: usize>(t: &Tensor<Flex, D>) -> FlexTensor {
        t.clone().into_primitive().tensor()
    }

    fn t<const D: usize>(p: FlexTensor) -> Tensor<Flex, D> {
        Tensor::from_primitive(TensorPrimitive::Float(p))
    }

    fn assert_close<const D: usize>(ours: Tensor<Flex, D>, theirs: Tensor<Flex, D>, what: &str) {
        assert_eq!(ours.dims(), theirs.dims(), "{what}: shape");
        let tolerance = Tolerance::rel_abs(1e-4, 1e-4);
        ours.into_data()
            .assert_approx_eq::<f32>(&theirs.into_data(), tolerance);
    }

    /// (input, weight, stride, padding, dilation): stride 2, padding, dilation, 1×1,
    /// non-square inputs and kernels, batch 1.
    fn conv_cases() -> Vec<([usize; 4], [usize; 4], usize, usize, usize)> {
        vec![
            ([2, 3, 9, 7], [4, 3, 3, 3], 1, 1, 1),
            ([3, 4, 8, 8], [6, 4, 3, 3], 2, 1, 1),
            ([1, 5, 6, 6], [3, 5, 1, 1], 1, 0, 1),
            ([2, 4, 7, 9], [8, 4, 1, 1], 2, 0, 1),
            ([1, 2, 11, 10], [3, 2, 3, 3], 1, 2, 2),
            ([2, 3, 12, 5], [2, 3, 5, 2], 3, 1, 1),
            ([1, 3, 16, 16], [4, 3, 7, 7], 2, 3, 1),
        ]
    }

    #[test]
    fn convolution_matches_burns_values_and_gradients() {
        for (i, (x_shape, w_shape, stride, padding, dilation)) in
            conv_cases().into_iter().enumerate()
        {
            let seed = i as u64 * 10;
            let (x, w, b) = (
                random(x_shape, seed),
                random(w_shape, seed + 1),
                random([w_shape[0]], seed + 2),
            );
            let options = ConvOptions::new([stride; 2], [padding; 2], [dilation; 2], 1);
            let ours: Tensor<Flex, 4> = t(Flex::conv2d_forward(
                p(&x),
                p(&w),
                Some(p(&b)),
                options.clone(),
            ));
            let theirs: Tensor<Flex, 4> =
                t(Flex::conv2d(p(&x), p(&w), Some(p(&b)), options.clone()));
            assert_close(ours.clone(), theirs, &format!("case {i} forward"));

            let dy = random(ours.dims(), seed + 3);
            let all = Wanted {
                input: true,
                weight: true,
                bias: true,
            };
            let ours = Flex::conv2d_backward(p(&x), p(&w), p(&dy), options.clone(), all);
            let theirs = reference::conv2d_backward::<Flex>(p(&x), p(&w), p(&dy), options, all);
            assert_close::<4>(
                t(ours.input.unwrap()),
                t(theirs.input.unwrap()),
                &format!("case {i} dx"),
            );
            assert_close::<4>(
                t(ours.weight.unwrap()),
                t(theirs.weight.unwrap()),
                &format!("case {i} dw"),
            );
            assert_close::<1>(
                t(ours.bias.unwrap()),
                t(theirs.bias.unwrap()),
                &format!("case {i} db"),
            );
        }
    }

    #[test]
    fn grouped_convolutions_keep_burns_operation() {
        // Depthwise: groups = channels, which the CPU kernel leaves to burn-flex.
        let (x, w) = (random([2, 4, 6, 5], 1), random([4, 1, 3, 3], 2));
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 4);
        let ours: Tensor<Flex, 4> = t(Flex::conv2d_forward(p(&x), p(&w), None, options.clone()));
        let theirs: Tensor<Flex, 4> = t(Flex::conv2d(p(&x), p(&w), None, options.clone()));
        assert_close(ours.clone(), theirs, "depthwise forward");
        let dy = random(ours.dims(), 3);
        let wanted = Wanted {
            input: true,
            weight: true,
            bias: false,
        };
        let ours = Flex::conv2d_backward(p(&x), p(&w), p(&dy), options.clone(), wanted);
        let theirs = reference::conv2d_backward::<Flex>(p(&x), p(&w), p(&dy), options, wanted);
        assert_close::<4>(
            t(ours.weight.unwrap()),
            t(theirs.weight.unwrap()),
            "depthwise dw",
        );
    }

    #[test]
    fn a_permuted_input_is_read_in_its_logical_order() {
        let x = random([3, 2, 5, 6], 4).swap_dims(0, 1); // [2, 3, 5, 6], not contiguous
        let w = random([4, 3, 3, 3], 5);
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let ours: Tensor<Flex, 4> = t(Flex::conv2d_forward(p(&x), p(&w), None, options.clone()));
        let theirs: Tensor<Flex, 4> = t(Flex::conv2d(p(&x), p(&w), None, options));
        assert_close(ours, theirs, "permuted input");
    }

    #[test]
    fn batch_norm_matches_burns_algebra_values_and_gradients() {
        for (i, shape) in [[4, 3, 5, 6], [1, 2, 7, 3], [16, 8, 1, 1]]
            .into_iter()
            .enumerate()
        {
            let seed = 100 + i as u64 * 10;
            let x = random(shape, seed) * 3.0 + 1.0;
            let (gamma, beta) = (random([shape[1]], seed + 1), random([shape[1]], seed + 2));
            let ours = Flex::batch_norm_forward(p(&x), p(&gamma), p(&beta), 1e-5);
            let theirs = reference::batch_norm_forward::<Flex>(p(&x), p(&gamma), p(&beta), 1e-5);
            assert_close::<4>(t(ours.output.clone()), t(theirs.output), "bn output");
            assert_close::<1>(t(ours.mean.clone()), t(theirs.mean), "bn mean");
            assert_close::<1>(t(ours.variance.clone()), t(theirs.variance), "bn variance");

            let dy = random(shape, seed + 3);
            let args = (p(&x), p(&gamma), ours.mean, ours.variance);
            let ours = Flex::batch_norm_backward(
                args.0.clone(),
                args.1.clone(),
                args.2.clone(),
                args.3.clone(),
                1e-5,
                p(&dy),
            );
            let theirs = reference::batch_norm_backward::<Flex>(
                args.0,
                args.1,
                args.2,
                args.3,
                1e-5,
                p(&dy),
            );
            assert_close::<4>(t(ours.input), t(theirs.input), "bn dx");
            assert_close::<1>(t(ours.scale), t(theirs.scale), "bn dgamma");
            assert_close::<1>(t(ours.shift), t(theirs.shift), "bn dbeta");
        }
    }

    #[test]
    fn the_sgd_step_gives_burns_bits() {
        use crate::cpu::sgd::Momentum;
        let momentum = |nesterov, dampening: f32| Momentum {
            momentum: 0.9,
            gradient_share: 1.0 - dampening,
            nesterov,
        };
        let settings = [
            SgdSettings {
                lr: 0.1,
                weight_decay: None,
                momentum: None,
            },
            SgdSettings {
                lr: 0.05,
                weight_decay: Some(1e-4),
                momentum: Some(momentum(false, 0.0)),
            },
            SgdSettings {
                lr: 0.01,
                weight_decay: Some(5e-4),
                momentum: Some(momentum(true, 0.0)),
            },
            SgdSettings {
                lr: 0.2,
                weight_decay: None,
                momentum: Some(momentum(false, 0.3)),
            },
        ];
        for settings in settings {
            // One tensor, shared: the backend's seed is global, so two draws "with the same
            // seed" can differ when another test reseeds in between.
            let start = p(&random([70_001], 20));
            let (mut ours, mut theirs) = (start.clone(), start);
            let (mut v_ours, mut v_theirs) = (None, None);
            for step in 0..3 {
                let grad = p(&random([70_001], 30 + step));
                (ours, v_ours) = Flex::sgd_step(ours, grad.clone(), v_ours, settings);
                (theirs, v_theirs) = reference::sgd_step::<Flex>(theirs, grad, v_theirs, settings);
                assert_eq!(
                    ours.clone().into_data(),
                    theirs.clone().into_data(),
                    "{settings:?}"
                );
                assert_eq!(
                    v_ours.clone().map(|v| v.into_data()),
                    v_theirs.clone().map(|v| v.into_data())
                );
            }
        }
    }

    #[test]
    fn an_sgd_step_leaves_a_shared_parameter_alone() {
        let param = p(&random([10], 40));
        let before = param.clone().into_data();
        let settings = SgdSettings {
            lr: 1.0,
            weight_decay: None,
            momentum: None,
        };
        let (updated, _) = Flex::sgd_step(param.clone(), p(&random([10], 41)), None, settings);
        assert_eq!(param.into_data(), before);
        assert_ne!(updated.into_data(), before);
    }

    #[test]
    fn channel_affine_matches_burns_algebra_values_and_gradients() {
        let x = random([3, 4, 5, 2], 7);
        let (scale, shift) = (random([4], 8), random([4], 9));
        let ours: Tensor<Flex, 4> = t(Flex::channel_affine(p(&x), p(&scale), p(&shift)));
        let theirs: Tensor<Flex, 4> = t(reference::channel_affine::<Flex>(
            p(&x),
            p(&scale),
            p(&shift),
        ));
        assert_close(ours, theirs, "affine");
        let dy = random([3, 4, 5, 2], 10);
        let ours = Flex::channel_affine_backward(p(&x), p(&scale), p(&dy));
        let theirs = reference::channel_affine_backward::<Flex>(p(&x), p(&scale), p(&dy));
        assert_close::<4>(t(ours.input), t(theirs.input), "affine dx");
        assert_close::<1>(t(ours.scale), t(theirs.scale), "affine dscale");
        assert_close::<1>(t(ours.shift), t(theirs.shift), "affine dshift");
    }
}
