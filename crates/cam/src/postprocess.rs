//! From a raw map to what is shown: ReLU, normalisation, resizing. Maps are row-major
//! `height × width` slices of f32, one image at a time.

/// How a map is scaled to [0, 1] after the ReLU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    /// `(x − min) / (max(x − min) + 1e-7)`, as pytorch-grad-cam.
    #[default]
    MinMax,
    /// `x / max`, as the Grad-CAM tutorial; an all-zero map stays zero.
    Max,
}

/// ReLU then normalisation. An all-zero map stays all zero.
pub fn relu_normalize(map: &[f32], mode: Normalization) -> Vec<f32> {
    let relu: Vec<f32> = map.iter().map(|&v| v.max(0.0)).collect();
    let max = relu.iter().copied().fold(0.0f32, f32::max);
    match mode {
        Normalization::MinMax => {
            let min = relu.iter().copied().fold(f32::INFINITY, f32::min);
            let span = relu.iter().map(|v| v - min).fold(0.0f32, f32::max) + 1e-7;
            relu.iter().map(|v| (v - min) / span).collect()
        }
        Normalization::Max if max > 0.0 => relu.iter().map(|v| v / max).collect(),
        Normalization::Max => relu,
    }
}

/// Bilinear resizing with half-pixel centres and clamped edges, as OpenCV's `INTER_LINEAR`
/// on float images (what pytorch-grad-cam and the tutorial call).
pub fn resize_bilinear(
    map: &[f32],
    [height, width]: [usize; 2],
    [out_h, out_w]: [usize; 2],
) -> Vec<f32> {
    assert_eq!(map.len(), height * width, "map size");
    let axis = |out: usize, len: usize| -> Vec<(usize, usize, f32)> {
        // OpenCV's weights are worked out in double and only then rounded to float: so here,
        // or a neighbour weighted 1e-15 there (a source position a hair past a pixel) is
        // weighted 0 here, and SESS, which counts the pixels a window reaches, counts another.
        let scale = len as f64 / out as f64;
        (0..out)
            .map(|i| {
                let src = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (src.floor() as usize).min(len - 1);
                let i1 = (i0 + 1).min(len - 1);
                (i0, i1, (src - i0 as f64) as f32)
            })
            .collect()
    };
    let (rows, cols) = (axis(out_h, height), axis(out_w, width));
    let mut out = Vec::with_capacity(out_h * out_w);
    for &(y0, y1, fy) in &rows {
        for &(x0, x1, fx) in &cols {
            let at = |y: usize, x: usize| map[y * width + x];
            let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
            let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

/// OpenCV's `GaussianBlur(map, (k, k), sigma)` on a float map: the separable kernel
/// `getGaussianKernel(k, sigma)` along rows, then columns, borders mirrored without repeating
/// the edge (`BORDER_REFLECT_101`).
pub fn gaussian_blur(
    map: &[f32],
    [height, width]: [usize; 2],
    size: usize,
    sigma: f64,
) -> Vec<f32> {
    let centre = (size as f64 - 1.0) / 2.0;
    let raw: Vec<f64> = (0..size)
        .map(|i| (-(i as f64 - centre).powi(2) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = raw.iter().sum();
    let kernel: Vec<f32> = raw.iter().map(|v| (v / total) as f32).collect();
    let radius = size as isize / 2;
    let pass = |input: &[f32], along_rows: bool| -> Vec<f32> {
        let mut out = vec![0f32; input.len()];
        for y in 0..height {
            for x in 0..width {
                let (position, length) = if along_rows { (x, width) } else { (y, height) };
                let sum: f32 = kernel
                    .iter()
                    .enumerate()
                    .map(|(k, w)| {
                        let j = reflect_101(position as isize + k as isize - radius, length);
                        let (sy, sx) = if along_rows { (y, j) } else { (j, x) };
                        w * input[sy * width + sx]
                    })
                    .sum();
                out[y * width + x] = sum;
            }
        }
        out
    };
    pass(&pass(map, true), false)
}

/// An index mirrored into `0..length` about its edges, the edge itself not repeated
/// (`…, 2, 1 | 0, 1, 2, … | n−2, n−3, …`); a side of one pixel maps everything to it.
fn reflect_101(mut i: isize, length: usize) -> usize {
    let last = length as isize - 1;
    if last == 0 {
        return 0;
    }
    while i < 0 || i > last {
        i = if i < 0 { -i } else { 2 * last - i };
    }
    i as usize
}

/// A normalised map resized to `[out_h, out_w]` for display. In `MinMax` mode the result is
/// normalised again, as pytorch-grad-cam does after resizing (interpolation rarely reaches
/// the exact extremes); `Max` mode resizes only, as the tutorial does.
pub fn upsample(map: &[f32], size: [usize; 2], out: [usize; 2], mode: Normalization) -> Vec<f32> {
    let resized = resize_bilinear(map, size, out);
    match mode {
        Normalization::MinMax => relu_normalize(&resized, Normalization::MinMax),
        Normalization::Max => resized,
    }
}

/// `(x, y)` of the largest value (the first one on ties).
pub fn peak(map: &[f32], width: usize) -> (usize, usize) {
    let index = map
        .iter()
        .enumerate()
        .fold(0, |best, (i, &v)| if v > map[best] { i } else { best });
    (index % width, index / width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_blur_keeps_the_mean_level_and_spreads_a_point_as_its_kernel() {
        let flat = gaussian_blur(&[0.5; 6 * 5], [6, 5], 11, 5.0);
        assert!(flat.iter().all(|v| (v - 0.5).abs() < 1e-6), "{flat:?}");
        // A point far from the borders (23 × 23, radius 5): the kernel's outer product,
        // k_i ∝ exp(−(i − 5)² / 50), normalised.
        let mut point = vec![0f32; 23 * 23];
        point[11 * 23 + 11] = 1.0;
        let blurred = gaussian_blur(&point, [23, 23], 11, 5.0);
        let k: Vec<f64> = (0..11)
            .map(|i| (-((i as f64 - 5.0).powi(2)) / 50.0).exp())
            .collect();
        let total: f64 = k.iter().sum();
        let expected = |dy: usize, dx: usize| (k[dy] * k[dx] / (total * total)) as f32;
        assert!((blurred[11 * 23 + 11] - expected(5, 5)).abs() < 1e-7);
        assert!((blurred[6 * 23 + 14] - expected(0, 8)).abs() < 1e-7);
        assert_eq!(blurred[5 * 23 + 11], 0.0, "beyond the radius");
        // Mirrored about the edge pixel without repeating it: index −1 reads index 1, so a
        // point next to the edge reaches the edge from both sides.
        let mut edge = vec![0f32; 12];
        edge[1] = 1.0;
        let row = gaussian_blur(&edge, [1, 12], 11, 5.0);
        assert!(
            (row[0] - ((k[4] + k[6]) / total) as f32).abs() < 1e-7,
            "{row:?}"
        );
    }

    #[test]
    fn minmax_and_max_normalisation() {
        let map = [-1.0, 0.0, 1.0, 3.0];
        let minmax = relu_normalize(&map, Normalization::MinMax);
        assert!(
            (minmax[3] - 1.0).abs() < 1e-6
                && minmax[0] == 0.0
                && (minmax[2] - 1.0 / 3.0).abs() < 1e-6
        );
        assert_eq!(
            relu_normalize(&map, Normalization::Max),
            vec![0.0, 0.0, 1.0 / 3.0, 1.0]
        );
        assert_eq!(
            relu_normalize(&[-2.0, -1.0], Normalization::MinMax),
            vec![0.0, 0.0]
        );
        assert_eq!(
            relu_normalize(&[-2.0, -1.0], Normalization::Max),
            vec![0.0, 0.0]
        );
    }

    #[test]
    fn bilinear_matches_opencv_half_pixel_rule() {
        // cv2.resize(np.float32([[0, 1], [2, 3]]), (4, 4), interpolation=cv2.INTER_LINEAR)
        let expected = [
            0.0, 0.25, 0.75, 1.0, //
            0.5, 0.75, 1.25, 1.5, //
            1.5, 1.75, 2.25, 2.5, //
            2.0, 2.25, 2.75, 3.0,
        ];
        assert_eq!(
            resize_bilinear(&[0.0, 1.0, 2.0, 3.0], [2, 2], [4, 4]),
            expected
        );
        // Downsampling by 2 averages pairs: source positions 0.5 and 2.5.
        assert_eq!(
            resize_bilinear(&[0.0, 2.0, 4.0, 6.0], [1, 4], [1, 2]),
            vec![1.0, 5.0]
        );
        assert_eq!(peak(&expected, 4), (3, 3));
    }
}
