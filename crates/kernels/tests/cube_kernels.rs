//! The cubecl kernels (`kernels::cube`) against the CPU's, on burn's WebGPU backend. With
//! Mesa's lavapipe (Debian: `apt-get install mesa-vulkan-drivers`) WebGPU runs on the CPU, so
//! the GPU kernels are checked without a GPU; the CUDA build runs the same kernels, compiled
//! for CUDA (`scripts/device_tables.sh` measures them there, with their error against the CPU).
//!
//! `cargo test -p kernels --features wgpu --test cube_kernels`

#![cfg(feature = "wgpu")]

use std::sync::Mutex;

use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::ops::{ConvOptions, FloatTensor};
use burn::tensor::{Distribution, TensorPrimitive};
use kernels::cpu::sgd::Momentum;
use kernels::cube::{
    ConvAlgorithm, UNIT_GEMMS, choose_unit_gemm, force_conv_algorithm, limit_column_bytes,
};
use kernels::{Kernels, Precision, SgdSettings, Wanted, set_precision};

/// burn's WebGPU backend with its default element types (the alias leaves them open).
type Wgpu = burn::backend::Wgpu<f32, i32, u32>;

/// The kernels' settings are the process's: tests that change them take turns.
static SETTINGS: Mutex<()> = Mutex::new(());

fn random<const D: usize>(shape: [usize; D], seed: u64) -> Vec<f32> {
    Flex::seed(&Default::default(), seed);
    Tensor::<Flex, D>::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
        .into_data()
        .to_vec()
        .unwrap()
}

fn on<B: Backend, const D: usize>(values: &[f32], shape: [usize; D]) -> FloatTensor<B> {
    Tensor::<B, D>::from_data(TensorData::new(values.to_vec(), shape), &Default::default())
        .into_primitive()
        .tensor()
}

fn values<B: Backend, const D: usize>(tensor: FloatTensor<B>) -> Vec<f32> {
    Tensor::<B, D>::from_primitive(TensorPrimitive::Float(tensor))
        .into_data()
        .to_vec()
        .unwrap()
}

#[track_caller]
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    if let Some(difference) = difference(got, want, what) {
        panic!("{difference}");
    }
}

/// Where `got` is not the CPU's `want`, if anywhere: the first element and how many differ.
fn difference(got: &[f32], want: &[f32], what: &str) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!(
            "{what}: {} values, the CPU's {}",
            got.len(),
            want.len()
        ));
    }
    let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let wrong: Vec<usize> = (0..got.len())
        .filter(|&i| (got[i] - want[i]).abs() > 1e-5 * scale.max(1.0) + 1e-4 * want[i].abs())
        .collect();
    let &first = wrong.first()?;
    Some(format!(
        "{what}: {} of {} values differ, the first at {first}: {}, the CPU's {}",
        wrong.len(),
        got.len(),
        got[first],
        want[first]
    ))
}

/// Odd sizes, strides, padding, dilation and a 1×1 kernel: what the index arithmetic of
/// im2col / col2im has to get right.
const CASES: [([usize; 4], [usize; 4], [usize; 2], [usize; 2], [usize; 2]); 5] = [
    ([2, 3, 9, 7], [4, 3, 3, 3], [1, 1], [1, 1], [1, 1]),
    ([2, 3, 9, 7], [5, 3, 3, 3], [2, 2], [1, 1], [1, 1]),
    ([1, 4, 8, 10], [3, 4, 5, 3], [2, 1], [2, 0], [1, 1]),
    ([3, 2, 11, 9], [4, 2, 3, 3], [1, 2], [2, 2], [2, 2]),
    ([2, 6, 5, 5], [7, 6, 1, 1], [2, 2], [0, 0], [1, 1]),
];

