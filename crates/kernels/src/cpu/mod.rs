//! The CPU kernels on plain f32 slices, independent of burn: what [`crate::Kernels`] runs for
//! burn's CPU backend. Each is checked against its definition here and against burn's own
//! operation in `flex`'s tests.

pub mod conv;
pub mod matmul;
pub mod norm;
pub mod sgd;

/// `len` zeros, written rather than asked of the allocator zeroed: a zeroed allocation of a large
/// block makes the allocator hand back fresh pages, each a page fault on first write,
/// where filling a reused block costs one pass over memory that is already mapped.
pub(crate) fn zeros(len: usize) -> Vec<f32> {
    let mut values = Vec::with_capacity(len);
    values.resize(len, 0.0);
    values
}
