use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum TrainError {
    #[error("config {origin}: {message}")]
    Config { origin: String, message: String },
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Run { path: PathBuf, message: String },
    #[error(
        "the loss became {loss} at epoch {epoch}, batch {batch}: training diverged. {kept}\n\
         Lower the learning rate (--lr) and start again, or --resume from the last checkpoint"
    )]
    Diverged {
        loss: f32,
        epoch: usize,
        batch: usize,
        kept: String,
    },
    #[error("{0}")]
    Device(String),
    /// Training on several devices or nodes could not start or go on.
    #[error("{0}")]
    Parallel(String),
    #[error(transparent)]
    Pretrained(#[from] pretrained::ImportError),
}

impl TrainError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn run(path: &Path, message: impl Into<String>) -> Self {
        TrainError::Run {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}
