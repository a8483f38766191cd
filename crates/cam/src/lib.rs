//! Class activation maps of split models: capture a layer's activation A (by default the last
//! conv layer's) and the gradient of a class score with respect to it, weight the channels,
//! and post-process the map; fuse maps of several layers; guided backpropagation to the image.
//!
//! Each method is a small pure function of (activations, gradients); capture and
//! post-processing exist once. This crate knows nothing about files or command lines.

mod capture;
pub mod concepts;
pub mod figure;
pub mod full_grad;
pub mod fusion;
pub mod guided;
pub mod methods;
pub mod postprocess;
pub mod sess;
mod shapley;
pub mod smoothing;

pub use capture::{
    Capture, CaptureError, FINER_ALPHA, FINER_COMPARISONS, NoisyGradients, Score, Target, capture,
    capture_at, capture_finer, capture_scored, capture_scored_each, capture_smoothed,
    capture_without_gradients, capture_without_gradients_each,
};
pub use fusion::{fuse_layers, multiply_layers};
pub use guided::{GuidedBackend, guided_backprop, guided_cam};
pub use methods::{Method, grad_cam, grad_cam_weights};
pub use shapley::{SHAPLEY_STEP, capture_shapley};
