//! Where images come from and how they become tensors: the CIFAR-10 binary format, folders of
//! image files, an embedded synthetic data set with known object boxes, seeded splits,
//! CIFAR-style augmentation and batching.
//!
//! Every source yields the same [`ImageSet`]: RGB images already at the model's input size, so
//! training and explanation never decode a file twice. This crate knows nothing about models.

mod batch;
pub mod cifar;
pub mod digest;
mod error;
pub mod folder;
mod image_set;
mod progress;
pub mod shapes;
mod split;

pub use batch::{Augmentation, Batch, Batcher, Normalization};
pub use error::DataError;
pub use image_set::{BoundingBox, ImageSet, Sample};
pub use progress::Progress;
pub use split::split_indices;
