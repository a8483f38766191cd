use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ImportError {
    #[error("{path}: {message}")]
    Unreadable { path: PathBuf, message: String },
    #[error(
        "{path}: refusing to unpickle `{global}`: only tensors and plain containers are read \
         (a whole pickled model or a hostile file); save `model.state_dict()` instead"
    )]
    UnsafePickle { path: PathBuf, global: String },
    #[error("{path} is damaged or broken: {details}")]
    Damaged { path: PathBuf, details: String },
    #[error("{path}: holds no tensors")]
    Empty { path: PathBuf },
    #[error(
        "{path}: cannot tell the number of classes: no `{key}` tensor (is it a {architecture}?)"
    )]
    NoClassifier {
        path: PathBuf,
        key: String,
        architecture: String,
    },
    #[error("{path} does not fit {architecture}:\n{details}")]
    Mismatch {
        path: PathBuf,
        architecture: String,
        details: String,
    },
    #[error("{path}: {message}")]
    Labels { path: PathBuf, message: String },
}
