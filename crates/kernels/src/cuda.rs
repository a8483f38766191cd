//! On CUDA the kernels are burn's own (the trait's defaults): burn-cuda's convolutions and
//! fused element-wise operations are not what is slow there.

use burn::backend::Cuda;

use crate::Kernels;

impl Kernels for Cuda {}
