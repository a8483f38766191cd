//! The CNN architectures of the workspace, each split into a **features** part (image → the
//! activation map of the last conv layer) and a **classifier** part (that map → logits).
//!
//! `train` fits `classifier ∘ features`; `cam` takes the gradient of a class score with respect
//! to the features' output. This crate knows nothing about data sets, files or command lines.

mod architecture;
mod cifar_resnet;
mod convnext;
mod densenet;
mod efficientnet_lite;
mod error;
mod head;
mod mobilenet;
mod mobilenet_v3;
mod network;
mod norm;
mod onnx_network;
mod resnet;
mod split;
mod swin;
mod torch_keys;
mod transfer;
mod tutorial_cnn;
mod vgg;
mod vit;

pub use architecture::{Architecture, ModelSpec, OnnxConfig, PRETRAINED_NAMES};
pub use cifar_resnet::{BasicBlock, CifarResNet, CifarResNetConfig};
pub use convnext::{ConvNext, ConvNextBlock, ConvNextConfig};
pub use densenet::{DenseLayer, DenseNet, DenseNetConfig, Transition};
pub use efficientnet_lite::{EfficientNetLite, EfficientNetLiteConfig, MbConv};
pub use error::ShapeError;
pub use head::{Head, class_probabilities, class_scores, classification_loss};
pub use kernels::{AutodiffKernels, Kernels};
pub use mobilenet::{ConvBn, InvertedResidual, MobileNetV2, MobileNetV2Config};
pub use mobilenet_v3::{Block as MobileNetV3Block, MobileNetV3, MobileNetV3Config, SqueezeExcite};
pub use network::Network;
pub use norm::{batch_norm, biased_conv2d, conv_batch_norm};
pub use onnx_network::{Layer as OnnxLayer, OnnxError, OnnxNetwork};
pub use resnet::{Downsample, ResNet, ResNetConfig, ResidualBlock};
pub use split::{InputShape, PlainRelu, Rectifier, SplitModel, find_layer, global_average_pool};
pub use swin::{SwinBlock, SwinConfig, SwinTransformer};
pub use transfer::Trainable;
pub use tutorial_cnn::{TutorialCnn, TutorialCnnConfig};
pub use vgg::{Vgg, VggConfig, VggConv};
pub use vit::{EncoderBlock, VisionTransformer, VitConfig};
