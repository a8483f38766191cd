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

/// A classifier written as `classifier(features(x))`.
///
/// `features` ends at the last convolution's activation, before any pooling that follows it,
/// so that Grad-CAM can differentiate a class score with respect to that map.
pub trait SplitModel<B: Backend> {
    /// A short name for messages (`"tutorial_cnn"`).
    fn architecture(&self) -> &'static str;

    /// The images this model accepts.
    fn input_shape(&self) -> InputShape;

    /// Images `[batch, channels, height, width]` → activations `[batch, k, h', w']`.
    fn features(&self, images: Tensor<B, 4>) -> Tensor<B, 4>;

    /// Activations `[batch, k, h', w']` → logits `[batch, classes]`.
    fn classifier(&self, activations: Tensor<B, 4>) -> Tensor<B, 2>;

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
