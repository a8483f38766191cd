//! 2-D convolution on `[batch, channels, height, width]` slices (groups of 1): forward, and
//! the gradients of the input, the weight and the bias in one pass over the images.
//!
//! Each image's patches are unfolded (im2col) a band of output rows at a time, so the column
//! buffer stays near the cache whatever the image size, and multiplied by the weight matrix
//! with `gemm`. The output is written in NCHW directly: no layout conversion in or out. Work is
//! spread over rayon's pool either across images (each job single-threaded) or, for batches
//! smaller than the pool, inside each image (gemm and the unfolding split by channel).
//!
//! The input gradient multiplies the weights' transpose by the output gradient and folds the
//! columns back (col2im) plane by plane: each input plane is written by one job only.

use std::ops::Range;

use rayon::prelude::*;

use super::matmul::{MatMut, MatRef, matmul};

/// Floats of unfolded patches per band of output rows: 1 MiB, a quarter of a core's L2 here.
const COLUMN_BUDGET: usize = 1 << 18;

/// The sizes of one 2-D convolution; padding is the same on both sides of each axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dShape {
    pub batch: usize,
    pub channels_in: usize,
    pub channels_out: usize,
    /// `[height, width]` of the input.
    pub input: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

/// Which gradients [`conv2d_backward`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub input: bool,
    pub weight: bool,
    pub bias: bool,
}

/// The gradients asked for, each flat in its tensor's layout.
#[derive(Debug, Default)]
pub struct Conv2dGradients {
    pub input: Option<Vec<f32>>,
    pub weight: Option<Vec<f32>>,
    pub bias: Option<Vec<f32>>,
}

impl Conv2dShape {
    /// `[height, width]` of the output.
    pub fn output(&self) -> [usize; 2] {
        [0, 1].map(|axis| {
            let reach = self.dilation[axis] * (self.kernel[axis] - 1) + 1;
            (self.input[axis] + 2 * self.padding[axis]).saturating_sub(reach) / self.stride[axis]
                + 1
        })
    }

    fn input_plane(&self) -> usize {
        self.input[0] * self.input[1]
    }

    fn output_plane(&self) -> usize {
        let [oh, ow] = self.output();
        oh * ow
    }

    fn kernel_area(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }

    /// Rows of the unfolded patch matrix: one per input channel and kernel position.
    fn patch_len(&self) -> usize {
        self.channels_in * self.kernel_area()
    }

