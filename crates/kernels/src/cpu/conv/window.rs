//! Stride-1 convolution as a sum of shifted matrix products, with no patch matrix.
//!
//! Pad the image and lay each channel out as one row of `padded height × padded width`
//! floats. An output pixel (y, x) then reads, at kernel position (ky, kx), the input at flat
//! index `y · width + x + offset(ky, kx)`: the same shift for every pixel. Computing the output
//! on the padded width too (the few extra columns per row are discarded), the output is the
//! sum over kernel positions of (the input shifted by that position) × (the weights at that
//! position): kh·kw matrix products over views of one buffer, which gemm reads in place.
//!
//! The gradients are the same sums read the other way: the input gradient is this convolution
//! of the output gradient with each kernel rotated by 180° and the channels swapped; the weight
//! gradient at each kernel position is the shifted input times the output gradient.
//!
//! Work is cut into bands of output rows whose products fit the cache, and every (image, band)
//! is a job: a batch of one large image keeps every core busy too.

use std::ops::Range;

use rayon::prelude::*;

use super::{Conv2dShape, Wanted};
use crate::cpu::matmul::{MatMut, MatRef, matmul};

/// Floats of one band's output (on the padded width): 256 KiB, well inside a core's L2.
const BAND_BUDGET: usize = 1 << 16;

/// A stride-1 correlation of `channels_in` planes of `input` size, padded by `padding`, with
/// weights `[channels_out, channels_in, kh, kw]`.
struct Correlation {
    channels_in: usize,
    channels_out: usize,
    input: [usize; 2],
    padding: [usize; 2],
    kernel: [usize; 2],
    dilation: [usize; 2],
}

/// Buffers one job reuses from band to band.
#[derive(Default)]
struct Scratch {
    input: Vec<f32>,
    output: Vec<f32>,
}

/// One job: an image and a band of its output rows.
#[derive(Clone)]
struct Job {
    image: usize,
    rows: Range<usize>,
}

impl Correlation {
    /// The forward convolution of `shape`.
    fn forward(shape: &Conv2dShape) -> Self {
        Self {
            channels_in: shape.channels_in,
            channels_out: shape.channels_out,
            input: shape.input,
            padding: shape.padding,
            kernel: shape.kernel,
            dilation: shape.dilation,
        }
    }

    /// The input gradient of `shape`: its output gradient padded so that the rotated kernel
    /// reaches every input pixel.
    fn input_gradient(shape: &Conv2dShape) -> Self {
        Self {
            channels_in: shape.channels_out,
            channels_out: shape.channels_in,
            input: shape.output(),
            padding: [0, 1].map(|axis| shape.reach(axis) - 1 - shape.padding[axis]),
            kernel: shape.kernel,
            dilation: shape.dilation,
        }
    }

    /// Padded width: the row stride of every buffer here.
    fn width(&self) -> usize {
        self.input[1] + 2 * self.padding[1]
    }

    fn output(&self) -> [usize; 2] {
        [0, 1].map(|axis| {
            self.input[axis] + 2 * self.padding[axis]
                - self.dilation[axis] * (self.kernel[axis] - 1)
        })
    }

    fn input_len(&self) -> usize {
        self.channels_in * self.input[0] * self.input[1]
    }

    fn output_len(&self) -> usize {
        let [oh, ow] = self.output();
        self.channels_out * oh * ow
    }

    fn kernel_area(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }

    /// The shift of kernel position `position` (row-major over the kernel).
    fn offset(&self, position: usize) -> usize {
        let (ky, kx) = (position / self.kernel[1], position % self.kernel[1]);
        ky * self.dilation[0] * self.width() + kx * self.dilation[1]
    }

    /// Bands of output rows whose output on the padded width fits [`BAND_BUDGET`].
    fn bands(&self) -> Vec<Range<usize>> {
        let [oh, _] = self.output();
        let rows = (BAND_BUDGET / (self.channels_out * self.width()).max(1)).clamp(1, oh.max(1));
        (0..oh)
            .step_by(rows)
            .map(|start| start..(start + rows).min(oh))
            .collect()
    }

