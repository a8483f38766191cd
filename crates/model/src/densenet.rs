//! DenseNet (Huang et al., 2017) as torchvision builds it: a 7×7 stem with max pooling, four
//! dense blocks whose layers (BatchNorm, ReLU, 1×1 conv, BatchNorm, ReLU, 3×3 conv) each add
//! `growth_rate` channels to everything before them, transitions (BatchNorm, ReLU, 1×1 conv
//! halving the channels, 2×2 average pool) between the blocks, and a last BatchNorm,
//! `features.norm5`, where the features end (pytorch-grad-cam's `features[-1]`); the
//! classifier is ReLU, global average pooling and `classifier`.
//!
//! Layers: `features.pool0` (the stem), `features.denseblockB.denselayerL` (its output is every
//! channel of the block so far, so `features.denseblockB` names the block's output),
//! `features.transitionB`, `features.norm5`.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::module::avg_pool2d;
use kernels::{Kernels, max_pool2d};
use serde::{Deserialize, Serialize};

use crate::norm::biased_conv2d;
use crate::transfer::{fresh_linear, trainable};
use crate::{InputShape, Rectifier, SplitModel, batch_norm, conv_batch_norm, global_average_pool};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DenseNetConfig {
    /// Channels each dense layer adds (32 for DenseNet-121).
    pub growth_rate: usize,
    /// Dense layers per block (`[6, 12, 24, 16]` for DenseNet-121).
    pub block_config: [usize; 4],
    /// Channels of the stem.
    pub num_init_features: usize,
    /// A dense layer's 1×1 convolution makes `bn_size · growth_rate` channels.
    pub bn_size: usize,
}

impl Default for DenseNetConfig {
    fn default() -> Self {
        Self::published(121).expect("DenseNet-121 is published")
    }
}

impl DenseNetConfig {
    /// torchvision's `densenet121`, `densenet161`, `densenet169` and `densenet201`.
    pub fn published(depth: usize) -> Option<Self> {
        let (growth_rate, block_config, num_init_features) = match depth {
            121 => (32, [6, 12, 24, 16], 64),
            161 => (48, [6, 12, 36, 24], 96),
            169 => (32, [6, 12, 32, 32], 64),
            201 => (32, [6, 12, 48, 32], 64),
            _ => return None,
        };
        Some(Self {
            growth_rate,
            block_config,
            num_init_features,
            bn_size: 4,
        })
    }

    pub fn init<B: Backend>(
        &self,
        channels: usize,
        num_classes: usize,
        device: &B::Device,
    ) -> DenseNet<B> {
        let mut features = self.num_init_features;
        let mut blocks = Vec::new();
        let mut transitions = Vec::new();
        for (b, &layers) in self.block_config.iter().enumerate() {
            let block: Vec<DenseLayer<B>> = (0..layers)
                .map(|l| {
                    let input = features + l * self.growth_rate;
                    DenseLayer::new(
                        input,
                        self.bn_size * self.growth_rate,
                        self.growth_rate,
                        device,
                    )
                })
                .collect();
            blocks.push(block);
            features += layers * self.growth_rate;
            if b + 1 < self.block_config.len() {
                transitions.push(Transition::new(features, features / 2, device));
                features /= 2;
            }
        }
        DenseNet {
            conv0: conv(channels, self.num_init_features, 7, 2, 3, device),
            norm0: BatchNormConfig::new(self.num_init_features).init(device),
            blocks,
            transitions,
            norm5: BatchNormConfig::new(features).init(device),
            classifier: LinearConfig::new(features, num_classes).init(device),
            channels,
        }
    }
}

