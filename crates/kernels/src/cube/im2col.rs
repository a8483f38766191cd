//! Convolution as f32 matrix products: the input's windows unfolded into columns (im2col),
//! multiplied by the weights on the unit kernels of [`super::matmul`]; the input gradient
//! folds the product of the transposed weights back (col2im, a gather: no atomics, the same
//! sums every run). Grouped convolutions are not handled here.
//!
//! The columns of `m` images take `m · k · p` floats (k = c_in · kh · kw, p = output pixels),
//! so a large batch is unfolded a few images at a time, each chunk at most 256 MiB.

use std::sync::atomic::{AtomicUsize, Ordering};

use burn::tensor::ops::ConvOptions;
use burn::tensor::{Shape, Tensor};
use burn_cubecl::CubeRuntime;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;
use cubek::matmul::definition::MatmulSetupError;

use super::matmul::matmul_f32;
use super::tensor::{array, dense, dims4, elementwise, empty_like_device};
use super::{Gpu, float, primitive};

/// The largest unfolded chunk, in bytes.
static COLUMN_BYTES: AtomicUsize = AtomicUsize::new(256 << 20);

/// Unfolds at most `bytes` of columns at a time (tests make it small to exercise chunking).
pub fn limit_column_bytes(bytes: usize) {
    COLUMN_BYTES.store(bytes.max(1), Ordering::Relaxed);
}

/// A convolution's sizes, as the kernels read them.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    channels_out: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    output: [usize; 2],
}

impl Geometry {
    fn new(x: [usize; 4], weight: [usize; 4], options: &ConvOptions<2>) -> Self {
        let [batch, channels, height, width] = x;
        let [channels_out, _, kh, kw] = weight;
        let output = [0, 1].map(|axis| {
            let size = [height, width][axis];
            let kernel = [kh, kw][axis];
            (size + 2 * options.padding[axis] - options.dilation[axis] * (kernel - 1) - 1)
                / options.stride[axis]
                + 1
        });
        Self {
            batch,
            channels,
            height,
            width,
            channels_out,
            kernel: [kh, kw],
            stride: options.stride,
            padding: options.padding,
            dilation: options.dilation,
            output,
        }
    }

    /// Rows of the unfolded matrix: c_in · kh · kw.
    fn k(&self) -> usize {
        self.channels * self.kernel[0] * self.kernel[1]
    }

    /// Output pixels.
    fn p(&self) -> usize {
        self.output[0] * self.output[1]
    }

    /// Images per unfolded chunk.
    fn chunk(&self) -> usize {
        let per_image = self.k() * self.p() * size_of::<f32>();
        let budget = COLUMN_BYTES.load(Ordering::Relaxed);
        (budget / per_image.max(1)).clamp(1, self.batch.max(1))
    }

    /// `(first image, images)` of each chunk.
    fn chunks(&self) -> impl Iterator<Item = (usize, usize)> + use<> {
        let (batch, chunk) = (self.batch, self.chunk());
        (0..batch)
            .step_by(chunk)
            .map(move |start| (start, chunk.min(batch - start)))
    }
}

/// A convolution's window as the kernels read it.
#[derive(CubeLaunch, CubeType)]
struct Window {
    channels: usize,
    height: usize,
    width: usize,
    kernel_h: usize,
    kernel_w: usize,
    stride_h: usize,
    stride_w: usize,
    pad_h: usize,
    pad_w: usize,
    dilation_h: usize,
    dilation_w: usize,
    out_h: usize,
    out_w: usize,
}

impl Geometry {
    fn window<R: CubeRuntime>(&self) -> WindowLaunch<R> {
        WindowLaunch::new(
            self.channels,
            self.height,
            self.width,
            self.kernel[0],
            self.kernel[1],
            self.stride[0],
            self.stride[1],
            self.padding[0],
            self.padding[1],
            self.dilation[0],
            self.dilation[1],
            self.output[0],
            self.output[1],
        )
    }
}

