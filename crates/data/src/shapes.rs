//! The embedded synthetic data set: one coloured shape on a noisy background, with the shape's
//! box recorded so that a saliency map's localisation can be scored.
//!
//! It is built so that only the shape's outline tells the class: the object's hue, the
//! background's colour and the object's size and place are drawn independently of the class,
//! and the area ranges of the classes overlap. Objects are always brighter than the
//! background, so one contrast polarity suffices and a small network learns it in minutes.
//! Every image depends only on `(seed, index)`, so the set is the same on every machine and can
//! be generated in parallel.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

use crate::{BoundingBox, ImageSet, Sample};

/// The classes, in label order.
pub const CLASS_NAMES: [&str; 4] = ["circle", "square", "triangle", "cross"];

/// Images of `count` single shapes, `side × side` pixels.
pub fn generate(count: usize, side: usize, seed: u64) -> ImageSet {
    build(count, side, seed, 1)
}

/// Images with two shapes of different classes each; the label is the first shape's class.
pub fn generate_pairs(count: usize, side: usize, seed: u64) -> ImageSet {
    build(count, side, seed, 2)
}

fn build(count: usize, side: usize, seed: u64, objects: usize) -> ImageSet {
    assert!(
        side >= 16,
        "synthetic shapes need images of at least 16×16 pixels"
    );
    let samples = (0..count)
        .into_par_iter()
        .map(|i| render(side, seed, i as u64, objects))
        .collect();
    ImageSet {
        samples,
        class_names: CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
        image_size: [side, side],
    }
}

/// One image: background, then `objects` non-overlapping shapes of distinct classes.
fn render(side: usize, seed: u64, index: u64, objects: usize) -> Sample {
    let mut rng = StdRng::seed_from_u64(mix(seed, index));
    let background: [f32; 3] = std::array::from_fn(|_| rng.random_range(30.0..120.0));
    let mut pixels: Vec<u8> = (0..side * side * 3)
        .map(|i| (background[i % 3] + rng.random_range(-30.0f32..30.0)).clamp(0.0, 255.0) as u8)
        .collect();

    let mut placed: Vec<(usize, BoundingBox)> = Vec::new();
    while placed.len() < objects {
        let class = rng.random_range(0..CLASS_NAMES.len());
        if placed.iter().any(|(c, _)| *c == class) {
            continue;
        }
        let shape = Shape::random(class, side, objects, &mut rng);
        if placed.iter().any(|(_, b)| overlaps(b, &shape.frame())) {
            continue;
        }
        let colour = contrasting_colour(background, &mut rng);
        let bbox = shape.paint(&mut pixels, side, colour);
        placed.push((class, bbox));
    }
    Sample {
        pixels,
        label: placed[0].0,
        path: None,
        objects: placed,
    }
}

/// A shape of class `class` centred at `(cx, cy)` with half-size `r`, in pixels.
struct Shape {
    class: usize,
    cx: f32,
    cy: f32,
    r: f32,
}

impl Shape {
    fn random(class: usize, side: usize, objects: usize, rng: &mut StdRng) -> Shape {
        // Half-sizes 16%–25% of the side for one object, smaller when two must fit.
        let scale = side as f32 / if objects > 1 { 1.4 } else { 1.0 };
        let r = rng.random_range(0.16 * scale..0.25 * scale);
        let margin = r + 1.0;
        let cx = rng.random_range(margin..side as f32 - margin);
        let cy = rng.random_range(margin..side as f32 - margin);
        Shape { class, cx, cy, r }
    }

    /// The square the shape is drawn in, with a pixel of room around it.
    fn frame(&self) -> BoundingBox {
        let lo = |c: f32| (c - self.r - 1.0).max(0.0) as usize;
        let hi = |c: f32| (c + self.r + 2.0) as usize;
        BoundingBox {
            x0: lo(self.cx),
            y0: lo(self.cy),
            x1: hi(self.cx),
            y1: hi(self.cy),
        }
    }

