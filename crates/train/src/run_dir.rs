//! The run folder: the unit a user hands from `train` to `explain`.
//!
//! ```text
//! runs/<name>-NNN/
//!   config.toml              the resolved config (command-line overrides applied)
//!   classes.txt              one class name per line, in label order
//!   held_out.txt             folder sources: the validation files, relative to data.dir
//!   model.onnx               `name = "onnx"`: the graph fine-tuned (a copy of model.weights)
//!   metrics.csv              one row per finished epoch
//!   checkpoints/epoch-NNNN/  model.mpk, optimizer.mpk, state.json
//!   best/                    model.mpk, state.json of the best validation accuracy
//! ```
//! Every file is written to a temporary name and renamed, and a checkpoint folder appears
//! only when complete: a crash or kill never leaves a half-written checkpoint behind.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Record, Recorder};
use model::{Kernels, Network};
use serde::{Deserialize, Serialize};

use crate::{TrainConfig, TrainError};

pub const METRICS_HEADER: &str = "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds";

/// One epoch's numbers, a row of `metrics.csv`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    pub lr: f64,
    pub seconds: f64,
}

impl EpochMetrics {
    /// A row of metrics.csv; `None` for the header or a damaged line.
    pub fn parse_row(line: &str) -> Option<EpochMetrics> {
        let mut fields = line.split(',');
        let epoch = fields.next()?.parse().ok()?;
        let v: Vec<f64> = fields.map(|x| x.parse().ok()).collect::<Option<_>>()?;
        // Tolerant of a missing time or of later columns, so older runs still draw.
        let [train_loss, train_acc, val_loss, val_acc, lr, ref rest @ ..] = v[..] else {
            return None;
        };
        let seconds = rest.first().copied().unwrap_or(0.0);
        Some(EpochMetrics {
            epoch,
            train_loss,
            train_acc,
            val_loss,
            val_acc,
            lr,
            seconds,
        })
    }

    fn csv_row(&self) -> String {
        format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.6e},{:.2}",
            self.epoch,
            self.train_loss,
            self.train_acc,
            self.val_loss,
            self.val_acc,
            self.lr,
            self.seconds
        )
    }
}

/// What a checkpoint knows besides the weights: where the run stands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// The last finished epoch, 1-based.
    pub epoch: usize,
    pub val_acc: f64,
    pub best_val_acc: f64,
    pub best_epoch: usize,
}

/// Which weights of a run to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    Best,
    Last,
    Epoch(usize),
}

pub struct RunDir {
    pub path: PathBuf,
}

const HELD_OUT: &str = "held_out.txt";
/// A run of an ONNX network keeps its graph: its checkpoints hold only the weights.
const ONNX_GRAPH: &str = "model.onnx";

type Bytes = NamedMpkBytesRecorder<FullPrecisionSettings>;

impl RunDir {
    /// `root/<name>-NNN` with the first free NNN.
    pub fn next_free(root: &Path, name: &str) -> PathBuf {
        (1..)
            .map(|n| root.join(format!("{name}-{n:03}")))
            .find(|p| !p.exists())
            .expect("unbounded")
    }

    /// The run under `root` whose last checkpoint is the most recent.
    pub fn latest(root: &Path) -> Result<RunDir, TrainError> {
        let newest = fs::read_dir(root)
            .map_err(|e| TrainError::io(root, e))?
            .filter_map(|e| e.ok().map(|e| RunDir { path: e.path() }))
            .filter_map(|run| {
                let (_, checkpoint) = run.last_checkpoint().ok()??;
                let modified = fs::metadata(checkpoint).and_then(|m| m.modified()).ok()?;
                Some((modified, run))
            })
            .max_by_key(|(modified, _)| *modified);
        newest.map(|(_, run)| run).ok_or_else(|| {
            TrainError::run(
                root,
                "holds no run with a checkpoint; train one first (cargo run --release -p train)",
            )
        })
    }

