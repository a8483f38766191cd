//! The ImageNet ResNets of He et al. (2016) with torchvision's layout and parameter names:
//! 7×7 stem, max-pool, four stages (`layer1`..`layer4`) of BasicBlocks (18, 34) or
//! Bottlenecks (50, 101, 152; stride on the 3×3 conv, torchvision's "v1.5"), global average
//! pool and `fc`. Features end at `layer4`, as pytorch-grad-cam's usual `target_layers`.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use kernels::{Kernels, max_pool2d};
use serde::{Deserialize, Serialize};

use crate::split::residual_layer_names;
use crate::transfer::{fresh_linear, trainable};
use crate::{InputShape, Rectifier, SplitModel, conv_batch_norm, global_average_pool};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResNetConfig {
    /// 18, 34, 50, 101 or 152.
    pub depth: usize,
    /// Channels of the stem and first stage (64); stages double it.
    pub width: usize,
}

impl Default for ResNetConfig {
    fn default() -> Self {
        Self {
            depth: 50,
            width: 64,
        }
    }
}

impl ResNetConfig {
    /// Blocks per stage and whether they are Bottlenecks; `None` for other depths.
    pub fn stages(&self) -> Option<([usize; 4], bool)> {
        match self.depth {
            18 => Some(([2, 2, 2, 2], false)),
            34 => Some(([3, 4, 6, 3], false)),
            50 => Some(([3, 4, 6, 3], true)),
            101 => Some(([3, 4, 23, 3], true)),
            152 => Some(([3, 8, 36, 3], true)),
            _ => None,
        }
    }

    /// # Panics
    /// On an unknown depth ([`crate::ModelSpec::validate`] reports it first).
    pub fn init<B: Backend>(
        &self,
        channels: usize,
        num_classes: usize,
        device: &B::Device,
    ) -> ResNet<B> {
        let (blocks, bottleneck) = self.stages().expect("ResNet depth 18, 34, 50, 101 or 152");
        let expansion = if bottleneck { 4 } else { 1 };
        let mut input = self.width;
        let mut stage = |index: usize| -> Vec<ResidualBlock<B>> {
            let planes = self.width << index;
            let stride = if index == 0 { 1 } else { 2 };
            (0..blocks[index])
                .map(|i| {
                    let block = ResidualBlock::new(
                        input,
                        planes,
                        if i == 0 { stride } else { 1 },
                        bottleneck,
                        device,
                    );
                    input = planes * expansion;
                    block
                })
                .collect()
        };
        let (layer1, layer2, layer3, layer4) = (stage(0), stage(1), stage(2), stage(3));
        ResNet {
            conv1: conv(channels, self.width, 7, 2, device),
            bn1: BatchNormConfig::new(self.width).init(device),
            layer1,
            layer2,
            layer3,
            layer4,
            fc: LinearConfig::new(input, num_classes).init(device),
            channels,
        }
    }
}

/// A bias-free k×k conv with padding k/2, as every conv of a ResNet.
fn conv<B: Backend>(
    input: usize,
    output: usize,
    kernel: usize,
    stride: usize,
    device: &B::Device,
) -> Conv2d<B> {
    let p = kernel / 2;
    Conv2dConfig::new([input, output], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(false)
        .init(device)
}

/// torchvision's `downsample`: a strided 1×1 conv and BatchNorm on the shortcut.
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    pub conv: Conv2d<B>,
    pub bn: BatchNorm<B>,
}

/// A BasicBlock (two 3×3 convs) or, with `conv3`, a Bottleneck (1×1, 3×3, 1×1).
#[derive(Module, Debug)]
pub struct ResidualBlock<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: BatchNorm<B>,
    pub conv2: Conv2d<B>,
    pub bn2: BatchNorm<B>,
    pub conv3: Option<Conv2d<B>>,
    pub bn3: Option<BatchNorm<B>>,
    pub downsample: Option<Downsample<B>>,
}