#[test]
fn every_convolution_algorithm_computes_the_cpus_values_and_gradients() {
    let _turn = SETTINGS.lock().unwrap_or_else(|e| e.into_inner());
    let mut differences = Vec::new();
    for (case, (x_shape, w_shape, stride, padding, dilation)) in CASES.into_iter().enumerate() {
        let options = ConvOptions::new(stride, padding, dilation, 1);
        let x = random(x_shape, 10 + case as u64);
        let w = random(w_shape, 20 + case as u64);
        let bias = random([w_shape[0]], 30 + case as u64);
        let out = Flex::conv2d_forward(
            on::<Flex, 4>(&x, x_shape),
            on::<Flex, 4>(&w, w_shape),
            Some(on::<Flex, 1>(&bias, [w_shape[0]])),
            options.clone(),
        );
        let out_shape =
            Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(out.clone())).dims();
        let dy = random(out_shape, 40 + case as u64);
        let all = Wanted {
            input: true,
            weight: true,
            bias: true,
        };
        let cpu = Flex::conv2d_backward(
            on::<Flex, 4>(&x, x_shape),
            on::<Flex, 4>(&w, w_shape),
            on::<Flex, 4>(&dy, out_shape),
            options.clone(),
            all,
        );
        let want = [
            values::<Flex, 4>(out),
            values::<Flex, 4>(cpu.input.unwrap()),
            values::<Flex, 4>(cpu.weight.unwrap()),
        ];
        let want_bias = values::<Flex, 1>(cpu.bias.unwrap());
        for algorithm in ConvAlgorithm::ALL {
            let gemms: &[&str] = match algorithm {
                ConvAlgorithm::Im2col => &UNIT_GEMMS,
                _ => &[UNIT_GEMMS[0]],
            };
            for gemm in gemms {
                force_conv_algorithm(Some(algorithm));
                choose_unit_gemm(gemm).unwrap();
                let what = format!("case {case}, {}:{gemm}", algorithm.name());
                let got = Wgpu::conv2d_forward(
                    on::<Wgpu, 4>(&x, x_shape),
                    on::<Wgpu, 4>(&w, w_shape),
                    Some(on::<Wgpu, 1>(&bias, [w_shape[0]])),
                    options.clone(),
                );
                let mut check = |got: &[f32], want: &[f32], part: &str| {
                    differences.extend(difference(got, want, &format!("{what} {part}")));
                };
                check(&values::<Wgpu, 4>(got), &want[0], "forward");
                let grads = Wgpu::conv2d_backward(
                    on::<Wgpu, 4>(&x, x_shape),
                    on::<Wgpu, 4>(&w, w_shape),
                    on::<Wgpu, 4>(&dy, out_shape),
                    options.clone(),
                    all,
                );
                check(
                    &values::<Wgpu, 4>(grads.input.unwrap()),
                    &want[1],
                    "input gradient",
                );
                check(
                    &values::<Wgpu, 4>(grads.weight.unwrap()),
                    &want[2],
                    "weight gradient",
                );
                check(
                    &values::<Wgpu, 1>(grads.bias.unwrap()),
                    &want_bias,
                    "bias gradient",
                );
            }
        }
    }
    force_conv_algorithm(None);
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn unfolding_a_batch_in_chunks_changes_nothing() {
    // Columns of at most 4 KiB: this batch of 7 images (3 · 9 · 16 floats of columns each,
    // 1.7 KiB) is unfolded two images at a time, forward and for both gradients.
    let _turn = SETTINGS.lock().unwrap_or_else(|e| e.into_inner());
    force_conv_algorithm(Some(ConvAlgorithm::Im2col));
    limit_column_bytes(4 << 10);
    let (x_shape, w_shape) = ([7, 3, 6, 6], [5, 3, 3, 3]);
    let options = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
    let x = random(x_shape, 1);
    let w = random(w_shape, 2);
    let dy = random([7, 5, 4, 4], 3);
    let all = Wanted {
        input: true,
        weight: true,
        bias: false,
    };
    let cpu_out = Flex::conv2d_forward(
        on::<Flex, 4>(&x, x_shape),
        on::<Flex, 4>(&w, w_shape),
        None,
        options.clone(),
    );
    let gpu_out = Wgpu::conv2d_forward(
        on::<Wgpu, 4>(&x, x_shape),
        on::<Wgpu, 4>(&w, w_shape),
        None,
        options.clone(),
    );
    let cpu = Flex::conv2d_backward(
        on::<Flex, 4>(&x, x_shape),
        on::<Flex, 4>(&w, w_shape),
        on::<Flex, 4>(&dy, [7, 5, 4, 4]),
        options.clone(),
        all,
    );
    let gpu = Wgpu::conv2d_backward(
        on::<Wgpu, 4>(&x, x_shape),
        on::<Wgpu, 4>(&w, w_shape),
        on::<Wgpu, 4>(&dy, [7, 5, 4, 4]),
        options,
        all,
    );
    limit_column_bytes(256 << 20);
    force_conv_algorithm(None);
    let forward = values::<Wgpu, 4>(gpu_out);
    assert_close(&forward, &values::<Flex, 4>(cpu_out), "chunked forward");
    let input = values::<Wgpu, 4>(gpu.input.unwrap());
    assert_close(
        &input,
        &values::<Flex, 4>(cpu.input.unwrap()),
        "chunked input gradient",
    );
    let weight = values::<Wgpu, 4>(gpu.weight.unwrap());
    assert_close(
        &weight,
        &values::<Flex, 4>(cpu.weight.unwrap()),
        "chunked weight gradient",
    );
}