    /// A 1×1 kernel that reads every pixel once: the image already is its patch matrix.
    fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }

    /// Bands of output rows whose unfolded patches fit [`COLUMN_BUDGET`].
    fn bands(&self) -> Vec<Range<usize>> {
        let [oh, ow] = self.output();
        if self.is_pointwise() {
            return vec![0..oh];
        }
        let rows = (COLUMN_BUDGET / (self.patch_len() * ow).max(1)).clamp(1, oh.max(1));
        (0..oh)
            .step_by(rows)
            .map(|start| start..(start + rows).min(oh))
            .collect()
    }

    /// The input row that output row `oy` reads at kernel row `ky`, if inside the image.
    fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        let iy = (oy * self.stride[0] + ky * self.dilation[0]).checked_sub(self.padding[0])?;
        (iy < self.input[0]).then_some(iy)
    }

    /// For kernel column `kx`: the output columns `lo..hi` that read inside the image, and the
    /// input column that `lo` reads (the others follow at the stride).
    fn column_span(&self, kx: usize) -> (usize, usize, usize) {
        let [_, ow] = self.output();
        let (stride, width) = (self.stride[1], self.input[1]);
        let offset = (kx * self.dilation[1]) as isize - self.padding[1] as isize;
        let lo = if offset >= 0 {
            0
        } else {
            (-offset as usize).div_ceil(stride)
        };
        let room = width as isize - offset;
        let hi = if room <= 0 {
            0
        } else {
            (room as usize).div_ceil(stride).min(ow)
        };
        let lo = lo.min(hi);
        (
            lo,
            hi,
            (lo as isize * stride as isize + offset).max(0) as usize,
        )
    }

    /// Unfolds the patches of input channel `plane` for output rows `rows` into `out`, the
    /// channel's `kernel_area × (rows × ow)` block of the patch matrix.
    fn unfold_channel(&self, plane: &[f32], rows: &Range<usize>, out: &mut [f32]) {
        let [_, ow] = self.output();
        let [kh, kw] = self.kernel;
        let (width, stride) = (self.input[1], self.stride[1]);
        let band = rows.len() * ow;
        for ky in 0..kh {
            for kx in 0..kw {
                let (lo, hi, first) = self.column_span(kx);
                let dst_row = &mut out[(ky * kw + kx) * band..][..band];
                for (dst, oy) in dst_row.chunks_exact_mut(ow).zip(rows.clone()) {
                    let Some(iy) = self.input_row(oy, ky) else {
                        dst.fill(0.0);
                        continue;
                    };
                    let src = &plane[iy * width..][..width];
                    dst[..lo].fill(0.0);
                    dst[hi..].fill(0.0);
                    if stride == 1 {
                        dst[lo..hi].copy_from_slice(&src[first..first + hi - lo]);
                    } else {
                        let picked = src[first..].iter().step_by(stride);
                        dst[lo..hi]
                            .iter_mut()
                            .zip(picked)
                            .for_each(|(d, s)| *d = *s);
                    }
                }
            }
        }
    }

    /// The adjoint of [`Self::unfold_channel`]: adds the channel's block of a patch-matrix
    /// gradient back onto the pixels each entry was read from.
    fn fold_channel(&self, columns: &[f32], rows: &Range<usize>, plane: &mut [f32]) {
        let [_, ow] = self.output();
        let [kh, kw] = self.kernel;
        let (width, stride) = (self.input[1], self.stride[1]);
        let band = rows.len() * ow;
        for ky in 0..kh {
            for kx in 0..kw {
                let (lo, hi, first) = self.column_span(kx);
                let src_row = &columns[(ky * kw + kx) * band..][..band];
                for (src, oy) in src_row.chunks_exact(ow).zip(rows.clone()) {
                    let Some(iy) = self.input_row(oy, ky) else {
                        continue;
                    };
                    let dst = &mut plane[iy * width..][..width];
                    if stride == 1 {
                        let dst = &mut dst[first..first + hi - lo];
                        dst.iter_mut().zip(&src[lo..hi]).for_each(|(d, s)| *d += *s);
                    } else {
                        let picked = dst[first..].iter_mut().step_by(stride);
                        picked.zip(&src[lo..hi]).for_each(|(d, s)| *d += *s);
                    }
                }
            }
        }
    }

    /// The patch matrix `patch_len × (rows × ow)` of one image for a band of output rows: a
    /// view of the image itself for pointwise kernels, else unfolded into `buffer`.
    fn patches<'a>(
        &self,
        image: &'a [f32],
        rows: &Range<usize>,
        buffer: &'a mut Vec<f32>,
        threads: usize,
    ) -> MatRef<'a> {
        let [_, ow] = self.output();
        let band = rows.len() * ow;
        if self.is_pointwise() {
            let plane = self.output_plane();
            return MatRef::new(
                &image[rows.start * ow..],
                [self.channels_in, band],
                [plane, 1],
            );
        }
        buffer.resize(self.patch_len() * band, 0.0);
        let block = self.kernel_area() * band;
        let planes = image.chunks_exact(self.input_plane());
        let blocks = buffer.chunks_exact_mut(block);
        if threads > 1 {
            let planes: Vec<_> = planes.collect();
            blocks
                .collect::<Vec<_>>()
                .into_par_iter()
                .zip(planes)
                .for_each(|(out, plane)| self.unfold_channel(plane, rows, out));
        } else {
            blocks
                .zip(planes)
                .for_each(|(out, plane)| self.unfold_channel(plane, rows, out));
        }
        MatRef::row_major(buffer, self.patch_len(), band)
    }
}

