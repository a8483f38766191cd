//! Batch normalisation and per-channel affine maps as four small kernels instead of burn's
//! dozen broadcasting operations each way: per channel, one cube sums over batch and pixels
//! (a tree in shared memory); the element-wise passes then read those sums.
//!
//! Tensors are dense NCHW f32; a channel's values are `batch` runs of `pixels` numbers,
//! `channels · pixels` apart.

use burn::tensor::Shape;
use burn_cubecl::CubeRuntime;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::tensor::{CUBE_UNITS, array, dense, dims4, elementwise, empty_like_device};

/// Σ of `value` over the cube's units, returned to every unit. `CUBE_DIM` must be a power of
/// two no larger than `units`.
#[cube]
fn cube_sum<F: Float>(value: F, #[comptime] units: usize) -> F {
    let mut partial = SharedMemory::<F>::new(units);
    let unit = UNIT_POS_X as usize;
    partial[unit] = value;
    sync_cube();
    let mut active = CUBE_DIM_X as usize;
    while active > 1 {
        active /= 2;
        if unit < active {
            let other = partial[unit + active];
            partial[unit] += other;
        }
        sync_cube();
    }
    let total = partial[0];
    sync_cube();
    total
}

/// Index of element `i` (0 ≤ i < batch · pixels) of channel `c`.
#[cube]
fn channel_element(i: usize, c: usize, channels: usize, pixels: usize) -> usize {
    let n = i / pixels;
    (n * channels + c) * pixels + (i - n * pixels)
}

/// Per channel (one cube each): the mean, the biased variance (two passes, as the CPU does) and
/// `gamma / sqrt(variance + epsilon)`.
#[cube(launch)]
fn batch_statistics<F: Float>(
    x: &Array<F>,
    gamma: &Array<F>,
    mean: &mut Array<F>,
    variance: &mut Array<F>,
    scale: &mut Array<F>,
    channels: u32,
    pixels: u32,
    count: u32,
    epsilon: f32,
    #[comptime] units: usize,
) {
    let c = CUBE_POS_X as usize;
    let (channels, pixels, count) = (channels as usize, pixels as usize, count as usize);
    let step = CUBE_DIM_X as usize;
    let mut sum = F::new(0.0);
    let mut i = UNIT_POS_X as usize;
    while i < count {
        sum += x[channel_element(i, c, channels, pixels)];
        i += step;
    }
    let m = cube_sum::<F>(sum, units) / F::cast_from(count);
    let mut squares = F::new(0.0);
    let mut j = UNIT_POS_X as usize;
    while j < count {
        let d = x[channel_element(j, c, channels, pixels)] - m;
        squares += d * d;
        j += step;
    }
    let v = cube_sum::<F>(squares, units) / F::cast_from(count);
    if UNIT_POS_X == 0 {
        mean[c] = m;
        variance[c] = v;
        scale[c] = gamma[c] / F::sqrt(v + F::cast_from(epsilon));
    }
}

/// `(x − center[c]) · scale[c] + shift[c]`.
#[cube(launch)]
fn centered_affine<F: Float>(
    x: &Array<F>,
    center: &Array<F>,
    scale: &Array<F>,
    shift: &Array<F>,
    y: &mut Array<F>,
    channels: u32,
    pixels: u32,
    total: u32,
) {
    let i = ABSOLUTE_POS;
    if i >= total as usize {
        terminate!();
    }
    let c = (i / pixels as usize) % channels as usize;
    y[i] = (x[i] - center[c]) * scale[c] + shift[c];
}

/// Per channel: Σ dy and Σ dy · (x − center[c]) · factor[c] (for BatchNorm the normalised
/// input; for an affine map, center 0 and factor 1: the input itself).
#[cube(launch)]
fn gradient_sums<F: Float>(
    x: &Array<F>,
    dy: &Array<F>,
    center: &Array<F>,
    factor: &Array<F>,
    dy_sum: &mut Array<F>,
    dy_x_sum: &mut Array<F>,
    channels: u32,
    pixels: u32,
    count: u32,
    #[comptime] units: usize,
) {
    let c = CUBE_POS_X as usize;
    let (channels, pixels, count) = (channels as usize, pixels as usize, count as usize);
    let (m, f) = (center[c], factor[c]);
    let mut sum = F::new(0.0);
    let mut weighted = F::new(0.0);
    let mut i = UNIT_POS_X as usize;
    while i < count {
        let at = channel_element(i, c, channels, pixels);
        let g = dy[at];
        sum += g;
        weighted += g * (x[at] - m) * f;
        i += CUBE_DIM_X as usize;
    }
    let total = cube_sum::<F>(sum, units);
    let total_weighted = cube_sum::<F>(weighted, units);
    if UNIT_POS_X == 0 {
        dy_sum[c] = total;
        dy_x_sum[c] = total_weighted;
    }
}