fn conv<B: Backend>(
    input: usize,
    output: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    device: &B::Device,
) -> Conv2d<B> {
    Conv2dConfig::new([input, output], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_bias(false)
        .init(device)
}

/// BatchNorm, ReLU, 1×1 conv, BatchNorm, ReLU, 3×3 conv: `growth` new channels.
#[derive(Module, Debug)]
pub struct DenseLayer<B: Backend> {
    pub norm1: BatchNorm<B>,
    pub conv1: Conv2d<B>,
    pub norm2: BatchNorm<B>,
    pub conv2: Conv2d<B>,
}

impl<B: Backend> DenseLayer<B> {
    fn new(input: usize, bottleneck: usize, growth: usize, device: &B::Device) -> Self {
        Self {
            norm1: BatchNormConfig::new(input).init(device),
            conv1: conv(input, bottleneck, 1, 1, 0, device),
            norm2: BatchNormConfig::new(bottleneck).init(device),
            conv2: conv(bottleneck, growth, 3, 1, 1, device),
        }
    }
}

impl<B: Kernels> DenseLayer<B> {
    /// The input with the new channels after it.
    fn forward<R: Rectifier<B>>(&self, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        let h = relu.relu(batch_norm(&self.norm1, x.clone(), relu));
        let h = relu.relu(conv_batch_norm(&self.conv1, &self.norm2, h, relu));
        Tensor::cat(vec![x, biased_conv2d(&self.conv2, h, relu)], 1)
    }
}

/// BatchNorm, ReLU, 1×1 conv, 2×2 average pool.
#[derive(Module, Debug)]
pub struct Transition<B: Backend> {
    pub norm: BatchNorm<B>,
    pub conv: Conv2d<B>,
}

impl<B: Backend> Transition<B> {
    fn new(input: usize, output: usize, device: &B::Device) -> Self {
        Self {
            norm: BatchNormConfig::new(input).init(device),
            conv: conv(input, output, 1, 1, 0, device),
        }
    }
}

impl<B: Kernels> Transition<B> {
    fn forward<R: Rectifier<B>>(&self, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        let x = biased_conv2d(&self.conv, relu.relu(batch_norm(&self.norm, x, relu)), relu);
        avg_pool2d(x, [2, 2], [2, 2], [0, 0], true, false)
    }
}

#[derive(Module, Debug)]
pub struct DenseNet<B: Backend> {
    pub conv0: Conv2d<B>,
    pub norm0: BatchNorm<B>,
    pub blocks: Vec<Vec<DenseLayer<B>>>,
    pub transitions: Vec<Transition<B>>,
    pub norm5: BatchNorm<B>,
    pub classifier: Linear<B>,
    channels: usize,
}

/// What layer `index` of a DenseNet is.
enum Part {
    Stem,
    Dense(usize, usize),
    Transition(usize),
    Norm5,
}

impl<B: Backend> DenseNet<B> {
    /// The layers in order: the stem, each block's dense layers then its transition, norm5.
    fn parts(&self) -> Vec<Part> {
        let mut parts = vec![Part::Stem];
        for (b, block) in self.blocks.iter().enumerate() {
            parts.extend((0..block.len()).map(|l| Part::Dense(b, l)));
            if b < self.transitions.len() {
                parts.push(Part::Transition(b));
            }
        }
        parts.push(Part::Norm5);
        parts
    }

    pub(crate) fn with_new_classifier(self, outputs: usize, device: &B::Device) -> Self {
        let classifier = fresh_linear(&self.classifier, outputs, device);
        Self { classifier, ..self }
    }

    pub(crate) fn trained_from(self, first: usize) -> Self {
        let parts = self.parts();
        let index = |part: &dyn Fn(&Part) -> bool| {
            parts
                .iter()
                .position(part)
                .expect("every part has a layer index")
        };
        let trains = |i: usize| i >= first;
        let stem = trains(0);
        let norm5 = trains(parts.len() - 1);
        let blocks = self.blocks.into_iter().enumerate().map(|(b, block)| {
            let block = block.into_iter().enumerate();
            block
                .map(|(l, layer)| {
                    let at = index(&|p| matches!(p, Part::Dense(pb, pl) if *pb == b && *pl == l));
                    trainable(layer, trains(at))
                })
                .collect()
        });
        let blocks = blocks.collect();
        let transitions = self
            .transitions
            .into_iter()
            .enumerate()
            .map(|(t, transition)| {
                let at = index(&|p| matches!(p, Part::Transition(pt) if *pt == t));
                trainable(transition, trains(at))
            });
        Self {
            conv0: trainable(self.conv0, stem),
            norm0: trainable(self.norm0, stem),
            blocks,
            transitions: transitions.collect(),
            norm5: trainable(self.norm5, norm5),
            classifier: trainable(self.classifier, true),
            channels: self.channels,
        }
    }
}

impl<B: Kernels> SplitModel<B> for DenseNet<B> {
    fn architecture(&self) -> &'static str {
        "densenet"
    }

    fn input_shape(&self) -> InputShape {
        InputShape::AtLeast {
            channels: self.channels,
            min: 32,
        }
    }

    fn layer_names(&self) -> Vec<String> {
        self.parts()
            .iter()
            .map(|part| match part {
                Part::Stem => "features.pool0".to_string(),
                Part::Dense(b, l) => format!("features.denseblock{}.denselayer{}", b + 1, l + 1),
                Part::Transition(t) => format!("features.transition{}", t + 1),
                Part::Norm5 => "features.norm5".to_string(),
            })
            .collect()
    }

    fn layer<R: Rectifier<B>>(&self, index: usize, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        match self.parts().swap_remove(index) {
            Part::Stem => {
                let x = relu.relu(conv_batch_norm(&self.conv0, &self.norm0, x, relu));
                max_pool2d(x, [3, 3], [2, 2], [1, 1])
            }
            Part::Dense(b, l) => self.blocks[b][l].forward(x, relu),
            Part::Transition(t) => self.transitions[t].forward(x, relu),
            Part::Norm5 => batch_norm(&self.norm5, x, relu),
        }
    }

    /// The ReLU after norm5 is in place in torchvision: a hook on norm5 sees it applied.
    fn hooked_activations(&self, index: usize, output: Tensor<B, 4>) -> Tensor<B, 4> {
        match index == self.last_layer() {
            true => burn::tensor::activation::relu(output),
            false => output,
        }
    }

    /// torchvision's forward applies `F.relu` after the features: a function, not a module,
    /// so pytorch-grad-cam's guided backpropagation leaves it be, and so does this.
    fn embedding(&self, activations: Tensor<B, 4>) -> Tensor<B, 2> {
        global_average_pool(burn::tensor::activation::relu(activations))
    }

    fn class_weights(&self) -> Option<Tensor<B, 2>> {
        Some(self.classifier.weight.val().transpose())
    }

    fn head_from_embedding<R: Rectifier<B>>(&self, pooled: Tensor<B, 2>, _: &R) -> Tensor<B, 2> {
        kernels::linear(&self.classifier, pooled)
    }
}

