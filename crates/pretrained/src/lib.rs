//! Pretrained PyTorch models for the architectures of `model`: read a weights file (zip or
//! legacy `.pth`, safetensors) without executing any pickle, strictly map its keys onto the
//! module, and say how the model wants its images and what its classes are called.

mod adapter;
mod error;
mod labels;
mod layout;
mod load;
mod preprocessing;
mod records;

pub use error::ImportError;
pub use labels::{class_names, imagenet_classes, read_labels};
pub use load::{Pretrained, load, read_state_dict};
pub use preprocessing::preprocessing;