/// Per channel: Σ over batch and pixels.
#[cube(launch)]
fn channel_total<F: Float>(
    x: &Array<F>,
    sums: &mut Array<F>,
    channels: u32,
    pixels: u32,
    count: u32,
    #[comptime] units: usize,
) {
    let c = CUBE_POS_X as usize;
    let (channels, pixels, count) = (channels as usize, pixels as usize, count as usize);
    let mut sum = F::new(0.0);
    let mut i = UNIT_POS_X as usize;
    while i < count {
        sum += x[channel_element(i, c, channels, pixels)];
        i += CUBE_DIM_X as usize;
    }
    let total = cube_sum::<F>(sum, units);
    if UNIT_POS_X == 0 {
        sums[c] = total;
    }
}

/// BatchNorm's input gradient from the channel sums:
/// `(dy − Σdy/count − x̂ · Σ(dy·x̂)/count) · gamma / sqrt(variance + epsilon)`.
#[cube(launch)]
fn batch_norm_input_gradient<F: Float>(
    x: &Array<F>,
    dy: &Array<F>,
    mean: &Array<F>,
    variance: &Array<F>,
    gamma: &Array<F>,
    dy_sum: &Array<F>,
    dy_x_sum: &Array<F>,
    dx: &mut Array<F>,
    channels: u32,
    pixels: u32,
    total: u32,
    count: u32,
    epsilon: f32,
) {
    let i = ABSOLUTE_POS;
    if i >= total as usize {
        terminate!();
    }
    let c = (i / pixels as usize) % channels as usize;
    let inv_std = F::new(1.0) / F::sqrt(variance[c] + F::cast_from(epsilon));
    let n = F::cast_from(count);
    let normalized = (x[i] - mean[c]) * inv_std;
    dx[i] = (dy[i] - dy_sum[c] / n - normalized * dy_x_sum[c] / n) * inv_std * gamma[c];
}

/// The output of BatchNorm in training and its statistics.
pub struct Statistics<R: CubeRuntime> {
    pub output: CubeTensor<R>,
    pub mean: CubeTensor<R>,
    pub variance: CubeTensor<R>,
}

/// Per-channel gradients: of the input, and of a scale and a shift.
pub struct Gradients<R: CubeRuntime> {
    pub input: CubeTensor<R>,
    pub scale: CubeTensor<R>,
    pub shift: CubeTensor<R>,
}

/// `[batch, channels, pixels]` of a 4-D tensor.
fn layout<R: CubeRuntime>(x: &CubeTensor<R>) -> (usize, usize, usize) {
    let [n, c, h, w] = dims4(x);
    (n, c, h * w)
}

/// One cube of [`CUBE_UNITS`] per channel.
fn per_channel(channels: usize) -> (CubeCount, CubeDim) {
    (
        CubeCount::new_1d(channels as u32),
        CubeDim::new_1d(CUBE_UNITS),
    )
}

fn vector<R: CubeRuntime>(like: &CubeTensor<R>, length: usize) -> CubeTensor<R> {
    empty_like_device(like, Shape::new([length]))
}

pub fn batch_norm_forward<R: CubeRuntime>(
    x: CubeTensor<R>,
    gamma: CubeTensor<R>,
    beta: CubeTensor<R>,
    epsilon: f64,
) -> Statistics<R> {
    let (x, gamma, beta) = (dense(x), dense(gamma), dense(beta));
    let (n, c, pixels) = layout(&x);
    let (mean, variance, scale) = (vector(&x, c), vector(&x, c), vector(&x, c));
    let (cubes, units) = per_channel(c);
    batch_statistics::launch::<f32, R>(
        &x.client,
        cubes,
        units,
        array(&x),
        array(&gamma),
        array(&mean),
        array(&variance),
        array(&scale),
        c as u32,
        pixels as u32,
        (n * pixels) as u32,
        epsilon as f32,
        CUBE_UNITS as usize,
    );
    let output = empty_like_device(&x, x.meta.shape().clone());
    let total = n * c * pixels;
    let (cubes, units) = elementwise(&x, total);
    centered_affine::launch::<f32, R>(
        &x.client,
        cubes,
        units,
        array(&x),
        array(&mean),
        array(&scale),
        array(&beta),
        array(&output),
        c as u32,
        pixels as u32,
        total as u32,
    );
    Statistics {
        output,
        mean,
        variance,
    }
}

