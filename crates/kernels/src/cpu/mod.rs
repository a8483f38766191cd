//! The CPU kernels on plain f32 slices, independent of burn: what [`crate::Kernels`] runs for
//! burn's CPU backend. Each is checked against its definition here and against burn's own
//! operation in `flex`'s tests.

pub mod conv;
pub mod matmul;
pub mod norm;
