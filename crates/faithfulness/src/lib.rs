//! Does a saliency map say what the model uses? Perturbation metrics over any model given as a
//! function from a batch of preprocessed images `[n, c, h, w]` to class probabilities
//! `[n, classes]`, and any maps in [0, 1] at the image's resolution. Protocols are stated with
//! each function; baselines (`baselines`) make the numbers mean something.

pub mod arcc;
pub mod baselines;
mod confidence;
mod deletion;
pub mod road;
pub mod sanity;

pub use arcc::{ARCC_ROAD_PERCENTILES, arcc, coherency, complexity};
pub use confidence::{Confidence, ConfidenceChange, average_drop_and_increase, confidence_changes};
pub use deletion::{Curves, deletion_insertion};
pub use road::{PERCENTILES as ROAD_PERCENTILES, Road, road, road_with_noise};