#[test]
fn batch_norm_and_channel_maps_match_the_cpu() {
    let shape = [3, 5, 7, 6];
    let x: Vec<f32> = random(shape, 1).iter().map(|v| v * 3.0 + 2.0).collect();
    let gamma = random([5], 2);
    let beta = random([5], 3);
    let dy = random(shape, 4);
    let cpu = Flex::batch_norm_forward(
        on::<Flex, 4>(&x, shape),
        on::<Flex, 1>(&gamma, [5]),
        on::<Flex, 1>(&beta, [5]),
        1e-5,
    );
    let gpu = Wgpu::batch_norm_forward(
        on::<Wgpu, 4>(&x, shape),
        on::<Wgpu, 1>(&gamma, [5]),
        on::<Wgpu, 1>(&beta, [5]),
        1e-5,
    );
    let (mean, variance) = (values::<Flex, 1>(cpu.mean), values::<Flex, 1>(cpu.variance));
    assert_close(
        &values::<Wgpu, 4>(gpu.output),
        &values::<Flex, 4>(cpu.output),
        "output",
    );
    assert_close(&values::<Wgpu, 1>(gpu.mean), &mean, "mean");
    assert_close(&values::<Wgpu, 1>(gpu.variance), &variance, "variance");

    let cpu = Flex::batch_norm_backward(
        on::<Flex, 4>(&x, shape),
        on::<Flex, 1>(&gamma, [5]),
        on::<Flex, 1>(&mean, [5]),
        on::<Flex, 1>(&variance, [5]),
        1e-5,
        on::<Flex, 4>(&dy, shape),
    );
    let gpu = Wgpu::batch_norm_backward(
        on::<Wgpu, 4>(&x, shape),
        on::<Wgpu, 1>(&gamma, [5]),
        on::<Wgpu, 1>(&mean, [5]),
        on::<Wgpu, 1>(&variance, [5]),
        1e-5,
        on::<Wgpu, 4>(&dy, shape),
    );
    assert_close(
        &values::<Wgpu, 4>(gpu.input),
        &values::<Flex, 4>(cpu.input),
        "dx",
    );
    assert_close(
        &values::<Wgpu, 1>(gpu.scale),
        &values::<Flex, 1>(cpu.scale),
        "dgamma",
    );
    assert_close(
        &values::<Wgpu, 1>(gpu.shift),
        &values::<Flex, 1>(cpu.shift),
        "dbeta",
    );

    let cpu = Flex::channel_affine_backward(
        on::<Flex, 4>(&x, shape),
        on::<Flex, 1>(&gamma, [5]),
        on::<Flex, 4>(&dy, shape),
    );
    let gpu = Wgpu::channel_affine_backward(
        on::<Wgpu, 4>(&x, shape),
        on::<Wgpu, 1>(&gamma, [5]),
        on::<Wgpu, 4>(&dy, shape),
    );
    assert_close(
        &values::<Wgpu, 4>(gpu.input),
        &values::<Flex, 4>(cpu.input),
        "affine dx",
    );
    assert_close(
        &values::<Wgpu, 1>(gpu.scale),
        &values::<Flex, 1>(cpu.scale),
        "dscale",
    );
    assert_close(
        &values::<Wgpu, 1>(gpu.shift),
        &values::<Flex, 1>(cpu.shift),
        "dshift",
    );
    let affine = |b: bool| match b {
        true => values::<Wgpu, 4>(Wgpu::channel_affine(
            on::<Wgpu, 4>(&x, shape),
            on::<Wgpu, 1>(&gamma, [5]),
            on::<Wgpu, 1>(&beta, [5]),
        )),
        false => values::<Flex, 4>(Flex::channel_affine(
            on::<Flex, 4>(&x, shape),
            on::<Flex, 1>(&gamma, [5]),
            on::<Flex, 1>(&beta, [5]),
        )),
    };
    assert_close(&affine(true), &affine(false), "affine");
}

