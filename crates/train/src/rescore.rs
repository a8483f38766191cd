//! Every checkpoint of a run scored again, without augmentation, on its held-out and on its
//! training images: the per-epoch `epoch,loss,acc` log the Grad-CAM tutorial keeps (it scored
//! its training images; the held-out figures say how the model does on photos it never saw).

use std::fmt::Write as _;

use data::{Batcher, ImageSet};
use model::Kernels;

use crate::run_dir::write_atomic;
use crate::{Evaluation, RunDir, TrainConfig, TrainError, Weights, evaluate, report};

/// One checkpoint's mean loss and accuracy on each split.
#[derive(Debug, Clone, PartialEq)]
pub struct Rescored {
    pub epoch: usize,
    pub validation: Evaluation,
    pub train: Evaluation,
}

/// Scores each checkpoint of `run` in epoch order, calling `on_epoch` after each, and writes
/// `rescored.csv` (`epoch,val_loss,val_acc,train_loss,train_acc`) into the run folder, and
/// the run's report with the confusion matrix of its best held-out checkpoint.
pub fn rescore<B: Kernels>(
    run: &RunDir,
    config: &TrainConfig,
    train: &ImageSet,
    validation: &ImageSet,
    device: &B::Device,
    on_epoch: &mut dyn FnMut(&Rescored),
) -> Result<Vec<Rescored>, TrainError> {
    let batcher = Batcher {
        image_size: config.data.image_size,
        normalization: config.normalization(),
        augmentation: Default::default(),
        seed: config.seed,
    };
    let mut rows = Vec::new();
    for epoch in run.checkpoint_epochs()? {
        let model = run.load_model::<B>(Weights::Epoch(epoch), device)?;
        let score = |set: &ImageSet| evaluate(&model, set, &batcher, config.batch_size, device);
        let row = Rescored {
            epoch,
            validation: score(validation),
            train: score(train),
        };
        on_epoch(&row);
        rows.push(row);
    }
    write_atomic(&run.path.join("rescored.csv"), csv(&rows).as_bytes())?;
    let best = rows
        .iter()
        .max_by(|a, b| a.validation.accuracy.total_cmp(&b.validation.accuracy));
    if let Some(best) = best {
        report::write_confusion(run, &best.validation.confusion)?;
        report::write(run)?;
    }
    Ok(rows)
}

fn csv(rows: &[Rescored]) -> String {
    let mut text = String::from("epoch,val_loss,val_acc,train_loss,train_acc\n");
    for r in rows {
        let _ = writeln!(
            text,
            "{},{:.6},{:.6},{:.6},{:.6}",
            r.epoch, r.validation.loss, r.validation.accuracy, r.train.loss, r.train.accuracy
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_has_one_row_per_checkpoint() {
        let scored = |loss, accuracy| Evaluation {
            loss,
            accuracy,
            confusion: vec![],
        };
        let rows = [Rescored {
            epoch: 3,
            validation: scored(0.5, 0.75),
            train: scored(0.25, 1.0),
        }];
        assert_eq!(
            csv(&rows),
            "epoch,val_loss,val_acc,train_loss,train_acc\n3,0.500000,0.750000,0.250000,1.000000\n"
        );
    }
}
