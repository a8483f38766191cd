//! MobileNetV2 (Sandler et al., 2018) as torchvision builds it: a 3×3 stride-2 stem, seventeen
//! inverted residual blocks (1×1 expansion, 3×3 depthwise, 1×1 linear projection; ReLU6; the
//! identity added where the shape is kept), a 1×1 convolution to 1280 channels, global
//! average pooling and `classifier.1`. Channel counts follow `width_mult`, rounded to multiples
//! of 8 as torchvision rounds them. Layers are torchvision's `features.0` … `features.18`;
//! features end at `features.18`, pytorch-grad-cam's usual target for this network.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use kernels::Kernels;
use serde::{Deserialize, Serialize};

use crate::transfer::{blocks_trained_from, fresh_linear, trainable};
use crate::{InputShape, Rectifier, SplitModel, conv_batch_norm, global_average_pool};

/// torchvision's inverted residual setting: expansion, output channels, repeats, first stride.
const SETTING: [[usize; 4]; 7] = [
    [1, 16, 1, 1],
    [6, 24, 2, 2],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
];

const STEM: usize = 32;
const LAST: usize = 1280;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MobileNetV2Config {
    /// Every channel count times this (1.0: the published network).
    pub width_mult: f64,
    /// The last convolution's channels, when not torchvision's 1280 (times `width_mult` above
    /// 1): small test networks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_channels: Option<usize>,
}

impl Default for MobileNetV2Config {
    fn default() -> Self {
        Self {
            width_mult: 1.0,
            last_channels: None,
        }
    }
}

/// torchvision's `_make_divisible`: the nearest multiple of 8, at least 8, never more than 10%
/// below `value`.
pub(crate) fn make_divisible(value: f64) -> usize {
    let divisor = 8.0;
    let rounded = ((value + divisor / 2.0) / divisor).floor() * divisor;
    let rounded = rounded.max(divisor);
    (if rounded < 0.9 * value {
        rounded + divisor
    } else {
        rounded
    }) as usize
}

/// One block of the table: its expansion, input and output channels, and stride.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BlockShape {
    pub expand: usize,
    pub input: usize,
    pub output: usize,
    pub stride: usize,
}

impl MobileNetV2Config {
    /// The stem's channels, each block's shape, and the last convolution's channels.
    pub(crate) fn shapes(&self) -> (usize, Vec<BlockShape>, usize) {
        let stem = make_divisible(STEM as f64 * self.width_mult);
        let mut input = stem;
        let mut blocks = Vec::new();
        for [expand, channels, repeats, stride] in SETTING {
            let output = make_divisible(channels as f64 * self.width_mult);
            for i in 0..repeats {
                let stride = if i == 0 { stride } else { 1 };
                blocks.push(BlockShape {
                    expand,
                    input,
                    output,
                    stride,
                });
                input = output;
            }
        }
        let last = self
            .last_channels
            .unwrap_or_else(|| make_divisible(LAST as f64 * self.width_mult.max(1.0)));
        (stem, blocks, last)
    }

    pub fn init<B: Backend>(
        &self,
        channels: usize,
        num_classes: usize,
        device: &B::Device,
    ) -> MobileNetV2<B> {
        let (stem, blocks, last) = self.shapes();
        let input = blocks.last().map_or(stem, |b| b.output);
        MobileNetV2 {
            stem: ConvBn::new(channels, stem, 3, 2, 1, device),
            blocks: blocks
                .iter()
                .map(|&shape| InvertedResidual::new(shape, device))
                .collect(),
            head: ConvBn::new(input, last, 1, 1, 1, device),
            classifier: LinearConfig::new(last, num_classes).init(device),
            channels,
        }
    }
}

/// A bias-free convolution with PyTorch's symmetric padding and its BatchNorm.
#[derive(Module, Debug)]
pub struct ConvBn<B: Backend> {
    pub conv: Conv2d<B>,
    pub bn: BatchNorm<B>,
}

