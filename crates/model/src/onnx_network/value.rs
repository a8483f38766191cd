//! A tensor of any rank up to [`MAX_RANK`], as an ONNX graph passes them: burn's tensors carry
//! their rank in the type, an interpreter's values do not. Each is a rank-6 burn tensor whose
//! leading dims are 1, so that ONNX's broadcasting (trailing dims aligned) is burn's.

use burn::prelude::*;

pub const MAX_RANK: usize = 6;

#[derive(Debug, Clone)]
pub struct Value<B: Backend> {
    pub tensor: Tensor<B, MAX_RANK>,
    pub rank: usize,
}

impl<B: Backend> Value<B> {
    pub fn new<const D: usize>(tensor: Tensor<B, D>) -> Self {
        let dims = tensor.dims().to_vec();
        Self::reshaped(tensor.reshape(padded(&dims)), D)
    }

    fn reshaped(tensor: Tensor<B, MAX_RANK>, rank: usize) -> Self {
        Self { tensor, rank }
    }

    /// From values and dims (a constant).
    pub fn from_vec(values: Vec<f32>, dims: &[usize], device: &B::Device) -> Self {
        let data = TensorData::new(values, padded(dims));
        Self::reshaped(Tensor::from_data(data, device), dims.len())
    }

    pub fn dims(&self) -> Vec<usize> {
        self.tensor.dims()[MAX_RANK - self.rank..].to_vec()
    }

    /// The burn axis of ONNX axis `axis`.
    pub fn axis(&self, axis: usize) -> usize {
        MAX_RANK - self.rank + axis
    }

    pub fn map(self, f: impl FnOnce(Tensor<B, MAX_RANK>) -> Tensor<B, MAX_RANK>) -> Self {
        let rank = self.rank;
        Self::reshaped(f(self.tensor), rank)
    }

    pub fn reshape(self, dims: &[usize]) -> Self {
        Self::reshaped(self.tensor.reshape(padded(dims)), dims.len())
    }

    /// As a burn tensor of rank `D` (the value's rank must be at most `D`).
    pub fn to<const D: usize>(self) -> Tensor<B, D> {
        let dims = self.dims();
        let mut out = [1usize; D];
        out[D - dims.len()..].copy_from_slice(&dims);
        self.tensor.reshape(out)
    }

    /// The values, as plain numbers (shape arithmetic and other small inputs).
    pub fn floats(&self) -> Vec<f32> {
        self.tensor
            .clone()
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 values")
    }

    /// The values, for shapes, axes and indices read at run time.
    pub fn ints(&self) -> Vec<i64> {
        self.floats().into_iter().map(|v| v as i64).collect()
    }

    /// Both operands broadcast to one shape (for operations that do not broadcast).
    pub fn broadcast(a: Self, b: Self) -> (Self, Self) {
        let rank = a.rank.max(b.rank);
        let dims: [usize; MAX_RANK] = std::array::from_fn(|i| {
            let (x, y) = (a.tensor.dims()[i], b.tensor.dims()[i]);
            if x == 1 { y } else { x }
        });
        let expand = |v: Self| {
            if v.tensor.dims() == dims {
                v.tensor
            } else {
                v.tensor.expand(dims)
            }
        };
        (
            Self::reshaped(expand(a), rank),
            Self::reshaped(expand(b), rank),
        )
    }
}

/// `dims` with leading ones up to [`MAX_RANK`].
pub fn padded(dims: &[usize]) -> [usize; MAX_RANK] {
    assert!(
        dims.len() <= MAX_RANK,
        "rank {} is above {MAX_RANK}",
        dims.len()
    );
    let mut out = [1; MAX_RANK];
    out[MAX_RANK - dims.len()..].copy_from_slice(dims);
    out
}
