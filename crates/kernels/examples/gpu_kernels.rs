//! The GPU kernels against each other and against the CPU's, on the convolutions of the
//! networks here (ResNet-20 at batch 128, ResNet-18 at 16, the tutorial's CNN at 16):
//! milliseconds per call (median of 5 after a warm-up that compiles the kernels) and the
//! largest difference from the CPU's result, relative to the result's largest magnitude.
//!
//! `cargo run --release -p kernels --features cuda --example gpu_kernels [cuda|wgpu]` prints
//! one tab-separated line per layer and algorithm (the im2col one once per f32 GEMM kernel),
//! then BatchNorm's kernels against burn's operations and the Linear layer's product.
//! `scripts/device_tables.sh` runs it on the GPU machine.

use std::time::Instant;

use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::ops::{ConvOptions, FloatTensor, FloatTensorOps};
use burn::tensor::{Distribution, TensorPrimitive};
use kernels::cube::{
    ConvAlgorithm, UNIT_GEMMS, choose_unit_gemm, declined_convolutions, force_conv_algorithm,
};
use kernels::{Kernels, Wanted, reference};

/// A convolution layer: `[batch, c_in, h, w]` → `c_out` channels, square kernel.
struct Layer {
    name: &'static str,
    input: [usize; 4],
    channels_out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

const fn layer(
    name: &'static str,
    input: [usize; 4],
    channels_out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Layer {
    Layer {
        name,
        input,
        channels_out,
        kernel,
        stride,
        padding,
    }
}

const LAYERS: [Layer; 12] = [
    layer("resnet20.stem", [128, 3, 32, 32], 16, 3, 1, 1),
    layer("resnet20.layer1", [128, 16, 32, 32], 16, 3, 1, 1),
    layer("resnet20.layer2.down", [128, 16, 32, 32], 32, 3, 2, 1),
    layer("resnet20.layer2", [128, 32, 16, 16], 32, 3, 1, 1),
    layer("resnet20.layer3", [128, 64, 8, 8], 64, 3, 1, 1),
    layer("resnet18.conv1", [16, 3, 224, 224], 64, 7, 2, 3),
    layer("resnet18.layer1", [16, 64, 56, 56], 64, 3, 1, 1),
    layer("resnet18.layer3", [16, 256, 14, 14], 256, 3, 1, 1),
    layer("resnet18.layer4", [16, 512, 7, 7], 512, 3, 1, 1),
    layer("resnet18.layer4.down", [16, 256, 14, 14], 512, 1, 2, 0),
    layer("tutorial.conv1", [16, 3, 128, 128], 6, 5, 1, 0),
    layer("tutorial.conv2", [16, 6, 62, 62], 9, 7, 1, 0),
];

fn main() {
    let backend = std::env::args().nth(1).unwrap_or_else(|| "cuda".into());
    match backend.as_str() {
        #[cfg(feature = "cuda")]
        "cuda" => run::<burn::backend::Cuda>(Default::default()),
        #[cfg(feature = "wgpu")]
        "wgpu" => run::<burn::backend::Wgpu>(Default::default()),
        other => panic!("backend `{other}` is not in this build (features cuda, wgpu)"),
    }
}

fn run<G: Kernels>(device: G::Device) {
    println!(
        "layer\talgorithm\tforward_ms\tinput_grad_ms\tweight_grad_ms\tforward_err\tinput_grad_err\tweight_grad_err"
    );
    for layer in &LAYERS {
        conv_rows::<G>(layer, &device);
    }
    force_conv_algorithm(None);
    for declined in declined_convolutions() {
        println!("# fell back to the direct kernel: {declined}");
    }
    println!();
    println!("operation\tkernels_ms\tburn_ops_ms\tmax_rel_diff");
    batch_norm_rows::<G>(&device);
    linear_rows::<G>(&device);
}

fn conv_rows<G: Kernels>(layer: &Layer, device: &G::Device) {
    let [n, c, h, w] = layer.input;
    let weight_shape = [layer.channels_out, c, layer.kernel, layer.kernel];
    let options = ConvOptions::new([layer.stride; 2], [layer.padding; 2], [1, 1], 1);
    let x = host_random([n, c, h, w], 1);
    let weight = host_random(weight_shape, 2);
    let cpu_out = Flex::conv2d_forward(
        on::<Flex, 4>(&x, [n, c, h, w], &Default::default()),
        on::<Flex, 4>(&weight, weight_shape, &Default::default()),
        None,
        options.clone(),
    );
    let out_shape = float::<Flex, 4>(cpu_out.clone()).dims();
    let dy = host_random(out_shape, 3);
    let cpu_grads = Flex::conv2d_backward(
        on::<Flex, 4>(&x, [n, c, h, w], &Default::default()),
        on::<Flex, 4>(&weight, weight_shape, &Default::default()),
        on::<Flex, 4>(&dy, out_shape, &Default::default()),
        options.clone(),
        GRADIENTS,
    );
    let expected = [
        values::<Flex, 4>(cpu_out),
        values::<Flex, 4>(cpu_grads.input.unwrap()),
        values::<Flex, 4>(cpu_grads.weight.unwrap()),
    ];
    let variants = ConvAlgorithm::ALL.into_iter().flat_map(|algorithm| {
        let gemms: &[&str] = match algorithm {
            ConvAlgorithm::Im2col => &UNIT_GEMMS,
            _ => &[""],
        };
        gemms.iter().map(move |gemm| (algorithm, *gemm))
    });
    for (algorithm, gemm) in variants {
        force_conv_algorithm(Some(algorithm));
        if !gemm.is_empty() {
            choose_unit_gemm(gemm).expect("a known GEMM");
        }
        let (gx, gw, gdy) = (
            on::<G, 4>(&x, [n, c, h, w], device),
            on::<G, 4>(&weight, weight_shape, device),
            on::<G, 4>(&dy, out_shape, device),
        );
        let forward = || G::conv2d_forward(gx.clone(), gw.clone(), None, options.clone());
        let input_grad = || {
            G::conv2d_backward(gx.clone(), gw.clone(), gdy.clone(), options.clone(), INPUT)
                .input
                .unwrap()
        };
        let weight_grad = || {
            G::conv2d_backward(gx.clone(), gw.clone(), gdy.clone(), options.clone(), WEIGHT)
                .weight
                .unwrap()
        };
        let (t_fwd, out) = median_ms::<G>(device, forward);
        let (t_dx, dx) = median_ms::<G>(device, input_grad);
        let (t_dw, dw) = median_ms::<G>(device, weight_grad);
        let errors = [out, dx, dw]
            .into_iter()
            .zip(&expected)
            .map(|(got, want)| relative_difference(&values::<G, 4>(got), want));
        let errors: Vec<String> = errors.map(|e| format!("{e:.2e}")).collect();
        let name = match gemm {
            "" => algorithm.name().to_string(),
            gemm => format!("{}:{gemm}", algorithm.name()),
        };
        println!(
            "{}\t{name}\t{t_fwd:.3}\t{t_dx:.3}\t{t_dw:.3}\t{}",
            layer.name,
            errors.join("\t")
        );
    }
}

fn batch_norm_rows<G: Kernels>(device: &G::Device) {
    let shape = [128, 16, 32, 32];
    let x = host_random(shape, 4);
    let dy = host_random(shape, 5);
    let gamma = host_random([16], 6);
    let beta = host_random([16], 7);
    let args = || {
        (
            on::<G, 4>(&x, shape, device),
            on::<G, 1>(&gamma, [16], device),
            on::<G, 1>(&beta, [16], device),
        )
    };
    let (x1, g1, b1) = args();
    let (t_ours, ours) = median_ms::<G>(device, || {
        G::batch_norm_forward(x1.clone(), g1.clone(), b1.clone(), 1e-5).output
    });
    let (t_burn, theirs) = median_ms::<G>(device, || {
        reference::batch_norm_forward::<G>(x1.clone(), g1.clone(), b1.clone(), 1e-5).output
    });
    let diff = relative_difference(&values::<G, 4>(ours), &values::<G, 4>(theirs));
    println!("batch_norm_forward[128,16,32,32]\t{t_ours:.3}\t{t_burn:.3}\t{diff:.2e}");
    let stats = G::batch_norm_forward(x1.clone(), g1.clone(), b1.clone(), 1e-5);
    let gdy = on::<G, 4>(&dy, shape, device);
    let backward = |kernels: bool| {
        let (x, g, m, v, d) = (
            x1.clone(),
            g1.clone(),
            stats.mean.clone(),
            stats.variance.clone(),
            gdy.clone(),
        );
        match kernels {
            true => G::batch_norm_backward(x, g, m, v, 1e-5, d).input,
            false => reference::batch_norm_backward::<G>(x, g, m, v, 1e-5, d).input,
        }
    };
    let (t_ours, ours) = median_ms::<G>(device, || backward(true));
    let (t_burn, theirs) = median_ms::<G>(device, || backward(false));
    let diff = relative_difference(&values::<G, 4>(ours), &values::<G, 4>(theirs));
    println!("batch_norm_backward[128,16,32,32]\t{t_ours:.3}\t{t_burn:.3}\t{diff:.2e}");
}

fn linear_rows<G: Kernels>(device: &G::Device) {
    let ([rows, inputs, outputs], seed) = ([128, 512, 1000], 8);
    let x = host_random([rows, inputs], seed);
    let w = host_random([inputs, outputs], seed + 1);
    let expected = values::<Flex, 2>(Flex::float_matmul(
        on::<Flex, 2>(&x, [rows, inputs], &Default::default()),
        on::<Flex, 2>(&w, [inputs, outputs], &Default::default()),
    ));
    for precision in [kernels::Precision::F32, kernels::Precision::Tf32] {
        kernels::set_precision(precision);
        let (gx, gw) = (
            on::<G, 2>(&x, [rows, inputs], device),
            on::<G, 2>(&w, [inputs, outputs], device),
        );
        let (t, out) = median_ms::<G>(device, || G::linear_forward(gx.clone(), gw.clone(), None));
        let diff = relative_difference(&values::<G, 2>(out), &expected);
        println!("linear[128x512x1000]:{precision}\t{t:.3}\t\t{diff:.2e}");
    }
    kernels::set_precision(kernels::Precision::F32);
}

const GRADIENTS: Wanted = Wanted {
    input: true,
    weight: true,
    bias: false,
};
const INPUT: Wanted = Wanted {
    input: true,
    weight: false,
    bias: false,
};
const WEIGHT: Wanted = Wanted {
    input: false,
    weight: true,
    bias: false,
};

/// Median milliseconds of five calls after one warm-up, and the last call's result.
fn median_ms<G: Kernels>(
    device: &G::Device,
    call: impl Fn() -> FloatTensor<G>,
) -> (f64, FloatTensor<G>) {
    let mut result = call();
    G::sync(device).expect("the device runs");
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        result = call();
        G::sync(device).expect("the device runs");
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    (times[2], result)
}

/// max |got − want| / max |want|.
fn relative_difference(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "same number of values");
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    let diff = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (g, w)| m.max((*g as f64 - *w as f64).abs()));
    diff / scale.max(f64::MIN_POSITIVE)
}

/// Normally distributed values, the same for a seed on every machine.
fn host_random<const D: usize>(shape: [usize; D], seed: u64) -> Vec<f32> {
    Flex::seed(&Default::default(), seed);
    Tensor::<Flex, D>::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
        .into_data()
        .to_vec()
        .expect("f32 values")
}

fn on<B: Backend, const D: usize>(
    values: &[f32],
    shape: [usize; D],
    device: &B::Device,
) -> FloatTensor<B> {
    Tensor::<B, D>::from_data(TensorData::new(values.to_vec(), shape), device)
        .into_primitive()
        .tensor()
}

fn float<B: Backend, const D: usize>(tensor: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(tensor))
}

fn values<B: Backend, const D: usize>(tensor: FloatTensor<B>) -> Vec<f32> {
    float::<B, D>(tensor)
        .into_data()
        .to_vec()
        .expect("f32 values")
}