#[test]
fn sgd_steps_match_the_cpu_with_and_without_momentum() {
    let n = 1000;
    let (param, grad, velocity) = (random([n], 1), random([n], 2), random([n], 3));
    let momentum = Momentum {
        momentum: 0.9,
        gradient_share: 0.8,
        nesterov: true,
    };
    for (momentum, weight_decay, with_velocity) in [
        (None, None, false),
        (Some(momentum), Some(1e-2), false),
        (Some(momentum), Some(1e-2), true),
        (
            Some(Momentum {
                nesterov: false,
                ..momentum
            }),
            None,
            true,
        ),
    ] {
        let settings = SgdSettings {
            lr: 0.05,
            weight_decay,
            momentum,
        };
        let v = |b: bool| with_velocity.then_some(b);
        let cpu = Flex::sgd_step(
            on::<Flex, 1>(&param, [n]),
            on::<Flex, 1>(&grad, [n]),
            v(true).map(|_| on::<Flex, 1>(&velocity, [n])),
            settings,
        );
        let gpu = Wgpu::sgd_step(
            on::<Wgpu, 1>(&param, [n]),
            on::<Wgpu, 1>(&grad, [n]),
            v(true).map(|_| on::<Wgpu, 1>(&velocity, [n])),
            settings,
        );
        let what = format!("{settings:?}, velocity given: {with_velocity}");
        assert_close(&values::<Wgpu, 1>(gpu.0), &values::<Flex, 1>(cpu.0), &what);
        assert_eq!(gpu.1.is_some(), cpu.1.is_some(), "{what}");
        if let (Some(g), Some(c)) = (gpu.1, cpu.1) {
            assert_close(&values::<Wgpu, 1>(g), &values::<Flex, 1>(c), &what);
        }
    }
}

#[test]
fn linear_layers_multiply_in_f32() {
    let _turn = SETTINGS.lock().unwrap_or_else(|e| e.into_inner());
    set_precision(Precision::F32);
    let (x, w, b) = (random([5, 7], 1), random([7, 3], 2), random([3], 3));
    let cpu = Flex::linear_forward(
        on::<Flex, 2>(&x, [5, 7]),
        on::<Flex, 2>(&w, [7, 3]),
        Some(on::<Flex, 1>(&b, [3])),
    );
    let gpu = Wgpu::linear_forward(
        on::<Wgpu, 2>(&x, [5, 7]),
        on::<Wgpu, 2>(&w, [7, 3]),
        Some(on::<Wgpu, 1>(&b, [3])),
    );
    assert_close(&values::<Wgpu, 2>(gpu), &values::<Flex, 2>(cpu), "linear");
}
