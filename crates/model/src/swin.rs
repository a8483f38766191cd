//! The Swin Transformer (Liu et al., 2021) as torchvision builds it (`swin_t`, `_s`, `_b`): a
//! 4×4 patchifying convolution with a LayerNorm, four stages of blocks that attend within
//! 7×7 windows (every second block with the windows shifted by half a window and the wrapped
//! tokens masked apart), a learned relative position bias per head, patch merging between
//! stages, a final LayerNorm, average pooling and `head`.
//!
//! Swin keeps its tokens as a grid, so between layers they travel as `[batch, c, h, w]` and a
//! CAM reads them as they are (pytorch-grad-cam's reshape transform for torchvision's Swin is
//! a permutation to channels first). As for ViT, each block is two layers, `features.S.B.norm1`
//! and the block's output `features.S.B`; the first holds the normalised tokens in its first
//! `c` channels and the block's input in the next `c`, and its view keeps the first half.
//! Features end at the last block's `norm1`.

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
use crate::{InputShape, Rectifier, SplitModel, global_average_pool};

const EPSILON: f64 = 1e-5;
/// What torchvision adds to the attention logits of tokens that a shift wrapped together.
const MASKED: f32 = -100.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwinConfig {
    pub patch_size: usize,
    pub embed_dim: usize,
    pub depths: [usize; 4],
    pub num_heads: [usize; 4],
    pub window_size: usize,
    pub mlp_ratio: f64,
}

impl Default for SwinConfig {
    /// Swin-T.
    fn default() -> Self {
        Self {
            patch_size: 4,
            embed_dim: 96,
            depths: [2, 2, 6, 2],
            num_heads: [3, 6, 12, 24],
            window_size: 7,
            mlp_ratio: 4.0,
        }
    }
}

impl SwinConfig {
    /// `swin_t`, `swin_s`, `swin_b` as torchvision publishes them.
    pub fn published(size: &str) -> Option<Self> {
        let (embed_dim, depths, num_heads) = match size {
            "t" => (96, [2, 2, 6, 2], [3, 6, 12, 24]),
            "s" => (96, [2, 2, 18, 2], [3, 6, 12, 24]),
            "b" => (128, [2, 2, 18, 2], [4, 8, 16, 32]),
            _ => return None,
        };
        Some(Self {
            embed_dim,
            depths,
            num_heads,
            ..Self::default()
        })
    }

    /// Rejects what cannot be built, saying what to change.
    pub fn validate(&self) -> Result<(), String> {
        let sizes = [self.patch_size, self.embed_dim, self.window_size];
        if sizes.contains(&0) || self.depths.contains(&0) || self.mlp_ratio <= 0.0 {
            return Err("swin sizes, depths and mlp_ratio must be positive".into());
        }
        for (stage, &heads) in self.num_heads.iter().enumerate() {
            let dim = self.embed_dim << stage;
            if heads == 0 || !dim.is_multiple_of(heads) {
                return Err(format!(
                    "swin stage {stage} has {dim} channels, not a multiple of its {heads} heads"
                ));
            }
        }
        Ok(())
    }

    pub fn init<B: Backend>(
        &self,
        channels: usize,
        num_classes: usize,
        device: &B::Device,
    ) -> SwinTransformer<B> {
        let dims: Vec<usize> = (0..4).map(|s| self.embed_dim << s).collect();
        let stages = (0..4).map(|s| {
            (0..self.depths[s])
                .map(|b| {
                    let shift = if b % 2 == 0 { 0 } else { self.window_size / 2 };
                    let hidden = (dims[s] as f64 * self.mlp_ratio) as usize;
                    SwinBlock::new(
                        dims[s],
                        hidden,
                        self.num_heads[s],
                        self.window_size,
                        shift,
                        device,
                    )
                })
                .collect()
        });
        let p = self.patch_size;
        SwinTransformer {
            stem: Conv2dConfig::new([channels, dims[0]], [p, p])
                .with_stride([p, p])
                .init(device),
            stem_norm: layer_norm(dims[0], device),
            stages: stages.collect(),
            merges: dims[..3]
                .iter()
                .map(|&d| PatchMerging::new(d, device))
                .collect(),
            norm: layer_norm(dims[3], device),
            head: LinearConfig::new(dims[3], num_classes).init(device),
            channels,
        }
    }
}

