"""Reads a run's `train --tensorboard` event files with TensorBoard's own reader and compares
every scalar with the run's metrics.csv: the check that the files are what TensorBoard expects.

    pip install tensorboard
    python scripts/check_tensorboard.py TENSORBOARD_DIR/RUN_NAME RUN_FOLDER
"""
import csv
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

COLUMNS = {
    "loss/train": "train_loss",
    "loss/held_out": "val_loss",
    "accuracy/train": "train_acc",
    "accuracy/held_out": "val_acc",
    "learning_rate": "lr",
    "seconds_per_epoch": "seconds",
}

events, run = sys.argv[1], sys.argv[2]
board = EventAccumulator(events)
board.Reload()
with open(f"{run}/metrics.csv") as f:
    rows = {int(r["epoch"]): r for r in csv.DictReader(f)}
worst = 0.0
for tag, column in COLUMNS.items():
    scalars = board.Scalars(tag)
    steps = [s.step for s in scalars]
    assert steps == sorted(rows), f"{tag}: steps {steps}, metrics.csv has {sorted(rows)}"
    for s in scalars:
        expected = float(rows[s.step][column])
        # Stored as f32; metrics.csv keeps 6 decimals (2 for seconds).
        error = abs(s.value - expected) / max(abs(expected), 1e-3)
        worst = max(worst, error)
        assert error < 1e-3, f"{tag} epoch {s.step}: {s.value} vs {expected}"
print(f"{len(COLUMNS)} scalars × {len(rows)} epochs as in metrics.csv (worst relative error {worst:.1e})")