impl<B: Backend> ResidualBlock<B> {
    fn new(
        input: usize,
        planes: usize,
        stride: usize,
        bottleneck: bool,
        device: &B::Device,
    ) -> Self {
        let bn = |c: usize| BatchNormConfig::new(c).init(device);
        let output = if bottleneck { 4 * planes } else { planes };
        let downsample = (stride != 1 || input != output).then(|| Downsample {
            conv: conv(input, output, 1, stride, device),
            bn: bn(output),
        });
        if bottleneck {
            Self {
                conv1: conv(input, planes, 1, 1, device),
                bn1: bn(planes),
                conv2: conv(planes, planes, 3, stride, device),
                bn2: bn(planes),
                conv3: Some(conv(planes, output, 1, 1, device)),
                bn3: Some(bn(output)),
                downsample,
            }
        } else {
            Self {
                conv1: conv(input, planes, 3, stride, device),
                bn1: bn(planes),
                conv2: conv(planes, planes, 3, 1, device),
                bn2: bn(planes),
                conv3: None,
                bn3: None,
                downsample,
            }
        }
    }
}

impl<B: Kernels> ResidualBlock<B> {
    pub fn forward<R: Rectifier<B>>(&self, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        let out = relu.relu(conv_batch_norm(&self.conv1, &self.bn1, x.clone(), relu));
        let mut out = conv_batch_norm(&self.conv2, &self.bn2, out, relu);
        if let (Some(conv3), Some(bn3)) = (&self.conv3, &self.bn3) {
            out = conv_batch_norm(conv3, bn3, relu.relu(out), relu);
        }
        let shortcut = match &self.downsample {
            Some(d) => conv_batch_norm(&d.conv, &d.bn, x, relu),
            None => x,
        };
        relu.relu(out + shortcut)
    }
}

#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: BatchNorm<B>,
    pub layer1: Vec<ResidualBlock<B>>,
    pub layer2: Vec<ResidualBlock<B>>,
    pub layer3: Vec<ResidualBlock<B>>,
    pub layer4: Vec<ResidualBlock<B>>,
    pub fc: Linear<B>,
    channels: usize,
}

impl<B: Backend> ResNet<B> {
    pub(crate) fn with_new_classifier(self, outputs: usize, device: &B::Device) -> Self {
        let fc = fresh_linear(&self.fc, outputs, device);
        Self { fc, ..self }
    }

    /// Layer 0 is the stem, layer i ≥ 1 the i-th residual block.
    pub(crate) fn trained_from(self, first: usize) -> Self {
        let stem = first == 0;
        let mut layer = 0;
        let mut stage = |blocks: Vec<ResidualBlock<B>>| -> Vec<ResidualBlock<B>> {
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
            layer4: stage(self.layer4),
            fc: trainable(self.fc, true),
            channels: self.channels,
        }
    }
}

impl<B: Kernels> SplitModel<B> for ResNet<B> {
    fn architecture(&self) -> &'static str {
        "resnet"
    }

    fn input_shape(&self) -> InputShape {
        InputShape::AtLeast {
            channels: self.channels,
            min: 32,
        }
    }

    fn layer_names(&self) -> Vec<String> {
        residual_layer_names(
            &[&self.layer1, &self.layer2, &self.layer3, &self.layer4].map(Vec::len),
        )
    }

    /// Layer 0, the stem, ends with the max pool (torchvision's `conv1, bn1, relu, maxpool`).
    fn layer<R: Rectifier<B>>(&self, index: usize, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        if index == 0 {
            let x = relu.relu(conv_batch_norm(&self.conv1, &self.bn1, x, relu));
            return max_pool2d(x, [3, 3], [2, 2], [1, 1]);
        }
        let block = [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
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
    fn stages_shrink_the_map_32_times() {
        let device = Default::default();
        for (depth, channels) in [(18, 32), (50, 128)] {
            let net = ResNetConfig { depth, width: 4 }.init::<Flex>(3, 7, &device);
            let a = net.features(Tensor::zeros([1, 3, 64, 64], &device));
            assert_eq!(a.dims(), [1, channels, 2, 2], "resnet{depth}");
            assert_eq!(net.classifier(a).dims(), [1, 7]);
        }
    }
}