fn layer_norm<B: Backend>(d: usize, device: &B::Device) -> LayerNorm<B> {
    LayerNormConfig::new(d).with_epsilon(EPSILON).init(device)
}

fn channels_last<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    x.permute([0, 2, 3, 1])
}

fn channels_first<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    x.permute([0, 3, 1, 2])
}

/// A Linear layer applied at every position of `[batch, h, w, c]`.
fn per_position<B: Kernels>(linear: &Linear<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [batch, h, w, c] = x.dims();
    let y = kernels::linear(linear, x.reshape([batch * h * w, c]));
    let out = y.dims()[1];
    y.reshape([batch, h, w, out])
}

/// `[batch, h, w, c]` padded with zeros at the bottom and right to `[batch, h2, w2, c]`.
fn pad_bottom_right<B: Backend>(x: Tensor<B, 4>, h2: usize, w2: usize) -> Tensor<B, 4> {
    let [batch, h, w, c] = x.dims();
    let device = x.device();
    let x = match w2 > w {
        true => Tensor::cat(vec![x, Tensor::zeros([batch, h, w2 - w, c], &device)], 2),
        false => x,
    };
    match h2 > h {
        true => Tensor::cat(vec![x, Tensor::zeros([batch, h2 - h, w2, c], &device)], 1),
        false => x,
    }
}

/// torchvision's relative position index: for each pair of positions (i, j) of a window, the
/// row of the bias table for their offset.
fn relative_position_index(window: usize) -> Vec<i64> {
    let n = window * window;
    let span = 2 * window as i64 - 1;
    let mut index = Vec::with_capacity(n * n);
    for i in 0..n {
        for j in 0..n {
            let dy = (i / window) as i64 - (j / window) as i64 + window as i64 - 1;
            let dx = (i % window) as i64 - (j % window) as i64 + window as i64 - 1;
            index.push(dy * span + dx);
        }
    }
    index
}

/// torchvision's mask for shifted windows, `[windows, n, n]`: 0 between tokens of the same
/// region of the shifted grid, −100 between tokens that the shift wrapped together. A side
/// that is not shifted is one region.
fn shift_mask(height: usize, width: usize, window: usize, shift: [usize; 2]) -> Vec<f32> {
    let region = |x: usize, size: usize, shift: usize| {
        if shift == 0 || x < size - window {
            0
        } else if x < size - shift {
            1
        } else {
            2
        }
    };
    let label = |y: usize, x: usize| region(y, height, shift[0]) * 3 + region(x, width, shift[1]);
    let (rows, cols) = (height / window, width / window);
    let n = window * window;
    let mut mask = Vec::with_capacity(rows * cols * n * n);
    for wy in 0..rows {
        for wx in 0..cols {
            let labels: Vec<usize> = (0..n)
                .map(|p| label(wy * window + p / window, wx * window + p % window))
                .collect();
            for &a in &labels {
                mask.extend(labels.iter().map(|&b| if a == b { 0.0 } else { MASKED }));
            }
        }
    }
    mask
}

/// Multi-head self-attention within (shifted) windows, with a relative position bias.
#[derive(Module, Debug)]
pub struct WindowAttention<B: Backend> {
    pub qkv: Linear<B>,
    pub proj: Linear<B>,
    /// `[(2·window − 1)², heads]`.
    pub relative_position_bias_table: Param<Tensor<B, 2>>,
    heads: usize,
    window: usize,
    shift: usize,
}

