use burn::prelude::*;

use crate::ShapeError;

/// What images an architecture accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputShape {
    /// Exactly this `[height, width]` (a flatten → Linear head fixes it).
    Fixed { channels: usize, size: [usize; 2] },
    /// Anything at least `min` pixels on each side (a global pool makes the head size-free).
    AtLeast { channels: usize, min: usize },
}

impl InputShape {
    pub fn channels(&self) -> usize {
        match *self {
            InputShape::Fixed { channels, .. } | InputShape::AtLeast { channels, .. } => channels,
        }
    }

    /// Checks a `[batch, channels, height, width]` shape, naming what was expected.
    pub fn check(&self, architecture: &'static str, dims: [usize; 4]) -> Result<(), ShapeError> {
        let [batch, channels, height, width] = dims;
        if batch == 0 {
            return Err(ShapeError::EmptyBatch);
        }
        if channels != self.channels() {
            return Err(ShapeError::Channels {
                expected: self.channels(),
                got: channels,
            });
        }
        match *self {
            InputShape::Fixed { size: [h, w], .. } if [h, w] != [height, width] => {
                Err(ShapeError::FixedSize {
                    architecture,
                    expected_height: h,
                    expected_width: w,
                    got_height: height,
                    got_width: width,
                })
            }
            InputShape::AtLeast { min, .. } if height < min || width < min => {
                Err(ShapeError::TooSmall {
                    architecture,
                    min,
                    got_height: height,
                    got_width: width,
                })
            }
            _ => Ok(()),
        }
    }
}

/// Global average pooling, `[batch, channels, h, w]` → `[batch, channels]`: the head of the
/// ResNets and EfficientNet before their Linear layer.
pub fn global_average_pool<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    x.mean_dim(3).mean_dim(2).flatten(1, 3)
}

/// How a model applies its ReLUs. Training and inference use [`PlainRelu`]; `cam` passes a
/// rectifier whose backward pass lets only positive gradients through (guided backpropagation),
/// which burn can only express as a custom autodiff operation.
pub trait Rectifier<B: Backend> {
    fn relu<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D>;

    /// The output of a layer with a bias: a convolution's (`bias` its bias), or a BatchNorm's
    /// at inference (`bias` its shift β − μγ/σ). Where a BatchNorm is folded into the
    /// convolution before it, the convolution's bias comes scaled by γ/σ, as its output's
    /// gradient is the BatchNorm output's divided by γ/σ. FullGrad reads these; every other
    /// forward pass leaves the output as it is.
    fn biased(&self, output: Tensor<B, 4>, _bias: Tensor<B, 1>) -> Tensor<B, 4> {
        output
    }
}

/// `max(x, 0)` with its ordinary gradient.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainRelu;

impl<B: Backend> Rectifier<B> for PlainRelu {
    fn relu<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        burn::tensor::activation::relu(x)
    }
}

/// A classifier written as `head(layer_n(… layer_1(layer_0(x))))`.
///
/// The layers are the points where a CAM can be taken (each ends at an activation); the last
/// one is where `features` ends, the last conv layer's activation before any pooling, so that
/// Grad-CAM differentiates a class score with respect to that map by default.
pub trait SplitModel<B: Backend> {
    /// A short name for messages (`"tutorial_cnn"`).
    fn architecture(&self) -> &'static str;

    /// The images this model accepts.
    fn input_shape(&self) -> InputShape;

    /// The layers' names, input to output (PyTorch's module paths where they exist:
    /// `layer4.1`, `features.35`).
    fn layer_names(&self) -> Vec<String>;

    /// Layer `index` applied to the previous layer's output (to the images for layer 0).
    fn layer<R: Rectifier<B>>(&self, index: usize, x: Tensor<B, 4>, relu: &R) -> Tensor<B, 4>;

    /// The last layer's output `[batch, k, h', w']` → the rows the classifier's first Linear
    /// layer reads (pooled or flattened): nothing in it trains.
    fn embedding(&self, activations: Tensor<B, 4>) -> Tensor<B, 2>;

    /// Those rows → logits `[batch, classes]`.
    fn head_from_embedding<R: Rectifier<B>>(
        &self,
        embedding: Tensor<B, 2>,
        relu: &R,
    ) -> Tensor<B, 2>;

    /// The last layer's output `[batch, k, h', w']` → logits `[batch, classes]`.
    fn head<R: Rectifier<B>>(&self, activations: Tensor<B, 4>, relu: &R) -> Tensor<B, 2> {
        self.head_from_embedding(self.embedding(activations), relu)
    }

