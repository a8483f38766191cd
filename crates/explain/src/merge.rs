//! `explain merge OUT SHARD…`: the folders of `explain --shard I/N` put together into what
//! one run over all the images writes — figures, summaries, galleries, grid, overview, or the
//! evaluation table — after checking that the shards are the N shares of one job.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cam::Method;

use crate::evaluate::Evaluation;
use crate::output::{self, Record};
use crate::publish::{self, method_folder};
use crate::shard::ShardNote;

pub fn merge(out: &Path, folders: &[PathBuf]) -> Result<()> {
    let shards = read_shards(folders)?;
    if let Ok(target) = out.canonicalize()
        && let Some(folder) = folders
            .iter()
            .find(|f| f.canonicalize().is_ok_and(|f| f == target))
    {
        bail!(
            "{}: the merged output cannot go into a shard's own folder; name another OUT",
            folder.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    ShardNote::remove(out)?;
    let first = &shards[0].1;
    let folders: Vec<&Path> = shards.iter().map(|(folder, _)| folder.as_path()).collect();
    if let Some(shape) = first.evaluation {
        Evaluation::read(&folders, shape.steps, shape.image_size)?.report(out)?;
    } else {
        let methods: Vec<Method> = first
            .methods
            .iter()
            .map(|name| name.parse().map_err(anyhow::Error::msg))
            .collect::<Result<_>>()?;
        let per_method = gather(out, &folders, &methods)?;
        publish::write(out, &first.title, first.style, &methods, &per_method)?;
    }
    let images: usize = shards.iter().map(|(_, note)| note.images).sum();
    println!(
        "merged {} shards, {images} images, into {}",
        shards.len(),
        out.display()
    );
    Ok(())
}

/// Each folder's note, in shard order, once it is clear they are the N shares of one job.
fn read_shards(folders: &[PathBuf]) -> Result<Vec<(PathBuf, ShardNote)>> {
    let mut shards: Vec<(PathBuf, ShardNote)> = folders
        .iter()
        .map(|folder| Ok((folder.clone(), ShardNote::read(folder)?)))
        .collect::<Result<_>>()?;
    let (first_folder, first) = &shards[0];
    for (folder, note) in &shards[1..] {
        if note.of != first.of {
            bail!(
                "{} is shard {}/{} but {} is shard {}/{}: shards of one job share their N",
                folder.display(),
                note.shard,
                note.of,
                first_folder.display(),
                first.shard,
                first.of
            );
        }
        if let Some((option, value)) = note.job.iter().find(|(k, v)| first.job.get(*k) != Some(v)) {
            bail!(
                "{} is not a shard of the same job as {}: {option} is {value} there and {} here",
                folder.display(),
                first_folder.display(),
                first.job.get(option).map_or("not given", String::as_str)
            );
        }
    }
    shards.sort_by_key(|(_, note)| note.shard);
    for pair in shards.windows(2) {
        if pair[0].1.shard == pair[1].1.shard {
            bail!(
                "{} and {} are both shard {}/{}: pass each shard once",
                pair[0].0.display(),
                pair[1].0.display(),
                pair[0].1.shard,
                pair[0].1.of
            );
        }
    }
    let of = shards[0].1.of;
    let missing: Vec<String> = (0..of)
        .filter(|i| !shards.iter().any(|(_, note)| note.shard == *i))
        .map(|i| format!("{i}/{of}"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "shard(s) {} missing: pass every shard's folder (run `explain --shard I/{of}` for \
             the missing ones first)",
            missing.join(", ")
        );
    }
    Ok(shards)
}

/// Copies every shard's figures and arrays into `out` (in each method's folder), writes the
/// merged manifests, and returns each method's records in image order.
fn gather(out: &Path, shards: &[&Path], methods: &[Method]) -> Result<Vec<Vec<Record>>> {
    // A previous run's or merge's figures in `out` go first, as `explain` itself does.
    output::remove_previous(out)?;
    let mut per_method = Vec::with_capacity(methods.len());
    for &method in methods {
        let to = method_folder(out, methods, method);
        output::remove_previous(&to)?;
        let (mut records, mut files) = (Vec::new(), Vec::new());
        for shard in shards {
            let from = method_folder(shard, methods, method);
            let summary = from.join("summary.json");
            let text = std::fs::read_to_string(&summary)
                .with_context(|| format!("reading {}", summary.display()))?;
            let shard_records: Vec<Record> = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a summary of explain", summary.display()))?;
            records.extend(shard_records);
            for file in output::read_manifest(&from)? {
                copy_if_present(&from.join(&file), &to.join(&file))?;
                files.push(file);
            }
        }
        output::write_file_list(&to, files)?;
        per_method.push(records);
    }
    Ok(per_method)
}

/// Puts `from` at `to` as a hard link (instant: a large merge is thousands of small files),
/// or as a copy where the two folders are on different file systems, creating `to`'s folder;
/// a file the shard listed but did not write (the arrays of a run without `--save-raw`) is
/// skipped. `explain` replaces its files rather than rewriting them (`output::replace`), so a
/// later run into the shard's folder never changes the merged output through the link.
fn copy_if_present(from: &Path, to: &Path) -> Result<()> {
    if !from.is_file() {
        return Ok(());
    }
    if let Some(folder) = to.parent() {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("creating {}", folder.display()))?;
    }
    output::replace(to)?;
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}
