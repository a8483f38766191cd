//! Maps as pictures: a colormap turns a normalised map into a heatmap, and the heatmap is laid
//! over the image as the Grad-CAM tutorial does (`alpha · heat + image`, saturated at 255).

use std::sync::OnceLock;

use image::{Rgb, RgbImage};

/// How map values in [0, 1] become colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colormap {
    /// OpenCV's `COLORMAP_JET`, the tutorial's and pytorch-grad-cam's: dark blue → blue → cyan
    /// → yellow → red → dark red.
    #[default]
    Jet,
    /// OpenCV's `COLORMAP_OCEAN`, the tutorial's colormap for its cats and dogs: black → blue
    /// → cyan → white.
    Ocean,
    Turbo,
    Viridis,
    Inferno,
}

impl std::str::FromStr for Colormap {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jet" => Ok(Colormap::Jet),
            "ocean" => Ok(Colormap::Ocean),
            "turbo" => Ok(Colormap::Turbo),
            "viridis" => Ok(Colormap::Viridis),
            "inferno" => Ok(Colormap::Inferno),
            _ => Err(format!(
                "unknown colormap `{s}`: jet, ocean, turbo, viridis or inferno"
            )),
        }
    }
}

impl Colormap {
    /// The colour of `v` (clamped to [0, 1]), quantised to 256 levels like an 8-bit LUT.
    pub fn colour(self, v: f32) -> [u8; 3] {
        let level = (v.clamp(0.0, 1.0) * 255.0) as usize;
        let t = level as f64 / 255.0;
        let scheme = match self {
            Colormap::Jet => return jet_table()[level],
            Colormap::Ocean => return ocean_table()[level],
            Colormap::Turbo => colorous::TURBO,
            Colormap::Viridis => colorous::VIRIDIS,
            Colormap::Inferno => colorous::INFERNO,
        };
        scheme.eval_continuous(t).as_array()
    }
}

/// OpenCV's 256-colour JET table: GNU Octave's `jet` at 256 points.
fn jet_table() -> &'static [[u8; 3]; 256] {
    static TABLE: OnceLock<[[u8; 3]; 256]> = OnceLock::new();
    TABLE.get_or_init(|| {
        fn band(x: f64, from: f64, to: f64) -> bool {
            (from..to).contains(&x)
        }
        opencv_table::<256>([
            |x| match x {
                x if band(x, 3.0 / 8.0, 5.0 / 8.0) => 4.0 * x - 1.5,
                x if band(x, 5.0 / 8.0, 7.0 / 8.0) => 1.0,
                x if x >= 7.0 / 8.0 => -4.0 * x + 4.5,
                _ => 0.0,
            },
            |x| match x {
                x if band(x, 1.0 / 8.0, 3.0 / 8.0) => 4.0 * x - 0.5,
                x if band(x, 3.0 / 8.0, 5.0 / 8.0) => 1.0,
                x if band(x, 5.0 / 8.0, 7.0 / 8.0) => -4.0 * x + 3.5,
                _ => 0.0,
            },
            |x| match x {
                x if x < 1.0 / 8.0 => 4.0 * x + 0.5,
                x if band(x, 1.0 / 8.0, 3.0 / 8.0) => 1.0,
                x if band(x, 3.0 / 8.0, 5.0 / 8.0) => -4.0 * x + 2.5,
                _ => 0.0,
            },
        ])
    })
}

/// OpenCV's 256-colour OCEAN table: matplotlib's gnuplot functions 23, 26 and 3 at 64 points.
fn ocean_table() -> &'static [[u8; 3]; 256] {
    static TABLE: OnceLock<[[u8; 3]; 256]> = OnceLock::new();
    TABLE.get_or_init(|| opencv_table::<64>([|x| 3.0 * x - 2.0, |x| (3.0 * x - 1.0) / 2.0, |x| x]))
}

/// A 256-colour table built the way OpenCV's colormap.cpp builds it, so that every entry is
/// OpenCV's: the channels sampled at `KNOTS` points in f32 (clamped to [0, 1]), linearly
/// interpolated in f32 at 256 points, scaled by 255 and rounded half to even.
fn opencv_table<const KNOTS: usize>(channels: [fn(f64) -> f64; 3]) -> [[u8; 3]; 256] {
    let values = channels.map(|f| -> [f32; KNOTS] {
        std::array::from_fn(|i| f(i as f64 / (KNOTS - 1) as f64).clamp(0.0, 1.0) as f32)
    });
    let knots = opencv_linspace::<KNOTS>();
    let at = opencv_linspace::<256>();
    std::array::from_fn(|i| {
        std::array::from_fn(|c| {
            let value = interpolate(&knots, &values[c], at[i]);
            (value * 255.0).round_ties_even().clamp(0.0, 255.0) as u8
        })
    })
}

/// OpenCV's `linspace(0, 1, N)` in f32: `i · (1 / (N − 1))`.
fn opencv_linspace<const N: usize>() -> [f32; N] {
    let step = 1.0f32 / (N - 1) as f32;
    std::array::from_fn(|i| i as f32 * step)
}

