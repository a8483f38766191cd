//! Samples → tensors: optional augmentation, scaling to `[0, 1]`, per-channel normalisation,
//! HWC → CHW. Augmentation draws from `(seed, epoch, sample)` alone, so a batch is the same
//! whichever thread builds it and whether or not the run was resumed.

use burn::prelude::*;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::Sample;

/// `(pixel / 255 − mean) / std`, per RGB channel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// The ImageNet statistics torchvision models and the CIFAR ResNets expect.
    pub const IMAGENET: Normalization = Normalization {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
}

impl Default for Normalization {
    fn default() -> Self {
        Self::IMAGENET
    }
}

/// Random crops from a zero-padded image and horizontal flips (the CIFAR recipe), or random
/// resized crops and flips (the recipe for fine-tuning on photos).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Augmentation {
    /// Pixels of zero padding on each side before cropping back to size; 0 disables cropping.
    pub crop_padding: usize,
    /// Flip left–right with probability ½.
    pub horizontal_flip: bool,
    /// `[min, max]` share of the image's area a random crop keeps, stretched back to the full
    /// size (torchvision's `RandomResizedCrop`: aspect ratios from 3/4 to 4/3; its default
    /// share is `[0.08, 1.0]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub random_resized_crop: Option<[f32; 2]>,
}

impl Augmentation {
    pub fn is_identity(&self) -> bool {
        self.crop_padding == 0 && !self.horizontal_flip && self.random_resized_crop.is_none()
    }

    /// Why these settings cannot be used, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        match self.random_resized_crop {
            Some([low, high]) if !(0.0 < low && low <= high && high <= 1.0) => Err(format!(
                "augmentation.random_resized_crop is [min, max] with 0 < min ≤ max ≤ 1, got \
                 [{low}, {high}]"
            )),
            _ => Ok(()),
        }
    }

    /// An augmented copy of `pixels` (`height × width × 3`).
    pub fn apply(&self, pixels: &[u8], size: [usize; 2], rng: &mut StdRng) -> Vec<u8> {
        let cropped;
        let pixels = match self.random_resized_crop {
            Some(share) => {
                cropped = random_resized_crop(pixels, size, share, rng);
                &cropped
            }
            None => pixels,
        };
        self.shift_and_flip(pixels, size, rng)
    }

    fn shift_and_flip(
        &self,
        pixels: &[u8],
        [height, width]: [usize; 2],
        rng: &mut StdRng,
    ) -> Vec<u8> {
        let pad = self.crop_padding as i64;
        let (dy, dx) = if pad > 0 {
            (
                rng.random_range(-pad..=pad) as isize,
                rng.random_range(-pad..=pad) as isize,
            )
        } else {
            (0, 0)
        };
        let flip = self.horizontal_flip && rng.random_bool(0.5);
        let mut out = vec![0u8; pixels.len()];
        for y in 0..height {
            let sy = y as isize + dy;
            if !(0..height as isize).contains(&sy) {
                continue;
            }
            for x in 0..width {
                let fx = if flip { width - 1 - x } else { x };
                let sx = fx as isize + dx;
                if !(0..width as isize).contains(&sx) {
                    continue;
                }
                let src = (sy as usize * width + sx as usize) * 3;
                out[(y * width + x) * 3..][..3].copy_from_slice(&pixels[src..src + 3]);
            }
        }
        out
    }
}

/// A crop of a random share of the area and aspect ratio (3/4 to 4/3, drawn log-uniformly) at a
/// random place, resized back to `[height, width]` bilinearly. As torchvision, ten draws that
/// do not fit give way to the whole image.
fn random_resized_crop(
    pixels: &[u8],
    [height, width]: [usize; 2],
    [low, high]: [f32; 2],
    rng: &mut StdRng,
) -> Vec<u8> {
    let area = (height * width) as f32;
    let window = (0..10).find_map(|_| {
        let share = rng.random_range(low..=high);
        let ratio = rng.random_range((0.75f32).ln()..=(4.0f32 / 3.0).ln()).exp();
        let w = (area * share * ratio).sqrt().round() as usize;
        let h = (area * share / ratio).sqrt().round() as usize;
        (w >= 1 && h >= 1 && w <= width && h <= height).then(|| {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            (top, left, h, w)
        })
    });
    let (top, left, h, w) = window.unwrap_or((0, 0, height, width));
    resize_window(pixels, width, (top, left, h, w), [height, width])
}

