//! EfficientNet-Lite (Tan & Le, 2019; the "Lite" variants for mobile accelerators): the B0
//! block table of inverted-residual MBConv blocks with ReLU6 and no squeeze-excitation,
//! TensorFlow "SAME" padding, BatchNorm eps 1e-3, a fixed 32-channel stem and 1280-channel
//! head. Features end at the head conv (+ BatchNorm + ReLU6), before the global pool.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use kernels::Kernels;
use serde::{Deserialize, Serialize};

use crate::transfer::{blocks_trained_from, fresh_linear, trainable};
use crate::{InputShape, Rectifier, SplitModel, conv_batch_norm, global_average_pool};

/// One row of the block table: `repeats` blocks, the first with `stride`.
struct Stage {
    repeats: usize,
    kernel: usize,
    stride: usize,
    expand: usize,
    output: usize,
}

/// EfficientNet-B0's stages (Lite0 uses them unscaled).
const B0: [Stage; 7] = [
    stage(1, 3, 1, 1, 16),
    stage(2, 3, 2, 6, 24),
    stage(2, 5, 2, 6, 40),
    stage(3, 3, 2, 6, 80),
    stage(3, 5, 1, 6, 112),
    stage(4, 5, 2, 6, 192),
    stage(1, 3, 1, 6, 320),
];

const fn stage(
    repeats: usize,
    kernel: usize,
    stride: usize,
    expand: usize,
    output: usize,
) -> Stage {
    Stage {
        repeats,
        kernel,
        stride,
        expand,
        output,
    }
}

const STEM: usize = 32;
const HEAD: usize = 1280;
const EPSILON: f64 = 1e-3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EfficientNetLiteConfig {
    /// Every channel count divided by this (1 = the published Lite0; larger makes tiny test
    /// models with the same keys).
    pub channel_divisor: usize,
}

impl Default for EfficientNetLiteConfig {
    fn default() -> Self {
        Self { channel_divisor: 1 }
    }
}

impl EfficientNetLiteConfig {
    fn channels(&self, published: usize) -> usize {
        (published / self.channel_divisor).max(1)
    }

    pub fn init<B: Backend>(
        &self,
        channels: usize,
        num_classes: usize,
        device: &B::Device,
    ) -> EfficientNetLite<B> {
        let bn = |c: usize| BatchNormConfig::new(c).with_epsilon(EPSILON).init(device);
        let stem = self.channels(STEM);
        let head = self.channels(HEAD);
        let mut input = stem;
        let mut blocks = Vec::new();
        for stage in &B0 {
            let output = self.channels(stage.output);
            for i in 0..stage.repeats {
                let stride = if i == 0 { stage.stride } else { 1 };
                blocks.push(MbConv::new(
                    input,
                    output,
                    stage.kernel,
                    stride,
                    stage.expand,
                    device,
                ));
                input = output;
            }
        }
        EfficientNetLite {
            stem: same_conv(channels, stem, 3, 2, 1, device),
            stem_bn: bn(stem),
            blocks,
            head: same_conv(input, head, 1, 1, 1, device),
            head_bn: bn(head),
            fc: LinearConfig::new(head, num_classes).init(device),
            channels,
        }
    }
}

/// A bias-free conv with TensorFlow's SAME padding (asymmetric for stride 2).
fn same_conv<B: Backend>(
    input: usize,
    output: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
    device: &B::Device,
) -> Conv2d<B> {
    Conv2dConfig::new([input, output], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Same)
        .with_groups(groups)
        .with_bias(false)
        .init(device)
}

fn relu6<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    x.clamp(0.0, 6.0)
}

/// Inverted residual: 1×1 expansion, depthwise k×k, 1×1 linear projection, identity skip
/// when the shape is kept.
#[derive(Module, Debug)]
pub struct MbConv<B: Backend> {
    pub expand: Option<Conv2d<B>>,
    pub expand_bn: Option<BatchNorm<B>>,
    pub depthwise: Conv2d<B>,
    pub depthwise_bn: BatchNorm<B>,
    pub project: Conv2d<B>,
    pub project_bn: BatchNorm<B>,
    skip: bool,
}

