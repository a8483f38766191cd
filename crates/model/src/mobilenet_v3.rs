//! MobileNetV3-Large (Howard et al., 2019) as torchvision builds it: a 3×3 stride-2 stem with
//! hard-swish, fifteen inverted residual blocks (MobileNetV2's, with 5×5 depthwise kernels in
//! places, squeeze-and-excitation gated by a hard sigmoid, and ReLU or hard-swish), a 1×1
//! convolution to six times the last block's channels, global average pooling and a two-layer
//! classifier (`classifier.0`, hard-swish, `classifier.3`). BatchNorm uses torchvision's
//! epsilon 1e-3 and momentum 0.01. Layers are `features.0` … `features.16`; features end at
//! `features.16`, pytorch-grad-cam's `features[-1]`.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use kernels::Kernels;
use serde::{Deserialize, Serialize};

use crate::mobilenet::{ConvBn, make_divisible};
use crate::transfer::{blocks_trained_from, fresh_linear, trainable};
use crate::{InputShape, Rectifier, SplitModel, global_average_pool};

/// torchvision's large setting: input, kernel, expanded and output channels, squeeze-and-
/// excitation, hard-swish (else ReLU), stride.
const LARGE: [(usize, usize, usize, usize, bool, bool, usize); 15] = [
    (16, 3, 16, 16, false, false, 1),
    (16, 3, 64, 24, false, false, 2),
    (24, 3, 72, 24, false, false, 1),
    (24, 5, 72, 40, true, false, 2),
    (40, 5, 120, 40, true, false, 1),
    (40, 5, 120, 40, true, false, 1),
    (40, 3, 240, 80, false, true, 2),
    (80, 3, 200, 80, false, true, 1),
    (80, 3, 184, 80, false, true, 1),
    (80, 3, 184, 80, false, true, 1),
    (80, 3, 480, 112, true, true, 1),
    (112, 3, 672, 112, true, true, 1),
    (112, 5, 672, 160, true, true, 2),
    (160, 5, 960, 160, true, true, 1),
    (160, 5, 960, 160, true, true, 1),
];

const HIDDEN: usize = 1280;
const BN_EPSILON: f64 = 1e-3;
const BN_MOMENTUM: f64 = 0.01;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MobileNetV3Config {
    /// Every channel count times this (1.0: the published network).
    pub width_mult: f64,
}

impl Default for MobileNetV3Config {
    fn default() -> Self {
        Self { width_mult: 1.0 }
    }
}

/// One block, its channels already scaled by the width.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BlockShape {
    input: usize,
    kernel: usize,
    expanded: usize,
    output: usize,
    squeeze_excite: bool,
    hard_swish: bool,
    stride: usize,
}

impl MobileNetV3Config {
    fn channels(&self, c: usize) -> usize {
        make_divisible(c as f64 * self.width_mult)
    }

    pub(crate) fn blocks(&self) -> Vec<BlockShape> {
        LARGE
            .iter()
            .map(
                |&(i, kernel, e, o, squeeze_excite, hard_swish, stride)| BlockShape {
                    input: self.channels(i),
                    kernel,
                    expanded: self.channels(e),
                    output: self.channels(o),
                    squeeze_excite,
                    hard_swish,
                    stride,
                },
            )
            .collect()
    }

    pub fn init<B: Backend>(
        &self,
        channels: usize,
        num_classes: usize,
        device: &B::Device,
    ) -> MobileNetV3<B> {
        let blocks = self.blocks();
        let stem = blocks[0].input;
        let last_block = blocks[blocks.len() - 1].output;
        let head = 6 * last_block;
        let hidden = self.channels(HIDDEN);
        MobileNetV3 {
            stem: conv_bn(channels, stem, 3, 2, 1, device),
            blocks: blocks.iter().map(|&b| Block::new(b, device)).collect(),
            head: conv_bn(last_block, head, 1, 1, 1, device),
            hidden: LinearConfig::new(head, hidden).init(device),
            classifier: LinearConfig::new(hidden, num_classes).init(device),
            channels,
        }
    }
}

fn conv_bn<B: Backend>(
    input: usize,
    output: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
    device: &B::Device,
) -> ConvBn<B> {
    ConvBn::new(input, output, kernel, stride, groups, device)
        .with_batch_norm(BN_EPSILON, BN_MOMENTUM)
}

/// `x · relu6(x + 3) / 6`.
fn hard_swish<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    x.clone() * hard_sigmoid(x)
}

