//! From a `[data]` table to the training and validation images of a run.

use std::path::PathBuf;

use data::cifar::{self, CifarSplit};
use data::folder::{self, Skipped};
use data::{ImageSet, Progress, shapes, split_indices};

use crate::TrainError;
use crate::config::{DataConfig, Source};

/// The images of a run, split.
pub struct RunData {
    pub train: ImageSet,
    pub validation: ImageSet,
    /// A separate test set when the source has one (CIFAR-10's `test_batch.bin`).
    pub test: Option<ImageSet>,
    /// Files of a folder source that could not be decoded.
    pub skipped: Vec<Skipped>,
}

impl RunData {
    pub fn class_names(&self) -> &[String] {
        &self.train.class_names
    }
}

/// Loads (or generates) the images and holds out `validation` of them with `seed`.
pub fn load(
    config: &DataConfig,
    seed: u64,
    progress: &dyn Progress,
) -> Result<RunData, TrainError> {
    let (all, test, skipped) = match config.source {
        Source::Shapes => {
            let [h, w] = config.image_size;
            if h != w || h < 16 {
                return Err(config_error(format!(
                    "shapes images must be square and at least 16 pixels, got {h}×{w}"
                )));
            }
            (
                shapes::generate(config.count.unwrap_or(0), h, seed),
                None,
                vec![],
            )
        }
        Source::Cifar10 => {
            check_size(config, [32, 32], "cifar10")?;
            let dir = config
                .dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("data/cifar10"));
            let folder = cifar::ensure_downloaded(&dir, progress)?;
            (
                cifar::load(&folder, CifarSplit::Train)?,
                Some(cifar::load(&folder, CifarSplit::Test)?),
                vec![],
            )
        }
        Source::Folder => {
            let dir = config
                .dir
                .clone()
                .ok_or_else(|| config_error("data.dir is required".into()))?;
            if !dir.is_dir() {
                return Err(TrainError::run(
                    &dir,
                    "no such folder; pass --data-dir <root> with <root>/<class>/*.jpg",
                ));
            }
            let (set, skipped) = folder::load(&dir, config.image_size, progress)?;
            (set, None, skipped)
        }
    };
    let holdout = (all.len() as f64 * config.validation).round() as usize;
    let (train, validation) = split_indices(all.len(), holdout, seed);
    if train.len() < 2 {
        return Err(config_error(format!(
            "only {} training images: need at least 2",
            train.len()
        )));
    }
    Ok(RunData {
        train: all.subset(&train),
        validation: all.subset(&validation),
        test,
        skipped,
    })
}

fn check_size(config: &DataConfig, expected: [usize; 2], source: &str) -> Result<(), TrainError> {
    if config.image_size != expected {
        return Err(config_error(format!(
            "{source} images are {}×{}: set data.image_size = {expected:?}",
            expected[0], expected[1]
        )));
    }
    Ok(())
}

fn config_error(message: String) -> TrainError {
    TrainError::Config {
        origin: "[data]".into(),
        message,
    }
}
