//! ConvNeXt (Liu et al., 2022) as torchvision builds it: a 4×4 stride-4 patchifying stem with a
//! channel LayerNorm, four stages of ConvNeXt blocks (7×7 depthwise convolution, LayerNorm over
//! the channels, a two-layer GELU MLP applied per pixel, a learned per-channel layer scale, the
//! identity added) with a LayerNorm + 2×2 stride-2 convolution between stages, global average
//! pooling, a LayerNorm and `classifier.2`. Layers are torchvision's: `features.0` (the stem),
//! `features.S.B` (block B of the stage at `features.S`, S odd) and `features.2`, `.4`, `.6`
//! (the downsamplings); features end at the last block, pytorch-grad-cam's `features[-1]`.
//! Stochastic depth is the identity at inference and is not applied in training here.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use kernels::Kernels;
use serde::{Deserialize, Serialize};

use crate::norm::biased_conv2d;
use crate::transfer::{fresh_linear, trainable};
use crate::{InputShape, Rectifier, SplitModel, global_average_pool};

const EPSILON: f64 = 1e-6;
/// torchvision's initial layer scale.
const LAYER_SCALE: f32 = 1e-6;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConvNextConfig {
    /// Each stage's channels.
    pub dims: [usize; 4],
    /// Each stage's number of blocks.
    pub depths: [usize; 4],
}

impl Default for ConvNextConfig {
    /// ConvNeXt-Tiny.
    fn default() -> Self {
        Self {
            dims: [96, 192, 384, 768],
            depths: [3, 3, 9, 3],
        }
    }
}

impl ConvNextConfig {
    /// `convnext_tiny`, `_small`, `_base`, `_large` as torchvision publishes them.
    pub fn published(size: &str) -> Option<Self> {
        let (dims, depths) = match size {
            "tiny" => ([96, 192, 384, 768], [3, 3, 9, 3]),
            "small" => ([96, 192, 384, 768], [3, 3, 27, 3]),
            "base" => ([128, 256, 512, 1024], [3, 3, 27, 3]),
            "large" => ([192, 384, 768, 1536], [3, 3, 27, 3]),
            _ => return None,
        };
        Some(Self { dims, depths })
    }

    pub fn init<B: Backend>(
        &self,
        channels: usize,
        num_classes: usize,
        device: &B::Device,
    ) -> ConvNext<B> {
        let [first, .., last] = self.dims;
        let stages = self.dims.iter().zip(self.depths).map(|(&dim, depth)| {
            (0..depth)
                .map(|_| ConvNextBlock::new(dim, device))
                .collect()
        });
        ConvNext {
            stem: Patchify::new(channels, first, 4, device),
            stages: stages.collect(),
            downsamples: self
                .dims
                .windows(2)
                .map(|pair| Downsample::new(pair[0], pair[1], device))
                .collect(),
            norm: channel_norm(last, device),
            classifier: LinearConfig::new(last, num_classes).init(device),
            channels,
        }
    }
}

fn channel_norm<B: Backend>(channels: usize, device: &B::Device) -> LayerNorm<B> {
    LayerNormConfig::new(channels)
        .with_epsilon(EPSILON)
        .init(device)
}

/// torchvision's `LayerNorm2d`: each pixel's channels normalised, `[batch, c, h, w]` in and out.
fn layer_norm_2d<B: Backend>(norm: &LayerNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    norm.forward(x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2])
}

/// The stem: a convolution whose kernel equals its stride, then LayerNorm2d.
#[derive(Module, Debug)]
pub struct Patchify<B: Backend> {
    pub conv: Conv2d<B>,
    pub norm: LayerNorm<B>,
}

impl<B: Backend> Patchify<B> {
    fn new(input: usize, output: usize, patch: usize, device: &B::Device) -> Self {
        Self {
            conv: Conv2dConfig::new([input, output], [patch, patch])
                .with_stride([patch, patch])
                .init(device),
            norm: channel_norm(output, device),
        }
    }
}

impl<B: Kernels> Patchify<B> {
    fn forward<R: Rectifier<B>>(&self, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        layer_norm_2d(&self.norm, biased_conv2d(&self.conv, x, relu))
    }
}

/// Between stages: LayerNorm2d, then a 2×2 stride-2 convolution.
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    pub norm: LayerNorm<B>,
    pub conv: Conv2d<B>,
}

