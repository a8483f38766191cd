//! Which convolution kernels run on the GPU.
//!
//! burn-cubecl 0.21 built without autotuning always takes its direct kernels: one unit per
//! output element, the weight gradient one unit per weight summing over the whole batch, which
//! made them most of a training step. Here:
//! - [`Precision::Tf32`]: cubek's implicit GEMM on the tensor cores, forward and both gradients
//!   (the input gradient of a strided convolution, which cubek leaves to burn's transposed
//!   kernel, takes im2col);
//! - a kernel smaller than its stride always takes im2col for its input gradient: burn's
//!   transposed kernel returns zeros there (1×1 stride-2 ResNet shortcuts);
//! - [`Precision::F32`]: im2col and f32 matrix products ([`super::im2col`]);
//! - grouped convolutions (depthwise ones) keep the direct kernel, which suits them.
//!
//! A kernel that cannot take a shape (an error, or a panic, during its setup) falls back to the
//! direct one, and is not asked again for that shape ([`declined`] lists them).
//! `GRADCAM_CONV` (`direct`, `gemm`, `im2col`) forces a choice, for measuring them.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use burn::tensor::ops::ConvOptions;
use burn_cubecl::CubeRuntime;
use burn_cubecl::kernel::conv::{
    ConvStrategy, conv_data_backward, conv_forward, conv_weight_backward,
};
use burn_cubecl::tensor::CubeTensor;

use super::im2col;
use super::tensor::dims4;
use crate::precision::{Precision, precision};

/// A convolution algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Algorithm {
    Direct,
    /// cubek's implicit GEMM on tensor cores (TF32 factors).
    Gemm,
    /// im2col and f32 unit matrix products.
    Im2col,
}

impl Algorithm {
    pub const ALL: [Algorithm; 3] = [Algorithm::Direct, Algorithm::Gemm, Algorithm::Im2col];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Direct => "direct",
            Algorithm::Gemm => "gemm",
            Algorithm::Im2col => "im2col",
        }
    }

    fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// `FORCED` before `GRADCAM_CONV` was read.
const UNREAD: u8 = u8::MAX;
/// `FORCED` when nothing is forced.
const NONE: u8 = u8::MAX - 1;

static FORCED: AtomicU8 = AtomicU8::new(UNREAD);

/// Makes every later convolution take `algorithm` where it can (`None`: the precision's
/// choice again), whatever `GRADCAM_CONV` says.
pub fn force(algorithm: Option<Algorithm>) {
    let code = algorithm.map_or(NONE, |a| a as u8);
    FORCED.store(code, Ordering::Relaxed);
}

/// The forced algorithm: [`force`]'s, else `GRADCAM_CONV`'s.
fn forced() -> Option<Algorithm> {
    let code = FORCED.load(Ordering::Relaxed);
    if code == UNREAD {
        let from_env = std::env::var("GRADCAM_CONV")
            .ok()
            .and_then(|name| Algorithm::named(&name));
        force(from_env);
        return from_env;
    }
    Algorithm::ALL.into_iter().find(|a| *a as u8 == code)
}

/// The algorithm for a convolution of these shapes.
pub fn choose(x: [usize; 4], weight: [usize; 4], options: &ConvOptions<2>) -> Algorithm {
    let wanted = forced().unwrap_or(match precision() {
        Precision::F32 => Algorithm::Im2col,
        Precision::Tf32 => Algorithm::Gemm,
    });
    match wanted {
        _ if options.groups != 1 => Algorithm::Direct,
        Algorithm::Im2col if !im2col::supports(x, weight, options) => Algorithm::Direct,
        chosen => chosen,
    }
}

/// Shapes an algorithm declined (an error or a panic during its setup), with why: each is
/// tried once, then goes straight to the direct kernel.
static DECLINED: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// The convolutions that fell back to the direct kernel so far, and why (for benchmarks).
pub fn declined() -> Vec<String> {
    let declined = DECLINED.lock().unwrap_or_else(|e| e.into_inner());
    declined
        .iter()
        .map(|(k, why)| format!("{k}: {why}"))
        .collect()
}

/// `run`'s result, or `None` (remembered under `key`) when it fails or panics.
fn attempt<T, E: std::fmt::Debug>(key: String, run: impl FnOnce() -> Result<T, E>) -> Option<T> {
    if DECLINED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(&key)
    {
        return None;
    }
    let why = match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(result)) => return Some(result),
        Ok(Err(error)) => format!("{error:?}"),
        Err(panic) => panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".into()),
    };
    DECLINED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, why);
    None
}

