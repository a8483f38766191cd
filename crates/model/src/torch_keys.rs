//! How the PyTorch `state_dict` keys of each architecture map to this crate's module paths:
//! `(regex, replacement)` pairs for burn-store's `KeyRemapper`. The patterns are applied one
//! after another, so no replacement may produce a key that a later pattern matches.

use crate::{Architecture, VggConfig};

impl Architecture {
    /// Rewrites from the reference implementation's keys (torchvision, the CIFAR ResNet
    /// reference, the EfficientNet-Lite package) to module paths. BatchNorm's `weight`/`bias`
    /// and Linear's layout are the adapter's job, not this list's.
    pub fn torch_key_patterns(&self) -> Vec<(String, String)> {
        let pairs: &[(&str, &str)] = match self {
            Architecture::TutorialCnn(_) | Architecture::CifarResnet(_) | Architecture::Onnx(_) => {
                &[]
            }
            Architecture::Vgg(config) => return vgg_patterns(config),
            Architecture::MobilenetV2(config) => return crate::mobilenet::torch_patterns(config),
            Architecture::MobilenetV3Large(config) => {
                return crate::mobilenet_v3::torch_patterns(config);
            }
            Architecture::Convnext(config) => return crate::convnext::torch_patterns(config),
            Architecture::Vit(_) => return crate::vit::torch_patterns(),
            Architecture::Swin(config) => return crate::swin::torch_patterns(config),
            Architecture::Densenet(config) => return crate::densenet::torch_patterns(config),
            Architecture::Resnet(_) => &[
                (r"\.downsample\.0\.", ".downsample.conv."),
                (r"\.downsample\.1\.", ".downsample.bn."),
            ],
            Architecture::EfficientnetLite(_) => &[
                (r"^_conv_stem\.", "stem."),
                (r"^_bn0\.", "stem_bn."),
                (r"^_conv_head\.", "head."),
                (r"^_bn1\.", "head_bn."),
                (r"^_fc\.", "fc."),
                (r"^_blocks\.(\d+)\._expand_conv\.", "blocks.$1.expand."),
                (r"^_blocks\.(\d+)\._bn0\.", "blocks.$1.expand_bn."),
                (
                    r"^_blocks\.(\d+)\._depthwise_conv\.",
                    "blocks.$1.depthwise.",
                ),
                (r"^_blocks\.(\d+)\._bn1\.", "blocks.$1.depthwise_bn."),
                (r"^_blocks\.(\d+)\._project_conv\.", "blocks.$1.project."),
                (r"^_blocks\.(\d+)\._bn2\.", "blocks.$1.project_bn."),
            ],
        };
        pairs
            .iter()
            .map(|&(from, to)| (from.to_string(), to.to_string()))
            .collect()
    }
}

/// `features.<t>` (sparse: ReLU and pools have no weights) → `layers.<i>.conv|bn`, and
/// `classifier.{0,3,6}` (dropout between) → `head.{0,1,2}`.
fn vgg_patterns(config: &VggConfig) -> Vec<(String, String)> {
    let mut patterns = Vec::new();
    for (i, t) in config.torch_feature_indices().into_iter().enumerate() {
        patterns.push((format!(r"^features\.{t}\."), format!("layers.{i}.conv.")));
        if config.batch_norm {
            patterns.push((
                format!(r"^features\.{}\.", t + 1),
                format!("layers.{i}.bn."),
            ));
        }
    }
    for (i, t) in [0, 3, 6].into_iter().enumerate() {
        patterns.push((format!(r"^classifier\.{t}\."), format!("head.{i}.")));
    }
    patterns
}