impl<B: Backend> Downsample<B> {
    fn new(input: usize, output: usize, device: &B::Device) -> Self {
        Self {
            norm: channel_norm(input, device),
            conv: Conv2dConfig::new([input, output], [2, 2])
                .with_stride([2, 2])
                .init(device),
        }
    }
}

impl<B: Kernels> Downsample<B> {
    fn forward<R: Rectifier<B>>(&self, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        biased_conv2d(&self.conv, layer_norm_2d(&self.norm, x), relu)
    }
}

#[derive(Module, Debug)]
pub struct ConvNextBlock<B: Backend> {
    pub depthwise: Conv2d<B>,
    pub norm: LayerNorm<B>,
    pub expand: Linear<B>,
    pub project: Linear<B>,
    /// `[channels, 1, 1]`, as torchvision stores it.
    pub layer_scale: Param<Tensor<B, 3>>,
}

impl<B: Backend> ConvNextBlock<B> {
    fn new(dim: usize, device: &B::Device) -> Self {
        Self {
            depthwise: Conv2dConfig::new([dim, dim], [7, 7])
                .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3))
                .with_groups(dim)
                .init(device),
            norm: channel_norm(dim, device),
            expand: LinearConfig::new(dim, 4 * dim).init(device),
            project: LinearConfig::new(4 * dim, dim).init(device),
            layer_scale: Param::from_tensor(Tensor::full([dim, 1, 1], LAYER_SCALE, device)),
        }
    }
}

impl<B: Kernels> ConvNextBlock<B> {
    fn forward<R: Rectifier<B>>(&self, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        let [batch, channels, h, w] = x.dims();
        let y = biased_conv2d(&self.depthwise, x.clone(), relu);
        // Per pixel: channels last, one row per pixel.
        let rows = y.permute([0, 2, 3, 1]).reshape([batch * h * w, channels]);
        let rows = self.norm.forward(rows);
        let rows = burn::tensor::activation::gelu(kernels::linear(&self.expand, rows));
        let rows = kernels::linear(&self.project, rows);
        let y = rows.reshape([batch, h, w, channels]).permute([0, 3, 1, 2]);
        x + y * self.layer_scale.val().unsqueeze::<4>()
    }
}

/// Where a layer sits: the stem, block B of stage S, the downsampling after stage S.
#[derive(Debug, Clone, Copy)]
enum Part {
    Stem,
    Block(usize, usize),
    Downsample(usize),
}

#[derive(Module, Debug)]
pub struct ConvNext<B: Backend> {
    pub stem: Patchify<B>,
    pub stages: Vec<Vec<ConvNextBlock<B>>>,
    pub downsamples: Vec<Downsample<B>>,
    /// `classifier.0`: LayerNorm of the pooled features.
    pub norm: LayerNorm<B>,
    /// `classifier.2`.
    pub classifier: Linear<B>,
    channels: usize,
}

impl<B: Backend> ConvNext<B> {
    fn parts(&self) -> Vec<Part> {
        let mut parts = vec![Part::Stem];
        for (s, stage) in self.stages.iter().enumerate() {
            parts.extend((0..stage.len()).map(|b| Part::Block(s, b)));
            if s < self.downsamples.len() {
                parts.push(Part::Downsample(s));
            }
        }
        parts
    }

    pub(crate) fn with_new_classifier(self, outputs: usize, device: &B::Device) -> Self {
        let classifier = fresh_linear(&self.classifier, outputs, device);
        Self { classifier, ..self }
    }

    pub(crate) fn trained_from(self, first: usize) -> Self {
        let parts = self.parts();
        let index = |wanted: &dyn Fn(Part) -> bool| {
            parts
                .iter()
                .position(|&p| wanted(p))
                .expect("every part has a layer")
        };
        let stages = self.stages.into_iter().enumerate().map(|(s, stage)| {
            let blocks = stage.into_iter().enumerate();
            blocks
                .map(|(b, block)| {
                    let at = index(&|p| matches!(p, Part::Block(ps, pb) if ps == s && pb == b));
                    trainable(block, at >= first)
                })
                .collect()
        });
        let downsamples = self.downsamples.into_iter().enumerate().map(|(s, down)| {
            let at = index(&|p| matches!(p, Part::Downsample(ps) if ps == s));
            trainable(down, at >= first)
        });
        Self {
            stem: trainable(self.stem, first == 0),
            stages: stages.collect(),
            downsamples: downsamples.collect(),
            norm: trainable(self.norm, true),
            classifier: trainable(self.classifier, true),
            channels: self.channels,
        }
    }
}