/// A pointer that jobs on other threads may write through; each job writes its own block.
#[derive(Clone, Copy)]
struct SharedOutput(*mut f32);

// SAFETY: jobs write disjoint (image, band) blocks of the output, see `conv2d_forward`.
unsafe impl Send for SharedOutput {}
unsafe impl Sync for SharedOutput {}

/// `[batch, channels_out, oh, ow]` from `x` `[batch, channels_in, h, w]`, `weight`
/// `[channels_out, channels_in, kh, kw]` and an optional `bias` `[channels_out]`.
pub fn conv2d_forward(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    shape: &Conv2dShape,
) -> Vec<f32> {
    check_lengths(shape, x, weight);
    let (cout, plane) = (shape.channels_out, shape.output_plane());
    let mut out = super::zeros(shape.batch * cout * plane);
    let bands = shape.bands();
    let jobs: Vec<(usize, Range<usize>)> = (0..shape.batch)
        .flat_map(|image| bands.iter().map(move |band| (image, band.clone())))
        .collect();
    let weights = MatRef::row_major(weight, cout, shape.patch_len());
    let output = SharedOutput(out.as_mut_ptr());
    let [_, ow] = shape.output();
    let run = |buffer: &mut Vec<f32>, (image, rows): &(usize, Range<usize>), threads: usize| {
        let input = &x[image * shape.channels_in * shape.input_plane()..]
            [..shape.channels_in * shape.input_plane()];
        let patches = shape.patches(input, rows, buffer, threads);
        let output = output;
        // SAFETY: the block (image, rows) of `out`: `cout` rows of `rows.len() * ow` floats,
        // `plane` apart, inside `out`; no two jobs share an (image, band).
        let mut dst = unsafe {
            MatMut::from_raw(
                output.0.add(image * cout * plane + rows.start * ow),
                cout,
                rows.len() * ow,
                plane,
            )
        };
        matmul(&mut dst, weights, patches, false, threads);
    };
    let threads = rayon::current_num_threads();
    if jobs.len() >= threads {
        jobs.par_iter()
            .for_each_init(Vec::new, |buffer, job| run(buffer, job, 1));
    } else {
        let mut buffer = Vec::new();
        jobs.iter().for_each(|job| run(&mut buffer, job, threads));
    }
    if let Some(bias) = bias {
        assert_eq!(bias.len(), cout, "bias length");
        out.par_chunks_mut(plane.max(1))
            .enumerate()
            .for_each(|(row, values)| values.iter_mut().for_each(|v| *v += bias[row % cout]));
    }
    out
}

/// The gradients of [`conv2d_forward`] that `wanted` asks for, given the output gradient `dy`
/// `[batch, channels_out, oh, ow]`.
pub fn conv2d_backward(
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    shape: &Conv2dShape,
    wanted: Wanted,
) -> Conv2dGradients {
    check_lengths(shape, x, weight);
    let (cin, cout, plane) = (shape.channels_in, shape.channels_out, shape.output_plane());
    assert_eq!(
        dy.len(),
        shape.batch * cout * plane,
        "output gradient length"
    );
    let image_len = cin * shape.input_plane();
    let mut input = wanted.input.then(|| super::zeros(shape.batch * image_len));
    let mut per_image: Vec<Option<&mut [f32]>> = match input.as_mut() {
        Some(dx) => dx.chunks_exact_mut(image_len.max(1)).map(Some).collect(),
        None => (0..shape.batch).map(|_| None).collect(),
    };
    let weight_len = weight.len();
    let threads = rayon::current_num_threads();
    let weight_grad = if shape.batch >= threads {
        per_image
            .into_par_iter()
            .enumerate()
            .fold(
                || {
                    (
                        wanted.weight.then(|| vec![0.0f32; weight_len]),
                        Scratch::default(),
                    )
                },
                |(mut dw, mut scratch), (image, dx)| {
                    backward_image(
                        shape,
                        x,
                        weight,
                        dy,
                        image,
                        dx,
                        dw.as_deref_mut(),
                        &mut scratch,
                        1,
                    );
                    (dw, scratch)
                },
            )
            .map(|(dw, _)| dw)
            .reduce_with(|a, b| Some(a?.into_iter().zip(b?).map(|(a, b)| a + b).collect()))
            .flatten()
    } else {
        let mut dw = wanted.weight.then(|| vec![0.0f32; weight_len]);
        let mut scratch = Scratch::default();
        for (image, dx) in per_image.iter_mut().enumerate() {
            backward_image(
                shape,
                x,
                weight,
                dy,
                image,
                dx.as_deref_mut(),
                dw.as_deref_mut(),
                &mut scratch,
                threads,
            );
        }
        dw
    };
    Conv2dGradients {
        input,
        weight: weight_grad,
        bias: wanted.bias.then(|| channel_sums(dy, cout, plane)),
    }
}

