//! The CIFAR ResNets of He et al. (2016), §4.2: a 3×3 stem, three stages of BasicBlocks with
//! 16/32/64 channels (stride 2 entering stages 2 and 3), global average pooling and one Linear.
//! Depth = 6n + 2 (20, 32, 44, 56, 110). Where a block changes shape, the shortcut is the
//! parameter-free "option A": subsample by 2 and zero-pad the new channels.
//!
//! Field names follow the PyTorch reference (`conv1`, `bn1`, `layer1.0.conv1`, `linear`), so
//! its checkpoints map one to one.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::module::avg_pool2d;
use kernels::Kernels;
use serde::{Deserialize, Serialize};

use crate::split::residual_layer_names;
use crate::transfer::{fresh_linear, trainable};
use crate::{InputShape, Rectifier, SplitModel, conv_batch_norm, global_average_pool};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CifarResNetConfig {
    /// Number of layers with weights: 6n + 2.
    pub depth: usize,
    /// Channels of the first stage; the next two have 2× and 4× as many.
    pub width: usize,
}

impl Default for CifarResNetConfig {
    fn default() -> Self {
        Self {
            depth: 20,
            width: 16,
        }
    }
}

impl CifarResNetConfig {
    /// BasicBlocks per stage, or `None` when the depth is not 6n + 2.
    pub fn blocks_per_stage(&self) -> Option<usize> {
        (self.depth >= 8 && (self.depth - 2).is_multiple_of(6)).then(|| (self.depth - 2) / 6)
    }

    /// # Panics
    /// If `depth` is not 6n + 2: [`crate::ModelSpec::validate`] reports that as an error first.
    pub fn init<B: Backend>(
        &self,
        channels: usize,
        num_classes: usize,
        device: &B::Device,
    ) -> CifarResNet<B> {
        let blocks = self
            .blocks_per_stage()
            .expect("CIFAR ResNet depth must be 6n + 2");
        let w = self.width;
        let stage = |input: usize, output: usize, stride: usize| -> Vec<BasicBlock<B>> {
            (0..blocks)
                .map(|i| match i {
                    0 => BasicBlock::new(input, output, stride, device),
                    _ => BasicBlock::new(output, output, 1, device),
                })
                .collect()
        };
        CifarResNet {
            conv1: conv3x3(channels, w, 1, device),
            bn1: BatchNormConfig::new(w).init(device),
            layer1: stage(w, w, 1),
            layer2: stage(w, 2 * w, 2),
            layer3: stage(2 * w, 4 * w, 2),
            linear: LinearConfig::new(4 * w, num_classes).init(device),
            channels,
        }
    }
}

fn conv3x3<B: Backend>(
    input: usize,
    output: usize,
    stride: usize,
    device: &B::Device,
) -> Conv2d<B> {
    Conv2dConfig::new([input, output], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(device)
}

#[derive(Module, Debug)]
pub struct BasicBlock<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: BatchNorm<B>,
    pub conv2: Conv2d<B>,
    pub bn2: BatchNorm<B>,
    /// Zero channels added on each side of the shortcut (0 when the shape is kept).
    pad_channels: usize,
    stride: usize,
}

impl<B: Backend> BasicBlock<B> {
    fn new(input: usize, output: usize, stride: usize, device: &B::Device) -> Self {
        Self {
            conv1: conv3x3(input, output, stride, device),
            bn1: BatchNormConfig::new(output).init(device),
            conv2: conv3x3(output, output, 1, device),
            bn2: BatchNormConfig::new(output).init(device),
            pad_channels: (output - input) / 2,
            stride,
        }
    }
}

impl<B: Kernels> BasicBlock<B> {
    pub fn forward<R: Rectifier<B>>(&self, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        let out = relu.relu(conv_batch_norm(&self.conv1, &self.bn1, x.clone(), relu));
        let out = conv_batch_norm(&self.conv2, &self.bn2, out, relu);
        relu.relu(out + self.shortcut(x))
    }

