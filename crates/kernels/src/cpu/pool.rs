//! 2-D max pooling of `[batch, channels, height, width]` slices, with the argmax of each window
//! kept for the backward pass.
//!
//! burn-flex 0.21 runs even inference max pooling as 3-D pooling with indices, checking the
//! bounds of every tap: a sixth of a ResNet-18 forward pass. Here each plane is one job, and
//! each output row and column knows its valid taps in advance.

use std::ops::Range;

use rayon::prelude::*;

use super::{span_inside, zip_strided};

/// The sizes of one 2-D max pooling (PyTorch's, with `ceil_mode = False`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2dShape {
    pub batch: usize,
    pub channels: usize,
    /// `[height, width]` of the input.
    pub input: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

impl Pool2dShape {
    pub fn output(&self) -> [usize; 2] {
        [0, 1].map(|axis| {
            let reach = self.dilation[axis] * (self.kernel[axis] - 1) + 1;
            (self.input[axis] + 2 * self.padding[axis]).saturating_sub(reach) / self.stride[axis]
                + 1
        })
    }

    fn planes(&self) -> usize {
        self.batch * self.channels
    }

    /// The kernel taps of output index `o` along `axis` that fall inside the input.
    fn taps(&self, axis: usize, o: usize) -> Range<usize> {
        let (stride, dilation) = (self.stride[axis], self.dilation[axis]);
        let start = (o * stride) as isize - self.padding[axis] as isize;
        let first = if start >= 0 {
            0
        } else {
            (-start as usize).div_ceil(dilation)
        };
        let room = self.input[axis] as isize - start;
        let last = if room <= 0 {
            0
        } else {
            (room as usize).div_ceil(dilation).min(self.kernel[axis])
        };
        first.min(last)..last
    }

    /// For each kernel column: the outputs whose tap in that column falls inside the input, and
    /// the input column of the first of them.
    fn column_spans(&self) -> Vec<ColumnSpan> {
        let (stride, width, outputs) = (self.stride[1], self.input[1], self.output()[1]);
        (0..self.kernel[1])
            .map(|kx| {
                let offset = (kx * self.dilation[1]) as isize - self.padding[1] as isize;
                let (outputs, first) = span_inside(offset, stride, width, outputs);
                ColumnSpan { outputs, first }
            })
            .collect()
    }

    /// The input position of tap `k` of output `o` along `axis`.
    fn position(&self, axis: usize, o: usize, k: usize) -> usize {
        o * self.stride[axis] + k * self.dilation[axis] - self.padding[axis]
    }
}

/// The outputs one kernel column reaches inside the input, and the input column of the first.
struct ColumnSpan {
    outputs: Range<usize>,
    first: usize,
}

/// The pooled maps and, when `with_indices`, each output's argmax as a flat index into its
/// input plane. The first maximum wins; NaN propagates, as in PyTorch.
pub fn max_pool2d(
    x: &[f32],
    shape: &Pool2dShape,
    with_indices: bool,
) -> (Vec<f32>, Option<Vec<i32>>) {
    let [h, w] = shape.input;
    let [oh, ow] = shape.output();
    assert_eq!(x.len(), shape.planes() * h * w, "input length");
    assert!(
        h * w <= i32::MAX as usize,
        "plane too large for i32 indices"
    );
    let (rows, cols): (Vec<_>, Vec<_>) = (
        (0..oh).map(|o| shape.taps(0, o)).collect(),
        (0..ow).map(|o| shape.taps(1, o)).collect(),
    );
    let mut out = vec![0.0f32; shape.planes() * oh * ow];
    let mut indices = with_indices.then(|| vec![0i32; out.len()]);
    let columns = shape.column_spans();
    let pool_plane = |plane: &[f32], out: &mut [f32], index: Option<&mut [i32]>| {
        match index {
            // A plane without NaN needs neither the argmax nor NaN's special case.
            None if !plane.iter().any(|v| v.is_nan()) => pool_values(plane, out, shape, &columns),
            index => pool_with_argmax(plane, out, index, shape, &rows, &cols),
        }
    };
    let planes = x
        .par_chunks_exact((h * w).max(1))
        .zip(out.par_chunks_exact_mut((oh * ow).max(1)));
    match indices.as_mut() {
        Some(indices) => planes
            .zip(indices.par_chunks_exact_mut((oh * ow).max(1)))
            .for_each(|((plane, out), index)| pool_plane(plane, out, Some(index))),
        None => planes.for_each(|(plane, out)| pool_plane(plane, out, None)),
    }
    (out, indices)
}

/// One plane's maxima, output row by output row: each valid kernel row of the input updates the
/// whole output row, one kernel column at a time. Assumes no NaN.
fn pool_values(plane: &[f32], out: &mut [f32], shape: &Pool2dShape, columns: &[ColumnSpan]) {
    let width = shape.input[1];
    for (oy, out_row) in out.chunks_exact_mut(shape.output()[1].max(1)).enumerate() {
        out_row.fill(f32::NEG_INFINITY);
        for ky in shape.taps(0, oy) {
            let row = &plane[shape.position(0, oy, ky) * width..][..width];
            for span in columns {
                let (outputs, inputs) = (&mut out_row[span.outputs.clone()], &row[span.first..]);
                zip_strided(outputs, inputs, shape.stride[1], |best, v| {
                    if v > *best {
                        *best = v;
                    }
                });
            }
        }
    }
}