    /// Whether the pixel centre `(x, y)` lies inside the shape.
    fn covers(&self, x: f32, y: f32) -> bool {
        let (dx, dy, r) = (x - self.cx, y - self.cy, self.r);
        match self.class {
            0 => dx * dx + dy * dy <= r * r,
            1 => dx.abs() <= r * 0.85 && dy.abs() <= r * 0.85,
            // An upward triangle: apex at the top, base at the bottom.
            2 => dy <= r && dy >= -r && dx.abs() <= (dy + r) / 2.0,
            _ => (dx.abs() <= r / 3.0 && dy.abs() <= r) || (dy.abs() <= r / 3.0 && dx.abs() <= r),
        }
    }

    /// Paints the shape and returns the tight box of the painted pixels.
    fn paint(&self, pixels: &mut [u8], side: usize, colour: [u8; 3]) -> BoundingBox {
        let mut bbox = BoundingBox {
            x0: side,
            y0: side,
            x1: 0,
            y1: 0,
        };
        for y in 0..side {
            for x in 0..side {
                if self.covers(x as f32 + 0.5, y as f32 + 0.5) {
                    pixels[(y * side + x) * 3..][..3].copy_from_slice(&colour);
                    bbox = BoundingBox {
                        x0: bbox.x0.min(x),
                        y0: bbox.y0.min(y),
                        x1: bbox.x1.max(x + 1),
                        y1: bbox.y1.max(y + 1),
                    };
                }
            }
        }
        bbox
    }
}

/// A random hue, brighter than the background by a clear margin.
fn contrasting_colour(background: [f32; 3], rng: &mut StdRng) -> [u8; 3] {
    let floor = background.iter().sum::<f32>() / 3.0 + 60.0;
    loop {
        let colour: [u8; 3] = std::array::from_fn(|_| rng.random_range(0..=255u8));
        let brightness = colour.iter().map(|&c| c as f32).sum::<f32>() / 3.0;
        if brightness >= floor && colour.iter().any(|&c| c >= 200) {
            return colour;
        }
    }
}

fn overlaps(a: &BoundingBox, b: &BoundingBox) -> bool {
    a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1
}

/// SplitMix64 of the seed and index: neighbouring indices get unrelated streams.
fn mix(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_images_other_seed_other_images() {
        let a = generate(16, 32, 1);
        assert_eq!(a, generate(16, 32, 1));
        assert_ne!(a.samples, generate(16, 32, 2).samples);
        // Generation order does not matter: a longer set starts with the shorter one.
        assert_eq!(a.samples[..], generate(24, 32, 1).samples[..16]);
    }

    #[test]
    fn every_class_appears_and_boxes_hold_the_object_colour() {
        let set = generate(200, 32, 3);
        assert!(
            set.class_counts().iter().all(|&n| n > 25),
            "{:?}",
            set.class_counts()
        );
        for s in &set.samples {
            let (class, b) = s.objects[0];
            assert_eq!(class, s.label);
            assert!(b.x0 < b.x1 && b.y0 < b.y1 && b.x1 <= 32 && b.y1 <= 32);
            let w = b.x1 - b.x0;
            assert!((5..=18).contains(&w), "box width {w}");
        }
    }

    #[test]
    fn pairs_hold_two_different_classes_in_separate_boxes() {
        let set = generate_pairs(50, 48, 4);
        for s in &set.samples {
            let [(c0, b0), (c1, b1)] = s.objects[..] else {
                panic!("two objects expected")
            };
            assert_ne!(c0, c1);
            assert!(!overlaps(&b0, &b1));
        }
    }

    #[test]
    fn object_colour_says_nothing_about_the_class() {
        // Mean brightness of the object per class: all classes within a narrow band.
        let set = generate(2000, 32, 5);
        let mut sums = [(0.0f64, 0usize); 4];
        for s in &set.samples {
            let b = s.objects[0].1;
            let p = ((b.y0 + b.y1) / 2 * 32 + (b.x0 + b.x1) / 2) * 3;
            let v: f64 = s.pixels[p..p + 3].iter().map(|&x| x as f64).sum::<f64>() / 3.0;
            sums[s.label].0 += v;
            sums[s.label].1 += 1;
        }
        let means: Vec<f64> = sums.iter().map(|(s, n)| s / *n as f64).collect();
        let spread = means.iter().cloned().fold(f64::MIN, f64::max)
            - means.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread < 20.0, "class colour means {means:?}");
    }
}
