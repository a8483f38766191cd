//! `--accuracy`: how often the run's model is right on its held-out images, per class.

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use data::{Batcher, ImageSet};
use model::{Network, SplitModel};
use train::{RunDir, TrainConfig, dataset};

use crate::explainer::argmax;

pub fn report<B: Backend>(
    run: &RunDir,
    config: &TrainConfig,
    class_names: &[String],
    model: &Network<B>,
    batcher: &Batcher,
    device: &B::Device,
) -> Result<()> {
    let data = dataset::load(&config.data, config.seed, &())
        .context("reloading the run's data (pass --data-dir if it moved)")?;
    if data.class_names() != class_names {
        bail!(
            "the data set's classes differ from {}/classes.txt",
            run.path.display()
        );
    }
    let set = &data.validation;
    if set.is_empty() {
        bail!("the run held out no validation images (data.validation = 0)");
    }
    let mut per_class = vec![(0usize, 0usize); class_names.len()];
    for (sample, guess) in set.samples.iter().zip(predict(model, set, batcher, device)) {
        per_class[sample.label].1 += 1;
        per_class[sample.label].0 += usize::from(guess == sample.label);
    }
    let correct: usize = per_class.iter().map(|c| c.0).sum();
    println!(
        "{}: {}/{} held-out images correct ({:.2}%)",
        run.path.display(),
        correct,
        set.len(),
        100.0 * correct as f64 / set.len() as f64
    );
    for (name, (right, total)) in class_names.iter().zip(per_class) {
        println!(
            "  {name:>16}: {right:>5}/{total:<5} {:6.2}%",
            100.0 * right as f64 / total.max(1) as f64
        );
    }
    Ok(())
}

/// The predicted class of every image, in batches.
fn predict<B: Backend>(
    model: &Network<B>,
    set: &ImageSet,
    batcher: &Batcher,
    device: &B::Device,
) -> Vec<usize> {
    let indexed: Vec<_> = set.samples.iter().enumerate().collect();
    indexed
        .chunks(64)
        .flat_map(|chunk| {
            let (images, _) = batcher.batch(chunk, 0).to_tensors::<B>(device);
            let probabilities = softmax(model.forward(images), 1);
            let classes = probabilities.dims()[1];
            let flat = probabilities
                .into_data()
                .to_vec::<f32>()
                .expect("f32 probabilities");
            flat.chunks(classes).map(argmax).collect::<Vec<_>>()
        })
        .collect()
}