impl<B: Kernels> SplitModel<B> for ConvNext<B> {
    fn architecture(&self) -> &'static str {
        "convnext"
    }

    fn input_shape(&self) -> InputShape {
        InputShape::AtLeast {
            channels: self.channels,
            min: 32,
        }
    }

    /// torchvision's `features` holds the stem at 0 and then a stage and a downsampling in
    /// turn: stage S at `features.(2S + 1)`, its downsampling at `features.(2S + 2)`.
    fn layer_names(&self) -> Vec<String> {
        self.parts()
            .into_iter()
            .map(|part| match part {
                Part::Stem => "features.0".to_string(),
                Part::Block(s, b) => format!("features.{}.{b}", 2 * s + 1),
                Part::Downsample(s) => format!("features.{}", 2 * s + 2),
            })
            .collect()
    }

    /// GELU is not a ReLU: guided backpropagation is the plain gradient here, as in
    /// pytorch-grad-cam.
    fn layer<R: Rectifier<B>>(&self, index: usize, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        match self.parts()[index] {
            Part::Stem => self.stem.forward(x, relu),
            Part::Block(s, b) => self.stages[s][b].forward(x, relu),
            Part::Downsample(s) => self.downsamples[s].forward(x, relu),
        }
    }

    fn embedding(&self, activations: Tensor<B, 4>) -> Tensor<B, 2> {
        global_average_pool(activations)
    }

    fn head_from_embedding<R: Rectifier<B>>(&self, pooled: Tensor<B, 2>, _: &R) -> Tensor<B, 2> {
        kernels::linear(&self.classifier, self.norm.forward(pooled))
    }
}

/// torchvision's keys → module paths: `features.0.{0,1}` (stem), `features.(2S+1).B.block.{0,2,
/// 3,5}` and `.layer_scale` (blocks), `features.(2S+2).{0,1}` (downsamplings), `classifier.0`,
/// `classifier.2`.
pub(crate) fn torch_patterns(config: &ConvNextConfig) -> Vec<(String, String)> {
    let mut patterns = vec![
        (r"^features\.0\.0\.".to_string(), "stem.conv.".to_string()),
        (r"^features\.0\.1\.".to_string(), "stem.norm.".to_string()),
        (r"^classifier\.0\.".to_string(), "norm.".to_string()),
        (r"^classifier\.2\.".to_string(), "classifier.".to_string()),
    ];
    for s in 0..config.depths.len() {
        let stage = 2 * s + 1;
        for (torch, ours) in [
            ("block.0.", "depthwise."),
            ("block.2.", "norm."),
            ("block.3.", "expand."),
            ("block.5.", "project."),
            ("layer_scale", "layer_scale"),
        ] {
            patterns.push((
                format!(r"^features\.{stage}\.(\d+)\.{}", torch.replace('.', r"\.")),
                format!("stages.{s}.${{1}}.{ours}"),
            ));
        }
        if s + 1 < config.depths.len() {
            let down = stage + 1;
            patterns.push((
                format!(r"^features\.{down}\.0\."),
                format!("downsamples.{s}.norm."),
            ));
            patterns.push((
                format!(r"^features\.{down}\.1\."),
                format!("downsamples.{s}.conv."),
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
    fn layers_follow_torchvisions_features() {
        let device = Default::default();
        let config = ConvNextConfig {
            dims: [8, 16, 24, 32],
            depths: [1, 2, 1, 1],
        };
        let net = config.init::<Flex>(3, 4, &device);
        assert_eq!(
            net.layer_names(),
            [
                "features.0",
                "features.1.0",
                "features.2",
                "features.3.0",
                "features.3.1",
                "features.4",
                "features.5.0",
                "features.6",
                "features.7.0"
            ]
        );
        let a = net.features(Tensor::zeros([2, 3, 64, 64], &device));
        assert_eq!(a.dims(), [2, 32, 2, 2]);
        assert_eq!(net.classifier(a).dims(), [2, 4]);
    }

    #[test]
    fn a_fresh_block_is_nearly_the_identity() {
        let device = Default::default();
        let block = ConvNextBlock::<Flex>::new(8, &device);
        let x = Tensor::<Flex, 4>::random(
            [1, 8, 5, 5],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let change = (block.forward(x.clone(), &crate::PlainRelu) - x)
            .abs()
            .max()
            .into_scalar();
        assert!(change < 1e-4, "{change}");
    }
}
