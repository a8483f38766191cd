//! `--shard I/N`: one share of the images, so that a cluster's array job (or a few processes
//! side by side) explains a large set together, and the note each share leaves behind so that
//! `explain merge` can check the shares belong together and put them back in order.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::args::Args;
use crate::output::Style;
use crate::source::SplitItems;

/// Share `index` of `count` (from 0: Slurm's `SLURM_ARRAY_TASK_ID` of `--array=0-(N-1)`,
/// Kubernetes' `JOB_COMPLETION_INDEX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Everything: no `--shard`.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// The positions this shard takes of `len` images explained `batch` at a time: whole
    /// batches, dealt out in order as evenly as they go. Each image meets the same batch
    /// companions as in one run, so its numbers are the same to the bit, and the shards
    /// concatenated in order are the one run's order.
    pub fn range(self, len: usize, batch: usize) -> Range<usize> {
        let batch = batch.max(1);
        let batches = len.div_ceil(batch);
        let first = self.index * batches / self.count;
        let end = (self.index + 1) * batches / self.count;
        (first * batch).min(len)..(end * batch).min(len)
    }

    /// `shard-2-of-8`: the output folder's name when `--out` is not given.
    pub fn folder_name(self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = || {
            format!(
                "`{s}`: use I/N with 0 ≤ I < N, e.g. 0/4 (from an array job: \
                 --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT with --array=0-3)"
            )
        };
        let (index, count) = s.split_once('/').ok_or_else(usage)?;
        let index: usize = index.trim().parse().map_err(|_| usage())?;
        let count: usize = count.trim().parse().map_err(|_| usage())?;
        if count == 0 || index >= count {
            return Err(usage());
        }
        Ok(Shard { index, count })
    }
}

/// A shard of images explained `batch` at a time.
#[derive(Debug, Clone, Copy)]
pub struct Share {
    pub shard: Shard,
    pub batch: usize,
}

impl Share {
    /// The positions of `len` images this share takes ([`Shard::range`]).
    pub fn of(self, len: usize) -> Range<usize> {
        self.shard.range(len, self.batch)
    }
}

/// The note a shard leaves in its output folder when it has finished.
pub const NOTE: &str = "shard.json";

/// What `explain merge` needs to know of a shard, and to check it against the others.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardNote {
    pub shard: usize,
    pub of: usize,
    /// The shard's images are positions `first..first + images` of the `chosen` ones.
    pub first: usize,
    pub images: usize,
    pub chosen: usize,
    /// The model, as the galleries title it.
    pub title: String,
    /// The methods in their folders' order (one folder per method when several).
    pub methods: Vec<String>,
    pub style: Style,
    /// `--evaluate`: the curves' steps and the input size, for the merged table.
    pub evaluation: Option<EvaluationShape>,
    /// What every shard of one job has in common: the weights' SHA-256 and every option that
    /// changes what is written.
    pub job: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct EvaluationShape {
    pub steps: usize,
    pub image_size: [usize; 2],
}

impl ShardNote {
    /// Written last, so that a folder with a note holds a finished shard.
    pub fn write(&self, out: &Path) -> Result<()> {
        let path = out.join(NOTE);
        let json = serde_json::to_string_pretty(self).expect("a note serialises");
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))
    }

    pub fn read(folder: &Path) -> Result<ShardNote> {
        let path = folder.join(NOTE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: no {NOTE}: not the output of a finished `explain --shard` (did the shard \
                 fail or is it still running?)",
                folder.display()
            )
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a shard's note", path.display()))
    }

    /// Removes an earlier run's note from `out` (that run's figures are being replaced).
    pub fn remove(out: &Path) -> Result<()> {
        crate::output::replace(&out.join(NOTE))
    }
}

/// Everything the shards of one job must agree on: the weights (SHA-256 of the file), the
/// layers, the images chosen, and every option that changes what is computed or written, as
/// given (`--shard`, `--out`, `--device` aside).
pub fn job(
    args: &Args,
    weights_sha256: &str,
    layers: &[&str],
    selection: &SplitItems,
) -> BTreeMap<String, String> {
    let options: [(&str, String); 32] = [
        ("--run", format!("{:?}", args.run)),
        ("weights sha256", weights_sha256.to_string()),
        ("--arch", format!("{:?}", args.arch)),
        ("--weights", format!("{:?}", args.weights)),
        ("--labels", format!("{:?}", args.labels)),
        ("--input-size", format!("{:?}", args.input_size)),
        ("--mean", format!("{:?}", args.mean)),
        ("--std", format!("{:?}", args.std)),
        ("--image", format!("{:?}", args.image)),
        ("--split", format!("{:?}", args.split)),
        ("--limit", args.limit.to_string()),
        ("--data-dir", format!("{:?}", args.data_dir)),
        (
            "images chosen",
            format!("{} of {}", selection.chosen, selection.total),
        ),
        ("--class", format!("{:?}", args.class)),
        ("--top-k", args.top_k.to_string()),
        ("--score", format!("{:?}", args.score)),
        ("--target", format!("{:?}", args.target)),
        ("--method", format!("{:?}", args.method)),
        ("--layer", layers.join(",")),
        ("--eigen-smooth", args.eigen_smooth.to_string()),
        ("--aug-smooth", args.aug_smooth.to_string()),
        ("--sess", args.sess.to_string()),
        ("--guided", args.guided.to_string()),
        ("--naming", format!("{:?}", args.naming)),
        ("--alpha", args.alpha.to_string()),
        ("--colormap", format!("{:?}", args.colormap)),
        ("--normalize", format!("{:?}", args.normalize)),
        ("--save-raw", args.save_raw.to_string()),
        ("--evaluate", args.evaluate.to_string()),
        ("--steps", args.steps.to_string()),
        ("--batch-size", args.batch_size.to_string()),
        ("--precision", format!("{:?}", args.precision)),
    ];
    options
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_images_once_in_whole_batches() {
        for len in [0, 1, 7, 16, 17, 100] {
            for batch in [1, 4, 16] {
                for count in [1, 2, 3, 5, 8] {
                    let ranges: Vec<Range<usize>> = (0..count)
                        .map(|index| Shard { index, count }.range(len, batch))
                        .collect();
                    assert_eq!(ranges[0].start, 0);
                    assert_eq!(ranges[count - 1].end, len);
                    for pair in ranges.windows(2) {
                        assert_eq!(pair[0].end, pair[1].start, "{len} {batch} {count}");
                    }
                    for range in &ranges[..count - 1] {
                        assert_eq!(range.len() % batch, 0, "whole batches but the last");
                    }
                    let sizes: Vec<usize> =
                        ranges.iter().map(|r| r.len().div_ceil(batch)).collect();
                    let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                    assert!(max - min <= 1, "even: {sizes:?}");
                }
            }
        }
        assert_eq!(Shard { index: 1, count: 3 }.range(10, 2), 2..6);
    }

    #[test]
    fn shards_are_read_as_index_over_count() {
        assert_eq!("2/8".parse(), Ok(Shard { index: 2, count: 8 }));
        assert_eq!("0/1".parse(), Ok(Shard::WHOLE));
        for bad in ["8/8", "1/0", "3", "a/2", "-1/2", "1/2/3"] {
            let error = bad.parse::<Shard>().unwrap_err();
            assert!(error.contains("I/N"), "{bad}: {error}");
        }
    }
}
