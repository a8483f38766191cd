//! 2-D convolution on `[batch, channels, height, width]` slices (groups of 1): forward, and the
//! gradients of the input, the weight and the bias in one pass over the images.
//!
//! Two formulations, both matrix products with `gemm` straight in NCHW:
//! - [`window`], for stride 1 (most layers): the output is a sum over kernel positions of the
//!   weights at that position times the padded input shifted by it. No patch matrix; the
//!   input gradient is the same computation on the output gradient with the kernel flipped.
//! - [`unfold`], for strided convolutions: patches unfolded (im2col) a band of output rows at
//!   a time, multiplied by the weight matrix; the input gradient folds the patch gradient back.
//!
//! Each spreads its work over rayon's pool in its own way.

mod unfold;
mod window;

use rayon::prelude::*;

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
            (self.input[axis] + 2 * self.padding[axis]).saturating_sub(self.reach(axis))
                / self.stride[axis]
                + 1
        })
    }

    /// Input pixels a kernel spans along `axis`.
    fn reach(&self, axis: usize) -> usize {
        self.dilation[axis] * (self.kernel[axis] - 1) + 1
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

    fn algorithm(&self) -> Algorithm {
        // The flipped-kernel input gradient pads the output gradient by reach − 1 − padding.
        let padding_fits = (0..2).all(|axis| self.padding[axis] < self.reach(axis));
        if self.stride == [1, 1] && padding_fits {
            Algorithm::Window
        } else {
            Algorithm::Unfold
        }
    }

    fn check(&self, x: &[f32], weight: &[f32]) {
        assert!(
            self.stride
                .iter()
                .chain(&self.dilation)
                .chain(&self.kernel)
                .all(|&s| s > 0)
        );
        assert_eq!(x.len(), self.batch * self.input_len(), "input length");
        assert_eq!(
            weight.len(),
            self.channels_out * self.channels_in * self.kernel_area(),
            "weight length"
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Window,
    Unfold,
}

/// `[batch, channels_out, oh, ow]` from `x` `[batch, channels_in, h, w]`, `weight`
/// `[channels_out, channels_in, kh, kw]` and an optional `bias` `[channels_out]`.
pub fn conv2d_forward(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    shape: &Conv2dShape,
) -> Vec<f32> {
    forward_with(shape.algorithm(), x, weight, bias, shape)
}

fn forward_with(
    algorithm: Algorithm,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    shape: &Conv2dShape,
) -> Vec<f32> {
    shape.check(x, weight);
    let mut out = super::zeros(shape.batch * shape.output_len());
    match algorithm {
        Algorithm::Window => window::forward(shape, x, weight, &mut out),
        Algorithm::Unfold => unfold::forward(shape, x, weight, &mut out),
    }
    if let Some(bias) = bias {
        assert_eq!(bias.len(), shape.channels_out, "bias length");
        let [oh, ow] = shape.output();
        out.par_chunks_mut((oh * ow).max(1))
            .enumerate()
            .for_each(|(row, values)| {
                values
                    .iter_mut()
                    .for_each(|v| *v += bias[row % shape.channels_out])
            });
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
    backward_with(shape.algorithm(), x, weight, dy, shape, wanted)
}

fn backward_with(
    algorithm: Algorithm,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    shape: &Conv2dShape,
    wanted: Wanted,
) -> Conv2dGradients {
    shape.check(x, weight);
    assert_eq!(
        dy.len(),
        shape.batch * shape.output_len(),
        "output gradient length"
    );
    let (input, weight) = match algorithm {
        Algorithm::Window => window::backward(shape, x, weight, dy, wanted),
        Algorithm::Unfold => unfold::backward(shape, x, weight, dy, wanted),
    };
    let [oh, ow] = shape.output();
    Conv2dGradients {
        input,
        weight,
        bias: wanted
            .bias
            .then(|| channel_sums(dy, shape.channels_out, oh * ow)),
    }
}

/// Σ over images and pixels of each channel of `[batch, channels, plane]`.
pub fn channel_sums(values: &[f32], channels: usize, plane: usize) -> Vec<f32> {
    (0..channels)
        .into_par_iter()
        .map(|c| {
            values
                .chunks_exact((channels * plane).max(1))
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

    #[allow(clippy::too_many_arguments)]
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

    /// Stride 1 and 2, padding, dilation, 1×1, non-square inputs and kernels, valid
    /// convolutions, batch 1 (inside-image threads) and batches of several (across images), and
    /// a map large enough to be unfolded in several bands.
    fn shapes() -> Vec<Conv2dShape> {
        vec![
            shape(2, 3, 4, [7, 9], [3, 3], 1, [1, 1], 1),
            shape(3, 2, 5, [8, 8], [3, 3], 2, [1, 1], 1),
            shape(1, 4, 3, [6, 5], [1, 1], 1, [0, 0], 1),
            shape(2, 4, 6, [6, 7], [1, 1], 2, [0, 0], 1),
            shape(1, 2, 2, [9, 9], [3, 3], 1, [2, 2], 2),
            shape(2, 1, 3, [5, 11], [5, 2], 3, [2, 0], 1),
            shape(1, 3, 2, [4, 4], [3, 3], 1, [0, 0], 1),
            shape(3, 2, 3, [12, 10], [5, 3], 1, [0, 1], 1),
            shape(1, 64, 3, [40, 37], [3, 3], 2, [1, 1], 1),
            shape(3, 64, 3, [40, 37], [3, 3], 1, [1, 1], 1),
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

    fn algorithms(s: &Conv2dShape) -> Vec<Algorithm> {
        match s.algorithm() {
            // Either formulation computes a stride-1 convolution; check both.
            Algorithm::Window => vec![Algorithm::Window, Algorithm::Unfold],
            Algorithm::Unfold => vec![Algorithm::Unfold],
        }
    }

    #[test]
    fn stride_one_uses_shifted_windows_and_strides_unfold() {
        assert_eq!(shapes()[0].algorithm(), Algorithm::Window);
        assert_eq!(shapes()[1].algorithm(), Algorithm::Unfold);
        // Padding as wide as the kernel reaches leaves no room for the flipped kernel.
        assert_eq!(
            shape(1, 1, 1, [5, 5], [3, 3], 1, [3, 3], 1).algorithm(),
            Algorithm::Unfold
        );
    }

    #[test]
    fn forward_matches_the_definition() {
        for s in shapes() {
            let x = values(s.batch * s.input_len(), 1);
            let w = values(s.channels_out * s.channels_in * s.kernel_area(), 2);
            let b = values(s.channels_out, 3);
            for algorithm in algorithms(&s) {
                assert_close(
                    &forward_with(algorithm, &x, &w, Some(&b), &s),
                    &naive(&x, &w, Some(&b), &s),
                );
            }
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
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(a, b)| (a * b) as f64).sum::<f64>();
        for s in shapes() {
            let x = values(s.batch * s.input_len(), 4);
            let w = values(s.channels_out * s.channels_in * s.kernel_area(), 5);
            let dy = values(s.batch * s.output_len(), 6);
            let (dx_dir, dw_dir) = (values(x.len(), 7), values(w.len(), 8));
            let along_x = dot(&dy, &naive(&dx_dir, &w, None, &s));
            let along_w = dot(&dy, &naive(&x, &dw_dir, None, &s));
            for algorithm in algorithms(&s) {
                let grads = backward_with(algorithm, &x, &w, &dy, &s, all);
                let ours_x = dot(grads.input.as_ref().unwrap(), &dx_dir);
                let ours_w = dot(grads.weight.as_ref().unwrap(), &dw_dir);
                assert!(
                    (ours_x - along_x).abs() < 1e-3 * (1.0 + along_x.abs()),
                    "{algorithm:?} {s:?}"
                );
                assert!(
                    (ours_w - along_w).abs() < 1e-3 * (1.0 + along_w.abs()),
                    "{algorithm:?} {s:?}"
                );
                let plane = s.output_len() / s.channels_out;
                for (c, &db) in grads.bias.as_ref().unwrap().iter().enumerate() {
                    let expected: f64 = (0..s.batch)
                        .flat_map(|n| &dy[(n * s.channels_out + c) * plane..][..plane])
                        .map(|&v| v as f64)
                        .sum();
                    assert!((db as f64 - expected).abs() < 1e-4, "bias {c}");
                }
            }
        }
    }

    #[test]
    fn weight_gradients_repeat_bit_for_bit_whatever_the_thread_timing() {
        // Many images over more threads than cores: work stealing differs between calls, and
        // a sum in stealing order would differ in its last bits.
        let s = shape(48, 8, 8, [12, 12], [3, 3], 1, [1, 1], 1);
        let x = values(s.batch * s.input_len(), 1);
        let w = values(s.channels_out * s.channels_in * s.kernel_area(), 2);
        let dy = values(s.batch * s.output_len(), 3);
        let wanted = Wanted {
            input: true,
            weight: true,
            bias: false,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(8)
            .build()
            .unwrap();
        for algorithm in [Algorithm::Window, Algorithm::Unfold] {
            let gradient = || {
                let grads = pool.install(|| backward_with(algorithm, &x, &w, &dy, &s, wanted));
                let weight = grads.weight.unwrap();
                weight.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            let first = gradient();
            for _ in 0..30 {
                assert!(gradient() == first, "{algorithm:?}");
            }
        }
    }

    #[test]
    fn only_the_wanted_gradients_are_computed() {
        let s = shapes()[0];
        let x = values(s.batch * s.input_len(), 1);
        let w = values(s.channels_out * s.channels_in * s.kernel_area(), 2);
        let dy = values(s.batch * s.output_len(), 3);
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