impl<B: Backend> WindowAttention<B> {
    fn new(dim: usize, heads: usize, window: usize, shift: usize, device: &B::Device) -> Self {
        let span = 2 * window - 1;
        Self {
            qkv: LinearConfig::new(dim, 3 * dim).init(device),
            proj: LinearConfig::new(dim, dim).init(device),
            relative_position_bias_table: Param::from_tensor(Tensor::random(
                [span * span, heads],
                Distribution::Normal(0.0, 0.02),
                device,
            )),
            heads,
            window,
            shift,
        }
    }
}

impl<B: Kernels> WindowAttention<B> {
    /// `[1, heads, n, n]`.
    fn position_bias(&self, device: &B::Device) -> Tensor<B, 4> {
        let n = self.window * self.window;
        let index = relative_position_index(self.window);
        let index = Tensor::<B, 1, Int>::from_data(TensorData::new(index, [n * n]), device);
        self.relative_position_bias_table
            .val()
            .select(0, index)
            .reshape([n, n, self.heads])
            .permute([2, 0, 1])
            .unsqueeze::<4>()
    }

    /// `[batch, h, w, c]` → the same, as torchvision's `shifted_window_attention`: pad to whole
    /// windows, shift (unless a window covers the whole padded side), attend, undo both.
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [batch, h, w, c] = x.dims();
        let device = x.device();
        let win = self.window;
        let (ph, pw) = (h.div_ceil(win) * win, w.div_ceil(win) * win);
        let shift = [ph, pw].map(|side| if win >= side { 0 } else { self.shift });
        let mut x = pad_bottom_right(x, ph, pw);
        // burn's roll by s is PyTorch's roll by −s: this is torchvision's `roll(x, −shift)`.
        if shift != [0, 0] {
            x = x.roll(&[shift[0] as isize, shift[1] as isize], &[1, 2]);
        }
        let (rows, cols, n) = (ph / win, pw / win, win * win);
        let windows = rows * cols;
        let tokens = x
            .reshape([batch, rows, win, cols, win, c])
            .permute([0, 1, 3, 2, 4, 5])
            .reshape([batch * windows * n, c]);

        let (heads, per_head) = (self.heads, c / self.heads);
        let qkv = kernels::linear(&self.qkv, tokens);
        let split = |part: usize| {
            qkv.clone()
                .slice([0..batch * windows * n, part * c..(part + 1) * c])
                .reshape([batch * windows, n, heads, per_head])
                .swap_dims(1, 2)
        };
        let q = split(0) * (per_head as f64).powf(-0.5);
        let (k, v) = (split(1), split(2));
        let mut attention = q.matmul(k.swap_dims(2, 3)) + self.position_bias(&device);
        if shift != [0, 0] {
            let mask = shift_mask(ph, pw, win, shift);
            let mask =
                Tensor::<B, 5>::from_data(TensorData::new(mask, [1, windows, 1, n, n]), &device);
            attention = (attention.reshape([batch, windows, heads, n, n]) + mask).reshape([
                batch * windows,
                heads,
                n,
                n,
            ]);
        }
        let mixed = softmax(attention, 3).matmul(v);
        let mixed = mixed.swap_dims(1, 2).reshape([batch * windows * n, c]);
        let mut y = kernels::linear(&self.proj, mixed)
            .reshape([batch, rows, cols, win, win, c])
            .permute([0, 1, 3, 2, 4, 5])
            .reshape([batch, ph, pw, c]);
        if shift != [0, 0] {
            y = y.roll(&[-(shift[0] as isize), -(shift[1] as isize)], &[1, 2]);
        }
        y.slice([0..batch, 0..h, 0..w, 0..c])
    }
}

/// torchvision's `MLP`: `mlp.0`, GELU, `mlp.3`.
#[derive(Module, Debug)]
pub struct SwinMlp<B: Backend> {
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
}

