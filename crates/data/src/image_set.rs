use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// An object's box in pixels of the stored image: `x0..x1` × `y0..y1`, end-exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundingBox {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

impl BoundingBox {
    pub fn contains(&self, x: usize, y: usize) -> bool {
        (self.x0..self.x1).contains(&x) && (self.y0..self.y1).contains(&y)
    }
}

/// One image, RGB, row-major `height × width × 3`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub pixels: Vec<u8>,
    pub label: usize,
    /// The file it was decoded from, when there is one.
    pub path: Option<PathBuf>,
    /// Boxes of the objects in the image, when known (the synthetic data), one per object.
    pub objects: Vec<(usize, BoundingBox)>,
}

/// Images of one size with their class names.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    pub samples: Vec<Sample>,
    pub class_names: Vec<String>,
    /// `[height, width]` of every sample.
    pub image_size: [usize; 2],
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples at `indices`, as a new set.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        ImageSet {
            samples: indices.iter().map(|&i| self.samples[i].clone()).collect(),
            class_names: self.class_names.clone(),
            image_size: self.image_size,
        }
    }

    /// How many samples each class has.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_names.len()];
        for s in &self.samples {
            counts[s.label] += 1;
        }
        counts
    }
}
