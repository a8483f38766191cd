//! The CNN architectures of the workspace, each split into a **features** part (image → the
//! activation map of the last conv layer) and a **classifier** part (that map → logits).
//!
//! `train` fits `classifier ∘ features`; `cam` takes the gradient of a class score with respect
//! to the features' output. This crate knows nothing about data sets, files or command lines.

mod architecture;
mod cifar_resnet;
mod error;
mod network;
mod norm;
mod split;
mod tutorial_cnn;

pub use architecture::{Architecture, ModelSpec};
pub use cifar_resnet::{BasicBlock, CifarResNet, CifarResNetConfig};
pub use error::ShapeError;
pub use network::Network;
pub use norm::batch_norm;
pub use split::{InputShape, SplitModel};
pub use tutorial_cnn::{TutorialCnn, TutorialCnnConfig};
