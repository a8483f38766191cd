//! The few facts about cubecl tensors the kernels need: contiguous f32 buffers, their shapes,
//! and fresh outputs.

use burn::tensor::{DType, Shape};
use burn_cubecl::CubeRuntime;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::calculate_cube_count_elemwise;
use cubecl::prelude::*;

/// Units per cube of the kernels here: a power of two (the tree sums need it), a multiple of
/// every GPU's plane width.
pub const CUBE_UNITS: u32 = 256;

/// `tensor` as one dense row-major f32 buffer, copied only when it is not one already.
pub fn dense<R: CubeRuntime>(tensor: CubeTensor<R>) -> CubeTensor<R> {
    into_contiguous(tensor)
}

/// Whether every tensor holds f32: the only dtype the kernels here are written for.
pub fn all_f32<R: CubeRuntime>(tensors: &[&CubeTensor<R>]) -> bool {
    tensors.iter().all(|t| t.dtype == DType::F32)
}

/// A new dense f32 tensor of `shape` on the device of `like`, its values undefined.
pub fn empty_like_device<R: CubeRuntime>(like: &CubeTensor<R>, shape: Shape) -> CubeTensor<R> {
    let bytes = shape.num_elements() * size_of::<f32>();
    let handle = like.client.empty(bytes.max(size_of::<f32>()));
    CubeTensor::new_contiguous(
        like.client.clone(),
        like.device.clone(),
        shape,
        handle,
        DType::F32,
    )
}

/// The dimensions of a 4-D tensor.
pub fn dims4<R: CubeRuntime>(tensor: &CubeTensor<R>) -> [usize; 4] {
    let shape = tensor.meta.shape();
    assert_eq!(shape.num_dims(), 4, "a 4-D tensor");
    [shape[0], shape[1], shape[2], shape[3]]
}

/// The launch argument of a dense tensor, read as a flat array.
pub fn array<R: CubeRuntime>(tensor: &CubeTensor<R>) -> ArrayArg<R> {
    debug_assert!(tensor.is_contiguous(), "kernels read dense buffers");
    tensor.clone().into_array_arg()
}

/// One unit per element, in cubes of [`CUBE_UNITS`].
pub fn elementwise<R: CubeRuntime>(
    tensor: &CubeTensor<R>,
    elements: usize,
) -> (CubeCount, CubeDim) {
    let dim = CubeDim::new_1d(CUBE_UNITS);
    (
        calculate_cube_count_elemwise(&tensor.client, elements, dim),
        dim,
    )
}
