//! Batch normalisation and per-channel affine maps in a few small kernels instead of burn's
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

/// Where a channel's values lie in a dense NCHW tensor.
#[derive(CubeLaunch, CubeType)]
struct Channels {
    channels: usize,
    pixels: usize,
    /// Values of one channel: batch · pixels.
    count: usize,
    /// Values of the tensor: batch · channels · pixels.
    total: usize,
}

/// The layout of `x` `[batch, channels, h, w]`, and its channel count.
fn channels_of<R: CubeRuntime>(x: &CubeTensor<R>) -> (ChannelsLaunch<R>, usize) {
    let [n, c, h, w] = dims4(x);
    (ChannelsLaunch::new(c, h * w, n * h * w, n * c * h * w), c)
}

/// Index of value `i` (0 ≤ i < count) of channel `c`.
#[cube]
fn channel_element(i: usize, c: usize, layout: &Channels) -> usize {
    let n = i / layout.pixels;
    (n * layout.channels + c) * layout.pixels + (i - n * layout.pixels)
}

/// The channel of element `i` of the tensor.
#[cube]
fn channel_of_element(i: usize, layout: &Channels) -> usize {
    (i / layout.pixels) % layout.channels
}

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

/// Σ of channel `c` of `x` over the cube (the cube's position is the channel).
#[cube]
fn channel_sum<F: Float>(x: &Array<F>, c: usize, layout: &Channels, #[comptime] units: usize) -> F {
    let mut sum = F::new(0.0);
    let mut i = UNIT_POS_X as usize;
    while i < layout.count {
        sum += x[channel_element(i, c, layout)];
        i += CUBE_DIM_X as usize;
    }
    cube_sum::<F>(sum, units)
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
    layout: &Channels,
    epsilon: f32,
    #[comptime] units: usize,
) {
    let c = CUBE_POS_X as usize;
    let count = F::cast_from(layout.count);
    let m = channel_sum::<F>(x, c, layout, units) / count;
    let mut squares = F::new(0.0);
    let mut i = UNIT_POS_X as usize;
    while i < layout.count {
        let d = x[channel_element(i, c, layout)] - m;
        squares += d * d;
        i += CUBE_DIM_X as usize;
    }
    let v = cube_sum::<F>(squares, units) / count;
    if UNIT_POS_X == 0 {
        mean[c] = m;
        variance[c] = v;
        scale[c] = gamma[c] / F::sqrt(v + F::cast_from(epsilon));
    }
}

