//! VGG (Simonyan & Zisserman, 2015) with torchvision's layout: `features` (3×3 convs, ReLU,
//! 2×2 max-pools), adaptive average pool to 7×7, and a three-layer `classifier`.
//!
//! The split is the tutorial's: features end at the last conv + ReLU (`features[:36]` for
//! VGG19, 512×14×14 at 224), the final max-pool opens the classifier. Dropout is left out:
//! it is the identity at inference, and Grad-CAM runs the classifier on the autodiff backend,
//! where a dropout layer would drop.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::module::adaptive_avg_pool2d;
use kernels::{Kernels, max_pool2d};
use serde::{Deserialize, Serialize};

use crate::norm::biased_conv2d;
use crate::transfer::{fresh_linear, trainable};
use crate::{InputShape, Rectifier, SplitModel, conv_batch_norm};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VggConfig {
    /// 11, 13, 16 or 19 weight layers.
    pub depth: usize,
    /// BatchNorm after each conv (torchvision's `vgg19_bn`).
    pub batch_norm: bool,
    /// Channels of the first stage (64); the others have 2×, 4×, 8× and 8× as many.
    pub width: usize,
    /// Units of the two hidden classifier layers (4096).
    pub hidden: usize,
}

impl Default for VggConfig {
    fn default() -> Self {
        Self {
            depth: 19,
            batch_norm: false,
            width: 64,
            hidden: 4096,
        }
    }
}

/// Side of the adaptive pool before the classifier, as in torchvision.
const POOLED: usize = 7;

impl VggConfig {
    /// Convs per stage (torchvision's configurations A, B, D, E), `None` for other depths.
    pub fn convs_per_stage(&self) -> Option<[usize; 5]> {
        match self.depth {
            11 => Some([1, 1, 2, 2, 2]),
            13 => Some([2, 2, 2, 2, 2]),
            16 => Some([2, 2, 3, 3, 3]),
            19 => Some([2, 2, 4, 4, 4]),
            _ => None,
        }
    }

    /// Output channels of every conv, and whether a max-pool follows it.
    fn convs(&self) -> Vec<(usize, bool)> {
        let per_stage = self.convs_per_stage().expect("VGG depth 11, 13, 16 or 19");
        let widths = [1, 2, 4, 8, 8].map(|m| m * self.width);
        per_stage
            .iter()
            .zip(widths)
            .flat_map(|(&n, width)| (0..n).map(move |i| (width, i + 1 == n)))
            .collect()
    }

    /// torchvision's index in `features` of each conv (its BatchNorm, if any, is the next).
    pub(crate) fn torch_feature_indices(&self) -> Vec<usize> {
        let step = if self.batch_norm { 3 } else { 2 };
        let mut index = 0;
        self.convs()
            .into_iter()
            .map(|(_, pooled)| {
                let at = index;
                index += step + usize::from(pooled);
                at
            })
            .collect()
    }

    /// # Panics
    /// If the depth is not 11, 13, 16 or 19 ([`crate::ModelSpec::validate`] reports it first).
    pub fn init<B: Backend>(
        &self,
        channels: usize,
        num_classes: usize,
        device: &B::Device,
    ) -> Vgg<B> {
        let mut input = channels;
        let layers = self
            .convs()
            .into_iter()
            .map(|(output, pool)| {
                let conv = Conv2dConfig::new([input, output], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(device);
                input = output;
                VggConv {
                    conv,
                    bn: self
                        .batch_norm
                        .then(|| BatchNormConfig::new(output).init(device)),
                    pool,
                }
            })
            .collect();
        let flat = input * POOLED * POOLED;
        Vgg {
            layers,
            head: vec![
                LinearConfig::new(flat, self.hidden).init(device),
                LinearConfig::new(self.hidden, self.hidden).init(device),
                LinearConfig::new(self.hidden, num_classes).init(device),
            ],
            channels,
        }
    }
}

#[derive(Module, Debug)]
pub struct VggConv<B: Backend> {
    pub conv: Conv2d<B>,
    pub bn: Option<BatchNorm<B>>,
    /// A 2×2 max-pool follows (it ends a stage).
    pool: bool,
}

#[derive(Module, Debug)]
pub struct Vgg<B: Backend> {
    /// torchvision's `features`, one entry per conv (with its BatchNorm).
    pub layers: Vec<VggConv<B>>,
    /// torchvision's `classifier`: its three Linear layers.
    pub head: Vec<Linear<B>>,
    channels: usize,
}

fn pool2<B: Kernels>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    max_pool2d(x, [2, 2], [2, 2], [0, 0])
}