    fn jobs(&self, batch: usize) -> Vec<Job> {
        let bands = self.bands();
        (0..batch)
            .flat_map(|image| {
                bands.iter().map(move |rows| Job {
                    image,
                    rows: rows.clone(),
                })
            })
            .collect()
    }

    /// The padded input rows that output `rows` read, each channel as one block of
    /// `rows.len() + reach − 1` rows, plus the floats the last kernel column reads past the
    /// last row. Returns the block (plane) length.
    fn pad_band(&self, image: &[f32], rows: &Range<usize>, buffer: &mut Vec<f32>) -> usize {
        let [h, w] = self.input;
        let [ph, pw] = self.padding;
        let width = self.width();
        let padded_rows = rows.start..rows.end + self.dilation[0] * (self.kernel[0] - 1);
        let plane = padded_rows.len() * width;
        buffer.clear();
        buffer.resize(
            self.channels_in * plane + self.dilation[1] * (self.kernel[1] - 1),
            0.0,
        );
        for (block, channel) in buffer
            .chunks_exact_mut(plane)
            .zip(image.chunks_exact(h * w))
        {
            for (target, row) in block.chunks_exact_mut(width).zip(padded_rows.clone()) {
                if let Some(source) = row.checked_sub(ph).filter(|&y| y < h) {
                    target[pw..pw + w].copy_from_slice(&channel[source * w..][..w]);
                }
            }
        }
        plane
    }

    /// The output rows `rows` of one image, each channel's rows in `out`, from `weight`.
    fn apply_band(
        &self,
        image: &[f32],
        weight: &[f32],
        rows: &Range<usize>,
        out: Vec<&mut [f32]>,
        scratch: &mut Scratch,
        threads: usize,
    ) {
        let (cin, cout, area) = (self.channels_in, self.channels_out, self.kernel_area());
        let plane = self.pad_band(image, rows, &mut scratch.input);
        let wide_len = rows.len() * self.width();
        scratch.output.resize(cout * wide_len, 0.0);
        // Pixels × channels, so that gemm reads each shifted input channel as it lies.
        let mut dst = MatMut::new(&mut scratch.output, [wide_len, cout], [1, wide_len]);
        for position in 0..area {
            let input = MatRef::new(
                &scratch.input[self.offset(position)..],
                [wide_len, cin],
                [1, plane],
            );
            let weights = MatRef::new(&weight[position..], [cin, cout], [area, cin * area]);
            matmul(&mut dst, input, weights, position > 0, threads);
        }
        let [_, ow] = self.output();
        for (channel, wide) in out.into_iter().zip(scratch.output.chunks_exact(wide_len)) {
            for (row, source) in channel
                .chunks_exact_mut(ow)
                .zip(wide.chunks_exact(self.width()))
            {
                row.copy_from_slice(&source[..ow]);
            }
        }
    }

    /// The correlation of every image of `inputs` into `outputs`, a job per (image, band).
    fn apply(&self, inputs: &[f32], weight: &[f32], outputs: &mut [f32]) {
        let batch = outputs.len() / self.output_len().max(1);
        let jobs = self.jobs(batch);
        let threads = threads_per_job(jobs.len());
        let pieces = self.band_pieces(outputs, &jobs);
        jobs.into_par_iter()
            .zip(pieces)
            .for_each_init(Scratch::default, |scratch, (job, out)| {
                let image = &inputs[job.image * self.input_len()..][..self.input_len()];
                self.apply_band(image, weight, &job.rows, out, scratch, threads);
            });
    }

