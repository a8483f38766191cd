//! The Grad-CAM tutorial's SimpleCNN: three unpadded convolutions, each after a BatchNorm, then
//! a flatten → MLP head. Its head fixes the input size.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use kernels::Kernels;
use serde::{Deserialize, Serialize};

use crate::norm::biased_conv2d;
use crate::transfer::{fresh_linear, param_ids, trainable};
use crate::{InputShape, Rectifier, SplitModel, batch_norm};
use burn::module::ParamId;

/// Widths of the SimpleCNN; the defaults are the tutorial's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TutorialCnnConfig {
    /// Output channels of the three convolutions.
    pub conv_channels: [usize; 3],
    /// Kernel sizes of the three convolutions (no padding, stride 1).
    pub kernel_sizes: [usize; 3],
    /// Sizes of the two hidden Linear layers.
    pub hidden: [usize; 2],
}

impl Default for TutorialCnnConfig {
    fn default() -> Self {
        Self {
            conv_channels: [6, 9, 6],
            kernel_sizes: [5, 7, 9],
            hidden: [1024, 128],
        }
    }
}

impl TutorialCnnConfig {
    /// The side of the last activation map for an input side, if the image is large enough.
    pub fn feature_side(&self, side: usize) -> Option<usize> {
        self.kernel_sizes
            .iter()
            .try_fold(side, |s, &k| s.checked_sub(k - 1).filter(|&s| s > 0))
    }

    /// The smallest input side the three valid convolutions accept.
    pub fn min_side(&self) -> usize {
        self.kernel_sizes.iter().map(|k| k - 1).sum::<usize>() + 1
    }

    pub fn init<B: Backend>(
        &self,
        channels: usize,
        image_size: [usize; 2],
        num_classes: usize,
        device: &B::Device,
    ) -> TutorialCnn<B> {
        let [c1, c2, c3] = self.conv_channels;
        let [k1, k2, k3] = self.kernel_sizes;
        let conv = |i, o, k| Conv2dConfig::new([i, o], [k, k]).init(device);
        let side = |s| self.feature_side(s).unwrap_or(1);
        let flat = c3 * side(image_size[0]) * side(image_size[1]);
        TutorialCnn {
            norm1: BatchNormConfig::new(channels).init(device),
            conv1: conv(channels, c1, k1),
            norm2: BatchNormConfig::new(c1).init(device),
            conv2: conv(c1, c2, k2),
            norm3: BatchNormConfig::new(c2).init(device),
            conv3: conv(c2, c3, k3),
            fc1: LinearConfig::new(flat, self.hidden[0]).init(device),
            fc2: LinearConfig::new(self.hidden[0], self.hidden[1]).init(device),
            fc3: LinearConfig::new(self.hidden[1], num_classes).init(device),
            channels,
            image_size,
        }
    }
}

#[derive(Module, Debug)]
pub struct TutorialCnn<B: Backend> {
    pub norm1: BatchNorm<B>,
    pub conv1: Conv2d<B>,
    pub norm2: BatchNorm<B>,
    pub conv2: Conv2d<B>,
    pub norm3: BatchNorm<B>,
    pub conv3: Conv2d<B>,
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
    pub fc3: Linear<B>,
    channels: usize,
    image_size: [usize; 2],
}

impl<B: Backend> TutorialCnn<B> {
    pub(crate) fn with_new_classifier(self, outputs: usize, device: &B::Device) -> Self {
        let fc3 = fresh_linear(&self.fc3, outputs, device);
        Self { fc3, ..self }
    }

    /// Layer i is the i-th (BatchNorm, convolution) pair.
    pub(crate) fn trained_from(self, first: usize) -> Self {
        Self {
            norm1: trainable(self.norm1, first == 0),
            conv1: trainable(self.conv1, first == 0),
            norm2: trainable(self.norm2, first <= 1),
            conv2: trainable(self.conv2, first <= 1),
            norm3: trainable(self.norm3, first <= 2),
            conv3: trainable(self.conv3, first <= 2),
            fc1: trainable(self.fc1, true),
            fc2: trainable(self.fc2, true),
            fc3: trainable(self.fc3, true),
            ..self
        }
    }

    pub(crate) fn classifier_params(&self) -> Vec<ParamId> {
        [&self.fc1, &self.fc2, &self.fc3]
            .into_iter()
            .flat_map(param_ids)
            .collect()
    }
}

impl<B: Kernels> SplitModel<B> for TutorialCnn<B> {
    fn architecture(&self) -> &'static str {
        "tutorial_cnn"
    }

    fn input_shape(&self) -> InputShape {
        InputShape::Fixed {
            channels: self.channels,
            size: self.image_size,
        }
    }

    fn layer_names(&self) -> Vec<String> {
        ["conv1", "conv2", "conv3"].map(String::from).into()
    }

    fn layer<R: Rectifier<B>>(&self, index: usize, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        let (norm, conv) = match index {
            0 => (&self.norm1, &self.conv1),
            1 => (&self.norm2, &self.conv2),
            _ => (&self.norm3, &self.conv3),
        };
        relu.relu(biased_conv2d(conv, batch_norm(norm, x, relu), relu))
    }

    fn embedding(&self, activations: Tensor<B, 4>) -> Tensor<B, 2> {
        activations.flatten(1, 3)
    }

    fn head_from_embedding<R: Rectifier<B>>(&self, x: Tensor<B, 2>, relu: &R) -> Tensor<B, 2> {
        let x = relu.relu(kernels::linear(&self.fc1, x));
        let x = relu.relu(kernels::linear(&self.fc2, x));
        kernels::linear(&self.fc3, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tutorials_first_linear_takes_72600_inputs_at_128() {
        let cfg = TutorialCnnConfig::default();
        assert_eq!(cfg.feature_side(128), Some(110));
        assert_eq!(6 * 110 * 110, 72_600);
        assert_eq!(cfg.min_side(), 19);
        assert_eq!(cfg.feature_side(18), None);
    }
}
