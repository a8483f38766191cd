//! The one list of architectures a config can name, and how each is built.

use std::path::Path;

use burn::prelude::*;
use kernels::Kernels;
use serde::{Deserialize, Serialize};

use crate::{
    CifarResNetConfig, ConvNextConfig, DenseNetConfig, EfficientNetLiteConfig, Head,
    MobileNetV2Config, MobileNetV3Config, Network, OnnxNetwork, ResNetConfig, SwinConfig,
    TutorialCnnConfig, VggConfig, VitConfig,
};

/// An architecture and its widths, as written in a config's `[model]` table:
/// `name = "tutorial_cnn"`, `"cifar_resnet"`, `"vgg"`, `"resnet"` or `"efficientnet_lite"`
/// plus that architecture's own keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Architecture {
    TutorialCnn(TutorialCnnConfig),
    CifarResnet(CifarResNetConfig),
    Vgg(VggConfig),
    Resnet(ResNetConfig),
    EfficientnetLite(EfficientNetLiteConfig),
    MobilenetV2(MobileNetV2Config),
    MobilenetV3Large(MobileNetV3Config),
    Densenet(DenseNetConfig),
    Convnext(ConvNextConfig),
    Vit(VitConfig),
    Swin(SwinConfig),
    /// A network read from an ONNX file (`name = "onnx"` with `weights = FILE`): the file is
    /// the architecture, so it has no keys of its own.
    Onnx(OnnxConfig),
}

/// The keys of `name = "onnx"`: none, the graph comes from the weights file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxConfig {}

/// The names `--arch` accepts, as torchvision and the CIFAR ResNet papers spell them.
pub const PRETRAINED_NAMES: &str = "vgg11, vgg13, vgg16, vgg19 (and _bn), resnet18, resnet34, \
resnet50, resnet101, resnet152, resnet20, resnet32, resnet44, resnet56, resnet110, \
efficientnet_lite0, mobilenet_v2, mobilenet_v3_large, densenet121, densenet161, densenet169, densenet201, convnext_tiny, convnext_small, \
convnext_base, convnext_large, vit_b_16, vit_b_32, vit_l_16, vit_l_32, swin_t, swin_s, swin_b";

impl Architecture {
    /// The published architecture called `name` (`vgg19_bn`, `resnet50`, `resnet20`, ...).
    pub fn from_name(name: &str) -> Option<Architecture> {
        if let Some(rest) = name.strip_prefix("vgg") {
            let (depth, batch_norm) = match rest.strip_suffix("_bn") {
                Some(depth) => (depth, true),
                None => (rest, false),
            };
            let config = VggConfig {
                depth: depth.parse().ok()?,
                batch_norm,
                ..Default::default()
            };
            return config.convs_per_stage().map(|_| Architecture::Vgg(config));
        }
        if let Some(depth) = name.strip_prefix("resnet") {
            let depth: usize = depth.parse().ok()?;
            let imagenet = ResNetConfig {
                depth,
                ..Default::default()
            };
            let cifar = CifarResNetConfig {
                depth,
                ..Default::default()
            };
            return if imagenet.stages().is_some() {
                Some(Architecture::Resnet(imagenet))
            } else {
                cifar
                    .blocks_per_stage()
                    .map(|_| Architecture::CifarResnet(cifar))
            };
        }
        match name {
            "onnx" => Some(Architecture::Onnx(OnnxConfig {})),
            "efficientnet_lite0" => Some(Architecture::EfficientnetLite(Default::default())),
            "mobilenet_v2" => Some(Architecture::MobilenetV2(Default::default())),
            "mobilenet_v3_large" => Some(Architecture::MobilenetV3Large(Default::default())),
            _ if name.starts_with("swin_") => {
                SwinConfig::published(&name["swin_".len()..]).map(Architecture::Swin)
            }
            _ if name.starts_with("vit_") => {
                VitConfig::published(&name["vit_".len()..]).map(Architecture::Vit)
            }
            _ if name.starts_with("convnext_") => {
                ConvNextConfig::published(&name["convnext_".len()..]).map(Architecture::Convnext)
            }
            _ => name
                .strip_prefix("densenet")
                .and_then(|depth| DenseNetConfig::published(depth.parse().ok()?))
                .map(Architecture::Densenet),
        }
    }
}

/// Everything needed to rebuild a model before loading its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub architecture: Architecture,
    pub num_classes: usize,
    /// Softmax over `num_classes` logits, or one sigmoid output for two classes.
    #[serde(default)]
    pub head: Head,
    /// Input channels (3 for RGB).
    pub channels: usize,
    /// Input `[height, width]`.
    pub image_size: [usize; 2],
}