/// The `(top, left, h, w)` window of an RGB image `width` pixels wide, resized to `size` by
/// bilinear interpolation between pixel centres (as `image`'s and PIL's resizes to a larger size).
fn resize_window(
    pixels: &[u8],
    width: usize,
    (top, left, h, w): (usize, usize, usize, usize),
    [out_h, out_w]: [usize; 2],
) -> Vec<u8> {
    let mut out = vec![0u8; out_h * out_w * 3];
    let source = |out_i: usize, out_n: usize, n: usize| {
        let x = ((out_i as f32 + 0.5) * n as f32 / out_n as f32 - 0.5).clamp(0.0, (n - 1) as f32);
        let i = (x.floor() as usize).min(n - 1);
        (i, (i + 1).min(n - 1), x - i as f32)
    };
    for y in 0..out_h {
        let (y0, y1, fy) = source(y, out_h, h);
        for x in 0..out_w {
            let (x0, x1, fx) = source(x, out_w, w);
            let at = |yy: usize, xx: usize, c: usize| {
                pixels[((top + yy) * width + left + xx) * 3 + c] as f32
            };
            for c in 0..3 {
                let upper = at(y0, x0, c) * (1.0 - fx) + at(y0, x1, c) * fx;
                let lower = at(y1, x0, c) * (1.0 - fx) + at(y1, x1, c) * fx;
                out[(y * out_w + x) * 3 + c] = (upper * (1.0 - fy) + lower * fy).round() as u8;
            }
        }
    }
    out
}

/// A batch ready for a model: `images` is `[n, 3, height, width]`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<usize>,
    pub dims: [usize; 4],
}

impl Batch {
    pub fn to_tensors<B: Backend>(&self, device: &B::Device) -> (Tensor<B, 4>, Tensor<B, 1, Int>) {
        let images = Tensor::from_data(TensorData::new(self.images.clone(), self.dims), device);
        let labels: Vec<i64> = self.labels.iter().map(|&l| l as i64).collect();
        let labels = Tensor::from_data(TensorData::new(labels, [self.labels.len()]), device);
        (images, labels)
    }
}

/// Turns samples into batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Batcher {
    pub image_size: [usize; 2],
    pub normalization: Normalization,
    pub augmentation: Augmentation,
    pub seed: u64,
}

impl Batcher {
    /// Builds one batch; `epoch` and each sample's index in its data set pick the augmentation.
    pub fn batch(&self, samples: &[(usize, &Sample)], epoch: usize) -> Batch {
        let [height, width] = self.image_size;
        let plane = height * width;
        let mut images = vec![0f32; samples.len() * 3 * plane];
        images
            .par_chunks_mut(3 * plane)
            .zip(samples.par_iter())
            .for_each(|(out, (index, sample))| {
                let augmented;
                let pixels = if self.augmentation.is_identity() {
                    &sample.pixels
                } else {
                    let mut rng = StdRng::seed_from_u64(self.augment_seed(epoch, *index));
                    augmented = self
                        .augmentation
                        .apply(&sample.pixels, self.image_size, &mut rng);
                    &augmented
                };
                self.normalize_into(pixels, out);
            });
        Batch {
            images,
            labels: samples.iter().map(|(_, s)| s.label).collect(),
            dims: [samples.len(), 3, height, width],
        }
    }

