//! `--tensorboard DIR`: a run's per-epoch numbers as TensorBoard scalars in `DIR/<run
//! folder's name>/`, so that `tensorboard --logdir DIR` compares runs side by side.
//!
//! The event file is a function of metrics.csv, as curves.svg is: when the first epoch of this
//! process starts (after a resumed run has dropped rows it could not keep), the run's earlier
//! event files are replaced by one holding every row so far; each finished epoch is then
//! appended and flushed, so a killed run loses nothing TensorBoard had shown.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use syntaxdot_summary::SummaryWriter;

use crate::fit::Observer;
use crate::{EpochMetrics, RunDir, TrainError};

/// The scalars written per epoch: tag and value.
fn scalars(m: &EpochMetrics) -> [(&'static str, f64); 6] {
    [
        ("loss/train", m.train_loss),
        ("loss/held_out", m.val_loss),
        ("accuracy/train", m.train_acc),
        ("accuracy/held_out", m.val_acc),
        ("learning_rate", m.lr),
        ("seconds_per_epoch", m.seconds),
    ]
}

/// Writes one run's scalars; an `Observer` of `fit`.
pub struct TensorBoard {
    folder: PathBuf,
    run: PathBuf,
    writer: Option<SummaryWriter<File>>,
    /// Set once writing failed: training goes on, and the failure is reported once.
    failed: bool,
}

impl TensorBoard {
    /// Makes the folder for the run at `run` (before the run folder exists, so that a refused
    /// `--tensorboard` leaves no half-made run).
    pub fn new(dir: &Path, run: &Path) -> Result<TensorBoard, TrainError> {
        let folder = dir.join(run.file_name().unwrap_or(run.as_os_str()));
        fs::create_dir_all(&folder).map_err(|e| TrainError::io(&folder, e))?;
        Ok(TensorBoard {
            folder,
            run: run.to_path_buf(),
            writer: None,
            failed: false,
        })
    }

    /// Where the event files go.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Replaces the run's event files with one holding metrics.csv as it is now.
    fn start(&mut self) -> Result<(), TrainError> {
        for entry in fs::read_dir(&self.folder).map_err(|e| TrainError::io(&self.folder, e))? {
            let path = entry.map_err(|e| TrainError::io(&self.folder, e))?.path();
            if is_event_file(&path) {
                fs::remove_file(&path).map_err(|e| TrainError::io(&path, e))?;
            }
        }
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let path = self
            .folder
            .join(format!("events.out.tfevents.{seconds}.train"));
        let file = File::create(&path).map_err(|e| TrainError::io(&path, e))?;
        let mut writer = SummaryWriter::new(file).map_err(|e| TrainError::io(&path, e))?;
        for row in RunDir::open(&self.run)?.metrics()? {
            write_epoch(&mut writer, &row).map_err(|e| TrainError::io(&path, e))?;
        }
        self.writer = Some(writer);
        Ok(())
    }

    fn report(&mut self, result: Result<(), TrainError>) {
        if let Err(e) = result
            && !self.failed
        {
            self.failed = true;
            eprintln!("warning: TensorBoard scalars stopped: {e}");
        }
    }
}

fn is_event_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains(".tfevents."))
}

fn write_epoch(writer: &mut SummaryWriter<File>, m: &EpochMetrics) -> std::io::Result<()> {
    for (tag, value) in scalars(m) {
        writer.write_scalar(tag, m.epoch as i64, value as f32)?;
    }
    Ok(())
}

impl Observer for TensorBoard {
    fn epoch_started(&mut self, _epoch: usize, _epochs: usize, _batches: usize) {
        if self.writer.is_none() && !self.failed {
            let started = self.start();
            self.report(started);
        }
    }

    fn epoch_finished(&mut self, metrics: &EpochMetrics, _is_best: bool) {
        if let Some(writer) = &mut self.writer {
            // A File is unbuffered: each record is on disk when write_scalar returns.
            let written = write_epoch(writer, metrics).map_err(|e| TrainError::io(&self.folder, e));
            self.report(written);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The records of a TFRecord file: u64 length, u32 CRC, data, u32 CRC.
    fn records(bytes: &[u8]) -> Vec<&[u8]> {
        let mut records = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            records.push(&rest[12..12 + len]);
            rest = &rest[12 + len + 4..];
        }
        records
    }

    fn metrics(epoch: usize) -> EpochMetrics {
        EpochMetrics {
            epoch,
            train_loss: 1.0 / epoch as f64,
            train_acc: 0.5,
            val_loss: 0.75,
            val_acc: 0.625,
            lr: 0.01,
            seconds: 3.0,
        }
    }

    #[test]
    fn a_resumed_run_rewrites_its_events_from_metrics_then_appends() {
        let dir = tempfile::tempdir().unwrap();
        let run_path = dir.path().join("runs/shapes-007");
        fs::create_dir_all(&run_path).unwrap();
        let (config, _) = crate::TrainConfig::load("shapes").unwrap();
        let run = RunDir::create(&run_path, &config, &["a".into(), "b".into()]).unwrap();
        run.append_metrics(&metrics(1)).unwrap();
        let logdir = dir.path().join("tb");
        // A stale file from an earlier process, and a file of the user's that stays.
        fs::create_dir_all(logdir.join("shapes-007")).unwrap();
        fs::write(
            logdir.join("shapes-007/events.out.tfevents.1.old"),
            b"stale",
        )
        .unwrap();
        fs::write(logdir.join("shapes-007/notes.txt"), b"mine").unwrap();

        let mut board = TensorBoard::new(&logdir, &run.path).unwrap();
        board.epoch_started(2, 2, 10);
        board.epoch_finished(&metrics(2), false);

        let files: Vec<PathBuf> = fs::read_dir(board.folder())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| is_event_file(p))
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(logdir.join("shapes-007/notes.txt").is_file());
        let bytes = fs::read(&files[0]).unwrap();
        let records = records(&bytes);
        // The file version, then 6 scalars for the replayed epoch 1 and 6 for epoch 2.
        assert_eq!(records.len(), 1 + 6 + 6);
        let contains =
            |record: &[u8], needle: &[u8]| record.windows(needle.len()).any(|w| w == needle);
        assert!(
            contains(records[0], b"brain.Event:2"),
            "the file version first"
        );
        for (record, (tag, value)) in records[1..7].iter().zip(scalars(&metrics(1))) {
            assert!(contains(record, tag.as_bytes()), "{tag}");
            assert!(
                contains(record, &(value as f32).to_le_bytes()),
                "{tag} = {value}"
            );
        }
        assert!(contains(records[7], b"loss/train"));
        assert!(
            contains(records[7], &0.5f32.to_le_bytes()),
            "epoch 2's loss 1/2"
        );
    }
}