/// Buffers one job reuses from image to image.
#[derive(Default)]
struct Scratch {
    patches: Vec<f32>,
    patch_grad: Vec<f32>,
}

/// One image's share of the backward pass: its input gradient, and its term of the weight
/// gradient added to `dw`.
#[allow(clippy::too_many_arguments)]
fn backward_image(
    shape: &Conv2dShape,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    image: usize,
    mut dx: Option<&mut [f32]>,
    mut dw: Option<&mut [f32]>,
    scratch: &mut Scratch,
    threads: usize,
) {
    let (cin, cout, plane) = (shape.channels_in, shape.channels_out, shape.output_plane());
    let [_, ow] = shape.output();
    let patch_len = shape.patch_len();
    let input = &x[image * cin * shape.input_plane()..][..cin * shape.input_plane()];
    let dy_image = &dy[image * cout * plane..][..cout * plane];
    let weights = MatRef::row_major(weight, cout, patch_len);
    for rows in shape.bands() {
        let band = rows.len() * ow;
        let dy_band = MatRef::new(&dy_image[rows.start * ow..], [cout, band], [plane, 1]);
        if let Some(dw) = dw.as_deref_mut() {
            let patches = shape.patches(input, &rows, &mut scratch.patches, threads);
            matmul(
                &mut MatMut::row_major(dw, cout, patch_len),
                dy_band,
                patches.t(),
                true,
                threads,
            );
        }
        let Some(dx) = dx.as_deref_mut() else {
            continue;
        };
        if shape.is_pointwise() {
            let mut dst = MatMut::columns(dx, cin, plane, rows.start * ow, band);
            matmul(&mut dst, weights.t(), dy_band, false, threads);
            continue;
        }
        scratch.patch_grad.resize(patch_len * band, 0.0);
        let mut columns = MatMut::row_major(&mut scratch.patch_grad, patch_len, band);
        matmul(&mut columns, weights.t(), dy_band, false, threads);
        let block = shape.kernel_area() * band;
        let planes = dx.chunks_exact_mut(shape.input_plane());
        let blocks = scratch.patch_grad.chunks_exact(block);
        if threads > 1 {
            let planes: Vec<_> = planes.collect();
            planes
                .into_par_iter()
                .zip(blocks.collect::<Vec<_>>())
                .for_each(|(plane, columns)| shape.fold_channel(columns, &rows, plane));
        } else {
            planes
                .zip(blocks)
                .for_each(|(plane, columns)| shape.fold_channel(columns, &rows, plane));
        }
    }
}

/// Σ over images and pixels of each channel of `[batch, channels, plane]`.
pub fn channel_sums(values: &[f32], channels: usize, plane: usize) -> Vec<f32> {
    (0..channels)
        .into_par_iter()
        .map(|c| {
            values
                .chunks_exact(channels * plane)
                .map(|image| {
                    image[c * plane..][..plane]
                        .iter()
                        .map(|&v| v as f64)
                        .sum::<f64>()
                })
                .sum::<f64>() as f32
        })
        .collect()
}

