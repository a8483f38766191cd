//! The Vision Transformer (Dosovitskiy et al., 2021) as torchvision builds it: a patchifying
//! convolution (`conv_proj`), a class token and learned position embeddings, pre-norm encoder
//! blocks (`ln_1`, multi-head self-attention, residual; `ln_2`, GELU MLP, residual), a final
//! LayerNorm and `heads.head` on the class token.
//!
//! Between layers a token sequence `[batch, n, d]` travels as `[batch, d, 1, n]` (the class
//! token first), so that the channels of a layer's output are the embedding's dimensions. A
//! CAM needs them as a grid: [`SplitModel::cam_view`] drops the class token and lays the patch
//! tokens out as `[batch, d, h, w]`, which is what pytorch-grad-cam's `reshape_transform` for
//! ViT does.
//!
//! Layers: `conv_proj`, then per block `encoder.layers.encoder_layer_N.ln_1` and
//! `encoder.layers.encoder_layer_N` (its output). Features end at the last block's `ln_1`,
//! the layer pytorch-grad-cam's users take: after the last block only the class token reaches
//! the head, so the patch tokens' gradients there are zero. The residual stream has to cross
//! an `ln_1` layer beside its normalised copy, so an `ln_1` layer's output holds both (the
//! normalised tokens in the first `d` channels, the block's input in the next `d`), and its
//! view keeps the first half.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::{gelu, softmax};
use kernels::Kernels;
use serde::{Deserialize, Serialize};

use crate::norm::biased_conv2d;
use crate::transfer::{fresh_linear, trainable};
use crate::{InputShape, Rectifier, SplitModel};

const EPSILON: f64 = 1e-6;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VitConfig {
    /// The side of the (square) images; the position embeddings fix it.
    pub image_size: usize,
    pub patch_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub hidden_dim: usize,
    pub mlp_dim: usize,
}

impl Default for VitConfig {
    /// ViT-B/16.
    fn default() -> Self {
        Self {
            image_size: 224,
            patch_size: 16,
            num_layers: 12,
            num_heads: 12,
            hidden_dim: 768,
            mlp_dim: 3072,
        }
    }
}

impl VitConfig {
    /// `vit_b_16`, `vit_b_32`, `vit_l_16`, `vit_l_32` as torchvision publishes them.
    pub fn published(name: &str) -> Option<Self> {
        let (patch_size, num_layers, num_heads, hidden_dim, mlp_dim) = match name {
            "b_16" => (16, 12, 12, 768, 3072),
            "b_32" => (32, 12, 12, 768, 3072),
            "l_16" => (16, 24, 16, 1024, 4096),
            "l_32" => (32, 24, 16, 1024, 4096),
            _ => return None,
        };
        Some(Self {
            image_size: 224,
            patch_size,
            num_layers,
            num_heads,
            hidden_dim,
            mlp_dim,
        })
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Rejects what cannot be built, saying what to change.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            self.patch_size,
            self.num_layers,
            self.num_heads,
            self.hidden_dim,
            self.mlp_dim,
        ];
        if positive.contains(&0) {
            return Err("vit sizes must be positive".into());
        }
        if !self.image_size.is_multiple_of(self.patch_size) || self.image_size < self.patch_size {
            return Err(format!(
                "vit image_size {} must be a multiple of patch_size {}",
                self.image_size, self.patch_size
            ));
        }
        if !self.hidden_dim.is_multiple_of(self.num_heads) {
            return Err(format!(
                "vit hidden_dim {} must be a multiple of num_heads {}",
                self.hidden_dim, self.num_heads
            ));
        }
        Ok(())
    }

    pub fn init<B: Backend>(
        &self,
        channels: usize,
        num_classes: usize,
        device: &B::Device,
    ) -> VisionTransformer<B> {
        let d = self.hidden_dim;
        let tokens = self.grid() * self.grid() + 1;
        let p = self.patch_size;
        VisionTransformer {
            conv_proj: Conv2dConfig::new([channels, d], [p, p])
                .with_stride([p, p])
                .init(device),
            class_token: Param::from_tensor(Tensor::zeros([1, 1, d], device)),
            encoder: Encoder {
                pos_embedding: Param::from_tensor(Tensor::random(
                    [1, tokens, d],
                    Distribution::Normal(0.0, 0.02),
                    device,
                )),
                layers: (0..self.num_layers)
                    .map(|_| EncoderBlock::new(d, self.mlp_dim, self.num_heads, device))
                    .collect(),
                ln: layer_norm(d, device),
            },
            head: LinearConfig::new(d, num_classes).init(device),
            channels,
            image_size: self.image_size,
            grid: self.grid(),
        }
    }
}