    /// Starts a new run folder; refuses one that already holds a run.
    pub fn create(
        path: &Path,
        config: &TrainConfig,
        class_names: &[String],
    ) -> Result<RunDir, TrainError> {
        if path.join("config.toml").exists() {
            return Err(TrainError::run(
                path,
                "already holds a run: pass --resume to continue it, or another --out",
            ));
        }
        fs::create_dir_all(path.join("checkpoints")).map_err(|e| TrainError::io(path, e))?;
        let run = RunDir {
            path: path.to_path_buf(),
        };
        write_atomic(&run.path.join("config.toml"), config.to_toml().as_bytes())?;
        write_atomic(
            &run.path.join("classes.txt"),
            (class_names.join("\n") + "\n").as_bytes(),
        )?;
        write_atomic(
            &run.path.join("metrics.csv"),
            format!("{METRICS_HEADER}\n").as_bytes(),
        )?;
        if let (model::Architecture::Onnx(_), Some(file)) =
            (&config.model.architecture, &config.model.finetune.weights)
        {
            let bytes = fs::read(file).map_err(|e| TrainError::io(file, e))?;
            write_atomic(&run.path.join(ONNX_GRAPH), &bytes)?;
        }
        Ok(run)
    }

    /// An existing run folder.
    pub fn open(path: &Path) -> Result<RunDir, TrainError> {
        if !path.join("config.toml").is_file() {
            return Err(TrainError::run(
                path,
                "is not a run folder (no config.toml); pass the --out folder of a `train` run",
            ));
        }
        Ok(RunDir {
            path: path.to_path_buf(),
        })
    }

    pub fn config(&self) -> Result<TrainConfig, TrainError> {
        let path = self.path.join("config.toml");
        let text = fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
        TrainConfig::parse(&text, &path.display().to_string())
    }

    pub fn class_names(&self) -> Result<Vec<String>, TrainError> {
        let path = self.path.join("classes.txt");
        let text = fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
        Ok(text.lines().map(str::to_string).collect())
    }

    /// Records which files were held out, so that `explain` can read a few of them without
    /// decoding the whole folder again. Only for samples read from files under `root`.
    pub fn write_held_out(&self, samples: &[data::Sample], root: &Path) -> Result<(), TrainError> {
        let relative: Option<Vec<String>> = samples
            .iter()
            .map(|s| {
                let path = s.path.as_ref()?.strip_prefix(root).ok()?;
                let text = path.to_str()?;
                (!text.contains('\n')).then(|| text.to_string())
            })
            .collect();
        match relative {
            Some(lines) if !lines.is_empty() => write_atomic(
                &self.path.join(HELD_OUT),
                (lines.join("\n") + "\n").as_bytes(),
            ),
            _ => Ok(()),
        }
    }