/// `relu6(x + 3) / 6`.
fn hard_sigmoid<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    (x + 3.0).clamp(0.0, 6.0) / 6.0
}

/// Squeeze-and-excitation: each channel scaled by a hard-sigmoid gate computed from the
/// channels' means (`fc1`, ReLU, `fc2`: 1×1 convolutions with bias).
#[derive(Module, Debug)]
pub struct SqueezeExcite<B: Backend> {
    pub fc1: Conv2d<B>,
    pub fc2: Conv2d<B>,
}

impl<B: Backend> SqueezeExcite<B> {
    fn new(channels: usize, device: &B::Device) -> Self {
        let squeezed = make_divisible((channels / 4) as f64);
        Self {
            fc1: Conv2dConfig::new([channels, squeezed], [1, 1]).init(device),
            fc2: Conv2dConfig::new([squeezed, channels], [1, 1]).init(device),
        }
    }
}

impl<B: Kernels> SqueezeExcite<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let pooled = x.clone().mean_dim(3).mean_dim(2);
        let squeezed = burn::tensor::activation::relu(kernels::conv2d(&self.fc1, pooled));
        x * hard_sigmoid(kernels::conv2d(&self.fc2, squeezed))
    }
}

/// Expansion (absent when it keeps the channels), depthwise convolution, squeeze-and-excitation
/// where the table asks for it, linear projection; the identity added where the shape is kept.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    pub expand: Option<ConvBn<B>>,
    pub depthwise: ConvBn<B>,
    pub squeeze_excite: Option<SqueezeExcite<B>>,
    pub project: ConvBn<B>,
    hard_swish: bool,
    skip: bool,
}

impl<B: Backend> Block<B> {
    fn new(shape: BlockShape, device: &B::Device) -> Self {
        let BlockShape {
            input,
            kernel,
            expanded,
            output,
            stride,
            ..
        } = shape;
        Self {
            expand: (expanded != input).then(|| conv_bn(input, expanded, 1, 1, 1, device)),
            depthwise: conv_bn(expanded, expanded, kernel, stride, expanded, device),
            squeeze_excite: shape
                .squeeze_excite
                .then(|| SqueezeExcite::new(expanded, device)),
            project: conv_bn(expanded, output, 1, 1, 1, device),
            hard_swish: shape.hard_swish,
            skip: stride == 1 && input == output,
        }
    }
}

impl<B: Kernels> Block<B> {
    fn forward<R: Rectifier<B>>(&self, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        let activate = |y: Tensor<B, 4>| {
            if self.hard_swish {
                hard_swish(y)
            } else {
                relu.relu(y)
            }
        };
        let hidden = match &self.expand {
            Some(expand) => activate(expand.forward(x.clone(), relu)),
            None => x.clone(),
        };
        let hidden = activate(self.depthwise.forward(hidden, relu));
        let hidden = match &self.squeeze_excite {
            Some(se) => se.forward(hidden),
            None => hidden,
        };
        let out = self.project.forward(hidden, relu);
        if self.skip { out + x } else { out }
    }
}

#[derive(Module, Debug)]
pub struct MobileNetV3<B: Backend> {
    pub stem: ConvBn<B>,
    pub blocks: Vec<Block<B>>,
    pub head: ConvBn<B>,
    /// `classifier.0`: pooled features → 1280, before the hard-swish.
    pub hidden: Linear<B>,
    /// `classifier.3`: the last Linear, the one fine-tuning replaces.
    pub classifier: Linear<B>,
    channels: usize,
}

impl<B: Backend> MobileNetV3<B> {
    pub(crate) fn with_new_classifier(self, outputs: usize, device: &B::Device) -> Self {
        let classifier = fresh_linear(&self.classifier, outputs, device);
        Self { classifier, ..self }
    }

    /// Layer 0 is the stem, layers 1 to 15 the blocks, 16 the last convolution.
    pub(crate) fn trained_from(self, first: usize) -> Self {
        let head = self.blocks.len() + 1 >= first;
        Self {
            stem: trainable(self.stem, first == 0),
            blocks: blocks_trained_from(self.blocks, first),
            head: trainable(self.head, head),
            hidden: trainable(self.hidden, true),
            classifier: trainable(self.classifier, true),
            channels: self.channels,
        }
    }
}