impl<B: Backend> ConvBn<B> {
    pub(crate) fn new(
        input: usize,
        output: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        device: &B::Device,
    ) -> Self {
        let pad = (kernel - 1) / 2;
        Self {
            conv: Conv2dConfig::new([input, output], [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_groups(groups)
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(output).init(device),
        }
    }
}

impl<B: Backend> ConvBn<B> {
    /// The same with BatchNorm's epsilon and momentum changed (MobileNetV3: 1e-3, 0.01).
    pub(crate) fn with_batch_norm(self, epsilon: f64, momentum: f64) -> Self {
        let bn = BatchNorm {
            epsilon,
            momentum,
            ..self.bn
        };
        Self { bn, ..self }
    }
}

impl<B: Kernels> ConvBn<B> {
    pub(crate) fn forward<R: Rectifier<B>>(&self, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        conv_batch_norm(&self.conv, &self.bn, x, relu)
    }

    pub(crate) fn forward_relu6<R: Rectifier<B>>(&self, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        self.forward(x, relu).clamp(0.0, 6.0)
    }
}

/// Expansion (absent when the factor is 1), depthwise convolution, linear projection.
#[derive(Module, Debug)]
pub struct InvertedResidual<B: Backend> {
    pub expand: Option<ConvBn<B>>,
    pub depthwise: ConvBn<B>,
    pub project: ConvBn<B>,
    skip: bool,
}

impl<B: Backend> InvertedResidual<B> {
    fn new(shape: BlockShape, device: &B::Device) -> Self {
        let BlockShape {
            expand,
            input,
            output,
            stride,
        } = shape;
        let hidden = input * expand;
        Self {
            expand: (expand != 1).then(|| ConvBn::new(input, hidden, 1, 1, 1, device)),
            depthwise: ConvBn::new(hidden, hidden, 3, stride, hidden, device),
            project: ConvBn::new(hidden, output, 1, 1, 1, device),
            skip: stride == 1 && input == output,
        }
    }
}

impl<B: Kernels> InvertedResidual<B> {
    fn forward<R: Rectifier<B>>(&self, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        let hidden = match &self.expand {
            Some(expand) => expand.forward_relu6(x.clone(), relu),
            None => x.clone(),
        };
        let out = self
            .project
            .forward(self.depthwise.forward_relu6(hidden, relu), relu);
        if self.skip { out + x } else { out }
    }
}

#[derive(Module, Debug)]
pub struct MobileNetV2<B: Backend> {
    pub stem: ConvBn<B>,
    pub blocks: Vec<InvertedResidual<B>>,
    pub head: ConvBn<B>,
    pub classifier: Linear<B>,
    channels: usize,
}

impl<B: Backend> MobileNetV2<B> {
    pub(crate) fn with_new_classifier(self, outputs: usize, device: &B::Device) -> Self {
        let classifier = fresh_linear(&self.classifier, outputs, device);
        Self { classifier, ..self }
    }

    /// Layer 0 is the stem, layers 1 to 17 the blocks, 18 the last convolution.
    pub(crate) fn trained_from(self, first: usize) -> Self {
        let head = self.blocks.len() + 1 >= first;
        Self {
            stem: trainable(self.stem, first == 0),
            blocks: blocks_trained_from(self.blocks, first),
            head: trainable(self.head, head),
            classifier: trainable(self.classifier, true),
            channels: self.channels,
        }
    }
}

impl<B: Kernels> SplitModel<B> for MobileNetV2<B> {
    fn architecture(&self) -> &'static str {
        "mobilenet_v2"
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

    /// ReLU6 is not a ReLU: like pytorch-grad-cam's guided backpropagation, `relu` leaves it be.
    fn layer<R: Rectifier<B>>(&self, index: usize, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        match index {
            0 => self.stem.forward_relu6(x, relu),
            i if i <= self.blocks.len() => self.blocks[i - 1].forward(x, relu),
            _ => self.head.forward_relu6(x, relu),
        }
    }

    fn embedding(&self, activations: Tensor<B, 4>) -> Tensor<B, 2> {
        global_average_pool(activations)
    }

    /// torchvision's `classifier.0` is a dropout, the identity at inference (and not applied
    /// in training here).
    fn class_weights(&self) -> Option<Tensor<B, 2>> {
        Some(self.classifier.weight.val().transpose())
    }

    fn head_from_embedding<R: Rectifier<B>>(&self, pooled: Tensor<B, 2>, _: &R) -> Tensor<B, 2> {
        kernels::linear(&self.classifier, pooled)
    }
}

/// torchvision's keys → module paths: `features.0.{0,1}` (stem), `features.<i>.conv.<j>` of
/// each block (the expansion missing where the factor is 1), `features.18.{0,1}`,
/// `classifier.1`.
pub(crate) fn torch_patterns(config: &MobileNetV2Config) -> Vec<(String, String)> {
    let (_, blocks, _) = config.shapes();
    let last = blocks.len() + 1;
    let mut patterns = vec![
        (r"^features\.0\.0\.".to_string(), "stem.conv.".to_string()),
        (r"^features\.0\.1\.".to_string(), "stem.bn.".to_string()),
        (format!(r"^features\.{last}\.0\."), "head.conv.".to_string()),
        (format!(r"^features\.{last}\.1\."), "head.bn.".to_string()),
        (r"^classifier\.1\.".to_string(), "classifier.".to_string()),
    ];
    for (i, block) in blocks.iter().enumerate() {
        let parts: &[(&str, &str)] = match block.expand {
            1 => &[
                ("0.0", "depthwise.conv"),
                ("0.1", "depthwise.bn"),
                ("1", "project.conv"),
                ("2", "project.bn"),
            ],
            _ => &[
                ("0.0", "expand.conv"),
                ("0.1", "expand.bn"),
                ("1.0", "depthwise.conv"),
                ("1.1", "depthwise.bn"),
                ("2", "project.conv"),
                ("3", "project.bn"),
            ],
        };
        for (torch, ours) in parts {
            let torch = torch.replace('.', r"\.");
            patterns.push((
                format!(r"^features\.{}\.conv\.{torch}\.", i + 1),
                format!("blocks.{i}.{ours}."),
            ));
        }
    }
    patterns
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn channels_are_rounded_as_torchvision_rounds_them() {
        assert_eq!(
            [32.0, 16.0 * 0.35, 24.0 * 0.35, 1280.0 * 0.75].map(make_divisible),
            [32, 8, 8, 960]
        );
        let half = MobileNetV2Config {
            width_mult: 0.5,
            last_channels: None,
        };
        let (stem, blocks, last) = half.shapes();
        assert_eq!((stem, blocks.len(), last), (16, 17, 1280));
        assert_eq!(blocks.last().unwrap().output, 160);
    }

    #[test]
    fn the_published_network_has_its_map_and_layers() {
        let device = Default::default();
        let quarter = MobileNetV2Config {
            width_mult: 0.25,
            last_channels: None,
        };
        let net = quarter.init::<Flex>(3, 10, &device);
        assert_eq!(net.layer_names().len(), 19);
        assert_eq!(net.layer_names()[18], "features.18");
        let a = net.features(Tensor::zeros([1, 3, 64, 64], &device));
        assert_eq!(a.dims(), [1, 1280, 2, 2]);
        assert_eq!(
            net.forward(Tensor::zeros([2, 3, 64, 64], &device)).dims(),
            [2, 10]
        );
    }
}