#[derive(Module, Debug)]
pub struct SwinBlock<B: Backend> {
    pub norm1: LayerNorm<B>,
    pub attn: WindowAttention<B>,
    pub norm2: LayerNorm<B>,
    pub mlp: SwinMlp<B>,
}

impl<B: Backend> SwinBlock<B> {
    fn new(
        dim: usize,
        hidden: usize,
        heads: usize,
        window: usize,
        shift: usize,
        device: &B::Device,
    ) -> Self {
        Self {
            norm1: layer_norm(dim, device),
            attn: WindowAttention::new(dim, heads, window, shift, device),
            norm2: layer_norm(dim, device),
            mlp: SwinMlp {
                fc1: LinearConfig::new(dim, hidden).init(device),
                fc2: LinearConfig::new(hidden, dim).init(device),
            },
        }
    }
}

impl<B: Kernels> SwinBlock<B> {
    /// `[batch, c, h, w]` → `norm1(x)` and `x`, one above the other: `[batch, 2c, h, w]`.
    fn first_norm(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = channels_last(x);
        let normed = self.norm1.forward(x.clone());
        channels_first(Tensor::cat(vec![normed, x], 3))
    }

    /// The rest of the block, from `first_norm`'s output → `[batch, c, h, w]`.
    fn rest(&self, packed: Tensor<B, 4>) -> Tensor<B, 4> {
        let [batch, twice, h, w] = packed.dims();
        let c = twice / 2;
        let packed = channels_last(packed);
        let normed = packed.clone().slice([0..batch, 0..h, 0..w, 0..c]);
        let x = packed.slice([0..batch, 0..h, 0..w, c..twice]);
        let x = x + self.attn.forward(normed);
        let hidden = gelu(per_position(&self.mlp.fc1, self.norm2.forward(x.clone())));
        channels_first(x + per_position(&self.mlp.fc2, hidden))
    }
}

/// Each 2×2 neighbourhood's channels side by side (torchvision's order), LayerNorm, a Linear
/// layer halving them: half the resolution, twice the channels.
#[derive(Module, Debug)]
pub struct PatchMerging<B: Backend> {
    pub norm: LayerNorm<B>,
    pub reduction: Linear<B>,
}

impl<B: Backend> PatchMerging<B> {
    fn new(dim: usize, device: &B::Device) -> Self {
        Self {
            norm: layer_norm(4 * dim, device),
            reduction: LinearConfig::new(4 * dim, 2 * dim)
                .with_bias(false)
                .init(device),
        }
    }
}

impl<B: Kernels> PatchMerging<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [batch, c, h, w] = x.dims();
        let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
        let x = pad_bottom_right(channels_last(x), 2 * h2, 2 * w2);
        // torchvision's order: (row 0, col 0), (1, 0), (0, 1), (1, 1).
        let merged = x
            .reshape([batch, h2, 2, w2, 2, c])
            .permute([0, 1, 3, 4, 2, 5])
            .reshape([batch, h2, w2, 4 * c]);
        channels_first(per_position(&self.reduction, self.norm.forward(merged)))
    }
}

/// Where a layer sits.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    Stem,
    FirstNorm(usize, usize),
    Block(usize, usize),
    Merge(usize),
}

#[derive(Module, Debug)]
pub struct SwinTransformer<B: Backend> {
    pub stem: Conv2d<B>,
    pub stem_norm: LayerNorm<B>,
    pub stages: Vec<Vec<SwinBlock<B>>>,
    pub merges: Vec<PatchMerging<B>>,
    pub norm: LayerNorm<B>,
    pub head: Linear<B>,
    channels: usize,
}