    /// For each job, the slices of its output rows, one per channel: disjoint pieces of
    /// `outputs` `[batch, channels_out, oh, ow]`.
    fn band_pieces<'a>(&self, outputs: &'a mut [f32], jobs: &[Job]) -> Vec<Vec<&'a mut [f32]>> {
        let [oh, ow] = self.output();
        let mut pieces: Vec<Vec<&mut [f32]>> = jobs.iter().map(|_| Vec::new()).collect();
        let bands = jobs.iter().filter(|job| job.image == 0).count().max(1);
        for (plane_index, mut plane) in outputs.chunks_exact_mut((oh * ow).max(1)).enumerate() {
            let image = plane_index / self.channels_out;
            for band in 0..bands {
                let index = image * bands + band;
                let (piece, rest) = plane.split_at_mut(jobs[index].rows.len() * ow);
                pieces[index].push(piece);
                plane = rest;
            }
        }
        pieces
    }

    /// Σ over the images and pixels of the shifted padded input times the output gradient
    /// `dys`: the weight gradient `[channels_out, channels_in, kh, kw]`.
    fn weight_gradient(&self, inputs: &[f32], dys: &[f32]) -> Vec<f32> {
        let weight_len = self.channels_out * self.channels_in * self.kernel_area();
        let batch = dys.len() / self.output_len().max(1);
        let jobs = self.jobs(batch);
        let threads = threads_per_job(jobs.len());
        crate::cpu::ordered_sum(jobs, weight_len, |dw, scratch: &mut Scratch, job| {
            let image = &inputs[job.image * self.input_len()..][..self.input_len()];
            let dy = &dys[job.image * self.output_len()..][..self.output_len()];
            self.weight_gradient_band(image, dy, &job.rows, dw, scratch, threads);
        })
    }

    fn weight_gradient_band(
        &self,
        image: &[f32],
        dy: &[f32],
        rows: &Range<usize>,
        dw: &mut [f32],
        scratch: &mut Scratch,
        threads: usize,
    ) {
        let (cin, cout, area) = (self.channels_in, self.channels_out, self.kernel_area());
        let plane = self.pad_band(image, rows, &mut scratch.input);
        // The output gradient's rows on the padded width, zeros in the discarded columns.
        let [oh, ow] = self.output();
        let width = self.width();
        let wide_len = rows.len() * width;
        scratch.output.clear();
        scratch.output.resize(cout * wide_len, 0.0);
        for (wide, channel) in scratch
            .output
            .chunks_exact_mut(wide_len)
            .zip(dy.chunks_exact(oh * ow))
        {
            let source = &channel[rows.start * ow..rows.end * ow];
            for (target, row) in wide.chunks_exact_mut(width).zip(source.chunks_exact(ow)) {
                target[..ow].copy_from_slice(row);
            }
        }
        let dy = MatRef::new(&scratch.output, [wide_len, cout], [1, wide_len]);
        for position in 0..area {
            let input = MatRef::new(
                &scratch.input[self.offset(position)..],
                [cin, wide_len],
                [plane, 1],
            );
            let mut dst = MatMut::new(&mut dw[position..], [cin, cout], [area, cin * area]);
            matmul(&mut dst, input, dy, true, threads);
        }
    }
}

/// Fewer jobs than threads (a small batch of small images) leave gemm the spare threads.
fn threads_per_job(jobs: usize) -> usize {
    (rayon::current_num_threads() / jobs.max(1)).max(1)
}

/// `[batch, channels_out, oh, ow]` into `out`.
pub(super) fn forward(shape: &Conv2dShape, x: &[f32], weight: &[f32], out: &mut [f32]) {
    Correlation::forward(shape).apply(x, weight, out);
}

/// The input and weight gradients that `wanted` names.
pub(super) fn backward(
    shape: &Conv2dShape,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    wanted: Wanted,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let input = wanted.input.then(|| {
        let mut dx = crate::cpu::zeros(x.len());
        Correlation::input_gradient(shape).apply(dy, &rotate(shape, weight), &mut dx);
        dx
    });
    let weight = wanted
        .weight
        .then(|| Correlation::forward(shape).weight_gradient(x, dy));
    (input, weight)
}

/// The weights of the input gradient: `[channels_in, channels_out, kh, kw]`, each kernel
/// rotated by 180°.
fn rotate(shape: &Conv2dShape, weight: &[f32]) -> Vec<f32> {
    let (cin, cout, area) = (shape.channels_in, shape.channels_out, shape.kernel_area());
    let mut rotated = vec![0.0; weight.len()];
    for co in 0..cout {
        for ci in 0..cin {
            let source = &weight[(co * cin + ci) * area..][..area];
            let target = &mut rotated[(ci * cout + co) * area..][..area];
            target
                .iter_mut()
                .zip(source.iter().rev())
                .for_each(|(t, s)| *t = *s);
        }
    }
    rotated
}