/// The columns of images `first_image..` of `x`: `[m, k, p]`, or `[m, p, k]` when `transposed`
/// (k = c_in · kh · kw rows, p = output pixels).
#[cube(launch)]
fn unfold<F: Float>(
    x: &Array<F>,
    cols: &mut Array<F>,
    w: &Window,
    first_image: usize,
    total: usize,
    #[comptime] transposed: bool,
) {
    let i = ABSOLUTE_POS;
    if i >= total {
        terminate!();
    }
    let window = w.kernel_h * w.kernel_w;
    let k_all = w.channels * window;
    let p_all = w.out_h * w.out_w;
    let k = if comptime![transposed] {
        i % k_all
    } else {
        (i / p_all) % k_all
    };
    let p = if comptime![transposed] {
        (i / k_all) % p_all
    } else {
        i % p_all
    };
    let image = first_image + i / (k_all * p_all);
    let c = k / window;
    let ki = (k - c * window) / w.kernel_w;
    let kj = k - c * window - ki * w.kernel_w;
    let oy = p / w.out_w;
    let ox = p - oy * w.out_w;
    // Coordinates in the zero-padded input.
    let y = oy * w.stride_h + ki * w.dilation_h;
    let x_at = ox * w.stride_w + kj * w.dilation_w;
    let mut value = F::new(0.0);
    if y >= w.pad_h && y < w.height + w.pad_h && x_at >= w.pad_w && x_at < w.width + w.pad_w {
        let row = (image * w.channels + c) * w.height + (y - w.pad_h);
        value = x[row * w.width + (x_at - w.pad_w)];
    }
    cols[i] = value;
}

/// The input gradient of images `first_image..` from their column gradients `[m, k, p]`: each
/// input pixel sums the columns its windows put it in.
#[cube(launch)]
fn fold<F: Float>(
    cols: &Array<F>,
    dx: &mut Array<F>,
    w: &Window,
    first_image: usize,
    total: usize,
) {
    let i = ABSOLUTE_POS;
    if i >= total {
        terminate!();
    }
    let plane = w.height * w.width;
    let image = i / (w.channels * plane);
    let rest = i - image * w.channels * plane;
    let c = rest / plane;
    let yx = rest - c * plane;
    // Padded coordinates.
    let y = yx / w.width + w.pad_h;
    let x_at = yx - (yx / w.width) * w.width + w.pad_w;
    let window = w.kernel_h * w.kernel_w;
    let k_all = w.channels * window;
    let p_all = w.out_h * w.out_w;
    let mut sum = F::new(0.0);
    // Window position (ki, kj) puts input pixel (y, x) in output pixel ((y − ki·dh) / sh,
    // (x − kj·dw) / sw) where those divide exactly and fall inside. The differences wrap
    // where they are negative: the bounds test then fails.
    for ki in 0..w.kernel_h {
        let reach_y = ki * w.dilation_h;
        let oy = (y - reach_y) / w.stride_h;
        if y >= reach_y && oy * w.stride_h == y - reach_y && oy < w.out_h {
            for kj in 0..w.kernel_w {
                let reach_x = kj * w.dilation_w;
                let ox = (x_at - reach_x) / w.stride_w;
                if x_at >= reach_x && ox * w.stride_w == x_at - reach_x && ox < w.out_w {
                    let k = c * window + ki * w.kernel_w + kj;
                    sum += cols[(image * k_all + k) * p_all + oy * w.out_w + ox];
                }
            }
        }
    }
    dx[first_image * w.channels * plane + i] = sum;
}

/// The columns of `count` images of `x` from `first`.
fn columns<R: CubeRuntime>(
    x: &CubeTensor<R>,
    g: &Geometry,
    (first, count): (usize, usize),
    transposed: bool,
) -> CubeTensor<R> {
    let (k, p) = (g.k(), g.p());
    let shape = match transposed {
        true => [count, p, k],
        false => [count, k, p],
    };
    let cols = empty_like_device(x, Shape::new(shape));
    let total = count * k * p;
    let (cubes, units) = elementwise(x, total);
    unfold::launch::<f32, R>(
        &x.client,
        cubes,
        units,
        array(x),
        array(&cols),
        g.window(),
        first,
        total,
        transposed,
    );
    cols
}

