//! Convolution by unfolding patches (im2col): used for strided convolutions, where shifted
//! windows would compute every stride-th output for nothing.
//!
//! Each image's patches are unfolded a band of output rows at a time, so the patch matrix
//! stays near the cache whatever the image size, and multiplied by the weight matrix; the
//! input gradient multiplies the weights' transpose by the output gradient and folds the
//! patch gradient back (col2im) plane by plane, each plane written by one job only.
//!
//! Work is spread over rayon's pool across images (each job single-threaded), or, when the
//! batch is smaller than the pool, inside each image (gemm's threads, unfolding by channel).

use std::ops::Range;

use rayon::prelude::*;

use super::{Conv2dShape, Wanted};
use crate::cpu::matmul::{MatMut, MatRef, matmul};
use crate::cpu::{span_inside, zip_strided};

/// Floats of unfolded patches per band of output rows: 1 MiB, a quarter of a core's L2 here.
const COLUMN_BUDGET: usize = 1 << 18;

/// `[batch, channels_out, oh, ow]` into `out`.
pub(super) fn forward(shape: &Conv2dShape, x: &[f32], weight: &[f32], out: &mut [f32]) {
    let images = x
        .chunks_exact(shape.input_len().max(1))
        .zip(out.chunks_exact_mut(shape.output_len().max(1)));
    let threads = rayon::current_num_threads();
    if shape.batch >= threads {
        let images: Vec<_> = images.collect();
        images
            .into_par_iter()
            .for_each_init(Scratch::default, |scratch, (x, out)| {
                forward_image(shape, x, weight, out, scratch, 1)
            });
    } else {
        let mut scratch = Scratch::default();
        images.for_each(|(x, out)| forward_image(shape, x, weight, out, &mut scratch, threads));
    }
}

/// The input and weight gradients that `wanted` names.
pub(super) fn backward(
    shape: &Conv2dShape,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    wanted: Wanted,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let mut input = wanted.input.then(|| crate::cpu::zeros(x.len()));
    let per_image: Vec<Option<&mut [f32]>> = match input.as_mut() {
        Some(dx) => dx
            .chunks_exact_mut(shape.input_len().max(1))
            .map(Some)
            .collect(),
        None => (0..shape.batch).map(|_| None).collect(),
    };
    let images: Vec<_> = x
        .chunks_exact(shape.input_len().max(1))
        .zip(dy.chunks_exact(shape.output_len().max(1)))
        .zip(per_image)
        .map(|((x, dy), dx)| Image { x, dy, dx })
        .collect();
    let weight_len = weight.len();
    let threads = rayon::current_num_threads();
    let weight_grad = if shape.batch >= threads {
        // An empty sum where the weight gradient is not wanted: each image's input gradient
        // is still computed in its job.
        let len = if wanted.weight { weight_len } else { 0 };
        let dw = crate::cpu::ordered_sum(images, len, |dw, scratch: &mut Scratch, image| {
            let dw = (!dw.is_empty()).then_some(dw);
            backward_image(shape, image, weight, dw, scratch, 1);
        });
        wanted.weight.then_some(dw)
    } else {
        let mut dw = wanted.weight.then(|| vec![0.0f32; weight_len]);
        let mut scratch = Scratch::default();
        for image in images {
            backward_image(
                shape,
                image,
                weight,
                dw.as_deref_mut(),
                &mut scratch,
                threads,
            );
        }
        dw
    };
    (
        input,
        weight_grad.or_else(|| wanted.weight.then(|| vec![0.0; weight_len])),
    )
}

/// One image's tensors in the backward pass.
struct Image<'a> {
    x: &'a [f32],
    dy: &'a [f32],
    /// Its input gradient, when wanted: zeros to add to.
    dx: Option<&'a mut [f32]>,
}

/// Buffers one job reuses from image to image.
#[derive(Default)]
struct Scratch {
    patches: Vec<f32>,
    gradient: Vec<f32>,
}

/// One image's output `[channels_out, oh, ow]`.
fn forward_image(
    shape: &Conv2dShape,
    x: &[f32],
    weight: &[f32],
    out: &mut [f32],
    scratch: &mut Scratch,
    threads: usize,
) {
    let [_, ow] = shape.output();
    let plane = shape.output_plane();
    let weights = MatRef::row_major(weight, shape.channels_out, shape.patch_len());
    for rows in shape.bands() {
        let band = rows.len() * ow;
        let patches = shape.patches(x, &rows, &mut scratch.patches, threads);
        let mut dst = MatMut::new(
            &mut out[rows.start * ow..],
            [shape.channels_out, band],
            [plane, 1],
        );
        matmul(&mut dst, weights, patches, false, threads);
    }
}

/// One image's share of the backward pass: its input gradient, and its term of the weight
/// gradient added to `dw`.
fn backward_image(
    shape: &Conv2dShape,
    Image { x, dy, mut dx }: Image,
    weight: &[f32],
    mut dw: Option<&mut [f32]>,
    scratch: &mut Scratch,
    threads: usize,
) {
    let (cin, cout, plane) = (shape.channels_in, shape.channels_out, shape.output_plane());
    let [_, ow] = shape.output();
    let patch_len = shape.patch_len();
    let weights = MatRef::row_major(weight, cout, patch_len);
    for rows in shape.bands() {
        let band = rows.len() * ow;
        let dy_band = MatRef::new(&dy[rows.start * ow..], [cout, band], [plane, 1]);
        if let Some(dw) = dw.as_deref_mut() {
            let patches = shape.patches(x, &rows, &mut scratch.patches, threads);
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
            let mut dst = MatMut::new(&mut dx[rows.start * ow..], [cin, band], [plane, 1]);
            matmul(&mut dst, weights.t(), dy_band, false, threads);
            continue;
        }
        scratch.gradient.resize(patch_len * band, 0.0);
        let mut columns = MatMut::row_major(&mut scratch.gradient, patch_len, band);
        matmul(&mut columns, weights.t(), dy_band, false, threads);
        let block = shape.kernel_area() * band;
        let planes = dx.chunks_exact_mut(shape.input_plane());
        let blocks = scratch.gradient.chunks_exact(block);
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

impl Conv2dShape {
    fn input_plane(&self) -> usize {
        self.input[0] * self.input[1]
    }

    fn output_plane(&self) -> usize {
        let [oh, ow] = self.output();
        oh * ow
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
            return std::iter::once(0..oh).collect(); // one band: no patches to bound
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
        let offset = (kx * self.dilation[1]) as isize - self.padding[1] as isize;
        let (outputs, first) = span_inside(offset, self.stride[1], self.input[1], self.output()[1]);
        (outputs.start, outputs.end, first)
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
                    zip_strided(&mut dst[lo..hi], &src[first..], stride, |d, s| *d = s);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_cover_the_output_once() {
        let shape = Conv2dShape {
            batch: 1,
            channels_in: 64,
            channels_out: 8,
            input: [224, 224],
            kernel: [3, 3],
            stride: [2, 2],
            padding: [1, 1],
            dilation: [1, 1],
        };
        let bands = shape.bands();
        assert!(
            bands.len() > 1,
            "a 112×112 map with 576-long patches is unfolded in bands"
        );
        assert_eq!(bands.first().unwrap().start, 0);
        assert_eq!(bands.last().unwrap().end, 112);
        assert!(bands.windows(2).all(|w| w[0].end == w[1].start));
    }
}