fn layer_norm<B: Backend>(d: usize, device: &B::Device) -> LayerNorm<B> {
    LayerNormConfig::new(d).with_epsilon(EPSILON).init(device)
}

/// `[batch, d, 1, n]` → `[batch, n, d]`.
pub(crate) fn to_tokens<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [batch, d, _, n] = x.dims();
    x.reshape([batch, d, n]).swap_dims(1, 2)
}

/// A `first_norm` output `[batch, 2d, ...]` with its second half, the block's input, zeroed.
pub(crate) fn normalised_half<B: Backend>(packed: Tensor<B, 4>) -> Tensor<B, 4> {
    let [batch, twice, h, w] = packed.dims();
    let normed = packed.clone().slice([0..batch, 0..twice / 2, 0..h, 0..w]);
    Tensor::cat(vec![normed.clone(), normed.zeros_like()], 1)
}

/// `[batch, n, d]` → `[batch, d, 1, n]`.
pub(crate) fn from_tokens<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 4> {
    let [batch, n, d] = x.dims();
    x.swap_dims(1, 2).reshape([batch, d, 1, n])
}

/// A Linear layer applied to every token.
fn per_token<B: Kernels>(linear: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [batch, n, d] = x.dims();
    let y = kernels::linear(linear, x.reshape([batch * n, d]));
    let out = y.dims()[1];
    y.reshape([batch, n, out])
}

/// PyTorch's `nn.MultiheadAttention` as self-attention: one packed input projection
/// (`in_proj_weight` `[3d, d]`, PyTorch's layout, queries then keys then values), scaled
/// dot-product attention per head, `out_proj`.
#[derive(Module, Debug)]
pub struct SelfAttention<B: Backend> {
    pub in_proj_weight: Param<Tensor<B, 2>>,
    pub in_proj_bias: Param<Tensor<B, 1>>,
    pub out_proj: Linear<B>,
    heads: usize,
}

impl<B: Backend> SelfAttention<B> {
    fn new(d: usize, heads: usize, device: &B::Device) -> Self {
        let bound = (6.0 / (4 * d) as f64).sqrt();
        Self {
            in_proj_weight: Param::from_tensor(Tensor::random(
                [3 * d, d],
                Distribution::Uniform(-bound, bound),
                device,
            )),
            in_proj_bias: Param::from_tensor(Tensor::zeros([3 * d], device)),
            out_proj: LinearConfig::new(d, d).init(device),
            heads,
        }
    }
}

impl<B: Kernels> SelfAttention<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, n, d] = x.dims();
        let (heads, per_head) = (self.heads, d / self.heads);
        let rows = x.reshape([batch * n, d]);
        let qkv = rows.matmul(self.in_proj_weight.val().transpose())
            + self.in_proj_bias.val().unsqueeze::<2>();
        let split = |part: usize| {
            qkv.clone()
                .slice([0..batch * n, part * d..(part + 1) * d])
                .reshape([batch, n, heads, per_head])
                .swap_dims(1, 2)
        };
        let (q, k, v) = (split(0), split(1), split(2));
        let scores = q.matmul(k.swap_dims(2, 3)) / (per_head as f64).sqrt();
        let mixed = softmax(scores, 3).matmul(v);
        let mixed = mixed.swap_dims(1, 2).reshape([batch * n, d]);
        kernels::linear(&self.out_proj, mixed).reshape([batch, n, d])
    }
}

/// torchvision's `MLPBlock`: `mlp.0`, GELU, `mlp.3`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
}

impl<B: Kernels> Mlp<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        per_token(&self.fc2, gelu(per_token(&self.fc1, x)))
    }
}

#[derive(Module, Debug)]
pub struct EncoderBlock<B: Backend> {
    pub ln_1: LayerNorm<B>,
    pub self_attention: SelfAttention<B>,
    pub ln_2: LayerNorm<B>,
    pub mlp: Mlp<B>,
}

impl<B: Backend> EncoderBlock<B> {
    fn new(d: usize, mlp: usize, heads: usize, device: &B::Device) -> Self {
        Self {
            ln_1: layer_norm(d, device),
            self_attention: SelfAttention::new(d, heads, device),
            ln_2: layer_norm(d, device),
            mlp: Mlp {
                fc1: LinearConfig::new(d, mlp).init(device),
                fc2: LinearConfig::new(mlp, d).init(device),
            },
        }
    }
}

