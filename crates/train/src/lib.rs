//! Training of the workspace's split CNNs: configs, data preparation, the loop, and the run
//! folder that `explain` reads back. The `train` binary is a thin command line over this.

pub mod config;
pub mod dataset;
pub mod device;
mod error;
pub mod fit;
pub mod parallel;
pub mod report;
pub mod rescore;
pub mod run_dir;
pub mod tensorboard;
pub mod transfer;

pub use config::{Overrides, TrainConfig};
pub use device::{DeviceChoice, OnBackend};
pub use error::TrainError;
pub use fit::{Evaluation, Observer, Summary, evaluate, fit, fit_parallel};
pub use run_dir::{EpochMetrics, RunDir, Weights};