    /// The held-out files, relative to data.dir, when the run recorded them.
    pub fn held_out(&self) -> Result<Option<Vec<PathBuf>>, TrainError> {
        let path = self.path.join(HELD_OUT);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text.lines().map(PathBuf::from).collect())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TrainError::io(&path, e)),
        }
    }

    /// The newest complete checkpoint: `(epoch, folder)`.
    pub fn last_checkpoint(&self) -> Result<Option<(usize, PathBuf)>, TrainError> {
        let newest = self.checkpoint_epochs()?.pop();
        Ok(newest.map(|epoch| (epoch, self.checkpoint_dir(epoch))))
    }

    /// The epochs with a complete checkpoint, in order (a partial one is a hidden folder).
    pub fn checkpoint_epochs(&self) -> Result<Vec<usize>, TrainError> {
        let dir = self.path.join("checkpoints");
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut epochs: Vec<usize> = fs::read_dir(&dir)
            .map_err(|e| TrainError::io(&dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("epoch-")?.parse().ok())
            .collect();
        epochs.sort_unstable();
        Ok(epochs)
    }

    fn checkpoint_dir(&self, epoch: usize) -> PathBuf {
        self.path
            .join("checkpoints")
            .join(format!("epoch-{epoch:04}"))
    }

    /// Writes a complete checkpoint folder, then makes it visible with one rename.
    pub fn save_checkpoint<B: Backend, O: Record<B>>(
        &self,
        model: &Network<B>,
        optimizer: O,
        state: &CheckpointState,
    ) -> Result<(), TrainError> {
        let partial = self
            .path
            .join("checkpoints")
            .join(format!(".epoch-{:04}.partial", state.epoch));
        let _ = fs::remove_dir_all(&partial);
        fs::create_dir_all(&partial).map_err(|e| TrainError::io(&partial, e))?;
        write_atomic(
            &partial.join("model.mpk"),
            &encode(model.clone().into_record(), &partial)?,
        )?;
        write_atomic(
            &partial.join("optimizer.mpk"),
            &encode(optimizer, &partial)?,
        )?;
        write_state(&partial, state)?;
        let done = self.checkpoint_dir(state.epoch);
        let _ = fs::remove_dir_all(&done);
        fs::rename(&partial, &done).map_err(|e| TrainError::io(&done, e))?;
        if state.best_epoch == state.epoch {
            let best = self.path.join("best");
            fs::create_dir_all(&best).map_err(|e| TrainError::io(&best, e))?;
            fs::copy(done.join("model.mpk"), best.join("model.mpk.partial"))
                .map_err(|e| TrainError::io(&best, e))?;
            fs::rename(best.join("model.mpk.partial"), best.join("model.mpk"))
                .map_err(|e| TrainError::io(&best, e))?;
            write_state(&best, state)?;
        }
        Ok(())
    }

    /// Makes `best/` hold the checkpoint `state` names as best: a run killed after a
    /// checkpoint landed but before its copy to `best/` did would otherwise keep an older best.
    pub fn repair_best(&self, state: &CheckpointState) -> Result<(), TrainError> {
        let best = self.path.join("best");
        let current = read_state(&best).ok().map(|s| s.epoch);
        let source = self.checkpoint_dir(state.best_epoch);
        if state.best_epoch == 0 || current == Some(state.best_epoch) || !source.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(&best).map_err(|e| TrainError::io(&best, e))?;
        fs::copy(source.join("model.mpk"), best.join("model.mpk.partial"))
            .map_err(|e| TrainError::io(&best, e))?;
        fs::rename(best.join("model.mpk.partial"), best.join("model.mpk"))
            .map_err(|e| TrainError::io(&best, e))?;
        write_state(&best, &read_state(&source)?)
    }

    pub fn checkpoint_state(&self, epoch: usize) -> Result<CheckpointState, TrainError> {
        read_state(&self.checkpoint_dir(epoch))
    }

    /// The optimizer state saved with `epoch`.
    pub fn load_optimizer<B: Backend, O: Record<B>>(
        &self,
        epoch: usize,
        device: &B::Device,
    ) -> Result<O, TrainError> {
        decode(&self.checkpoint_dir(epoch).join("optimizer.mpk"), device)
    }

    /// The file holding the chosen weights.
    pub fn model_file(&self, weights: Weights) -> Result<PathBuf, TrainError> {
        let folder = match weights {
            Weights::Best => self.path.join("best"),
            Weights::Epoch(epoch) => self.checkpoint_dir(epoch),
            Weights::Last => match self.last_checkpoint()? {
                Some((_, folder)) => folder,
                None => return Err(TrainError::run(&self.path, "has no checkpoint yet")),
            },
        };
        Ok(folder.join("model.mpk"))
    }

    /// Rebuilds the model from the run's config and loads the chosen weights into it.
    pub fn load_model<B: Kernels>(
        &self,
        weights: Weights,
        device: &B::Device,
    ) -> Result<Network<B>, TrainError> {
        let file = self.model_file(weights)?;
        let spec = self.config()?.model_spec(self.class_names()?.len());
        let model = match spec.architecture {
            model::Architecture::Onnx(_) => {
                spec.init_onnx::<B>(&self.path.join(ONNX_GRAPH), device)
            }
            _ => spec.init::<B>(device),
        }
        .map_err(|m| TrainError::run(&self.path, m))?;
        let record = decode(&file, device)?;
        Ok(model.load_record(record))
    }

    /// The rows of `metrics.csv`, in epoch order.
    pub fn metrics(&self) -> Result<Vec<EpochMetrics>, TrainError> {
        let path = self.path.join("metrics.csv");
        let text = fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
        Ok(text.lines().filter_map(EpochMetrics::parse_row).collect())
    }

    /// Adds a row to `metrics.csv`.
    pub fn append_metrics(&self, row: &EpochMetrics) -> Result<(), TrainError> {
        let path = self.path.join("metrics.csv");
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        writeln!(file, "{}", row.csv_row()).map_err(|e| TrainError::io(&path, e))
    }

    /// Drops rows after `epoch`, written by a run that died before its checkpoint landed.
    pub fn truncate_metrics(&self, epoch: usize) -> Result<(), TrainError> {
        let path = self.path.join("metrics.csv");
        let text = fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
        let kept: Vec<&str> = text
            .lines()
            .filter(|line| {
                line.split(',')
                    .next()
                    .and_then(|e| e.parse::<usize>().ok())
                    .is_none_or(|e| e <= epoch)
            })
            .collect();
        write_atomic(&path, (kept.join("\n") + "\n").as_bytes())
    }
}