/// torchvision's keys → module paths: `features.conv0|norm0|norm5`,
/// `features.denseblockB.denselayerL.*` → `blocks.(B−1).(L−1).*`, `features.transitionT.*` →
/// `transitions.(T−1).*` (torchvision counts from 1).
pub(crate) fn torch_patterns(config: &DenseNetConfig) -> Vec<(String, String)> {
    let mut patterns: Vec<(String, String)> = [
        (r"^features\.conv0\.", "conv0."),
        (r"^features\.norm0\.", "norm0."),
        (r"^features\.norm5\.", "norm5."),
    ]
    .iter()
    .map(|&(from, to)| (from.to_string(), to.to_string()))
    .collect();
    for (b, &layers) in config.block_config.iter().enumerate() {
        for l in 0..layers {
            patterns.push((
                format!(r"^features\.denseblock{}\.denselayer{}\.", b + 1, l + 1),
                format!("blocks.{b}.{l}."),
            ));
        }
        patterns.push((
            format!(r"^features\.transition{}\.", b + 1),
            format!("transitions.{b}."),
        ));
    }
    patterns
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn densenet121_has_its_layers_and_map() {
        let config = DenseNetConfig::default();
        let device = Default::default();
        let small = DenseNetConfig {
            growth_rate: 4,
            num_init_features: 8,
            bn_size: 2,
            ..config
        };
        let net = small.init::<Flex>(3, 7, &device);
        let names = net.layer_names();
        // Stem, 58 dense layers, 3 transitions, norm5.
        assert_eq!(names.len(), 1 + 58 + 3 + 1);
        assert_eq!(names[1], "features.denseblock1.denselayer1");
        assert_eq!(names[7], "features.transition1");
        assert_eq!(names.last().unwrap(), "features.norm5");
        // 8 + 6·4 = 32 → 16, + 12·4 = 64 → 32, + 24·4 = 128 → 64, + 16·4 = 128 channels.
        let a = net.features(Tensor::zeros([1, 3, 64, 64], &device));
        assert_eq!(a.dims(), [1, 128, 2, 2]);
        assert_eq!(
            net.forward(Tensor::zeros([2, 3, 64, 64], &device)).dims(),
            [2, 7]
        );
    }
}