/// One plane's maxima and, when `index` is given, their flat positions in the plane; the first
/// maximum wins and NaN propagates.
fn pool_with_argmax(
    plane: &[f32],
    out: &mut [f32],
    mut index: Option<&mut [i32]>,
    shape: &Pool2dShape,
    rows: &[Range<usize>],
    cols: &[Range<usize>],
) {
    let (w, ow) = (shape.input[1], cols.len());
    for (oy, rows) in rows.iter().enumerate() {
        for (ox, cols) in cols.iter().enumerate() {
            let (mut best, mut at) = (f32::NEG_INFINITY, usize::MAX);
            for ky in rows.clone() {
                let y = shape.position(0, oy, ky);
                for kx in cols.clone() {
                    let i = y * w + shape.position(1, ox, kx);
                    let v = plane[i];
                    if v > best || (v.is_nan() && !best.is_nan()) || at == usize::MAX {
                        (best, at) = (v, i);
                    }
                }
            }
            out[oy * ow + ox] = best;
            if let Some(index) = index.as_deref_mut() {
                index[oy * ow + ox] = at as i32;
            }
        }
    }
}

/// The input gradient: each output's gradient added at its argmax.
pub fn max_pool2d_backward(dy: &[f32], indices: &[i32], shape: &Pool2dShape) -> Vec<f32> {
    let [h, w] = shape.input;
    let [oh, ow] = shape.output();
    assert!(
        dy.len() == shape.planes() * oh * ow && indices.len() == dy.len(),
        "output lengths"
    );
    let mut dx = super::zeros(shape.planes() * h * w);
    dx.par_chunks_exact_mut((h * w).max(1))
        .zip(
            dy.par_chunks_exact((oh * ow).max(1))
                .zip(indices.par_chunks_exact((oh * ow).max(1))),
        )
        .for_each(|(plane, (dy, index))| {
            for (&g, &i) in dy.iter().zip(index) {
                plane[i as usize] += g;
            }
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(
        input: [usize; 2],
        kernel: usize,
        stride: usize,
        padding: usize,
        dilation: usize,
    ) -> Pool2dShape {
        Pool2dShape {
            batch: 2,
            channels: 3,
            input,
            kernel: [kernel; 2],
            stride: [stride; 2],
            padding: [padding; 2],
            dilation: [dilation; 2],
        }
    }

    /// The definition: the maximum over the window's taps inside the image.
    fn naive(x: &[f32], s: &Pool2dShape) -> Vec<f32> {
        let [h, w] = s.input;
        let [oh, ow] = s.output();
        let mut out = Vec::new();
        for plane in x.chunks(h * w) {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut best = f32::NEG_INFINITY;
                    for ky in 0..s.kernel[0] {
                        for kx in 0..s.kernel[1] {
                            let y = (oy * s.stride[0] + ky * s.dilation[0]) as isize
                                - s.padding[0] as isize;
                            let x = (ox * s.stride[1] + kx * s.dilation[1]) as isize
                                - s.padding[1] as isize;
                            if (0..h as isize).contains(&y) && (0..w as isize).contains(&x) {
                                best = best.max(plane[y as usize * w + x as usize]);
                            }
                        }
                    }
                    out.push(best);
                }
            }
        }
        out
    }

    #[test]
    fn pools_as_the_definition_with_padding_stride_and_dilation() {
        for s in [
            shape([7, 9], 3, 2, 1, 1),
            shape([8, 8], 2, 2, 0, 1),
            shape([10, 7], 3, 1, 2, 2),
            shape([5, 5], 5, 1, 0, 1),
        ] {
            let x: Vec<f32> = (0..s.planes() * s.input[0] * s.input[1])
                .map(|i| ((i * 37) % 101) as f32 - 50.0)
                .collect();
            assert_eq!(
                max_pool2d(&x, &s, false).0,
                naive(&x, &s),
                "{s:?} without indices"
            );
            let (out, indices) = max_pool2d(&x, &s, true);
            assert_eq!(out, naive(&x, &s), "{s:?}");
            let plane = s.input[0] * s.input[1];
            let [oh, ow] = s.output();
            for (j, (&v, &i)) in out.iter().zip(indices.as_ref().unwrap()).enumerate() {
                assert_eq!(
                    x[j / (oh * ow) * plane + i as usize],
                    v,
                    "the index points at the maximum"
                );
            }
        }
    }

    #[test]
    fn the_gradient_goes_to_the_first_maximum_and_nan_propagates() {
        let s = Pool2dShape {
            batch: 1,
            channels: 1,
            input: [2, 4],
            kernel: [2, 2],
            stride: [2, 2],
            padding: [0, 0],
            dilation: [1, 1],
        };
        let x = [1.0, 5.0, 2.0, f32::NAN, 5.0, 0.0, 2.0, 1.0];
        let (out, indices) = max_pool2d(&x, &s, true);
        assert_eq!(out[0], 5.0);
        assert!(out[1].is_nan());
        let (values, _) = max_pool2d(&x, &s, false);
        assert!(
            values[0] == 5.0 && values[1].is_nan(),
            "without indices too"
        );
        let dx = max_pool2d_backward(&[10.0, 20.0], &indices.unwrap(), &s);
        assert_eq!(dx, [0.0, 10.0, 0.0, 20.0, 0.0, 0.0, 0.0, 0.0]);
    }
}