impl<B: Backend> MbConv<B> {
    fn new(
        input: usize,
        output: usize,
        kernel: usize,
        stride: usize,
        expand: usize,
        device: &B::Device,
    ) -> Self {
        let bn = |c: usize| BatchNormConfig::new(c).with_epsilon(EPSILON).init(device);
        let hidden = input * expand;
        Self {
            expand: (expand != 1).then(|| same_conv(input, hidden, 1, 1, 1, device)),
            expand_bn: (expand != 1).then(|| bn(hidden)),
            depthwise: same_conv(hidden, hidden, kernel, stride, hidden, device),
            depthwise_bn: bn(hidden),
            project: same_conv(hidden, output, 1, 1, 1, device),
            project_bn: bn(output),
            skip: stride == 1 && input == output,
        }
    }
}

impl<B: Kernels> MbConv<B> {
    pub fn forward<R: Rectifier<B>>(&self, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        let mut out = x.clone();
        if let (Some(expand), Some(bn)) = (&self.expand, &self.expand_bn) {
            out = relu6(conv_batch_norm(expand, bn, out, relu));
        }
        let out = relu6(conv_batch_norm(
            &self.depthwise,
            &self.depthwise_bn,
            out,
            relu,
        ));
        let out = conv_batch_norm(&self.project, &self.project_bn, out, relu);
        if self.skip { out + x } else { out }
    }
}

#[derive(Module, Debug)]
pub struct EfficientNetLite<B: Backend> {
    pub stem: Conv2d<B>,
    pub stem_bn: BatchNorm<B>,
    pub blocks: Vec<MbConv<B>>,
    pub head: Conv2d<B>,
    pub head_bn: BatchNorm<B>,
    pub fc: Linear<B>,
    channels: usize,
}

impl<B: Backend> EfficientNetLite<B> {
    pub(crate) fn with_new_classifier(self, outputs: usize, device: &B::Device) -> Self {
        let fc = fresh_linear(&self.fc, outputs, device);
        Self { fc, ..self }
    }

    /// Layer 0 is the stem, layers 1 to 16 the blocks, 17 the head convolution.
    pub(crate) fn trained_from(self, first: usize) -> Self {
        let head = self.blocks.len() + 1 >= first;
        Self {
            stem: trainable(self.stem, first == 0),
            stem_bn: trainable(self.stem_bn, first == 0),
            blocks: blocks_trained_from(self.blocks, first),
            head: trainable(self.head, head),
            head_bn: trainable(self.head_bn, head),
            fc: trainable(self.fc, true),
            channels: self.channels,
        }
    }
}

impl<B: Kernels> SplitModel<B> for EfficientNetLite<B> {
    fn architecture(&self) -> &'static str {
        "efficientnet_lite"
    }

    fn input_shape(&self) -> InputShape {
        InputShape::AtLeast {
            channels: self.channels,
            min: 32,
        }
    }

    fn layer_names(&self) -> Vec<String> {
        std::iter::once("stem".to_string())
            .chain((0..self.blocks.len()).map(|b| format!("blocks.{b}")))
            .chain(std::iter::once("head".to_string()))
            .collect()
    }

    /// ReLU6 is not a ReLU: like pytorch-grad-cam's guided backpropagation, `relu` leaves it be.
    fn layer<R: Rectifier<B>>(&self, index: usize, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        match index {
            0 => relu6(conv_batch_norm(&self.stem, &self.stem_bn, x, relu)),
            i if i <= self.blocks.len() => self.blocks[i - 1].forward(x, relu),
            _ => relu6(conv_batch_norm(&self.head, &self.head_bn, x, relu)),
        }
    }

    fn embedding(&self, activations: Tensor<B, 4>) -> Tensor<B, 2> {
        global_average_pool(activations)
    }

    fn class_weights(&self) -> Option<Tensor<B, 2>> {
        Some(self.fc.weight.val().transpose())
    }

    fn head_from_embedding<R: Rectifier<B>>(&self, pooled: Tensor<B, 2>, _: &R) -> Tensor<B, 2> {
        kernels::linear(&self.fc, pooled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn lite0_has_the_published_blocks_and_map() {
        let device = Default::default();
        let net = EfficientNetLiteConfig { channel_divisor: 8 }.init::<Flex>(3, 10, &device);
        assert_eq!(net.blocks.len(), 16);
        assert!(net.blocks[0].expand.is_none() && net.blocks[1].expand.is_some());
        let a = net.features(Tensor::zeros([1, 3, 224, 224], &device));
        assert_eq!(a.dims(), [1, 160, 7, 7]);
    }
}