/// Whether these kernels compute this convolution: ungrouped, indices within u32.
pub fn supports(x: [usize; 4], weight: [usize; 4], options: &ConvOptions<2>) -> bool {
    let g = Geometry::new(x, weight, options);
    let largest = [
        g.chunk() * g.k() * g.p(),
        x.iter().product(),
        g.batch * g.channels_out * g.p(),
    ];
    options.groups == 1 && largest.iter().all(|&n| n < u32::MAX as usize)
}

pub fn forward<R: CubeRuntime>(
    x: CubeTensor<R>,
    weight: CubeTensor<R>,
    bias: Option<CubeTensor<R>>,
    options: &ConvOptions<2>,
) -> Result<CubeTensor<R>, MatmulSetupError> {
    let (x, weight) = (dense(x), dense(weight));
    let g = Geometry::new(dims4(&x), dims4(&weight), options);
    let (k, co) = (g.k(), g.channels_out);
    let w = float::<R, 3>(weight).reshape([1, co, k]);
    let mut outputs = Vec::new();
    for chunk in g.chunks() {
        let cols = columns(&x, &g, chunk, false);
        outputs.push(float::<R, 3>(matmul_f32(primitive(w.clone()), cols)?));
    }
    let [oh, ow] = g.output;
    let all = match outputs.len() {
        1 => outputs.remove(0),
        _ => Tensor::cat(outputs, 0),
    };
    let mut out = all.reshape([g.batch, co, oh, ow]);
    if let Some(bias) = bias {
        out = out + float::<R, 1>(bias).reshape([1, co, 1, 1]);
    }
    Ok(primitive(out))
}

/// `dL/dx` for the output gradient `dy`.
pub fn input_gradient<R: CubeRuntime>(
    x_shape: [usize; 4],
    weight: CubeTensor<R>,
    dy: CubeTensor<R>,
    options: &ConvOptions<2>,
) -> Result<CubeTensor<R>, MatmulSetupError> {
    let (weight, dy) = (dense(weight), dense(dy));
    let g = Geometry::new(x_shape, dims4(&weight), options);
    let (k, p, co) = (g.k(), g.p(), g.channels_out);
    let w_t = float::<R, 3>(weight).reshape([1, co, k]).swap_dims(1, 2);
    let dy = float::<R, 3>(dy).reshape([g.batch, co, p]);
    let dx = empty_like_device(&primitive(dy.clone()), Shape::new(x_shape));
    for (first, count) in g.chunks() {
        let dy_chunk = primitive(dy.clone().narrow(0, first, count));
        let dcols = dense(matmul_f32(primitive(w_t.clone()), dy_chunk)?);
        let total = count * g.channels * g.height * g.width;
        let (cubes, units) = elementwise(&dx, total);
        fold::launch::<f32, R>(
            &dx.client,
            cubes,
            units,
            array(&dcols),
            array(&dx),
            g.window(),
            first,
            total,
        );
    }
    Ok(dx)
}

/// `dL/dweight`: Σ over images of `dy[n] · columns[n]ᵀ`.
pub fn weight_gradient<R: CubeRuntime>(
    x: CubeTensor<R>,
    weight_shape: [usize; 4],
    dy: CubeTensor<R>,
    options: &ConvOptions<2>,
) -> Result<CubeTensor<R>, MatmulSetupError> {
    let (x, dy) = (dense(x), dense(dy));
    let g = Geometry::new(dims4(&x), weight_shape, options);
    let (p, co) = (g.p(), g.channels_out);
    let dy = float::<R, 3>(dy).reshape([g.batch, co, p]);
    let mut sum: Option<Tensor<Gpu<R>, 3>> = None;
    for (first, count) in g.chunks() {
        let cols_t = columns(&x, &g, (first, count), true);
        let dy_chunk = primitive(dy.clone().narrow(0, first, count));
        let per_image = float::<R, 3>(matmul_f32(dy_chunk, cols_t)?);
        let chunk_sum = per_image.sum_dim(0);
        sum = Some(match sum {
            Some(total) => total + chunk_sum,
            None => chunk_sum,
        });
    }
    let sum = sum.expect("a batch of at least one image");
    Ok(primitive(sum.reshape(weight_shape)))
}