/// A name for one operation of one convolution shape under one algorithm.
fn key(
    operation: &str,
    algorithm: Algorithm,
    x: [usize; 4],
    weight: [usize; 4],
    options: &ConvOptions<2>,
) -> String {
    format!(
        "{operation} {} x{x:?} w{weight:?} stride{:?} padding{:?} dilation{:?}",
        algorithm.name(),
        options.stride,
        options.padding,
        options.dilation
    )
}

pub fn forward<R: CubeRuntime>(
    x: CubeTensor<R>,
    weight: CubeTensor<R>,
    bias: Option<CubeTensor<R>>,
    options: ConvOptions<2>,
) -> CubeTensor<R> {
    let (x_shape, w_shape) = (dims4(&x), dims4(&weight));
    let algorithm = choose(x_shape, w_shape, &options);
    let key = key("forward", algorithm, x_shape, w_shape, &options);
    let attempt = match algorithm {
        Algorithm::Direct => None,
        Algorithm::Gemm => attempt(key, || {
            conv_forward::<R, 2>(
                x.clone(),
                weight.clone(),
                bias.clone(),
                options.clone(),
                ConvStrategy::ImplicitGemm,
            )
        }),
        Algorithm::Im2col => attempt(key, || {
            im2col::forward(x.clone(), weight.clone(), bias.clone(), &options)
        }),
    };
    attempt.unwrap_or_else(|| {
        conv_forward::<R, 2>(x, weight, bias, options, ConvStrategy::Direct)
            .expect("burn's direct convolution takes every shape")
    })
}

/// `dL/dx`.
pub fn input_gradient<R: CubeRuntime>(
    x: &CubeTensor<R>,
    weight: CubeTensor<R>,
    dy: CubeTensor<R>,
    options: ConvOptions<2>,
) -> CubeTensor<R> {
    let (x_shape, w_shape) = (dims4(x), dims4(&weight));
    let strided = options.stride != [1, 1];
    // burn 0.21's transposed convolution, the direct input gradient, is wrong where a kernel is
    // smaller than its stride (a 1×1 stride-2 ResNet shortcut: zeros), so such shapes always
    // take im2col; cubek's implicit GEMM takes unit strides only and leaves the others to it.
    let kernel_below_stride = (0..2).any(|axis| w_shape[2 + axis] < options.stride[axis]);
    let algorithm = match choose(x_shape, w_shape, &options) {
        _ if kernel_below_stride && im2col::supports(x_shape, w_shape, &options) => {
            Algorithm::Im2col
        }
        Algorithm::Gemm if strided && im2col::supports(x_shape, w_shape, &options) => {
            Algorithm::Im2col
        }
        chosen => chosen,
    };
    let key = key("input gradient", algorithm, x_shape, w_shape, &options);
    let attempt = match algorithm {
        Algorithm::Direct => None,
        Algorithm::Gemm => attempt(key, || {
            conv_data_backward::<R, 2>(
                dy.clone(),
                weight.clone(),
                x.meta.shape().clone(),
                options.clone(),
                ConvStrategy::ImplicitGemm,
            )
        }),
        Algorithm::Im2col => attempt(key, || {
            im2col::input_gradient(x_shape, weight.clone(), dy.clone(), &options)
        }),
    };
    attempt.unwrap_or_else(|| {
        conv_data_backward::<R, 2>(
            dy,
            weight,
            x.meta.shape().clone(),
            options,
            ConvStrategy::Direct,
        )
        .expect("burn's transposed convolution takes every shape")
    })
}

/// `dL/dweight`.
pub fn weight_gradient<R: CubeRuntime>(
    x: CubeTensor<R>,
    weight: &CubeTensor<R>,
    dy: CubeTensor<R>,
    options: ConvOptions<2>,
) -> CubeTensor<R> {
    let (x_shape, w_shape) = (dims4(&x), dims4(weight));
    let algorithm = choose(x_shape, w_shape, &options);
    let key = key("weight gradient", algorithm, x_shape, w_shape, &options);
    let attempt = match algorithm {
        Algorithm::Direct => None,
        Algorithm::Gemm => attempt(key, || {
            conv_weight_backward::<R, 2>(
                x.clone(),
                dy.clone(),
                weight.meta.shape().clone(),
                options.clone(),
                ConvStrategy::ImplicitGemm,
            )
        }),
        Algorithm::Im2col => attempt(key, || {
            im2col::weight_gradient(x.clone(), w_shape, dy.clone(), &options)
        }),
    };
    attempt.unwrap_or_else(|| {
        conv_weight_backward::<R, 2>(
            x,
            dy,
            weight.meta.shape().clone(),
            options,
            ConvStrategy::Direct,
        )
        .expect("burn's direct weight gradient takes every shape")
    })
}