impl ModelSpec {
    /// Rejects specs that cannot be built, with a message that says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.num_classes < 2 {
            return Err(format!(
                "a classifier needs at least 2 classes, got {}",
                self.num_classes
            ));
        }
        if self.head == Head::Binary && self.num_classes != 2 {
            return Err(format!(
                "a binary head classifies 2 classes, the data has {}",
                self.num_classes
            ));
        }
        if self.channels == 0 {
            return Err("images need at least one channel".into());
        }
        match &self.architecture {
            Architecture::TutorialCnn(cfg) => {
                let min = cfg.min_side();
                if self.image_size.iter().any(|&s| s < min) {
                    return Err(format!(
                        "tutorial_cnn with kernels {:?} needs images of at least {min}×{min}, got {:?}",
                        cfg.kernel_sizes, self.image_size
                    ));
                }
                if cfg.kernel_sizes.contains(&0)
                    || cfg.conv_channels.contains(&0)
                    || cfg.hidden.contains(&0)
                {
                    return Err(
                        "tutorial_cnn kernel sizes, channels and hidden sizes must be positive"
                            .into(),
                    );
                }
            }
            Architecture::CifarResnet(cfg) => {
                if cfg.blocks_per_stage().is_none() {
                    return Err(format!(
                        "cifar_resnet depth must be 6n + 2 (20, 32, 44, 56, 110), got {}",
                        cfg.depth
                    ));
                }
                if cfg.width == 0 || cfg.width % 2 != 0 {
                    return Err(format!(
                        "cifar_resnet width must be even and positive, got {}",
                        cfg.width
                    ));
                }
            }
            Architecture::Vgg(cfg) => {
                if cfg.convs_per_stage().is_none() {
                    return Err(format!(
                        "vgg depth must be 11, 13, 16 or 19, got {}",
                        cfg.depth
                    ));
                }
                if cfg.width == 0 || cfg.hidden == 0 {
                    return Err("vgg width and hidden must be positive".into());
                }
            }
            Architecture::Resnet(cfg) => {
                if cfg.stages().is_none() {
                    return Err(format!(
                        "resnet depth must be 18, 34, 50, 101 or 152, got {}",
                        cfg.depth
                    ));
                }
                if cfg.width == 0 {
                    return Err("resnet width must be positive".into());
                }
            }
            Architecture::EfficientnetLite(cfg) => {
                if cfg.channel_divisor == 0 {
                    return Err("efficientnet_lite channel_divisor must be positive".into());
                }
            }
            Architecture::Densenet(cfg) => {
                if cfg.growth_rate == 0 || cfg.num_init_features == 0 || cfg.bn_size == 0 {
                    return Err(
                        "densenet growth_rate, num_init_features and bn_size must be positive"
                            .into(),
                    );
                }
            }
            Architecture::MobilenetV2(cfg) => {
                if !(cfg.width_mult > 0.0 && cfg.width_mult <= 8.0) {
                    return Err(format!(
                        "mobilenet_v2 width_mult must be in (0, 8], got {}",
                        cfg.width_mult
                    ));
                }
            }
            Architecture::Swin(cfg) => cfg.validate()?,
            Architecture::Vit(cfg) => {
                cfg.validate()?;
                if self.image_size != [cfg.image_size, cfg.image_size] {
                    return Err(format!(
                        "vit takes {0}×{0} images (its position embeddings fix the size), got {1:?}",
                        cfg.image_size, self.image_size
                    ));
                }
            }
            Architecture::Onnx(_) => {}
            Architecture::Convnext(cfg) => {
                if cfg.dims.contains(&0) || cfg.depths.contains(&0) {
                    return Err("convnext dims and depths must be positive".into());
                }
            }
            Architecture::MobilenetV3Large(cfg) => {
                if !(cfg.width_mult > 0.0 && cfg.width_mult <= 8.0) {
                    return Err(format!(
                        "mobilenet_v3_large width_mult must be in (0, 8], got {}",
                        cfg.width_mult
                    ));
                }
            }
        }
        Ok(())
    }

    /// Builds a freshly initialised model.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Network<B>, String> {
        self.validate()?;
        let outputs = self.head.outputs(self.num_classes);
        Ok(match &self.architecture {
            Architecture::TutorialCnn(cfg) => {
                Network::TutorialCnn(cfg.init(self.channels, self.image_size, outputs, device))
            }
            Architecture::CifarResnet(cfg) => {
                Network::CifarResnet(cfg.init(self.channels, outputs, device))
            }
            Architecture::Vgg(cfg) => Network::Vgg(cfg.init(self.channels, outputs, device)),
            Architecture::Resnet(cfg) => Network::Resnet(cfg.init(self.channels, outputs, device)),
            Architecture::EfficientnetLite(cfg) => {
                Network::EfficientnetLite(cfg.init(self.channels, outputs, device))
            }
            Architecture::MobilenetV2(cfg) => {
                Network::MobilenetV2(cfg.init(self.channels, outputs, device))
            }
            Architecture::MobilenetV3Large(cfg) => {
                Network::MobilenetV3Large(cfg.init(self.channels, outputs, device))
            }
            Architecture::Densenet(cfg) => {
                Network::Densenet(cfg.init(self.channels, outputs, device))
            }
            Architecture::Convnext(cfg) => {
                Network::Convnext(cfg.init(self.channels, outputs, device))
            }
            Architecture::Vit(cfg) => Network::Vit(cfg.init(self.channels, outputs, device)),
            Architecture::Swin(cfg) => Network::Swin(cfg.init(self.channels, outputs, device)),
            Architecture::Onnx(_) => {
                return Err(
                    "an ONNX network is built from its file: give model.weights (or --weights) \
                     the .onnx file"
                        .into(),
                );
            }
        })
    }

    /// The network in the ONNX file `file` shaped for this spec: for its image size, and with a
    /// fresh classifier where the file's outputs are not the spec's (a run's checkpoint then
    /// fills in the weights).
    pub fn init_onnx<B: Kernels>(
        &self,
        file: &Path,
        device: &B::Device,
    ) -> Result<Network<B>, String> {
        self.validate()?;
        let network = OnnxNetwork::<B>::load(file, Some(self.image_size), device)
            .map_err(|e| e.to_string())?;
        let outputs = self.head.outputs(self.num_classes);
        if network.outputs() == outputs {
            return Ok(Network::Onnx(network));
        }
        Network::Onnx(network).with_new_classifier(outputs, device)
    }
}