pub fn batch_norm_backward<R: CubeRuntime>(
    x: CubeTensor<R>,
    gamma: CubeTensor<R>,
    mean: CubeTensor<R>,
    variance: CubeTensor<R>,
    epsilon: f64,
    output_grad: CubeTensor<R>,
) -> Gradients<R> {
    let [x, gamma, mean, variance, dy] = [x, gamma, mean, variance, output_grad].map(dense);
    let (n, c, pixels) = layout(&x);
    let inv_std = inverse_std(&variance, epsilon);
    let (dy_sum, dy_x_sum) = channel_gradient_sums(&x, &dy, &mean, &inv_std);
    let dx = empty_like_device(&x, x.meta.shape().clone());
    let total = n * c * pixels;
    let (cubes, units) = elementwise(&x, total);
    batch_norm_input_gradient::launch::<f32, R>(
        &x.client,
        cubes,
        units,
        array(&x),
        array(&dy),
        array(&mean),
        array(&variance),
        array(&gamma),
        array(&dy_sum),
        array(&dy_x_sum),
        array(&dx),
        c as u32,
        pixels as u32,
        total as u32,
        (n * pixels) as u32,
        epsilon as f32,
    );
    Gradients {
        input: dx,
        scale: dy_x_sum,
        shift: dy_sum,
    }
}

/// `1 / sqrt(variance + epsilon)`, per channel, read back by the gradient sums.
fn inverse_std<R: CubeRuntime>(variance: &CubeTensor<R>, epsilon: f64) -> CubeTensor<R> {
    let c = variance.meta.shape()[0];
    let out = vector(variance, c);
    let (cubes, units) = elementwise(variance, c);
    inverse_square_root::launch::<f32, R>(
        &variance.client,
        cubes,
        units,
        array(variance),
        array(&out),
        c as u32,
        epsilon as f32,
    );
    out
}

#[cube(launch)]
fn inverse_square_root<F: Float>(v: &Array<F>, out: &mut Array<F>, length: u32, epsilon: f32) {
    let i = ABSOLUTE_POS;
    if i >= length as usize {
        terminate!();
    }
    out[i] = F::new(1.0) / F::sqrt(v[i] + F::cast_from(epsilon));
}

/// Σ dy and Σ dy · (x − center) · factor per channel.
fn channel_gradient_sums<R: CubeRuntime>(
    x: &CubeTensor<R>,
    dy: &CubeTensor<R>,
    center: &CubeTensor<R>,
    factor: &CubeTensor<R>,
) -> (CubeTensor<R>, CubeTensor<R>) {
    let (n, c, pixels) = layout(x);
    let (dy_sum, dy_x_sum) = (vector(x, c), vector(x, c));
    let (cubes, units) = per_channel(c);
    gradient_sums::launch::<f32, R>(
        &x.client,
        cubes,
        units,
        array(x),
        array(dy),
        array(center),
        array(factor),
        array(&dy_sum),
        array(&dy_x_sum),
        c as u32,
        pixels as u32,
        (n * pixels) as u32,
        CUBE_UNITS as usize,
    );
    (dy_sum, dy_x_sum)
}

/// `x · scale[c] + shift[c]`.
pub fn channel_affine<R: CubeRuntime>(
    x: CubeTensor<R>,
    scale: CubeTensor<R>,
    shift: CubeTensor<R>,
) -> CubeTensor<R> {
    let [x, scale, shift] = [x, scale, shift].map(dense);
    let (n, c, pixels) = layout(&x);
    let zero = super::fill(&x, c, 0.0);
    let output = empty_like_device(&x, x.meta.shape().clone());
    let total = n * c * pixels;
    let (cubes, units) = elementwise(&x, total);
    centered_affine::launch::<f32, R>(
        &x.client,
        cubes,
        units,
        array(&x),
        array(&zero),
        array(&scale),
        array(&shift),
        array(&output),
        c as u32,
        pixels as u32,
        total as u32,
    );
    output
}

pub fn channel_affine_backward<R: CubeRuntime>(
    x: CubeTensor<R>,
    scale: CubeTensor<R>,
    output_grad: CubeTensor<R>,
) -> Gradients<R> {
    let [x, scale, dy] = [x, scale, output_grad].map(dense);
    let (_, c, _) = layout(&x);
    let (zero, one) = (super::fill(&x, c, 0.0), super::fill(&x, c, 1.0));
    let (dy_sum, dy_x_sum) = channel_gradient_sums(&x, &dy, &zero, &one);
    let input = channel_affine(dy, scale, zero);
    Gradients {
        input,
        scale: dy_x_sum,
        shift: dy_sum,
    }
}

/// Σ of `x` over batch and pixels, per channel (a convolution's bias gradient).
pub fn channel_sums<R: CubeRuntime>(x: CubeTensor<R>) -> CubeTensor<R> {
    let x = dense(x);
    let (n, c, pixels) = layout(&x);
    let sums = vector(&x, c);
    let (cubes, units) = per_channel(c);
    channel_total::launch::<f32, R>(
        &x.client,
        cubes,
        units,
        array(&x),
        array(&sums),
        c as u32,
        pixels as u32,
        (n * pixels) as u32,
        CUBE_UNITS as usize,
    );
    sums
}
