//! An ONNX file → a checked, plain [`Graph`] of the operators image networks use: typed
//! attributes, constants as vectors, every node named by the torch module it came from.
//!
//! tracel's `onnx-ir` parses the file (protobuf, external data, opset defaults, constant folding
//! of shape arithmetic, attention fusion); this crate turns its IR into data that the `model`
//! crate runs on burn tensors, and refuses what it could not run — before any image is read.
//! It knows nothing about tensors, backends, CAMs or command lines.

mod check;
mod graph;
mod import;
mod names;

use std::path::{Path, PathBuf};

pub use graph::{Constant, Graph, Node, Op, Operand, Pool, Reduce, Unary, Values};

/// Why a file could not become a [`Graph`]. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}: {reason}")]
    Unreadable { file: PathBuf, reason: String },
    #[error(
        "{file}: onnx-ir could not parse it: {reason} (is it an ONNX model, saved whole? re-export it with torch.onnx.export)"
    )]
    Parse { file: PathBuf, reason: String },
    #[error("{file}: node {node}: the operator {op} (opset {opset}) is not supported here")]
    Unsupported {
        file: PathBuf,
        node: String,
        op: String,
        opset: usize,
    },
    #[error("{file}: {reason}")]
    Invalid { file: PathBuf, reason: String },
}

/// The largest model file read (and the largest tensor, in elements): larger is refused before
/// anything is allocated. ViT-H/14 in f32 is 2.5 GB.
pub const MAX_FILE_BYTES: u64 = 8 << 30;
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 31;

/// Reads and checks the model in `file`.
pub fn load(file: &Path) -> Result<Graph, Error> {
    let invalid = |reason: String| Error::Invalid {
        file: file.to_path_buf(),
        reason,
    };
    let graph = import::import(file)?;
    check::check(&graph).map_err(invalid)?;
    Ok(graph)
}