fn check_lengths(shape: &Conv2dShape, x: &[f32], weight: &[f32]) {
    assert_eq!(
        x.len(),
        shape.batch * shape.channels_in * shape.input_plane(),
        "input length"
    );
    assert_eq!(
        weight.len(),
        shape.channels_out * shape.patch_len(),
        "weight length"
    );
    assert!(
        shape
            .stride
            .iter()
            .chain(&shape.dilation)
            .chain(&shape.kernel)
            .all(|&s| s > 0)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one output at a time.
    fn naive(x: &[f32], weight: &[f32], bias: Option<&[f32]>, s: &Conv2dShape) -> Vec<f32> {
        let [oh, ow] = s.output();
        let [h, w] = s.input;
        let mut out = vec![0.0; s.batch * s.channels_out * oh * ow];
        for n in 0..s.batch {
            for co in 0..s.channels_out {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = bias.map_or(0.0, |b| b[co]) as f64;
                        for ci in 0..s.channels_in {
                            for ky in 0..s.kernel[0] {
                                for kx in 0..s.kernel[1] {
                                    let iy = (oy * s.stride[0] + ky * s.dilation[0]) as isize
                                        - s.padding[0] as isize;
                                    let ix = (ox * s.stride[1] + kx * s.dilation[1]) as isize
                                        - s.padding[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                        continue;
                                    }
                                    let xv = x[((n * s.channels_in + ci) * h + iy as usize) * w
                                        + ix as usize];
                                    let wv = weight[((co * s.channels_in + ci) * s.kernel[0] + ky)
                                        * s.kernel[1]
                                        + kx];
                                    acc += (xv * wv) as f64;
                                }
                            }
                        }
                        out[((n * s.channels_out + co) * oh + oy) * ow + ox] = acc as f32;
                    }
                }
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| {
                ((i.wrapping_mul(2654435761).wrapping_add(seed * 40503) >> 8) % 1000) as f32 / 500.0
                    - 1.0
            })
            .collect()
    }

    fn shape(
        batch: usize,
        cin: usize,
        cout: usize,
        input: [usize; 2],
        kernel: [usize; 2],
        stride: usize,
        padding: [usize; 2],
        dilation: usize,
    ) -> Conv2dShape {
        Conv2dShape {
            batch,
            channels_in: cin,
            channels_out: cout,
            input,
            kernel,
            stride: [stride; 2],
            padding,
            dilation: [dilation; 2],
        }
    }

    fn shapes() -> Vec<Conv2dShape> {
        vec![
            shape(2, 3, 4, [7, 9], [3, 3], 1, [1, 1], 1),
            shape(3, 2, 5, [8, 8], [3, 3], 2, [1, 1], 1),
            shape(1, 4, 3, [6, 5], [1, 1], 1, [0, 0], 1),
            shape(2, 4, 6, [6, 7], [1, 1], 2, [0, 0], 1),
            shape(1, 2, 2, [9, 9], [3, 3], 1, [2, 2], 2),
            shape(2, 1, 3, [5, 11], [5, 2], 3, [2, 0], 1),
            shape(1, 3, 2, [4, 4], [3, 3], 1, [0, 0], 1),
        ]
    }

    fn assert_close(ours: &[f32], reference: &[f32]) {
        assert_eq!(ours.len(), reference.len());
        for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "element {i}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn forward_matches_the_definition() {
        for s in shapes() {
            let x = values(s.batch * s.channels_in * s.input_plane(), 1);
            let w = values(s.channels_out * s.patch_len(), 2);
            let b = values(s.channels_out, 3);
            assert_close(
                &conv2d_forward(&x, &w, Some(&b), &s),
                &naive(&x, &w, Some(&b), &s),
            );
        }
    }

    /// The gradients are the adjoint of the forward map: ⟨dy, conv(x, w)⟩ is bilinear, so its
    /// derivative in x (or w) along any direction is ⟨dy, conv(direction, w)⟩.
    #[test]
    fn backward_is_the_adjoint_of_the_forward() {
        let all = Wanted {
            input: true,
            weight: true,
            bias: true,
        };
        for s in shapes() {
            let x = values(s.batch * s.channels_in * s.input_plane(), 4);
            let w = values(s.channels_out * s.patch_len(), 5);
            let dy = values(s.batch * s.channels_out * s.output_plane(), 6);
            let grads = conv2d_backward(&x, &w, &dy, &s, all);
            let dot =
                |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(a, b)| (a * b) as f64).sum::<f64>();
            let dx_dir = values(x.len(), 7);
            let dw_dir = values(w.len(), 8);
            let along_x = dot(&dy, &naive(&dx_dir, &w, None, &s));
            let along_w = dot(&dy, &naive(&x, &dw_dir, None, &s));
            assert!(
                (dot(grads.input.as_ref().unwrap(), &dx_dir) - along_x).abs()
                    < 1e-3 * (1.0 + along_x.abs()),
                "{s:?}"
            );
            assert!(
                (dot(grads.weight.as_ref().unwrap(), &dw_dir) - along_w).abs()
                    < 1e-3 * (1.0 + along_w.abs()),
                "{s:?}"
            );
            let plane = s.output_plane();
            for (c, &db) in grads.bias.as_ref().unwrap().iter().enumerate() {
                let expected: f64 = (0..s.batch)
                    .flat_map(|n| &dy[(n * s.channels_out + c) * plane..][..plane])
                    .map(|&v| v as f64)
                    .sum();
                assert!((db as f64 - expected).abs() < 1e-4, "bias {c}");
            }
        }
    }

    /// Large enough to be unfolded in several bands, in both parallel modes.
    #[test]
    fn banded_images_match_the_definition() {
        for batch in [1, 3] {
            let s = shape(batch, 64, 3, [40, 37], [3, 3], 1, [1, 1], 1);
            assert!(s.bands().len() > 2);
            let x = values(s.batch * s.channels_in * s.input_plane(), 9);
            let w = values(s.channels_out * s.patch_len(), 10);
            assert_close(&conv2d_forward(&x, &w, None, &s), &naive(&x, &w, None, &s));
            let dy = values(s.batch * s.channels_out * s.output_plane(), 11);
            let all = Wanted {
                input: true,
                weight: true,
                bias: false,
            };
            let grads = conv2d_backward(&x, &w, &dy, &s, all);
            let dot =
                |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(a, b)| (a * b) as f64).sum::<f64>();
            let along_x = dot(&dy, &naive(&values(x.len(), 12), &w, None, &s));
            let along_w = dot(&dy, &naive(&x, &values(w.len(), 13), None, &s));
            let ours_x = dot(grads.input.as_ref().unwrap(), &values(x.len(), 12));
            let ours_w = dot(grads.weight.as_ref().unwrap(), &values(w.len(), 13));
            assert!((ours_x - along_x).abs() < 1e-3 * (1.0 + along_x.abs()));
            assert!((ours_w - along_w).abs() < 1e-3 * (1.0 + along_w.abs()));
        }
    }

    #[test]
    fn bands_cover_the_output_once() {
        let s = shape(1, 64, 8, [224, 224], [3, 3], 1, [1, 1], 1);
        let bands = s.bands();
        assert!(
            bands.len() > 1,
            "a 224×224 map with 576-long patches is unfolded in bands"
        );
        assert_eq!(bands.first().unwrap().start, 0);
        assert_eq!(bands.last().unwrap().end, 224);
        assert!(bands.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn only_the_wanted_gradients_are_computed() {
        let s = shapes()[0];
        let x = values(s.batch * s.channels_in * s.input_plane(), 1);
        let w = values(s.channels_out * s.patch_len(), 2);
        let dy = values(s.batch * s.channels_out * s.output_plane(), 3);
        let grads = conv2d_backward(
            &x,
            &w,
            &dy,
            &s,
            Wanted {
                input: true,
                weight: false,
                bias: false,
            },
        );
        assert!(grads.input.is_some() && grads.weight.is_none() && grads.bias.is_none());
    }
}
