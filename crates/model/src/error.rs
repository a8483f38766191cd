use thiserror::Error;

/// An input tensor that the architecture cannot take.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ShapeError {
    #[error(
        "expected a batch of images shaped [batch, {expected}, height, width], got {got} channels"
    )]
    Channels { expected: usize, got: usize },
    #[error(
        "{architecture} was built for {expected_height}×{expected_width} images, got {got_height}×{got_width}; resize the images or rebuild the model with `image_size = [{got_height}, {got_width}]`"
    )]
    FixedSize {
        architecture: &'static str,
        expected_height: usize,
        expected_width: usize,
        got_height: usize,
        got_width: usize,
    },
    #[error(
        "{architecture} needs images of at least {min}×{min} pixels, got {got_height}×{got_width}"
    )]
    TooSmall {
        architecture: &'static str,
        min: usize,
        got_height: usize,
        got_width: usize,
    },
    #[error("expected a non-empty batch")]
    EmptyBatch,
}
