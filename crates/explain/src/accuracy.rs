//! `--accuracy`: how often the model is right on labelled images, per class.

use anyhow::{Context, Result, bail};
use data::{Batcher, ImageSet};
use model::{Kernels, Network, SplitModel, class_probabilities};
use train::{RunDir, TrainConfig, dataset};

use crate::explainer::argmax;
use crate::progress::Bars;

/// The images a run held out, as it split them.
pub fn held_out(run: &RunDir, config: &TrainConfig, class_names: &[String]) -> Result<ImageSet> {
    let data = dataset::load(&config.data, config.seed, &Bars::default())
        .context("reloading the run's data (pass --data-dir if it moved)")?;
    if data.class_names() != class_names {
        bail!(
            "the data set's classes differ from {}/classes.txt",
            run.path.display()
        );
    }
    if data.validation.is_empty() {
        bail!("the run held out no validation images (data.validation = 0)");
    }
    Ok(data.validation)
}

/// Every image of `<root>/<class>/*`, labelled with the model's class of the same name.
pub fn folder(
    root: &std::path::Path,
    size: [usize; 2],
    class_names: &[String],
) -> Result<ImageSet> {
    let (mut set, skipped) = data::folder::load(root, size, &Bars::default())?;
    if !skipped.is_empty() {
        println!("{} unreadable file(s) skipped", skipped.len());
    }
    let labels: Vec<usize> = set
        .class_names
        .iter()
        .map(|name| class_names.iter().position(|c| c == name))
        .collect::<Option<_>>()
        .with_context(|| {
            format!(
                "{}: class folders {:?} must carry the model's class names",
                root.display(),
                set.class_names
            )
        })?;
    for sample in &mut set.samples {
        sample.label = labels[sample.label];
    }
    set.class_names = class_names.to_vec();
    Ok(set)
}

/// Prints `<title>: <right>/<total> <what> correct` and a line per class.
/// Also writes `confusion.csv` (counts, with each class's accuracy) and `confusion.svg` into
/// `out`.
pub fn report<B: Kernels>(
    title: &str,
    what: &str,
    set: &ImageSet,
    model: &Network<B>,
    batcher: &Batcher,
    device: &B::Device,
    out: &std::path::Path,
) -> Result<()> {
    let class_names = &set.class_names;
    let mut per_class = vec![(0usize, 0usize); class_names.len()];
    let mut confusion = vec![vec![0usize; class_names.len()]; class_names.len()];
    for (sample, guess) in set.samples.iter().zip(predict(model, set, batcher, device)) {
        per_class[sample.label].1 += 1;
        per_class[sample.label].0 += usize::from(guess == sample.label);
        confusion[sample.label][guess] += 1;
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    train::report::write_confusion_files(out, class_names, &confusion)?;
    let correct: usize = per_class.iter().map(|c| c.0).sum();
    println!(
        "{title}: {correct}/{} {what} correct ({:.2}%)",
        set.len(),
        100.0 * correct as f64 / set.len() as f64
    );
    for (name, (right, total)) in class_names.iter().zip(per_class) {
        if total > 0 {
            println!(
                "  {name:>16}: {right:>5}/{total:<5} {:6.2}%",
                100.0 * right as f64 / total as f64
            );
        }
    }
    Ok(())
}

/// The predicted class of every image, in batches.
fn predict<B: Kernels>(
    model: &Network<B>,
    set: &ImageSet,
    batcher: &Batcher,
    device: &B::Device,
) -> Vec<usize> {
    let bar = crate::progress::bar("predicting", set.len());
    let indexed: Vec<_> = set.samples.iter().enumerate().collect();
    let predicted = indexed
        .chunks(64)
        .flat_map(|chunk| {
            let (images, _) = batcher.batch(chunk, 0).to_tensors::<B>(device);
            let probabilities = class_probabilities(model.forward(images));
            let classes = probabilities.dims()[1];
            let flat = probabilities
                .into_data()
                .to_vec::<f32>()
                .expect("f32 probabilities");
            bar.inc(chunk.len() as u64);
            flat.chunks(classes).map(argmax).collect::<Vec<_>>()
        })
        .collect();
    bar.finish_and_clear();
    predicted
}