    /// A as a PyTorch forward hook on layer `index` records it, from the layer's `output`: the
    /// output itself, unless the reference network changes that tensor in place afterwards
    /// (torchvision's DenseNet applies `F.relu(inplace=True)` to `features.norm5`'s output, so
    /// pytorch-grad-cam's activations there are rectified while its gradients are the
    /// output's). CAMs are made of these activations.
    fn hooked_activations(&self, _index: usize, output: Tensor<B, 4>) -> Tensor<B, 4> {
        output
    }

    /// Layer `index`'s `output` with everything but the hooked tensor zeroed: the direction in
    /// which ShapleyCAM's Hessian-vector product moves the layer's output. The output itself,
    /// unless it carries more than the hooked tensor (a transformer block's `norm1` layer
    /// passes the block's input on beside the normalised tokens).
    fn hooked_part(&self, _index: usize, output: Tensor<B, 4>) -> Tensor<B, 4> {
        output
    }

    /// Layer `index`'s output as a CAM reads it, `[batch, channels, h, w]`: the output itself
    /// for a convolutional layer; for a transformer, the patch tokens laid out as their grid
    /// (pytorch-grad-cam's `reshape_transform`). Only a selection and a reshape, so the view
    /// of the output's gradient is the gradient of the view.
    fn cam_view(&self, _index: usize, output: Tensor<B, 4>) -> Tensor<B, 4> {
        output
    }

    /// The classifier's weights `[outputs, channels]` when the head is global average pooling
    /// then one Linear layer on the last layer's channels — the networks plain CAM (Zhou et
    /// al. 2016) explains; `None` for any other head.
    fn class_weights(&self) -> Option<Tensor<B, 2>> {
        None
    }

    /// The layer a user named (`--layer`): see [`find_layer`].
    fn find_layer(&self, query: &str) -> Option<usize> {
        find_layer(&self.layer_names(), query)
    }

    /// Index of the last layer, where `features` ends.
    fn last_layer(&self) -> usize {
        self.layer_names().len() - 1
    }

    /// Images → the output of layer `index`.
    fn features_at<R: Rectifier<B>>(
        &self,
        images: Tensor<B, 4>,
        index: usize,
        relu: &R,
    ) -> Tensor<B, 4> {
        (0..=index).fold(images, |x, i| self.layer(i, x, relu))
    }

    /// The output of layer `index` → logits.
    fn logits_from<R: Rectifier<B>>(
        &self,
        activations: Tensor<B, 4>,
        index: usize,
        relu: &R,
    ) -> Tensor<B, 2> {
        let last = self.last_layer();
        let x = (index + 1..=last).fold(activations, |x, i| self.layer(i, x, relu));
        self.head(x, relu)
    }

    /// Images `[batch, channels, height, width]` → the last layer's activations.
    fn features(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        self.features_at(images, self.last_layer(), &PlainRelu)
    }

    /// The last layer's activations → logits.
    fn classifier(&self, activations: Tensor<B, 4>) -> Tensor<B, 2> {
        self.head(activations, &PlainRelu)
    }

    /// Logits of a batch of images.
    fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.classifier(self.features(images))
    }

    /// `forward`, after checking the input shape.
    fn try_forward(&self, images: Tensor<B, 4>) -> Result<Tensor<B, 2>, ShapeError> {
        self.input_shape()
            .check(self.architecture(), images.dims())?;
        Ok(self.forward(images))
    }
}

/// `stem`, then `layer<s>.<b>` for each residual block, PyTorch's names for ResNets whose
/// stages have these numbers of blocks.
pub(crate) fn residual_layer_names(blocks_per_stage: &[usize]) -> Vec<String> {
    let blocks = blocks_per_stage
        .iter()
        .enumerate()
        .flat_map(|(stage, &blocks)| {
            (0..blocks).map(move |block| format!("layer{}.{block}", stage + 1))
        });
    std::iter::once("stem".to_string()).chain(blocks).collect()
}

/// The layer a user named: exactly, or a stage's name for its last layer (`layer3` →
/// `layer3.5`), as PyTorch users write `model.layer3[-1]`.
pub fn find_layer(names: &[String], query: &str) -> Option<usize> {
    let prefix = format!("{query}.");
    names
        .iter()
        .position(|name| name == query)
        .or_else(|| names.iter().rposition(|name| name.starts_with(&prefix)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_found_by_name_or_by_stage() {
        let names: Vec<String> = ["stem", "layer1.0", "layer1.1", "layer2.0", "layer2.1"]
            .map(String::from)
            .into();
        assert_eq!(find_layer(&names, "layer1.0"), Some(1));
        assert_eq!(find_layer(&names, "layer2"), Some(4));
        assert_eq!(find_layer(&names, "stem"), Some(0));
        assert_eq!(find_layer(&names, "layer"), None);
        assert_eq!(find_layer(&names, "layer3"), None);
    }
}