impl<B: Kernels> EncoderBlock<B> {
    /// `ln_1(x)` and `x`, one above the other in the channels: `[batch, 2d, 1, n]`.
    fn first_norm(&self, x: Tensor<B, 3>) -> Tensor<B, 4> {
        let normed = self.ln_1.forward(x.clone());
        from_tokens(Tensor::cat(vec![normed, x], 2))
    }

    /// The rest of the block, from `first_norm`'s output.
    fn rest(&self, packed: Tensor<B, 4>) -> Tensor<B, 3> {
        let tokens = to_tokens(packed);
        let [batch, n, twice] = tokens.dims();
        let d = twice / 2;
        let normed = tokens.clone().slice([0..batch, 0..n, 0..d]);
        let x = tokens.slice([0..batch, 0..n, d..twice]);
        let x = x + self.self_attention.forward(normed);
        x.clone() + self.mlp.forward(self.ln_2.forward(x))
    }
}

#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    /// `[1, tokens, d]`.
    pub pos_embedding: Param<Tensor<B, 3>>,
    pub layers: Vec<EncoderBlock<B>>,
    pub ln: LayerNorm<B>,
}

/// Where a layer sits: the patch embedding, block N's `ln_1`, block N's output.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    Patches,
    FirstNorm(usize),
    Block(usize),
}

#[derive(Module, Debug)]
pub struct VisionTransformer<B: Backend> {
    pub conv_proj: Conv2d<B>,
    /// `[1, 1, d]`.
    pub class_token: Param<Tensor<B, 3>>,
    pub encoder: Encoder<B>,
    /// `heads.head`.
    pub head: Linear<B>,
    channels: usize,
    image_size: usize,
    grid: usize,
}

impl<B: Backend> VisionTransformer<B> {
    fn part(&self, index: usize) -> Part {
        match index {
            0 => Part::Patches,
            i if i % 2 == 1 => Part::FirstNorm(i / 2),
            i => Part::Block(i / 2 - 1),
        }
    }

    /// Layer index of block `b`'s `ln_1`.
    fn first_norm_index(b: usize) -> usize {
        2 * b + 1
    }

    pub(crate) fn with_new_classifier(self, outputs: usize, device: &B::Device) -> Self {
        let head = fresh_linear(&self.head, outputs, device);
        Self { head, ..self }
    }

    /// A block trains whole when its `ln_1` layer does; the final LayerNorm with the last
    /// block.
    pub(crate) fn trained_from(self, first: usize) -> Self {
        let last = self.encoder.layers.len().saturating_sub(1);
        let tokens = first <= 1;
        let layers = self.encoder.layers.into_iter().enumerate();
        Self {
            conv_proj: trainable(self.conv_proj, first == 0),
            class_token: trainable(self.class_token, tokens),
            encoder: Encoder {
                pos_embedding: trainable(self.encoder.pos_embedding, tokens),
                layers: layers
                    .map(|(b, block)| trainable(block, Self::first_norm_index(b) >= first))
                    .collect(),
                ln: trainable(self.encoder.ln, Self::first_norm_index(last) >= first),
            },
            head: trainable(self.head, true),
            channels: self.channels,
            image_size: self.image_size,
            grid: self.grid,
        }
    }
}

impl<B: Kernels> VisionTransformer<B> {
    /// The patch grid `[batch, d, h, w]` → tokens with the class token first and the position
    /// embeddings added.
    fn tokens(&self, patches: Tensor<B, 4>) -> Tensor<B, 3> {
        let [batch, d, h, w] = patches.dims();
        let patches = patches.reshape([batch, d, h * w]).swap_dims(1, 2);
        let class = self.class_token.val().expand([batch, 1, d]);
        Tensor::cat(vec![class, patches], 1) + self.encoder.pos_embedding.val()
    }
}