impl<B: Kernels> SplitModel<B> for MobileNetV3<B> {
    fn architecture(&self) -> &'static str {
        "mobilenet_v3_large"
    }

    fn input_shape(&self) -> InputShape {
        InputShape::AtLeast {
            channels: self.channels,
            min: 32,
        }
    }

    fn layer_names(&self) -> Vec<String> {
        (0..self.blocks.len() + 2)
            .map(|i| format!("features.{i}"))
            .collect()
    }

    /// Hard-swish is not a ReLU: like pytorch-grad-cam's guided backpropagation, `relu` only
    /// replaces the blocks' ReLUs.
    fn layer<R: Rectifier<B>>(&self, index: usize, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        match index {
            0 => hard_swish(self.stem.forward(x, relu)),
            i if i <= self.blocks.len() => self.blocks[i - 1].forward(x, relu),
            _ => hard_swish(self.head.forward(x, relu)),
        }
    }

    fn embedding(&self, activations: Tensor<B, 4>) -> Tensor<B, 2> {
        global_average_pool(activations)
    }

    /// The dropout between the two Linear layers is the identity at inference (and not
    /// applied in training here).
    fn head_from_embedding<R: Rectifier<B>>(&self, pooled: Tensor<B, 2>, _: &R) -> Tensor<B, 2> {
        let hidden = kernels::linear(&self.hidden, pooled);
        let hidden = hidden.clone() * hard_sigmoid(hidden);
        kernels::linear(&self.classifier, hidden)
    }
}

/// torchvision's keys → module paths: `features.0.{0,1}` (stem), `features.<i>.block.<j>` of
/// each block (j counts the parts present: expansion, depthwise, squeeze-and-excitation,
/// projection), `features.16.{0,1}`, `classifier.0`, `classifier.3`.
pub(crate) fn torch_patterns(config: &MobileNetV3Config) -> Vec<(String, String)> {
    let blocks = config.blocks();
    let last = blocks.len() + 1;
    let mut patterns = vec![
        (r"^features\.0\.0\.".to_string(), "stem.conv.".to_string()),
        (r"^features\.0\.1\.".to_string(), "stem.bn.".to_string()),
        (format!(r"^features\.{last}\.0\."), "head.conv.".to_string()),
        (format!(r"^features\.{last}\.1\."), "head.bn.".to_string()),
        (r"^classifier\.0\.".to_string(), "hidden.".to_string()),
        (r"^classifier\.3\.".to_string(), "classifier.".to_string()),
    ];
    for (i, block) in blocks.iter().enumerate() {
        let mut parts = Vec::new();
        if block.expanded != block.input {
            parts.push("expand");
        }
        parts.push("depthwise");
        if block.squeeze_excite {
            parts.push("squeeze_excite");
        }
        parts.push("project");
        for (j, part) in parts.into_iter().enumerate() {
            let prefix = format!(r"^features\.{}\.block\.{j}\.", i + 1);
            if part == "squeeze_excite" {
                patterns.push((prefix, format!("blocks.{i}.squeeze_excite.")));
            } else {
                patterns.push((format!("{prefix}0\\."), format!("blocks.{i}.{part}.conv.")));
                patterns.push((format!("{prefix}1\\."), format!("blocks.{i}.{part}.bn.")));
            }
        }
    }
    patterns
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn the_published_network_has_its_shapes_and_layers() {
        let device = Default::default();
        let net = MobileNetV3Config::default().init::<Flex>(3, 10, &device);
        assert_eq!(net.layer_names().len(), 17);
        assert_eq!(net.layer_names()[16], "features.16");
        assert_eq!(net.head.conv.weight.dims(), [960, 160, 1, 1]);
        assert_eq!(net.hidden.weight.dims(), [960, 1280]);
        let se = net.blocks[3].squeeze_excite.as_ref().unwrap();
        assert_eq!(se.fc1.weight.dims(), [24, 72, 1, 1]);
        let a = net.features(Tensor::zeros([1, 3, 64, 64], &device));
        assert_eq!(a.dims(), [1, 960, 2, 2]);
        assert_eq!(
            net.forward(Tensor::zeros([2, 3, 64, 64], &device)).dims(),
            [2, 10]
        );
    }

    #[test]
    fn hard_activations_are_piecewise_linear() {
        let device = Default::default();
        let x = Tensor::<Flex, 1>::from_floats([-4.0, -3.0, 0.0, 3.0, 4.0], &device);
        let gate = hard_sigmoid(x).into_data().to_vec::<f32>().unwrap();
        assert_eq!(gate, [0.0, 0.0, 0.5, 1.0, 1.0]);
    }
}