    /// HWC bytes → normalised CHW floats.
    pub fn normalize_into(&self, pixels: &[u8], out: &mut [f32]) {
        let plane = self.image_size[0] * self.image_size[1];
        let Normalization { mean, std } = self.normalization;
        for (p, rgb) in pixels.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + p] = (rgb[c] as f32 / 255.0 - mean[c]) / std[c];
            }
        }
    }

    fn augment_seed(&self, epoch: usize, index: usize) -> u64 {
        self.seed ^ ((epoch as u64) << 40) ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(pixels: Vec<u8>) -> Sample {
        Sample {
            pixels,
            label: 1,
            path: None,
            objects: vec![],
        }
    }

    #[test]
    fn normalises_to_chw() {
        let batcher = Batcher {
            image_size: [1, 2],
            normalization: Normalization {
                mean: [0.0, 0.5, 0.0],
                std: [1.0, 0.5, 2.0],
            },
            augmentation: Augmentation::default(),
            seed: 0,
        };
        let s = sample(vec![255, 255, 0, 0, 0, 255]);
        let batch = batcher.batch(&[(0, &s)], 0);
        assert_eq!(batch.dims, [1, 3, 1, 2]);
        assert_eq!(batch.images, vec![1.0, 0.0, 1.0, -1.0, 0.0, 0.5]);
        assert_eq!(batch.labels, vec![1]);
    }

    #[test]
    fn flip_and_shift_move_pixels_and_pad_with_zeros() {
        let pixels: Vec<u8> = (1..=12).collect(); // 2×2 image
        let flip = Augmentation {
            horizontal_flip: true,
            ..Default::default()
        };
        let mut seen = std::collections::HashSet::new();
        for seed in 0..20 {
            seen.insert(flip.apply(&pixels, [2, 2], &mut StdRng::seed_from_u64(seed)));
        }
        let flipped = vec![4, 5, 6, 1, 2, 3, 10, 11, 12, 7, 8, 9];
        assert_eq!(seen, [pixels.clone(), flipped].into_iter().collect());

        let crop = Augmentation {
            crop_padding: 1,
            ..Default::default()
        };
        for seed in 0..20 {
            let out = crop.apply(&pixels, [2, 2], &mut StdRng::seed_from_u64(seed));
            // Every output pixel is either an input pixel or zero padding.
            for rgb in out.chunks(3) {
                assert!(rgb == [0, 0, 0] || pixels.chunks(3).any(|p| p == rgb));
            }
        }
    }

    #[test]
    fn random_resized_crops_stay_inside_and_the_whole_image_is_kept() {
        // A 4×4 image whose red channel is the column, green the row: a crop resized back
        // shows columns and rows of one window, in order.
        let pixels: Vec<u8> = (0..16)
            .flat_map(|i| [(i % 4) as u8 * 10, (i / 4) as u8 * 10, 7])
            .collect();
        let whole = Augmentation {
            random_resized_crop: Some([1.0, 1.0]),
            ..Default::default()
        };
        // Area 1 with an aspect ratio off 1 does not fit a square: the whole image, unchanged.
        let mut rng = StdRng::seed_from_u64(3);
        assert_eq!(whole.apply(&pixels, [4, 4], &mut rng), pixels);
        let small = Augmentation {
            random_resized_crop: Some([0.2, 0.5]),
            ..Default::default()
        };
        for seed in 0..20 {
            let out = small.apply(&pixels, [4, 4], &mut StdRng::seed_from_u64(seed));
            for row in out.chunks(12) {
                let reds: Vec<u8> = row.chunks(3).map(|p| p[0]).collect();
                assert!(reds.windows(2).all(|w| w[0] <= w[1]), "{reds:?}");
            }
            assert!(out.chunks(3).all(|p| p[2] == 7 && p[0] <= 30 && p[1] <= 30));
        }
        assert!(
            Augmentation {
                random_resized_crop: Some([0.5, 0.2]),
                ..Default::default()
            }
            .check()
            .is_err()
        );
    }

    #[test]
    fn bilinear_resizing_of_a_window_keeps_a_gradient_a_gradient() {
        // One row 0, 100, 200 (grey) to five columns: ends kept, the middle interpolated.
        let pixels: Vec<u8> = [0u8, 100, 200].iter().flat_map(|&v| [v, v, v]).collect();
        let out = resize_window(&pixels, 3, (0, 0, 1, 3), [1, 5]);
        let reds: Vec<u8> = out.chunks(3).map(|p| p[0]).collect();
        assert_eq!(reds, [0, 40, 100, 160, 200]);
    }

    #[test]
    fn augmentation_depends_only_on_seed_epoch_and_index() {
        let batcher = Batcher {
            image_size: [4, 4],
            normalization: Normalization::IMAGENET,
            augmentation: Augmentation {
                crop_padding: 2,
                horizontal_flip: true,
                ..Default::default()
            },
            seed: 9,
        };
        let samples: Vec<Sample> = (0..8)
            .map(|i| sample((0..48).map(|p| (p * 5 + i) as u8).collect()))
            .collect();
        let all: Vec<_> = samples.iter().enumerate().collect();
        let whole = batcher.batch(&all, 3);
        let tail = batcher.batch(&all[4..], 3);
        assert_eq!(&whole.images[4 * 48..], &tail.images[..]);
        assert_ne!(whole.images, batcher.batch(&all, 4).images);
    }
}