impl<B: Kernels> SplitModel<B> for VisionTransformer<B> {
    fn architecture(&self) -> &'static str {
        "vit"
    }

    fn input_shape(&self) -> InputShape {
        InputShape::Fixed {
            channels: self.channels,
            size: [self.image_size, self.image_size],
        }
    }

    /// The last block contributes only its `ln_1`: its output is the head's business.
    fn layer_names(&self) -> Vec<String> {
        let blocks = self.encoder.layers.len();
        let mut names = vec!["conv_proj".to_string()];
        for b in 0..blocks {
            let block = format!("encoder.layers.encoder_layer_{b}");
            names.push(format!("{block}.ln_1"));
            if b + 1 < blocks {
                names.push(block);
            }
        }
        names
    }

    /// No ReLU anywhere: guided backpropagation is the plain gradient, as in pytorch-grad-cam.
    fn layer<R: Rectifier<B>>(&self, index: usize, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        let blocks = &self.encoder.layers;
        match self.part(index) {
            Part::Patches => biased_conv2d(&self.conv_proj, x, relu),
            Part::FirstNorm(0) => blocks[0].first_norm(self.tokens(x)),
            Part::FirstNorm(b) => blocks[b].first_norm(to_tokens(x)),
            Part::Block(b) => from_tokens(blocks[b].rest(x)),
        }
    }

    /// The normalised tokens of a `ln_1` layer, class token included; the block's input zeroed.
    fn hooked_part(&self, index: usize, output: Tensor<B, 4>) -> Tensor<B, 4> {
        match self.part(index) {
            Part::FirstNorm(_) => normalised_half(output),
            _ => output,
        }
    }

    fn cam_view(&self, index: usize, output: Tensor<B, 4>) -> Tensor<B, 4> {
        let [batch, channels, _, n] = output.dims();
        let d = match self.part(index) {
            Part::Patches => return output,
            Part::FirstNorm(_) => channels / 2,
            Part::Block(_) => channels,
        };
        output
            .slice([0..batch, 0..d, 0..1, 1..n])
            .reshape([batch, d, self.grid, self.grid])
    }

    /// The last block finished, the final LayerNorm, the class token.
    fn embedding(&self, activations: Tensor<B, 4>) -> Tensor<B, 2> {
        let last = self.encoder.layers.last().expect("at least one block");
        let tokens = self.encoder.ln.forward(last.rest(activations));
        let [batch, _, d] = tokens.dims();
        tokens.slice([0..batch, 0..1, 0..d]).reshape([batch, d])
    }

    fn head_from_embedding<R: Rectifier<B>>(&self, class: Tensor<B, 2>, _: &R) -> Tensor<B, 2> {
        kernels::linear(&self.head, class)
    }
}

/// torchvision's keys → module paths: `encoder.layers.encoder_layer_N.` → `encoder.layers.N.`,
/// `mlp.0`/`mlp.3` → `mlp.fc1`/`mlp.fc2`, `heads.head` → `head`.
pub(crate) fn torch_patterns() -> Vec<(String, String)> {
    [
        (
            r"^encoder\.layers\.encoder_layer_(\d+)\.",
            "encoder.layers.$1.",
        ),
        (r"\.mlp\.0\.", ".mlp.fc1."),
        (r"\.mlp\.3\.", ".mlp.fc2."),
        (r"^heads\.head\.", "head."),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    fn tiny() -> VitConfig {
        VitConfig {
            image_size: 32,
            patch_size: 8,
            num_layers: 3,
            num_heads: 2,
            hidden_dim: 8,
            mlp_dim: 12,
        }
    }

    #[test]
    fn layers_and_views_are_laid_out_as_pytorch_grad_cam_reshapes() {
        let device = Default::default();
        let net = tiny().init::<Flex>(3, 4, &device);
        assert_eq!(
            net.layer_names(),
            [
                "conv_proj",
                "encoder.layers.encoder_layer_0.ln_1",
                "encoder.layers.encoder_layer_0",
                "encoder.layers.encoder_layer_1.ln_1",
                "encoder.layers.encoder_layer_1",
                "encoder.layers.encoder_layer_2.ln_1"
            ]
        );
        let images = Tensor::random([2, 3, 32, 32], Distribution::Default, &device);
        let packed = net.features(images.clone());
        assert_eq!(packed.dims(), [2, 16, 1, 17]);
        let view = net.cam_view(net.last_layer(), packed.clone());
        assert_eq!(view.dims(), [2, 8, 4, 4]);
        // Patch (1, 2) is token 1 + 4 + 2, its channel 3 is row 3 of the normalised half.
        let token = packed.slice([1..2, 3..4, 0..1, 7..8]).into_scalar();
        let cell = view.slice([1..2, 3..4, 1..2, 2..3]).into_scalar();
        assert_eq!(token, cell);
        assert_eq!(net.forward(images).dims(), [2, 4]);
    }

    #[test]
    fn a_block_split_at_ln_1_is_the_whole_block() {
        let device = Default::default();
        let block = EncoderBlock::<Flex>::new(8, 12, 2, &device);
        let x = Tensor::<Flex, 3>::random([2, 5, 8], Distribution::Default, &device);
        let split = block.rest(block.first_norm(x.clone()));
        let y = x.clone() + block.self_attention.forward(block.ln_1.forward(x));
        let whole = y.clone() + block.mlp.forward(block.ln_2.forward(y));
        split
            .into_data()
            .assert_approx_eq::<f32>(&whole.into_data(), burn::tensor::Tolerance::absolute(1e-6));
    }
}