fn encode<B: Backend, R: Record<B>>(record: R, place: &Path) -> Result<Vec<u8>, TrainError> {
    Recorder::<B>::record(&Bytes::default(), record, ())
        .map_err(|e| TrainError::run(place, e.to_string()))
}

fn decode<B: Backend, R: Record<B>>(path: &Path, device: &B::Device) -> Result<R, TrainError> {
    let bytes = fs::read(path).map_err(|e| TrainError::io(path, e))?;
    // A foreign or damaged file can make the decoder panic deep inside; keep that an error.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Recorder::<B>::load(&Bytes::default(), bytes, device)
    }));
    std::panic::set_hook(hook);
    match result {
        Ok(Ok(record)) => Ok(record),
        Ok(Err(e)) => Err(TrainError::run(path, decode_failure(&e.to_string()))),
        Err(_) => Err(TrainError::run(
            path,
            "is damaged, or holds another model than config.toml describes",
        )),
    }
}

/// What a failed decode means. burn appends to every decoding error a hint about its record
/// format of version 0.14, which misleads: the run wrote the file with this version, so a
/// failure means a damaged file (cut short: `UnexpectedEof`) or one of another model.
fn decode_failure(error: &str) -> String {
    let cause = error.lines().next().unwrap_or(error);
    if cause.contains("UnexpectedEof") {
        "is cut short (the process writing it was interrupted?); use another checkpoint \
         (--weights last or an epoch number)"
            .to_string()
    } else {
        format!("is damaged, or holds another model than config.toml describes ({cause})")
    }
}

fn write_state(dir: &Path, state: &CheckpointState) -> Result<(), TrainError> {
    let json = serde_json::to_vec_pretty(state).expect("state serialises");
    write_atomic(&dir.join("state.json"), &json)
}

fn read_state(dir: &Path) -> Result<CheckpointState, TrainError> {
    let path = dir.join("state.json");
    let text = fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
    serde_json::from_slice(&text).map_err(|e| TrainError::run(&path, e.to_string()))
}

/// Writes `bytes` beside `path` and renames it into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| TrainError::io(dir, e))?;
    // A temporary file is private (0600); what lands in a run folder is an ordinary file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(|e| TrainError::io(path, e))?;
    }
    file.write_all(bytes).map_err(|e| TrainError::io(path, e))?;
    file.as_file()
        .sync_all()
        .map_err(|e| TrainError::io(path, e))?;
    file.persist(path)
        .map_err(|e| TrainError::io(path, e.error))?;
    Ok(())
}