impl<B: Backend> Vgg<B> {
    pub(crate) fn with_new_classifier(self, outputs: usize, device: &B::Device) -> Self {
        let mut head = self.head;
        head[2] = fresh_linear(&head[2], outputs, device);
        Self { head, ..self }
    }

    /// Layer i is the i-th convolution.
    pub(crate) fn trained_from(self, first: usize) -> Self {
        let layers = self.layers.into_iter().enumerate();
        Self {
            layers: layers.map(|(i, l)| trainable(l, i >= first)).collect(),
            head: trainable(self.head, true),
            channels: self.channels,
        }
    }
}

impl<B: Kernels> SplitModel<B> for Vgg<B> {
    fn architecture(&self) -> &'static str {
        "vgg"
    }

    fn input_shape(&self) -> InputShape {
        InputShape::AtLeast {
            channels: self.channels,
            min: 32,
        }
    }

    /// `features.N`, N the index of each conv's ReLU in torchvision's `features`: the tutorial's
    /// `features[:36]` of VGG19 ends at `features.35`.
    fn layer_names(&self) -> Vec<String> {
        let mut index = 0;
        self.layers
            .iter()
            .map(|layer| {
                let relu = index + 1 + usize::from(layer.bn.is_some());
                index = relu + 1 + usize::from(layer.pool);
                format!("features.{relu}")
            })
            .collect()
    }

    /// Conv (BatchNorm) ReLU, after the previous layer's pool if it has one: each layer ends at
    /// a ReLU, and the last pool belongs to the head, so the default map is before it.
    fn layer<R: Rectifier<B>>(&self, index: usize, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        let x = match index.checked_sub(1).map(|i| self.layers[i].pool) {
            Some(true) => pool2(x),
            _ => x,
        };
        let layer = &self.layers[index];
        let x = match &layer.bn {
            Some(bn) => conv_batch_norm(&layer.conv, bn, x, relu),
            None => biased_conv2d(&layer.conv, x, relu),
        };
        relu.relu(x)
    }

    /// The last pool and torchvision's adaptive average pool to 7×7, flattened.
    fn embedding(&self, activations: Tensor<B, 4>) -> Tensor<B, 2> {
        adaptive_avg_pool2d(pool2(activations), [POOLED, POOLED]).flatten(1, 3)
    }

    fn head_from_embedding<R: Rectifier<B>>(&self, pooled: Tensor<B, 2>, relu: &R) -> Tensor<B, 2> {
        let [hidden1, hidden2, logits] = [0, 1, 2].map(|i| &self.head[i]);
        let x = relu.relu(kernels::linear(hidden1, pooled));
        let x = relu.relu(kernels::linear(hidden2, x));
        kernels::linear(logits, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn torch_indices_match_torchvision_layouts() {
        let vgg19 = VggConfig::default();
        let indices = vgg19.torch_feature_indices();
        // features[:36] of torchvision's vgg19 ends at the ReLU after the conv at 34.
        assert_eq!(indices.len(), 16);
        assert_eq!(&indices[..4], &[0, 2, 5, 7]);
        assert_eq!(*indices.last().unwrap(), 34);
        let vgg11_bn = VggConfig {
            depth: 11,
            batch_norm: true,
            ..Default::default()
        };
        assert_eq!(
            vgg11_bn.torch_feature_indices(),
            [0, 4, 8, 11, 15, 18, 22, 25]
        );
    }

    #[test]
    fn layers_are_named_by_their_relus_index_in_torchvision() {
        let device = Default::default();
        let narrow = |depth, batch_norm| VggConfig {
            depth,
            batch_norm,
            width: 1,
            hidden: 2,
        };
        let vgg19 = narrow(19, false).init::<Flex>(3, 2, &device);
        let names = vgg19.layer_names();
        assert_eq!(&names[..3], ["features.1", "features.3", "features.6"]);
        assert_eq!(names.last().unwrap(), "features.35");
        let vgg11_bn = narrow(11, true).init::<Flex>(3, 2, &device);
        assert_eq!(vgg11_bn.layer_names()[1], "features.6");
    }

    #[test]
    fn features_end_before_the_last_pool() {
        let device = Default::default();
        let config = VggConfig {
            depth: 11,
            batch_norm: false,
            width: 2,
            hidden: 8,
        };
        let vgg = config.init::<Flex>(3, 5, &device);
        let a = vgg.features(Tensor::zeros([1, 3, 64, 64], &device));
        assert_eq!(a.dims(), [1, 16, 4, 4]);
        assert_eq!(vgg.classifier(a).dims(), [1, 5]);
    }
}