impl<B: Backend> SwinTransformer<B> {
    /// The layers in order; the last block gives only its `norm1`.
    fn parts(&self) -> Vec<Part> {
        let mut parts = vec![Part::Stem];
        let stages = self.stages.len();
        for (s, stage) in self.stages.iter().enumerate() {
            for b in 0..stage.len() {
                parts.push(Part::FirstNorm(s, b));
                if s + 1 < stages || b + 1 < stage.len() {
                    parts.push(Part::Block(s, b));
                }
            }
            if s < self.merges.len() {
                parts.push(Part::Merge(s));
            }
        }
        parts
    }

    pub(crate) fn with_new_classifier(self, outputs: usize, device: &B::Device) -> Self {
        let head = fresh_linear(&self.head, outputs, device);
        Self { head, ..self }
    }

    /// A block trains whole when its `norm1` layer does; the final LayerNorm with the last
    /// layer.
    pub(crate) fn trained_from(self, first: usize) -> Self {
        let parts = self.parts();
        let at = |part: Part| parts.iter().position(|&p| p == part).expect("a layer");
        let last = parts.len() - 1;
        let stages = self.stages.into_iter().enumerate().map(|(s, stage)| {
            let blocks = stage.into_iter().enumerate();
            blocks
                .map(|(b, block)| trainable(block, at(Part::FirstNorm(s, b)) >= first))
                .collect()
        });
        let merges = self.merges.into_iter().enumerate();
        Self {
            stem: trainable(self.stem, first == 0),
            stem_norm: trainable(self.stem_norm, first == 0),
            stages: stages.collect(),
            merges: merges
                .map(|(s, m)| trainable(m, at(Part::Merge(s)) >= first))
                .collect(),
            norm: trainable(self.norm, last >= first),
            head: trainable(self.head, true),
            channels: self.channels,
        }
    }
}

impl<B: Kernels> SplitModel<B> for SwinTransformer<B> {
    fn architecture(&self) -> &'static str {
        "swin"
    }

    fn input_shape(&self) -> InputShape {
        InputShape::AtLeast {
            channels: self.channels,
            min: 32,
        }
    }

    /// torchvision's `features`: the stem at 0, stage S at `2S + 1`, its merging at `2S + 2`.
    fn layer_names(&self) -> Vec<String> {
        self.parts()
            .into_iter()
            .map(|part| match part {
                Part::Stem => "features.0".to_string(),
                Part::FirstNorm(s, b) => format!("features.{}.{b}.norm1", 2 * s + 1),
                Part::Block(s, b) => format!("features.{}.{b}", 2 * s + 1),
                Part::Merge(s) => format!("features.{}", 2 * s + 2),
            })
            .collect()
    }

    /// No ReLU anywhere: guided backpropagation is the plain gradient, as in pytorch-grad-cam.
    fn layer<R: Rectifier<B>>(&self, index: usize, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4> {
        match self.parts()[index] {
            Part::Stem => {
                let patches = biased_conv2d(&self.stem, x, relu);
                channels_first(self.stem_norm.forward(channels_last(patches)))
            }
            Part::FirstNorm(s, b) => self.stages[s][b].first_norm(x),
            Part::Block(s, b) => self.stages[s][b].rest(x),
            Part::Merge(s) => self.merges[s].forward(x),
        }
    }

    /// The normalised half of a `norm1` layer; the block's input zeroed.
    fn hooked_part(&self, index: usize, output: Tensor<B, 4>) -> Tensor<B, 4> {
        match self.parts()[index] {
            Part::FirstNorm(..) => crate::vit::normalised_half(output),
            _ => output,
        }
    }

    fn cam_view(&self, index: usize, output: Tensor<B, 4>) -> Tensor<B, 4> {
        match self.parts()[index] {
            Part::FirstNorm(..) => {
                let [batch, twice, h, w] = output.dims();
                output.slice([0..batch, 0..twice / 2, 0..h, 0..w])
            }
            _ => output,
        }
    }

    /// The last block finished, the final LayerNorm, average pooling.
    fn embedding(&self, activations: Tensor<B, 4>) -> Tensor<B, 2> {
        let last = self
            .stages
            .last()
            .and_then(|stage| stage.last())
            .expect("at least one block");
        let x = last.rest(activations);
        global_average_pool(channels_first(self.norm.forward(channels_last(x))))
    }

    fn head_from_embedding<R: Rectifier<B>>(&self, pooled: Tensor<B, 2>, _: &R) -> Tensor<B, 2> {
        kernels::linear(&self.head, pooled)
    }
}