/// Per channel: Σ over batch and pixels.
#[cube(launch)]
fn channel_total<F: Float>(
    x: &Array<F>,
    sums: &mut Array<F>,
    layout: &Channels,
    #[comptime] units: usize,
) {
    let c = CUBE_POS_X as usize;
    let total = channel_sum::<F>(x, c, layout, units);
    if UNIT_POS_X == 0 {
        sums[c] = total;
    }
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
    layout: &Channels,
    #[comptime] units: usize,
) {
    let c = CUBE_POS_X as usize;
    let (m, f) = (center[c], factor[c]);
    let mut weighted = F::new(0.0);
    let mut i = UNIT_POS_X as usize;
    while i < layout.count {
        let at = channel_element(i, c, layout);
        weighted += dy[at] * (x[at] - m) * f;
        i += CUBE_DIM_X as usize;
    }
    let total = channel_sum::<F>(dy, c, layout, units);
    let total_weighted = cube_sum::<F>(weighted, units);
    if UNIT_POS_X == 0 {
        dy_sum[c] = total;
        dy_x_sum[c] = total_weighted;
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
    layout: &Channels,
) {
    let i = ABSOLUTE_POS;
    if i >= layout.total {
        terminate!();
    }
    let c = channel_of_element(i, layout);
    y[i] = (x[i] - center[c]) * scale[c] + shift[c];
}

/// BatchNorm's input gradient from the channel sums:
/// `(dy − Σdy/count − x̂ · Σ(dy·x̂)/count) · gamma / sqrt(variance + epsilon)`.
#[cube(launch)]
fn batch_norm_input_gradient<F: Float>(
    x: &Array<F>,
    dy: &Array<F>,
    mean: &Array<F>,
    inv_std: &Array<F>,
    gamma: &Array<F>,
    dy_sum: &Array<F>,
    dy_x_sum: &Array<F>,
    dx: &mut Array<F>,
    layout: &Channels,
) {
    let i = ABSOLUTE_POS;
    if i >= layout.total {
        terminate!();
    }
    let c = channel_of_element(i, layout);
    let n = F::cast_from(layout.count);
    let normalized = (x[i] - mean[c]) * inv_std[c];
    dx[i] = (dy[i] - dy_sum[c] / n - normalized * dy_x_sum[c] / n) * inv_std[c] * gamma[c];
}

#[cube(launch)]
fn inverse_square_root<F: Float>(v: &Array<F>, out: &mut Array<F>, length: usize, epsilon: f32) {
    let i = ABSOLUTE_POS;
    if i >= length {
        terminate!();
    }
    out[i] = F::new(1.0) / F::sqrt(v[i] + F::cast_from(epsilon));
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

/// A new tensor of `x`'s shape, and the cubes of one unit per element.
fn like<R: CubeRuntime>(x: &CubeTensor<R>) -> (CubeTensor<R>, CubeCount, CubeDim) {
    let out = empty_like_device(x, x.meta.shape().clone());
    let (cubes, units) = elementwise(x, x.meta.shape().num_elements());
    (out, cubes, units)
}

pub fn batch_norm_forward<R: CubeRuntime>(
    x: CubeTensor<R>,
    gamma: CubeTensor<R>,
    beta: CubeTensor<R>,
    epsilon: f64,
) -> Statistics<R> {
    let [x, gamma, beta] = [x, gamma, beta].map(dense);
    let c = dims4(&x)[1];
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
        channels_of(&x).0,
        epsilon as f32,
        CUBE_UNITS as usize,
    );
    let (output, cubes, units) = like(&x);
    centered_affine::launch::<f32, R>(
        &x.client,
        cubes,
        units,
        array(&x),
        array(&mean),
        array(&scale),
        array(&beta),
        array(&output),
        channels_of(&x).0,
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
    let inv_std = inverse_std(&variance, epsilon);
    let (dy_sum, dy_x_sum) = channel_gradient_sums(&x, &dy, &mean, &inv_std);
    let (dx, cubes, units) = like(&x);
    batch_norm_input_gradient::launch::<f32, R>(
        &x.client,
        cubes,
        units,
        array(&x),
        array(&dy),
        array(&mean),
        array(&inv_std),
        array(&gamma),
        array(&dy_sum),
        array(&dy_x_sum),
        array(&dx),
        channels_of(&x).0,
    );
    Gradients {
        input: dx,
        scale: dy_x_sum,
        shift: dy_sum,
    }
}

/// `1 / sqrt(variance + epsilon)`, per channel.
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
        c,
        epsilon as f32,
    );
    out
}

/// Σ dy and Σ dy · (x − center) · factor per channel.
fn channel_gradient_sums<R: CubeRuntime>(
    x: &CubeTensor<R>,
    dy: &CubeTensor<R>,
    center: &CubeTensor<R>,
    factor: &CubeTensor<R>,
) -> (CubeTensor<R>, CubeTensor<R>) {
    let (layout, c) = channels_of(x);
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
        layout,
        CUBE_UNITS as usize,
    );
    (dy_sum, dy_x_sum)
}

/// Σ of `x` over batch and pixels, per channel (a convolution's bias gradient).
pub fn channel_sums<R: CubeRuntime>(x: CubeTensor<R>) -> CubeTensor<R> {
    let x = dense(x);
    let (layout, c) = channels_of(&x);
    let sums = vector(&x, c);
    let (cubes, units) = per_channel(c);
    channel_total::launch::<f32, R>(
        &x.client,
        cubes,
        units,
        array(&x),
        array(&sums),
        layout,
        CUBE_UNITS as usize,
    );
    sums
}

/// `x · scale[c] + shift[c]`.
pub fn channel_affine<R: CubeRuntime>(
    x: CubeTensor<R>,
    scale: CubeTensor<R>,
    shift: CubeTensor<R>,
) -> CubeTensor<R> {
    let [x, scale, shift] = [x, scale, shift].map(dense);
    let (layout, c) = channels_of(&x);
    let zero = super::fill(&x, c, 0.0);
    let (output, cubes, units) = like(&x);
    centered_affine::launch::<f32, R>(
        &x.client,
        cubes,
        units,
        array(&x),
        array(&zero),
        array(&scale),
        array(&shift),
        array(&output),
        layout,
    );
    output
}

pub fn channel_affine_backward<R: CubeRuntime>(
    x: CubeTensor<R>,
    scale: CubeTensor<R>,
    output_grad: CubeTensor<R>,
) -> Gradients<R> {
    let [x, scale, dy] = [x, scale, output_grad].map(dense);
    let c = dims4(&x)[1];
    let (zero, one) = (super::fill(&x, c, 0.0), super::fill(&x, c, 1.0));
    let (dy_sum, dy_x_sum) = channel_gradient_sums(&x, &dy, &zero, &one);
    let input = channel_affine(dy, scale, zero);
    Gradients {
        input,
        scale: dy_x_sum,
        shift: dy_sum,
    }
}