/// OpenCV's `interp1`: the knots' interval found by bisection, then linear interpolation in
/// f32, in its order of operations.
fn interpolate(knots: &[f32], values: &[f32], x: f32) -> f32 {
    let (mut low, mut high) = (0, knots.len() - 1);
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if x > knots[middle] {
            low = middle;
        } else {
            high = middle;
        }
    }
    values[low] + (x - knots[low]) * (values[high] - values[low]) / (knots[high] - knots[low])
}

/// A `width × height` map in [0, 1] through the colormap.
pub fn heatmap(map: &[f32], width: u32, height: u32, colormap: Colormap) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb(colormap.colour(map[(y * width + x) as usize]))
    })
}

/// `alpha · heat + image`, saturated at 255 (the tutorial's overlay).
pub fn superimpose(image: &RgbImage, heat: &RgbImage, alpha: f32) -> RgbImage {
    RgbImage::from_fn(image.width(), image.height(), |x, y| {
        let (p, h) = (image.get_pixel(x, y).0, heat.get_pixel(x, y).0);
        Rgb(std::array::from_fn(|c| {
            (alpha * h[c] as f32 + p[c] as f32).round().min(255.0) as u8
        }))
    })
}

/// Gradients at the input (`[3, height, width]`, planar RGB) as a picture, the way
/// pytorch-grad-cam's `deprocess_image` shows guided backpropagation: standardised over all
/// values, scaled by 0.1 around mid-grey, clipped. With `weights` (`height × width`, a
/// normalised CAM), each pixel's gradient is weighted first: Guided Grad-CAM.
pub fn gradient_image(
    gradients: &[f32],
    width: u32,
    height: u32,
    weights: Option<&[f32]>,
) -> RgbImage {
    let pixels = (width * height) as usize;
    assert_eq!(
        gradients.len(),
        3 * pixels,
        "three planes of width × height"
    );
    let values: Vec<f32> = match weights {
        Some(w) => gradients
            .iter()
            .enumerate()
            .map(|(i, g)| g * w[i % pixels])
            .collect(),
        None => gradients.to_vec(),
    };
    let n = values.len() as f32;
    let mean = values.iter().sum::<f32>() / n;
    let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
    let shown = |v: f32| {
        let v = ((v - mean) / (std + 1e-5) * 0.1 + 0.5).clamp(0.0, 1.0);
        (v * 255.0) as u8
    };
    RgbImage::from_fn(width, height, |x, y| {
        let at = (y * width + x) as usize;
        Rgb(std::array::from_fn(|c| shown(values[c * pixels + at])))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradients_are_shown_around_mid_grey() {
        // Values −1 and 1 (mean 0, std 1) become 0.5 ∓ 0.1/(1 + 1e-5), truncated to bytes as
        // NumPy's uint8 cast does; zero weights make it all grey.
        let gradients = [-1.0, 1.0, -1.0, 1.0, -1.0, 1.0];
        let picture = gradient_image(&gradients, 2, 1, None);
        assert_eq!(picture.get_pixel(0, 0).0, [102; 3]);
        assert_eq!(picture.get_pixel(1, 0).0, [152; 3]);
        let weighted = gradient_image(&gradients, 2, 1, Some(&[0.0, 0.0]));
        assert_eq!(weighted.get_pixel(1, 0).0, [127; 3]);
    }

    /// `scripts/make_colormap_fixture.py`'s table of `name`: OpenCV's colour for each byte.
    fn opencv_fixture(name: &str) -> Vec<[u8; 3]> {
        let text = include_str!("../tests/fixtures/opencv_colormaps.txt");
        let start = text
            .find(&format!("# {name}\n"))
            .expect("a table of that name");
        text[start..]
            .lines()
            .skip(1)
            .take(256)
            .map(|line| {
                let v: Vec<u8> = line.split(' ').map(|n| n.parse().unwrap()).collect();
                [v[0], v[1], v[2]]
            })
            .collect()
    }

    #[test]
    fn ocean_is_opencvs_table_entry_for_entry() {
        let opencv = opencv_fixture("ocean");
        for (level, want) in opencv.iter().enumerate() {
            let got = Colormap::Ocean.colour(level as f32 / 255.0);
            assert_eq!(got, *want, "level {level}");
        }
        // Known values: black, the blue third, green's rise, white.
        assert_eq!(Colormap::Ocean.colour(0.0), [0, 0, 0]);
        assert_eq!(opencv[170], [0, 128, 170]);
        assert_eq!(Colormap::Ocean.colour(1.0), [255, 255, 255]);
    }

    #[test]
    fn jet_is_opencvs_table_entry_for_entry() {
        for (level, want) in opencv_fixture("jet").iter().enumerate() {
            let got = Colormap::Jet.colour(level as f32 / 255.0);
            assert_eq!(got, *want, "level {level}");
        }
        assert_eq!(Colormap::Jet.colour(0.0), [0, 0, 128]);
        assert_eq!(Colormap::Jet.colour(1.0), [128, 0, 0]);
        assert_eq!(Colormap::Viridis.colour(0.0), [68, 1, 84]);
    }

    #[test]
    fn overlay_saturates() {
        let image = RgbImage::from_pixel(1, 1, Rgb([200, 10, 0]));
        let heat = RgbImage::from_pixel(1, 1, Rgb([255, 100, 0]));
        assert_eq!(
            superimpose(&image, &heat, 0.4).get_pixel(0, 0).0,
            [255, 50, 0]
        );
    }
}
