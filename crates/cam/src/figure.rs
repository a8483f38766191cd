//! Maps as pictures: a colormap turns a normalised map into a heatmap, and the heatmap is laid
//! over the image as the Grad-CAM tutorial does (`alpha · heat + image`, saturated at 255).

use image::{Rgb, RgbImage};

/// How map values in [0, 1] become colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Colormap {
    /// Matplotlib's jet: dark blue → blue → cyan → yellow → red → dark red (OpenCV's
    /// `COLORMAP_JET`, used by the tutorial and pytorch-grad-cam, follows the same segments).
    #[default]
    Jet,
    Turbo,
    Viridis,
    Inferno,
}

impl std::str::FromStr for Colormap {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jet" => Ok(Colormap::Jet),
            "turbo" => Ok(Colormap::Turbo),
            "viridis" => Ok(Colormap::Viridis),
            "inferno" => Ok(Colormap::Inferno),
            _ => Err(format!(
                "unknown colormap `{s}`: jet, turbo, viridis or inferno"
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
            Colormap::Jet => return jet(t),
            Colormap::Turbo => colorous::TURBO,
            Colormap::Viridis => colorous::VIRIDIS,
            Colormap::Inferno => colorous::INFERNO,
        };
        scheme.eval_continuous(t).as_array()
    }
}

/// Jet from its defining segments (matplotlib's `_jet_data`): each channel is piecewise
/// linear between these (position, value) points.
fn jet(t: f64) -> [u8; 3] {
    const RED: [(f64, f64); 5] = [
        (0.0, 0.0),
        (0.35, 0.0),
        (0.66, 1.0),
        (0.89, 1.0),
        (1.0, 0.5),
    ];
    const GREEN: [(f64, f64); 6] = [
        (0.0, 0.0),
        (0.125, 0.0),
        (0.375, 1.0),
        (0.64, 1.0),
        (0.91, 0.0),
        (1.0, 0.0),
    ];
    const BLUE: [(f64, f64); 5] = [
        (0.0, 0.5),
        (0.11, 1.0),
        (0.34, 1.0),
        (0.65, 0.0),
        (1.0, 0.0),
    ];
    let channel = |points: &[(f64, f64)]| {
        let value = points
            .windows(2)
            .find(|w| t <= w[1].0)
            .map(|w| w[0].1 + (w[1].1 - w[0].1) * (t - w[0].0) / (w[1].0 - w[0].0))
            .unwrap_or(points[points.len() - 1].1);
        (value * 255.0).round() as u8
    };
    [channel(&RED), channel(&GREEN), channel(&BLUE)]
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

    #[test]
    fn jet_runs_from_dark_blue_through_green_to_dark_red() {
        assert_eq!(Colormap::Jet.colour(0.0), [0, 0, 128]);
        // 0.5 falls on level 127 = 0.498: red (0.498 − 0.35) / 0.31, blue 1 − (0.498 − 0.34) / 0.31.
        assert_eq!(Colormap::Jet.colour(0.5), [122, 255, 125]);
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