    /// Option A: `x[:, :, ::s, ::s]` padded with zero channels.
    fn shortcut(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        if self.stride == 1 && self.pad_channels == 0 {
            return x;
        }
        let s = self.stride;
        // A 1×1 average pool with stride s picks exactly every s-th pixel.
        let x = avg_pool2d(x, [1, 1], [s, s], [0, 0], true, false);
        if self.pad_channels == 0 {
            return x;
        }
        let [batch, _, h, w] = x.dims();
        let zeros = Tensor::zeros([batch, self.pad_channels, h, w], &x.device());
        Tensor::cat(vec![zeros.clone(), x, zeros], 1)
    }
}

#[derive(Module, Debug)]
pub struct CifarResNet<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: BatchNorm<B>,
    pub layer1: Vec<BasicBlock<B>>,
    pub layer2: Vec<BasicBlock<B>>,
    pub layer3: Vec<BasicBlock<B>>,
    pub linear: Linear<B>,
    channels: usize,
}

impl<B: Backend> CifarResNet<B> {
    pub(crate) fn with_new_classifier(self, outputs: usize, device: &B::Device) -> Self {
        let linear = fresh_linear(&self.linear, outputs, device);
        Self { linear, ..self }
    }

    /// Layer 0 is the stem, layer i ≥ 1 the i-th residual block.
    pub(crate) fn trained_from(self, first: usize) -> Self {
        let stem = first == 0;
        let mut layer = 0;
        let mut stage = |blocks: Vec<BasicBlock<B>>| -> Vec<BasicBlock<B>> {
            blocks
                .into_iter()
                .map(|block| {
                    layer += 1;
                    trainable(block, layer >= first)
                })
                .collect()
        };
        Self {
            conv1: trainable(self.conv1, stem),
            bn1: trainable(self.bn1, stem),
            layer1: stage(self.layer1),
            layer2: stage(self.layer2),
            layer3: stage(self.layer3),
            linear: trainable(self.linear, true),
            channels: self.channels,
        }
    }
}

impl<B: Kernels> SplitModel<B> for CifarResNet<B> {
    fn architecture(&self) -> &'static str {
        "cifar_resnet"
    }

    fn input_shape(&self) -> InputShape {
        // Two stride-2 stages: below 4 pixels the last map would be a single padded pixel.
        InputShape::AtLeast {
            channels: self.channels,
            min: 4,
        }
    }

    fn layer_names(&self) -> Vec<String> {
        residual_layer_names(&[&self.layer1, &self.layer2, &self.layer3].map(Vec::len))
    }

    fn layer<R: Rectifier<B>>(&self, index: usize, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        if index == 0 {
            return relu.relu(conv_batch_norm(&self.conv1, &self.bn1, x, relu));
        }
        let block = [&self.layer1, &self.layer2, &self.layer3]
            .into_iter()
            .flatten()
            .nth(index - 1)
            .expect("a layer index from layer_names");
        block.forward(x, relu)
    }

    fn embedding(&self, activations: Tensor<B, 4>) -> Tensor<B, 2> {
        global_average_pool(activations)
    }

    fn class_weights(&self) -> Option<Tensor<B, 2>> {
        Some(self.linear.weight.val().transpose())
    }

    fn head_from_embedding<R: Rectifier<B>>(&self, pooled: Tensor<B, 2>, _: &R) -> Tensor<B, 2> {
        kernels::linear(&self.linear, pooled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn option_a_shortcut_subsamples_and_pads_channels() {
        let device = Default::default();
        let block = BasicBlock::<Flex>::new(2, 4, 2, &device);
        let x = Tensor::<Flex, 1, Int>::arange(0..32, &device)
            .float()
            .reshape([1, 2, 4, 4]);
        let out = block.shortcut(x).into_data().to_vec::<f32>().unwrap();
        // Channels: one zero channel, the two inputs at even rows/columns, one zero channel.
        let expected = [
            vec![0.0; 4],
            vec![0.0, 2.0, 8.0, 10.0],
            vec![16.0, 18.0, 24.0, 26.0],
            vec![0.0; 4],
        ]
        .concat();
        assert_eq!(out, expected);
    }

    #[test]
    fn depths_follow_six_n_plus_two() {
        let blocks = |depth| CifarResNetConfig { depth, width: 16 }.blocks_per_stage();
        assert_eq!(blocks(20), Some(3));
        assert_eq!(blocks(110), Some(18));
        assert_eq!(blocks(21), None);
    }
}