/// torchvision's keys → module paths: `features.0.0`/`features.0.2` (stem conv and norm),
/// `features.(2S+1).B.` → `stages.S.B.` with `mlp.0`/`mlp.3` → `mlp.fc1`/`mlp.fc2`,
/// `features.(2S+2).` → `merges.S.`. The relative position index is derived from the window
/// size, so the loader skips it.
pub(crate) fn torch_patterns(config: &SwinConfig) -> Vec<(String, String)> {
    let mut patterns = vec![
        (r"^features\.0\.0\.".to_string(), "stem.".to_string()),
        (r"^features\.0\.2\.".to_string(), "stem_norm.".to_string()),
        (r"\.mlp\.0\.".to_string(), ".mlp.fc1.".to_string()),
        (r"\.mlp\.3\.".to_string(), ".mlp.fc2.".to_string()),
    ];
    for s in 0..config.depths.len() {
        patterns.push((
            format!(r"^features\.{}\.(\d+)\.", 2 * s + 1),
            format!("stages.{s}.${{1}}."),
        ));
        if s + 1 < config.depths.len() {
            patterns.push((
                format!(r"^features\.{}\.", 2 * s + 2),
                format!("merges.{s}."),
            ));
        }
    }
    patterns
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    fn tiny() -> SwinConfig {
        SwinConfig {
            patch_size: 4,
            embed_dim: 4,
            depths: [2, 1, 1, 2],
            num_heads: [1, 2, 2, 4],
            window_size: 4,
            mlp_ratio: 2.0,
        }
    }

    #[test]
    fn layers_follow_torchvisions_features() {
        let device = Default::default();
        let net = tiny().init::<Flex>(3, 5, &device);
        let names = net.layer_names();
        assert_eq!(
            names[..4],
            [
                "features.0",
                "features.1.0.norm1",
                "features.1.0",
                "features.1.1.norm1"
            ]
        );
        assert_eq!(names.last().unwrap(), "features.7.1.norm1");
        let images = Tensor::random([2, 3, 72, 56], Distribution::Default, &device);
        let packed = net.features(images.clone());
        assert_eq!(packed.dims(), [2, 64, 3, 2]);
        assert_eq!(net.cam_view(net.last_layer(), packed).dims(), [2, 32, 3, 2]);
        assert_eq!(net.forward(images).dims(), [2, 5]);
    }

    #[test]
    fn relative_positions_index_torchvisions_table() {
        // A 2×2 window: offsets (dy, dx) ∈ {−1, 0, 1}², rows (dy + 1)·3 + (dx + 1).
        assert_eq!(
            relative_position_index(2),
            [4, 3, 1, 0, 5, 4, 2, 1, 7, 6, 4, 3, 8, 7, 5, 4]
        );
    }

    #[test]
    fn the_shift_mask_separates_wrapped_regions() {
        // 4×4 grid, 2×2 windows, shift 1: the last window mixes four regions.
        let mask = shift_mask(4, 4, 2, [1, 1]);
        assert_eq!(mask[..16], [0.0; 16]);
        let last = &mask[3 * 16..];
        assert_eq!(last[0..4], [0.0, MASKED, MASKED, MASKED]);
        assert_eq!(last[5], 0.0);
        // Shifted rows only: windows side by side see no wrap across columns.
        let rows_only = shift_mask(4, 4, 2, [1, 0]);
        assert_eq!(rows_only[16..32], [0.0; 16]);
        assert!(rows_only[2 * 16..].contains(&MASKED));
    }
}
