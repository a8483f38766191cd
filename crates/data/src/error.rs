use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a CIFAR-10 binary batch: {reason}")]
    NotCifar { path: PathBuf, reason: String },
    #[error(
        "CIFAR-10 binary files not found in {dir}: expected {missing}.\n\
         Download {url} (170 MB, SHA-256 {sha256}) and unpack it there so that {dir}/data_batch_1.bin exists,\n\
         or point --data-dir at the folder that holds `cifar-10-batches-bin`"
    )]
    CifarMissing {
        dir: PathBuf,
        missing: String,
        url: &'static str,
        sha256: &'static str,
    },
    #[error("download of {url} failed: {reason}")]
    Download { url: String, reason: String },
    #[error(
        "{path}: checksum mismatch (SHA-256 {got}, expected {expected}); the file was removed, try again"
    )]
    Checksum {
        path: PathBuf,
        got: String,
        expected: String,
    },
    #[error("{root} has no class folders with images in them; expected {root}/<class>/*.jpg|png")]
    EmptyFolder { root: PathBuf },
    #[error("{root}: none of its {files} image files could be read (the first, {first}: {reason})")]
    NoReadableImages {
        root: PathBuf,
        files: usize,
        first: PathBuf,
        reason: String,
    },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
        let path = path.into();
        move |source| DataError::Io { path, source }
    }
}
